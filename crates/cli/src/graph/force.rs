//! The force law of the layout: how strongly two nodes push each other
//! apart. [`super::layout`] applies it to every pair of a small graph,
//! [`super::quadtree`] to far groups of a large one, so both agree.

/// Nearest two nodes are taken to be, in layout units (the ideal link
/// length is 1). Keeps the 1/d repulsion finite when two nodes coincide.
pub(super) const MIN_DISTANCE: f64 = 0.01;

/// The repulsion on `i` from `j`: 1/d along the line from `j` to `i`.
pub(super) fn repulsion(pos: &[(f64, f64)], i: usize, j: usize) -> (f64, f64) {
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
