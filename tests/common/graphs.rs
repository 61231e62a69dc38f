//! The test graphs that `tests/graph.rs` and `tests/graph_golden.rs` share (the golden
//! files' five and the engine tests' extra ones), built node by node in the numbering
//! `scripts/gen_golden_graph.py` uses. Included with `#[path = "common/graphs.rs"] mod
//! graphs;`.
#![allow(dead_code)]

use tch::{nn, nn::Module, Tensor};
use tch2pc::{Graph, NodeId};

/// The test graphs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Net {
    /// Residual MLP with explicit merge nodes: x → h1 → h2; s = h1 + h2; h3 = tanh(lin(s));
    /// s2 = s + h3; out = lin(s2).
    Res,
    /// A node read by three children: h → a, b, c; out = lin(cat(a, b, c)).
    Fan,
    /// A two-parent concatenation that also reads the input: h1 = tanh(lin(x));
    /// h2 = tanh(lin(cat(h1, x))); out = lin(cat(h2, h1)). Cross-entropy.
    Concat,
    /// A small residual CNN: c1 = relu(conv(x)); c2 = relu(conv(c1)); c3 = conv(c2);
    /// s = relu(c1 + c3); out = lin(flatten(s)). Cross-entropy.
    ResCnn,
    /// A shared weight: h2 = tanh(sh(h1)), h3 = tanh(sh(h2)) with one Linear `sh`;
    /// out = lin(h3 + h1).
    Tied,
    /// `Tied` with a separate copy `sh2` of the shared Linear for h3 (same values).
    Untied,
    /// A chain built as a `Graph`: lin, tanh, lin+tanh, sigmoid, lin.
    Chain,
    /// Two parallel branches of equal length merged: h1 → a1 → a2, h1 → b1 → b2;
    /// m = a2 + b2; out = lin(m). Every node has one path length to the output.
    Diamond,
    /// A repeated parent and a parameter-free node of the input: z = sin(x) (no gradient);
    /// h = tanh(lin(z)); p = h ⊙ h (parents [h, h]); q = tanh(lin(cat(p, z)));
    /// out = lin(cat(q, p)).
    Repeat,
}

pub fn tanh_linear(p: nn::Path, i: i64, o: i64) -> nn::Sequential {
    nn::seq()
        .add(nn::linear(p, i, o, Default::default()))
        .add_fn(|t| t.tanh())
}

pub fn conv(p: nn::Path, i: i64, o: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    nn::conv2d(p, i, o, 3, cfg)
}

pub fn sum2(xs: &[Tensor]) -> Tensor {
    &xs[0] + &xs[1]
}

