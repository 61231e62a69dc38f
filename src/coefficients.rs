//! FixedPred's coefficients: how much of backprop's error reaches a node after `n` sweeps.

use crate::error::{PcError, Result};

/// `P(Binomial(n, p) ≥ k) = Σ_{j=k}^{n} C(n, j) p^j (1-p)^{n-j}`: with `n-1` sweeps and
/// `p = η ≤ 1`, the factor by which FixedPred scales backprop's error at a node whose paths
/// to the output all have `k` edges (layer `L-k` of a chain; Rosenbaum 2022). Computed
/// independently of the recursion that [`fixed_pred_coefficients`] and `pc_infer` use:
/// from the sum directly for `n ≤ 64` (where `C(n, j)` and every term are exact enough in
/// f64), and for larger `n` from the regularised incomplete beta function (`statrs`), which
/// neither overflows nor loses the terms near the mode. NaN when `p` is not in `[0, 1]`.
/// Arguments in the order of `Binomial(n, p)`, then the threshold, as in
/// [`fixed_pred_coefficients`].
///
/// ```
/// use tch2pc::binomial_tail;
/// assert_eq!(binomial_tail(3, 0.5, 0), 1.0);
/// assert!((binomial_tail(3, 0.5, 2) - 0.5).abs() < 1e-15);
/// assert_eq!(binomial_tail(1, 0.3, 2), 0.0); // more layers than sweeps: exactly zero
/// assert!((binomial_tail(2000, 0.5, 1000) - 0.508919).abs() < 1e-6); // half the mass + the mode
/// assert!(binomial_tail(3, 1.5, 1).is_nan()); // not a probability
/// let c = tch2pc::fixed_pred_coefficients(4, 0.3, 5)?;
/// assert!((c[3][2] - binomial_tail(3, 0.3, 3)).abs() < 1e-15); // c_2 after 4 sweeps
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub fn binomial_tail(n: usize, p: f64, k: usize) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if n <= 64 {
        return (k..=n)
            .map(|j| {
                let c: f64 = (0..j).map(|i| (n - i) as f64 / (i + 1) as f64).product();
                c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32)
            })
            .sum();
    }
    use statrs::distribution::{Binomial, DiscreteCDF};
    match Binomial::new(p, n as u64) {
        // P(X ≥ k) = P(X > k - 1).
        Ok(b) => b.sf(k as u64 - 1).clamp(0.0, 1.0),
        Err(_) => f64::NAN,
    }
}

/// The FixedPred coefficients of a chain of `layers` layers: `c[k-1][l] = c_l^{(k)}` for
/// sweeps `k = 1..=n+1` and layers `l = 0..=L` (index 0 unused, always 0), from the
/// recursion `c_l^{(k+1)} = (1-η) c_l^{(k)} + η c_{l+1}^{(k)}`, `c_L = 1`, `c_l^{(1)} = 0`
/// below the top. After `n` sweeps layer `l`'s prediction error is `c_l^{(n)}` times
/// backprop's and its belief moves by `c_l^{(n+1)}` times backprop's; for `η ≤ 1`,
/// `c_l^{(k)} = P(Binomial(k-1, η) ≥ L-l)` ([`binomial_tail`]). Arguments in the order of
/// [`binomial_tail`]: sweeps, step, then depth.
///
/// # Errors
/// [`PcError::InvalidConfig`] when the table (`(n+1) × (layers+1)` numbers) cannot be
/// allocated.
///
/// ```
/// let c = tch2pc::fixed_pred_coefficients(2, 0.5, 3)?;
/// assert_eq!(c.len(), 3); // sweeps 1, 2 and 3
/// assert_eq!(c[1], [0.0, 0.0, 0.5, 1.0]); // after 2 sweeps: layer 2 has half, layer 1 nothing
/// assert!(tch2pc::fixed_pred_coefficients(usize::MAX, 0.5, 3).is_err());
/// # Ok::<(), tch2pc::PcError>(())
/// ```
pub fn fixed_pred_coefficients(n: usize, eta: f64, layers: usize) -> Result<Vec<Vec<f64>>> {
    let too_big = || {
        PcError::InvalidConfig(format!(
            "fixed_pred_coefficients: a table of n + 1 = {n} + 1 sweeps by {layers} + 1 \
             layers does not fit in memory"
        ))
    };
    let rows = n.checked_add(1).ok_or_else(too_big)?;
    let cols = layers.checked_add(1).ok_or_else(too_big)?;
    rows.checked_mul(cols)
        .and_then(|cells| cells.checked_mul(std::mem::size_of::<f64>()))
        .filter(|&bytes| bytes <= isize::MAX as usize)
        .ok_or_else(too_big)?;
    let mut all = Vec::new();
    all.try_reserve_exact(rows).map_err(|_| too_big())?;
    // c^{(1)} = [1, 0, …], swept in place.
    let mut c = Vec::new();
    c.try_reserve_exact(cols).map_err(|_| too_big())?;
    c.resize(cols, 0.0);
    c[0] = 1.0;
    for _ in 0..rows {
        let mut by_layer = Vec::new();
        by_layer.try_reserve_exact(cols).map_err(|_| too_big())?;
        by_layer.resize(cols, 0.0);
        for (l, slot) in by_layer.iter_mut().enumerate().skip(1) {
            *slot = c[layers - l];
        }
        all.push(by_layer);
        sweep_in_place(&mut c, eta);
    }
    Ok(all)
}

