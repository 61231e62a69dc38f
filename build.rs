//! Embeds an rpath to libtorch into this crate's own test, example and bench binaries,
//! so that they run without LD_LIBRARY_PATH. Crates that depend on tch2pc are not affected
//! (cargo applies `rustc-link-arg` only to this package's targets).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = PathBuf::from(dir).join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        if lib.is_dir() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
}
