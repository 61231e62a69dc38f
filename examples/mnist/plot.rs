//! The training curves as a PNG: loss per step (top) and test accuracy per epoch (bottom).
//!
//! Text is drawn with a bundled DejaVu Sans font (`assets/DejaVuSans.ttf`, registered
//! with plotters' `ab_glyph` backend), so no system font libraries are needed.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::font::{self, FAMILY};
use crate::train::History;

const DARK_GREEN: RGBColor = RGBColor(0, 140, 60);

/// Ticks `{1, 2, 5} x 10^k` inside `[lo, hi]` (`0 < lo < hi`), for a log axis.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    for k in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
        for m in [1.0, 2.0, 5.0] {
            // Round-trip through a string so that labels print as 0.02, not 0.020000000000000004.
            let t: f64 = format!("{m}e{k}").parse().unwrap_or(m * 10f64.powi(k));
            if (lo..=hi).contains(&t) {
                ticks.push(t);
            }
        }
    }
    ticks
}

/// Draws `history` into the PNG `path` (1000 pixels wide) under the title `title` and,
/// below it, the lines of `subtitle` (the run's settings).
pub fn draw(path: &Path, history: &History, title: &str, subtitle: &[String]) -> Result<()> {
    font::register()?;
    let err = |e: &dyn std::fmt::Display| anyhow!("{e}");

    let sub_height = 22 * u32::try_from(subtitle.len()).unwrap_or(0) + 8;
    let root = BitMapBackend::new(path, (1000, 800 + sub_height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, (FAMILY, 26)).map_err(|e| err(&e))?;
    let (sub, root) = root.split_vertically(sub_height);
    for (i, line) in subtitle.iter().enumerate() {
        sub.draw(&Text::new(
            line.clone(),
            (500, 2 + 22 * i32::try_from(i).unwrap_or(0)),
            (FAMILY, 15)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(|e| err(&e))?;
    }
    let (top, bottom) = root.split_vertically(390);

    // Training loss per step, log scale.
    let steps = &history.steps;
    let last_step = steps.last().map_or(1, |s| s.step).max(2) as f64;
    let (mut lo, mut hi) = steps
        .iter()
        .map(|s| s.loss)
        .filter(|l| l.is_finite() && *l > 0.0)
        .fold((f64::INFINITY, 0f64), |(lo, hi), l| (lo.min(l), hi.max(l)));
    if !lo.is_finite() {
        (lo, hi) = (0.01, 1.0);
    }
    let (lo, hi) = (lo / 1.2, hi * 1.2);
    let mut chart = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption("training loss per step", (FAMILY, 20))
        // Room left and right of the first and last step, so that no marker is clipped.
        .build_cartesian_2d(
            0f64..last_step * 1.02 + 1.0,
            (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v}"))
        .light_line_style(WHITE)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            steps
                .iter()
                .filter(|s| s.loss > 0.0)
                .map(|s| (s.step as f64, s.loss)),
            BLUE.stroke_width(1),
        ))
        .map_err(|e| err(&e))?
        .label("batch loss")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    let epoch_ends: Vec<(f64, f64)> = history
        .epochs
        .iter()
        .filter_map(|e| {
            let end = steps
                .iter()
                .filter(|s| s.epoch == e.epoch)
                .map(|s| s.step)
                .max()?;
            (e.train_loss > 0.0).then_some((end as f64, e.train_loss))
        })
        .collect();
    chart
        .draw_series(epoch_ends.iter().map(|&p| Circle::new(p, 4, RED.filled())))
        .map_err(|e| err(&e))?
        .label("epoch mean (at the epoch's last step)")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // Test accuracy per epoch, in percent.
    let acc: Vec<(f64, f64)> = history
        .epochs
        .iter()
        .map(|e| (e.epoch as f64, 100.0 * e.test_accuracy))
        .collect();
    let last_epoch = acc.last().map_or(1.0, |a| a.0).max(1.0);
    let min_acc = acc.iter().map(|a| a.1).fold(100f64, f64::min);
    let floor = ((min_acc - 2.0) / 5.0).floor().clamp(0.0, 19.0) * 5.0;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption("test accuracy per epoch", (FAMILY, 20))
        .build_cartesian_2d(0.5f64..last_epoch + 0.5, floor..100f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy (%)")
        .x_labels((last_epoch as usize).min(20))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            acc.iter().copied(),
            DARK_GREEN.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(acc.iter().map(|&p| Circle::new(p, 4, DARK_GREEN.filled())))
        .map_err(|e| err(&e))?;
    if let Some(&(x, y)) = acc.last() {
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{y:.2}%"),
                (x, y),
                (FAMILY, 15)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Right, VPos::Bottom)),
            )))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
