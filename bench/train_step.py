"""Benchmark of one full training step (forward, backward, AdamW, EMA: `Trainer.train_step`)
of the ∞-Diff network at coordinate fractions 1 .. 1/16, against the paper's Table 3.

    python -m bench.train_step             # 64^2 and 128^2, fractions 1, 1/2, 1/4, 1/8, 1/16
    python -m bench.train_step --quick     # 64^2, fractions 1 and 1/4, fewer repeats
    python -m bench.train_step --sizes 128 --no-memory --no-profile   # the speedups alone
    python -m bench.train_step --sizes 128 --flops --no-timing      # FLOPs per fraction and component, no clock
    python -m bench.train_step --sizes 128 --set model.unet_patch=4 --set model.unet_channels=32   # a variant

The model is the paper-shaped preset `paper_shape` (python/infdiff/configs/paper_shape.yaml) (3 sparse blocks of 64
channels, kernel 7, the grid U-Net on a grid of R/2), the same weights and the same batch of
B images for every fraction; the repetitions of the fractions are interleaved in one process
(round-robin) so a burst of load from elsewhere hits them alike. Reported per fraction:
- speedup = step time at fraction 1 / step time at the fraction (median; min..max of the
  per-repetition ratios as the spread), next to the paper's (FFHQ 128, Table 3);
- peak memory of a step (CUDA: max_memory_allocated; CPU: the peak resident set of a child
  process that runs the steps; both above the state after a first step, which holds the
  weights, the batch and the optimizer's state);
- the share of step time per component from torch.profiler: each op's self time goes to the
  component its name belongs to (sparse conv, neighbour map, k-NN lerp, spectral ops, grid
  U-Net, pointwise layers, optimizer, other).
--flops adds a deterministic account that no load on the machine moves: the FLOPs of one step
(forward + backward) per fraction and component, and the speedup they alone predict (see
`step_flops` for what is and is not counted; docs/train_step_flops.md for what it shows).
--set SECTION.FIELD=VALUE changes a field of the preset (through load_config, so it is
validated) for every measurement of it (all but --contention, which trains the MNIST preset).
The JSON (bench/results/train_step.json; bench/results/train_step_flops.json for
--flops --no-timing) has at its top level `"train_step_speedup": {"<R>": {"1": 1.0, "0.5": ..., ...}}`
and, with --flops, `"train_step_flops": {"<R>": {"flops": {fraction: {component: flops}},
"predicted_speedup": {fraction: x}, "unet_parameters": n, "unet_body_grid": g}}`.
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import infdiff_kernels  # noqa: F401 - registers the torch.ops.infdiff ops CUSTOM_FLOPS counts
from infdiff.config import ConfigError, load_config, parse_override
from infdiff.model import build_model
from infdiff.train import Trainer

from ._common import arg_parser, ratio_table, resolve_device, time_side_by_side, write_json
from .roofline import spectral_costs

FAMILY = "train_step"
ROOT = Path(__file__).resolve().parent.parent
PRESET = "paper_shape"  # infdiff/configs/paper_shape.yaml, a preset of the package
FULL_SIZES = (64, 128)
QUICK_SIZES = (64,)
FULL_FRACTIONS = (Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(1, 8), Fraction(1, 16))
QUICK_FRACTIONS = (Fraction(1), Fraction(1, 4))
# Table 3 of the paper (FFHQ 128, training-step speedup vs all coordinates); 1/2 and 1/16
# are not in the table.
PAPER_SPEEDUP = {Fraction(1): 1.0, Fraction(1, 4): 1.3, Fraction(1, 8): 1.6}
BATCH = {64: 8, 128: 4, 256: 2}

# Which component an op's self time belongs to: the first rule whose substring is in the op
# name (lower case) wins. Custom ops carry the "infdiff::" prefix; the grid U-Net is the only
# user of 2-d convolutions, group norm, attention and resizing in the network.
COMPONENT_RULES = (
    ("neighbour map", ("neighbor", "neighbour")),
    ("sparse conv", ("sparse_depthwise_conv",)),
    ("k-NN lerp", ("knn_", "grid_to_points")),
    ("spectral ops", ("spectral", "q_sample", "gaussian_random_field", "fft")),
    ("optimizer", ("optimizer", "_foreach", "adam")),
    ("grid U-Net", ("conv2d", "convolution", "group_norm", "attention", "upsample", "avg_pool", "softmax", "bmm")),
    ("pointwise layers", ("linear", "addmm", "mm", "layer_norm", "gelu", "silu", "mul", "add", "native_dropout")),
)
COMPONENTS = [name for name, _ in COMPONENT_RULES] + ["other"]


def component_of(op_name: str) -> str:
    name = op_name.lower()
    for component, needles in COMPONENT_RULES:
        if any(n in name for n in needles):
            return component
    return "other"


def paper_config(resolution: int, device: str, overrides=None):
    """The paper-shaped preset at `resolution` with its grid at R/2, training in fp32 on
    `device` (bf16 autocast is ~10x slower than fp32 on CPUs without native bf16), then
    `overrides` ({"model.unet_patch": 2}, from --set), which win over all of that."""
    return load_config(PRESET, overrides={
        "data.resolution": resolution, "model.grid_size": resolution // 2, "train.device": device,
        "train.precision": "fp32", **(overrides or {}),
    })


def make_trainer(resolution: int, device: str, seed: int = 0, compile=False, overrides=None):
    cfg = paper_config(resolution, device, overrides)
    cfg.train.compile = compile
    torch.manual_seed(seed)
    trainer = Trainer(cfg, quiet=True)
    g = torch.Generator().manual_seed(seed)
    batch = torch.rand(BATCH.get(resolution, 2), cfg.data.channels, resolution, resolution, generator=g) * 2 - 1
    return trainer, batch.to(trainer.device)


def step_fn(trainer, x0, fraction):
    def run():
        trainer.cfg.train.coord_fraction = float(fraction)
        trainer.train_step(x0)
    return run


def fraction_key(fraction: Fraction) -> str:
    """The JSON key of a fraction: "1", "0.5", "0.25", ..."""
    return "1" if fraction == 1 else str(float(fraction))


def label(fraction: Fraction) -> str:
    return "1" if fraction == 1 else f"1/{fraction.denominator}"


def time_fractions(resolution, fractions, device, repeats, overrides=None):
    trainer, x0 = make_trainer(resolution, device, overrides=overrides)
    fns = {label(f): step_fn(trainer, x0, f) for f in fractions}
    return time_side_by_side(fns, case=f"{resolution}^2 B={x0.shape[0]}", device=device, warmup=1, repeats=repeats)


def speedups(timings, fractions):
    """{fraction: (median speedup, min, max)}: per repetition r, time(1)_r / time(f)_r."""
    by_impl = {t.impl: t for t in timings}
    base = by_impl[label(Fraction(1))]
    out = {}
    for f in fractions:
        t = by_impl[label(f)]
        if t.skipped or base.skipped:
            continue
        ratios = [b / x for b, x in zip(base.all_s, t.all_s)]
        out[f] = (statistics.median(ratios), min(ratios), max(ratios))
    return out


def profile_shares(resolution, fraction, device, steps=2, overrides=None):
    """{component: share of the profiled self time} over `steps` training steps."""
    trainer, x0 = make_trainer(resolution, device, overrides=overrides)
    run = step_fn(trainer, x0, fraction)
    run()  # warm up outside the profile (first-call allocations, lazy inits)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.device(device).type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            run()
    totals = dict.fromkeys(COMPONENTS, 0.0)
    use_cuda = torch.device(device).type == "cuda"
    for event in prof.key_averages():
        self_time = event.self_device_time_total if use_cuda else event.self_cpu_time_total
        totals[component_of(event.key)] += self_time
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


def _proc_status_bytes(field: str) -> int:
    """A memory field of /proc/self/status ("VmRSS": resident now, "VmHWM": its peak)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_probe(resolution, fraction, device, steps=2, overrides=None) -> int:
    """Peak bytes a step needs above the state before it (weights, optimizer, batch)."""
    trainer, x0 = make_trainer(resolution, device, overrides=overrides)
    run = step_fn(trainer, x0, fraction)
    if torch.device(device).type == "cuda":
        run()
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(steps):
            run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    # As on CUDA, one step first: it creates the optimizer's state, which belongs to the state
    # before a step, not to what a step needs (it does not shrink with the fraction).
    run()
    base = _proc_status_bytes("VmRSS")
    # Writing 5 to clear_refs resets VmHWM, the peak resident set, to the resident set now
    # (Linux >= 4.0); ru_maxrss cannot be reset.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    for _ in range(steps):
        run()
    return _proc_status_bytes("VmHWM") - base


