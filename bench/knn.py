"""Benchmark of knn_to_grid and grid_to_points (docs/ops.md#knn_to_grid) against the reference and
scipy.spatial.cKDTree (and torch_geometric.nn.knn_interpolate when importable).

    python -m bench.knn                  # B=4, C=64, N = 1/4 and 1/8 of 256^2, grid 128^2, k=3
    python -m bench.knn --quick          # 64^2 onto 32^2, few repeats
    python -m bench.knn --with-reference # also time the brute-force reference at full size (minutes)
    python -m bench.knn --threads 1 2    # the thread counts to run every case at

Modes: "fwd" (no grad) and "fwd+bwd" (gradient of x, resp. y). Every knn_to_grid case runs
twice: with 1 thread and with the default thread count.

The baseline "ckdtree" is what one would write without this library, in its fastest honest
form: per batch element, build a scipy cKDTree on the point positions and query the k nearest
of every cell centre (workers=1 in the 1-thread rows, workers=-1 otherwise), weight by
1 / max(d^2, 1e-16), then apply the weights with one numpy einsum over the gathered features.
Its fwd+bwd form does the gather and the weighting in torch instead (numpy has no autograd).
It orders ties by float distance, so its neighbours can differ from docs/ops.md#knn_to_grid on
lattice ties; it is timed, not checked. Points are sorted in row-major order, as a pipeline
keeps them.

The memory floor (bench/roofline.py's "floor" bytes: x, coords and the output each moved once)
is turned into a time with a copy bandwidth measured in the same run (a torch copy of 64 MB,
bench._common.copy_bandwidth), and reported as floor time / op time.
"""
import importlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

import infdiff_kernels as ik

from ._common import (arg_parser, copy_bandwidth, ratio_table, resolve_device, skipped, stat_of, time_side_by_side,
                      write_json)
from .roofline import knn_to_grid_costs

FAMILY = "knn"
B, C, K = 4, 64, 3
FULL = dict(size=256, out=128, fractions=(4, 8))
QUICK = dict(size=64, out=32, fractions=(4, 8))
MODES = ("fwd", "fwd+bwd")
NOTES = {"ckdtree": "scipy cKDTree query (workers=1 at 1 thread, else -1) + one numpy einsum; "
                    "fwd+bwd: the lerp in torch autograd"}


def cell_centres(out):
    c = (np.arange(out) + 0.5) / out
    return np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)


def ckdtree_search(coords, size, out, k, workers):
    """(index (B, cells, k), normalised float64 weights) of the cKDTree baseline."""
    from scipy.spatial import cKDTree

    cells = cell_centres(out)
    index = np.empty((coords.shape[0], len(cells), k), np.int64)
    weights = np.empty((coords.shape[0], len(cells), k))
    for b in range(coords.shape[0]):
        d, i = cKDTree((coords[b].astype(np.float64) + 0.5) / size).query(cells, k=k, workers=workers)
        a = 1.0 / np.maximum(np.reshape(d * d, (len(cells), k)), 1e-16)
        index[b] = np.reshape(i, (len(cells), k))
        weights[b] = a / a.sum(1, keepdims=True)
    return index, weights


def ckdtree_knn_to_grid(x, coords, size, out, k, workers=-1):
    """The cKDTree baseline (numpy in, numpy out): same weighting as docs/ops.md#knn_to_grid,
    float distances, the weights applied by one einsum."""
    index, weights = ckdtree_search(coords, size, out, k, workers)
    picked = x[np.arange(x.shape[0])[:, None, None], index]  # (B, cells, k, C)
    y = np.einsum("bgk,bgkc->bcg", weights.astype(x.dtype), picked)
    return y.reshape(x.shape[0], x.shape[2], out, out)


def ckdtree_knn_to_grid_torch(x, coords, size, out, k, workers=-1):
    """The differentiable cKDTree baseline: the same search, the lerp in torch (autograd
    through the gather)."""
    index, weights = ckdtree_search(coords.numpy(), size, out, k, workers)
    index, weights = torch.from_numpy(index), torch.from_numpy(weights).to(x.dtype)
    picked = x.gather(1, index.reshape(x.shape[0], -1, 1).expand(-1, -1, x.shape[2])).view(*index.shape, x.shape[2])
    return (picked * weights.unsqueeze(-1)).sum(2).transpose(1, 2).reshape(x.shape[0], x.shape[2], out, out)


def pyg_knn_to_grid(x, coords, size, out, k):
    from torch_geometric.nn import knn_interpolate

    b, n, c = x.shape
    pos_x = ((coords.double() + 0.5) / size).reshape(-1, 2).float()
    cells = torch.from_numpy(cell_centres(out)).float()
    pos_y = cells.repeat(b, 1)
    batch_x = torch.arange(b).repeat_interleave(n)
    batch_y = torch.arange(b).repeat_interleave(len(cells))
    y = knn_interpolate(x.reshape(-1, c), pos_x, pos_y, batch_x, batch_y, k=k)
    return y.view(b, out * out, c).transpose(1, 2).reshape(b, c, out, out)


def _timed(call, leaf):
    g = None

    def fwd():
        with torch.no_grad():
            return call(leaf)

    def fwd_bwd():
        nonlocal g
        leaf.grad = None
        y = call(leaf)
        if g is None:
            g = torch.randn_like(y)
        y.backward(g)
        return y

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


