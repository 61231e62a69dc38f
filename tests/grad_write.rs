//! How the updates reach `.grad`: written into the existing `.grad` (a handle taken before
//! the call sees them), and never sharing memory with another `.grad` or with the call's
//! output, even where autograd gives several parameters and a node's error one and the same
//! tensor.

mod common;

use common::*;
use tch::{nn, Device, Kind, Tensor};
use tch2pc::{loss, pc_infer, ErrType, Graph, PcOutput};

const F64: Kind = Kind::Double;
const CPU: Device = Device::Cpu;

/// The bytes a tensor's elements occupy.
fn bytes(t: &Tensor) -> (usize, usize) {
    let start = t.data_ptr() as usize;
    let last: i64 = t
        .size()
        .iter()
        .zip(t.stride())
        .map(|(n, s)| (n - 1) * s)
        .sum();
    (
        start,
        start + (last as usize + 1) * t.kind().elt_size_in_bytes(),
    )
}

fn disjoint(a: &Tensor, b: &Tensor) -> bool {
    let ((a0, a1), (b0, b1)) = (bytes(a), bytes(b));
    a1 <= b0 || b1 <= a0
}

fn output_tensors(out: &PcOutput) -> Vec<Tensor> {
    out.vhat
        .iter()
        .chain(&out.v)
        .chain(&out.epsilon)
        .chain([&out.loss, &out.dldy])
        .filter(|t| t.numel() > 0)
        .map(|t| t.shallow_clone())
        .collect()
}

/// A `.grad` handle taken before a call holds that call's updates afterwards, in the same
/// memory, for every algorithm; Exact's equal backprop's on the new batch.
#[test]
fn a_grad_handle_taken_before_the_call_holds_the_new_updates() {
    let _rng = rng_lock();
    for err_type in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        let (vs, seq, x, y) = setup("mlp", F64, CPU, 11);
        pc_infer(&seq, &loss::mse, &x, &y, err_type, 0.1, 5, None).unwrap();
        let x2 = &x * 0.5 + 0.25;
        let bp = backprop(&vs, &seq, &loss::mse, &x2, &y);
        let vars: Vec<Tensor> = vs.trainable_variables();
        let held: Vec<Tensor> = vars.iter().map(|v| v.grad()).collect();
        let before: Vec<usize> = held.iter().map(|g| g.data_ptr() as usize).collect();
        pc_infer(&seq, &loss::mse, &x2, &y, err_type, 0.1, 5, None).unwrap();
        for ((v, h), ptr) in vars.iter().zip(&held).zip(before) {
            let g = v.grad();
            assert!(h.equal(&g), "{err_type}: a held handle sees the update");
            assert_eq!(
                g.data_ptr() as usize,
                ptr,
                "{err_type}: the update is written into the existing .grad"
            );
        }
        if err_type == ErrType::Exact {
            assert_grads_match(&vs, &bp, 1e-10, "mlp, second batch");
        }
    }
}

