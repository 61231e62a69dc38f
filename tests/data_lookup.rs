//! `tch2pc::data::find_bundled`: the order in which it looks for the bundled digits.
//!
//! A test binary of its own with a single test, because it sets and removes the
//! process-wide environment variable `TCH2PC_DATA_DIR`, which no other test may see
//! change. (That every place is named in the error when none holds the digits is
//! tested next to the code, in `src/data.rs`, where the compile-time place can be
//! made to fail.)

use std::path::{Path, PathBuf};

use tch::{Device, Kind};
use tch2pc::data::{bundled_dir, find_bundled, load_dir, DATA_DIR_ENV};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tch2pc-data-lookup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the bundled digits into `dir`, as a user shipping a binary would.
fn copy_bundled(dir: &Path) {
    for entry in std::fs::read_dir(bundled_dir()).expect("read the bundled dir") {
        let entry = entry.expect("a directory entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy a file");
    }
}

#[test]
fn explicit_path_then_environment_variable_then_the_crate_directory() {
    assert_eq!(DATA_DIR_ENV, "TCH2PC_DATA_DIR");
    let copy = TempDir::new("copy");
    copy_bundled(copy.path());
    let other = TempDir::new("other");
    copy_bundled(other.path());
    let missing = copy.path().join("no-such-dir");

    // Nothing given, nothing set: the directory the crate was compiled from.
    std::env::remove_var(DATA_DIR_ENV);
    assert_eq!(find_bundled(None).unwrap(), bundled_dir());
    std::env::set_var(DATA_DIR_ENV, "");
    assert_eq!(find_bundled(None).unwrap(), bundled_dir());

    // The environment variable comes before the crate's directory ...
    std::env::set_var(DATA_DIR_ENV, copy.path());
    assert_eq!(find_bundled(None).unwrap(), copy.path());
    // ... and the explicit path before both.
    assert_eq!(find_bundled(Some(other.path())).unwrap(), other.path());
    // A place without the digits is skipped.
    assert_eq!(find_bundled(Some(&missing)).unwrap(), copy.path());
    std::env::set_var(DATA_DIR_ENV, &missing);
    assert_eq!(find_bundled(None).unwrap(), bundled_dir());
    assert_eq!(find_bundled(Some(other.path())).unwrap(), other.path());

    // A copy found through the variable loads like the original.
    std::env::set_var(DATA_DIR_ENV, copy.path());
    let dir = find_bundled(None).unwrap();
    let ds = load_dir(&dir, Kind::Float, Device::Cpu).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (8000, 2000));
    std::env::remove_var(DATA_DIR_ENV);
}