def peak_memory(resolution, fraction, device, overrides=None) -> int:
    """memory_probe in a fresh process, so one fraction's peak cannot hide another's."""
    code = ("import json; from fractions import Fraction; from bench.train_step import memory_probe; "
            f"print(json.dumps(memory_probe({resolution}, Fraction('{fraction}'), '{device}', "
            f"overrides=json.loads({json.dumps(json.dumps(overrides or {}))}))))")
    # A fixed mmap threshold makes glibc map every large tensor on its own and unmap it when
    # freed, so the resident set follows the live tensors instead of a grown heap.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def speedup_table(resolution, fractions, sp, memory):
    lines = [f"{resolution}^2: training-step speedup vs all coordinates (median, min..max over repetitions)",
             f"{'fraction':>9}  {'speedup':>8}  {'spread':>13}  {'paper':>6}  {'ideal':>6}  {'peak mem':>9}"]
    base_mem = memory.get(Fraction(1))
    for f in fractions:
        if f not in sp:
            lines.append(f"{label(f):>9}  skipped")
            continue
        med, lo, hi = sp[f]
        paper = f"{PAPER_SPEEDUP[f]:.1f}x" if f in PAPER_SPEEDUP else "-"
        mem = f"{memory[f] / base_mem:.2f}x" if f in memory and base_mem else "-"
        lines.append(f"{label(f):>9}  {med:7.2f}x  {lo:5.2f}..{hi:5.2f}x  {paper:>6}  {float(1 / f):5.0f}x  {mem:>9}")
    if memory:
        lines.append("peak mem: a step's peak memory above the state before it, relative to fraction 1")
    return "\n".join(lines)


