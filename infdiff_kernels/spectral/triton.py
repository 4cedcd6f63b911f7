"""Triton spectral multiply on the interleaved complex rfft2 spectrum
(torch.view_as_real: (batch, H, W/2 + 1, 2)), with the transfer function evaluated per
coefficient in the kernel (docs/ops.md#spectral-filters; the reflect butterfly is the one of
csrc/common/spectral_math.h, explained in dct.py). The reordering passes around the
transforms are PyTorch index ops (dct.TorchReorder)."""
import functools
import math
import os

import torch
import triton
import triton.language as tl

from .dct import TorchReorder
from .reference import GRF, REFLECT

# Coefficients per program and warps, tuned per row length W/2 + 1 (and dtype) on a GPU.
# The kernels scale the spectrum in place, so benchmark runs would scale it again:
# restore_value puts it back after each. Under TRITON_INTERPRET only the first config.
_CONFIGS = [
    triton.Config({"BLOCK": 128}, num_warps=4),
    triton.Config({"BLOCK": 32}, num_warps=1),
    triton.Config({"BLOCK": 512}, num_warps=4),
]
# The reflect butterfly's float64 sin/cos: ptxas spills a few bytes at 128 coefficients on
# 2 or 4 warps (the compile check found it), not at 32 on 1 or 512 on 4.
_REFLECT_CONFIGS = [_CONFIGS[2], _CONFIGS[1]]
if os.environ.get("TRITON_INTERPRET", "0") == "1":
    _CONFIGS, _REFLECT_CONFIGS = _CONFIGS[:1], _REFLECT_CONFIGS[:1]


@triton.jit
def _gain(ky, kx, rate, nsr, MODE: tl.constexpr):
    g = tl.exp(-rate * (ky * ky + kx * kx))
    if MODE == 1:  # Wiener
        g = g / (g * g + nsr)
    return g


# The scalar table is `params_ptr`, never `params`: Triton's generated launch binder keeps
# its own local named `params`, and a kernel argument of that name makes every real (GPU)
# launch fail with "failed to specialize argument of type: dict".


@triton.autotune(configs=_CONFIGS, key=["WC", "MODE"], restore_value=["spec"])
@triton.jit
def _periodic_kernel(spec, params_ptr, H, W, WC, MODE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)  # flattened (batch, k1)
    rate = tl.load(params_ptr)
    nsr = tl.load(params_ptr + 1)
    k2 = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = k2 < WC
    k1 = row % H
    ky = tl.minimum(k1, H - k1).to(spec.dtype.element_ty)
    kx = k2.to(spec.dtype.element_ty)
    if MODE == 2:  # GRF: scale * sqrt(lambda_k)
        alpha = tl.load(params_ptr + 2)
        log_tau = tl.load(params_ptr + 3)
        scale = tl.load(params_ptr + 4)
        four_pi_sq = tl.load(params_ptr + 5)
        k_sq = ky * ky + kx * kx
        # tau^(-2) (1 + 4 pi^2 |k|^2 / tau^2)^(-alpha): no overflow or cancellation for large alpha, tau;
        # log1p(q) by Kahan's trick (log(u) q / (u - 1), u = 1 + q): log(1 + q) is 0 for q < 2^-24 in
        # float32, which a large alpha would turn into a kept mode
        q = four_pi_sq * k_sq * tl.exp(-2.0 * log_tau)
        u = 1.0 + q
        # q / (u - 1) only where it is 0 < u - 1 <= 1 (1 elsewhere): no 0/0 or inf/inf in either branch
        ratio = tl.minimum(q, 1.0) / tl.where(u == 1.0, 1.0, tl.minimum(u, 2.0) - 1.0)
        log1p_q = tl.where(u == 1.0, q, tl.log(u) * ratio)
        f = scale * tl.exp(-log_tau - 0.5 * alpha * log1p_q)
    else:
        f = _gain(ky, kx, rate, nsr, MODE)
    base = spec + (row.to(tl.int64) * WC + k2) * 2
    re = tl.load(base, mask=live)
    im = tl.load(base + 1, mask=live)
    tl.store(base, re * f, mask=live)
    tl.store(base + 1, im * f, mask=live)


