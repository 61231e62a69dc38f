//! Shared by `benches/pc.rs` (criterion) and `examples/bench.rs` (ratio benchmark): the
//! seed's network, the width-256 MLPs of the depth sweep, the inputs, the weights file
//! written by `scripts/bench_seed.py --save-weights`, and the timed variants.
#![allow(dead_code)]

use std::collections::HashMap;
use tch::nn::{self, Module};
use tch::{Device, Kind, Reduction, Tensor};
use tch2pc::{loss, ErrType, FixedPredMode, Graph, PcInfer, PcModel, Sequential};

/// A model the benchmarks can time both ways: predictive coding ([`PcModel`]) and a plain
/// forward pass ([`Module`]).
pub trait Net: PcModel + Module {}
impl<T: PcModel + Module> Net for T {}

/// The seed's batch size.
pub const BATCH: i64 = 300;

/// A model with its store and one batch.
pub struct Setup {
    /// The store holding the parameters (its trainable variables get the updates).
    pub vs: nn::VarStore,
    /// The PC model (a `Sequential` or a `Graph`).
    pub model: Box<dyn Net>,
    /// Inputs.
    pub x: Tensor,
    /// Class labels (int64).
    pub y: Tensor,
    /// Shallow clones of the trainable variables (for zeroing gradients).
    pub vars: Vec<Tensor>,
}

/// The seed's MNIST network: 5 PC layers, 32,695 parameters, with PyTorch's parameter
/// names (`0.0.weight`, …, `4.bias`) so that weights saved from Python load by name.
pub fn seed_network(vs: &nn::VarStore) -> Sequential {
    let root = vs.root();
    let c = Default::default;
    let l = Default::default;
    Sequential::new(vs)
        .add(
            nn::seq()
                .add(nn::conv2d(&root / "0" / "0", 1, 10, 3, c()))
                .add_fn(|x| x.relu().max_pool2d_default(2)),
        )
        .add(
            nn::seq()
                .add(nn::conv2d(&root / "1" / "0", 10, 5, 3, c()))
                .add_fn(|x| x.relu().flatten(1, -1)),
        )
        .add(
            nn::seq()
                .add(nn::linear(&root / "2" / "0", 605, 50, l()))
                .add_fn(|x| x.relu()),
        )
        .add(
            nn::seq()
                .add(nn::linear(&root / "3" / "0", 50, 30, l()))
                .add_fn(|x| x.relu()),
        )
        .add(nn::linear(&root / "4", 30, 10, l()))
}

/// An MLP `784 -> width -> … -> width -> 10` with `depth` linear layers (`depth` PC
/// layers; each hidden one is `[Linear, tanh]`).
pub fn mlp(vs: &nn::VarStore, depth: usize, width: i64) -> Sequential {
    assert!(depth >= 1);
    let root = vs.root();
    let mut model = Sequential::new(vs);
    for l in 0..depth {
        let fan_in = if l == 0 { 784 } else { width };
        if l + 1 == depth {
            model = model.add(nn::linear(
                &root / l.to_string(),
                fan_in,
                10,
                Default::default(),
            ));
        } else {
            model = model.add(
                nn::seq()
                    .add(nn::linear(
                        &root / l.to_string() / "0",
                        fan_in,
                        width,
                        Default::default(),
                    ))
                    .add_fn(|x| x.tanh()),
            );
        }
    }
    model
}

/// A residual network on `(300, 784)` inputs as a [`Graph`]: `h_0 = tanh(W_0 x)` (width 256),
/// then `blocks` residual blocks `h_{b+1} = h_b + tanh(W_b h_b)` (each block two nodes: the
/// branch and the merge), then a linear read-out to 10 classes: `2·blocks + 2` nodes.
pub fn resnet(vs: &nn::VarStore, blocks: usize, width: i64) -> Graph {
    let root = vs.root();
    let mut g = Graph::new(vs);
    let mut h = g.add(
        g.input(),
        nn::seq()
            .add(nn::linear(&root / "in", 784, width, Default::default()))
            .add_fn(|x| x.tanh()),
    );
    for b in 0..blocks {
        let f = g.add(
            h,
            nn::seq()
                .add(nn::linear(
                    &root / format!("b{b}"),
                    width,
                    width,
                    Default::default(),
                ))
                .add_fn(|x| x.tanh()),
        );
        h = g.add_fn(&[h, f], |xs: &[Tensor]| &xs[0] + &xs[1]);
    }
    g.add(h, nn::linear(&root / "out", width, 10, Default::default()));
    g
}

