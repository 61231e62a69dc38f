//! The files of a sweep of the `resnet` and `depth` examples, in `--out`: `<stem>.csv` (one
//! row per run, the error message last), `<stem>.settings.json` (the settings that the
//! figure's title names and the CSV does not record, with the CSV's CRC-32), `<stem>.md`
//! (the Markdown tables) and `<stem>.png` (the plot), and `--replot`, which redraws the PNG
//! from the CSV and the settings file.

#![allow(dead_code)]

use std::fmt::Display;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{anyhow, Context, Result};
use clap::ValueEnum;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cli::say;
use super::fit::Method;
use super::sweep::Outcome;

/// The paths of a sweep's files.
pub struct Output {
    dir: PathBuf,
    pub csv: PathBuf,
    pub settings: PathBuf,
    pub md: PathBuf,
    pub png: PathBuf,
}

/// The settings file: the example's settings `S` and the CRC-32 of the CSV they belong to
/// (so that a CSV rewritten without it, by an older version, is not described by stale
/// settings).
#[derive(Serialize, Deserialize)]
struct SettingsFile<S> {
    csv_crc32: u32,
    #[serde(flatten)]
    settings: S,
}

/// The CRC-32 of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

impl Output {
    /// `<dir>/<stem>.csv`, `.settings.json`, `.md` and `.png`.
    pub fn new(dir: &Path, stem: &str) -> Self {
        Output {
            dir: dir.to_path_buf(),
            csv: dir.join(format!("{stem}.csv")),
            settings: dir.join(format!("{stem}.settings.json")),
            md: dir.join(format!("{stem}.md")),
            png: dir.join(format!("{stem}.png")),
        }
    }

    /// The settings written beside the CSV by [`Output::write`]; `None`, with a note on
    /// stdout, when there are none (a CSV of a version that did not write them) or they
    /// belong to another CSV.
    fn read_settings<S: DeserializeOwned>(&self) -> Result<Option<S>> {
        let (csv, text) = match (fs::read(&self.csv), fs::read_to_string(&self.settings)) {
            (Ok(csv), Ok(text)) => (csv, text),
            (Err(e), _) => {
                return Err(e).with_context(|| format!("cannot read {}", self.csv.display()))
            }
            (_, Err(e)) if e.kind() == ErrorKind::NotFound => {
                say!(
                    "note: no {}; the title names only what {} records",
                    self.settings.display(),
                    self.csv.display()
                )?;
                return Ok(None);
            }
            (_, Err(e)) => {
                return Err(e).with_context(|| format!("cannot read {}", self.settings.display()))
            }
        };
        let file: SettingsFile<S> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a settings file", self.settings.display()))?;
        if file.csv_crc32 != crc32(&csv) {
            say!(
                "note: {} belongs to another version of {}; the title names only what the CSV \
                 records",
                self.settings.display(),
                self.csv.display()
            )?;
            return Ok(None);
        }
        Ok(Some(file.settings))
    }

    /// `--replot`: `draw` redraws the PNG (at the path it is given) from the CSV, with the
    /// settings written beside it if there are any that belong to it.
    pub fn replot<S: DeserializeOwned>(
        &self,
        draw: impl FnOnce(&Path, Option<&S>) -> Result<()>,
    ) -> Result<()> {
        let settings = self.read_settings::<S>()?;
        draw(&self.png, settings.as_ref())
            .with_context(|| format!("cannot draw {}", self.png.display()))?;
        if settings.is_some() {
            say!(
                "redrew {} from {} and {}",
                self.png.display(),
                self.csv.display(),
                self.settings.display()
            )
        } else {
            say!("redrew {} from {}", self.png.display(), self.csv.display())
        }
    }

    /// Prints `table`, writes `csv`, the `settings` file, the Markdown `table` and the PNG
    /// that `draw` draws, and says so with the wall time `wall` (seconds).
    pub fn write(
        &self,
        table: &str,
        csv: &Csv,
        settings: &impl Serialize,
        wall: f64,
        draw: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        say!("\n{table}")?;
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        fs::write(&self.csv, &csv.0)
            .with_context(|| format!("cannot write {}", self.csv.display()))?;
        let file = SettingsFile {
            csv_crc32: crc32(csv.0.as_bytes()),
            settings,
        };
        let json = serde_json::to_string_pretty(&file).context("cannot encode the settings")?;
        fs::write(&self.settings, json + "\n")
            .with_context(|| format!("cannot write {}", self.settings.display()))?;
        fs::write(&self.md, table)
            .with_context(|| format!("cannot write {}", self.md.display()))?;
        draw(&self.png).with_context(|| format!("cannot draw {}", self.png.display()))?;
        say!(
            "wrote {}, {}, {} and {} ({wall:.0} s)",
            self.csv.display(),
            self.settings.display(),
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
