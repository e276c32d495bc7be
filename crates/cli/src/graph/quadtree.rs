//! The Barnes-Hut approximation of the layout's repulsion (Barnes and Hut,
//! "A hierarchical O(N log N) force-calculation algorithm", Nature 324,
//! 1986): positions are put in a quadtree, and a group of nodes far enough
//! away repels as one body at its centre of mass. [`super::layout`] uses it
//! for crawls too large to sum every pair each step.

use super::force::repulsion;

/// A quadtree cell this many times smaller than its distance repels as one
/// body. Below 1/sqrt(2), so a node is never approximated by a cell that
/// holds it; the usual choice for layouts, error of a few per cent.
const BARNES_HUT_THETA: f64 = 0.7;
/// Nodes a quadtree cell holds before it is split.
const QUADTREE_LEAF_NODES: usize = 4;
/// Deepest split: nodes this close together (a 2^-32 part of the layout's
/// width) stay in one leaf and repel pairwise, however many there are.
const QUADTREE_MAX_DEPTH: usize = 32;

/// Barnes–Hut: nearby nodes one by one, distant cells of the quadtree as
/// one body each. The tree is built and walked in a fixed order, so the
/// sums, and the picture, repeat exactly.
pub(super) fn repel(pos: &[(f64, f64)], disp: &mut [(f64, f64)]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn quadtree_cells_hold_their_nodes() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let pos: Vec<(f64, f64)> = (0..300)
            .map(|_| (rng.gen::<f64>() * 10.0, rng.gen::<f64>() * 3.0))
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
}
