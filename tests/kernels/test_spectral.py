"""mollify, wiener, q_sample, gaussian_random_field and mollified_noise against
docs/ops.md#spectral-filters: an independent NumPy oracle written from the contract's text
(below; it shares no code with infdiff_kernels), scipy.ndimage.gaussian_filter, and the
operators' identities, for every backend."""
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import infdiff_kernels as ik
from infdiff_kernels.spectral.ops import grf_op, q_sample_op, spectral_filter_op

from .cases import BACKEND_PARAMS as BACKENDS
from .cases import BOUNDARIES, COMPILED_PARAMS, CPU_BACKENDS, names_argument
from .cases import FLOAT_DTYPES as DTYPES
from .cases import SPECTRAL_SHAPES as SHAPES

TOL = {torch.float64: 1e-10, torch.float32: 2e-5}  # atol relative to max |input|


# ---- the independent oracle: docs/ops.md#spectral-filters word for word, full complex FFTs in NumPy ----


def oracle_filter(u, sigma, boundary, nsr=None):
    """Gaussian (nsr None) or Wiener filter of u (..., H, W) as docs/ops.md#mollify words it."""
    u = np.asarray(u, dtype=np.float64)
    h, w = u.shape[-2:]
    if boundary == "reflect":
        top = np.concatenate([u, u[..., ::-1, :]], axis=-2)  # [0, 2] in y: even about y = 1
        big = np.concatenate([top, top[..., :, ::-1]], axis=-1)
        # On the doubled domain, DFT index m is m / 2 cycles per unit length.
        return oracle_periodic(big, sigma, nsr, cycles=0.5)[..., :h, :w]
    return oracle_periodic(u, sigma, nsr, cycles=1.0)


