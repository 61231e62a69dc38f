#!/usr/bin/env bash
# Checks the README's "Use it in your crate" recipe from outside the repository: makes a
# throw-away crate in a temporary directory whose Cargo.toml dependencies, build.rs and
# src/main.rs are copied literally from the README (the code blocks after the
# `<!-- check_downstream: ... -->` markers; the one change is the README's own "local
# clone" line, `tch2pc = { path = ... }` pointing at this repository, in place of the git
# line), builds it, and runs its binary with LD_LIBRARY_PATH unset, so that it starts only
# if build.rs embedded libtorch's lib/ as an rpath. Then it builds the same crate without
# build.rs and checks that this binary does NOT start (the failure the build.rs prevents).
#
# libtorch: whatever the caller set (LIBTORCH or LIBTORCH_USE_PYTORCH), else the
# repository's .libtorch (installed by scripts/setup.sh), as for the tests.
# Target dir: $CARGO_TARGET_DIR if set, else this repository's target/, so that the
# compiled torch-sys and tch are reused rather than rebuilt (it adds well under a minute).
#
# Usage: scripts/check_downstream.sh [--keep]   (--keep: leave the temporary crate)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
keep=0
[ "${1:-}" = "--keep" ] && keep=1

bash "$repo/scripts/setup.sh"
if [ -z "${LIBTORCH:-}" ] && [ -z "${LIBTORCH_USE_PYTORCH:-}" ]; then
  # The value the repository's .cargo/config.toml gives cargo (an absolute path).
  export LIBTORCH="$repo/.libtorch"
fi
if [ -n "${LIBTORCH:-}" ] && [ -z "${LIBTORCH_USE_PYTORCH:-}" ]; then
  # Not part of the recipe: torch-sys 0.24 defaults LIBTORCH_CXX11_ABI to 1, which the
  # repository's .cargo/config.toml also sets. cargo rebuilds torch-sys whenever the value
  # it saw changes (unset is not "1"), so the throw-away crate must see what the
  # repository's builds see to reuse their torch-sys instead of rebuilding it.
  export LIBTORCH_CXX11_ABI="${LIBTORCH_CXX11_ABI-1}"
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
unset LD_LIBRARY_PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tch2pc-downstream.XXXXXX")
if [ "$keep" = 1 ]; then
  echo "check_downstream: the throw-away crate stays in $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

# The code block that follows the marker `<!-- check_downstream: $1 -->` in the README.
block() {
  awk -v marker="<!-- check_downstream: $1 -->" '
    $0 == marker { found = 1; next }
    found == 1 && /^```/ { found = 2; next }
    found == 2 && /^```/ { exit }
    found == 2 { print }
  ' "$repo/README.md"
}

crate="$tmp/tch2pc-downstream-check"
mkdir -p "$crate/src"
deps=$(block Cargo.toml)
build_rs=$(block build.rs)
example=$(block main.rs)
for part in deps build_rs example; do
  if [ -z "${!part}" ]; then
    echo "check_downstream: README.md has no code block after its $part marker" >&2
    exit 1
  fi
done
git_line='tch2pc = { git = "https://github.com/tch2pc/tch2pc" }'
if ! grep -qxF "$git_line" <<<"$deps"; then
  echo "check_downstream: the README's dependencies lack the line: $git_line" >&2
  exit 1
fi
{
  printf '[package]\nname = "tch2pc-downstream-check"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
  # The README's "a local clone instead" line, pointing at this repository.
  sed "s|^tch2pc = { git = .*|tch2pc = { path = \"$repo\" }|" <<<"$deps"
} >"$crate/Cargo.toml"
printf '%s\n' "$build_rs" >"$crate/build.rs"
# The README's example is a whole program: it is the crate's main.rs, literally.
printf '%s\n' "$example" >"$crate/src/main.rs"
# The repository's lock file, so that the same dependency versions (and hence the same
# compiled artifacts) are used; cargo adds the throw-away crate to it.
cp "$repo/Cargo.lock" "$crate/Cargo.lock"

echo "check_downstream: building $crate (target dir $CARGO_TARGET_DIR)"
(cd "$crate" && cargo build --release --quiet)
bin="$CARGO_TARGET_DIR/release/tch2pc-downstream-check"
echo "check_downstream: running it with LD_LIBRARY_PATH unset"
"$bin"

echo "check_downstream: the same crate without build.rs must fail to start"
rm "$crate/build.rs"
(cd "$crate" && cargo build --release --quiet)
if out=$("$bin" 2>&1); then
  echo "check_downstream: without build.rs the binary started anyway: libtorch is on this" >&2
  echo "system's default library path, so the check above proves nothing here" >&2
  exit 1
fi
if ! grep -q "cannot open shared object file" <<<"$out"; then
  echo "check_downstream: without build.rs the binary failed, but not for want of libtorch:" >&2
  echo "$out" >&2
  exit 1
fi
echo "check_downstream: ok (without build.rs: $(head -n 1 <<<"$out"))"
# Leave no binary without rpath behind in a shared target dir.
rm -f "$bin"
