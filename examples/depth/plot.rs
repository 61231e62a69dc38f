//! The `depth` example's plot: test accuracy against depth per method (left; mean ± sd
//! over seeds) and time per epoch relative to backprop (right, log scale).

use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::common::figure::{self, err};
use crate::common::fit::Method;
use crate::common::font::FAMILY;
use crate::common::stats;

/// One run's outcome.
pub struct Point {
    /// Linear layers.
    pub depth: usize,
    pub method: Method,
    /// In `[0, 1]`; `NaN` for a failed run.
    pub accuracy: f64,
    /// Seconds per epoch over backprop's.
    pub ratio: f64,
}

/// A colour per method (Tableau 10).
fn color(m: Method) -> RGBColor {
    match m {
        Method::Backprop => RGBColor(0, 0, 0),
        Method::Exact => RGBColor(148, 103, 189),
        Method::Fixedpred => RGBColor(44, 160, 44),
        Method::Strict => RGBColor(31, 119, 180),
        Method::StrictMomentum => RGBColor(255, 127, 14),
        Method::StrictAdam => RGBColor(214, 39, 40),
        Method::Ipc => RGBColor(140, 86, 75),
    }
}

/// `(log2 depth, mean, sd)` of `value` per depth for method `m`.
fn series(points: &[Point], m: Method, value: fn(&Point) -> f64) -> Vec<(f64, f64, f64)> {
    let mut depths: Vec<usize> = points.iter().map(|p| p.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    depths
        .into_iter()
        .filter_map(|d| {
            let xs: Vec<f64> = points
                .iter()
                .filter(|p| p.method == m && p.depth == d)
                .map(value)
                .collect();
            stats::mean_sd(&xs).map(|(mean, sd, _)| ((d as f64).log2(), mean, sd))
        })
        .collect()
}

/// Draws `points` for `methods` into the PNG `path` (1400x650 pixels).
pub fn draw(path: &Path, points: &[Point], methods: &[Method], title: &str) -> Result<()> {
    let root = figure::canvas(path, (1400, 650))?;
    let root = root.titled(title, (FAMILY, 24)).map_err(err)?;
    let (left, right) = root.split_horizontally(760);

    let depths: Vec<f64> = points.iter().map(|p| (p.depth as f64).log2()).collect();
    let lo = depths
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(1.0);
    let hi = depths.iter().copied().fold(0f64, f64::max).max(lo + 1.0);
    let x_range = (lo - 0.3)..(hi + 0.3);
    let ticks = ((hi - lo).round() as usize + 1) * 2 + 1;

    // Accuracy against depth, from a multiple of 10 below the lowest mean.
    let lowest = methods
        .iter()
        .flat_map(|&m| series(points, m, |p| 100.0 * p.accuracy))
        .map(|(_, y, sd)| y - sd)
        .fold(100f64, f64::min);
    let floor = ((lowest - 3.0) / 10.0).floor().clamp(0.0, 9.0) * 10.0;
    let mut chart = panel(
        &left,
        "test accuracy",
        (x_range.clone(), floor..100f64),
        ticks,
        "test accuracy (%)",
        &|v| format!("{v:.0}"),
    )?;
    let n = methods.len().max(1) as f64;
    for (k, &m) in methods.iter().enumerate() {
        // Spread the methods a little sideways so that equal values stay visible.
        let dx = 0.12 * (k as f64 - (n - 1.0) / 2.0) / n;
        let s: Vec<(f64, f64, f64)> = series(points, m, |p| 100.0 * p.accuracy)
            .into_iter()
            .map(|(x, y, sd)| (x + dx, y, sd))
            .collect();
        let c = color(m);
        curve(&mut chart, &s, c, None)?;
        chart
            .draw_series(s.iter().map(|&(x, y, sd)| {
                PathElement::new(
                    vec![(x, (y - sd).max(floor)), (x, (y + sd).min(100.0))],
                    c.stroke_width(1),
                )
            }))
            .map_err(err)?;
    }

    // Time per epoch relative to backprop, log scale.
    let ratios: Vec<f64> = points
        .iter()
        .map(|p| p.ratio)
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    // Room below the lowest curve for the legend.
    let rlo = ratios.iter().copied().fold(1f64, f64::min) / 40.0;
    let rhi = ratios.iter().copied().fold(1f64, f64::max) * 1.5;
    let mut chart = panel(
        &right,
        "time per epoch / backprop's",
        (x_range, (rlo..rhi).log_scale()),
        ticks,
        "ratio (log scale)",
        &|v| {
            if *v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        },
    )?;
    for &m in methods {
        curve(
            &mut chart,
            &series(points, m, |p| p.ratio),
            color(m),
            Some(m.label()),
        )?;
    }
    figure::legend(&mut chart, SeriesLabelPosition::LowerRight, 15)?;
    root.present().map_err(err)
}

/// The chart of one panel on `area`, under `caption`, over `ranges` (the x axis the depth's
/// log2, labelled with the depth at the `ticks`), its y axis described by `y_desc` and
/// labelled by `y_label`.
fn panel<'c, Y>(
    area: &DrawingArea<BitMapBackend<'c>, Shift>,
    caption: &str,
    ranges: (Range<f64>, Y),
    ticks: usize,
    y_desc: &str,
    y_label: &dyn Fn(&f64) -> String,
) -> Result<ChartContext<'c, BitMapBackend<'c>, Cartesian2d<RangedCoordf64, Y::CoordDescType>>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .caption(caption, (FAMILY, 20))
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(ranges.0, ranges.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(ticks)
        .x_label_formatter(&depth_label)
        .x_desc("linear layers")
        .y_desc(y_desc)
        .y_label_formatter(y_label)
        .light_line_style(WHITE)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// The depth (linear layers) at a whole `log2` on the x axis; nothing between.
fn depth_label(v: &f64) -> String {
    let r = v.round();
    if (v - r).abs() < 1e-6 {
        format!("{}", 2f64.powf(r))
    } else {
        String::new()
    }
}

/// The line through the `(x, y)` of `s` in colour `c` with a dot at each point, in the
/// legend as `label` if one is given.
fn curve<Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    s: &[(f64, f64, f64)],
    c: RGBColor,
    label: Option<&str>,
) -> Result<()> {
    let line = chart
        .draw_series(LineSeries::new(
            s.iter().map(|&(x, y, _)| (x, y)),
            c.stroke_width(2),
        ))
        .map_err(err)?;
    if let Some(label) = label {
        line.label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3)));
    }
    chart
        .draw_series(
            s.iter()
                .map(|&(x, y, _)| Circle::new((x, y), 4, c.filled())),
        )
        .map_err(err)?;
    Ok(())
}
