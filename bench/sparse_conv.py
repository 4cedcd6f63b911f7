"""Benchmark of sparse_depthwise_conv (docs/ops.md#sparse_depthwise_conv) against the dense depthwise conv2d
oracle over the whole grid, spconv and TorchSparse.

    python -m bench.sparse_conv            # 128^2 and 256^2, densities 1 .. 1/16
    python -m bench.sparse_conv --quick    # 128^2, densities 1 and 1/4, few repeats
    python -m bench.sparse_conv --sizes 256 --densities 1 1/4 --skip reference spconv  # headline only

Modes: "fwd" (no grad), "fwd+bwd" (grads of x, weight, bias), "fwd+bwd(x)" (grad of x only).

The fair dense baseline ("dense") is F.conv2d(groups=C, padding=K//2) on the dense
(B, C, H, W) image: what one would run without sparsity, whatever the density. Every sparse
implementation runs on B elements of N = density * H * W distinct random pixels (sorted in
row-major order, as a pipeline that draws points would keep them), with one neighbour map
(or spconv indice-pair set) built once per case and reused, as a model's layers would.

spconv has no grouped/depthwise convolution (its SparseConvolution asserts groups == 1), so
it runs as SubMConv2d with C -> C channels and normalize="none" semantics: C times the
multiply-adds of a depthwise conv. It is listed for scale, not as a like-for-like peer.
"""
import contextlib
import importlib
import io
import sys
from fractions import Fraction

import torch
import torch.nn.functional as F

import infdiff_kernels as ik

from ._common import arg_parser, ratio_table, resolve_device, skipped, stat_of, time_side_by_side, write_json

FAMILY = "sparse_conv"
B, C, K = 4, 64, 7
FULL_SIZES = (128, 256)
FULL_DENSITIES = (Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(1, 8), Fraction(1, 16))
QUICK_SIZES = (128,)
QUICK_DENSITIES = (Fraction(1), Fraction(1, 4))
HEADLINE_SIZE = 256


