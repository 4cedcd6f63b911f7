"""The spectral filters in plain PyTorch, written straight from docs/ops.md#spectral-filters
(the executable contract): "reflect" builds the mirrored 2H x 2W image, filters it periodically and
crops, exactly as the contract words it. Slow (4x the pixels) but obviously right; the fast
backends compute the same thing through a DCT of the original size (see dct.py)."""
import math

import torch

PERIODIC, REFLECT = 0, 1
BOUNDARY_CODES = {"periodic": PERIODIC, "reflect": REFLECT}
MOLLIFY, WIENER, GRF = 0, 1, 2


def squared_frequencies(h, w, dtype, device, cycles_per_index=1.0):
    """|k|^2 on the rfft2 grid of an (h, w) image, in cycles per unit length (index times
    cycles_per_index): (h, w // 2 + 1)."""
    ky = torch.fft.fftfreq(h, 1.0 / h, dtype=dtype, device=device) * cycles_per_index
    kx = torch.fft.rfftfreq(w, 1.0 / w, dtype=dtype, device=device) * cycles_per_index
    return ky[:, None] ** 2 + kx[None, :] ** 2


def transfer(k2, sigma, mode, nsr):
    g = torch.exp(-2.0 * math.pi**2 * sigma**2 * k2)
    return g / (g * g + nsr) if mode == WIENER else g


def _periodic(u, sigma, mode, nsr, cycles_per_index=1.0):
    h, w = u.shape[-2:]
    k2 = squared_frequencies(h, w, u.dtype, u.device, cycles_per_index)
    return torch.fft.irfft2(torch.fft.rfft2(u) * transfer(k2, sigma, mode, nsr), s=(h, w))


def _reflect(u, sigma, mode, nsr):
    h, w = u.shape[-2:]
    mirrored = torch.cat([u, u.flip(-2)], dim=-2)
    mirrored = torch.cat([mirrored, mirrored.flip(-1)], dim=-1)
    # On [0, 2]^2, DFT index m is m / 2 cycles per unit length.
    return _periodic(mirrored, sigma, mode, nsr, cycles_per_index=0.5)[..., :h, :w].contiguous()


def spectral_filter(u, sigma, boundary, mode=MOLLIFY, nsr=0.0):
    return (_reflect if boundary == REFLECT else _periodic)(u, sigma, mode, nsr)


def mollify(u, sigma, boundary=REFLECT):
    return spectral_filter(u, sigma, boundary, MOLLIFY)


def wiener(u, sigma, nsr, boundary=REFLECT):
    return spectral_filter(u, sigma, boundary, WIENER, nsr)


def batch_view(a, like):
    """a (B,) viewed as (B, 1, ..., 1) against `like` (B, ..., H, W)."""
    return a.reshape((-1,) + (1,) * (like.dim() - 1))


def q_sample(x0, noise, a, s, sigma, boundary=REFLECT):
    """a, s: (B,) tensors."""
    return mollify(batch_view(a, x0) * x0 + batch_view(s, x0) * noise, sigma, boundary)


def grf_sqrt_eigenvalues(h, w, alpha, tau, dtype, device):
    k2 = squared_frequencies(h, w, torch.float64, device)
    # lam = tau^(2 alpha - 2) (4 pi^2 k2 + tau^2)^(-alpha) = tau^(-2) (1 + 4 pi^2 k2 / tau^2)^(-alpha),
    # in the second form (as its square root, in logs): nothing overflows for large alpha or tau
    return torch.exp(-math.log(tau) - 0.5 * alpha * torch.log1p(4 * math.pi**2 * k2 / tau**2)).to(dtype)


def gaussian_random_field(z, alpha, tau):
    """The field of docs/ops.md#gaussian_random_field from the white noise z (..., H, W)."""
    h, w = z.shape[-2:]
    coeff = torch.fft.rfft2(z, norm="ortho") * grf_sqrt_eigenvalues(h, w, alpha, tau, z.dtype, z.device)
    return torch.fft.irfft2(coeff, s=(h, w), norm="forward")
