"""The infdiff_kernels ops the pipeline uses, from one place.

TEMPORARY FALLBACK: the k-NN lerp (SPEC section 2) and spectral (SPEC section 3) families
are being added to infdiff_kernels in parallel. Until they are exported from
infdiff_kernels/__init__.py, each missing name below falls back to a plain PyTorch
transcription of the SPEC (slow, no custom op). Remove the fallbacks once the real ops land.

The point helpers (gather_points, scatter_points, random_coords, grid_coords) are the
pipeline's own: they are trivial index arithmetic on (B, N, 2) row/col coordinates.
"""
import math

import torch
import torch.nn.functional as F

import infdiff_kernels as _k

sparse_depthwise_conv = _k.sparse_depthwise_conv
build_neighbor_map = _k.build_neighbor_map
resample_kernel = _k.resample_kernel

FALLBACKS = []  # names served by the fallback below (reported by `infdiff demo`)


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


# ---------------------------------------------------------------- SPEC 2 fallback
def _knn_to_grid(x, coords, size, out_size, k=3, backend=None):
    b, n, c = x.shape
    (H, W), (h, w) = size, out_size
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}], got {k}")
    g = math.gcd(W * w, H * h)
    fy, fx = W * w // g, H * h // g
    ii = torch.arange(h, device=x.device).repeat_interleave(w)
    jj = torch.arange(w, device=x.device).repeat(h)
    out = []
    for bi in range(b):  # per element: the (cells, N) distance table can be large
        r, cc = coords[bi, :, 0].long(), coords[bi, :, 1].long()
        dy = (2 * r[None] + 1) * h - (2 * ii[:, None] + 1) * H
        dx = (2 * cc[None] + 1) * w - (2 * jj[:, None] + 1) * W
        dist = (dy * fy) ** 2 + (dx * fx) ** 2
        idx = torch.sort(dist, dim=1, stable=True).indices[:, :k]
        # weights from float distances in domain units, as SPEC states
        py = (r[idx].double() + 0.5) / H - (ii[:, None].double() + 0.5) / h
        px = (cc[idx].double() + 0.5) / W - (jj[:, None].double() + 0.5) / w
        a = 1.0 / (py**2 + px**2).clamp_min(1e-16)
        a = (a / a.sum(1, keepdim=True)).to(x.dtype)
        out.append((x[bi][idx] * a[..., None]).sum(1).T.reshape(c, h, w))
    return torch.stack(out)


def _grid_to_points(y, coords, size, backend=None):
    H, W = size
    gy = (coords[..., 0].to(y.dtype) + 0.5) / H * 2 - 1
    gx = (coords[..., 1].to(y.dtype) + 0.5) / W * 2 - 1
    grid = torch.stack([gx, gy], -1)[:, :, None, :]
    out = F.grid_sample(y, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[..., 0].transpose(1, 2)


# ---------------------------------------------------------------- SPEC 3 fallback
def _transfer(h, w, sigma, boundary, device, dtype):
    if boundary == "periodic":
        ky = torch.fft.fftfreq(h, d=1.0 / h, device=device, dtype=dtype)
        kx = torch.fft.rfftfreq(w, d=1.0 / w, device=device, dtype=dtype)
    else:  # the doubled domain [0, 2]^2: DFT index m is m / 2 cycles per unit length
        ky = torch.fft.fftfreq(2 * h, d=1.0 / (2 * h), device=device, dtype=dtype) / 2
        kx = torch.fft.rfftfreq(2 * w, d=1.0 / (2 * w), device=device, dtype=dtype) / 2
    return torch.exp(-2 * math.pi**2 * sigma**2 * (ky[:, None] ** 2 + kx[None, :] ** 2))


def _filter(u, make, boundary):
    h, w = u.shape[-2:]
    if boundary == "reflect":
        u = torch.cat([u, u.flip(-2)], -2)
        u = torch.cat([u, u.flip(-1)], -1)
    spec = torch.fft.rfft2(u)
    out = torch.fft.irfft2(spec * make(u.shape[-2] // (2 if boundary == "reflect" else 1)), s=u.shape[-2:])
    return out[..., :h, :w]


def _mollify(u, sigma, boundary="reflect", backend=None):
    h, w = u.shape[-2:]
    return _filter(u, lambda _: _transfer(h, w, sigma, boundary, u.device, u.dtype), boundary)


def _wiener(u, sigma, nsr=0.05, boundary="reflect", backend=None):
    h, w = u.shape[-2:]

    def make(_):
        g = _transfer(h, w, sigma, boundary, u.device, u.dtype)
        return g / (g * g + nsr)

    return _filter(u, make, boundary)


def _gaussian_random_field(shape, alpha, tau, generator=None, dtype=torch.float32, backend=None, device="cpu"):
    h, w = shape[-2:]
    z = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    ky = torch.fft.fftfreq(h, d=1.0 / h, dtype=dtype, device=device)
    kx = torch.fft.rfftfreq(w, d=1.0 / w, dtype=dtype, device=device)
    lam = tau ** (2 * alpha - 2) * (4 * math.pi**2 * (ky[:, None] ** 2 + kx[None] ** 2) + tau**2) ** (-alpha)
    return torch.fft.irfft2(lam.sqrt() * torch.fft.rfft2(z, norm="ortho"), s=(h, w), norm="forward")


def _view_batch(v, like):
    if isinstance(v, torch.Tensor):
        return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))
    return v


def _q_sample(x0, noise, a, s, sigma, boundary="reflect", backend=None):
    return _mollify(_view_batch(a, x0) * x0 + _view_batch(s, x0) * noise, sigma, boundary)


def _pick(name, fallback):
    if hasattr(_k, name):
        return getattr(_k, name)
    FALLBACKS.append(name)
    return fallback


knn_to_grid = _pick("knn_to_grid", _knn_to_grid)
grid_to_points = _pick("grid_to_points", _grid_to_points)
mollify = _pick("mollify", _mollify)
wiener = _pick("wiener", _wiener)
gaussian_random_field = _pick("gaussian_random_field", _gaussian_random_field)
q_sample = _pick("q_sample", _q_sample)


def mollified_noise(shape, sigma, boundary="reflect", generator=None, device="cpu", dtype=torch.float32):
    """T xi for white noise xi (unit pixel variance) of `shape` (..., H, W)."""
    xi = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return mollify(xi, sigma, boundary=boundary) if sigma > 0 else xi
