//! The files of a sweep of the `resnet` and `depth` examples, in `--out`: `<stem>.csv` (one
//! row per run, the error message last), `<stem>.md` (the Markdown tables) and
//! `<stem>.png` (the plot), and `--replot`, which redraws the PNG from the CSV.

#![allow(dead_code)]

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, Context, Result};
use clap::ValueEnum;

use super::cli::say;
use super::fit::Method;
use super::sweep::Outcome;

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

    /// Prints `table`, writes `csv`, the Markdown `table` and the PNG that `draw` draws, and
    /// says so with the wall time `wall` (seconds).
    pub fn write(
        &self,
        table: &str,
        csv: &Csv,
        wall: f64,
        draw: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        say!("\n{table}")?;
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        fs::write(&self.csv, &csv.0)
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

/// The text of a CSV: a header line, then a line per run.
pub struct Csv(String);

impl Csv {
    /// The header: `columns`, comma-separated, the error message last.
    pub fn new(columns: &str) -> Self {
        Csv(format!("{columns}\n"))
    }

    /// A line of `cells` and the error message `error` (the last column, which may hold
    /// commas): the cells joined by commas, the message in double quotes with its own
    /// double quotes turned into single ones.
    pub fn row(&mut self, cells: &[&dyn Display], error: &str) {
        for cell in cells {
            self.0 += &format!("{cell},");
        }
        self.0 += &format!("\"{}\"\n", error.replace('"', "'"));
    }
}

/// One data line of a CSV read back by [`read_csv`], its cells found by their column's name.
pub struct Line<'a> {
    columns: &'a [&'a str],
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

    /// The cell of column `name`.
    pub fn text(&self, name: &str) -> Result<&str> {
        let i = self
            .columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| anyhow!("the example's CSV has no column {name}"))?;
        self.cells.get(i).copied().ok_or_else(|| self.bad())
    }

    /// The cell of column `name`, parsed.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<T> {
        self.text(name)?.parse().map_err(|_| self.bad())
    }

    /// The method labelled in column `method`.
    pub fn method(&self) -> Result<Method> {
        let label = self.text("method")?;
        Method::value_variants()
            .iter()
            .copied()
            .find(|m| m.label() == label)
            .ok_or_else(|| self.bad())
    }

    /// The outcome in columns `accuracy`, `seconds_per_epoch` and `backtracks` (the error
    /// message is not read back).
    pub fn outcome(&self) -> Result<Outcome> {
        Ok(Outcome {
            accuracy: self.get("accuracy")?,
            seconds_per_epoch: self.get("seconds_per_epoch")?,
            backtracks: self.get("backtracks")?,
            error: String::new(),
        })
    }
}

/// The rows that `row` makes of the data lines of the CSV at `path`, whose first line is
/// `header` (comma-separated column names, `error` last). A line may lack the error
/// column; `row` may read every other cell.
pub fn read_csv<T>(path: &Path, header: &str, row: impl Fn(&Line) -> Result<T>) -> Result<Vec<T>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let columns: Vec<&str> = header.split(',').collect();
    let mut rows = Vec::new();
    for (i, text) in text.lines().enumerate().skip(1) {
        let line = Line {
            columns: &columns,
            cells: text.splitn(columns.len(), ',').collect(),
            path,
            number: i + 1,
        };
        if line.cells.len() < columns.len() - 1 {
            return Err(line.bad());
        }
        rows.push(row(&line)?);
    }
    Ok(rows)
}
