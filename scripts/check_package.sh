#!/usr/bin/env bash
# Checks what `cargo publish` would upload, without uploading anything and without libtorch:
#
# 1. the file list (`cargo package --list`): the library's source, the bundled digits
#    (which `data::find_bundled` serves to crates.io users), README.md and LICENSE, and
#    none of the repository's tooling (.cargo/, .ci/, scripts/, tests/, benches/,
#    examples/, assets/, build.rs);
# 2. the size of the .crate file against crates.io's 10 MB limit;
# 3. the documentation of the packaged crate as docs.rs builds it: the .crate unpacked in
#    a temporary directory outside the repository (so the repository's .cargo/config.toml,
#    which points LIBTORCH at .libtorch, does not apply), LIBTORCH, LIBTORCH_USE_PYTORCH and
#    LIBTORCH_CXX11_ABI unset, the `doc-only` feature ([package.metadata.docs.rs]),
#    warnings as errors.
#
# `cargo publish --dry-run` also compiles the packaged crate against libtorch (its
# verification step, into a target dir of its own unless CARGO_TARGET_DIR is set, which
# rebuilds torch-sys); run it by hand before publishing.
#
# The working tree is packaged as it is (--allow-dirty), so this also works before a commit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tch2pc-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "check_package: $*" >&2
  exit 1
}

cargo package --list --allow-dirty --quiet >"$tmp/list"
for f in Cargo.toml README.md LICENSE src/lib.rs src/data.rs data/mnist-10k/README.md \
  data/mnist-10k/train-images-idx3-ubyte.gz data/mnist-10k/train-labels-idx1-ubyte.gz \
  data/mnist-10k/t10k-images-idx3-ubyte.gz data/mnist-10k/t10k-labels-idx1-ubyte.gz; do
  grep -qxF "$f" "$tmp/list" || fail "the package lacks $f"
done
if unwanted=$(grep -E '^(\.cargo|\.ci|scripts|tests|benches|examples|assets|runs|target)/|^build\.rs$' "$tmp/list"); then
  fail "the package holds files users do not need:
$unwanted"
fi
echo "check_package: $(wc -l <"$tmp/list") files: $(grep -c '^src/' "$tmp/list") in src/, $(grep -c '^data/' "$tmp/list") in data/, and $(grep -v -E '^(src|data)/' "$tmp/list" | tr '\n' ' ')"

version=$(sed -n 's/^version = "\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
cargo package --no-verify --allow-dirty --quiet
crate="$CARGO_TARGET_DIR/package/tch2pc-$version.crate"
[ -f "$crate" ] || fail "cargo package did not write $crate"
size=$(stat -c %s "$crate")
limit=$((10 * 1000 * 1000))
[ "$size" -lt "$limit" ] || fail "$crate is $size bytes, over crates.io's limit of $limit"
echo "check_package: $(basename "$crate") is $((size / 1024)) KiB (crates.io's limit: 10 MB)"

tar -xzf "$crate" -C "$tmp"
echo "check_package: cargo doc --features doc-only in $tmp/tch2pc-$version, without libtorch"
(
  cd "$tmp/tch2pc-$version"
  env -u LIBTORCH -u LIBTORCH_USE_PYTORCH -u LIBTORCH_CXX11_ABI -u LD_LIBRARY_PATH \
    RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps --features doc-only --quiet
)
echo "check_package: ok"
