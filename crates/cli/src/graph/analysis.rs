//! The overlay as numbers. [`Graph`] puts a [`Topology`] into index form
//! (overlay nodes, then seeds, each in id order, links deduplicated), which
//! every figure and every picture is drawn from; [`summarize`] reduces it to
//! the [`Summary`] that says whether the overlay is healthy: one component,
//! degrees close to the active-view size, a small diameter.

use std::collections::VecDeque;

use gossipnet_node::crawl::{CrawledNode, Topology};
use gossipnet_proto::NodeId;
use serde::{Serialize, Serializer};

/// The overlay as a crawl saw it, in numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Nodes that answered, seeds not counted.
    pub nodes: usize,
    /// Seeds that answered.
    pub seeds: usize,
    /// Links between two counted nodes.
    pub links: usize,
    /// Fewest links of one node (0 when there are no nodes).
    pub degree_min: usize,
    /// Links per node on average.
    pub degree_avg: f64,
    /// Most links of one node.
    pub degree_max: usize,
    /// Connected components; 1 is a healthy overlay, 0 an empty one.
    pub components: usize,
    /// Longest shortest path, in hops, within the largest component; `None`
    /// when there are no nodes.
    pub diameter: Option<usize>,
    /// Nodes that were heard of but did not answer, in id order.
    #[serde(serialize_with = "ids_as_text")]
    pub unreachable: Vec<NodeId>,
    /// Mean of the network-size estimates the answering nodes gave, if any.
    pub estimate: Option<f64>,
    /// How long the crawl took.
    pub elapsed_ms: u64,
}

/// Ids in their text form, so JSON output can be read and pasted back.
fn ids_as_text<S: Serializer>(ids: &[NodeId], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(ids.iter().map(|id| id.to_string()))
}

/// Works out the figures of [`Summary`] for the overlay of `t`.
pub fn summarize(t: &Topology) -> Summary {
    summary_of(t, &Graph::new(t))
}

pub(super) fn summary_of(t: &Topology, graph: &Graph<'_>) -> Summary {
    let n = graph.overlay;
    let degrees = graph.adj.iter().map(Vec::len);
    let (labels, sizes) = components(&graph.adj);
    // The largest component, the first of equal ones so the choice is stable.
    let largest = sizes
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.cmp(b).then(j.cmp(i)))
        .map(|(label, _)| label);
    let diameter = largest.map(|label| {
        let members: Vec<usize> = (0..n).filter(|&i| labels[i] == label).collect();
        diameter(&graph.adj, &members)
    });

    let mut unreachable: Vec<NodeId> = t
        .nodes
        .iter()
        .filter(|node| !node.reachable)
        .map(|node| node.id)
        .collect();
    unreachable.sort_unstable();
    unreachable.dedup();

    let estimates: Vec<f64> = graph
        .vertices
        .iter()
        .filter_map(|node| node.size_estimate)
        .filter(|e| e.is_finite())
        .collect();
    let estimate =
        (!estimates.is_empty()).then(|| estimates.iter().sum::<f64>() / estimates.len() as f64);

    Summary {
        nodes: n,
        seeds: graph.vertices.len() - n,
        links: graph.links.len(),
        degree_min: degrees.clone().min().unwrap_or(0),
        degree_avg: if n == 0 {
            0.0
        } else {
            2.0 * graph.links.len() as f64 / n as f64
        },
        degree_max: degrees.max().unwrap_or(0),
        components: sizes.len(),
        diameter,
        unreachable,
        estimate,
        elapsed_ms: t.elapsed_ms,
    }
}

/// The drawn part of a topology, with nodes as indices: overlay nodes
/// first, then seeds, each group in id order. Everything else (BFS, the
/// layout, the output) walks these vectors, never a map, so results do not
/// depend on hashing or on the order of the crawl's lists.
#[derive(Debug)]
pub(super) struct Graph<'a> {
    /// Reachable non-seed nodes (`..overlay`), then reachable seeds.
    pub(super) vertices: Vec<&'a CrawledNode>,
    /// How many of `vertices` are overlay nodes.
    pub(super) overlay: usize,
    /// Neighbours of each overlay node through `links`.
    pub(super) adj: Vec<Vec<usize>>,
    /// Overlay links, each once, smaller index first, sorted.
    pub(super) links: Vec<(usize, usize)>,
    /// Seed links whose two ends are drawn, each once, sorted.
    pub(super) seed_links: Vec<(usize, usize)>,
}

impl<'a> Graph<'a> {
    pub(super) fn new(t: &'a Topology) -> Self {
        let sorted = |seed: bool| {
            let mut v: Vec<&CrawledNode> = t
                .nodes
                .iter()
                .filter(|n| n.reachable && n.seed == seed)
                .collect();
            // Stable, so of two entries for one id the first listed is kept.
            v.sort_by_key(|n| n.id);
            v.dedup_by_key(|n| n.id);
            v
        };
        let mut vertices = sorted(false);
        let overlay = vertices.len();
        // An id listed both as a node and as a seed is drawn once, as a node.
        let seeds: Vec<&CrawledNode> = sorted(true)
            .into_iter()
            .filter(|s| vertices.binary_search_by_key(&s.id, |n| n.id).is_err())
            .collect();
        vertices.extend(seeds);

        let mut graph = Graph {
            vertices,
            overlay,
            adj: vec![Vec::new(); overlay],
            links: Vec::new(),
            seed_links: Vec::new(),
        };
        // The crawl promises links between answering nodes only, each once;
        // filtering and deduplicating anyway keeps every count consistent.
        let overlay_index = |g: &Graph<'_>, id: &NodeId| g.index(id).filter(|&i| i < overlay);
        let mut links: Vec<(usize, usize)> = t
            .links
            .iter()
            .filter_map(|(a, b)| ordered(overlay_index(&graph, a)?, overlay_index(&graph, b)?))
            .collect();
        links.sort_unstable();
        links.dedup();
        let mut seed_links: Vec<(usize, usize)> = t
            .seed_links
            .iter()
            .filter_map(|(a, b)| ordered(graph.index(a)?, graph.index(b)?))
            .collect();
        seed_links.sort_unstable();
        seed_links.dedup();
        for &(a, b) in &links {
            graph.adj[a].push(b);
            graph.adj[b].push(a);
        }
        graph.links = links;
        graph.seed_links = seed_links;
        graph
    }