/// Which model to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSpec {
    /// The seed's CNN on `(300, 1, 28, 28)` inputs.
    Seed,
    /// A width-256 tanh MLP of this depth on `(300, 784)` inputs.
    Mlp(usize),
    /// A width-256 residual network ([`resnet`]) with this many blocks.
    Res(usize),
}

impl ModelSpec {
    /// `seed`, `mlp:DEPTH` or `res:BLOCKS`.
    pub fn parse(s: &str) -> Option<ModelSpec> {
        if s == "seed" {
            return Some(ModelSpec::Seed);
        }
        if let Some(b) = s.strip_prefix("res:") {
            return b.parse().ok().map(ModelSpec::Res);
        }
        s.strip_prefix("mlp:")
            .and_then(|d| d.parse().ok())
            .filter(|&d| d >= 1)
            .map(ModelSpec::Mlp)
    }

    /// A short name.
    pub fn name(&self) -> String {
        match self {
            ModelSpec::Seed => "seed".into(),
            ModelSpec::Mlp(d) => format!("mlp:{d}"),
            ModelSpec::Res(b) => format!("res:{b}"),
        }
    }
}

/// Builds `spec` on `device` in float32 with `tch::manual_seed(seed)`, with a random batch
/// of [`BATCH`] (`x ~ U[0,1)`, `y ~ U{0..9}`).
pub fn setup(spec: ModelSpec, device: Device, seed: i64) -> Setup {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(device);
    let (model, x): (Box<dyn Net>, Tensor) = match spec {
        ModelSpec::Seed => (
            Box::new(seed_network(&vs)),
            Tensor::rand([BATCH, 1, 28, 28], (Kind::Float, device)),
        ),
        ModelSpec::Mlp(depth) => (
            Box::new(mlp(&vs, depth, 256)),
            Tensor::rand([BATCH, 784], (Kind::Float, device)),
        ),
        ModelSpec::Res(blocks) => (
            Box::new(resnet(&vs, blocks, 256)),
            Tensor::rand([BATCH, 784], (Kind::Float, device)),
        ),
    };
    let y = Tensor::randint(10, [BATCH], (Kind::Int64, device));
    let vars = vs.trainable_variables();
    Setup {
        vs,
        model,
        x,
        y,
        vars,
    }
}

/// Loads parameters (by name), `x` and `y` from an `.npz` written by
/// `scripts/bench_seed.py --save-weights`. Every trainable variable must be present.
pub fn load_weights(s: &mut Setup, path: &str) -> Result<(), String> {
    let items: HashMap<String, Tensor> = Tensor::read_npz(path)
        .map_err(|e| format!("reading {path}: {e}"))?
        .into_iter()
        .collect();
    let device = s.x.device();
    let named = s.vs.variables();
    let mut missing = Vec::new();
    tch::no_grad(|| {
        for (name, var) in &named {
            match items.get(name.as_str()) {
                Some(t) => {
                    if t.size() != var.size() {
                        missing.push(format!(
                            "{name} (shape {:?} in the file, {:?} here)",
                            t.size(),
                            var.size()
                        ));
                        continue;
                    }
                    let mut v = var.shallow_clone();
                    v.copy_(&t.to_kind(v.kind()).to_device(device));
                }
                None => missing.push(name.clone()),
            }
        }
    });
    if !missing.is_empty() {
        return Err(format!(
            "{path}: missing or mismatched parameters: {}",
            missing.join(", ")
        ));
    }
    let get = |k: &str| {
        items
            .get(k)
            .ok_or_else(|| format!("{path}: no array '{k}'"))
    };
    let x = get("x")?;
    if x.size() != s.x.size() {
        return Err(format!(
            "{path}: x has shape {:?}, expected {:?}",
            x.size(),
            s.x.size()
        ));
    }
    s.x = x.to_kind(Kind::Float).to_device(device);
    s.y = get("y")?.to_kind(Kind::Int64).to_device(device);
    Ok(())
}

