//! The topology as a standalone SVG picture, drawn without Graphviz: a
//! caption and legend on top, then links, nodes and seeds at the positions
//! [`super::layout`] finds, then labels. The markup is documented on
//! [`to_svg`] so tests and style sheets can rely on it; every name from the
//! network goes through [`xml_escape`], so no node can break the picture.

use std::fmt::{self, Write as _};

use gossipnet_node::crawl::Topology;

use super::analysis::{summary_of, Graph, Summary};
use super::layout::{fit, place, Frame};

/// Side of the square drawing area per square root of the node count, in
/// pixels: the area then grows with the number of nodes.
const CANVAS_PER_SQRT_NODE: f64 = 200.0;
/// Smallest drawing area, so a handful of nodes is not drawn in a corner.
const CANVAS_MIN: f64 = 600.0;
/// Largest drawing area, beyond which the picture no longer fits a screen
/// even zoomed out.
const CANVAS_MAX: f64 = 2400.0;
/// Band at the top for the caption and, below it, the legend (two rows,
/// so neither runs into the other on the narrowest canvas).
const HEADER_HEIGHT: f64 = 48.0;
/// Space kept free around the drawing.
const MARGIN: f64 = 30.0;
/// Extra space on the right, where labels of the rightmost nodes go.
const LABEL_ROOM: f64 = 130.0;
/// Longest label, in characters; longer names are cut with an ellipsis.
/// About 120 px at the label font size, which [`LABEL_ROOM`] leaves.
const LABEL_MAX_CHARS: usize = 20;
/// Radius of a node's circle: visible at 200 nodes without covering links.
const NODE_RADIUS: f64 = 7.0;
/// Half the side of a seed's square.
const SEED_HALF_SIDE: f64 = 8.0;
/// Font size of labels and caption, in pixels.
const FONT_SIZE: f64 = 10.0;

// Colours from the Tableau 10 palette, told apart also by most colour-blind
// readers; links in light grey so that nodes and labels stand out. The
// Graphviz output uses the same ones, so the two pictures read alike.
const COLOUR_NODE: &str = "#4c78a8";
pub(super) const COLOUR_ME: &str = "#f58518";
const COLOUR_SEED: &str = "#54a24b";
const COLOUR_LINK: &str = "#cccccc";
pub(super) const COLOUR_SEED_LINK: &str = "#9aa5b1";
const COLOUR_TEXT: &str = "#333333";
/// Seed links are drawn at this opacity divided by the square root of their
/// number, between the two bounds below: faint when hundreds overlap.
const SEED_LINK_FADE: f64 = 6.0;
const SEED_LINK_MIN_OPACITY: f64 = 0.2;
const SEED_LINK_MAX_OPACITY: f64 = 0.6;

/// The topology as a standalone SVG picture, laid out by a force-directed
/// layout seeded with `seed`: the same topology and seed give the same
/// picture, whatever order the crawl listed nodes in.
///
/// Markup, which tests and style sheets can rely on: each overlay link is a
/// `<line class="link">`, each seed link a `<line class="seed-link">`, each
/// node a `<circle class="node">` (`class="node me"` for the node the crawl
/// started from), each seed a `<rect class="seed">`; nodes and seeds carry
/// a `<title>` with their name and full id. Nodes that did not answer are
/// not drawn.
pub fn to_svg(t: &Topology, seed: u64) -> String {
    let graph = Graph::new(t);
    let summary = summary_of(t, &graph);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_svg(&mut out, t, &graph, &summary, seed);
    out
}