/// One sweep of the coefficient recursion, indexed by path length `m`:
/// `c_0 = 1`, `c_m ← (1-η) c_m + η c_{m-1}`.
pub(crate) fn sweep(c: &[f64], eta: f64) -> Vec<f64> {
    let mut next = c.to_vec();
    sweep_in_place(&mut next, eta);
    next
}

/// [`sweep`] without a new vector: from the longest path down, so that each `c_{m-1}` is
/// still the previous sweep's when `c_m` reads it.
pub(crate) fn sweep_in_place(c: &mut [f64], eta: f64) {
    for m in (1..c.len()).rev() {
        c[m] = (1.0 - eta) * c[m] + eta * c[m - 1];
    }
    if let Some(c0) = c.first_mut() {
        *c0 = 1.0;
    }
}

/// `c^{(k)}_m` for `m = 0..=max_len` after `k ≥ 1` sweeps (`c^{(1)} = [1, 0, …]`).
pub(crate) fn path_coefficients(k: usize, eta: f64, max_len: usize) -> Vec<f64> {
    let mut c = vec![0.0; max_len + 1];
    c[0] = 1.0;
    for _ in 1..k {
        sweep_in_place(&mut c, eta);
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
                let c = fixed_pred_coefficients(n, eta, 5).unwrap();
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

    /// Beyond n = 64 (statrs' incomplete beta) the tail equals the recursion's coefficients,
    /// an independent computation, where the plain sum overflowed (NaN at n = 2000).
    #[test]
    fn large_n_tails_match_the_recursion() {
        for &n in &[65usize, 100, 500, 2000] {
            for &p in &[0.1, 0.5, 0.9] {
                let c = path_coefficients(n + 1, p, n + 1);
                let mode = (n as f64 * p) as usize;
                for k in [1, n / 10, mode, mode + 1, n - 1, n, n + 1] {
                    let got = binomial_tail(n, p, k);
                    assert!(
                        (got - c[k]).abs() < 1e-12,
                        "n {n} p {p} k {k}: {got} vs {}",
                        c[k]
                    );
                }
            }
        }
        assert!((binomial_tail(2000, 0.5, 1000) - 0.508_919_0).abs() < 1e-6);
        for p in [-0.5, 1.5, f64::NAN] {
            assert!(binomial_tail(3, p, 1).is_nan() && binomial_tail(300, p, 1).is_nan());
        }
        assert_eq!(binomial_tail(300, 0.0, 1), 0.0);
        assert_eq!(binomial_tail(300, 1.0, 300), 1.0);
    }
}
