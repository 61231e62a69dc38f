//! PC on computation graphs (`Graph`) against the golden files made by
//! `scripts/gen_golden_graph.py` (float64, the reference `scripts/pcref_graph.py`), every
//! algorithm, to 1e-9 relative. The graphs are described in tests/golden/README.md
//! ("Graph cases"); the node numbering here must match the generator's.

mod common;

use common::{load_params, rel_err, Golden, GOLDEN_TOL};
use tch::{nn, nn::Module, Device, Kind, Tensor};
use tch2pc::{loss, pc_infer, ErrType, Graph, PcInfer};

/// The graphs of the golden files.
#[derive(Clone, Copy, Debug)]
enum Net {
    Res,
    Fan,
    Concat,
    ResCnn,
    Tied,
}

fn tanh_linear(p: nn::Path, i: i64, o: i64) -> nn::Sequential {
    nn::seq()
        .add(nn::linear(p, i, o, Default::default()))
        .add_fn(|t| t.tanh())
}

fn conv(p: nn::Path, i: i64, o: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    nn::conv2d(p, i, o, 3, cfg)
}

/// Builds graph `net` on `vs` (parameters named as the golden files' `param.*` keys) and
/// checks that the nodes got the generator's numbering.
fn build(vs: &nn::VarStore, net: Net) -> Graph {
    let root = vs.root();
    let mut g = Graph::new(vs);
    let x0 = g.input();
    assert_eq!(x0.index(), 0);
    let ids: Vec<usize> = match net {
        Net::Res => {
            // x -> h1 -> h2; s = h1 + h2; h3 = tanh(lin(s)); s2 = s + h3; out = lin(s2).
            let h1 = g.add(x0, tanh_linear(&root / "h1", 5, 6));
            let h2 = g.add(h1, tanh_linear(&root / "h2", 6, 6));
            let s = g.add_fn(&[h1, h2], |xs: &[Tensor]| &xs[0] + &xs[1]);
            let h3 = g.add(s, tanh_linear(&root / "h3", 6, 6));
            let s2 = g.add_fn(&[s, h3], |xs: &[Tensor]| &xs[0] + &xs[1]);
            let out = g.add(s2, nn::linear(&root / "out", 6, 3, Default::default()));
            [h1, h2, s, h3, s2, out].iter().map(|n| n.index()).collect()
        }
        Net::Fan => {
            // h read by three nodes a, b, c; out = lin(cat(a, b, c)).
            let h = g.add(x0, tanh_linear(&root / "h", 5, 6));
            let a = g.add(h, tanh_linear(&root / "a", 6, 4));
            let b = g.add(
                h,
                nn::seq()
                    .add(nn::linear(&root / "b", 6, 4, Default::default()))
                    .add_fn(|t| t.sigmoid()),
            );
            let c = g.add(h, nn::linear(&root / "c", 6, 4, Default::default()));
            let lin = nn::linear(&root / "out", 12, 3, Default::default());
            let out = g.add_fn(&[a, b, c], move |xs: &[Tensor]| {
                lin.forward(&Tensor::cat(xs, 1))
            });
            [h, a, b, c, out].iter().map(|n| n.index()).collect()
        }
        Net::Concat => {
            // h1 = tanh(lin(x)); h2 = tanh(lin(cat(h1, x))); out = lin(cat(h2, h1)).
            let h1 = g.add(x0, tanh_linear(&root / "h1", 4, 6));
            let lin2 = nn::linear(&root / "h2", 10, 5, Default::default());
            let h2 = g.add_fn(&[h1, x0], move |xs: &[Tensor]| {
                lin2.forward(&Tensor::cat(xs, 1)).tanh()
            });
            let lin3 = nn::linear(&root / "out", 11, 3, Default::default());
            let out = g.add_fn(&[h2, h1], move |xs: &[Tensor]| {
                lin3.forward(&Tensor::cat(xs, 1))
            });
            [h1, h2, out].iter().map(|n| n.index()).collect()
        }
        Net::ResCnn => {
            // c1 = relu(conv(x)); c2 = relu(conv(c1)); c3 = conv(c2); s = relu(c1 + c3);
            // out = lin(flatten(s)).
            let c1 = g.add(
                x0,
                nn::seq().add(conv(&root / "c1", 1, 2)).add_fn(|t| t.relu()),
            );
            let c2 = g.add(
                c1,
                nn::seq().add(conv(&root / "c2", 2, 2)).add_fn(|t| t.relu()),
            );
            let c3 = g.add(c2, conv(&root / "c3", 2, 2));
            let s = g.add_fn(&[c1, c3], |xs: &[Tensor]| (&xs[0] + &xs[1]).relu());
            let out = g.add(
                s,
                nn::seq().add_fn(|t| t.flatten(1, -1)).add(nn::linear(
                    &root / "out",
                    50,
                    3,
                    Default::default(),
                )),
            );
            [c1, c2, c3, s, out].iter().map(|n| n.index()).collect()
        }
        Net::Tied => {
            // h2 = tanh(sh(h1)), h3 = tanh(sh(h2)) with the same Linear `sh`;
            // out = lin(h3 + h1).
            let h1 = g.add(x0, tanh_linear(&root / "h1", 5, 6));
            let sh = nn::linear(&root / "sh", 6, 6, Default::default());
            let sh_again = nn::Linear {
                ws: sh.ws.shallow_clone(),
                bs: sh.bs.as_ref().map(|b| b.shallow_clone()),
            };
            let h2 = g.add(h1, nn::seq().add(sh).add_fn(|t| t.tanh()));
            let h3 = g.add(h2, nn::seq().add(sh_again).add_fn(|t| t.tanh()));
            let lin = nn::linear(&root / "out", 6, 3, Default::default());
            let out = g.add_fn(&[h3, h1], move |xs: &[Tensor]| {
                lin.forward(&(&xs[0] + &xs[1]))
            });
            [h1, h2, h3, out].iter().map(|n| n.index()).collect()
        }
    };
    let n = ids.len();
    assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "{net:?}: node numbering");
    assert_eq!(g.len(), n, "{net:?}: g.len()");
    g
}

