//! What a crawl found, as numbers and as pictures. [`summarize`] reduces a
//! [`Topology`] to the figures that say whether the overlay is healthy
//! (one component, degrees close to the active-view size, a small diameter)
//! and [`render_text`] prints them; [`to_dot`] writes the graph for Graphviz
//! and [`to_svg`] draws it on its own, with a force-directed layout done
//! here (Fruchterman and Reingold, "Graph Drawing by Force-directed
//! Placement", Software: Practice and Experience 21(11), 1991) from a seeded
//! generator, so the same crawl and seed always give the same picture.
//!
//! The figures are about the overlay: nodes that answered the crawl and the
//! links between them. Seeds are drawn but are not part of the overlay, so
//! they count in no degree, component or path. Nodes are put in id order
//! before anything is computed, so nothing depends on the order the crawl
//! listed them in. Names come from the network and are escaped wherever
//! they are written.

use std::fmt::{self, Write as _};

use gossipnet_node::crawl::{CrawledNode, Topology};

mod analysis;
mod dot;
#[cfg(test)]
mod test_support;
mod text;

pub use analysis::{summarize, Summary};
use analysis::{summary_of, Graph};
pub use dot::to_dot;
pub use text::render_text;

/// Layout steps. Enough for a few hundred nodes to settle from random
/// positions; more mostly polishes what is already readable.
const LAYOUT_ITERATIONS: usize = 300;
/// Pull of a seed link relative to an overlay link. Seeds hold links to
/// many nodes; at full strength they would drag the overlay into a star
/// around them and hide its own shape.
const SEED_LINK_WEIGHT: f64 = 0.1;
/// Pull towards the centre per unit of distance. Without it, components
/// that share no link push each other away until each is a dot on the
/// canvas. A node with no link settles about sqrt(n / GRAVITY) from the
/// centre, while a connected layout spans about sqrt(n) / 2: at 2 the lone
/// node stays beside the rest, and within a component the links still
/// outpull it (tried on random overlays of 60 to 3000 nodes).
const GRAVITY: f64 = 2.0;
/// Nearest two nodes are taken to be, in layout units (the ideal link
/// length is 1). Keeps the 1/d repulsion finite when two nodes coincide.
const MIN_DISTANCE: f64 = 0.01;
/// Up to this many nodes every pair repels exactly (O(n^2) per step, a
/// few milliseconds at this size). Above it, distant groups of nodes repel
/// as one body at their centre of mass, found through a quadtree (Barnes
/// and Hut, "A hierarchical O(N log N) force-calculation algorithm", Nature
/// 324, 1986), so a crawl of 3000 nodes still draws in a few seconds. Simply ignoring distant pairs, as the paper's grid variant does,
/// lets the links of a large overlay crush it into a blob.
const EXACT_REPULSION_MAX_NODES: usize = 500;
/// A quadtree cell this many times smaller than its distance repels as one
/// body. Below 1/sqrt(2), so a node is never approximated by a cell that
/// holds it; the usual choice for layouts, error of a few per cent.
const BARNES_HUT_THETA: f64 = 0.7;
/// Nodes a quadtree cell holds before it is split.
const QUADTREE_LEAF_NODES: usize = 4;
/// Deepest split: nodes this close together (a 2^-32 part of the layout's
/// width) stay in one leaf and repel pairwise, however many there are.
const QUADTREE_MAX_DEPTH: usize = 32;
/// Step size of the first iteration as a fraction of the layout's width,
/// the paper's W/10; it falls linearly to [`FINAL_TEMPERATURE`].
const START_TEMPERATURE: f64 = 0.1;
/// Step size at the end, in layout units: small enough to settle, large
/// enough that the last steps still untangle a little.
const FINAL_TEMPERATURE: f64 = 0.01;

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
// readers; links in light grey so that nodes and labels stand out.
const COLOUR_NODE: &str = "#4c78a8";
const COLOUR_ME: &str = "#f58518";
const COLOUR_SEED: &str = "#54a24b";
const COLOUR_LINK: &str = "#cccccc";
const COLOUR_SEED_LINK: &str = "#9aa5b1";
/// Seed links are drawn at this opacity divided by the square root of their
/// number, between the two bounds below: faint when hundreds overlap.
const SEED_LINK_FADE: f64 = 6.0;
const SEED_LINK_MIN_OPACITY: f64 = 0.2;
const SEED_LINK_MAX_OPACITY: f64 = 0.6;
const COLOUR_TEXT: &str = "#333333";

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

    let mut edges: Vec<(usize, usize, f64)> =
        graph.links.iter().map(|&(a, b)| (a, b, 1.0)).collect();
    edges.extend(
        graph
            .seed_links
            .iter()
            .map(|&(a, b)| (a, b, SEED_LINK_WEIGHT)),
    );
    let frame = Frame {
        left: MARGIN,
        top: HEADER_HEIGHT + MARGIN,
        right: width - LABEL_ROOM,
        bottom: height - MARGIN,
    };
    let points = fit(&layout(n, &edges, seed), &frame);

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