/// A node `h + p1 + p2` with batch-shaped parameters: autograd gives `p1`, `p2` and the
/// node's `ε` one and the same tensor. Each `.grad` keeps memory of its own, disjoint from
/// the other's and from every output tensor, with the right values (`∂ℓ/∂p = ε` of the
/// node for Exact; the same update for both parameters for every algorithm).
#[test]
fn updates_that_alias_each_other_or_the_output_stay_apart() {
    let _rng = rng_lock();
    for err_type in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        tch::manual_seed(3);
        let mut vs = nn::VarStore::new(CPU);
        vs.set_kind(F64);
        let root = vs.root();
        let p1 = root.randn("p1", &[6, 4], 0.0, 0.5);
        let p2 = root.randn("p2", &[6, 4], 0.0, 0.5);
        let mut g = Graph::new(&vs);
        let h = g.add(
            g.input(),
            nn::linear(&root / "l1", 3, 4, Default::default()),
        );
        let (q1, q2) = (p1.shallow_clone(), p2.shallow_clone());
        let s = g.add_fn(&[h], move |xs: &[Tensor]| (&xs[0] + &q1 + &q2).tanh());
        g.add(s, nn::linear(&root / "out", 4, 2, Default::default()));
        let x = Tensor::randn([6, 3], (F64, CPU));
        let y = Tensor::randn([6, 2], (F64, CPU));
        let mut last = None;
        for _ in 0..2 {
            last = Some(pc_infer(&g, &loss::mse, &x, &y, err_type, 0.1, 5, None).unwrap());
        }
        let out = last.unwrap();
        let (g1, g2) = (p1.grad(), p2.grad());
        assert!(g1.defined() && g2.defined());
        assert!(
            g1.equal(&g2),
            "{err_type}: both parameters get the same update"
        );
        assert!(
            disjoint(&g1, &g2),
            "{err_type}: p1 and p2 share .grad memory"
        );
        for t in output_tensors(&out) {
            assert!(
                disjoint(&g1, &t),
                "{err_type}: p1.grad shares memory with the output"
            );
            assert!(
                disjoint(&g2, &t),
                "{err_type}: p2.grad shares memory with the output"
            );
        }
        let all: Vec<Tensor> = vs.trainable_variables().iter().map(|v| v.grad()).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(disjoint(a, b), "{err_type}: two .grad share memory");
            }
        }
        if err_type == ErrType::Exact {
            // ∂ℓ/∂p = ∂ℓ/∂(h + p1 + p2) = tanh'(·) ⊙ ε_s (ε_s the error of node s), which
            // is also ∂ℓ/∂h = ε_h.
            let s_val = &out.vhat[2];
            let want = (1.0 - s_val * s_val) * &out.epsilon[2];
            assert!(
                rel_err(&g1, &want) < 1e-12,
                "{err_type}: value of the update"
            );
            assert!(
                rel_err(&g1, &out.epsilon[1]) < 1e-15,
                "{err_type}: ∂ℓ/∂p = ε_h"
            );
        }
    }
}

/// A `.grad` of another shape than its variable (resized by the user) is replaced by the
/// update, not added to with broadcasting, also in a call that creates the `.grad` of a
/// layer that had none: the values equal those of the same call on clean `.grad`s.
#[test]
fn a_grad_of_another_shape_is_replaced_by_the_update() {
    let _rng = rng_lock();
    for err_type in [ErrType::Exact, ErrType::FixedPred, ErrType::Strict] {
        for shape in [vec![4i64, 2, 3], vec![1]] {
            tch::manual_seed(5);
            let mut vs = nn::VarStore::new(CPU);
            vs.set_kind(F64);
            let root = vs.root();
            let a = nn::linear(&root / "a", 3, 2, Default::default());
            let aw = a.ws.shallow_clone();
            let b = nn::linear(&root / "b", 2, 2, Default::default());
            let bw = b.ws.shallow_clone();
            let x = Tensor::randn([5, 3], (F64, CPU));
            let y = Tensor::randn([5, 2], (F64, CPU));
            // A first model gives `a` a .grad; `b` has none.
            let mut first = Graph::new(&vs);
            let a2 = nn::Linear {
                ws: aw.shallow_clone(),
                bs: a.bs.as_ref().map(|t| t.shallow_clone()),
            };
            first.add(first.input(), a2);
            let y2 = Tensor::randn([5, 2], (F64, CPU));
            pc_infer(&first, &loss::mse, &x, &y2, err_type, 0.1, 3, None).unwrap();
            assert!(aw.grad().defined() && !bw.grad().defined());
            let mut ga = aw.grad();
            let _ = ga.resize_(shape.as_slice()).fill_(7.0);
            let mut g = Graph::new(&vs);
            let h = g.add(g.input(), a);
            g.add(h, b);
            pc_infer(&g, &loss::mse, &x, &y, err_type, 0.1, 3, None).unwrap();
            let (got_a, got_b) = (aw.grad().copy(), bw.grad().copy());
            assert_eq!(got_a.size(), aw.size(), "{err_type} {shape:?}");
            // The same call again, on .grads of the right shape, gives the reference.
            pc_infer(&g, &loss::mse, &x, &y, err_type, 0.1, 3, None).unwrap();
            assert!(got_a.equal(&aw.grad()), "{err_type} {shape:?}: a's update");
            assert!(got_b.equal(&bw.grad()), "{err_type} {shape:?}: b's update");
        }
    }
}
