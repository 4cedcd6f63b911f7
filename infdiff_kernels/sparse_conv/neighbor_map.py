"""The neighbour map: what every sparse-conv layer on the same points shares.

Data structure: a dense per-sample lookup grid. `lookup[b, i, j]` holds the index of the
point of batch element b at pixel (i, j), or -1. A kernel finds the neighbour at window
offset (dy, dx) of point n with one load, `lookup[b, row_n + dy, col_n + dx]`, so it needs
no hash probing and no per-pair list; forward and backward walk the same K*K offsets.
`counts[b, n]` is the window size m of docs/ops.md#sparse_depthwise_conv. Backend
"cpu" builds both in one C++ pass (csrc/cpu/neighbor_map.h); every other backend with torch
ops on the tensors' device: a scatter, and a summed-area table of the occupancy grid
(O(B H W), independent of K). _dispatch.neighbor_map_builder says which; the build is one
custom op (`build_neighbor_map_op`), so torch.compile calls it as a whole.

Memory: 4 * B * (H * W + 3 * N) bytes (int32 lookup grid, int32 counts, int32 coords),
independent of the density and of C; for B=4 at 256^2 that is 1 MiB plus 48 bytes a point.
The grid grows with H * W, not with N; at extreme sparsity of very large grids (say 1/256 of
8192^2) a hash table would be smaller, and is the structure to add then.
"""
from dataclasses import dataclass

import torch

from .. import _dispatch, _validate


@dataclass(frozen=True, eq=False)
class NeighborMap:
    """Built once per (coords, size, kernel_size) by `build_neighbor_map`; pass it to every
    `sparse_depthwise_conv` on those points (and their backward reuses it).
    Contract: docs/ops.md#build_neighbor_map"""

    coords: torch.Tensor  # (B, N, 2) int32, contiguous
    lookup: torch.Tensor  # (B, H, W) int32: point index or -1
    counts: torch.Tensor  # (B, N) int32: window sizes m >= 1
    size: tuple
    kernel_size: int

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.coords, self.lookup, self.counts))


def _scatter_lookup(coords, size, check):
    """The lookup grid (B, H, W) int32 of coords (B, N, 2) int32 (on the grid)."""
    b, n, _ = coords.shape
    h, w = size
    linear = coords[..., 0].long() * w + coords[..., 1].long()
    index = torch.arange(n, device=coords.device, dtype=torch.int32).expand(b, n)
    lookup = torch.full((b, h * w), -1, device=coords.device, dtype=torch.int32)
    lookup.scatter_(1, linear, index)
    if check and n:
        # With duplicates, scatter keeps one writer per pixel: the others do not read back.
        _validate.every_point_kept(lookup, linear, index, coords)
    return lookup.view(b, h, w)


def _window_counts(lookup, coords, radius):
    """The window sizes (B, N) of coords (B, N, 2) from lookup (B, H, W), by a summed-area
    table of the occupancy grid."""
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


@torch.library.custom_op("infdiff::build_neighbor_map", mutates_args=())
def build_neighbor_map_op(
    coords: torch.Tensor, H: int, W: int, kernel_size: int, check: bool, builder: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(coords (B, N, 2) int32 contiguous copy, lookup (B, H, W) int32, counts (B, N) int32).
    Every output has a size known from the inputs' shapes, so the fake kernel needs no
    data-dependent (unbacked) sizes. Coordinates off the grid, and with `check` duplicate
    points, raise ValueError here, where the values are read."""
    size = (H, W)
    if builder == "cpu":
        coords32 = coords.to(torch.int32, memory_format=torch.contiguous_format, copy=True)
        kernels = _dispatch.kernels("sparse_conv", "cpu")
        lookup, counts, off_grid, duplicate = kernels.build_neighbor_map_cpu(coords32, H, W, kernel_size, check)
        _validate.neighbor_map_status(coords32, size, off_grid, duplicate)
        return coords32, lookup, counts
    coords32 = _validate.checked_coords_op(coords, H, W, False)
    lookup = _scatter_lookup(coords32, size, check)
    counts = _window_counts(lookup, coords32, kernel_size // 2).to(torch.int32).contiguous()
    return coords32, lookup, counts


@build_neighbor_map_op.register_fake
def _(coords, H, W, kernel_size, check, builder):
    b, n = coords.shape[:2]
    int32 = torch.int32
    return coords.new_empty((b, n, 2), dtype=int32), coords.new_empty((b, H, W), dtype=int32), coords.new_empty((b, n), dtype=int32)


def build_neighbor_map(coords, size, kernel_size, *, check=True, backend=None) -> NeighborMap:
    """Neighbour map of the points `coords` (B, N, 2) of an (H, W) grid for (K, K) kernels.

    Coordinates outside the grid raise ValueError; so do duplicate points unless check=False.
    `backend` picks the builder as docs/ops.md#backends lists ("cpu": one C++ pass, the
    others: torch ops); None picks the fastest for coords' device.
    Contract: docs/ops.md#build_neighbor_map"""
    _validate.coords_tensor(coords)
    size = _validate.size2("size", size)
    kernel_size = _validate.kernel_size(kernel_size)
    builder = _dispatch.neighbor_map_builder(_dispatch.resolve_backend(backend, coords.device))
    coords32, lookup, counts = build_neighbor_map_op(coords, *size, kernel_size, check, builder)
    return NeighborMap(coords32, lookup, counts, size, kernel_size)