/// Adds the nodes of `net` to `g` (whose variables live under `root`; a graph with only
/// its input). Returns, per node with variables, the variable prefix it uses and its id
/// (`Tied` lists `sh` twice: both nodes use it).
pub fn add_nodes(g: &mut Graph, root: &nn::Path, net: Net) -> Vec<(&'static str, NodeId)> {
    let x0 = g.input();
    let mut own: Vec<(&'static str, NodeId)> = Vec::new();
    match net {
        Net::Res => {
            let h1 = g.add(x0, tanh_linear(root / "h1", 5, 6));
            let h2 = g.add(h1, tanh_linear(root / "h2", 6, 6));
            let s = g.add_fn(&[h1, h2], sum2);
            let h3 = g.add(s, tanh_linear(root / "h3", 6, 6));
            let s2 = g.add_fn(&[s, h3], sum2);
            let out = g.add(s2, nn::linear(root / "out", 6, 3, Default::default()));
            own.extend([("h1", h1), ("h2", h2), ("h3", h3), ("out", out)]);
        }
        Net::Fan => {
            let h = g.add(x0, tanh_linear(root / "h", 5, 6));
            let a = g.add(h, tanh_linear(root / "a", 6, 4));
            let b = g.add(
                h,
                nn::seq()
                    .add(nn::linear(root / "b", 6, 4, Default::default()))
                    .add_fn(|t| t.sigmoid()),
            );
            let c = g.add(h, nn::linear(root / "c", 6, 4, Default::default()));
            let lin = nn::linear(root / "out", 12, 3, Default::default());
            let out = g.add_fn(&[a, b, c], move |xs: &[Tensor]| {
                lin.forward(&Tensor::cat(xs, 1))
            });
            own.extend([("h", h), ("a", a), ("b", b), ("c", c), ("out", out)]);
        }
        Net::Concat => {
            let h1 = g.add(x0, tanh_linear(root / "h1", 4, 6));
            let lin2 = nn::linear(root / "h2", 10, 5, Default::default());
            let h2 = g.add_fn(&[h1, x0], move |xs: &[Tensor]| {
                lin2.forward(&Tensor::cat(xs, 1)).tanh()
            });
            let lin3 = nn::linear(root / "out", 11, 3, Default::default());
            let out = g.add_fn(&[h2, h1], move |xs: &[Tensor]| {
                lin3.forward(&Tensor::cat(xs, 1))
            });
            own.extend([("h1", h1), ("h2", h2), ("out", out)]);
        }
        Net::ResCnn => {
            let c1 = g.add(
                x0,
                nn::seq().add(conv(root / "c1", 1, 2)).add_fn(|t| t.relu()),
            );
            let c2 = g.add(
                c1,
                nn::seq().add(conv(root / "c2", 2, 2)).add_fn(|t| t.relu()),
            );
            let c3 = g.add(c2, conv(root / "c3", 2, 2));
            let s = g.add_fn(&[c1, c3], |xs: &[Tensor]| (&xs[0] + &xs[1]).relu());
            let out = g.add(
                s,
                nn::seq().add_fn(|t| t.flatten(1, -1)).add(nn::linear(
                    root / "out",
                    50,
                    3,
                    Default::default(),
                )),
            );
            own.extend([("c1", c1), ("c2", c2), ("c3", c3), ("out", out)]);
        }
        Net::Tied | Net::Untied => {
            let h1 = g.add(x0, tanh_linear(root / "h1", 5, 6));
            let sh = nn::linear(root / "sh", 6, 6, Default::default());
            let second = if net == Net::Tied {
                nn::Linear {
                    ws: sh.ws.shallow_clone(),
                    bs: sh.bs.as_ref().map(|b| b.shallow_clone()),
                }
            } else {
                nn::linear(root / "sh2", 6, 6, Default::default())
            };
            let h2 = g.add(h1, nn::seq().add(sh).add_fn(|t| t.tanh()));
            let h3 = g.add(h2, nn::seq().add(second).add_fn(|t| t.tanh()));
            let lin = nn::linear(root / "out", 6, 3, Default::default());
            let out = g.add_fn(&[h3, h1], move |xs: &[Tensor]| {
                lin.forward(&(&xs[0] + &xs[1]))
            });
            let second_name = if net == Net::Tied { "sh" } else { "sh2" };
            own.extend([("h1", h1), ("sh", h2), (second_name, h3), ("out", out)]);
        }
        Net::Chain => {
            let l1 = g.add(x0, nn::linear(root / "l1", 5, 7, Default::default()));
            let t1 = g.add_fn(&[l1], |xs: &[Tensor]| xs[0].tanh());
            let l2 = g.add(t1, tanh_linear(root / "l2", 7, 6));
            let s = g.add(l2, nn::func(|t| t.sigmoid()));
            let out = g.add(s, nn::linear(root / "out", 6, 3, Default::default()));
            own.extend([("l1", l1), ("l2", l2), ("out", out)]);
        }
        Net::Diamond => {
            let h1 = g.add(x0, tanh_linear(root / "h1", 5, 6));
            let a1 = g.add(h1, tanh_linear(root / "a1", 6, 5));
            let a2 = g.add(a1, tanh_linear(root / "a2", 5, 4));
            let b1 = g.add(
                h1,
                nn::seq()
                    .add(nn::linear(root / "b1", 6, 5, Default::default()))
                    .add_fn(|t| t.sigmoid()),
            );
            let b2 = g.add(b1, tanh_linear(root / "b2", 5, 4));
            let m = g.add_fn(&[a2, b2], sum2);
            let out = g.add(m, nn::linear(root / "out", 4, 3, Default::default()));
            own.extend([
                ("h1", h1),
                ("a1", a1),
                ("a2", a2),
                ("b1", b1),
                ("b2", b2),
                ("out", out),
            ]);
        }
        Net::Repeat => {
            let z = g.add_fn(&[x0], |xs: &[Tensor]| xs[0].sin());
            let h = g.add(z, tanh_linear(root / "h", 5, 6));
            let p = g.add_fn(&[h, h], |xs: &[Tensor]| &xs[0] * &xs[1]);
            let lq = nn::linear(root / "q", 11, 6, Default::default());
            let q = g.add_fn(&[p, z], move |xs: &[Tensor]| {
                lq.forward(&Tensor::cat(xs, 1)).tanh()
            });
            let lo = nn::linear(root / "out", 12, 3, Default::default());
            let out = g.add_fn(&[q, p], move |xs: &[Tensor]| {
                lo.forward(&Tensor::cat(xs, 1))
            });
            own.extend([("h", h), ("q", q), ("out", out)]);
        }
    }
    own
}
