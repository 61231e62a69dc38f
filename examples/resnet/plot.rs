//! The `resnet` example's plot: test accuracy per method, the plain chain and the residual
//! net side by side (bars: mean over seeds; whiskers: ± sd; dots: the seeds).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::common::figure::{self, err};
use crate::common::fit::Method;
use crate::common::font::FAMILY;
use crate::common::stats;
use crate::Row;

const CHAIN: RGBColor = RGBColor(230, 130, 40);
const RESIDUAL: RGBColor = RGBColor(40, 100, 200);

/// Draws the accuracies of `rows` into the PNG `path` (1000x600 pixels), the methods in
/// the order in which they first occur in `rows`; a failed run (accuracy `NaN`) is a cross
/// at the bottom.
pub fn draw(path: &Path, rows: &[Row], title: &str) -> Result<()> {
    let root = figure::canvas(path, (1000, 600))?;
    let methods: Vec<Method> = figure::distinct(rows.iter().map(|r| r.method));

    let names: Vec<&str> = methods.iter().map(|m| m.label()).collect();
    let k = methods.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .caption(title, (FAMILY, 24))
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..k - 0.5, 0f64..115f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(methods.len() * 2 + 1)
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .y_desc("test accuracy (%)")
        // The band above 100 holds the legend.
        .y_label_formatter(&|v| {
            if *v <= 100.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .light_line_style(WHITE)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .draw()
        .map_err(err)?;

    for (skip, color, offset, label) in [
        (false, CHAIN, -0.2, "plain chain (no skips)"),
        (true, RESIDUAL, 0.2, "residual (skips)"),
    ] {
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        let mut dots = Vec::new();
        let mut failed = Vec::new();
        for (i, &m) in methods.iter().enumerate() {
            let x = i as f64 + offset;
            let accs: Vec<f64> = rows
                .iter()
                .filter(|r| r.skip == skip && r.method == m)
                .map(|r| 100.0 * r.outcome.accuracy)
                .collect();
            if let Some((mean, sd, _)) = stats::mean_sd(&accs) {
                bars.push(Rectangle::new(
                    [(x - 0.17, 0.0), (x + 0.17, mean)],
                    color.mix(0.75).filled(),
                ));
                whiskers.push(PathElement::new(
                    vec![(x, (mean - sd).max(0.0)), (x, (mean + sd).min(100.0))],
                    BLACK.stroke_width(2),
                ));
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{mean:.1}"),
                        // Above the whisker and every seed's dot.
                        (x, accs.iter().copied().fold(mean + sd, f64::max) + 1.0),
                        (FAMILY, 14).into_font().color(&BLACK).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Bottom,
                            ),
                        ),
                    )))
                    .map_err(err)?;
            }
            for a in accs {
                if a.is_finite() {
                    dots.push(Circle::new((x, a), 3, BLACK.filled()));
                } else {
                    failed.push(Cross::new((x, 2.0), 6, RED.stroke_width(2)));
                }
            }
        }
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], color.filled()));
        chart.draw_series(whiskers).map_err(err)?;
        chart.draw_series(dots).map_err(err)?;
        chart.draw_series(failed).map_err(err)?;
    }
    figure::legend(&mut chart, SeriesLabelPosition::UpperRight, 16)?;
    root.present().map_err(err)
}
