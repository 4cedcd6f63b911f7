"""The fast transform pipeline shared by the "cpu", "triton" and "cuda" backends: one
rfft2, one in-place spectral multiply (the backend's kernel), one irfft2.

"reflect" is a DCT-II domain filter (docs/ops.md#mollify). Mirroring to a 2H x 2W image would
quadruple the FFT work, so instead each axis is reordered as Makhoul (1980) does,
v = [x0, x2, x4, ..., x5, x3, x1] (even samples, then odd samples reversed), and v is
rfft2'd at the original size. The DCT-II of x along an axis of length N is then
X[k] = Re(exp(-i pi k / 2N) V[k]) and X[N - k] = -Im(exp(-i pi k / 2N) V[k]); in 2-D the
rfft2 rows k1 and H - k1 at column k2 hold the four DCT coefficients (k1 | H - k1, k2 | W - k2),
so the filter is a butterfly over pairs of rows applied in place on the spectrum
(csrc/common/spectral_math.h: reflect_butterfly). irfft2 and the inverse reordering
finish. Extra cost over a periodic round trip: one gather before and one scatter after.

A backend supplies three kernels (names as in infdiff_kernels._C):
  spectral_multiply_(spec, H, W, boundary, mode, sigma, nsr, alpha, tau, scale)  in place
  spectral_prepare(x, y, a, s, reorder) -> a * x + s * y (a, s per leading batch element),
      Makhoul-reordered when `reorder`; y, a, s None: x alone
  spectral_unreorder(w) -> the inverse reordering
`TorchReorder` below gives the last two in plain PyTorch for a backend without them."""
import functools
import math

import torch

from .reference import GRF, MOLLIFY, PERIODIC, REFLECT


@functools.lru_cache(maxsize=32)
def makhoul_order(n, device):
    """Index p of the reordered sequence holds x[order[p]]."""
    idx = torch.arange(n)
    order = torch.where(idx < (n + 1) // 2, 2 * idx, 2 * (n - 1 - idx) + 1)
    return order.to(device)


@functools.lru_cache(maxsize=32)
def makhoul_inverse(n, device):
    return torch.argsort(makhoul_order(n, torch.device("cpu"))).to(device)


class TorchReorder:
    """spectral_prepare / spectral_unreorder as PyTorch index ops."""

    @staticmethod
    def spectral_prepare(x, y, a, s, reorder):
        if y is not None:
            shape = (-1,) + (1,) * (x.dim() - 1)
            x = a.reshape(shape) * x + s.reshape(shape) * y
        if not reorder:
            return x.contiguous()
        h, w = x.shape[-2:]
        return x.index_select(-2, makhoul_order(h, x.device)).index_select(-1, makhoul_order(w, x.device))

    @staticmethod
    def spectral_unreorder(w_):
        h, w = w_.shape[-2:]
        return w_.index_select(-2, makhoul_inverse(h, w_.device)).index_select(-1, makhoul_inverse(w, w_.device))


def _filter_spectrum(v, kernels, boundary, mode, sigma, nsr=0.0, alpha=0.0, tau=0.0, scale=1.0):
    h, w = v.shape[-2:]
    spec = torch.fft.rfft2(v)
    kernels.spectral_multiply_(spec, h, w, boundary, mode, sigma, nsr, alpha, tau, scale)
    return torch.fft.irfft2(spec, s=(h, w))


def spectral_filter(u, kernels, boundary, mode, sigma, nsr=0.0):
    """mollify (mode MOLLIFY) or wiener (WIENER) of the contiguous grid u (..., H, W)."""
    if boundary == PERIODIC:
        return _filter_spectrum(u, kernels, PERIODIC, mode, sigma, nsr)
    v = kernels.spectral_prepare(u, None, None, None, True)
    return kernels.spectral_unreorder(_filter_spectrum(v, kernels, REFLECT, mode, sigma, nsr))


def q_sample(x0, noise, a, s, kernels, boundary, sigma):
    """mollify(a * x0 + s * noise) with the combination fused into the pass before the
    forward transform (the reordering gather, for "reflect")."""
    v = kernels.spectral_prepare(x0, noise, a, s, boundary == REFLECT)
    out = _filter_spectrum(v, kernels, boundary, MOLLIFY, sigma)
    return kernels.spectral_unreorder(out) if boundary == REFLECT else out


def gaussian_random_field(z, kernels, alpha, tau):
    """The contract's irfft2(sqrt(lambda) rfft2(z, "ortho"), norm="forward") with unnormalised
    transforms: the sqrt(H W) left over is folded into the multiply."""
    h, w = z.shape[-2:]
    return _filter_spectrum(z, kernels, PERIODIC, GRF, 0.0, alpha=alpha, tau=tau, scale=math.sqrt(h * w))
