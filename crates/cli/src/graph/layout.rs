//! Where the picture puts each node: a force-directed layout
//! (Fruchterman and Reingold, "Graph Drawing by Force-directed Placement",
//! Software: Practice and Experience 21(11), 1991) from seeded random
//! starting positions, then [`fit`] into the pixel [`Frame`] the SVG keeps
//! for the drawing. Links pull, every pair of nodes pushes apart, and a
//! weak pull to the centre keeps components that share no link on one
//! picture. Above a few hundred nodes the push is summed through a
//! quadtree ([`super::quadtree`]). Every loop runs in index order, so a
//! seed gives the same positions on every run and platform.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::analysis::Graph;
use super::force::repulsion;
use super::quadtree;

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
/// Up to this many nodes every pair repels exactly (O(n^2) per step, a
/// few milliseconds at this size). Above it, distant groups of nodes repel
/// as one body at their centre of mass, found through a quadtree
/// ([`quadtree::repel`]), so a crawl of 3000 nodes still draws in a few
/// seconds. Simply ignoring distant pairs, as the paper's grid variant
/// does, lets the links of a large overlay crush it into a blob.
pub(super) const EXACT_REPULSION_MAX_NODES: usize = 500;
/// Step size of the first iteration as a fraction of the layout's width,
/// the paper's W/10; it falls linearly to [`FINAL_TEMPERATURE`].
const START_TEMPERATURE: f64 = 0.1;
/// Step size at the end, in layout units: small enough to settle, large
/// enough that the last steps still untangle a little.
const FINAL_TEMPERATURE: f64 = 0.01;

/// Positions for the nodes of `graph`, in its index order, in layout
/// units. Seed links pull too, only more weakly than overlay links.
pub(super) fn place(graph: &Graph<'_>, seed: u64) -> Vec<(f64, f64)> {
    let mut edges: Vec<(usize, usize, f64)> =
        graph.links.iter().map(|&(a, b)| (a, b, 1.0)).collect();
    edges.extend(
        graph
            .seed_links
            .iter()
            .map(|&(a, b)| (a, b, SEED_LINK_WEIGHT)),
    );
    layout(graph.vertices.len(), &edges, seed)
}

/// Positions for `n` nodes joined by weighted `edges`, in layout units
/// where the ideal link length is 1, centred near the origin.
fn layout(n: usize, edges: &[(usize, usize, f64)], seed: u64) -> Vec<(f64, f64)> {
    // ChaCha8 gives the same stream for a seed on every platform, so a
    // seed stays a name for one picture.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let spread = (n as f64).sqrt().max(1.0);
    let mut pos: Vec<(f64, f64)> = (0..n)
        .map(|_| {
            (
                (rng.gen::<f64>() - 0.5) * spread,
                (rng.gen::<f64>() - 0.5) * spread,
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
            quadtree::repel(pos, &mut disp);
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

/// The rectangle, in pixels, node centres are placed in.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) left: f64,
    pub(super) top: f64,
    pub(super) right: f64,
    pub(super) bottom: f64,
}

/// Scales and centres layout positions into `frame`, keeping the aspect
/// ratio. Positions that are not finite go to the centre; every result is
/// finite and inside the frame.
pub(super) fn fit(pos: &[(f64, f64)], frame: &Frame) -> Vec<(f64, f64)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::force::MIN_DISTANCE;
    use crate::graph::test_support::*;

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
}
