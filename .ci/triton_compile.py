#!/usr/bin/env python
"""Compiles every Triton kernel of infdiff_kernels for real GPU targets (sm_80, sm_90) on a
machine without a GPU, and fails on anything that would only break on the user's A100/H100.

Our CPU tests run the kernels in the Triton interpreter, which never sees what the compiler
sees: an integer argument equal to 1 becomes a constexpr, one divisible by 16 carries an
alignment attribute, grids are bounded per axis, and ptxas allocates registers. So:

1. The launchers themselves are run on `meta` tensors (no memory, no kernel runs) over the
   shape cases of `CASES` below, with every kernel swapped for a recorder. What gets compiled
   is therefore exactly what the launchers pass, so this check cannot drift from the code.
2. Each recorded launch is specialised the way a real launch would be (Triton's own binder,
   for a CUDA target), once per autotune config, and every distinct specialisation is
   compiled with `triton.compile` for each target: TTIR, PTX and a cubin via ptxas.
3. Checks, any failure makes the exit status 1:
   - the compile succeeds;
   - no register spills (ptxas -v spill stores / loads; a stack frame alone is no spill);
   - grid axis 0 < 2^31 and axes 1, 2 <= 65535 for every case and config (the CUDA limits);
   - every autotune config of every kernel is compiled, and a kernel that accumulates with
     atomics resets its output between benchmark runs (reset_to_zero);
   - 64-bit addressing: every pointer offset of the TTIR that is not built from constants
     and `tl.arange` alone (it involves a program id, a size argument, a loop counter or a
     loaded value) is int64, so no offset can wrap for tensors past 2^31 elements.
4. A report per kernel, target, config and specialisation: registers, spill bytes, shared
   memory (default build/triton-report.txt), plus a JSON twin for tests (--json).

Usage: python .ci/triton_compile.py [--quick] [--arch 80 90] [--kernel NAME] [--jobs 2]
--quick compiles a representative subset (sm_80, float32, the unit and odd shape cases,
every autotune config) for the pytest twin of this check. Each run compiles from an empty
private cache, so ptxas's figures are always fresh.
"""
import argparse
import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Real compilation, not the interpreter: both are read when triton is imported.
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
# A private, empty kernel cache: ptxas then runs for every kernel and its -v log (registers,
# spills) is there to read; a cached cubin comes without one.
_CACHE = tempfile.TemporaryDirectory(prefix="infdiff-triton-check-")
os.environ["TRITON_CACHE_DIR"] = _CACHE.name

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "python")]

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402
from triton.runtime.jit import JITFunction, create_function_from_signature  # noqa: E402

from infdiff_kernels.knn import triton as knn_triton  # noqa: E402
from infdiff_kernels.sparse_conv import triton as conv_triton  # noqa: E402
from infdiff_kernels.spectral import reference as spectral_reference  # noqa: E402
from infdiff_kernels.spectral import triton as spectral_triton  # noqa: E402

MODULES = (knn_triton, conv_triton, spectral_triton)
GRID_LIMITS = (2**31 - 1, 65535, 65535)
ARCHS = (80, 90)
META = "meta"


# ---------------------------------------------------------------------------------------
# Shape cases. Each is run through every op's launchers; the specialisations that matter
# come out of them: "unit" makes every size argument 1 (a constexpr), "x16" makes them
# multiples of 16 (divisibility attributes), "odd" neither. "huge" crosses the 65,535
# limit of grid axes 1 and 2; it is only launched for the grid check, not compiled (its
# argument classes are those of x16). The point coordinates alternate between the two
# accepted dtypes (int32, int64) across cases.
CASES = {
    "unit": dict(B=1, N=1, C=1, h=1, w=1, k=1, H=1, W=1, K=1, coords=torch.int32),
    "x16": dict(B=2, N=256, C=32, h=16, w=32, k=16, H=64, W=64, K=3, coords=torch.int64),
    "odd": dict(B=3, N=77, C=3, h=7, w=9, k=3, H=29, W=31, K=5, coords=torch.int64),
    "huge": dict(B=2, N=3_000_000, C=4, h=2048, w=2048, k=3, H=4096, W=4096, K=3, coords=torch.int32),
}
COMPILED_CASES = ("unit", "x16", "odd")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
QUICK_CASES = ("unit", "odd")  # and every case's grid
QUICK_DTYPES = (torch.float32,)


