//! Shared test helpers: the golden models, loading golden files, comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tch::{nn, Device, Kind, Tensor};
use tch2pc::Sequential;

/// A golden file: name -> tensor.
pub struct Golden(pub HashMap<String, Tensor>);

impl Golden {
    pub fn load(case: &str) -> Golden {
        let path = format!("{}/tests/golden/{case}.npz", env!("CARGO_MANIFEST_DIR"));
        let items = Tensor::read_npz(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        Golden(items.into_iter().collect())
    }
    pub fn get(&self, key: &str) -> &Tensor {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("golden key {key} missing"))
    }
    pub fn scalar(&self, key: &str) -> f64 {
        self.get(key).double_value(&[])
    }
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// The golden models in float64, built in a fresh VarStore on `device` with `kind`.
pub fn build(model: &str, kind: Kind, device: Device) -> (nn::VarStore, Sequential) {
    let mut vs = nn::VarStore::new(device);
    vs.set_kind(kind);
    let root = vs.root();
    let seq = match model {
        "mlp" => Sequential::new(&vs)
            .add(
                nn::seq()
                    .add(nn::linear(&root / "0" / "0", 5, 8, Default::default()))
                    .add_fn(|x| x.tanh()),
            )
            .add(
                nn::seq()
                    .add(nn::linear(&root / "1" / "0", 8, 6, Default::default()))
                    .add_fn(|x| x.tanh()),
            )
            .add(nn::linear(&root / "2", 6, 3, Default::default())),
        "cnn" => Sequential::new(&vs)
            .add(
                nn::seq()
                    .add(nn::conv2d(&root / "0" / "0", 1, 3, 3, Default::default()))
                    .add_fn(|x| x.relu().max_pool2d_default(2)),
            )
            .add(
                nn::seq()
                    .add(nn::conv2d(&root / "1" / "0", 3, 2, 3, Default::default()))
                    .add_fn(|x| x.relu().flatten(1, -1)),
            )
            .add(nn::linear(&root / "2", 8, 4, Default::default())),
        "pfree" => Sequential::new(&vs)
            .add(nn::linear(&root / "0", 5, 7, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(&root / "2", 7, 6, Default::default()))
            .add_fn(|x| x.sigmoid())
            .add(nn::linear(&root / "4", 6, 3, Default::default())),
        other => panic!("unknown model {other}"),
    };
    (vs, seq)
}

/// Copies the golden parameters into the store (converted to the store's kind and device).
pub fn load_params(vs: &nn::VarStore, g: &Golden) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, t) in &g.0 {
            if let Some(p) = name.strip_prefix("param.") {
                let mut v = vars
                    .get(p)
                    .unwrap_or_else(|| panic!("no variable {p}"))
                    .shallow_clone();
                v.copy_(&t.to_kind(v.kind()).to_device(v.device()));
            }
        }
    });
}

/// Max |a-b| / max(max |b|, tiny).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double).to_device(Device::Cpu);
    let b = b.to_kind(Kind::Double).to_device(Device::Cpu);
    assert_eq!(a.size(), b.size(), "shape mismatch");
    let diff = (&a - &b).abs().max().double_value(&[]);
    let scale = b.abs().max().double_value(&[]).max(1e-300);
    diff / scale
}