/// The loss of graph `net`: MSE against float targets, or cross-entropy against labels.
fn loss_of(net: Net) -> fn(&Tensor, &Tensor) -> Tensor {
    match net {
        Net::Res | Net::Fan | Net::Tied => loss::mse,
        Net::Concat | Net::ResCnn => loss::cross_entropy,
    }
}

/// Compares `got` with the golden `want`: relative to max|want| (at most `GOLDEN_TOL`), or,
/// where `want` is exactly zero (errors that cannot have reached a node in so few
/// iterations), exactly zero. Returns the relative difference.
fn compare(case: &str, what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert!(got.defined(), "{case}: {what} is undefined");
    if want.abs().max().double_value(&[]) == 0.0 {
        let m = got.abs().max().double_value(&[]);
        assert_eq!(
            m, 0.0,
            "{case}: {what} should be exactly 0, max |.| is {m:e}"
        );
        return 0.0;
    }
    let e = rel_err(got, want);
    assert!(e <= GOLDEN_TOL, "{case}: {what} differs by {e:e}");
    e
}

/// Runs golden case `case` (graph `net`, algorithm `err`) and compares every output and
/// parameter update. With `builder`, uses `PcInfer` (and the file's `vinit`, if any)
/// instead of `pc_infer`.
fn check(case: &str, net: Net, err: ErrType, builder: bool) {
    let g = Golden::load(case);
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    let graph = build(&vs, net);
    load_params(&vs, &g);
    let nodes = g.scalar("N") as usize;
    assert_eq!(graph.len(), nodes, "{case}: number of nodes");
    let names: Vec<String> = vs.variables().into_keys().collect();
    let params = g.0.keys().filter(|k| k.starts_with("param.")).count();
    assert_eq!(names.len(), params, "{case}: variables {names:?}");

    let x = g.get("x");
    let y = g.get("y");
    let (eta, n) = (g.scalar("eta"), g.scalar("n") as usize);
    let lf = loss_of(net);
    let vinit: Vec<Tensor> = (0..=nodes)
        .map(|i| format!("vinit.{i}"))
        .filter(|k| g.has(k))
        .map(|k| g.get(&k).shallow_clone())
        .collect();
    assert!(vinit.is_empty() || vinit.len() == nodes + 1);
    let out = if builder {
        let mut cfg = PcInfer::new(err).eta(eta).n(n);
        if !vinit.is_empty() {
            cfg = cfg.vinit(&vinit);
        }
        cfg.run(&graph, &lf, x, y)
    } else {
        assert!(vinit.is_empty());
        pc_infer(&graph, &lf, x, y, err, eta, n, None)
    }
    .unwrap_or_else(|e| panic!("{case}: {e}"));

    let mut worst = 0.0f64;
    worst = worst.max(compare(case, "loss", &out.loss, g.get("loss")));
    worst = worst.max(compare(case, "dldy", &out.dldy, g.get("dldy")));
    assert_eq!(out.vhat.len(), nodes + 1, "{case}: vhat.len()");
    assert_eq!(out.v.len(), nodes + 1, "{case}: v.len()");
    assert_eq!(out.epsilon.len(), nodes + 1, "{case}: epsilon.len()");
    assert!(
        out.vhat[0].equal(x) && out.v[0].equal(x),
        "{case}: node 0 is not x"
    );
    assert_eq!(out.epsilon[0].size(), x.size());
    assert_eq!(out.epsilon[0].abs().max().double_value(&[]), 0.0);
    for i in 1..=nodes {
        for (key, got) in [
            ("vhat", &out.vhat[i]),
            ("v", &out.v[i]),
            ("eps", &out.epsilon[i]),
        ] {
            let key = format!("{key}.{i}");
            worst = worst.max(compare(case, &key, got, g.get(&key)));
        }
    }
    for (name, var) in vs.variables() {
        let key = format!("grad.{name}");
        worst = worst.max(compare(case, &key, &var.grad(), g.get(&key)));
    }
    eprintln!("{case}: worst relative difference {worst:.2e}");
}