def _empty(*shape, dtype):
    return torch.empty(shape, device=META, dtype=dtype)


def knn_launches(s, dtype):
    """Every launcher of knn/triton.py on shape case s with features in dtype."""
    wdtype = torch.float64 if dtype == torch.float64 else torch.float32
    cells = s["h"] * s["w"]
    index = _empty(s["B"], cells, s["k"], dtype=torch.int32)
    weights = _empty(s["B"], cells, s["k"], dtype=wdtype)
    knn_triton.knn_gather(_empty(s["B"], s["N"], s["C"], dtype=dtype), index, weights, s["h"], s["w"])
    knn_triton.knn_scatter(_empty(s["B"], s["C"], s["h"], s["w"], dtype=dtype), index, weights, s["N"])
    coords = _empty(s["B"], s["N"], 2, dtype=s["coords"])
    knn_triton.grid_to_points(_empty(s["B"], s["C"], s["h"], s["w"], dtype=dtype), coords, s["H"], s["W"])
    knn_triton.grid_to_points_backward(
        _empty(s["B"], s["N"], s["C"], dtype=dtype), coords, s["H"], s["W"], s["h"], s["w"]
    )


def sparse_conv_launches(s, dtype):
    """Forward (with and without bias) and backward of sparse_conv/triton.py."""
    b, n, c, k = s["B"], s["N"], s["C"], s["K"]
    x = _empty(b, n, c, dtype=dtype)
    coords = _empty(b, n, 2, dtype=torch.int32)
    lookup = _empty(b, s["H"], s["W"], dtype=torch.int32)
    counts = _empty(b, n, dtype=torch.int32)
    weight = _empty(c, k, k, dtype=dtype)
    for bias in (None, _empty(c, dtype=dtype)):
        conv_triton.sparse_conv_forward(x, coords, lookup, counts, weight, bias, 0)
    conv_triton.sparse_conv_backward(x, x, coords, lookup, counts, weight, 0, True, True)