/// Positions for `n` nodes joined by weighted `edges`, in layout units
/// where the ideal link length is 1, centred near the origin.
fn layout(n: usize, edges: &[(usize, usize, f64)], seed: u64) -> Vec<(f64, f64)> {
    let mut rng = XorShift::new(seed);
    let spread = (n as f64).sqrt().max(1.0);
    let mut pos: Vec<(f64, f64)> = (0..n)
        .map(|_| {
            (
                (rng.next_f64() - 0.5) * spread,
                (rng.next_f64() - 0.5) * spread,
            )
        })
        .collect();
    relax(&mut pos, edges);
    pos
}

/// Fruchterman–Reingold with ideal length k = 1: every pair repels with
/// force 1/d, each edge attracts with weight·d², a linear spring pulls
/// towards the origin, and each step is capped by a temperature that falls
/// linearly.
fn relax(pos: &mut [(f64, f64)], edges: &[(usize, usize, f64)]) {
    let n = pos.len();
    if n == 0 {
        return;
    }
    let start = (START_TEMPERATURE * (n as f64).sqrt()).max(1.0);
    let mut disp = vec![(0.0, 0.0); n];
    for step in 0..LAYOUT_ITERATIONS {
        disp.iter_mut().for_each(|d| *d = (0.0, 0.0));
        if n <= EXACT_REPULSION_MAX_NODES {
            repel_exact(pos, &mut disp);
        } else {
            repel_quadtree(pos, &mut disp);
        }
        for &(a, b, weight) in edges {
            let (dx, dy) = (pos[a].0 - pos[b].0, pos[a].1 - pos[b].1);
            let d = dx.hypot(dy);
            // weight·d² along the unit vector (dx, dy)/d.
            let f = weight * d;
            disp[a].0 -= dx * f;
            disp[a].1 -= dy * f;
            disp[b].0 += dx * f;
            disp[b].1 += dy * f;
        }
        let temperature =
            start * (1.0 - step as f64 / LAYOUT_ITERATIONS as f64) + FINAL_TEMPERATURE;
        for (p, d) in pos.iter_mut().zip(&disp) {
            let (dx, dy) = (d.0 - GRAVITY * p.0, d.1 - GRAVITY * p.1);
            let len = dx.hypot(dy);
            if len.is_finite() && len > 0.0 {
                let step = len.min(temperature) / len;
                p.0 += dx * step;
                p.1 += dy * step;
            }
        }
    }
}

/// The repulsion on `i` from `j`: 1/d along the line from `j` to `i`.
fn repulsion(pos: &[(f64, f64)], i: usize, j: usize) -> (f64, f64) {
    let (dx, dy) = (pos[i].0 - pos[j].0, pos[i].1 - pos[j].1);
    let d2 = dx * dx + dy * dy;
    if d2.is_nan() || d2 < MIN_DISTANCE * MIN_DISTANCE {
        // Two nodes on one spot: push them apart along a direction fixed
        // by their indices (opposite for each), so the result repeats.
        let angle = (i.min(j) * 31 + i.max(j)) as f64 * GOLDEN_ANGLE;
        let sign = if i < j { 1.0 } else { -1.0 };
        let f = sign / MIN_DISTANCE;
        return (f * angle.cos(), f * angle.sin());
    }
    (dx / d2, dy / d2)
}

/// Spreads the directions chosen for coincident nodes evenly.
const GOLDEN_ANGLE: f64 = 2.399_963_229_728_653;

/// Every pair, each once.
fn repel_exact(pos: &[(f64, f64)], disp: &mut [(f64, f64)]) {
    for i in 0..pos.len() {
        for j in i + 1..pos.len() {
            let (fx, fy) = repulsion(pos, i, j);
            disp[i].0 += fx;
            disp[i].1 += fy;
            disp[j].0 -= fx;
            disp[j].1 -= fy;
        }
    }
}