macro_rules! golden {
    ($($name:ident: $net:ident, $err:ident, $builder:literal;)*) => {$(
        #[test]
        fn $name() {
            check(concat!("graph_", stringify!($name)), Net::$net, ErrType::$err, $builder);
        }
    )*};
}

golden! {
    res_strict: Res, Strict, false;
    res_fixedpred: Res, FixedPred, false;
    res_exact: Res, Exact, false;
    fan_strict: Fan, Strict, false;
    fan_fixedpred: Fan, FixedPred, false;
    fan_exact: Fan, Exact, false;
    concat_strict: Concat, Strict, false;
    concat_fixedpred: Concat, FixedPred, false;
    concat_exact: Concat, Exact, true;
    rescnn_strict: ResCnn, Strict, true;
    rescnn_fixedpred: ResCnn, FixedPred, true;
    rescnn_exact: ResCnn, Exact, false;
    tied_strict: Tied, Strict, true;
    tied_fixedpred: Tied, FixedPred, true;
    tied_exact: Tied, Exact, true;
    res_fixedpred_eta05_n3: Res, FixedPred, true;
    res_strict_vinit: Res, Strict, true;
}

/// The same graph run twice in one process gives bit-identical results (no state is
/// carried over between calls), and the second run overwrites rather than accumulates
/// the updates.
#[test]
fn rerun_is_identical_and_overwrites() {
    let g = Golden::load("graph_tied_strict");
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::Double);
    let graph = build(&vs, Net::Tied);
    load_params(&vs, &g);
    let (x, y) = (g.get("x"), g.get("y"));
    let run = || {
        let out = pc_infer(&graph, &loss::mse, x, y, ErrType::Strict, 0.1, 20, None).unwrap();
        let mut grads: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.grad().copy()))
            .collect();
        grads.sort_by(|a, b| a.0.cmp(&b.0));
        (out, grads)
    };
    let (a, ga) = run();
    let (b, gb) = run();
    for i in 0..a.v.len() {
        assert!(a.v[i].equal(&b.v[i]) && a.epsilon[i].equal(&b.epsilon[i]));
    }
    for ((na, ta), (nb, tb)) in ga.iter().zip(&gb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "grad of {na} changed on rerun");
    }
}