def spectral_launches(s, dtype):
    """Every (boundary, mode) pair spectral/triton.py launches; the spectrum is complex."""
    if dtype not in (torch.float32, torch.float64):
        return  # the spectral ops accept float32 and float64 only
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    height, width = s["H"], s["W"]
    spec = _empty(s["B"], height, width // 2 + 1, dtype=complex_dtype)
    ref = spectral_reference
    pairs = [(ref.REFLECT, ref.MOLLIFY), (ref.REFLECT, ref.WIENER)]
    pairs += [(ref.PERIODIC, mode) for mode in (ref.MOLLIFY, ref.WIENER, ref.GRF)]
    for boundary, mode in pairs:
        spectral_triton.spectral_multiply_(spec, height, width, boundary, mode, 0.1, 0.05, 2.0, 3.0, 1.0)


OPS = (knn_launches, sparse_conv_launches, spectral_launches)


# ---------------------------------------------------------------------------------------
# Recording the launches.
@dataclass
class Launch:
    kernel: str  # module-qualified name
    case: str
    grid: object  # tuple or callable(META)
    args: tuple
    kwargs: dict


def launched_kernels():
    """{qualified name: kernel} of every kernel a launcher can call: Autotuners, and the
    @triton.jit functions named *_kernel that no Autotuner wraps (the rest are helpers)."""
    kernels = {}
    for module in MODULES:
        wrapped = {id(v.fn) for v in vars(module).values() if isinstance(v, Autotuner)}
        for name, value in vars(module).items():
            is_kernel = isinstance(value, Autotuner) or (
                isinstance(value, JITFunction) and name.endswith("_kernel") and id(value) not in wrapped
            )
            if is_kernel:
                kernels[f"{module.__name__.rsplit('.', 2)[-2]}.{name}"] = (module, name, value)
    return kernels


class _Recorder:
    def __init__(self, qualified, sink, case):
        self.qualified, self.sink, self.case = qualified, sink, case

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.sink.append(Launch(self.qualified, self.case[0], grid, args, kwargs))

        return launch


@contextlib.contextmanager
def recording(kernels, sink, case):
    """Swaps each launched kernel for a recorder in its module for the duration."""
    originals = []
    try:
        for qualified, (module, name, value) in kernels.items():
            originals.append((module, name, value))
            setattr(module, name, _Recorder(qualified, sink, case))
        yield
    finally:
        for module, name, value in originals:
            setattr(module, name, value)


def record_launches(cases, dtypes):
    kernels = launched_kernels()
    launches, case = [], [None]
    with recording(kernels, launches, case), torch.no_grad():
        for case_name in cases:
            case[0] = case_name
            for dtype in dtypes:
                for op in OPS:
                    op(CASES[case_name], dtype)
    return kernels, launches


# ---------------------------------------------------------------------------------------
# Specialising, as a real launch would.
@dataclass
class Job:
    kernel: str
    arch: int
    config: str
    specialisation: str
    cases: set = field(default_factory=set)
    source: object = None
    options: dict = None


def _jit_function(kernel):
    while not isinstance(kernel, JITFunction):
        kernel = kernel.fn
    return kernel


def _configs(kernel):
    if isinstance(kernel, Autotuner):
        return list(kernel.configs)
    return [None]


def _config_name(config):
    if config is None:
        return "-"
    parts = [f"{k}={v}" for k, v in config.kwargs.items()]
    return ",".join(parts + [f"warps={config.num_warps}", f"stages={config.num_stages}"])


def _describe(signature, constexprs, attrs, fn):
    """A short, stable text of one specialisation: argument types, the constexpr values,
    and which arguments carry the divisible-by-16 attribute."""
    words = []
    for i, name in enumerate(fn.arg_names):
        kind = signature[name]
        if kind == "constexpr":
            value = constexprs[(i,)]
            words.append(f"{name}={getattr(value, 'name', value)}")
        else:
            div16 = any(a[0] == "tt.divisibility" for a in attrs.get((i,), []))
            words.append(f"{name}:{kind}{'%16' if div16 else ''}")
    return " ".join(words)


def _grid_of(launch, config, fn):
    grid = launch.grid
    if callable(grid):
        meta = dict(zip(fn.arg_names, launch.args))
        meta.update(launch.kwargs)
        if config is not None:
            meta.update(config.all_kwargs())
        grid = grid(meta)
    return tuple(grid) + (1,) * (3 - len(grid))


def specialise(kernels, launches, archs):
    """(jobs, launch errors): one job per distinct (kernel, target, config, specialisation);
    the errors are grids past the CUDA limits and launches Triton cannot bind."""
    jobs, launch_errors = {}, []
    binders = {}
    for launch in launches:
        kernel = kernels[launch.kernel][2]
        fn = _jit_function(kernel)
        for config in _configs(kernel):
            grid = _grid_of(launch, config, fn)
            for axis, (size, limit) in enumerate(zip(grid, GRID_LIMITS)):
                if size > limit:
                    launch_errors.append(
                        f"{launch.kernel} case {launch.case} config {_config_name(config)}: grid axis {axis} "
                        f"is {size}, above the CUDA limit {limit} (grid {grid})"
                    )
            kwargs = dict(launch.kwargs)
            if config is not None:
                kwargs.update(config.all_kwargs())
            kwargs.setdefault("debug", False)
            for arch in archs:
                backend = make_backend(GPUTarget("cuda", arch, 32))
                key = (launch.kernel, arch)
                if key not in binders:
                    binders[key] = create_function_from_signature(fn.signature, fn.params, backend)
                try:
                    bound, spec, options = binders[key](*launch.args, **kwargs)
                except TypeError as err:  # Triton's launch itself would raise this on a GPU
                    launch_errors.append(f"{launch.kernel} case {launch.case}: the launch cannot be specialised: {err}")
                    continue
                options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, spec, options)
                text = _describe(signature, constexprs, attrs, fn)
                job_key = (launch.kernel, arch, _config_name(config), text)
                if job_key not in jobs:
                    jobs[job_key] = Job(
                        launch.kernel, arch, _config_name(config), text,
                        source=ASTSource(fn, signature, constexprs, attrs), options=options.__dict__,
                    )
                jobs[job_key].cases.add(launch.case)
    return list(jobs.values()), launch_errors


