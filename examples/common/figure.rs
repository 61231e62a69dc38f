//! What the figures of the `resnet` and `depth` examples share: a white PNG canvas with
//! the bundled font, plotters' errors as `anyhow` errors, the legend's box, and the pieces
//! of titles that describe the rows drawn (their distinct methods and seeds, counted).

#![allow(dead_code)]

use std::fmt::Display;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use super::font::{self, FAMILY};

/// A plotters error (which is not `Send + Sync` in general) as an `anyhow` error.
pub fn err(e: impl Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// A white PNG of `size` pixels at `path`, to draw on and then
/// [`present`](DrawingArea::present); registers the bundled font first.
pub fn canvas(path: &Path, size: (u32, u32)) -> Result<DrawingArea<BitMapBackend<'_>, Shift>> {
    font::register()?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    Ok(root)
}

/// Draws the labels of `chart`'s series at `position` in a white box with a black border,
/// in the bundled font at `size` pixels.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, size))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// The distinct values of `xs`, in the order in which they first occur.
pub fn distinct<T: PartialEq>(xs: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in xs {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// `"1 seed"`, `"3 seeds"`: `n` and `noun`, plural unless `n` is 1.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
