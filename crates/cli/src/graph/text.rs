//! The [`Summary`] as a few aligned lines for a terminal, one figure per
//! line, as the network commands and the chat print it after a crawl.
//! Ids are shortened and long lists cut, so a broken network's report
//! still fits a screen.

use std::fmt::{self, Write as _};

use gossipnet_proto::NodeId;

use super::Summary;

/// Width of the label column in [`render_text`], wide enough for
/// "unreachable" and two spaces.
const TEXT_LABEL_WIDTH: usize = 13;
/// Unreachable nodes listed by id in [`render_text`]; past this the report
/// gives only the count, so a crawl of a broken network stays readable.
const TEXT_MAX_LISTED: usize = 16;

/// The summary as a few aligned lines, one figure each.
pub fn render_text(s: &Summary) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_text(&mut out, s);
    out
}

fn write_text(out: &mut String, s: &Summary) -> fmt::Result {
    let w = TEXT_LABEL_WIDTH;
    writeln!(out, "{:<w$}{}", "nodes", s.nodes)?;
    writeln!(out, "{:<w$}{}", "seeds", s.seeds)?;
    writeln!(out, "{:<w$}{}", "links", s.links)?;
    writeln!(
        out,
        "{:<w$}min {}  avg {:.1}  max {}",
        "degree", s.degree_min, s.degree_avg, s.degree_max
    )?;
    writeln!(out, "{:<w$}{}", "components", s.components)?;
    match s.diameter {
        Some(d) => writeln!(out, "{:<w$}{d}", "diameter")?,
        None => writeln!(out, "{:<w$}-", "diameter")?,
    }
    write!(out, "{:<w$}{}", "unreachable", s.unreachable.len())?;
    if !s.unreachable.is_empty() {
        let listed: Vec<String> = s
            .unreachable
            .iter()
            .take(TEXT_MAX_LISTED)
            .map(NodeId::short)
            .collect();
        write!(out, "  {}", listed.join(" "))?;
        let more = s.unreachable.len().saturating_sub(TEXT_MAX_LISTED);
        if more > 0 {
            write!(out, " and {more} more")?;
        }
    }
    writeln!(out)?;
    match s.estimate {
        Some(e) => writeln!(out, "{:<w$}{e:.1}", "estimate")?,
        None => writeln!(out, "{:<w$}-", "estimate")?,
    }
    writeln!(out, "{:<w$}{:.2} s", "crawl", s.elapsed_ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use gossipnet_node::crawl::CrawledNode;

    use super::*;
    use crate::graph::summarize;
    use crate::graph::test_support::*;

    #[test]
    fn text_report() {
        let mut t = topology(6, &ring(6));
        t.nodes.push(CrawledNode {
            reachable: false,
            ..node(7)
        });
        t.nodes[0].size_estimate = Some(19.66);
        let text = render_text(&summarize(&t));
        assert!(text.contains("nodes        6\n"), "{text}");
        assert!(
            text.contains("degree       min 2  avg 2.0  max 2\n"),
            "{text}"
        );
        assert!(text.contains("components   1\n"), "{text}");
        assert!(text.contains("diameter     3\n"), "{text}");
        assert!(
            text.contains(&format!("unreachable  1  {}\n", id(7).short())),
            "{text}"
        );
        assert!(text.contains("estimate     19.7\n"), "{text}");
        assert!(text.ends_with("crawl        0.31 s\n"), "{text}");
    }

    #[test]
    fn text_report_cuts_a_long_unreachable_list() {
        let mut t = topology(1, &[]);
        t.nodes.extend((1..=40).map(|i| CrawledNode {
            reachable: false,
            ..node(i)
        }));
        let text = render_text(&summarize(&t));
        assert!(text.contains("unreachable  40  "), "{text}");
        assert!(text.contains(" and 24 more\n"), "{text}");
    }
}