/// Barnes–Hut: nearby nodes one by one, distant cells of the quadtree as
/// one body each. The tree is built and walked in a fixed order, so the
/// sums, and the picture, repeat exactly.
fn repel_quadtree(pos: &[(f64, f64)], disp: &mut [(f64, f64)]) {
    let tree = Quadtree::new(pos);
    let mut stack = Vec::new();
    for (i, d) in disp.iter_mut().enumerate() {
        stack.push(0);
        while let Some(c) = stack.pop() {
            let cell = &tree.cells[c];
            if cell.children.iter().all(|&child| child == NO_CELL) {
                for &j in &tree.order[cell.first..cell.first + cell.len] {
                    if j != i {
                        let (fx, fy) = repulsion(pos, i, j);
                        d.0 += fx;
                        d.1 += fy;
                    }
                }
                continue;
            }
            let (dx, dy) = (pos[i].0 - cell.x, pos[i].1 - cell.y);
            let d2 = dx * dx + dy * dy;
            let theta = BARNES_HUT_THETA;
            if cell.size * cell.size < theta * theta * d2 {
                // Far enough that the cell cannot hold `i`, so d2 > 0.
                d.0 += cell.len as f64 * dx / d2;
                d.1 += cell.len as f64 * dy / d2;
            } else {
                // Reversed, so children are visited in quadrant order.
                stack.extend(
                    cell.children
                        .iter()
                        .rev()
                        .filter(|&&child| child != NO_CELL),
                );
            }
        }
    }
}

/// No child in this quadrant.
const NO_CELL: usize = usize::MAX;

/// A quadtree over node positions. Each cell's nodes are a contiguous
/// run of `order`, so a leaf needs no list of its own.
#[derive(Debug)]
struct Quadtree {
    /// Node indices, grouped by cell at every level.
    order: Vec<usize>,
    /// The root first.
    cells: Vec<QuadCell>,
}

#[derive(Debug)]
struct QuadCell {
    /// Centre of mass of the cell's nodes.
    x: f64,
    y: f64,
    /// Side of the cell's square.
    size: f64,
    /// The cell's nodes: `order[first..first + len]`.
    first: usize,
    len: usize,
    /// Sub-cells by quadrant (x low/high, then y low/high), or [`NO_CELL`].
    children: [usize; 4],
}

impl Quadtree {
    fn new(pos: &[(f64, f64)]) -> Self {
        let (mut min_x, mut min_y) = (f64::INFINITY, f64::INFINITY);
        let (mut max_x, mut max_y) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for p in pos {
            min_x = min_x.min(p.0);
            min_y = min_y.min(p.1);
            max_x = max_x.max(p.0);
            max_y = max_y.max(p.1);
        }
        let size = (max_x - min_x).max(max_y - min_y);
        let mut tree = Quadtree {
            order: (0..pos.len()).collect(),
            cells: Vec::new(),
        };
        let square = Square {
            x: min_x,
            y: min_y,
            size,
        };
        tree.build(pos, 0, pos.len(), square, 0);
        tree
    }

    /// Adds the cell holding `order[first..first + len]`, and its
    /// sub-cells; returns its index.
    fn build(
        &mut self,
        pos: &[(f64, f64)],
        first: usize,
        len: usize,
        square: Square,
        depth: usize,
    ) -> usize {
        let nodes = &mut self.order[first..first + len];
        let (sx, sy) = nodes
            .iter()
            .fold((0.0, 0.0), |(sx, sy), &i| (sx + pos[i].0, sy + pos[i].1));
        let id = self.cells.len();
        self.cells.push(QuadCell {
            x: sx / len as f64,
            y: sy / len as f64,
            size: square.size,
            first,
            len,
            children: [NO_CELL; 4],
        });
        // Not finite: nothing can be split (positions are kept finite, but
        // a tree that stops here is still correct, only slower).
        if len <= QUADTREE_LEAF_NODES || depth >= QUADTREE_MAX_DEPTH || !square.size.is_finite() {
            return id;
        }
        let half = square.size / 2.0;
        let quadrant = |i: usize| {
            usize::from(pos[i].0 >= square.x + half) + 2 * usize::from(pos[i].1 >= square.y + half)
        };
        // Stable, so the order within a quadrant stays the index order.
        nodes.sort_by_key(|&i| quadrant(i));
        let mut start = 0;
        for q in 0..4 {
            let count = self.order[first + start..first + len]
                .iter()
                .take_while(|&&i| quadrant(i) == q)
                .count();
            if count > 0 {
                let sub = Square {
                    x: square.x + if q & 1 == 1 { half } else { 0.0 },
                    y: square.y + if q & 2 == 2 { half } else { 0.0 },
                    size: half,
                };
                let child = self.build(pos, first + start, count, sub, depth + 1);
                self.cells[id].children[q] = child;
            }
            start += count;
        }
        id
    }
}

