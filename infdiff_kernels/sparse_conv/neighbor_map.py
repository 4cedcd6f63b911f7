"""The neighbour map: what every sparse-conv layer on the same points shares.

Data structure: a dense per-sample lookup grid. `lookup[b, i, j]` holds the index of the
point of batch element b at pixel (i, j), or -1. A kernel finds the neighbour at window
offset (dy, dx) of point n with one load, `lookup[b, row_n + dy, col_n + dx]`, so it needs
no hash probing and no per-pair list; forward and backward walk the same K*K offsets.
`counts[b, n]` is the window size m of SPEC section 1. On CPUs with the extension built,
both come from one C++ pass (csrc/cpu/neighbor_map.h); elsewhere from torch ops: a
scatter, and a summed-area table of the occupancy grid (O(B H W), independent of K).

Memory: 4 * B * (H * W + 3 * N) bytes (int32 lookup grid, int32 counts, int32 coords),
independent of the density and of C; for B=4 at 256^2 that is 1 MiB plus 48 bytes a point.
The grid grows with H * W, not with N; at extreme sparsity of very large grids (say 1/256 of
8192^2) a hash table would be smaller, and is the structure to add then.
"""
from dataclasses import dataclass

import torch

from .. import _ext, _validate


@dataclass(frozen=True, eq=False)
class NeighborMap:
    """Built once per (coords, size, kernel_size) by `build_neighbor_map`; pass it to every
    `sparse_depthwise_conv` on those points (and their backward reuses it)."""

    coords: torch.Tensor  # (B, N, 2) int32, contiguous
    lookup: torch.Tensor  # (B, H, W) int32: point index or -1
    counts: torch.Tensor  # (B, N) int32: window sizes m >= 1
    size: tuple
    kernel_size: int

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.coords, self.lookup, self.counts))


def _duplicate_error(coords, b, n):
    return ValueError(
        f"coords holds duplicate points in batch element {b}: {coords[b, n].tolist()} "
        "appears more than once (pass check=False to skip this check)"
    )


def _build_cpu(coords32, size, kernel_size, check):
    """The C++ pass; also finds coordinates off the grid, so no separate range check."""
    lookup, counts, off_grid, duplicate = _ext.ext.build_neighbor_map_cpu(coords32, *size, kernel_size, check)
    n = coords32.shape[1]
    if off_grid >= 0:
        _validate.coords_in_range(coords32, size)  # raises, naming the point
    if duplicate >= 0:
        raise _duplicate_error(coords32, duplicate // n, duplicate % n)
    return lookup, counts


def _scatter_lookup(coords, size, check):
    b, n, _ = coords.shape
    h, w = size
    linear = coords[..., 0].long() * w + coords[..., 1].long()
    index = torch.arange(n, device=coords.device, dtype=torch.int32).expand(b, n)
    lookup = torch.full((b, h * w), -1, device=coords.device, dtype=torch.int32)
    lookup.scatter_(1, linear, index)
    if check and n:
        # With duplicates, scatter keeps one writer per pixel: the others do not read back.
        lost = lookup.gather(1, linear) != index
        if bool(lost.any()):
            raise _duplicate_error(coords, *(int(i) for i in lost.nonzero()[0]))
    return lookup.view(b, h, w)


def _window_counts(lookup, coords, radius):
    b, h, w = lookup.shape
    occupied = torch.zeros((b, h + 1, w + 1), device=lookup.device, dtype=torch.int32)
    occupied[:, 1:, 1:] = (lookup >= 0).to(torch.int32)
    table = occupied.cumsum(1, dtype=torch.int32).cumsum(2, dtype=torch.int32).view(b, (h + 1) * (w + 1))  # B may be 0
    rows, cols = coords[..., 0].long(), coords[..., 1].long()
    lo_r, hi_r = (rows - radius).clamp(min=0), (rows + radius + 1).clamp(max=h)
    lo_c, hi_c = (cols - radius).clamp(min=0), (cols + radius + 1).clamp(max=w)

    def at(r, c):
        return table.gather(1, r * (w + 1) + c)

    return at(hi_r, hi_c) - at(lo_r, hi_c) - at(hi_r, lo_c) + at(lo_r, lo_c)


def build_neighbor_map(coords, size, kernel_size, *, check=True) -> NeighborMap:
    """Neighbour map of the points `coords` (B, N, 2) of an (H, W) grid for (K, K) kernels.

    With check=True, coordinates outside the grid and duplicate points raise ValueError."""
    _validate.tensor("coords", coords, 3)
    _validate.dtype_in("coords", coords, _validate.COORD_DTYPES)
    if coords.shape[-1] != 2:
        raise ValueError(f"coords must be (B, N, 2), got shape {tuple(coords.shape)}")
    size = _validate.size2("size", size)
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size K must be an odd int >= 1, got {kernel_size!r}")
    _validate.index_count("kernel_size", kernel_size * kernel_size, "the number of kernel taps K^2")
    _validate.index_count("coords", coords.shape[1], "the number of points N")
    with torch.no_grad():
        if coords.device.type == "cpu" and _ext.has_cpu_kernels():
            coords32 = coords.to(torch.int32).contiguous()
            lookup, counts = _build_cpu(coords32, size, kernel_size, check)
        else:
            _validate.coords_in_range(coords, size)
            coords32 = coords.to(torch.int32).contiguous()
            lookup = _scatter_lookup(coords32, size, check)
            counts = _window_counts(lookup, coords32, kernel_size // 2).to(torch.int32).contiguous()
    return NeighborMap(coords32, lookup, counts, size, kernel_size)