def shares_table(title, shares):
    return title + "\n" + "\n".join(f"  {k:<17} {100 * v:5.1f} %" for k, v in shares.items() if v > 0)


def compiled_vs_eager(resolution, fraction, device, repeats, overrides=None):
    """Step time of train.compile (torch.compile, fullgraph, the default Inductor backend) and
    eager, same weights and batch, interleaved; the one-off compile is the warm-up."""
    eager, x0 = make_trainer(resolution, device, overrides=overrides)
    compiled, _ = make_trainer(resolution, device, compile=True, overrides=overrides)
    fns = {"eager": step_fn(eager, x0, fraction), "compiled": step_fn(compiled, x0, fraction)}
    return time_side_by_side(fns, case=f"{resolution}^2 fraction {label(fraction)}", device=device, warmup=2, repeats=repeats)


# ---------------------------------------------------------------- the FLOP account (--flops)
# FlopCounterMode counts matmuls, convolutions and attention only; the formulas below add the
# custom ops (raw arguments, so the sparse convolution counts the neighbours actually present).
def _sparse_conv_flops(x, coords, lookup, counts, *args, out_val=None, **kwargs):
    """2 C flops (multiply, add) per present tap and point (bench/roofline.py's convention)."""
    return 2 * x.shape[-1] * int(counts.sum())


def _sparse_conv_backward_flops(grad_out, x, coords, lookup, counts, weight, normalize, backend, need_grad_x,
                                need_grad_weight, out_val=None):
    return (int(need_grad_x) + int(need_grad_weight)) * _sparse_conv_flops(x, coords, lookup, counts)


def _knn_gather_flops(x, index, *args, out_val=None, **kwargs):
    """2 k flops per grid value: x (B, N, C) onto (B, h * w, k) neighbours."""
    return 2 * index.numel() * x.shape[-1]


def _knn_scatter_flops(grad_out, index, *args, out_val=None, **kwargs):
    return 2 * index.numel() * grad_out.shape[1]


def _bilinear_flops(y, coords, *args, out_val=None, **kwargs):
    """grid_to_points: 4 multiplies and 4 adds per point value (B, N, C)."""
    return 8 * out_val.numel()


def _bilinear_backward_flops(grad_out, *args, out_val=None, **kwargs):
    return 8 * grad_out.numel()


def _spectral_filter_flops(u, *args, out_val=None, **kwargs):
    """One mollify / Wiener filter of u (..., H, W): FFT flops as bench/roofline.py counts them."""
    return int(spectral_costs(u[..., 0, 0].numel(), u.shape[-1])["floor"].flops)


