"""Pure-PyTorch sparse depthwise convolution: the executable form of
docs/ops.md#sparse_depthwise_conv.

`sparse_depthwise_conv` follows the contract's definition point by point (a gather per
window offset); `dense_oracle` computes the same thing the other way the contract gives, by
scattering onto a dense grid and convolving. Both are differentiable by autograd."""
import torch
import torch.nn.functional as F

NORMALIZE_CODES = {"partial": 0, "mean": 1, "none": 2}


def _window_scale(counts, normalize, kernel_size, dtype):
    counts = counts.to(dtype)
    if normalize == "partial":
        return kernel_size * kernel_size / counts
    if normalize == "mean":
        return 1.0 / counts
    return torch.ones_like(counts)


def sparse_depthwise_conv(x, coords, size, weight, bias=None, normalize="partial"):
    b, n, c = x.shape
    h, w = size
    k = weight.shape[-1]
    r = k // 2
    rows, cols = coords[..., 0].long(), coords[..., 1].long()
    lookup = torch.full((b, h * w), -1, device=x.device, dtype=torch.long)
    lookup.scatter_(1, rows * w + cols, torch.arange(n, device=x.device).expand(b, n))
    acc = torch.zeros_like(x)
    counts = torch.zeros((b, n), device=x.device, dtype=torch.long)
    # offsets beyond the grid never hold a point: a K wider than the grid loops no further
    ry, rx = min(r, h - 1), min(r, w - 1)
    for dy in range(-ry, ry + 1):
        for dx in range(-rx, rx + 1):
            rr, cc = rows + dy, cols + dx
            inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            p = lookup.gather(1, rr.clamp(0, h - 1) * w + cc.clamp(0, w - 1))
            present = inside & (p >= 0)
            neighbour = x.gather(1, p.clamp(min=0).unsqueeze(-1).expand(b, n, c))
            # where, not a 0/1 product: an absent neighbour reads point 0, whose NaN/Inf times 0 would be NaN
            neighbour = torch.where(present.unsqueeze(-1), neighbour, torch.zeros((), dtype=x.dtype, device=x.device))
            acc = acc + weight[:, dy + r, dx + r] * neighbour
            counts += present
    out = _window_scale(counts, normalize, k, x.dtype).unsqueeze(-1) * acc
    return out + bias if bias is not None else out


def dense_oracle(x, coords, size, weight, bias=None, normalize="partial"):
    """The contract's dense equivalent: scatter onto a zero grid and a 0/1 mask, convolve both,
    gather back at the points."""
    b, n, c = x.shape
    h, w = size
    k = weight.shape[-1]
    linear = (coords[..., 0].long() * w + coords[..., 1].long()).unsqueeze(1)  # (B, 1, N)
    grid = x.new_zeros((b, c, h * w)).scatter(2, linear.expand(b, c, n), x.transpose(1, 2))
    mask = x.new_zeros((b, 1, h * w)).scatter(2, linear, 1.0)
    conv = F.conv2d(grid.view(b, c, h, w), weight.unsqueeze(1), padding=k // 2, groups=c)
    count = F.conv2d(mask.view(b, 1, h, w), x.new_ones((1, 1, k, k)), padding=k // 2)
    acc = conv.view(b, c, -1).gather(2, linear.expand(b, c, n)).transpose(1, 2)
    m = count.view(b, -1).gather(1, linear[:, 0]).round()
    out = _window_scale(m, normalize, k, x.dtype).unsqueeze(-1) * acc
    return out + bias if bias is not None else out