# ---------------------------------------------------------------------------------------
# Compiling and reading what ptxas did.
_ADDPTR = re.compile(r"^\s*%\S+ = tt\.addptr (%[\w#]+), (%[\w#]+) : [^,]+, (\S+?)(?: loc\((#loc\d*)\))?$")
_DEF = re.compile(r"^\s*(%[\w]+)(?::\d+)? = (\"?[\w.]+\"?)(.*)$")
_VALUE = re.compile(r"%[\w]+")
# Integer ops whose result is bounded when their operands are (tile-sized index algebra).
_BOUNDED_OPS = {
    "arith.addi", "arith.subi", "arith.muli", "arith.extsi", "arith.extui", "arith.trunci", "arith.remsi",
    "arith.remui", "arith.divsi", "arith.divui", "arith.select", "arith.minsi", "arith.maxsi",
    "tt.splat", "tt.broadcast", "tt.expand_dims", "tt.reshape", "tt.trans",
}
_LOC = re.compile(r'^(#loc\d*) = loc\((.*)\)$')
_FILE_LINE = re.compile(r'"([^"]+)":(\d+):(\d+)')


def int32_offsets(ttir):
    """Source locations of the pointer offsets of a TTIR module that are int32 but not built
    from constants and aranges alone: those can wrap once a tensor passes 2^31 elements."""
    lines = ttir.splitlines()
    defs = {}
    for line in lines:
        m = _DEF.match(line)
        if m:
            body = m.group(3).split(" : ")[0]
            defs[m.group(1)] = (m.group(2), _VALUE.findall(body))
    locs = {}
    for line in lines:
        m = _LOC.match(line.strip())
        if m:
            locs[m.group(1)] = m.group(2)
    memo = {}

    def bounded(value):
        value = value.split("#")[0]
        if value not in memo:
            memo[value] = False  # cycles (loop-carried values) are unbounded
            op, operands = defs.get(value, (None, []))
            if op in ("arith.constant", "tt.make_range"):
                memo[value] = True
            elif op in _BOUNDED_OPS:
                memo[value] = all(bounded(v) for v in operands)
        return memo[value]

    def where(loc):
        seen = set()
        while loc and loc not in seen:
            seen.add(loc)
            text = locs.get(loc, loc)
            m = _FILE_LINE.search(text)
            if m:
                return f"{Path(m.group(1)).parent.name}/{Path(m.group(1)).name}:{m.group(2)}"
            ref = re.search(r"#loc\d*", text)
            loc = ref.group(0) if ref else None
        return "?"

    found = []
    for line in lines:
        m = _ADDPTR.match(line.strip())
        if m and re.search(r"(^|x)i32>?$", m.group(3)) and not bounded(m.group(2)):
            found.append(where(m.group(4)))
    return sorted(set(found))


def _ptxas_figures(log):
    """(registers, spill store + load bytes, stack frame bytes) from a `ptxas -v` log."""
    regs = re.search(r"Used (\d+) registers", log)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log)
    if not (regs and frame):
        raise RuntimeError(f"no register / spill figures in the ptxas log:\n{log}")
    stack, stores, loads = map(int, frame.groups())
    return int(regs.group(1)), stores + loads, stack


_JOBS = []