def _q_sample_flops(x0, *args, out_val=None, **kwargs):
    """mollify(a x0 + s noise): one filter, the combination fused into it."""
    return _spectral_filter_flops(x0) + 3 * x0.numel()


def _conv_backward_flops(grad_out, x, weight, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
                         output_mask, out_val=None):
    """Each of grad_x and grad_weight costs what the forward does: 2 flops per weight tap and
    output value of the (non-transposed) convolution. torch's own formula ignores `groups` in
    grad_weight, which counted the sparse blocks' depthwise convolutions (the dense path at
    fraction 1) about 64 times over."""
    taps = 2 * math.prod(weight.shape[1:])
    forward = taps * (x.numel() if transposed else grad_out.numel())
    return (int(output_mask[0]) + int(output_mask[1])) * forward


def _raw(fn):
    fn._get_raw = True  # FlopCounterMode passes the tensors, not their shapes
    return fn


CUSTOM_FLOPS = {
    torch.ops.aten.convolution_backward: _raw(_conv_backward_flops),
    torch.ops.infdiff.sparse_depthwise_conv: _raw(_sparse_conv_flops),
    torch.ops.infdiff.sparse_depthwise_conv_backward: _raw(_sparse_conv_backward_flops),
    torch.ops.infdiff.knn_gather: _raw(_knn_gather_flops),
    torch.ops.infdiff.knn_scatter: _raw(_knn_scatter_flops),
    torch.ops.infdiff.grid_to_points: _raw(_bilinear_flops),
    torch.ops.infdiff.grid_to_points_backward: _raw(_bilinear_backward_flops),
    torch.ops.infdiff.spectral_filter: _raw(_spectral_filter_flops),
    torch.ops.infdiff.q_sample: _raw(_q_sample_flops),
}
KNN_OPS = {torch.ops.infdiff.knn_gather, torch.ops.infdiff.knn_scatter, torch.ops.infdiff.grid_to_points,
           torch.ops.infdiff.grid_to_points_backward}
SPARSE_CONV_OPS = {torch.ops.infdiff.sparse_depthwise_conv, torch.ops.infdiff.sparse_depthwise_conv_backward}
CONV_OPS = {torch.ops.aten.convolution, torch.ops.aten.convolution_backward}
FLOP_COMPONENTS = ("grid U-Net", "sparse conv", "pointwise layers", "k-NN lerp", "other")


def _counted(fn):
    """{op: flops} of everything fn() runs."""
    with FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter:
        fn()
    return counter.get_flop_counts().get("Global", {})


def unet_flops(unet, batch, channels, grid_size, time_dim) -> dict:
    """{op: flops} of the grid U-Net's forward and backward on its own, with the gradient of its
    input (the grid of the k-NN lerp needs it), as in a training step."""
    g = torch.Generator().manual_seed(0)
    grid = torch.randn(batch, channels, grid_size, grid_size, generator=g, requires_grad=True)
    temb = torch.randn(batch, time_dim, generator=g, requires_grad=True)

    def run():
        out = unet(grid, temb)
        out.backward(torch.ones_like(out))
    counts = _counted(run)
    unet.zero_grad(set_to_none=True)
    return counts


def step_flops(resolution, fraction, overrides=None) -> dict:
    """{component: flops} of one training step (forward + backward) at `fraction`, on the CPU.

    Counted: matmuls, convolutions and attention (torch.utils.flop_counter.FlopCounterMode) and,
    by CUSTOM_FLOPS, the custom ops: the sparse depthwise convolution (2 C per neighbour present),
    the k-NN lerp's gather / scatter and the bilinear grid -> points, the forward process's FFT
    filters ("other"). Not counted: elementwise work (norms, activations, residual adds, the loss,
    AdamW, the EMA, the gradient clip: a few flops per value or per weight), the k-NN search and
    the neighbour map (integer work, no flops). The U-Net's share is its own forward + backward
    counted apart (FlopCounterMode's per-module attribution of the backward is not reliable); the
    convolutions outside it are the sparse blocks' depthwise ones (the dense path at fraction 1)."""
    trainer, x0 = make_trainer(resolution, "cpu", overrides=overrides)
    by_op = _counted(step_fn(trainer, x0, fraction))
    m = trainer.cfg.model
    unet = unet_flops(trainer.model.unet, x0.shape[0], m.channels, m.grid_size, m.time_dim)
    total = sum(by_op.values())
    out = dict.fromkeys(FLOP_COMPONENTS, 0)
    out["grid U-Net"] = sum(unet.values())
    out["k-NN lerp"] = sum(v for op, v in by_op.items() if op in KNN_OPS)
    out["sparse conv"] = (sum(v for op, v in by_op.items() if op in SPARSE_CONV_OPS | CONV_OPS)
                          - sum(v for op, v in unet.items() if op in CONV_OPS))
    out["other"] = sum(v for op, v in by_op.items() if op in (torch.ops.infdiff.spectral_filter, torch.ops.infdiff.q_sample))
    out["pointwise layers"] = total - sum(out.values())
    return out


