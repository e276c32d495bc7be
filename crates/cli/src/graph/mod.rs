//! What a crawl found, as numbers and as pictures. [`summarize`] reduces a
//! [`Topology`](gossipnet_node::crawl::Topology) to the figures that say
//! whether the overlay is healthy (one component, degrees close to the
//! active-view size, a small diameter) and [`render_text`] prints them;
//! [`to_dot`] writes the graph for Graphviz and [`to_svg`] draws it on its
//! own, with a force-directed layout done here (Fruchterman and Reingold,
//! "Graph Drawing by Force-directed Placement", Software: Practice and
//! Experience 21(11), 1991) from a seeded generator, so the same crawl and
//! seed always give the same picture.
//!
//! The figures are about the overlay: nodes that answered the crawl and the
//! links between them. Seeds are drawn but are not part of the overlay, so
//! they count in no degree, component or path. Nodes are put in id order
//! before anything is computed, so nothing depends on the order the crawl
//! listed them in. Names come from the network and are escaped wherever
//! they are written.
//!
//! The parts: [`analysis`] turns the crawl into an indexed graph and its
//! figures, which everything else reads; [`text`], [`dot`] and [`svg`]
//! each write one format; [`layout`] places the SVG's nodes and
//! [`quadtree`] keeps that fast for large crawls. Only the functions
//! re-exported here and [`Summary`] are seen outside.

mod analysis;
mod dot;
mod force;
mod layout;
mod quadtree;
mod svg;
#[cfg(test)]
mod test_support;
mod text;

pub use analysis::{summarize, Summary};
pub use dot::to_dot;
pub use svg::to_svg;
pub use text::render_text;

#[cfg(test)]
mod tests {
    use gossipnet_node::crawl::CrawledNode;

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
}