fn write_svg(
    out: &mut String,
    t: &Topology,
    graph: &Graph<'_>,
    summary: &Summary,
    seed: u64,
) -> fmt::Result {
    let n = graph.vertices.len();
    let side = (CANVAS_PER_SQRT_NODE * (n as f64).sqrt()).clamp(CANVAS_MIN, CANVAS_MAX);
    let (width, height) = (side, side + HEADER_HEIGHT);

    let frame = Frame {
        left: MARGIN,
        top: HEADER_HEIGHT + MARGIN,
        right: width - LABEL_ROOM,
        bottom: height - MARGIN,
    };
    let points = fit(&place(graph, seed), &frame);

    writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" \
         font-size=\"{FONT_SIZE}\">"
    )?;
    writeln!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"#ffffff\"/>"
    )?;
    write_header(out, summary, width)?;

    // Links first, so nodes are drawn over them.
    writeln!(out, "<g stroke=\"{COLOUR_LINK}\" stroke-width=\"0.8\">")?;
    for &(a, b) in &graph.links {
        write_line(out, "link", points[a], points[b])?;
    }
    writeln!(out, "</g>")?;
    // Every node links to every seed, so in a big network seed links would
    // bury the overlay: the more there are, the fainter each is drawn.
    let seed_opacity = (SEED_LINK_FADE / (graph.seed_links.len().max(1) as f64).sqrt())
        .clamp(SEED_LINK_MIN_OPACITY, SEED_LINK_MAX_OPACITY);
    writeln!(
        out,
        "<g stroke=\"{COLOUR_SEED_LINK}\" stroke-width=\"0.8\" stroke-dasharray=\"4 3\" \
         stroke-opacity=\"{seed_opacity:.2}\">"
    )?;
    for &(a, b) in &graph.seed_links {
        write_line(out, "seed-link", points[a], points[b])?;
    }
    writeln!(out, "</g>")?;

    writeln!(out, "<g stroke=\"#ffffff\" stroke-width=\"1.5\">")?;
    // The asking node last, so it is never hidden under another.
    let is_me = |i: &usize| graph.vertices[*i].id == t.from;
    let order = (0..n).filter(|i| !is_me(i)).chain((0..n).filter(is_me));
    for i in order {
        let node = graph.vertices[i];
        let (x, y) = points[i];
        let me = node.id == t.from;
        let role = match (graph.is_seed(i), me) {
            (true, true) => " (seed, this node)",
            (true, false) => " (seed)",
            (false, true) => " (this node)",
            (false, false) => "",
        };
        let title = format!(
            "{}{role}\n{}",
            node.name.as_deref().unwrap_or("(no name)"),
            node.id
        );
        let title = xml_escape(&title);
        let fill = if me { COLOUR_ME } else { COLOUR_SEED };
        if graph.is_seed(i) {
            let s = SEED_HALF_SIDE;
            writeln!(
                out,
                "<rect class=\"seed\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"{fill}\"><title>{title}</title></rect>",
                x - s,
                y - s,
                2.0 * s,
                2.0 * s
            )?;
        } else {
            let (class, fill) = if me {
                ("node me", COLOUR_ME)
            } else {
                ("node", COLOUR_NODE)
            };
            writeln!(
                out,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{NODE_RADIUS}\" \
                 fill=\"{fill}\"><title>{title}</title></circle>"
            )?;
        }
    }
    writeln!(out, "</g>")?;

    // Labels last, so no node covers another's label, with a white halo
    // (a stroke painted under the fill) so links crossing them do not.
    writeln!(
        out,
        "<g fill=\"{COLOUR_TEXT}\" stroke=\"#ffffff\" stroke-width=\"3\" \
         stroke-linejoin=\"round\" paint-order=\"stroke\">"
    )?;
    let offset = NODE_RADIUS.max(SEED_HALF_SIDE) + 3.0;
    for (i, node) in graph.vertices.iter().enumerate() {
        let (x, y) = points[i];
        let label = match &node.name {
            Some(name) if !name.trim().is_empty() => truncate(name, LABEL_MAX_CHARS),
            _ => node.id.short(),
        };
        writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + offset,
            y + FONT_SIZE * 0.35,
            xml_escape(&label)
        )?;
    }
    writeln!(out, "</g>")?;
    writeln!(out, "</svg>")
}

/// Caption on the first row of the top band, legend on the second. The
/// legend's shapes have no class, so they are not counted with the graph's.
fn write_header(out: &mut String, s: &Summary, _width: f64) -> fmt::Result {
    let y = HEADER_HEIGHT * 0.3;
    let text_y = y + FONT_SIZE * 0.35;
    let plural = |count: usize, word: &str| {
        if count == 1 {
            format!("{count} {word}")
        } else {
            format!("{count} {word}s")
        }
    };
    let mut caption = format!(
        "gossipnet: {}, {}, {}",
        plural(s.nodes, "node"),
        plural(s.links, "link"),
        plural(s.components, "component")
    );
    if let Some(d) = s.diameter {
        caption.push_str(&format!(", diameter {d}"));
    }
    caption.push_str(&format!(", {}", plural(s.seeds, "seed")));
    if !s.unreachable.is_empty() {
        caption.push_str(&format!(", {} unreachable", s.unreachable.len()));
    }
    writeln!(
        out,
        "<text x=\"{MARGIN}\" y=\"{text_y:.1}\" fill=\"{COLOUR_TEXT}\" font-size=\"12\">{}</text>",
        xml_escape(&caption)
    )?;

    let x = MARGIN + NODE_RADIUS;
    let y = HEADER_HEIGHT * 0.72;
    let text_y = y + FONT_SIZE * 0.35;
    let r = NODE_RADIUS;
    let s = SEED_HALF_SIDE;
    writeln!(out, "<g fill=\"{COLOUR_TEXT}\">")?;
    writeln!(
        out,
        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"{COLOUR_NODE}\"/>"
    )?;
    writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{text_y:.1}\">node</text>",
        x + 12.0
    )?;
    writeln!(
        out,
        "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"{COLOUR_ME}\"/>",
        x + 60.0
    )?;
    writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{text_y:.1}\">this node</text>",
        x + 72.0
    )?;
    writeln!(
        out,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{COLOUR_SEED}\"/>",
        x + 145.0 - s,
        y - s,
        2.0 * s,
        2.0 * s
    )?;
    writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{text_y:.1}\">seed</text>",
        x + 157.0
    )?;
    writeln!(
        out,
        "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{COLOUR_SEED_LINK}\" \
         stroke-dasharray=\"4 3\"/>",
        x + 195.0,
        x + 225.0
    )?;
    writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{text_y:.1}\">seed link</text>",
        x + 231.0
    )?;
    writeln!(out, "</g>")
}

