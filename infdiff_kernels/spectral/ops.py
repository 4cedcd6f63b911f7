"""torch.library custom ops of the spectral filters (forward, fake kernels, self-adjoint
autograd) and the public functions, which validate once (_validate), pick the backend
(_dispatch) and call them (docs/ops.md#spectral-filters)."""
import torch

from .. import _dispatch, _validate
from . import dct, reference
from .reference import BOUNDARY_CODES, MOLLIFY, WIENER


@torch.library.custom_op("infdiff::spectral_filter", mutates_args=())
def spectral_filter_op(u: torch.Tensor, sigma: float, nsr: float, boundary: int, mode: int, backend: str) -> torch.Tensor:
    return dct.spectral_filter(u, _dispatch.kernels("spectral", backend), boundary, mode, sigma, nsr)


@spectral_filter_op.register_fake
def _(u, sigma, nsr, boundary, mode, backend):
    return torch.empty_like(u)


def _filter_setup(ctx, inputs, output):
    _, ctx.sigma, ctx.nsr, ctx.boundary, ctx.mode, ctx.backend = inputs


def _filter_backward(ctx, grad):
    # Real symmetric filter: the operator is self-adjoint.
    g = spectral_filter_op(grad.contiguous(), ctx.sigma, ctx.nsr, ctx.boundary, ctx.mode, ctx.backend)
    return g, None, None, None, None, None


spectral_filter_op.register_autograd(_filter_backward, setup_context=_filter_setup)


@torch.library.custom_op("infdiff::q_sample", mutates_args=())
def q_sample_op(
    x0: torch.Tensor, noise: torch.Tensor, a: torch.Tensor, s: torch.Tensor, sigma: float, boundary: int, backend: str
) -> torch.Tensor:
    return dct.q_sample(x0, noise, a, s, _dispatch.kernels("spectral", backend), boundary, sigma)


@q_sample_op.register_fake
def _(x0, noise, a, s, sigma, boundary, backend):
    return torch.empty_like(x0)


def _q_setup(ctx, inputs, output):
    x0, noise, a, s, ctx.sigma, ctx.boundary, ctx.backend = inputs
    ctx.save_for_backward(x0, noise, a, s)


def _q_backward(ctx, grad):
    x0, noise, a, s = ctx.saved_tensors
    need = ctx.needs_input_grad
    if not any(need[:4]):
        return None, None, None, None, None, None, None
    tg = spectral_filter_op(grad.contiguous(), ctx.sigma, 0.0, ctx.boundary, MOLLIFY, ctx.backend)
    dims = tuple(range(1, x0.dim()))
    gx0 = reference.batch_view(a, x0) * tg if need[0] else None
    gnoise = reference.batch_view(s, x0) * tg if need[1] else None
    ga = (x0 * tg).sum(dims) if need[2] else None
    gs = (noise * tg).sum(dims) if need[3] else None
    return gx0, gnoise, ga, gs, None, None, None


q_sample_op.register_autograd(_q_backward, setup_context=_q_setup)


@torch.library.custom_op("infdiff::gaussian_random_field", mutates_args=())
def grf_op(z: torch.Tensor, alpha: float, tau: float, backend: str) -> torch.Tensor:
    return dct.gaussian_random_field(z, _dispatch.kernels("spectral", backend), alpha, tau)


@grf_op.register_fake
def _(z, alpha, tau, backend):
    return torch.empty_like(z)


def _boundary(boundary):
    return BOUNDARY_CODES[_validate.boundary(boundary)]


def _noise(shape, generator, dtype, device):
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


# ---- public API ----


def _filter(u, sigma, nsr, boundary, mode, backend):
    if u.numel() == 0:  # no grid to filter (B = 0): FFT libraries reject empty batches
        return u.clone()
    if backend == "reference":
        return reference.spectral_filter(u, sigma, boundary, mode, nsr)
    return spectral_filter_op(u.contiguous(), sigma, nsr, boundary, mode, backend)


def mollify(u, sigma, boundary="reflect", *, backend=None):
    """Convolution of u (..., H, W) with an isotropic Gaussian of standard deviation sigma
    in domain units ([0, 1]^2), with "reflect" (even extension, a DCT-II domain filter) or
    "periodic" boundaries.
    Contract: docs/ops.md#mollify"""
    _validate.spatial_grid("u", u)
    sigma = _validate.sigma(sigma)
    code = _boundary(boundary)
    backend = _dispatch.resolve_backend(backend, u.device)
    return _filter(u, sigma, 0.0, code, MOLLIFY, backend)


def wiener(u, sigma, nsr=0.05, boundary="reflect", *, backend=None):
    """Undoes mollify(., sigma, boundary) up to the noise-to-signal ratio nsr: each
    coefficient is multiplied by G / (G^2 + nsr).
    Contract: docs/ops.md#wiener"""
    _validate.spatial_grid("u", u)
    sigma = _validate.sigma(sigma)
    nsr = _validate.positive_finite("nsr", nsr)
    code = _boundary(boundary)
    backend = _dispatch.resolve_backend(backend, u.device)
    return _filter(u, sigma, nsr, code, WIENER, backend)


def q_sample(x0, noise, a, s, sigma, boundary="reflect", *, backend=None):
    """x_t = mollify(a * x0 + s * noise) in one forward and one inverse transform. x0 and
    noise are (B, ..., H, W); a and s are floats or (B,) tensors.
    Contract: docs/ops.md#q_sample"""
    _validate.q_sample_inputs(x0, noise)
    a = _validate.per_batch("a", a, x0)
    s = _validate.per_batch("s", s, x0)
    sigma = _validate.sigma(sigma)
    code = _boundary(boundary)
    backend = _dispatch.resolve_backend(backend, x0.device)
    if x0.numel() == 0:  # B = 0: nothing to transform
        return x0 + noise
    if backend == "reference":
        return reference.q_sample(x0, noise, a, s, sigma, code)
    return q_sample_op(x0.contiguous(), noise.contiguous(), a, s, sigma, code, backend)


def gaussian_random_field(shape, alpha, tau, generator=None, dtype=torch.float32, *, device=None, backend=None):
    """Periodic samples (shape (..., H, W)) of N(0, C), C = tau^(2 alpha - 2) (tau^2 - Laplacian)^(-alpha),
    whose pixel variance converges as the resolution grows. device defaults to the
    generator's (else CPU).
    Contract: docs/ops.md#gaussian_random_field"""
    shape = _validate.grid_shape(shape)
    alpha = _validate.greater_than_one("alpha", alpha)
    tau = _validate.positive_finite("tau", tau)
    _validate.noise_dtype(dtype)
    _validate.grf_parameters(alpha, tau, dtype)
    z = _noise(shape, generator, dtype, device)
    backend = _dispatch.resolve_backend(backend, z.device)
    if z.numel() == 0:
        return z
    if backend == "reference":
        return reference.gaussian_random_field(z, alpha, tau)
    return grf_op(z, alpha, tau, backend)


def mollified_noise(shape, sigma, boundary="reflect", generator=None, *, dtype=torch.float32, device=None, backend=None):
    """mollify(white noise of unit pixel variance), shape (..., H, W).
    Contract: docs/ops.md#mollified_noise"""
    shape = _validate.grid_shape(shape)
    sigma = _validate.sigma(sigma)
    code = _boundary(boundary)
    _validate.noise_dtype(dtype)
    z = _noise(shape, generator, dtype, device)
    backend = _dispatch.resolve_backend(backend, z.device)
    return _filter(z, sigma, 0.0, code, MOLLIFY, backend)
