"""Benchmark of knn_to_grid and grid_to_points (docs/ops.md#knn_to_grid) against the reference and
scipy.spatial.cKDTree (and torch_geometric.nn.knn_interpolate when importable).

    python -m bench.knn                  # B=4, C=64, N = 1/4 and 1/8 of 256^2, grid 128^2, k=3
    python -m bench.knn --quick          # 64^2 onto 32^2, few repeats
    python -m bench.knn --with-reference # also time the brute-force reference at full size (minutes)

Modes: "fwd" (no grad) and "fwd+bwd" (gradient of x, resp. y). The cKDTree path is what one
would write without this library: per batch element, build a tree on the point positions,
query the k nearest of every cell centre (workers=-1: all cores), weight by
1 / max(d^2, 1e-16) and lerp the features with torch (autograd through the gather). It
orders ties by float distance, so its neighbours can differ from docs/ops.md#knn_to_grid on lattice
ties; it is timed, not checked. Points are sorted in row-major order, as a pipeline keeps them.
"""
import importlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

import infdiff_kernels as ik

from ._common import arg_parser, ratio_table, skipped, stat_of, time_side_by_side, write_json

FAMILY = "knn"
B, C, K = 4, 64, 3
FULL = dict(size=256, out=128, fractions=(4, 8))
QUICK = dict(size=64, out=32, fractions=(4, 8))
MODES = ("fwd", "fwd+bwd")


def cell_centres(out):
    c = (np.arange(out) + 0.5) / out
    return np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)


def ckdtree_knn_to_grid(x, coords, size, out, k):
    """The cKDTree baseline: same weighting as docs/ops.md#knn_to_grid, float distances."""
    from scipy.spatial import cKDTree

    cells = cell_centres(out)
    index, weights = [], []
    for b in range(x.shape[0]):
        pos = (coords[b].numpy().astype(np.float64) + 0.5) / size
        d, i = cKDTree(pos).query(cells, k=k, workers=-1)
        d, i = d.reshape(len(cells), k), i.reshape(len(cells), k)
        a = 1.0 / np.maximum(d * d, 1e-16)
        index.append(torch.from_numpy(i))
        weights.append(torch.from_numpy(a / a.sum(1, keepdims=True)))
    index, weights = torch.stack(index), torch.stack(weights).to(x.dtype)
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


def main(argv=None):
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--with-reference", action="store_true", help="time the brute-force reference at full size")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    repeats = args.repeats or (3 if args.quick else 5)
    device = torch.device(args.device)
    size, out = cfg["size"], cfg["out"]
    have_pyg = importlib.util.find_spec("torch_geometric") is not None
    run_reference = args.quick or args.with_reference
    backends = [b for b in ik.available_backends(device) if b != "reference"]
    if device.type == "cpu" and "triton" in backends:
        backends.remove("triton")  # the interpreter is a correctness tool, not a timing one
    g = torch.Generator().manual_seed(0)
    to_grid, to_points = [], []
    for fraction in cfg["fractions"]:
        coords = make_points(size, fraction, g).to(device)
        x = torch.randn(B, coords.shape[1], C, generator=g).to(device).requires_grad_()
        y = torch.randn(B, C, out, out, generator=g).to(device).requires_grad_()
        impls = {b: (lambda t, b=b: ik.knn_to_grid(t, coords, (size, size), (out, out), K, backend=b, check=False))
                 for b in backends}
        if run_reference:
            impls["reference"] = lambda t: ik.knn_to_grid(t, coords, (size, size), (out, out), K, backend="reference")
        if device.type == "cpu":
            impls["ckdtree"] = lambda t: ckdtree_knn_to_grid(t, coords.cpu(), size, out, K)
            if have_pyg:
                impls["pyg"] = lambda t: pyg_knn_to_grid(t, coords.cpu(), size, out, K)
        for mode in MODES:
            case = f"{size}^2 1/{fraction} -> {out}^2 {mode}"
            fns = {name: _timed(call, x)[mode] for name, call in impls.items()}
            to_grid += time_side_by_side(fns, case=case, device=device, repeats=repeats)
            if not run_reference:
                to_grid.append(skipped(case, "reference", "brute force takes minutes here: pass --with-reference"))
            if not have_pyg:
                to_grid.append(skipped(case, "pyg", "torch_geometric is not installed"))
            fns = {b: _timed(lambda t, b=b: ik.grid_to_points(t, coords, (size, size), backend=b), y)[mode]
                   for b in backends + ["reference"]}
            to_points += time_side_by_side(fns, case=case, device=device, repeats=repeats)
    baseline = "ckdtree" if device.type == "cpu" else backends[0]
    print(ratio_table(to_grid, baseline, title=f"knn_to_grid, B={B}, C={C}, k={K}, {device}", stat="min"))
    print()
    print(ratio_table(to_points, "reference", title=f"grid_to_points, B={B}, C={C}, {device}", stat="min"))
    headline = {}
    for t in to_grid:
        if t.impl == "cpu" and t.case.endswith("fwd") and "1/4" in t.case:
            base = next((u for u in to_grid if u.case == t.case and u.impl == "ckdtree" and u.median_s), None)
            if base is not None and t.median_s:
                headline = {"cpu_fwd_speedup_vs_ckdtree_1_4": stat_of(base, "min") / stat_of(t, "min"),
                            "case": t.case}
    if headline:
        print(f"\nheadline: CPU knn_to_grid fwd ({headline['case']}) is "
              f"{headline['cpu_fwd_speedup_vs_ckdtree_1_4']:.1f}x faster than the cKDTree path (min times)")
    path = write_json(FAMILY, to_grid + to_points, args, extra={"headline": headline}, device=device)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
