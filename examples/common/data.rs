//! The data of the MLP examples (`resnet`, `depth`): an MNIST-style IDX directory (the
//! bundled 10k-digit MNIST subset, or e.g. Fashion-MNIST from Debian's
//! `dataset-fashion-mnist` in `/usr/share/datasets/fashion-mnist`, which has the standard
//! file names and `tch2pc::data::load_dir` reads as it is), flattened to `(N, rows·cols)`,
//! optionally cut to its first `train_size` / `test_size` examples.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind};
use tch2pc::data::{self, Split};

/// A dataset ready for the MLPs: flattened images in `[0, 1]` and `Int64` labels.
#[derive(Debug)]
pub struct Data {
    /// A short name for tables and plots: `MNIST` for the bundled subset, else the
    /// directory's last component (`fashion-mnist`).
    pub name: String,
    /// The directory the files came from.
    pub dir: PathBuf,
    /// Training examples, `(N, features)`.
    pub train: Split,
    /// Test examples, `(M, features)`.
    pub test: Split,
    /// Examples in the directory's training and test files before any cut.
    pub full_sizes: (usize, usize),
}

impl Data {
    /// The number of input features (`rows · cols`).
    pub fn features(&self) -> i64 {
        self.train.images.size()[1]
    }

    /// `"MNIST (4000 of 8000 train, 2000 test)"`, for headers.
    pub fn describe(&self) -> String {
        let part = |n: usize, of: usize, what: &str| {
            if n == of {
                format!("{n} {what}")
            } else {
                format!("{n} of {of} {what}")
            }
        };
        format!(
            "{} ({}, {})",
            self.name,
            part(self.train.len(), self.full_sizes.0, "train"),
            part(self.test.len(), self.full_sizes.1, "test")
        )
    }
}

/// The first `size` examples of `split` (all of them for `None` or a larger `size`),
/// flattened to `(N, features)`.
fn cut(split: Split, size: Option<usize>) -> Result<Split> {
    let n = split.len();
    let keep = size.map_or(n, |s| s.min(n)) as i64;
    let images = split.images.f_narrow(0, 0, keep)?.f_flatten(1, -1)?;
    let labels = split.labels.f_narrow(0, 0, keep)?;
    Ok(Split { images, labels })
}

/// Loads `dir` (the bundled MNIST subset for `None`) as float32 on `device`, keeping the
/// first `train_size` training and `test_size` test examples (all for `None`).
pub fn load(
    dir: Option<&Path>,
    train_size: Option<usize>,
    test_size: Option<usize>,
    device: Device,
) -> Result<Data> {
    let bundled = dir.is_none();
    let dir = dir.map_or_else(data::bundled_dir, Path::to_path_buf);
    let set = data::load_dir(&dir, Kind::Float, device)
        .with_context(|| format!("cannot load an MNIST-style dataset from {}", dir.display()))?;
    let full_sizes = (set.train.len(), set.test.len());
    if full_sizes.0 == 0 || full_sizes.1 == 0 {
        bail!("{} has an empty training or test set", dir.display());
    }
    if train_size == Some(0) || test_size == Some(0) {
        bail!("--train-size and --test-size must be at least 1");
    }
    let name = if bundled {
        "MNIST".to_string()
    } else {
        dir.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string())
    };
    Ok(Data {
        name,
        train: cut(set.train, train_size)?,
        test: cut(set.test, test_size)?,
        dir,
        full_sizes,
    })
}
