#!/usr/bin/env bash
# Installs libtorch (PyTorch 2.11.0 from PyPI, the version tch 0.24 pins) into a local
# virtual environment, once, and links it as ./.libtorch, which .cargo/config.toml
# points LIBTORCH at. Quick (a few ms) when already set up.
#
# Honours an existing LIBTORCH or LIBTORCH_USE_PYTORCH in the environment: then it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
VENV=${TCH2PC_VENV:-.venv}

if [ -n "${LIBTORCH:-}" ] || [ -n "${LIBTORCH_USE_PYTORCH:-}" ]; then
  exit 0
fi
if [ -e .libtorch/lib/libtorch.so ] && [ -f "$VENV/.torch-$TORCH_VERSION" ]; then
  exit 0
fi

PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  echo "tch2pc setup: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "tch2pc setup: installing torch==$TORCH_VERSION into $VENV (once; about 5 GB)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" numpy
fi
TORCH_DIR=$("$VENV/bin/python" -c "import torch, os; print(os.path.dirname(torch.__file__))")
ln -sfn "$TORCH_DIR" .libtorch
touch "$VENV/.torch-$TORCH_VERSION"
echo "tch2pc setup: libtorch at $TORCH_DIR" >&2