def model_summary(resolution, overrides=None) -> dict:
    """The grid U-Net's parameter count and the grid its body runs on."""
    cfg = paper_config(resolution, "cpu", overrides)
    unet = build_model(cfg).unet
    return {"unet_parameters": sum(p.numel() for p in unet.parameters()),
            "unet_body_grid": cfg.model.grid_size // cfg.model.unet_patch}


def flops_table(resolution, fractions, flops, params):
    base = sum(flops[Fraction(1)].values())
    lines = [f"{resolution}^2: FLOPs of one training step (forward + backward); the U-Net: "
             f"{params['unet_parameters'] / 1e6:.2f} M parameters, its body on {params['unet_body_grid']}^2",
             f"{'fraction':>9}  {'GFLOP':>8}  {'U-Net':>6}  {'pointw.':>7}  {'sparse':>6}  {'k-NN':>5}  {'other':>5}  "
             f"{'predicted':>9}  {'ideal':>5}"]
    for f in fractions:
        c = flops[f]
        total = sum(c.values())
        share = {k: 100 * v / total for k, v in c.items()}
        lines.append(f"{label(f):>9}  {total / 1e9:8.2f}  {share['grid U-Net']:5.1f}%  {share['pointwise layers']:6.1f}%  "
                     f"{share['sparse conv']:5.1f}%  {share['k-NN lerp']:4.1f}%  {share['other']:4.1f}%  "
                     f"{base / total:8.2f}x  {float(1 / f):4.0f}x")
    unet = flops[Fraction(1)]["grid U-Net"]
    rest = base - unet
    lines.append(f"predicted = FLOPs at 1 / FLOPs at the fraction; the U-Net's fixed {unet / 1e9:.2f} GFLOP caps it at "
                 f"{base / unet:.2f}x however few the points (the rest, {rest / 1e9:.2f} GFLOP at 1, shrinks with them)")
    return "\n".join(lines)


BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


def contention(steps, device):
    """Training it/s of the MNIST preset idle and beside one busy pure-Python process (started
    and stopped here), with torch's thread count fixed and with the ThreadGovernor.
    Returns {setting: it/s}; the ratio to "idle" is what a shared machine costs."""
    from infdiff.threads import ThreadGovernor

    cfg = load_config("mnist", overrides={"train.device": device})
    torch.manual_seed(0)
    trainer = Trainer(cfg, quiet=True)
    x0 = (torch.rand(cfg.train.batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(trainer.device)
    threads = torch.get_num_threads()

    def rate(governor=None):
        torch.set_num_threads(threads)
        trainer.train_step(x0)  # warm-up, and lets the governor take its first sample
        start = time.perf_counter()
        for _ in range(steps):
            if governor is not None:
                governor.update()
            trainer.train_step(x0)
        torch.set_num_threads(threads)
        return steps / (time.perf_counter() - start)

    out = {"idle": rate()}
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=3600)])
    try:
        time.sleep(0.5)
        out["busy, fixed threads"] = rate()
        out["busy, ThreadGovernor"] = rate(ThreadGovernor(max_threads=threads, interval_s=1.0))
    finally:
        busy.kill()
        busy.wait()
    return out


def parse_sets(texts):
    """--set SECTION.FIELD=VALUE flags -> {dotted: value}; a bad one exits naming the flag."""
    try:
        return dict(parse_override(t) for t in texts or ())
    except ConfigError as err:
        raise SystemExit(f"--set: {err}") from None


