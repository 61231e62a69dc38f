//! The structure of a graph that the algorithms need: children, path lengths, checks.

use crate::error::{PcError, Result};
use crate::model::Graph;

/// Parents, children and path lengths of a graph's nodes `0..=N`.
pub(crate) struct Topology {
    /// `N`, the output node.
    pub output: usize,
    /// `pa(i)`, in the order the node's function receives them (may repeat).
    pub parents: Vec<Vec<usize>>,
    /// `ch(i)`, distinct, increasing.
    pub children: Vec<Vec<usize>>,
    /// Whether node `i`'s parents are all the clamped input: its prediction never changes
    /// during a relaxation.
    pub fixed: Vec<bool>,
}

impl Topology {
    /// Checks that the graph is usable (built without mistakes, not empty, every node an
    /// ancestor of the output) and derives its structure.
    pub fn of(graph: &Graph) -> Result<Self> {
        graph.check_built()?;
        let n = graph.len();
        if n == 0 {
            return Err(PcError::EmptyModel);
        }
        let parents: Vec<Vec<usize>> = (0..=n).map(|i| graph.parent_indices(i).to_vec()).collect();
        let mut children = vec![Vec::new(); n + 1];
        for (i, ps) in parents.iter().enumerate() {
            for &p in ps {
                if !children[p].contains(&i) {
                    children[p].push(i);
                }
            }
        }
        let mut reaches = vec![false; n + 1];
        reaches[n] = true;
        for i in (0..n).rev() {
            reaches[i] = children[i].iter().any(|&j| reaches[j]);
        }
        if let Some(i) = (1..n).find(|&i| !reaches[i]) {
            return Err(PcError::InvalidGraph(format!(
                "node {i} does not reach the output (node {n}, the last node added): every node \
                 must be an ancestor of the output"
            )));
        }
        let fixed = parents
            .iter()
            .enumerate()
            .map(|(i, ps)| i > 0 && ps.iter().all(|&p| p == 0))
            .collect();
        Ok(Topology {
            output: n,
            parents,
            children,
            fixed,
        })
    }

    /// The hidden nodes `1..N` (their beliefs relax).
    pub fn hidden(&self) -> std::ops::Range<usize> {
        1..self.output
    }

    /// For each node, the distinct lengths (in edges) of its paths to the output, increasing.
    /// `lengths[N] = [0]`.
    pub fn path_lengths(&self) -> Vec<Vec<usize>> {
        let n = self.output;
        let mut lengths: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
        lengths[n] = vec![0];
        for i in (0..n).rev() {
            let mut l: Vec<usize> = self.children[i]
                .iter()
                .flat_map(|&j| lengths[j].iter().map(|k| k + 1))
                .collect();
            l.sort_unstable();
            l.dedup();
            lengths[i] = l;
        }
        lengths
    }
}
