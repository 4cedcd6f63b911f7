#!/usr/bin/env bash
# The package as a user installs it, not as the editable checkout the tests use:
#   1. builds the wheel (pip wheel --no-build-isolation --no-deps, CPU kernels only) from a
#      copy of the tracked files, so nothing untracked or already built sneaks in;
#   2. kernel-only: installs it into a virtualenv holding only torch and numpy, checks the
#      install pulled in nothing else, and imports infdiff_kernels with its C++ kernels;
#   3. pipeline: installs it with the [pipeline] extra into a second virtualenv and runs
#      `infdiff --help`, a tiny train (preset by name and by its configs/ path) and a sample,
#      from a folder without the sources.
# Run from the repo root by .ci/run, after scripts/setup.sh made .venv (it builds the wheel).
# The virtualenvs and the wheel (keyed by the content of the tracked files) are cached in
# $INFDIFF_CACHE (default ~/.cache/infdiff-ci), so a rerun without source changes skips the
# compile. Environment: PYTHON (the interpreter of the clean venvs, default python3.11),
# INFDIFF_TORCH (default torch==2.13.0, the CPU build scripts/setup.sh installs), MAX_JOBS,
# BUILD_PYTHON (default .venv/bin/python).
set -euo pipefail
ROOT=$(pwd)
[[ -f "$ROOT/setup.py" && -d "$ROOT/csrc" ]] || { echo "run from the repo root" >&2; exit 2; }
CACHE=${INFDIFF_CACHE:-$HOME/.cache/infdiff-ci}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_SPEC=${INFDIFF_TORCH:-torch==2.13.0}
BUILD_PYTHON=${BUILD_PYTHON:-$ROOT/.venv/bin/python}  # has torch, setuptools, ninja: the build tools
start=$SECONDS
stamp() { echo "== [wheel check $((SECONDS - start)) s] $*"; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# ---- 1. the wheel
key=$(cd "$ROOT" && { git ls-files -s; git diff HEAD; } | sha1sum | cut -c1-16)  # blobs, and edits not yet committed
wheels=$CACHE/wheels/$key
if ! ls "$wheels"/infdiff-*.whl >/dev/null 2>&1; then
  stamp "building the wheel ($key) from a copy of the tracked files"
  mkdir -p "$scratch/src" "$wheels.partial"
  (cd "$ROOT" && git ls-files -z | xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$scratch/src"
  # The extension scripts/setup.sh just compiled in place from these sources is packaged as
  # it is (setup.py's INFDIFF_PREBUILT_EXT): compiling it again costs up to 30 min on 2 busy
  # cores, and what is checked here is the packaging, not the compiler. Only a .so newer
  # than every C++ source and setup.py is taken; otherwise the wheel compiles its own.
  built=$(ls "$ROOT"/infdiff_kernels/_C*.so 2>/dev/null | head -1 || true)
  if [[ -n "$built" ]] && [[ -z $(cd "$ROOT" && find csrc setup.py -newer "$built" -type f | head -1) ]]; then
    export INFDIFF_PREBUILT_EXT=$built
    stamp "packaging the extension setup.sh built in place: $(basename "$built")"
  fi
  (cd "$scratch/src" && INFDIFF_CPU_ONLY=1 MAX_JOBS=${MAX_JOBS:-2} \
     "$BUILD_PYTHON" -m pip wheel . --no-build-isolation --no-deps -q -w "$wheels.partial")
  rm -rf "$wheels" && mv "$wheels.partial" "$wheels"
else
  stamp "reusing the wheel built for these sources ($key)"
fi
wheel=$(ls "$wheels"/infdiff-*.whl)
"$BUILD_PYTHON" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for wanted in ("infdiff/configs/tiny.yaml", "infdiff/configs/mnist.yaml", "infdiff_kernels/_C"):
    if not any(n.startswith(wanted) for n in names):
        sys.exit(f"the wheel lacks {wanted}")
EOF

fresh_venv() {  # fresh_venv <dir>: a virtualenv with torch and numpy only (created once, then cached)
  local venv=$1
  if [[ ! -f "$venv/.torch-numpy" ]]; then
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "$TORCH_SPEC" numpy
    "$venv/bin/python" -m pip freeze > "$venv/.torch-numpy"
  fi
}

# ---- 2. kernels only: torch + numpy + the wheel, nothing more
stamp "kernel-only install"
KVENV=$CACHE/venv-wheel-kernels
fresh_venv "$KVENV"
"$KVENV/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
"$KVENV/bin/python" -m pip install -q "$wheel"  # resolves its declared dependencies
"$KVENV/bin/python" -m pip freeze --exclude infdiff > "$scratch/after"
if ! diff -u "$KVENV/.torch-numpy" "$scratch/after"; then
  echo "installing the wheel without extras changed the environment above: the kernels must need torch and numpy only" >&2
  exit 1
fi
(cd "$scratch" && "$KVENV/bin/python" -W error::RuntimeWarning -c "
import os, sys, infdiff_kernels as k
assert os.path.realpath(k.__file__).startswith(os.path.realpath(sys.prefix)), k.__file__
assert 'cpu' in k.available_backends('cpu'), k.available_backends('cpu')
print('infdiff_kernels from the wheel, backends on cpu:', k.available_backends('cpu'))
")

# ---- 3. the pipeline extra: the infdiff command end to end
stamp "pipeline install (infdiff[pipeline])"
PVENV=$CACHE/venv-wheel-pipeline
fresh_venv "$PVENV"
"$PVENV/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
"$PVENV/bin/python" -m pip install -q "$wheel[pipeline]"
cd "$scratch"  # no configs/ and no sources here: presets must come from the package
export OMP_NUM_THREADS=1
"$PVENV/bin/infdiff" --help > help.txt
grep -q "demo" help.txt
"$PVENV/bin/infdiff" train --help | grep -q "tiny"
stamp "tiny train and sample from the installed command"
"$PVENV/bin/infdiff" train --config tiny --set train.out_dir=run --set train.steps=4 --set train.ckpt_every=0
"$PVENV/bin/infdiff" train --config configs/tiny.yaml --resume run/checkpoint.pt --set train.out_dir=run \
  --set train.steps=6 --set train.ckpt_every=0
"$PVENV/bin/infdiff" sample --ckpt run/checkpoint.pt --resolution 16 32 --n 2 --steps 2 --out samples --device auto
ls samples/samples_16px.png samples/samples_32px.png >/dev/null
stamp "the installed wheel works (kernels alone, and the pipeline)"