def main(argv=None):
    parser = arg_parser(__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="image resolutions (default 64 128; --quick: 64)")
    parser.add_argument("--fractions", nargs="+", help="coordinate fractions such as 1 1/4 (1 is always added)")
    parser.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", dest="sets",
                        help="override a field of the preset (after the bench's own: grid R/2, fp32), e.g. "
                             "--set model.unet_patch=2; repeatable")
    parser.add_argument("--flops", action="store_true",
                        help="also count the FLOPs of a step per fraction and component (no clock: deterministic)")
    parser.add_argument("--no-timing", action="store_true",
                        help="skip the clock (timing, memory, profile); with --flops the JSON defaults to "
                             "bench/results/train_step_flops.json, so a timed run's file is kept")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--no-profile", action="store_true", help="skip the torch.profiler component shares")
    parser.add_argument("--compile", action="store_true",
                        help="also time train.compile (torch.compile fullgraph) against eager at 1/4 of the coordinates")
    parser.add_argument("--contention", type=int, metavar="STEPS", default=0,
                        help="also time STEPS MNIST-preset steps idle and beside one busy process")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    fractions = [Fraction(f) for f in args.fractions] if args.fractions else list(QUICK_FRACTIONS if args.quick else FULL_FRACTIONS)
    if Fraction(1) not in fractions:
        fractions.insert(0, Fraction(1))
    repeats = args.repeats or (3 if args.quick else 5)
    device = str(resolve_device(args.device))
    overrides = parse_sets(args.sets)
    for resolution in sizes:  # a bad override fails here, before any step is run
        try:
            paper_config(resolution, device, overrides)
        except ConfigError as err:
            raise SystemExit(f"--set / --sizes {resolution}: {err}") from None

    timings, extra = [], {"train_step_speedup": {}, "peak_memory_bytes": {}, "component_share": {}, "paper_speedup": {
        str(float(f)): s for f, s in PAPER_SPEEDUP.items()}, "preset": PRESET, "overrides": overrides}
    print(f"threads: {torch.get_num_threads()}, device: {device}, preset: {PRESET}"
          + "".join(f", {k}={v}" for k, v in overrides.items()), flush=True)
    if args.flops:
        extra["train_step_flops"] = {}
        for resolution in sizes:
            flops = {f: step_flops(resolution, f, overrides) for f in fractions}
            params = model_summary(resolution, overrides)
            print(flops_table(resolution, fractions, flops, params), flush=True)
            base = sum(flops[Fraction(1)].values())
            extra["train_step_flops"][str(resolution)] = {
                **params,
                "flops": {fraction_key(f): c for f, c in flops.items()},
                "predicted_speedup": {fraction_key(f): round(base / sum(c.values()), 3)
                                      for f, c in flops.items()},
            }
    for resolution in ([] if args.no_timing else sizes):
        t = time_fractions(resolution, fractions, device, repeats, overrides)
        timings += t
        sp = speedups(t, fractions)
        memory = {} if args.no_memory else {f: peak_memory(resolution, f, device, overrides) for f in fractions}
        print(speedup_table(resolution, fractions, sp, memory), flush=True)
        extra["train_step_speedup"][str(resolution)] = {
            fraction_key(f): round(v[0], 3) for f, v in sp.items()}
        extra["peak_memory_bytes"][str(resolution)] = {str(float(f)): m for f, m in memory.items()}
        if not args.no_profile:
            shares = {}
            for f in ((min(fractions),) if args.quick else (Fraction(1), min(fractions))):
                shares[label(f)] = profile_shares(resolution, f, device, overrides=overrides)
                print(shares_table(f"{resolution}^2 fraction {label(f)}: share of step time (profiler self time)",
                                   shares[label(f)]), flush=True)
            extra["component_share"][str(resolution)] = shares
    if args.compile:
        t = compiled_vs_eager(sizes[0], Fraction(1, 4), device, repeats, overrides)
        print(ratio_table(t, baseline="eager", title="train.compile vs eager (step time)"), flush=True)
        timings += t
    if args.contention:
        rates = contention(args.contention, device)
        extra["contention_it_per_s"] = rates
        print("training beside one busy process (MNIST preset), it/s relative to idle:")
        for k, v in rates.items():
            print(f"  {k:<22} {v / rates['idle']:.2f}x")
    by_fraction = [t for t in timings if t.impl not in ("eager", "compiled")]
    if by_fraction:
        print(ratio_table(by_fraction, baseline="1", title="step time relative to all coordinates"))
    family = FAMILY + "_flops" if args.no_timing and args.flops else FAMILY
    path = write_json(family, timings, args, extra=extra, device=device)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