/// One timed operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    /// A plain tch training step: zero grads, forward, cross-entropy, backward.
    Backprop,
    /// `pc_infer(.., Exact, ..)`.
    Exact,
    /// `pc_infer(.., FixedPred, eta, n)` (closed form, the default).
    FixedPred { eta: f64, n: usize },
    /// FixedPred with `FixedPredMode::Literal` (the seed's loop).
    FixedPredLiteral { eta: f64, n: usize },
    /// FixedPred with `FixedPredMode::Graded` (the graded closed form on any graph).
    FixedPredGraded { eta: f64, n: usize },
    /// `pc_infer(.., Strict, eta, n)`.
    Strict { eta: f64, n: usize },
}

impl Variant {
    /// A label such as `fixedpred(0.1,20)`.
    pub fn label(&self) -> String {
        match *self {
            Variant::Backprop => "backprop".into(),
            Variant::Exact => "exact".into(),
            Variant::FixedPred { eta, n } => format!("fixedpred({eta},{n})"),
            Variant::FixedPredLiteral { eta, n } => format!("fixedpred_literal({eta},{n})"),
            Variant::FixedPredGraded { eta, n } => format!("fixedpred_graded({eta},{n})"),
            Variant::Strict { eta, n } => format!("strict({eta},{n})"),
        }
    }

    /// Parses `backprop`, `exact`, `fixedpred`, `fixedpred_literal`, `strict` (the seed's
    /// `eta = 0.1`, `n = 20`), optionally followed by `(eta,n)`.
    pub fn parse(s: &str) -> Option<Variant> {
        let (name, eta, n) = match s.split_once('(') {
            None => (s, 0.1, 20),
            Some((name, rest)) => {
                let (e, n) = rest.strip_suffix(')')?.split_once(',')?;
                (name, e.trim().parse().ok()?, n.trim().parse().ok()?)
            }
        };
        match name {
            "backprop" => Some(Variant::Backprop),
            "exact" => Some(Variant::Exact),
            "fixedpred" => Some(Variant::FixedPred { eta, n }),
            "fixedpred_literal" => Some(Variant::FixedPredLiteral { eta, n }),
            "fixedpred_graded" => Some(Variant::FixedPredGraded { eta, n }),
            "strict" => Some(Variant::Strict { eta, n }),
            _ => None,
        }
    }

    /// Runs the operation once on `s` (updates land in the `.grad` of the variables).
    /// An error of `pc_infer` comes back as `"<variant>: <error>"`.
    pub fn run(&self, s: &Setup) -> Result<(), String> {
        let result = match *self {
            Variant::Backprop => {
                backprop_step(s);
                Ok(())
            }
            Variant::Exact => pc(s, PcInfer::new(ErrType::Exact)),
            Variant::FixedPred { eta, n } => pc(s, PcInfer::new(ErrType::FixedPred).eta(eta).n(n)),
            Variant::FixedPredLiteral { eta, n } => pc(
                s,
                PcInfer::new(ErrType::FixedPred)
                    .eta(eta)
                    .n(n)
                    .fixed_pred(FixedPredMode::Literal),
            ),
            Variant::FixedPredGraded { eta, n } => pc(
                s,
                PcInfer::new(ErrType::FixedPred)
                    .eta(eta)
                    .n(n)
                    .fixed_pred(FixedPredMode::Graded),
            ),
            Variant::Strict { eta, n } => pc(s, PcInfer::new(ErrType::Strict).eta(eta).n(n)),
        };
        result.map_err(|e| format!("{}: {e}", self.label()))
    }
}

/// The baseline: zero the gradients, forward, `cross_entropy_loss` (tch's own, mean),
/// backward.
pub fn backprop_step(s: &Setup) {
    for v in &s.vars {
        let mut v = v.shallow_clone();
        v.zero_grad();
    }
    let out = s.model.forward(&s.x);
    let l = out.cross_entropy_loss::<Tensor>(&s.y, None, Reduction::Mean, -100, 0.0);
    l.backward();
}

fn pc(s: &Setup, cfg: PcInfer<'_>) -> Result<(), tch2pc::PcError> {
    cfg.run(&*s.model, &loss::cross_entropy, &s.x, &s.y)
        .map(|_| ())
}

/// Waits for the device's queued work (a no-op on the CPU).
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}