def make_points(batch, size, density, generator):
    """(B, N, 2) int32 coords of N = density * size^2 distinct pixels per batch element."""
    n = max(1, round(float(density) * size * size))
    linear = torch.stack([torch.randperm(size * size, generator=generator)[:n].sort().values for _ in range(batch)])
    return torch.stack([linear // size, linear % size], dim=-1).to(torch.int32)


# What a backward pass differentiates: "fwd+bwd" is a training step (x, weight and bias);
# "fwd+bwd(x)" only x. They differ a lot for the dense baseline: PyTorch's CPU depthwise
# conv2d computes its weight gradient on a slow path (many times its input gradient), which
# flatters any sparse kernel compared against "fwd+bwd"; "fwd+bwd(x)" is the strict one.
MODES = ("fwd", "fwd+bwd", "fwd+bwd(x)")


def _timed_calls(call, leaves, grad_out):
    """{mode: fn} for `call()` -> output, differentiating w.r.t. `leaves` (x first); each fn
    returns the output."""

    def forward():
        with torch.no_grad():
            return call()

    def backward_to(tensors):
        def fn():
            for t in leaves:
                t.grad = None
                t.requires_grad_(any(t is u for u in tensors))
            out = call()
            out.backward(grad_out)
            return out

        return fn

    return {"fwd": forward, "fwd+bwd": backward_to(leaves), "fwd+bwd(x)": backward_to(leaves[:1])}


def sparse_backend_fns(backend, x, coords, size, weight, bias, nmap, grad_out):
    def call():
        return ik.sparse_depthwise_conv(x, coords, size, weight, bias, "partial", backend=backend, neighbor_map=nmap)

    return _timed_calls(call, (x, weight, bias), grad_out)


def dense_fns(image, weight, bias, grad_out):
    def call():
        return F.conv2d(image, weight.unsqueeze(1), bias, padding=K // 2, groups=image.shape[1])

    return _timed_calls(call, (image, weight, bias), grad_out)


def spconv_unavailable_reasons():
    """(reason spconv cannot run at all, reason its backward cannot run), each None if it can;
    probed once on a tiny case so a failure costs nothing in the timed loop."""
    try:
        import spconv.pytorch as spc
    except Exception as exc:  # noqa: BLE001 - any import failure is a reason to report
        return f"spconv cannot be imported ({type(exc).__name__}: {exc}); pip install spconv (CPU wheel: spconv 2.x + cumm)", None
    import spconv

    indices = torch.tensor([[0, 1, 1], [0, 1, 2]], dtype=torch.int32)
    features = torch.randn(2, 2, requires_grad=True)
    conv = spc.SubMConv2d(2, 2, 3, bias=True)
    try:
        out = conv(spc.SparseConvTensor(features, indices, [4, 4], 1)).features
    except Exception as exc:  # noqa: BLE001
        return f"spconv {spconv.__version__} forward fails on CPU ({type(exc).__name__}: {exc})", None
    try:
        # spconv prints a debug dump on failure; the reason below says what matters
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            out.sum().backward()
    except Exception as exc:  # noqa: BLE001
        return None, f"spconv {spconv.__version__} has no CPU backward ({type(exc).__name__}: {exc})"
    return None, None


def spconv_fns(x, coords, size, grad_out, with_backward):
    """SubMConv2d C -> C (full, not depthwise) with no normalisation. The indice pairs are
    built by one untimed call and reused through indice_dict, like our neighbour map."""
    import spconv.pytorch as spc

    b, n, c = x.shape
    batch_index = torch.arange(b, dtype=torch.int32).repeat_interleave(n).unsqueeze(1)
    indices = torch.cat([batch_index, coords.reshape(-1, 2)], dim=1).contiguous()
    features = x.detach().reshape(-1, c).clone()
    conv = spc.SubMConv2d(c, c, K, bias=True, indice_key="bench")
    with torch.no_grad():
        pairs = conv(spc.SparseConvTensor(features, indices, list(size), b)).indice_dict

    def call():
        return conv(spc.SparseConvTensor(features, indices, list(size), b, indice_dict=dict(pairs))).features

    fns = _timed_calls(call, (features, conv.weight, conv.bias), grad_out.reshape(-1, c))
    return fns if with_backward else {"fwd": fns["fwd"]}


def torchsparse_unavailable_reason():
    try:
        importlib.import_module("torchsparse")
    except Exception as exc:  # noqa: BLE001
        return f"import torchsparse failed ({type(exc).__name__}: {exc}); no wheel for this torch/CPU on PyPI"
    return "torchsparse imports, but this benchmark has no TorchSparse runner yet"


def main_backend(backends):
    """The compiled backend of the device ("cpu" or "cuda") when present, else the first."""
    return next((b for b in ("cpu", "cuda") if b in backends), backends[0])


def run_case(size, density, backends, repeats, generator, peers, device=torch.device("cpu")):
    """Timings of one (size, density) on `device`: every mode of every implementation, plus
    the neighbour-map build next to one forward of the device's compiled backend."""
    label = f"{size}^2 d={density}"
    coords = make_points(B, size, density, generator).to(device)
    n = coords.shape[1]
    draw = lambda *shape: torch.randn(*shape, generator=generator).to(device)  # same values on every device
    x = draw(B, n, C)
    weight = draw(C, K, K) / K
    bias = draw(C)
    grad_sparse = draw(B, n, C)
    image = draw(B, C, size, size)
    grad_dense = draw(B, C, size, size)
    nmap = ik.build_neighbor_map(coords, (size, size), K)

    impls = {"dense": dense_fns(image, weight, bias, grad_dense)}
    for backend in backends:
        impls[backend] = sparse_backend_fns(backend, x, coords, (size, size), weight, bias, nmap, grad_sparse)
    notes = {}
    if peers["spconv"] is None and device.type == "cpu":
        impls["spconv"] = spconv_fns(x, coords, (size, size), grad_sparse, peers["spconv backward"] is None)
        notes["spconv"] = f"SubMConv2d {C}->{C}, normalize='none': {C}x the multiply-adds of depthwise"

    timings = []
    for mode in MODES:
        fns = {impl: modes[mode] for impl, modes in impls.items() if mode in modes}
        timings += time_side_by_side(fns, case=f"{label} {mode}", device=device, repeats=repeats, notes=notes)
        for peer in ("spconv", "torchsparse"):
            reason = peers[peer] or (peers["spconv backward"] if peer == "spconv" and mode != "fwd" else None)
            if reason is not None:
                timings.append(skipped(f"{label} {mode}", peer, reason))

    # Cheap calls, noisy on a shared machine: more repeats.
    build = {
        f"{main_backend(backends)} fwd": impls[main_backend(backends)]["fwd"],
        "build_neighbor_map": lambda: ik.build_neighbor_map(coords, (size, size), K),
    }
    build_timings = time_side_by_side(build, case=label, device=device, warmup=2, repeats=3 * repeats)
    return timings, build_timings


def headline(timings, build_timings, size, main):
    """The issue's figures at `size`^2 (ratios) for the compiled backend `main` ("cpu" or
    "cuda": main_backend), each with its target and whether it is met;
    the fwd+bwd targets are judged in both backward modes (see MODES). Each ratio is of
    medians, with the ratio of minima beside it ("ratio_of_min")."""
    found = {(t.case, t.impl): t for t in timings + build_timings if t.median_s is not None}

    def ratio(case, num, den):
        case = f"{size}^2 {case}"
        if (case, num) not in found or (case, den) not in found:
            return None
        return tuple(stat_of(found[case, num], s) / stat_of(found[case, den], s) for s in ("median", "min"))

    figures = {}
    for mode in ("fwd+bwd", "fwd+bwd(x)"):
        for density, target in (("1/4", 0.25), ("1", 1.5)):
            figures[f"{main} {mode} / dense {mode}, d={density}"] = (ratio(f"d={density} {mode}", main, "dense"), target)
    figures[f"build_neighbor_map / {main} fwd, d=1/4"] = (ratio("d=1/4", "build_neighbor_map", f"{main} fwd"), 0.2)
    return {
        name: {
            "ratio": value and value[0],
            "ratio_of_min": value and value[1],
            "target_at_most": target,
            "met": None if value is None else value[0] <= target,
        }
        for name, (value, target) in figures.items()
    }


def report(args, sizes, densities, backends, peers, timings, build_timings, final):
    """Write the JSON; when `final`, print the tables and the headline figures too."""
    head_size = HEADLINE_SIZE if HEADLINE_SIZE in sizes else max(sizes)
    main = main_backend(backends)
    figures = headline(timings, build_timings, head_size, main)
    extra = {
        "complete": final,
        "config": {"B": B, "C": C, "K": K, "dtype": "float32", "sizes": list(sizes), "densities": [str(d) for d in densities]},
        "backends": backends,
        "peers": {name: reason or "ran" for name, reason in peers.items()},
        "modes": {"fwd+bwd": "grads of x, weight, bias", "fwd+bwd(x)": "grad of x only"},
        "build_timings": [t.__dict__ for t in build_timings],
        "headline": {"size": head_size, **figures},
    }
    path = write_json(FAMILY, timings, args, extra)
    if not final:
        return path
    title = f"sparse_depthwise_conv, B={B} C={C} K={K} float32, {torch.get_num_threads()} threads, normalize='partial'"
    print(ratio_table(timings, "dense", title))
    print(ratio_table(timings, "dense", stat="min"))
    print()
    print(ratio_table(build_timings, f"{main} fwd", "neighbour-map build vs one forward"))
    print(ratio_table(build_timings, f"{main} fwd", stat="min"))
    print(f"\nheadline at {head_size}^2 (issue 3 targets):")
    for name, f in figures.items():
        shown = "n/a" if f["ratio"] is None else f"{f['ratio']:.3f}x (min/min {f['ratio_of_min']:.3f}x)"
        print(f"  {name}: {shown} (target <= {f['target_at_most']}x, {'met' if f['met'] else 'NOT met'})")
    print(f"wrote {path}")
    return path


def main(argv=None):
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", help="grid sides (default 128 256; --quick: 128)")
    parser.add_argument("--densities", type=Fraction, nargs="*", help="e.g. 1 1/4 (default 1 1/2 1/4 1/8 1/16)")
    parser.add_argument(
        "--skip", nargs="*", default=[], metavar="IMPL", help="implementations not to run, e.g. reference spconv"
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    densities = args.densities or (QUICK_DENSITIES if args.quick else FULL_DENSITIES)
    repeats = args.repeats or (2 if args.quick else 5)
    # The Triton interpreter is a correctness tool, far too slow to time: triton only on a GPU.
    backends = [b for b in ik.available_backends(device) if b not in args.skip]
    if device.type == "cpu" and "triton" in backends:
        backends.remove("triton")
    spconv_reason, spconv_backward_reason = spconv_unavailable_reasons()
    if "spconv" in args.skip:
        spconv_reason = "not run (--skip spconv)"
    elif device.type != "cpu":
        spconv_reason = "timed on CPU only here (its CUDA build is a separate wheel)"
    peers = {
        "spconv": spconv_reason,
        "spconv backward": spconv_backward_reason,
        "torchsparse": torchsparse_unavailable_reason(),
    }
    generator = torch.Generator().manual_seed(0)

    timings, build_timings = [], []
    for size in sizes:
        for density in densities:
            t, bt = run_case(size, density, backends, repeats, generator, peers, device)
            timings += t
            build_timings += bt
            print(f"  done {size}^2 d={density}", file=sys.stderr, flush=True)
            # Written after every case, so an interrupted long run keeps what it measured.
            report(args, sizes, densities, backends, peers, timings, build_timings, final=False)
    report(args, sizes, densities, backends, peers, timings, build_timings, final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