@triton.autotune(configs=_REFLECT_CONFIGS, key=["WC", "MODE"], restore_value=["spec"])
@triton.jit
def _reflect_kernel(spec, params_ptr, H, W, WC, PAIRS, MODE: tl.constexpr, BLOCK: tl.constexpr):
    bp = tl.program_id(0)  # flattened (batch, row pair)
    rate = tl.load(params_ptr)
    nsr = tl.load(params_ptr + 1)
    half_pi = tl.load(params_ptr + 6)
    b = bp // PAIRS
    k1 = bp % PAIRS
    k1m = (H - k1) % H
    k2 = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = k2 < WC
    dt = spec.dtype.element_ty
    fk1 = k1.to(dt)
    fk1m = (H - k1).to(dt)
    fk2 = k2.to(dt)
    fk2m = (W - k2).to(dt)
    phi1 = half_pi * fk1 / H
    phi2 = half_pi * fk2 / W
    c1 = tl.cos(phi1)
    s1 = tl.sin(phi1)
    c2 = tl.cos(phi2)
    s2 = tl.sin(phi2)
    g00 = 0.5 * _gain(fk1, fk2, rate, nsr, MODE)
    g10 = 0.5 * _gain(fk1m, fk2, rate, nsr, MODE)
    g01 = 0.5 * _gain(fk1, fk2m, rate, nsr, MODE)
    g11 = 0.5 * _gain(fk1m, fk2m, rate, nsr, MODE)
    p1 = spec + ((b.to(tl.int64) * H + k1) * WC + k2) * 2
    p2 = spec + ((b.to(tl.int64) * H + k1m) * WC + k2) * 2
    v1r = tl.load(p1, mask=live)
    v1i = tl.load(p1 + 1, mask=live)
    v2r = tl.load(p2, mask=live)
    v2i = tl.load(p2 + 1, mask=live)
    # Undo the column twiddle, split the row FFTs of the two DCT columns, scale, redo.
    q1r = c2 * v1r + s2 * v1i
    q1i = c2 * v1i - s2 * v1r
    q2r = c2 * v2r + s2 * v2i
    q2i = c2 * v2i - s2 * v2r
    ar = q1r + q2r
    ai = q1i - q2i
    br = q1i + q2i
    bi = q2r - q1r
    zr = g00 * (c1 * ar + s1 * ai)
    zi = g10 * (c1 * ai - s1 * ar)
    a2r = c1 * zr - s1 * zi
    a2i = c1 * zi + s1 * zr
    zr = g01 * (c1 * br + s1 * bi)
    zi = g11 * (c1 * bi - s1 * br)
    b2r = c1 * zr - s1 * zi
    b2i = c1 * zi + s1 * zr
    o1r = a2r - b2i
    o1i = a2i + b2r
    o2r = a2r + b2i
    o2i = b2r - a2i
    # A self-paired row (k1 = 0 or H/2) gets the same values from both stores.
    tl.store(p1, c2 * o1r - s2 * o1i, mask=live)
    tl.store(p1 + 1, c2 * o1i + s2 * o1r, mask=live)
    tl.store(p2, c2 * o2r - s2 * o2i, mask=live)
    tl.store(p2 + 1, c2 * o2i + s2 * o2r, mask=live)


@functools.lru_cache(maxsize=64)
def _params(rate, nsr, alpha, log_tau, scale, dtype, device):
    """The kernels' scalars in the spectrum's precision (a Python float argument would be fp32)."""
    values = [rate, nsr, alpha, log_tau, scale, 4.0 * math.pi**2, 0.5 * math.pi]
    return torch.tensor(values, dtype=dtype, device=device)


def spectral_multiply_(spec, height, width, boundary, mode, sigma, nsr, alpha, tau, scale):
    """In place on the complex rfft2 spectrum spec (..., H, W/2 + 1)."""
    if spec.numel() == 0:
        return
    re = torch.view_as_real(spec)
    wc = width // 2 + 1
    batch = spec.numel() // (height * wc)

    def grid(rows):
        return lambda meta: (rows, triton.cdiv(wc, meta["BLOCK"]))

    if boundary == REFLECT and mode != GRF:
        params = _params(0.5 * math.pi**2 * sigma**2, nsr, 0.0, 0.0, 1.0, re.dtype, re.device)
        pairs = height // 2 + 1
        _reflect_kernel[grid(batch * pairs)](re, params, height, width, wc, pairs, MODE=mode)
    else:
        log_tau = math.log(tau) if mode == GRF else 0.0
        params = _params(2.0 * math.pi**2 * sigma**2, nsr, alpha, log_tau, scale, re.dtype, re.device)
        _periodic_kernel[grid(batch * height)](re, params, height, width, wc, MODE=mode)


spectral_prepare = TorchReorder.spectral_prepare
spectral_unreorder = TorchReorder.spectral_unreorder