def oracle_periodic(u, sigma, nsr, cycles):
    h, w = u.shape[-2:]
    ky = np.array([m if m <= h // 2 else m - h for m in range(h)]) * cycles
    kx = np.array([m if m <= w // 2 else m - w for m in range(w)]) * cycles
    g = np.exp(-2 * np.pi**2 * sigma**2 * (ky[:, None] ** 2 + kx[None, :] ** 2))
    f = g if nsr is None else g / (g * g + nsr)
    return np.real(np.fft.ifft2(np.fft.fft2(u) * f))


def oracle_grf(z, alpha, tau):
    z = np.asarray(z, dtype=np.float64)
    h, w = z.shape[-2:]
    ky = np.array([m if m <= h // 2 else m - h for m in range(h)])
    kx = np.array([m if m <= w // 2 else m - w for m in range(w)])
    lam = tau ** (2 * alpha - 2) * (4 * np.pi**2 * (ky[:, None] ** 2 + kx[None, :] ** 2) + tau**2) ** (-alpha)
    zhat = np.fft.fft2(z) / math.sqrt(h * w)  # norm="ortho"
    return np.real(np.fft.ifft2(np.sqrt(lam) * zhat) * (h * w))  # norm="forward": no 1/(HW)


def close(got, want, dtype, scale=1.0):
    got = got.detach().double().cpu().numpy() if isinstance(got, torch.Tensor) else got
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * max(scale, 1.0))


def rand(shape, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)


# ---- the oracle itself against scipy (the reference implementation of "reflect"/"wrap") ----


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("boundary,mode", [("reflect", "reflect"), ("periodic", "wrap")])
@pytest.mark.parametrize("sigma_px", (1.0, 2.0, 3.0, 4.0))
def test_mollify_equals_scipy_gaussian_filter(backend, device, boundary, mode, sigma_px):
    h = w = 16
    u = rand((2, h, w), seed=1, device=device)
    sigma = sigma_px / h  # domain units
    want = ndi.gaussian_filter(u.cpu().numpy(), sigma=(0, sigma * h, sigma * w), mode=mode, truncate=30.0)
    got = ik.mollify(u, sigma, boundary, backend=backend)
    # scipy samples the Gaussian; the contract filters with its exact transform. The sampled
    # kernel's spectrum differs by its aliases, about exp(-pi^2 sigma_px^2 / 2) at Nyquist
    # (7e-3 at one pixel, 3e-9 at two).
    atol = 8 * math.exp(-math.pi**2 * sigma_px**2 / 2) + 1e-8
    np.testing.assert_allclose(got.cpu().numpy(), want, atol=atol)
    np.testing.assert_allclose(oracle_filter(u.cpu().numpy(), sigma, boundary), want, atol=atol)


# ---- every backend against the oracle ----


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_mollify_and_wiener_match_oracle(backend, device, dtype, boundary, shape):
    u = rand(shape, dtype, seed=2, device=device)
    sigma = 0.12
    got = ik.mollify(u, sigma, boundary, backend=backend)
    assert got.dtype == dtype and got.shape == u.shape and got.device == u.device
    close(got, oracle_filter(u.double().cpu().numpy(), sigma, boundary), dtype, 4.0)
    got = ik.wiener(u, sigma, 0.05, boundary, backend=backend)
    close(got, oracle_filter(u.double().cpu().numpy(), sigma, boundary, nsr=0.05), dtype, 40.0)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("scalars", ("floats", "tensors"))
def test_q_sample_matches_oracle(backend, device, dtype, boundary, scalars):
    x0, noise = rand((3, 2, 9, 8), dtype, 3, device), rand((3, 2, 9, 8), dtype, 4, device)
    if scalars == "floats":
        a, s = 0.8, 0.6
        a_np = s_np = None
    else:
        a = torch.tensor([0.9, 0.5, 0.1], dtype=dtype, device=device)
        s = torch.tensor([0.1, 0.8, 1.0], dtype=dtype, device=device)
        a_np, s_np = a.double().cpu().numpy()[:, None, None, None], s.double().cpu().numpy()[:, None, None, None]
    got = ik.q_sample(x0, noise, a, s, 0.1, boundary, backend=backend)
    xn, nn = x0.double().cpu().numpy(), noise.double().cpu().numpy()
    combo = (0.8 * xn + 0.6 * nn) if a_np is None else (a_np * xn + s_np * nn)
    close(got, oracle_filter(combo, 0.1, boundary), dtype, 4.0)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ((9, 8), (2, 6, 7)))
def test_gaussian_random_field_matches_oracle(backend, device, dtype, shape):
    gen = torch.Generator(device=device).manual_seed(5)
    got = ik.gaussian_random_field(shape, 2.0, 3.0, generator=gen, dtype=dtype, backend=backend)
    z = torch.randn(shape, generator=torch.Generator(device=device).manual_seed(5), dtype=dtype, device=device)
    assert got.dtype == dtype and got.shape == shape
    close(got, oracle_grf(z.double().cpu().numpy(), 2.0, 3.0), dtype, 10.0)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_mollified_noise_is_mollified_white_noise(backend, device, boundary):
    gen = torch.Generator(device=device).manual_seed(6)
    got = ik.mollified_noise((2, 7, 6), 0.1, boundary, gen, dtype=torch.float64, device=device, backend=backend)
    z = torch.randn((2, 7, 6), generator=torch.Generator(device=device).manual_seed(6), dtype=torch.float64,
                    device=device)
    close(got, oracle_filter(z.cpu().numpy(), 0.1, boundary), torch.float64)


# ---- identities ----


def band_limited(h, w, boundary, seed=7):
    """A smooth field of the few lowest modes of `boundary`'s basis (cosines / Fourier)."""
    rng = np.random.default_rng(seed)
    y, x = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    u = np.zeros((h, w))
    for ky in range(3):
        for kx in range(3):
            if boundary == "reflect":  # DCT-II basis: cos(pi k t)
                u += rng.normal() * np.cos(np.pi * ky * y)[:, None] * np.cos(np.pi * kx * x)[None, :]
            else:
                u += rng.normal() * np.cos(2 * np.pi * (ky * y[:, None] + kx * x[None, :]) + rng.uniform(0, 6))
    return torch.from_numpy(u)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_wiener_recovers_band_limited_field(backend, device, boundary):
    u = band_limited(12, 10, boundary).to(device)
    blurred = ik.mollify(u, 0.05, boundary, backend=backend)
    assert (blurred - u).abs().max() > 1e-2  # the blur did something
    restored = ik.wiener(blurred, 0.05, 1e-8, boundary, backend=backend)
    np.testing.assert_allclose(restored.cpu().numpy(), u.cpu().numpy(), atol=1e-6)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("op", ("mollify", "wiener"))
def test_adjoint_identity(backend, device, boundary, op):
    u, v = rand((2, 9, 8), seed=8, device=device), rand((2, 9, 8), seed=9, device=device)
    f = (lambda t: ik.mollify(t, 0.1, boundary, backend=backend)) if op == "mollify" else (
        lambda t: ik.wiener(t, 0.1, 0.1, boundary, backend=backend))
    lhs, rhs = (f(u) * v).sum().item(), (u * f(v)).sum().item()
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + 1)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_sigma_zero_is_identity(backend, device, boundary):
    u = rand((2, 7, 6), seed=10, device=device)
    np.testing.assert_allclose(ik.mollify(u, 0.0, boundary, backend=backend).cpu().numpy(), u.cpu().numpy(), atol=1e-12)


@pytest.mark.parametrize("backend,device", [p for p in BACKENDS if p.values[0] in ("cpu", "reference", "cuda")])
@pytest.mark.parametrize("size", (16, 32, 64))
def test_grf_empirical_spectrum_matches_lambda(backend, device, size):
    """Each |rfft2(u, "ortho")|^2 / (H W) estimates lambda_k (an exponential variable of mean
    lambda_k); averaged over the band 2 <= |k| <= size/4 and over samples it must be 1 to within
    a few standard errors, in each annulus of the band separately, at every resolution."""
    alpha, tau = 2.0, 3.0
    samples = 4096 // size
    u = ik.gaussian_random_field((samples, size, size), alpha, tau, torch.Generator(device=device).manual_seed(11),
                                 torch.float64, backend=backend).cpu()
    power = (torch.fft.rfft2(u, norm="ortho").abs() ** 2 / (size * size)).numpy()
    ky = np.fft.fftfreq(size, 1 / size)[:, None]
    kx = np.fft.rfftfreq(size, 1 / size)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    lam = tau ** (2 * alpha - 2) * (4 * np.pi**2 * k**2 + tau**2) ** (-alpha)
    ratio = power / lam
    edges = np.linspace(2, size / 4, 4)
    off = []  # every annulus is judged before the test fails, so one report shows them all
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = (k >= lo) & (k < hi) & (kx > 0)  # kx > 0: independent modes (no conjugate twins)
        values = ratio[:, band]
        stderr = 1 / math.sqrt(values.size)
        if not abs(values.mean() - 1) < 5 * stderr + 0.01:
            off.append((lo, hi, values.mean(), values.size))
    assert not off


def test_grf_pixel_variance_converges_with_resolution():
    """E[u^2] = sum_k lambda_k: it converges as the grid is refined (alpha > 1)."""
    alpha, tau = 2.0, 3.0

    def expected_variance(n):
        k = np.fft.fftfreq(n, 1 / n)
        k2 = k[:, None] ** 2 + k[None, :] ** 2
        return (tau ** (2 * alpha - 2) * (4 * np.pi**2 * k2 + tau**2) ** (-alpha)).sum()

    v64, v128, v256 = expected_variance(64), expected_variance(128), expected_variance(256)
    assert abs(v128 - v64) < 0.01 * v64 and abs(v256 - v128) < 0.5 * abs(v128 - v64)
    u = ik.gaussian_random_field((64, 64, 64), alpha, tau, torch.Generator().manual_seed(12), torch.float64)
    # Per-pixel variance over 64 samples and 4096 (correlated) pixels.
    assert abs(u.var().item() / v64 - 1) < 0.25


# ---- autograd and custom-op registration ----


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_gradcheck(backend, device, boundary):
    # fast_mode: one random projection of the Jacobian (the Triton interpreter is slow).
    check = lambda f, inputs: torch.autograd.gradcheck(f, inputs, fast_mode=True)  # noqa: E731
    u = rand((2, 5, 4), seed=13, device=device).requires_grad_()
    assert check(lambda t: ik.mollify(t, 0.15, boundary, backend=backend), (u,))
    assert check(lambda t: ik.wiener(t, 0.15, 0.1, boundary, backend=backend), (u,))
    x0 = rand((2, 1, 5, 4), seed=14, device=device).requires_grad_()
    noise = rand((2, 1, 5, 4), seed=15, device=device).requires_grad_()
    a = torch.tensor([0.7, 0.2], dtype=torch.float64, device=device, requires_grad=True)
    s = torch.tensor([0.3, 0.9], dtype=torch.float64, device=device, requires_grad=True)
    assert check(lambda x, n, a_, s_: ik.q_sample(x, n, a_, s_, 0.15, boundary, backend=backend), (x0, noise, a, s))


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_gradcheck_full_jacobian_cpu(boundary):
    u = rand((1, 5, 4), seed=19).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ik.wiener(t, 0.15, 0.1, boundary, backend="cpu"), (u,))


@pytest.mark.parametrize("backend,device", COMPILED_PARAMS)
@pytest.mark.parametrize("boundary", [0, 1])
def test_opcheck(backend, device, boundary):
    u = rand((2, 5, 4), seed=16, device=device)
    torch.library.opcheck(spectral_filter_op, (u, 0.1, 0.05, boundary, 1, backend))
    a = torch.tensor([0.7, 0.2], dtype=torch.float64, device=device)
    torch.library.opcheck(q_sample_op, (u[:, None], u[:, None] * 2, a, a + 0.1, 0.1, boundary, backend))


@pytest.mark.parametrize("backend,device", COMPILED_PARAMS)
def test_grf_opcheck(backend, device):
    torch.library.opcheck(grf_op, (rand((2, 5, 4), seed=16, device=device), 2.0, 3.0, backend))


# ---- errors (docs/ops.md#errors), the same for every backend, and no writes into inputs ----

U = rand((2, 5, 4))
X0 = rand((2, 1, 5, 4))
# (id, exception, the argument the message must name, the call given a backend)
ERROR_CASES = [
    ("sigma negative", ValueError, "sigma", lambda be: ik.mollify(U, -0.1, backend=be)),
    ("sigma nan", ValueError, "sigma", lambda be: ik.mollify(U, float("nan"), backend=be)),
    ("sigma inf", ValueError, "sigma", lambda be: ik.wiener(U, float("inf"), backend=be)),
    ("nsr zero", ValueError, "nsr", lambda be: ik.wiener(U, 0.1, 0.0, backend=be)),
    ("nsr negative", ValueError, "nsr", lambda be: ik.wiener(U, 0.1, -1.0, backend=be)),
    ("boundary", ValueError, "boundary", lambda be: ik.mollify(U, 0.1, "wrap", backend=be)),
    ("q_sample boundary", ValueError, "boundary", lambda be: ik.q_sample(X0, X0, 1.0, 1.0, 0.1, "zero", backend=be)),
    ("u int", TypeError, "u", lambda be: ik.mollify(U.to(torch.int64), 0.1, backend=be)),
    ("u half", TypeError, "u", lambda be: ik.mollify(U.half(), 0.1, backend=be)),
    ("u 1-d", ValueError, "u", lambda be: ik.mollify(U[0, 0], 0.1, backend=be)),
    ("alpha", ValueError, "alpha", lambda be: ik.gaussian_random_field((4, 4), 1.0, 1.0, backend=be)),
    ("tau", ValueError, "tau", lambda be: ik.gaussian_random_field((4, 4), 2.0, 0.0, backend=be)),
    ("tau huge", ValueError, "tau", lambda be: ik.gaussian_random_field((4, 4), 2.0, 1e300, backend=be)),
    ("shape", ValueError, "shape", lambda be: ik.gaussian_random_field((4,), 2.0, 1.0, backend=be)),
    ("dtype", TypeError, "dtype", lambda be: ik.gaussian_random_field((4, 4), 2.0, 1.0, dtype=torch.int32, backend=be)),
    ("noise dtype", TypeError, "dtype", lambda be: ik.mollified_noise((4, 4), 0.1, dtype=torch.float16, backend=be)),
    ("noise shape", ValueError, "noise", lambda be: ik.q_sample(X0, X0[:1], 1.0, 1.0, 0.1, backend=be)),
    ("noise type", TypeError, "noise", lambda be: ik.q_sample(X0, X0.float(), 1.0, 1.0, 0.1, backend=be)),
    ("x0 3-d", ValueError, "x0", lambda be: ik.q_sample(U[0], U[0], 1.0, 1.0, 0.1, backend=be)),
    ("a shape", ValueError, "a", lambda be: ik.q_sample(X0, X0, torch.ones(3, dtype=X0.dtype), 1.0, 0.1, backend=be)),
    ("a nan", ValueError, "a", lambda be: ik.q_sample(X0, X0, float("nan"), 1.0, 0.1, backend=be)),
    ("s device", ValueError, "s", lambda be: ik.q_sample(X0, X0, 1.0, torch.ones(2, device="meta"), 0.1, backend=be)),
    ("s not finite", ValueError, "s", lambda be: ik.q_sample(X0, X0, 1.0, torch.tensor([1.0, float("inf")]), 0.1,
                                                             backend=be)),
    ("mollified_noise sigma", ValueError, "sigma", lambda be: ik.mollified_noise((4, 4), -1.0, backend=be)),
    ("backend", ValueError, "backend", lambda be: ik.mollify(U, 0.1, backend="fpga")),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name,exc,argument,call", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_argument(backend, name, exc, argument, call):
    with pytest.raises(exc, match=names_argument(argument)):
        call(backend)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_inputs_are_not_written(backend, device, boundary):
    x0, noise = rand((2, 1, 6, 5), seed=17, device=device), rand((2, 1, 6, 5), seed=18, device=device)
    before = (x0.clone(), noise.clone())
    ik.mollify(x0, 0.1, boundary, backend=backend)
    ik.wiener(x0, 0.1, 0.05, boundary, backend=backend)
    ik.q_sample(x0, noise, 0.5, 0.5, 0.1, boundary, backend=backend)
    assert torch.equal(x0, before[0]) and torch.equal(noise, before[1])


def test_numpy_in_numpy_out():
    u = np.random.default_rng(0).normal(size=(2, 6, 5))
    out = ik.mollify(u, 0.1)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, oracle_filter(u, 0.1, "reflect"), atol=1e-10)
