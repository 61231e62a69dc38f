//! FixedPred's coefficients: how much of backprop's error reaches a node after `n` sweeps.

/// `P(Binomial(n, p) ≥ k) = Σ_{j=k}^{n} C(n, j) p^j (1-p)^{n-j}`: with `n-1` sweeps and
/// `p = η ≤ 1`, the factor by which FixedPred scales backprop's error at a node whose paths
/// to the output all have `k` edges (layer `L-k` of a chain; Rosenbaum 2022). Computed
/// directly from the sum, independently of the recursion that
/// [`fixed_pred_coefficients`] and `pc_infer` use. Arguments in the order of
/// `Binomial(n, p)`, then the threshold, as in [`fixed_pred_coefficients`].
///
/// ```
/// use tch2pc::binomial_tail;
/// assert_eq!(binomial_tail(3, 0.5, 0), 1.0);
/// assert!((binomial_tail(3, 0.5, 2) - 0.5).abs() < 1e-15);
/// assert_eq!(binomial_tail(1, 0.3, 2), 0.0); // more layers than sweeps: exactly zero
/// let c = tch2pc::fixed_pred_coefficients(4, 0.3, 5);
/// assert!((c[3][2] - binomial_tail(3, 0.3, 3)).abs() < 1e-15); // c_2 after 4 sweeps
/// ```
pub fn binomial_tail(n: usize, p: f64, k: usize) -> f64 {
    (k..=n)
        .map(|j| {
            let c: f64 = (0..j).map(|i| (n - i) as f64 / (i + 1) as f64).product();
            c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32)
        })
        .sum()
}

/// The FixedPred coefficients of a chain of `layers` layers: `c[k-1][l] = c_l^{(k)}` for
/// sweeps `k = 1..=n+1` and layers `l = 0..=L` (index 0 unused, always 0), from the
/// recursion `c_l^{(k+1)} = (1-η) c_l^{(k)} + η c_{l+1}^{(k)}`, `c_L = 1`, `c_l^{(1)} = 0`
/// below the top. After `n` sweeps layer `l`'s prediction error is `c_l^{(n)}` times
/// backprop's and its belief moves by `c_l^{(n+1)}` times backprop's; for `η ≤ 1`,
/// `c_l^{(k)} = P(Binomial(k-1, η) ≥ L-l)` ([`binomial_tail`]). Arguments in the order of
/// [`binomial_tail`]: sweeps, step, then depth.
///
/// ```
/// let c = tch2pc::fixed_pred_coefficients(2, 0.5, 3);
/// assert_eq!(c.len(), 3); // sweeps 1, 2 and 3
/// assert_eq!(c[1], [0.0, 0.0, 0.5, 1.0]); // after 2 sweeps: layer 2 has half, layer 1 nothing
/// ```
pub fn fixed_pred_coefficients(n: usize, eta: f64, layers: usize) -> Vec<Vec<f64>> {
    let mut all = Vec::with_capacity(n + 1);
    let mut c = path_coefficients(1, eta, layers);
    for _ in 0..=n {
        let mut by_layer = vec![0.0; layers + 1];
        for (l, slot) in by_layer.iter_mut().enumerate().skip(1) {
            *slot = c[layers - l];
        }
        all.push(by_layer);
        c = sweep(&c, eta);
    }
    all
}

/// One sweep of the coefficient recursion, indexed by path length `m`:
/// `c_0 = 1`, `c_m ← (1-η) c_m + η c_{m-1}`.
pub(crate) fn sweep(c: &[f64], eta: f64) -> Vec<f64> {
    let mut next = vec![0.0; c.len()];
    next[0] = 1.0;
    for m in 1..c.len() {
        next[m] = (1.0 - eta) * c[m] + eta * c[m - 1];
    }
    next
}

/// `c^{(k)}_m` for `m = 0..=max_len` after `k ≥ 1` sweeps (`c^{(1)} = [1, 0, …]`).
pub(crate) fn path_coefficients(k: usize, eta: f64, max_len: usize) -> Vec<f64> {
    let mut c = vec![0.0; max_len + 1];
    c[0] = 1.0;
    for _ in 1..k {
        c = sweep(&c, eta);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_are_binomial_tails() {
        for &eta in &[0.1, 0.5, 1.0] {
            for n in 1..12 {
                let c = fixed_pred_coefficients(n, eta, 5);
                for (l, &got) in c[n - 1].iter().enumerate().skip(1) {
                    let want = binomial_tail(n - 1, eta, 5 - l);
                    assert!(
                        (got - want).abs() < 1e-14,
                        "eta {eta} n {n} l {l}: {got} vs {want}"
                    );
                }
                let p = path_coefficients(n, eta, 7);
                for (m, &got) in p.iter().enumerate() {
                    assert!((got - binomial_tail(n - 1, eta, m)).abs() < 1e-14);
                }
            }
        }
    }
}
