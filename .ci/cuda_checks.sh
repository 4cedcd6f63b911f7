#!/usr/bin/env bash
# C++ / CUDA build checks, run from the repo root by .ci/run:
#   1. CMake: C++ unit tests (ctest; they include every CUDA kernel file run on the host
#      through the CUDA emulation against the CPU kernels, so they need no GPU nor nvcc) and,
#      when nvcc exists, the CUDA kernel library with its ptxas register/spill report
#      (build/ptxas-report.txt); any spill fails.
#   2. When nvcc exists: the CUDA build of the Python extension against the CUDA wheel of
#      torch (a venv cached outside the clone), built outside the source tree so the CPU
#      in-place build is untouched, then imported to check `_C.with_cuda`.
# No GPU is needed. Environment: INFDIFF_CACHE (default ~/.cache/infdiff-ci),
# NVCC (default /usr/local/cuda/bin/nvcc), JOBS (default 2).
set -euo pipefail

ROOT=$(pwd)
CACHE=${INFDIFF_CACHE:-$HOME/.cache/infdiff-ci}
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
JOBS=${JOBS:-2}
BUILD=$ROOT/build
CUDA_VENV=$CACHE/venv-cuda
CUDA_VENV_READY=$CUDA_VENV/.infdiff-ready
TORCH_CUDA_PIN="torch==2.14.1"

mkdir -p "$BUILD" "$CACHE"
[[ -f "$ROOT/CMakeLists.txt" && -d "$ROOT/csrc" ]] || { echo "run from the repo root" >&2; exit 2; }

have_nvcc=0
[[ -x "$NVCC" ]] && have_nvcc=1

phase_start=0
phase() {  # phase <name>: prints the timing of the previous phase and starts a new one
  local now=$SECONDS
  [[ -n "${phase_name:-}" ]] && echo "== [${phase_name}] done in $((now - phase_start)) s"
  phase_name=${1:-}
  phase_start=$now
  [[ -n "$phase_name" ]] && echo "== [${phase_name}]"
  return 0
}

# Fails when a ptxas report ($1) shows any non-zero spill; prints the offenders.
check_spills() {
  local report=$1
  if grep -Eq '[1-9][0-9]* bytes spill (stores|loads)' "$report"; then
    echo "FAIL: register spills in $report:" >&2
    grep -B2 -E '[1-9][0-9]* bytes spill (stores|loads)' "$report" >&2
    return 1
  fi
  echo "no spills: $(grep -c 'bytes spill stores' "$report") kernel compilations checked in $report"
}

# --- 1. CMake: C++ tests and the CUDA kernel library --------------------------------
phase "cmake configure"
CMAKE_DIR=$BUILD/cmake
cmake_args=(-S "$ROOT" -B "$CMAKE_DIR" -DCMAKE_BUILD_TYPE=Release)
if ((have_nvcc)); then
  # Each nvcc invocation writes its ptxas report next to its object file, so the report
  # stays complete when an incremental build recompiles only some files.
  mkdir -p "$CMAKE_DIR"
  launcher=$CMAKE_DIR/ptxas-log-launcher.sh
  cat >"$launcher" <<'EOF'
#!/usr/bin/env bash
out=""
prev=""
for arg in "$@"; do
  [[ "$prev" == "-o" ]] && out=$arg
  prev=$arg
done
if [[ -z "$out" ]]; then exec "$@"; fi
set -o pipefail
"$@" 2>&1 | tee "$out.ptxas.txt"
EOF
  chmod +x "$launcher"
  cmake_args+=(-DINFDIFF_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_COMPILER_LAUNCHER="$launcher")
else
  echo "nvcc not found at $NVCC: CUDA library and CUDA extension checks skipped"
  cmake_args+=(-DINFDIFF_CUDA=OFF)
fi
cmake "${cmake_args[@]}" >"$BUILD/cmake-configure.log" 2>&1 || { cat "$BUILD/cmake-configure.log" >&2; exit 1; }

phase "cmake build (C++ tests$( ((have_nvcc)) && echo ', CUDA kernels sm_80/sm_90'))"
cmake --build "$CMAKE_DIR" -j "$JOBS" >"$BUILD/cmake-build.log" 2>&1 || { tail -50 "$BUILD/cmake-build.log" >&2; exit 1; }

phase "ctest"
ctest --test-dir "$CMAKE_DIR" --output-on-failure -j "$JOBS"

