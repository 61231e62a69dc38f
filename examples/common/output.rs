//! The files of a sweep of the `resnet` and `depth` examples, in `--out`: `<stem>.csv` (one
//! row per run, the error message last), `<stem>.md` (the Markdown tables) and
//! `<stem>.png` (the plot), and `--replot`, which redraws the PNG from the CSV.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, Context, Result};
use clap::ValueEnum;

use crate::cli::say;
use crate::fit::Method;

/// The paths of a sweep's files.
pub struct Output {
    dir: PathBuf,
    pub csv: PathBuf,
    pub md: PathBuf,
    pub png: PathBuf,
}

impl Output {
    /// `<dir>/<stem>.csv`, `.md` and `.png`.
    pub fn new(dir: &Path, stem: &str) -> Self {
        Output {
            dir: dir.to_path_buf(),
            csv: dir.join(format!("{stem}.csv")),
            md: dir.join(format!("{stem}.md")),
            png: dir.join(format!("{stem}.png")),
        }
    }

    /// `--replot`: `draw` redraws the PNG (at the path it is given) from the CSV.
    pub fn replot(&self, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        draw(&self.png).with_context(|| format!("cannot draw {}", self.png.display()))?;
        say!("redrew {} from {}", self.png.display(), self.csv.display())
    }

    /// Prints `table`, writes the CSV text `csv`, the Markdown `table` and the PNG that
    /// `draw` draws, and says so with the wall time `wall` (seconds).
    pub fn write(
        &self,
        table: &str,
        csv: &str,
        wall: f64,
        draw: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        say!("\n{table}")?;
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        fs::write(&self.csv, csv)
            .with_context(|| format!("cannot write {}", self.csv.display()))?;
        fs::write(&self.md, table)
            .with_context(|| format!("cannot write {}", self.md.display()))?;
        draw(&self.png).with_context(|| format!("cannot draw {}", self.png.display()))?;
        say!(
            "wrote {}, {} and {} ({wall:.0} s)",
            self.csv.display(),
            self.md.display(),
            self.png.display()
        )
    }
}

/// A CSV line of `cells` and the error message `error` (the last column, which may hold
/// commas): the cells joined by commas, the message in double quotes with its own double
/// quotes turned into single ones.
pub fn csv_line(cells: &[String], error: &str) -> String {
    format!("{},\"{}\"\n", cells.join(","), error.replace('"', "'"))
}

/// One data line of a CSV read back by [`read_csv`].
pub struct Line<'a> {
    cells: Vec<&'a str>,
    path: &'a Path,
    /// 1-based, the header being line 1.
    number: usize,
}

impl Line<'_> {
    fn bad(&self) -> anyhow::Error {
        anyhow!(
            "{}: line {} is not a row of this example's CSV",
            self.path.display(),
            self.number
        )
    }

    /// Cell `i` as text.
    pub fn text(&self, i: usize) -> &str {
        self.cells[i]
    }

    /// Cell `i` parsed.
    pub fn get<T: FromStr>(&self, i: usize) -> Result<T> {
        self.cells[i].parse().map_err(|_| self.bad())
    }

    /// Cell `i` as the method of that label.
    pub fn method(&self, i: usize) -> Result<Method> {
        Method::value_variants()
            .iter()
            .copied()
            .find(|m| m.label() == self.cells[i])
            .ok_or_else(|| self.bad())
    }
}

/// The rows that `row` makes of the data lines of the CSV at `path`, whose first line is
/// `header` (comma-separated column names, the error message last). The error column may
/// be missing; `row` may read every other cell.
pub fn read_csv<T>(path: &Path, header: &str, row: impl Fn(&Line) -> Result<T>) -> Result<Vec<T>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let columns = header.split(',').count();
    let mut rows = Vec::new();
    for (i, text) in text.lines().enumerate().skip(1) {
        let line = Line {
            cells: text.splitn(columns, ',').collect(),
            path,
            number: i + 1,
        };
        if line.cells.len() < columns - 1 {
            return Err(line.bad());
        }
        rows.push(row(&line)?);
    }
    Ok(rows)
}
