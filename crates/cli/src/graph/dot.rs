//! The topology as a Graphviz graph, for crawls too large or too
//! particular for the built-in picture: Graphviz does the layout. It is
//! written from the same [`Graph`] as the figures, so the two always
//! agree on which nodes and links there are.

use std::fmt::{self, Write as _};

use gossipnet_node::crawl::Topology;

use super::analysis::Graph;
use super::svg::{COLOUR_ME, COLOUR_SEED_LINK};

/// The topology as an undirected Graphviz graph: one line per node and per
/// link. Seeds are boxes, the node the crawl started from is filled, seed
/// links are dashed, nodes that did not answer are left out. Lays out well
/// with `neato` or `sfdp` for large crawls, `dot` for small ones.
pub fn to_dot(t: &Topology) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_dot(&mut out, t, &Graph::new(t));
    out
}

fn write_dot(out: &mut String, t: &Topology, graph: &Graph<'_>) -> fmt::Result {
    writeln!(out, "graph gossipnet {{")?;
    writeln!(out, "  graph [overlap=false];")?;
    writeln!(out, "  node [shape=ellipse, fontsize=10];")?;
    writeln!(out, "  edge [color=\"{COLOUR_SEED_LINK}\"];")?;
    for (i, node) in graph.vertices.iter().enumerate() {
        let short = node.id.short();
        let label = match &node.name {
            Some(name) if !name.trim().is_empty() => format!("{}\\n{short}", dot_escape(name)),
            _ => short,
        };
        let mut attrs = format!("label=\"{label}\"");
        if graph.is_seed(i) {
            attrs.push_str(", shape=box");
        }
        if node.id == t.from {
            attrs.push_str(&format!(", style=filled, fillcolor=\"{COLOUR_ME}\""));
        }
        writeln!(out, "  \"{}\" [{attrs}];", node.id)?;
    }
    for &(a, b) in &graph.links {
        writeln!(
            out,
            "  \"{}\" -- \"{}\";",
            graph.vertices[a].id, graph.vertices[b].id
        )?;
    }
    for &(a, b) in &graph.seed_links {
        let (a, b) = (graph.vertices[a].id, graph.vertices[b].id);
        writeln!(out, "  \"{a}\" -- \"{b}\" [style=dashed];")?;
    }
    writeln!(out, "}}")
}

/// Text for inside a quoted DOT string. Backslashes are doubled so a name
/// cannot smuggle in Graphviz escapes; control characters become spaces so
/// every node stays on one line.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_support::*;

    #[test]
    fn dot_has_one_line_per_link() {
        let t = random_topology(30, 70, 2, 3);
        let dot = to_dot(&t);
        assert!(dot.starts_with("graph gossipnet {\n"));
        assert!(dot.trim_end().ends_with('}'));
        let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -- ")).collect();
        assert_eq!(edges.iter().filter(|l| !l.contains("dashed")).count(), 70);
        assert_eq!(
            edges.iter().filter(|l| l.contains("style=dashed")).count(),
            30
        );
        assert_eq!(count(&dot, "shape=box"), 2);
        assert_eq!(count(&dot, "style=filled"), 1);
        assert!(dot.contains(&format!("label=\"node-5\\n{}\"", id(5).short())));
    }

    #[test]
    fn dot_escapes_names() {
        let mut t = topology(1, &[]);
        t.nodes[0].name = Some("a\"b\\c\nd".into());
        let dot = to_dot(&t);
        assert!(dot.contains("label=\"a\\\"b\\\\c d\\n"), "{dot}");
        assert_eq!(dot.lines().count(), 6);
    }
}