if ((have_nvcc)); then
  phase "ptxas spill check (CMake CUDA library)"
  mapfile -t logs < <(find "$CMAKE_DIR" -name '*.ptxas.txt' | sort)
  ((${#logs[@]} > 0)) || { echo "FAIL: no ptxas logs found under $CMAKE_DIR" >&2; exit 1; }
  for log in "${logs[@]}"; do
    echo "### ${log#"$CMAKE_DIR"/}"
    grep -E 'ptxas|bytes stack frame' "$log" || true
  done >"$BUILD/ptxas-report.txt"
  check_spills "$BUILD/ptxas-report.txt"
fi

if ((!have_nvcc)); then
  phase
  exit 0
fi

# --- 2. CUDA extension build against the CUDA wheel of torch -------------------------
phase "CUDA venv ($CUDA_VENV)"
if [[ ! -f "$CUDA_VENV_READY" ]]; then
  # Missing or half-made (no marker): (re)create in place; pip completes partial installs.
  echo "creating / completing the CUDA venv"
  [[ -x "$CUDA_VENV/bin/python" ]] || python3.11 -m venv "$CUDA_VENV"
  "$CUDA_VENV/bin/python" -m pip install -q "$TORCH_CUDA_PIN" numpy pybind11 ninja setuptools wheel
  "$CUDA_VENV/bin/python" -c "import torch; assert torch.version.cuda, 'torch has no CUDA'"
  touch "$CUDA_VENV_READY"
fi
CUDA_PY=$CUDA_VENV/bin/python
"$CUDA_PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
SITE=$("$CUDA_PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

phase "CUDA extension build (setup.py build_ext, TORCH_CUDA_ARCH_LIST=8.0;9.0)"
# Cached per clone path: ninja rebuilds only what changed.
EXT_DIR=$CACHE/cuda-ext/$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)
mkdir -p "$EXT_DIR/lib" "$EXT_DIR/temp"
(
  export CUDA_HOME=/usr/local/cuda
  export PATH=$CUDA_HOME/bin:$CUDA_VENV/bin:$PATH
  export CPATH=$SITE/nvidia/cu13/include${CPATH:+:$CPATH}
  export TORCH_CUDA_ARCH_LIST="8.0;9.0"
  export MAX_JOBS=$JOBS
  unset INFDIFF_CPU_ONLY
  "$CUDA_PY" setup.py -q build_ext --build-lib "$EXT_DIR/lib" --build-temp "$EXT_DIR/temp"
) >"$BUILD/cuda-ext-build.log" 2>&1 || { tail -60 "$BUILD/cuda-ext-build.log" >&2; exit 1; }
grep -E 'ptxas|bytes stack frame' "$BUILD/cuda-ext-build.log" >"$BUILD/ptxas-report-ext.txt" || true
# Empty when ninja had nothing to recompile; the CMake report above covers the kernels.
[[ -s "$BUILD/ptxas-report-ext.txt" ]] && check_spills "$BUILD/ptxas-report-ext.txt"

phase "CUDA extension import"
SO=$(find "$EXT_DIR/lib/infdiff_kernels" -name '_C*.so' | head -1)
[[ -n "$SO" ]] || { echo "FAIL: no _C*.so under $EXT_DIR/lib" >&2; exit 1; }
# Loaded by path from a scratch cwd, so the clone's CPU build cannot be picked up instead.
(cd "$(mktemp -d)" && "$CUDA_PY" - "$SO" <<'EOF'
import importlib.machinery
import importlib.util
import sys

import torch  # loads libtorch / libc10 the extension links against

loader = importlib.machinery.ExtensionFileLoader("infdiff_kernels._C", sys.argv[1])
module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
loader.exec_module(module)
assert module.with_cuda is True, f"with_cuda is {module.with_cuda!r}"
# The CPU path of the CUDA build still runs: one point, 1x1 kernel, no normalisation.
x = torch.tensor([[[2.0]]])
out = module.sparse_conv_forward(
    x, torch.zeros(1, 1, 2, dtype=torch.int32), torch.zeros(1, 1, 1, dtype=torch.int32),
    torch.ones(1, 1, dtype=torch.int32), torch.full((1, 1, 1), 3.0), None, 2)
assert out.item() == 6.0, out
print("imported", sys.argv[1], "with_cuda =", module.with_cuda,
      "CUDA devices:", torch.cuda.device_count())
EOF
)
phase
echo "cuda_checks: all passed"
