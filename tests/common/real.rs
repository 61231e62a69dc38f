//! Helpers for the tests of real models (`tests/stateful.rs`, `tests/models.rs`): turn
//! taking for libtorch's global generator, comparisons, `.grad` snapshots, backprop
//! references. Included with `#[path = "common/real.rs"] mod real;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use tch::{nn, Kind, Tensor};

static SERIAL: Mutex<()> = Mutex::new(());

/// libtorch's random generator is global, and a call in training mode reseeds it before
/// every node (dropout masks): the tests of one binary take turns, so that no other thread
/// draws or reseeds while a call runs.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `max |a - b|`, in float64 (shapes must agree).
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape mismatch");
    let a = a.detach().to_kind(Kind::Double);
    let b = b.detach().to_kind(Kind::Double);
    if a.numel() == 0 {
        return 0.0;
    }
    (&a - &b).abs().max().double_value(&[])
}

/// `max |t|`, in float64.
pub fn max_abs(t: &Tensor) -> f64 {
    if t.numel() == 0 {
        return 0.0;
    }
    t.detach()
        .to_kind(Kind::Double)
        .abs()
        .max()
        .double_value(&[])
}

/// `max |a - b| / max(1, max |b|)`: an absolute difference for values of order one, a
/// relative one for large values.
pub fn diff(a: &Tensor, b: &Tensor) -> f64 {
    max_diff(a, b) / max_abs(b).max(1.0)
}

/// Asserts `diff(a, b) <= tol` and returns the difference.
pub fn close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> f64 {
    let d = diff(a, b);
    assert!(d <= tol, "{what}: difference {d:e} > {tol:e}");
    d
}

/// Whether every element is finite.
pub fn finite(t: &Tensor) -> bool {
    t.numel() == 0 || bool::try_from(t.isfinite().all()).unwrap()
}

/// The variable `name` of `vs` (a shallow clone sharing data and `.grad`).
pub fn var(vs: &nn::VarStore, name: &str) -> Tensor {
    vs.variables()
        .remove(name)
        .unwrap_or_else(|| panic!("no variable {name}"))
}

/// A copy of `t.grad()`, or `None` when it is undefined.
pub fn grad_copy(t: &Tensor) -> Option<Tensor> {
    let g = t.grad();
    if g.defined() {
        Some(g.copy())
    } else {
        None
    }
}

/// Every variable of `vs` by name: a copy of its value and of its `.grad` (if defined).
pub type State = BTreeMap<String, (Tensor, Option<Tensor>)>;

/// The values and `.grad`s of every variable of `vs` (buffers included).
pub fn state(vs: &nn::VarStore) -> State {
    vs.variables()
        .into_iter()
        .map(|(k, v)| {
            let g = grad_copy(&v);
            (k, (v.copy(), g))
        })
        .collect()
}

/// Asserts that two states are equal bit for bit: values, dtypes, `.grad`s and their
/// definedness.
pub fn assert_same_state(what: &str, a: &State, b: &State) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: variables"
    );
    for (name, (va, ga)) in a {
        let (vb, gb) = &b[name];
        assert_eq!(va.kind(), vb.kind(), "{what}: dtype of {name}");
        assert!(va.equal(vb), "{what}: value of {name} changed");
        match (ga, gb) {
            (None, None) => {}
            (Some(x), Some(y)) => assert!(x.equal(y), "{what}: .grad of {name} changed"),
            _ => panic!("{what}: .grad of {name} changed definedness ({ga:?} vs {gb:?})"),
        }
    }
}

/// The non-trainable variables (BatchNorm's running statistics) of `vs`, copied, by name.
pub fn buffers(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    let trainable = vs.trainable_variables();
    vs.variables()
        .into_iter()
        .filter(|(_, v)| !trainable.iter().any(|t| t.data_ptr() == v.data_ptr()))
        .map(|(k, v)| (k, v.copy()))
        .collect()
}

/// The trainable variables of `vs` that require grad, by name.
pub fn trainable(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    let trainable = vs.trainable_variables();
    vs.variables()
        .into_iter()
        .filter(|(_, v)| {
            v.requires_grad() && trainable.iter().any(|t| t.data_ptr() == v.data_ptr())
        })
        .collect()
}

/// Backprop's gradients of `loss` with respect to `vars` (by name), without touching any
/// `.grad`; zeros for a variable the loss does not reach.
pub fn gradients(loss: &Tensor, vars: &BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    let names: Vec<&String> = vars.keys().collect();
    let inputs: Vec<&Tensor> = vars.values().collect();
    let g = Tensor::run_backward(&[loss], &inputs, false, true);
    names
        .into_iter()
        .zip(g)
        .zip(inputs)
        .map(|((n, g), v)| {
            let g = if g.defined() { g } else { v.zeros_like() };
            (n.clone(), g)
        })
        .collect()
}

/// The `.grad` of every variable in `want` equals `want` to `tol` (see [`diff`]); returns
/// the largest difference.
pub fn grads_close(
    what: &str,
    vs: &nn::VarStore,
    want: &BTreeMap<String, Tensor>,
    tol: f64,
) -> f64 {
    let vars = vs.variables();
    let mut worst: f64 = 0.0;
    for (name, w) in want {
        let g = vars[name].grad();
        assert!(g.defined(), "{what}: no .grad for {name}");
        worst = worst.max(close(&format!("{what}: .grad of {name}"), &g, w, tol));
    }
    worst
}
