"""Pure-PyTorch k-NN lerp: the executable form of docs/ops.md#knn_to_grid and #grid_to_points.

`knn_search` is a brute force over the integer lattice distance D of every (cell, point)
pair, ordered by (D, point index); it walks the cells in chunks so memory stays bounded.
`grid_to_points` is F.grid_sample itself. Both ops are differentiable by autograd."""
import math

import torch
import torch.nn.functional as F

# Cells per brute-force chunk, scaled so a chunk holds about this many (cell, point) pairs.
_PAIRS_PER_CHUNK = 1 << 22


def lattice_scales(size, out_size):
    """(sy, sx) of the lattice distance (docs/ops.md#knn_to_grid): W w / g and H h / g with g = gcd(W w, H h)."""
    (H, W), (h, w) = size, out_size
    g = math.gcd(W * w, H * h)
    return W * w // g, H * h // g


def max_lattice_distance(size, out_size):
    """The largest D over all points of an (H, W) lattice and cells of an (h, w) grid."""
    (H, W), (h, w) = size, out_size
    sy, sx = lattice_scales(size, out_size)
    dy = max(abs((2 * r + 1) * h - (2 * i + 1) * H) for r in (0, H - 1) for i in (0, h - 1))
    dx = max(abs((2 * c + 1) * w - (2 * j + 1) * W) for c in (0, W - 1) for j in (0, w - 1))
    return (dy * sy) ** 2 + (dx * sx) ** 2


def d2_scale(size, out_size):
    """d^2 in domain units per unit of D."""
    (H, W), (h, w) = size, out_size
    return (math.gcd(W * w, H * h) / (2.0 * H * h * W * w)) ** 2


def knn_search(coords, size, out_size, k):
    """(index (B, h*w, k) int64, weights (B, h*w, k) float64): the k nearest points of every
    cell in (D, index) order and their normalised inverse-square weights."""
    (H, W), (h, w) = size, out_size
    sy, sx = lattice_scales(size, out_size)
    b, n, _ = coords.shape
    dev = coords.device
    rows, cols = coords[..., 0].long(), coords[..., 1].long()
    cell_i = torch.arange(h, device=dev).repeat_interleave(w)
    cell_j = torch.arange(w, device=dev).repeat(h)
    # D * N + index is a unique key in (D, index) order whenever it fits in int64.
    use_key = max_lattice_distance(size, out_size) * n + n < 2**63
    chunk = max(1, _PAIRS_PER_CHUNK // max(1, b * n))
    index, dist = [], []
    for start in range(0, h * w, chunk):
        i, j = cell_i[start : start + chunk], cell_j[start : start + chunk]
        ey = ((2 * rows[:, None, :] + 1) * h - (2 * i[None, :, None] + 1) * H) * sy
        ex = ((2 * cols[:, None, :] + 1) * w - (2 * j[None, :, None] + 1) * W) * sx
        D = ey * ey + ex * ex  # (B, chunk, N)
        if use_key:
            key = D * n + torch.arange(n, device=dev)
            top = key.topk(k, dim=-1, largest=False, sorted=True).values
            idx = top % n
        else:
            idx = D.sort(dim=-1, stable=True).indices[..., :k]
        index.append(idx)
        dist.append(D.gather(-1, idx))
    index, dist = torch.cat(index, 1), torch.cat(dist, 1)
    a = 1.0 / (dist.double() * d2_scale(size, out_size)).clamp(min=1e-16)
    return index, a / a.sum(-1, keepdim=True)


def knn_to_grid(x, coords, size, out_size, k=3):
    index, weights = knn_search(coords, size, out_size, k)
    return lerp_neighbours(x, index, weights, out_size)


def lerp_neighbours(x, index, weights, out_size):
    """(B, C, h, w): sum over the k neighbours of each cell of weight * x[neighbour]."""
    b, n, c = x.shape
    cells, k = index.shape[1:]
    picked = x.gather(1, index.reshape(b, cells * k, 1).expand(b, cells * k, c)).view(b, cells, k, c)
    acc = (picked.to(weights.dtype) * weights.unsqueeze(-1)).sum(2).to(x.dtype)
    return acc.transpose(1, 2).reshape(b, c, *out_size)


def point_grid(coords, size, dtype):
    """grid_sample's (B, N, 1, 2) sampling grid (x = column, y = row, in [-1, 1]) of the points."""
    H, W = size
    gy = (2 * coords[..., 0].to(torch.float64) + 1) / H - 1
    gx = (2 * coords[..., 1].to(torch.float64) + 1) / W - 1
    return torch.stack((gx, gy), -1).unsqueeze(2).to(dtype)


def grid_to_points(y, coords, size):
    out = F.grid_sample(y, point_grid(coords, size, y.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return out[..., 0].transpose(1, 2).contiguous()