def _compile(index):
    job = _JOBS[index]
    start = time.time()
    try:
        # Triton prints ptxas's -v log when asked to; a cached kernel prints none.
        triton.knobs.nvidia.dump_ptxas_log = True
        with contextlib.redirect_stdout(io.StringIO()) as log:
            compiled = triton.compile(job.source, target=GPUTarget("cuda", job.arch, 32), options=job.options)
        regs, spill, stack = _ptxas_figures(log.getvalue())
        return dict(ok=True, regs=regs, spill=spill, stack=stack, shared=compiled.metadata.shared,
                    offsets=int32_offsets(compiled.asm["ttir"]),
                    atomics="tt.atomic_rmw" in compiled.asm["ttir"],
                    seconds=time.time() - start)
    except Exception as err:  # a failed compile is a finding to report, not a crash of the check
        return dict(ok=False, error=f"{type(err).__name__}: {err}".strip()[:4000], seconds=time.time() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the representative subset pytest runs")
    parser.add_argument("--arch", type=int, nargs="+", default=None, help="compute capabilities (default 80 90)")
    parser.add_argument("--kernel", nargs="+", default=None, help="only these kernels (e.g. knn._sample_kernel)")
    parser.add_argument("--case", nargs="+", default=None, choices=sorted(CASES), help="compile only these shape cases (grids are checked for all)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2")))
    parser.add_argument("--report", type=Path, default=ROOT / "build" / "triton-report.txt")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    opts = parser.parse_args(argv)

    archs = opts.arch or ((80,) if opts.quick else ARCHS)
    cases = opts.case or (QUICK_CASES if opts.quick else COMPILED_CASES)
    dtypes = QUICK_DTYPES if opts.quick else FLOAT_DTYPES
    start = time.time()
    # Grids are checked for every shape case (no compiling needed); only `cases` compile.
    kernels, launches = record_launches(tuple(CASES), dtypes)
    errors = []
    never = sorted(set(kernels) - {launch.kernel for launch in launches})
    errors += [f"{name}: no launcher called it in any shape case (add an op to OPS)" for name in never]
    if opts.kernel:
        unknown = set(opts.kernel) - set(kernels)
        if unknown:
            parser.error(f"--kernel: unknown {sorted(unknown)}; known: {sorted(kernels)}")
        launches = [launch for launch in launches if launch.kernel in opts.kernel]
    jobs, launch_errors = specialise(kernels, launches, archs)
    errors += launch_errors
    jobs = [job for job in jobs if job.cases & set(cases)]
    _JOBS[:] = jobs
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max(1, opts.jobs), mp_context=context) as pool:
        results = list(pool.map(_compile, range(len(jobs))))

    rows = []
    for job, result in zip(jobs, results):
        where = f"{job.kernel} sm_{job.arch} [{job.config}] cases {','.join(sorted(job.cases))}"
        if not result["ok"]:
            errors.append(f"{where}: compile failed: {result['error']}\n    specialisation: {job.specialisation}")
        else:
            if result["spill"]:
                errors.append(f"{where}: {result['spill']} bytes of register spills\n    {job.specialisation}")
            for loc in result["offsets"]:
                errors.append(f"{where}: int32 pointer offset built from sizes or program ids at {loc}")
            kernel = kernels[job.kernel][2]
            if result["atomics"] and isinstance(kernel, Autotuner) and len(kernel.configs) > 1 \
                    and not kernel.reset_to_zero:
                # Benchmark runs would add into the output the real run then adds to again.
                errors.append(f"{where}: accumulates with atomics but its autotune has no reset_to_zero")
        rows.append(dict(kernel=job.kernel, arch=job.arch, config=job.config, cases=sorted(job.cases),
                         specialisation=job.specialisation, **result))

    if not opts.kernel:
        compiled = {(job.kernel, job.config) for job in jobs}
        for name, (_, _, kernel) in sorted(kernels.items()):
            for config in _configs(kernel):
                if (name, _config_name(config)) not in compiled:
                    errors.append(f"{name}: autotune config {_config_name(config)} is never compiled")

    opts.report.parent.mkdir(parents=True, exist_ok=True)
    with open(opts.report, "w") as out:
        out.write(f"# Triton real-compile report: {len(jobs)} compilations for sm_{', sm_'.join(map(str, archs))}, "
                  f"cases {', '.join(cases)}, triton {triton.__version__}, {time.time() - start:.0f} s\n")
        out.write("# regs = registers per thread, spill = ptxas spill store + load bytes, stack = stack frame\n"
                  "# bytes (e.g. libdevice's float64 sin/cos range reduction), smem = shared memory bytes\n")
        for row in sorted(rows, key=lambda r: (r["kernel"], r["arch"], r["config"], r["specialisation"])):
            head = f"{row['kernel']:<34} sm_{row['arch']} [{row['config']}]"
            if row["ok"]:
                out.write(f"{head} regs={row['regs']} spill={row['spill']} stack={row['stack']} smem={row['shared']} "
                          f"({row['seconds']:.1f}s) cases={','.join(row['cases'])}\n    {row['specialisation']}\n")
            else:
                out.write(f"{head} COMPILE ERROR cases={','.join(row['cases'])}\n    {row['specialisation']}\n")
        out.write(f"\n# {len(errors)} problem(s)\n" + "".join(f"FAIL {e}\n" for e in errors))
    if opts.json:
        opts.json.write_text(json.dumps(dict(rows=rows, errors=errors, kernels=sorted(kernels)), indent=1))
    print(f"triton_compile: {len(jobs)} compilations, {len(errors)} problem(s), {time.time() - start:.0f} s; "
          f"report {opts.report}")
    for error in errors:
        print("FAIL", error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
