#!/usr/bin/env bash
# Triton real-compile check, run from the repo root by .ci/run: every Triton kernel of
# infdiff_kernels compiled for sm_80 and sm_90 (no GPU needed) over the specialisations
# its launchers produce and every autotune config. Writes build/triton-report.txt
# (registers, spills, shared memory); fails on a compile error, a spill, a grid past the
# CUDA limits or an int32 pointer offset. Environment: PYTHON (default .venv/bin/python),
# JOBS (default 2).
set -euo pipefail
[[ -f .ci/triton_compile.py ]] || { echo "run from the repo root" >&2; exit 2; }
PYTHON=${PYTHON:-.venv/bin/python}
start=$SECONDS
# TRITON_INTERPRET must be unset: the check compiles for real.
env -u TRITON_INTERPRET "$PYTHON" .ci/triton_compile.py --jobs "${JOBS:-2}" --report build/triton-report.txt
echo "== [triton compile check] done in $((SECONDS - start)) s"