fn write_line(out: &mut String, class: &str, a: (f64, f64), b: (f64, f64)) -> fmt::Result {
    writeln!(
        out,
        "<line class=\"{class}\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
        a.0, a.1, b.0, b.1
    )
}

/// Text for XML content or a quoted attribute. Characters XML 1.0 does not
/// allow at all (most control characters) become U+FFFD, since a name from
/// the network must not make the whole picture unreadable.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The first `max` characters of a one-line version of `s`, with an
/// ellipsis if it was cut.
fn truncate(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('\u{2026}');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::layout::EXACT_REPULSION_MAX_NODES;
    use crate::graph::test_support::*;

    #[test]
    fn svg_of_200_nodes() {
        let t = random_topology(200, 500, 2, 42);
        let svg = to_svg(&t, 1);
        check_xml(&svg);
        check_coordinates(&svg);
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(count(&svg, "<circle class=\"node"), 200);
        assert_eq!(count(&svg, "<circle class=\"node me\""), 1);
        assert_eq!(count(&svg, "<line class=\"link\""), 500);
        assert_eq!(count(&svg, "<line class=\"seed-link\""), 200);
        assert_eq!(count(&svg, "<rect class=\"seed\""), 2);
        assert_eq!(count(&svg, "<title>"), 202);
        assert!(svg.contains("200 nodes, 500 links"));
    }

    #[test]
    fn svg_is_repeatable_and_ignores_input_order() {
        let t = random_topology(60, 150, 1, 5);
        let svg = to_svg(&t, 9);
        assert_eq!(svg, to_svg(&t, 9));
        assert_ne!(svg, to_svg(&t, 10));

        let mut shuffled = t.clone();
        shuffled.nodes.reverse();
        shuffled.links.reverse();
        for link in &mut shuffled.links {
            *link = (link.1, link.0);
        }
        shuffled.seed_links.reverse();
        assert_eq!(svg, to_svg(&shuffled, 9));
    }

    #[test]
    fn svg_escapes_names() {
        let mut t = topology(3, &ring(3));
        t.nodes[1].name = Some("<b>&\"x'".into());
        t.nodes[2].name = Some("bell\u{7}".into());
        let svg = to_svg(&t, 1);
        check_xml(&svg);
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("&lt;b&gt;&amp;&quot;x&apos;"));
        assert!(!svg.contains('\u{7}'));
    }

    #[test]
    fn long_names_are_cut_and_missing_names_show_the_id() {
        let mut t = topology(2, &[(0, 1)]);
        t.nodes[0].name = Some("x".repeat(100));
        t.nodes[1].name = None;
        let svg = to_svg(&t, 1);
        assert!(svg.contains(&format!(
            ">{}\u{2026}</text>",
            "x".repeat(LABEL_MAX_CHARS - 1)
        )));
        assert!(svg.contains(&format!(">{}</text>", id(1).short())));
    }

    #[test]
    fn large_crawl_uses_the_quadtree_and_stays_finite() {
        let n = EXACT_REPULSION_MAX_NODES as u64 + 300;
        let t = random_topology(n, 2 * n as usize, 3, 11);
        let svg = to_svg(&t, 1);
        check_xml(&svg);
        check_coordinates(&svg);
        assert_eq!(count(&svg, "<circle class=\"node"), n as usize);
        assert_eq!(svg, to_svg(&t, 1));
    }
}
