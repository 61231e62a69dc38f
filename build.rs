//! Sets an rpath to libtorch's `lib/` on this package's own tests, examples and benches, so
//! that they run without LD_LIBRARY_PATH, however tch was pointed at libtorch (LIBTORCH, or
//! LIBTORCH_USE_PYTORCH=1). It is the build.rs that the README's "Use it in your crate"
//! gives users, and not part of the published package: cargo applies `rustc-link-arg` only
//! to the package's own binaries, so it would do nothing for crates that depend on tch2pc.
//! torch-sys (`links = "tch"`) tells the packages that depend on it directly where it
//! found libtorch's lib/ in DEP_TCH_LIBTORCH_LIB (hence the direct torch-sys dependency);
//! the variable is unset with the doc-only feature and on Windows.

fn main() {
    // Where torch-sys found libtorch's lib/: $LIBTORCH/lib, or the lib/ of the Python
    // torch (LIBTORCH_USE_PYTORCH=1). Embed it in this package's binaries as an rpath.
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