def make_points(size, fraction, generator):
    n = size * size // fraction
    linear = torch.stack([torch.randperm(size * size, generator=generator)[:n].sort().values for _ in range(B)])
    return torch.stack([linear // size, linear % size], -1).to(torch.int32)


def thread_settings(device, threads=None):
    """(threads, cKDTree workers) pairs: `threads` (a list) or one thread, then the default
    count when it is more. workers=1 goes with one thread, all cores (-1) otherwise."""
    default = torch.get_num_threads()
    if device.type != "cpu":
        return [(default, -1)]
    counts = threads or [1] + ([default] if default > 1 else [])
    return [(n, 1 if n == 1 else -1) for n in dict.fromkeys(counts)]


def main(argv=None):
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--with-reference", action="store_true", help="time the brute-force reference at full size")
    parser.add_argument("--threads", type=int, nargs="+", help="CPU thread counts (default: 1 and torch's default)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads and min(args.threads) < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    cfg = QUICK if args.quick else FULL
    repeats = args.repeats or (3 if args.quick else 5)
    size, out = cfg["size"], cfg["out"]
    have_pyg = importlib.util.find_spec("torch_geometric") is not None
    run_reference = args.quick or args.with_reference
    backends = [b for b in ik.available_backends(device) if b != "reference"]
    if device.type == "cpu" and "triton" in backends:
        backends.remove("triton")  # the interpreter is a correctness tool, not a timing one
    to_grid, to_points, headline = [], [], {}
    for threads, workers in thread_settings(device, args.threads):
        torch.set_num_threads(threads)
        g = torch.Generator().manual_seed(0)
        for fraction in cfg["fractions"]:
            coords = make_points(size, fraction, g).to(device)
            x = torch.randn(B, coords.shape[1], C, generator=g).to(device).requires_grad_()
            y = torch.randn(B, C, out, out, generator=g).to(device).requires_grad_()
            impls = {b: (lambda t, b=b: ik.knn_to_grid(t, coords, (size, size), (out, out), K, backend=b, check=False))
                     for b in backends}
            if run_reference:
                impls["reference"] = lambda t: ik.knn_to_grid(t, coords, (size, size), (out, out), K, backend="reference")
            if device.type == "cpu":
                impls["ckdtree"] = lambda t: ckdtree_knn_to_grid_torch(t, coords, size, out, K, workers)
                if have_pyg:
                    impls["pyg"] = lambda t: pyg_knn_to_grid(t, coords.cpu(), size, out, K)
            for mode in MODES:
                case = f"{size}^2 1/{fraction} -> {out}^2 {mode} {threads}t"
                fns = {name: _timed(call, x)[mode] for name, call in impls.items()}
                if device.type == "cpu" and mode == "fwd":
                    x_np, coords_np = x.detach().numpy(), coords.numpy()
                    fns["ckdtree"] = lambda: ckdtree_knn_to_grid(x_np, coords_np, size, out, K, workers)
                to_grid += time_side_by_side(fns, case=case, device=device, repeats=repeats, notes=NOTES)
                if not run_reference:
                    to_grid.append(skipped(case, "reference", "brute force takes minutes here: pass --with-reference"))
                if not have_pyg and device.type == "cpu":
                    to_grid.append(skipped(case, "pyg", "torch_geometric is not installed"))
                fns = {b: _timed(lambda t, b=b: ik.grid_to_points(t, coords, (size, size), backend=b), y)[mode]
                       for b in backends + ["reference"]}
                # Its own case name: the report groups records by case and implementation.
                to_points += time_side_by_side(fns, case=f"grid_to_points {case}", device=device, repeats=repeats)
            floor_bytes = knn_to_grid_costs(B, size, coords.shape[1], C, out, K)["floor"].bytes
            for t in to_grid:
                if t.impl in backends and t.case.startswith(f"{size}^2 1/{fraction} ") and t.case.endswith(f"fwd {threads}t"):
                    t.floor_bytes = floor_bytes
            bandwidth = copy_bandwidth(device, repeats=repeats)
            fwd = f"{size}^2 1/{fraction} -> {out}^2 fwd {threads}t"
            ours = next((t for t in to_grid if t.case == fwd and t.impl == backends[0] and t.median_s), None)
            base = next((t for t in to_grid if t.case == fwd and t.impl == "ckdtree" and t.median_s), None)
            if ours is not None:
                entry = {"case": fwd, "threads": threads, "backend": ours.impl,
                         "copy_bandwidth_GBps": bandwidth / 1e9, "floor_bytes": floor_bytes,
                         "memory_floor_fraction": floor_bytes / bandwidth / stat_of(ours, "min")}
                if base is not None:
                    entry["speedup_vs_ckdtree"] = stat_of(base, "min") / stat_of(ours, "min")
                headline[f"1/{fraction} {threads}t"] = entry
    baseline = "ckdtree" if device.type == "cpu" else backends[0]
    print(ratio_table(to_grid, baseline, title=f"knn_to_grid, B={B}, C={C}, k={K}, {device}", stat="min"))
    print()
    print(ratio_table(to_points, "reference", title=f"grid_to_points, B={B}, C={C}, {device}", stat="min"))
    print()
    for key, e in headline.items():
        vs = f"{e['speedup_vs_ckdtree']:.1f}x faster than the cKDTree path, " if "speedup_vs_ckdtree" in e else ""
        print(f"headline {key}: {e['backend']} knn_to_grid fwd is {vs}at {100 * e['memory_floor_fraction']:.0f}% of "
              f"its memory floor ({e['floor_bytes'] / 1e6:.1f} MB at a copy bandwidth of "
              f"{e['copy_bandwidth_GBps']:.1f} GB/s; min times)")
    path = write_json(FAMILY, to_grid + to_points, args, extra={"headline": headline}, device=device)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