/// Snapshot of every parameter and its grad (cloned), by name.
pub fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor, Option<Tensor>)> {
    let mut out: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| {
            let g = v.grad();
            let g = if g.defined() { Some(g.copy()) } else { None };
            (k, v.copy(), g)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Asserts two snapshots are bit-identical.
pub fn assert_same(a: &[(String, Tensor, Option<Tensor>)], b: &[(String, Tensor, Option<Tensor>)]) {
    assert_eq!(a.len(), b.len());
    for ((na, pa, ga), (nb, pb, gb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(pa.equal(pb), "parameter {na} changed");
        match (ga, gb) {
            (None, None) => {}
            (Some(x), Some(y)) => assert!(x.equal(y), "gradient of {na} changed"),
            _ => panic!("gradient of {na} changed definedness"),
        }
    }
}

/// Gradients by parameter name.
pub fn grads(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.grad().copy()))
        .collect()
}

/// Backprop gradients: zero grads, loss.backward(), read.
pub fn backprop<F: Fn(&Tensor, &Tensor) -> Tensor>(
    vs: &nn::VarStore,
    model: &Sequential,
    loss: &F,
    x: &Tensor,
    y: &Tensor,
) -> HashMap<String, Tensor> {
    use tch::nn::Module;
    for mut v in vs.trainable_variables() {
        v.zero_grad();
    }
    let l = loss(&model.forward(x), y);
    l.backward();
    let g = grads(vs);
    for mut v in vs.trainable_variables() {
        v.zero_grad();
    }
    g
}

/// libtorch's random generator is global, and the test harness runs the tests of a binary in
/// parallel threads (as many as the machine has cores): a test that seeded it could see
/// another test reseed it or draw from it before its own draws, and get other data than its
/// seed's (so that a data-dependent assertion fails on some machines and runs, not others).
static RNG: Mutex<()> = Mutex::new(());

/// Held for its whole run by every test that seeds or draws from libtorch's random generator
/// (building a model draws its initial parameters): `let _rng = rng_lock();` first.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A seeded model with random inputs/targets of the right shapes for `model`
/// ("mlp": MSE targets; "cnn", "pfree": class labels). The caller holds [`rng_lock`].
pub fn setup(
    model: &str,
    kind: Kind,
    device: Device,
    seed: i64,
) -> (nn::VarStore, Sequential, Tensor, Tensor) {
    assert!(
        RNG.try_lock().is_err(),
        "take common::rng_lock() before drawing seeded data"
    );
    tch::manual_seed(seed);
    let (vs, seq) = build(model, kind, device);
    let opts = (kind, device);
    let (x, y) = match model {
        "mlp" => (Tensor::randn([4, 5], opts), Tensor::randn([4, 3], opts)),
        "cnn" => (
            Tensor::randn([5, 1, 10, 10], opts),
            Tensor::randint(4, [5], (Kind::Int64, device)),
        ),
        "pfree" => (
            Tensor::randn([6, 5], opts),
            Tensor::randint(3, [6], (Kind::Int64, device)),
        ),
        other => panic!("unknown model {other}"),
    };
    (vs, seq, x, y)
}

/// The loss the golden models use.
pub fn loss_for(model: &str) -> fn(&Tensor, &Tensor) -> Tensor {
    if model == "mlp" {
        tch2pc::loss::mse
    } else {
        tch2pc::loss::cross_entropy
    }
}

/// Parameter names of PC layer `l` (1-based) of a golden model.
pub fn layer_params(model: &str, l: usize) -> Vec<String> {
    let prefix = match model {
        "mlp" | "cnn" if l < 3 => format!("{}.0", l - 1),
        _ => format!("{}", l - 1),
    };
    vec![format!("{prefix}.weight"), format!("{prefix}.bias")]
}

/// All gradients concatenated into one flat f64 vector (sorted by name).
pub fn flat(g: &HashMap<String, Tensor>) -> Tensor {
    let mut names: Vec<_> = g.keys().cloned().collect();
    names.sort();
    Tensor::cat(
        &names
            .iter()
            .map(|n| {
                g[n].to_kind(Kind::Double)
                    .to_device(Device::Cpu)
                    .flatten(0, -1)
            })
            .collect::<Vec<_>>(),
        0,
    )
}

/// Tolerance of the golden comparisons (relative).
pub const GOLDEN_TOL: f64 = 1e-9;

/// Runs golden case `case` on `device` and compares every output and gradient.
pub fn check_golden(case: &str, model: &str, err_type: tch2pc::ErrType, device: Device) {
    let g = Golden::load(case);
    let (vs, seq) = build(model, Kind::Double, device);
    load_params(&vs, &g);
    let x = &g.get("x").to_device(device);
    let y = &g.get("y").to_device(device);
    let layers = g.scalar("L") as usize;
    assert_eq!(seq.len(), layers);
    let vinit: Vec<Tensor> = (0..=layers)
        .filter_map(|l| {
            if g.has(&format!("vinit.{l}")) {
                Some(g.get(&format!("vinit.{l}")).to_device(device))
            } else {
                None
            }
        })
        .collect();
    let mut cfg = tch2pc::PcInfer::new(err_type)
        .eta(g.scalar("eta"))
        .n(g.scalar("n") as usize);
    if !vinit.is_empty() {
        cfg = cfg.vinit(&vinit);
    }
    let out = if model == "mlp" {
        cfg.run(&seq, &tch2pc::loss::mse, x, y)
    } else {
        cfg.run(&seq, &tch2pc::loss::cross_entropy, x, y)
    }
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut worst = 0.0f64;
    let mut cmp = |what: &str, a: &Tensor, b: &Tensor| {
        worst = worst.max(assert_golden_close(&format!("{case}: {what}"), a, b));
    };
    cmp("loss", &out.loss, g.get("loss"));
    cmp("dldy", &out.dldy, g.get("dldy"));
    assert_eq!(out.vhat.len(), layers + 1);
    assert!(out.v[0].equal(x) && out.vhat[0].equal(x));
    assert_eq!(out.v[1].device(), device);
    assert_eq!(out.epsilon[0].abs().max().double_value(&[]), 0.0);
    for l in 1..=layers {
        for (key, got) in [
            ("vhat", &out.vhat[l]),
            ("v", &out.v[l]),
            ("eps", &out.epsilon[l]),
        ] {
            let key = format!("{key}.{l}");
            cmp(&key, got, g.get(&key));
        }
    }
    for (name, v) in vs.variables() {
        let got = v.grad();
        assert!(got.defined(), "{case}: no grad for {name}");
        cmp(
            &format!("grad.{name}"),
            &got,
            g.get(&format!("grad.{name}")),
        );
    }
    eprintln!("{case}: worst relative difference {worst:.2e}");
}

/// Asserts that the `.grad` of every variable of `vs` matches `want` (by name) to `tol`
/// relative; `what` labels the failure.
pub fn assert_grads_match(vs: &nn::VarStore, want: &HashMap<String, Tensor>, tol: f64, what: &str) {
    let got = grads(vs);
    for (name, g) in want {
        let e = rel_err(&got[name], g);
        assert!(e < tol, "{what} {name}: relative error {e:e}");
    }
}

/// What [`seed_strict`] computes: the beliefs `v[0..=L]`, the errors `eps[1..=L]` (`eps[0]`
/// is undefined, the seed's `None`) and every parameter's update, by name.
pub struct SeedRun {
    pub v: Vec<Tensor>,
    pub eps: Vec<Tensor>,
    pub grads: HashMap<String, Tensor>,
}

/// `(d f_l(a) / d a)^T cot` at `a = at`, the seed's `vjp`: a fresh leaf, a forward pass with
/// graph, and the gradient of `<f_l(a), cot>` (whose gradient with respect to `f_l(a)` is
/// `cot` exactly: the backward pass multiplies `cot` by the incoming 1).
fn seed_vjp(seq: &Sequential, l: usize, at: &Tensor, cot: &Tensor) -> Tensor {
    let a = at.detach().set_requires_grad(true);
    let out = seq.f_layer_forward(l, &a).unwrap();
    let root = out.flatten(0, -1).dot(&cot.flatten(0, -1));
    Tensor::run_backward(&[root], &[&a], false, false)
        .pop()
        .unwrap()
}

/// The seed's Strict algorithm (`_strict` in `scripts/pcref.py`, the operation order of
/// Torch2PC) written out as a plain loop with tch ops, independently of the library's engine,
/// to check in the same process that the library's Strict is the seed's bit for bit.
///
/// Beliefs start at `vinit` (or the feed-forward values), `v[0] = x`. Each of the `n` sweeps:
/// `eps_L = d loss(f_L(v_{L-1}), y) / d f_L(v_{L-1})`; then for `l = L-1, …, 1`:
/// `pred = f_l(v_{l-1})` (no graph), `eps_l = pred - v_l`,
/// `v_l = v_l + eta * (eps_l - vjp(f_{l+1}, v_l, eps_{l+1}))`. Finally every parameter's
/// update is `(d f_l(v_{l-1}) / d theta)^T eps_l` at the final beliefs with the last errors.
/// The caller's parameters' `.grad` are not touched.
#[allow(clippy::too_many_arguments)]
pub fn seed_strict<F: Fn(&Tensor, &Tensor) -> Tensor>(
    vs: &nn::VarStore,
    seq: &Sequential,
    loss: &F,
    x: &Tensor,
    y: &Tensor,
    eta: f64,
    n: usize,
    vinit: Option<&[Tensor]>,
) -> SeedRun {
    let layers = seq.len();
    let f = |l: usize, input: &Tensor| seq.f_layer_forward(l, input).unwrap();
    let mut v: Vec<Tensor> = match vinit {
        Some(v0) => v0.iter().map(|t| t.detach().copy()).collect(),
        None => tch::no_grad(|| {
            let mut vhat = vec![x.shallow_clone()];
            for l in 1..=layers {
                let h = f(l, &vhat[l - 1]);
                vhat.push(h);
            }
            vhat
        }),
    };
    assert_eq!(v.len(), layers + 1);
    v[0] = x.detach();
    let mut eps: Vec<Tensor> = (0..=layers).map(|_| Tensor::default()).collect();
    for _ in 0..n {
        let a = v[layers - 1].detach().set_requires_grad(true);
        let out = f(layers, &a);
        eps[layers] = Tensor::run_backward(&[loss(&out, y)], &[&out], false, false)
            .pop()
            .unwrap();
        for l in (1..layers).rev() {
            let pred = tch::no_grad(|| f(l, &v[l - 1]));
            eps[l] = &pred - &v[l];
            let step = (&eps[l] - seed_vjp(seq, l + 1, &v[l], &eps[l + 1])) * eta;
            v[l] = &v[l] + step;
        }
    }
    // The seed's set_grads: per layer with parameters, at the final beliefs.
    let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    let params: Vec<&Tensor> = named.iter().map(|(_, t)| t).collect();
    let mut grads = HashMap::new();
    for l in 1..=layers {
        let out = f(l, &v[l - 1].detach());
        if !out.requires_grad() {
            continue;
        }
        let root = out.flatten(0, -1).dot(&eps[l].flatten(0, -1));
        let g = Tensor::run_backward(&[root], &params, false, false);
        for ((name, _), g) in named.iter().zip(g) {
            if g.defined() {
                assert!(
                    grads.insert(name.clone(), g).is_none(),
                    "{name} in two layers"
                );
            }
        }
    }
    SeedRun { v, eps, grads }
}

/// Asserts that `got` is `want` (a golden file's array) to [`GOLDEN_TOL`] relative; an
/// all-zero `want` (a mathematically exact zero, e.g. an error that has not reached its
/// layer yet) must be exactly zero. Returns the relative difference.
pub fn assert_golden_close(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    if want.abs().max().double_value(&[]) == 0.0 {
        assert_eq!(
            got.abs().max().double_value(&[]),
            0.0,
            "{what} should be exactly 0"
        );
        return 0.0;
    }
    let e = rel_err(got, want);
    assert!(e <= GOLDEN_TOL, "{what} differs by {e:e}");
    e
}
