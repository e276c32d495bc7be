//! Fixtures shared by the graph tests: made-up ids and nodes, small
//! topologies built from index pairs, random overlays from a seed, and
//! checks that an SVG is well formed and drawn inside its canvas. Each
//! part's tests build on these, so the cases read as the topology they
//! describe rather than as setup.

use gossipnet_node::crawl::{CrawledNode, Topology};
use gossipnet_proto::NodeId;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A made-up id: the layout and the figures never look inside one.
pub(super) fn id(i: u64) -> NodeId {
    let mut bytes = [0u8; 32];
    ChaCha8Rng::seed_from_u64(i).fill_bytes(&mut bytes);
    NodeId::from_bytes(bytes)
}

pub(super) fn node(i: u64) -> CrawledNode {
    CrawledNode {
        id: id(i),
        name: Some(format!("node-{i}")),
        seed: false,
        addrs: Vec::new(),
        reachable: true,
        size_estimate: None,
        uptime_s: Some(60),
    }
}

pub(super) fn seed_node(i: u64) -> CrawledNode {
    CrawledNode {
        name: Some(format!("seed-{i}")),
        seed: true,
        ..node(i)
    }
}

/// Nodes 0..n, all answering, node 0 asking, joined by `links`.
pub(super) fn topology(n: u64, links: &[(u64, u64)]) -> Topology {
    Topology {
        from: id(0),
        nodes: (0..n).map(node).collect(),
        links: links.iter().map(|&(a, b)| (id(a), id(b))).collect(),
        seed_links: Vec::new(),
        elapsed_ms: 310,
    }
}

pub(super) fn ring(n: u64) -> Vec<(u64, u64)> {
    (0..n).map(|i| (i, (i + 1) % n)).collect()
}

/// `n` nodes with `links` distinct random links, and `seeds` seeds
/// (ids n..n+seeds) each node keeps one link to.
pub(super) fn random_topology(n: u64, links: usize, seeds: u64, rng_seed: u64) -> Topology {
    let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    while pairs.len() < links {
        let a = rng.gen_range(0..n);
        let b = rng.gen_range(0..n);
        let pair = (a.min(b), a.max(b));
        if a != b && !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    let mut t = topology(n, &pairs);
    t.nodes.extend((n..n + seeds).map(seed_node));
    if seeds > 0 {
        t.seed_links = (0..n).map(|i| (id(i), id(n + i % seeds))).collect();
    }
    t
}

pub(super) fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A small well-formedness check: tags balance under one root, no `<`
/// inside a tag or text, and every `&` starts one of the entities we
/// write.
pub(super) fn check_xml(doc: &str) {
    let doc = doc.trim_end();
    assert!(doc.starts_with("<svg"), "does not start with <svg");
    assert!(doc.ends_with("</svg>"), "does not end with </svg>");
    let check_text = |text: &str| {
        for (i, _) in text.match_indices('&') {
            let entity = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"];
            assert!(
                entity.iter().any(|e| text[i..].starts_with(e)),
                "bare & in {text:?}"
            );
        }
    };
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = doc;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open]);
        let close = open + rest[open..].find('>').expect("unclosed tag");
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "< inside tag {tag:?}");
        check_text(tag);
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            if stack.is_empty() {
                assert!(
                    rest[close + 1..].trim().is_empty(),
                    "content after the root"
                );
            }
        } else {
            let name = tag
                .trim_end_matches('/')
                .split_whitespace()
                .next()
                .expect("tag name");
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
}

/// Every number in a coordinate attribute, checked finite and inside
/// the canvas.
pub(super) fn check_coordinates(svg: &str) {
    let attr = |name: &str| -> Vec<f64> {
        let key = format!(" {name}=\"");
        svg.match_indices(&key)
            .map(|(i, _)| {
                let value = &svg[i + key.len()..];
                let end = value.find('"').expect("quoted");
                value[..end].parse::<f64>().expect("a number")
            })
            .collect()
    };
    let width = attr("width")[0];
    let height = attr("height")[0];
    for name in ["x", "cx", "x1", "x2"] {
        for v in attr(name) {
            assert!(v.is_finite() && (0.0..=width).contains(&v), "{name}={v}");
        }
    }
    for name in ["y", "cy", "y1", "y2"] {
        for v in attr(name) {
            assert!(v.is_finite() && (0.0..=height).contains(&v), "{name}={v}");
        }
    }
}