    /// Where `id` is among the drawn nodes, if it is drawn.
    fn index(&self, id: &NodeId) -> Option<usize> {
        let (nodes, seeds) = self.vertices.split_at(self.overlay);
        match nodes.binary_search_by_key(id, |n| n.id) {
            Ok(i) => Some(i),
            Err(_) => seeds
                .binary_search_by_key(id, |n| n.id)
                .ok()
                .map(|i| self.overlay + i),
        }
    }

    pub(super) fn is_seed(&self, i: usize) -> bool {
        i >= self.overlay
    }
}

/// The pair smaller first, or `None` for a loop.
fn ordered(a: usize, b: usize) -> Option<(usize, usize)> {
    match a.cmp(&b) {
        std::cmp::Ordering::Less => Some((a, b)),
        std::cmp::Ordering::Greater => Some((b, a)),
        std::cmp::Ordering::Equal => None,
    }
}

/// The component of each node (numbered in order of their smallest node)
/// and the size of each component.
fn components(adj: &[Vec<usize>]) -> (Vec<usize>, Vec<usize>) {
    let mut label = vec![usize::MAX; adj.len()];
    let mut sizes = Vec::new();
    let mut queue = VecDeque::new();
    for start in 0..adj.len() {
        if label[start] != usize::MAX {
            continue;
        }
        let current = sizes.len();
        let mut size = 0;
        label[start] = current;
        queue.push_back(start);
        while let Some(u) = queue.pop_front() {
            size += 1;
            for &v in &adj[u] {
                if label[v] == usize::MAX {
                    label[v] = current;
                    queue.push_back(v);
                }
            }
        }
        sizes.push(size);
    }
    (label, sizes)
}

/// The longest shortest path between two of `members`, which must be one
/// component: a BFS from each, O(n·(n+m)), a second or so for a few
/// thousand nodes.
fn diameter(adj: &[Vec<usize>], members: &[usize]) -> usize {
    let mut dist = vec![usize::MAX; adj.len()];
    let mut queue = VecDeque::new();
    let mut longest = 0;
    for &source in members {
        for &m in members {
            dist[m] = usize::MAX;
        }
        dist[source] = 0;
        queue.push_back(source);
        while let Some(u) = queue.pop_front() {
            longest = longest.max(dist[u]);
            for &v in &adj[u] {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    queue.push_back(v);
                }
            }
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_support::*;

    #[test]
    fn ring_of_six() {
        let s = summarize(&topology(6, &ring(6)));
        assert_eq!((s.nodes, s.links, s.components), (6, 6, 1));
        assert_eq!((s.degree_min, s.degree_max), (2, 2));
        assert!((s.degree_avg - 2.0).abs() < 1e-9);
        assert_eq!(s.diameter, Some(3));
        assert_eq!(s.seeds, 0);
        assert!(s.unreachable.is_empty());
    }

    #[test]
    fn two_triangles_are_two_components() {
        let s = summarize(&topology(
            6,
            &[(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)],
        ));
        assert_eq!((s.nodes, s.links, s.components), (6, 6, 2));
        assert_eq!(s.diameter, Some(1));
    }

    #[test]
    fn diameter_is_of_the_largest_component() {
        // A path of four (diameter 3) and a lone pair.
        let s = summarize(&topology(6, &[(0, 1), (1, 2), (2, 3), (4, 5)]));
        assert_eq!(s.components, 2);
        assert_eq!(s.diameter, Some(3));
    }

    #[test]
    fn star() {
        let s = summarize(&topology(6, &[(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]));
        assert_eq!((s.degree_min, s.degree_max), (1, 5));
        assert!((s.degree_avg - 10.0 / 6.0).abs() < 1e-9);
        assert_eq!((s.components, s.diameter), (1, Some(2)));
    }

    #[test]
    fn estimate_is_the_mean_of_the_answers() {
        let mut t = topology(4, &ring(4));
        assert_eq!(summarize(&t).estimate, None);
        t.nodes[0].size_estimate = Some(10.0);
        t.nodes[1].size_estimate = Some(20.0);
        t.nodes[2].size_estimate = Some(f64::NAN);
        t.nodes.push(CrawledNode {
            reachable: false,
            size_estimate: Some(1000.0),
            ..node(9)
        });
        assert_eq!(summarize(&t).estimate, Some(15.0));
    }

    #[test]
    fn summary_json_has_ids_as_text() {
        let mut t = topology(2, &[(0, 1)]);
        t.nodes.push(CrawledNode {
            reachable: false,
            ..node(3)
        });
        let json = serde_json::to_value(summarize(&t)).expect("serializes");
        assert_eq!(json["unreachable"][0], id(3).to_string());
        assert_eq!(json["links"], 1);
    }
}
