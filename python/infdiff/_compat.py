"""The infdiff_kernels ops the pipeline uses, from one place (the public API only), plus the
pipeline's own point helpers (gather_points, scatter_points, random_coords, grid_coords):
trivial index arithmetic on (B, N, 2) row/col coordinates."""
import torch

import infdiff_kernels as _k

sparse_depthwise_conv = _k.sparse_depthwise_conv
build_neighbor_map = _k.build_neighbor_map
resample_kernel = _k.resample_kernel


# ---------------------------------------------------------------- point helpers
def grid_coords(size, batch=1, device="cpu"):
    """All pixels of an (H, W) grid, row-major: (batch, H*W, 2) int64."""
    h, w = size
    rows = torch.arange(h, device=device).repeat_interleave(w)
    cols = torch.arange(w, device=device).repeat(h)
    return torch.stack([rows, cols], -1).expand(batch, h * w, 2).contiguous()


def random_coords(batch, size, count, generator=None, device="cpu"):
    """`count` distinct uniformly random pixels of an (H, W) grid per batch element: (B, N, 2) int64."""
    h, w = size
    scores = torch.rand(batch, h * w, generator=generator, device=device)
    linear = scores.argsort(dim=1)[:, :count].sort(dim=1).values  # sorted: memory-friendly gathers
    return torch.stack([linear // w, linear % w], -1)


def gather_points(u, coords):
    """Grid values u (B, C, H, W) at coords (B, N, 2) -> point features (B, N, C)."""
    b, c, h, w = u.shape
    linear = (coords[..., 0] * w + coords[..., 1]).long()
    return u.reshape(b, c, h * w).gather(2, linear[:, None, :].expand(b, c, -1)).transpose(1, 2)


def scatter_points(x, coords, size):
    """Point features x (B, N, C) onto a zero grid (B, C, H, W), plus the 0/1 mask (B, 1, H, W)."""
    b, n, c = x.shape
    h, w = size
    linear = (coords[..., 0] * w + coords[..., 1]).long()
    out = x.new_zeros(b, c, h * w).scatter(2, linear[:, None, :].expand(b, c, n), x.transpose(1, 2))
    mask = x.new_zeros(b, 1, h * w).scatter(2, linear[:, None, :], 1.0)
    return out.view(b, c, h, w), mask.view(b, 1, h, w)


knn_to_grid = _k.knn_to_grid
grid_to_points = _k.grid_to_points
mollify = _k.mollify
wiener = _k.wiener
gaussian_random_field = _k.gaussian_random_field
q_sample = _k.q_sample


def mollified_noise(shape, sigma, boundary="reflect", generator=None, device="cpu", dtype=torch.float32):
    """T xi for white noise xi (unit pixel variance) of `shape` (..., H, W)."""
    xi = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return mollify(xi, sigma, boundary=boundary) if sigma > 0 else xi