/// A square region of the layout: lower corner and side.
#[derive(Debug, Clone, Copy)]
struct Square {
    x: f64,
    y: f64,
    size: f64,
}

/// The rectangle, in pixels, node centres are placed in.
#[derive(Debug)]
struct Frame {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

/// Scales and centres layout positions into `frame`, keeping the aspect
/// ratio. Positions that are not finite go to the centre; every result is
/// finite and inside the frame.
fn fit(pos: &[(f64, f64)], frame: &Frame) -> Vec<(f64, f64)> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let (mut min_x, mut min_y) = (f64::INFINITY, f64::INFINITY);
    let (mut max_x, mut max_y) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for p in pos.iter().filter(finite) {
        min_x = min_x.min(p.0);
        min_y = min_y.min(p.1);
        max_x = max_x.max(p.0);
        max_y = max_y.max(p.1);
    }
    let (fw, fh) = (frame.right - frame.left, frame.bottom - frame.top);
    let (cx, cy) = (frame.left + fw / 2.0, frame.top + fh / 2.0);
    if min_x > max_x {
        // Nothing finite to place.
        return vec![(cx, cy); pos.len()];
    }
    let (w, h) = (max_x - min_x, max_y - min_y);
    let scale_for = |span: f64, room: f64| {
        if span > 0.0 {
            room / span
        } else {
            f64::INFINITY
        }
    };
    let scale = scale_for(w, fw).min(scale_for(h, fh));
    // A single node, or all on one spot: no extent to scale, draw at centre.
    let scale = if scale.is_finite() { scale } else { 0.0 };
    let (mid_x, mid_y) = (min_x + w / 2.0, min_y + h / 2.0);
    pos.iter()
        .map(|p| {
            if !(p.0.is_finite() && p.1.is_finite()) {
                return (cx, cy);
            }
            let x = (cx + (p.0 - mid_x) * scale).clamp(frame.left, frame.right);
            let y = (cy + (p.1 - mid_y) * scale).clamp(frame.top, frame.bottom);
            (x, y)
        })
        .collect()
}

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
/// generators, scrambled", 2016): a few lines, good enough for starting
/// positions, and the same stream on every platform.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // SplitMix64 spreads nearby seeds apart; xorshift must not start at 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self(if z == 0 { 0x9e37_79b9_7f4a_7c15 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn empty_topology() {
        let t = topology(0, &[]);
        let s = summarize(&t);
        assert_eq!(
            (s.nodes, s.links, s.components, s.diameter),
            (0, 0, 0, None)
        );
        assert_eq!((s.degree_min, s.degree_max), (0, 0));
        assert_eq!(s.degree_avg, 0.0);
        assert!(render_text(&s).contains("diameter     -"));
        assert!(to_dot(&t).contains("graph gossipnet {"));
        let svg = to_svg(&t, 1);
        check_xml(&svg);
        check_coordinates(&svg);
        assert_eq!(count(&svg, "<circle class=\"node"), 0);
    }

    #[test]
    fn single_node_is_drawn_at_the_centre() {
        let t = topology(1, &[]);
        let s = summarize(&t);
        assert_eq!((s.nodes, s.components, s.diameter), (1, 1, Some(0)));
        let svg = to_svg(&t, 1);
        check_xml(&svg);
        check_coordinates(&svg);
        assert_eq!(count(&svg, "<circle class=\"node me\""), 1);
    }

    #[test]
    fn unreachable_nodes_and_seeds_are_not_counted() {
        let mut t = topology(4, &ring(4));
        for i in [4, 5] {
            t.nodes.push(CrawledNode {
                reachable: false,
                name: None,
                ..node(i)
            });
        }
        t.nodes.push(seed_node(6));
        // Links to unreachable nodes, a loop and a duplicate break the
        // crawl's contract; they must not be counted.
        t.links.extend([
            (id(0), id(4)),
            (id(5), id(1)),
            (id(2), id(2)),
            (id(1), id(0)),
        ]);
        t.seed_links = vec![(id(0), id(6)), (id(4), id(6))];
        let s = summarize(&t);
        assert_eq!((s.nodes, s.seeds, s.links, s.components), (4, 1, 4, 1));
        assert_eq!((s.degree_min, s.degree_max), (2, 2));
        let mut expected = vec![id(4), id(5)];
        expected.sort();
        assert_eq!(s.unreachable, expected);

        let svg = to_svg(&t, 7);
        check_xml(&svg);
        assert_eq!(count(&svg, "<circle class=\"node"), 4);
        assert_eq!(count(&svg, "<rect class=\"seed\""), 1);
        assert_eq!(count(&svg, "class=\"link\""), 4);
        assert_eq!(count(&svg, "class=\"seed-link\""), 1);
        assert!(!svg.contains(&id(4).to_string()));

        let dot = to_dot(&t);
        assert!(!dot.contains(&id(4).to_string()));
        assert!(!dot.contains(&id(5).to_string()));
        assert_eq!(count(&dot, " -- "), 5);
        assert_eq!(count(&dot, "shape=box"), 1);
    }

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
    fn nodes_on_one_spot_are_pushed_apart() {
        let mut pos = vec![(0.0, 0.0); 5];
        relax(&mut pos, &[(0, 1, 1.0), (1, 2, 1.0)]);
        assert!(pos.iter().all(|p| p.0.is_finite() && p.1.is_finite()));
        for i in 0..pos.len() {
            for j in i + 1..pos.len() {
                let d = (pos[i].0 - pos[j].0).hypot(pos[i].1 - pos[j].1);
                assert!(d > MIN_DISTANCE, "{i} and {j} still together");
            }
        }
    }

    #[test]
    fn many_nodes_on_one_spot_are_pushed_apart_through_the_quadtree() {
        let n = EXACT_REPULSION_MAX_NODES + 100;
        let mut pos = vec![(1.0, -2.0); n];
        relax(&mut pos, &[(0, 1, 1.0)]);
        assert!(pos.iter().all(|p| p.0.is_finite() && p.1.is_finite()));
        let mut sorted = pos.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        sorted.dedup();
        assert_eq!(sorted.len(), n);
    }

    #[test]
    fn quadtree_cells_hold_their_nodes() {
        let mut rng = XorShift::new(4);
        let pos: Vec<(f64, f64)> = (0..300)
            .map(|_| (rng.next_f64() * 10.0, rng.next_f64() * 3.0))
            .collect();
        let tree = Quadtree::new(&pos);
        assert_eq!(tree.cells[0].len, pos.len());
        let mut seen = tree.order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..pos.len()).collect::<Vec<_>>());
        for cell in &tree.cells {
            let children: usize = cell
                .children
                .iter()
                .filter(|&&c| c != NO_CELL)
                .map(|&c| tree.cells[c].len)
                .sum();
            let leaf = cell.children.iter().all(|&c| c == NO_CELL);
            assert!(leaf || children == cell.len);
            assert!(!leaf || cell.len <= QUADTREE_LEAF_NODES);
        }
    }

    #[test]
    fn components_stay_together() {
        // Two disjoint rings: gravity keeps them on the same picture, so
        // neither is squeezed to a dot by the gap between them.
        let mut links = ring(20);
        links.extend(ring(20).iter().map(|&(a, b)| (a + 20, b + 20)));
        let t = topology(40, &links);
        let graph = Graph::new(&t);
        let edges: Vec<(usize, usize, f64)> =
            graph.links.iter().map(|&(a, b)| (a, b, 1.0)).collect();
        let pos = layout(40, &edges, 3);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in &pos {
            lo = lo.min(p.0.min(p.1));
            hi = hi.max(p.0.max(p.1));
        }
        let mean_link = edges
            .iter()
            .map(|&(a, b, _)| (pos[a].0 - pos[b].0).hypot(pos[a].1 - pos[b].1))
            .sum::<f64>()
            / edges.len() as f64;
        assert!(
            (hi - lo) / mean_link < 30.0,
            "spread {} links",
            (hi - lo) / mean_link
        );
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
