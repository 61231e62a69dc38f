//! Mean ± standard deviation over seeds, for the tables of the `resnet` and `depth`
//! examples.

#![allow(dead_code)]

/// The mean and the sample standard deviation (`n - 1` in the denominator; 0 for one
/// value) of the finite values in `xs`, and how many values were not finite (failed runs).
/// `None` when no value is finite.
pub fn mean_sd(xs: &[f64]) -> Option<(f64, f64, usize)> {
    let ok: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if ok.is_empty() {
        return None;
    }
    let n = ok.len() as f64;
    let mean = ok.iter().sum::<f64>() / n;
    let sd = if ok.len() > 1 {
        (ok.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd, xs.len() - ok.len()))
}

/// Accuracies (fractions) as `"97.12 ± 0.31"` percent, or `"97.12"` when only one run
/// succeeded (no spread to give); failed runs are counted (`"97.12 ± 0.31 (1 failed)"`),
/// and all failed is `"failed"`.
pub fn percent(xs: &[f64]) -> String {
    match mean_sd(xs) {
        None => "failed".to_string(),
        Some((m, s, bad)) => {
            let mut out = format!("{:.2}", 100.0 * m);
            if xs.len() - bad > 1 {
                out += &format!(" ± {:.2}", 100.0 * s);
            }
            if bad > 0 {
                out += &format!(" ({bad} failed)");
            }
            out
        }
    }
}
