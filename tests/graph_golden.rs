//! PC on computation graphs (`Graph`) against the golden files made by
//! `scripts/gen_golden_graph.py` (float64, the reference `scripts/pcref_graph.py`), every
//! algorithm, to 1e-9 relative. The graphs are described in tests/golden/README.md
//! ("Graph cases"); the node numbering here must match the generator's.

mod common;
#[path = "common/graphs.rs"]
mod graphs;

use common::{load_params, rel_err, Golden, GOLDEN_TOL};
use graphs::{add_nodes, Net};
use tch::{nn, Device, Kind, Tensor};
use tch2pc::{loss, pc_infer, ErrType, Graph, PcInfer};

/// Builds graph `net` on `vs` (parameters named as the golden files' `param.*` keys; the
/// shared builder numbers the nodes as the generator does) and checks the node count.
fn build(vs: &nn::VarStore, net: Net) -> Graph {
    let mut g = Graph::new(vs);
    assert_eq!(g.input().index(), 0);
    add_nodes(&mut g, &vs.root(), net);
    let nodes = match net {
        Net::Res => 6,    // h1, h2, s = h1 + h2, h3, s2 = s + h3, out
        Net::Fan => 5,    // h, a, b, c, out
        Net::Concat => 3, // h1, h2, out
        Net::ResCnn => 5, // c1, c2, c3, s, out
        Net::Tied => 4,   // h1, h2, h3, out
        other => panic!("{other:?} has no golden file"),
    };
    assert_eq!(g.len(), nodes, "{net:?}: node count");
    g
}

/// The loss of graph `net`: MSE against float targets, or cross-entropy against labels.
fn loss_of(net: Net) -> fn(&Tensor, &Tensor) -> Tensor {
    match net {
        Net::Res | Net::Fan | Net::Tied => loss::mse,
        Net::Concat | Net::ResCnn => loss::cross_entropy,
        other => panic!("{other:?} has no golden file"),
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
