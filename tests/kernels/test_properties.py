"""Property tests (hypothesis) of the public ops of infdiff_kernels (issue 12).

Random shapes, densities, dtypes, kernel sizes and parameters, on every backend that runs
here (reference, cpu, triton under TRITON_INTERPRET=1): each backend's result equals the
reference's (computed in float64 from the same rounded inputs), and the reference equals
the contract's independent forms (docs/ops.md) (dense oracle, F.grid_sample, the filters' identities). Bad
values (out-of-range or duplicate coordinates, wrong dtypes, NaN/Inf/negative parameters,
empty tensors, N = 0, sizes past the int32 index range given as zero-stride or meta tensors)
get the contract's named ValueError/TypeError, the same on every backend, or a correct
(possibly empty) result: never a crash, a hang or a silent wrong answer. The C++ entry points
refuse such sizes themselves, before they index (they are called directly with meta tensors,
whose data cannot be read).

Examples are derandomized and bounded (max_examples; each runs under an alarm that turns a
hang into a failure), so CI stays fast and repeatable; INFDIFF_PROPERTY_SCALE=N searches N
times as many examples with fresh seeds."""
import contextlib
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import infdiff_kernels as ik
from infdiff_kernels import _ext
from infdiff_kernels.sparse_conv import reference as conv_reference

from .cases import CPU_BACKENDS as ALL  # the one backend list, reference first

COMPILED = [b for b in ALL if b != "reference"]  # compared with the float64 reference where the
# reference in a half dtype is not the point (non-finite propagation)

FLOATS = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
SPECTRAL = (torch.float64, torch.float32)
COORDS = (torch.int64, torch.int32)
# (rtol, atol) against the float64 reference, scaled by the reference's magnitude
TOL = {torch.float64: 1e-9, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
HANG_SECONDS = 60  # one example taking this long is a hang, whatever the machine's load


# INFDIFF_PROPERTY_SCALE=20 runs 20x the examples with fresh random seeds (a deeper local search)
SCALE = int(os.environ.get("INFDIFF_PROPERTY_SCALE", "1"))


def _settings(n):
    return settings(max_examples=n * SCALE, deadline=None, derandomize=SCALE == 1, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def no_hang(seconds=HANG_SECONDS):
    """A SIGALRM that fails the example if it runs for `seconds` (main thread only)."""

    def fire(*_):
        raise TimeoutError(f"an op ran for more than {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def assert_matches(got, want, dtype, what=""):
    got, want = got.detach().double(), want.detach().double()
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    tol = TOL[dtype]
    torch.testing.assert_close(got, want, rtol=tol, atol=tol * scale, equal_nan=True, msg=lambda m: f"{what}: {m}")


def same_error(calls):
    """Every backend raises the same named error (type and message), or every backend returns."""
    outcomes = {}
    for backend, call in calls.items():
        try:
            with no_hang():
                outcomes[backend] = ("ok", call())
        except (ValueError, TypeError) as err:
            outcomes[backend] = (type(err), str(err))
    kinds = {o[0] for o in outcomes.values()}
    assert len(kinds) == 1, outcomes
    if kinds != {"ok"}:
        assert len({o[1] for o in outcomes.values()}) == 1, outcomes
    return outcomes


# ------------------------------------------------------------------ strategies


@st.composite
def point_sets(draw, max_side=9, max_batch=3, allow_empty=True):
    """(coords (B, N, 2) distinct per element, size (H, W)) at a random density."""
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    b = draw(st.integers(0 if allow_empty else 1, max_batch))
    n = draw(st.integers(0 if allow_empty else 1, h * w))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    linear = torch.stack([torch.randperm(h * w, generator=g)[:n] for _ in range(b)]) if b else torch.zeros(0, n, dtype=torch.long)
    coords = torch.stack((linear // w, linear % w), -1).to(draw(st.sampled_from(COORDS)))
    return coords, (h, w), g


def randn(shape, g, dtype):
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


# ------------------------------------------------------------------ sparse conv + neighbour map


@pytest.mark.parametrize("backend", ALL)
@_settings(30)
@given(pts=point_sets(), channels=st.integers(0, 4), half=st.integers(0, 6), dtype=st.sampled_from(FLOATS),
       normalize=st.sampled_from(("partial", "mean", "none")), bias=st.booleans())
def test_sparse_conv_every_backend_matches_reference(backend, pts, channels, half, dtype, normalize, bias):
    coords, size, g = pts
    b, n = coords.shape[:2]
    k = 2 * half + 1  # up to 13: wider than the grid too
    x, weight = randn((b, n, channels), g, dtype), randn((channels, k, k), g, dtype)
    bvec = randn((channels,), g, dtype) if bias else None
    x64, w64 = x.double(), weight.double()
    b64 = bvec.double() if bias else None
    with no_hang():
        want = ik.sparse_depthwise_conv(x64, coords, size, w64, b64, normalize, backend="reference")
        if b and n and channels:
            assert_matches(want, conv_reference.dense_oracle(x64, coords, size, w64, b64, normalize), torch.float64,
                           "reference vs dense oracle")
        before = (x.clone(), coords.clone(), weight.clone())
        got = ik.sparse_depthwise_conv(x, coords, size, weight, bvec, normalize, backend=backend)
        assert got.dtype == dtype and got.shape == (b, n, channels)
        assert_matches(got, want, dtype, backend)
        assert all(torch.equal(a, c) for a, c in zip(before, (x, coords, weight)))  # no op writes its inputs


@pytest.mark.parametrize("backend", ALL)
@_settings(15)
@given(pts=point_sets(max_side=6, max_batch=2, allow_empty=False), half=st.integers(0, 3),
       normalize=st.sampled_from(("partial", "mean", "none")))
def test_sparse_conv_gradients_match_reference(backend, pts, half, normalize):
    coords, size, g = pts
    b, n = coords.shape[:2]
    k = 2 * half + 1
    base = [randn((b, n, 2), g, torch.float64), randn((2, k, k), g, torch.float64), randn((2,), g, torch.float64)]

    def grads(be):
        leaves = [t.clone().requires_grad_() for t in base]
        out = ik.sparse_depthwise_conv(leaves[0], coords, size, leaves[1], leaves[2], normalize, backend=be)
        return torch.autograd.grad(out, leaves, torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))

    with no_hang():
        got, want = grads(backend), grads("reference")
    assert_matches(torch.cat([t.flatten() for t in got]), torch.cat([t.flatten() for t in want]), torch.float64,
                   f"{backend} grads of (x, weight, bias)")


@pytest.mark.parametrize("backend", ALL)
@_settings(30)
@given(pts=point_sets(max_side=12), half=st.integers(0, 7))
def test_neighbor_map_counts_and_lookup(backend, pts, half):
    """Every builder (C++ for "cpu", torch ops for the others) gives each point's index at its
    pixel, -1 elsewhere, and the point count of its window."""
    coords, size, _ = pts
    with no_hang():
        nmap = ik.build_neighbor_map(coords, size, 2 * half + 1, backend=backend)
    b, n = coords.shape[:2]
    rows, cols = coords[..., 0].long(), coords[..., 1].long()
    batch = torch.arange(b)[:, None].expand(b, n)
    assert torch.equal(nmap.lookup[batch, rows, cols], torch.arange(n, dtype=torch.int32).expand(b, n))
    assert int((nmap.lookup >= 0).sum()) == b * n
    window = ((rows[:, :, None] - rows[:, None, :]).abs() <= half) & ((cols[:, :, None] - cols[:, None, :]).abs() <= half)
    assert torch.equal(nmap.counts, window.sum(-1).to(torch.int32))


# ------------------------------------------------------------------ k-NN lerp and bilinear sampling


@pytest.mark.parametrize("backend", ALL)
@_settings(30)
@given(pts=point_sets(allow_empty=False), out=st.tuples(st.integers(1, 10), st.integers(1, 10)), data=st.data(),
       channels=st.integers(0, 3), dtype=st.sampled_from(FLOATS))
def test_knn_to_grid_every_backend_matches_reference(backend, pts, out, data, channels, dtype):
    coords, size, g = pts
    b, n = coords.shape[:2]
    k = data.draw(st.integers(1, min(n, 6)))
    x = randn((b, n, channels), g, dtype)
    with no_hang():
        want = ik.knn_to_grid(x.double(), coords, size, out, k, backend="reference")
        got = ik.knn_to_grid(x, coords, size, out, k, backend=backend)
        assert got.dtype == dtype
        assert_matches(got, want, dtype, backend)
    # weights are a partition of unity: a constant field stays constant
    ones = ik.knn_to_grid(torch.ones(b, n, 1, dtype=torch.float64), coords, size, out, k)
    assert torch.allclose(ones, torch.ones_like(ones))


@pytest.mark.parametrize("backend", ALL)
@_settings(30)
@given(pts=point_sets(), grid=st.tuples(st.integers(1, 10), st.integers(1, 10)), channels=st.integers(0, 3),
       dtype=st.sampled_from(FLOATS))
def test_grid_to_points_matches_grid_sample(backend, pts, grid, channels, dtype):
    coords, size, g = pts
    b, n = coords.shape[:2]
    y = randn((b, channels, *grid), g, dtype)
    h, w = size
    pos = torch.stack(((coords[..., 1].double() + 0.5) / w * 2 - 1, (coords[..., 0].double() + 0.5) / h * 2 - 1), -1)
    if b and n and channels:
        want = F.grid_sample(y.double(), pos[:, :, None, :], mode="bilinear", padding_mode="border",
                             align_corners=False)[..., 0].transpose(1, 2)
    else:
        want = torch.zeros(b, n, channels, dtype=torch.float64)
    with no_hang():
        got = ik.grid_to_points(y, coords, size, backend=backend)
        assert got.shape == (b, n, channels) and got.dtype == dtype
        if backend == "reference" and dtype in (torch.float16, torch.bfloat16) and got.numel():
            # the reference is F.grid_sample in y's dtype, positions rounded to it as well
            exact = F.grid_sample(y, pos[:, :, None, :].to(dtype), mode="bilinear", padding_mode="border",
                                  align_corners=False)[..., 0].transpose(1, 2)
            assert torch.equal(got, exact)
            return
        assert_matches(got, want, dtype, backend)


# ------------------------------------------------------------------ spectral filters


grid_shapes = st.tuples(st.integers(0, 2), st.integers(1, 9), st.integers(1, 9)).map(
    lambda t: (t[0], t[1], t[2]) if t[0] else (1, t[1], t[2]))
sigmas = st.one_of(st.floats(0, 0.5), st.sampled_from([0.0, 1e-300, 5.0, 1e6, 1e12, 1e300]))


@pytest.mark.parametrize("backend", ALL)
@_settings(30)
@given(shape=grid_shapes, batch=st.integers(0, 2), sigma=sigmas, boundary=st.sampled_from(("reflect", "periodic")),
       dtype=st.sampled_from(SPECTRAL), nsr=st.floats(1e-6, 10), seed=st.integers(0, 2**16))
def test_mollify_and_wiener_match_reference_and_identities(backend, shape, batch, sigma, boundary, dtype, nsr, seed):
    g = torch.Generator().manual_seed(seed)
    u = randn((batch, *shape), g, dtype)
    v = randn((batch, *shape), g, dtype)
    with no_hang():
        want_m = ik.mollify(u.double(), sigma, boundary, backend="reference")
        want_w = ik.wiener(u.double(), sigma, nsr, boundary, backend="reference")
        m = ik.mollify(u, sigma, boundary, backend=backend)
        assert m.shape == u.shape and m.dtype == dtype
        assert_matches(m, want_m, dtype, f"{backend} mollify")
        assert_matches(ik.wiener(u, sigma, nsr, boundary, backend=backend), want_w, dtype, f"{backend} wiener")
    if u.numel():
        assert torch.isfinite(want_m).all() and torch.isfinite(want_w).all()
        # self-adjoint: <T u, v> = <u, T v>; a constant is kept; the mean is kept
        tv = ik.mollify(v.double(), sigma, boundary)
        assert math.isclose(float((want_m * v.double()).sum()), float((u.double() * tv).sum()), rel_tol=1e-9, abs_tol=1e-9)
        const = ik.mollify(torch.full((1, *shape), 3.0, dtype=torch.float64), sigma, boundary)
        assert torch.allclose(const, torch.full_like(const, 3.0))
        if boundary == "periodic" or sigma == 0 or u.shape[-1] * u.shape[-2] == 1:
            assert torch.allclose(want_m.mean((-2, -1)), u.double().mean((-2, -1)), atol=1e-9)
        if sigma >= 1e3:  # every non-constant mode is gone: the result is the mean
            mean = u.double().mean((-2, -1), keepdim=True).expand_as(want_m)
            assert torch.allclose(want_m, mean, atol=1e-9)


@pytest.mark.parametrize("backend", ALL)
@_settings(25)
@given(shape=grid_shapes, batch=st.integers(0, 3), sigma=sigmas, boundary=st.sampled_from(("reflect", "periodic")),
       dtype=st.sampled_from(SPECTRAL), tensors=st.booleans(), seed=st.integers(0, 2**16))
def test_q_sample_is_mollified_combination(backend, shape, batch, sigma, boundary, dtype, tensors, seed):
    g = torch.Generator().manual_seed(seed)
    x0, noise = randn((batch, *shape), g, dtype), randn((batch, *shape), g, dtype)
    a = torch.rand(batch, generator=g, dtype=torch.float64).to(dtype) if tensors else 0.7
    s = torch.rand(batch, generator=g, dtype=torch.float64).to(dtype) if tensors else 0.3
    view = (-1,) + (1,) * len(shape)
    av = a.double().view(view) if tensors else a
    sv = s.double().view(view) if tensors else s
    want = ik.mollify(av * x0.double() + sv * noise.double(), sigma, boundary, backend="reference")
    with no_hang():
        got = ik.q_sample(x0, noise, a, s, sigma, boundary, backend=backend)
        assert got.shape == x0.shape
        assert_matches(got, want, dtype, backend)


@pytest.mark.parametrize("backend", ALL)
@_settings(20)
@example(shape=(1, 1, 2), batch=1, alpha=1e30, log_tau=11.0, dtype=torch.float32, seed=0)  # float32 log(1 + q) = 0
@example(shape=(1, 9, 9), batch=1, alpha=2.0, log_tau=-40.0, dtype=torch.float32, seed=1)  # q overflows to inf
@given(shape=grid_shapes, batch=st.integers(0, 2), alpha=st.one_of(st.floats(1.01, 8), st.sampled_from([1 + 1e-9, 50.0, 1e6, 1e30])),
       log_tau=st.floats(-40, 40), dtype=st.sampled_from(SPECTRAL), seed=st.integers(0, 2**16))
def test_gaussian_random_field_matches_reference(backend, shape, batch, alpha, log_tau, dtype, seed):
    tau = math.exp(log_tau)
    full = (batch, *shape)
    want = ik.gaussian_random_field(full, alpha, tau, torch.Generator().manual_seed(seed), torch.float64,
                                    backend="reference")
    assert torch.isfinite(want).all()
    with no_hang():
        got = ik.gaussian_random_field(full, alpha, tau, torch.Generator().manual_seed(seed), dtype, backend=backend)
        assert got.shape == full and got.dtype == dtype and torch.isfinite(got).all()
        # float32 draws its noise in float32: compare with the float64 field of that noise
        ref = want if dtype == torch.float64 else ik.gaussian_random_field(
            full, alpha, tau, torch.Generator().manual_seed(seed), dtype, backend="reference")
        assert_matches(got, ref, dtype, backend)
    if want.numel():
        # every mode has variance lambda_k <= 1 / tau^2, so a pixel's standard deviation is at
        # most sqrt(H W) / tau: 8 of those bound every pixel of these few draws
        assert float(want.abs().max()) <= 8 * math.sqrt(shape[-1] * shape[-2]) / tau


@pytest.mark.parametrize("backend", ALL)
@_settings(15)
@given(shape=grid_shapes, sigma=sigmas, boundary=st.sampled_from(("reflect", "periodic")),
       dtype=st.sampled_from(SPECTRAL), seed=st.integers(0, 2**16))
def test_mollified_noise_is_mollified_white_noise(backend, shape, sigma, boundary, dtype, seed):
    white = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    want = ik.mollify(white.double(), sigma, boundary, backend="reference")
    with no_hang():
        got = ik.mollified_noise(shape, sigma, boundary, torch.Generator().manual_seed(seed), dtype=dtype,
                                 backend=backend)
        assert_matches(got, want, dtype, backend)


@pytest.mark.parametrize("backend", COMPILED)
@_settings(30)
@given(pts=point_sets(allow_empty=False), half=st.integers(0, 3), dtype=st.sampled_from(FLOATS),
       op=st.sampled_from(["conv", "knn", "grid"]), data=st.data())
def test_non_finite_inputs_propagate_exactly_like_the_reference(backend, pts, half, dtype, op, data):
    """NaN/Inf features reach exactly the outputs whose windows (neighbours, bilinear taps)
    hold them, on every backend: never swallowed, never spread to other outputs."""
    coords, size, g = pts
    b, n = coords.shape[:2]
    x = randn((b, n, 2), g, dtype)
    y = randn((b, 2, 4, 5), g, dtype)
    target = x if op != "grid" else y
    flat = target.view(-1)
    for _ in range(data.draw(st.integers(1, 3))):
        flat[data.draw(st.integers(0, flat.numel() - 1))] = data.draw(st.sampled_from(NON_FINITE))
    k = 2 * half + 1
    weight = randn((2, k, k), g, dtype)
    calls = {
        "conv": lambda be, t: ik.sparse_depthwise_conv(t, coords, size, weight.to(t.dtype), backend=be),
        "knn": lambda be, t: ik.knn_to_grid(t, coords, size, (3, 4), min(n, 2), backend=be),
        "grid": lambda be, t: ik.grid_to_points(t, coords, size, backend=be),
    }
    with no_hang():
        want = calls[op]("reference", target.double())
        got = calls[op](backend, target)
        assert torch.equal(torch.isfinite(got), torch.isfinite(want)), backend
        if op == "grid":
            # known difference: at the last row/column the compiled kernels read the clamped
            # upper tap with weight 0, so an Inf there gives NaN where F.grid_sample (which
            # skips the out-of-bounds tap) gives Inf; both are non-finite
            got, want_cmp = got.masked_fill(~torch.isfinite(got), 0), want.masked_fill(~torch.isfinite(want), 0)
            assert_matches(got, want_cmp, dtype, backend)
            return
        assert torch.equal(torch.isnan(got), torch.isnan(want)), backend
        assert_matches(got, want, dtype, backend)
    if op == "conv":  # only points whose window holds a non-finite feature are non-finite
        bad = ~torch.isfinite(x).all(-1)
        for bb in range(b):
            for i, (r, c) in enumerate(coords[bb].tolist()):
                near = ((coords[bb, :, 0] - r).abs() <= half) & ((coords[bb, :, 1] - c).abs() <= half)
                assert bool(torch.isfinite(want[bb, i]).all()) == (not bool((near & bad[bb]).any()))


@_settings(30)
@given(channels=st.integers(0, 3), half=st.integers(0, 5), scale=st.floats(0.05, 8), seed=st.integers(0, 2**16),
       normalize=st.sampled_from(("partial", "mean", "none")), dtype=st.sampled_from(FLOATS))
def test_resample_kernel_follows_the_spec(channels, half, scale, seed, normalize, dtype):
    k = 2 * half + 1
    weight = randn((channels, k, k), torch.Generator().manual_seed(seed), dtype)
    out = ik.resample_kernel(weight, scale, normalize)
    r_new = math.floor(half * scale + 0.5)
    if half == 0 or r_new == 0:
        assert torch.equal(out, weight[:, half : half + 1, half : half + 1])
        return
    size = 2 * r_new + 1
    want = F.interpolate(weight.double().unsqueeze(1), size=(size, size), mode="bilinear", align_corners=True)[:, 0]
    if normalize != "mean":
        want = want * (half / r_new) ** 2
    assert out.shape == (channels, size, size) and out.dtype == dtype
    assert_matches(out, want, dtype)
    if r_new == half:
        assert_matches(out, weight, dtype)  # the same size: the same kernel


# ------------------------------------------------------------------ coordinates


@_settings(40)
@given(batch=st.integers(0, 3), h=st.integers(1, 12), w=st.integers(1, 12), data=st.data(),
       dtype=st.sampled_from(COORDS), seed=st.integers(0, 2**16))
def test_random_coords_are_distinct_sorted_in_range(batch, h, w, data, dtype, seed):
    count = data.draw(st.integers(1, h * w))
    coords = ik.random_coords(batch, (h, w), count=count, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    assert coords.shape == (batch, count, 2) and coords.dtype == dtype
    linear = coords[..., 0].long() * w + coords[..., 1].long()
    assert bool((coords[..., 0] < h).all() and (coords[..., 1] < w).all() and (coords >= 0).all())
    if count > 1:
        assert bool((linear[:, 1:] > linear[:, :-1]).all())  # ascending, hence distinct
    image = torch.randn(batch, 2, h, w, generator=torch.Generator().manual_seed(seed))
    x = ik.gather_points(image, coords)
    dense, mask = ik.scatter_points(x, coords, (h, w))
    assert torch.equal(dense * mask, image * mask) and int(mask.sum()) == batch * count


# ------------------------------------------------------------------ bad values


@st.composite
def broken_points(draw):
    """A valid point set with one coordinate moved off the grid or one point duplicated."""
    coords, size, g = draw(point_sets(allow_empty=False))
    coords = coords.clone()
    b, n = coords.shape[:2]
    bb, i = draw(st.integers(0, b - 1)), draw(st.integers(0, n - 1))
    kind = draw(st.sampled_from(["off-grid", "duplicate"] if n > 1 else ["off-grid"]))
    if kind == "off-grid":
        axis = draw(st.integers(0, 1))
        limit = size[axis]
        bad = draw(st.one_of(st.integers(-2**31, -1), st.integers(limit, 2**31 - 1)))
        coords[bb, i, axis] = bad
        return coords, size, g, kind, "outside the grid"
    j = draw(st.integers(0, n - 1).filter(lambda j: j != i))
    coords[bb, j] = coords[bb, i]
    return coords, size, g, kind, "duplicate"


@_settings(40)
@given(case=broken_points(), op=st.sampled_from(["conv", "knn", "nmap", "grid", "scatter"]))
def test_bad_coordinates_give_the_named_error_on_every_backend(case, op):
    coords, size, g, kind, match = case
    b, n = coords.shape[:2]
    x = randn((b, n, 2), g, torch.float32)
    weight = randn((2, 3, 3), g, torch.float32)
    calls = {
        "conv": lambda be: ik.sparse_depthwise_conv(x, coords, size, weight, backend=be),
        "knn": lambda be: ik.knn_to_grid(x, coords, size, (3, 3), 1, backend=be),
        "nmap": lambda be: ik.build_neighbor_map(coords, size, 3, backend=be),
        "grid": lambda be: ik.grid_to_points(torch.zeros(b, 2, 3, 3), coords, size, backend=be),
        "scatter": lambda be: ik.scatter_points(x, coords, size),
    }
    if kind == "duplicate" and op == "grid":
        out = calls[op]("reference")  # sampling twice at one pixel is well defined
        assert out.shape == (b, n, 2)
        return
    outcomes = same_error({be: (lambda be=be: calls[op](be)) for be in ALL})
    err_type, message = outcomes["reference"]
    assert err_type is ValueError and match in message and "coords" in message, outcomes
    if kind == "duplicate" and op in ("conv", "knn", "nmap", "scatter"):
        # check=False: the caller vouches; the ops still return, never crash
        skip = {"conv": lambda be: ik.sparse_depthwise_conv(x, coords, size, weight, backend=be, check=False),
                "knn": lambda be: ik.knn_to_grid(x, coords, size, (3, 3), 1, backend=be, check=False),
                "nmap": lambda be: ik.build_neighbor_map(coords, size, 3, check=False, backend=be),
                "scatter": lambda be: ik.scatter_points(x, coords, size, check=False)}[op]
        with no_hang():
            for be in ALL:
                skip(be)


BAD_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64,
              torch.float16, torch.bfloat16, torch.float32, torch.float64)


@_settings(40)
@given(x_dtype=st.sampled_from(BAD_DTYPES), c_dtype=st.sampled_from(BAD_DTYPES), w_dtype=st.sampled_from(BAD_DTYPES),
       op=st.sampled_from(["conv", "knn", "grid", "mollify", "q_sample", "nmap"]))
def test_wrong_dtypes_give_type_errors(x_dtype, c_dtype, w_dtype, op):
    coords = torch.tensor([[[0, 0], [1, 2], [3, 1]]]).to(c_dtype)
    x = torch.ones(1, 3, 2).to(x_dtype)
    weight = torch.ones(2, 3, 3).to(w_dtype)
    calls = {
        "conv": lambda be: ik.sparse_depthwise_conv(x, coords, (4, 4), weight, backend=be),
        "knn": lambda be: ik.knn_to_grid(x, coords, (4, 4), (2, 2), 2, backend=be),
        "grid": lambda be: ik.grid_to_points(torch.ones(1, 2, 3, 3).to(x_dtype), coords, (4, 4), backend=be),
        "mollify": lambda be: ik.mollify(torch.ones(2, 4, 4).to(x_dtype), 0.1, backend=be),
        "q_sample": lambda be: ik.q_sample(torch.ones(2, 1, 4, 4).to(x_dtype), torch.ones(2, 1, 4, 4).to(w_dtype),
                                           torch.ones(2).to(c_dtype), 0.5, 0.1, backend=be),
        "nmap": lambda be: ik.build_neighbor_map(coords, (4, 4), 3, backend=be),
    }
    outcomes = same_error({be: (lambda be=be: calls[op](be)) for be in ALL})
    kind = outcomes["reference"][0]
    float_x, int_c = x_dtype in FLOATS, c_dtype in COORDS
    expected_ok = {
        "conv": float_x and int_c and w_dtype in FLOATS,
        "knn": float_x and int_c,
        "grid": float_x and int_c,
        "mollify": x_dtype in SPECTRAL,
        "q_sample": x_dtype in SPECTRAL and w_dtype == x_dtype and c_dtype in FLOATS,
        "nmap": int_c,
    }[op]
    assert (kind == "ok") == expected_ok, outcomes
    if kind != "ok":
        assert kind is TypeError, outcomes


NON_FINITE = [float("nan"), float("inf"), -float("inf")]


@pytest.mark.parametrize("value", NON_FINITE + [-1.0, "0.1", None, True])
def test_bad_scalar_parameters(value):
    u = torch.randn(2, 5, 4)
    x0 = torch.randn(2, 1, 5, 4)
    cases = {
        "sigma": [lambda be: ik.mollify(u, value, backend=be), lambda be: ik.wiener(u, value, backend=be),
                  lambda be: ik.q_sample(x0, x0, 0.5, 0.5, value, backend=be),
                  lambda be: ik.mollified_noise((4, 4), value, backend=be)],
        "nsr": [lambda be: ik.wiener(u, 0.1, value, backend=be)],
        "alpha": [lambda be: ik.gaussian_random_field((4, 4), value, 2.0, backend=be)],
        "tau": [lambda be: ik.gaussian_random_field((4, 4), 2.0, value, backend=be)],
        "a": [lambda be: ik.q_sample(x0, x0, value, 0.5, 0.1, backend=be)],
        "scale": [lambda be: ik.resample_kernel(torch.ones(1, 3, 3), value)],
    }
    for name, calls in cases.items():
        if name == "a" and value == -1.0:
            continue  # a negative coefficient is valid
        for call in calls:
            outcomes = same_error({be: (lambda be=be: call(be)) for be in ALL})
            kind, message = outcomes["reference"]
            assert kind is ValueError and name in message, (name, outcomes)


def test_non_finite_per_example_coefficients_are_refused():
    x0 = torch.randn(2, 1, 5, 4)
    for value in NON_FINITE:
        a = torch.tensor([0.5, value])
        outcomes = same_error({be: (lambda be=be: ik.q_sample(x0, x0, a, 0.5, 0.1, backend=be)) for be in ALL})
        assert outcomes["reference"][0] is ValueError and "a must hold finite values" in outcomes["reference"][1]


def test_k_and_kernel_size_bounds():
    coords = torch.tensor([[[0, 0], [1, 2], [3, 1]]])
    x = torch.ones(1, 3, 2)
    for k in (0, -1, 4, 2.0, True):
        outcomes = same_error({be: (lambda be=be: ik.knn_to_grid(x, coords, (4, 4), (2, 2), k, backend=be)) for be in ALL})
        assert outcomes["reference"][0] is ValueError and "k must" in outcomes["reference"][1]
    for k in (0, 2, -3, 3.0):
        with pytest.raises(ValueError, match="kernel_size"):
            ik.build_neighbor_map(coords, (4, 4), k)
    outcomes = same_error({be: (lambda be=be: ik.sparse_depthwise_conv(x, coords, (4, 4), torch.ones(2, 4, 4),
                                                                        backend=be)) for be in ALL})
    assert "odd" in outcomes["reference"][1]


# ------------------------------------------------------------------ empty tensors and N = 0


def test_empty_tensors_give_empty_results():
    z = lambda *s: torch.zeros(*s)  # noqa: E731
    c0 = torch.zeros(2, 0, 2, dtype=torch.long)
    cb = torch.zeros(0, 3, 2, dtype=torch.long)
    cases = {
        "conv N=0": (lambda be: ik.sparse_depthwise_conv(z(2, 0, 3), c0, (4, 4), z(3, 3, 3), backend=be), (2, 0, 3)),
        "conv B=0": (lambda be: ik.sparse_depthwise_conv(z(0, 3, 3), cb, (4, 4), z(3, 3, 3), backend=be), (0, 3, 3)),
        "conv C=0": (lambda be: ik.sparse_depthwise_conv(z(1, 2, 0), torch.tensor([[[0, 0], [1, 1]]]), (4, 4),
                                                          z(0, 3, 3), backend=be), (1, 2, 0)),
        "knn B=0": (lambda be: ik.knn_to_grid(z(0, 3, 2), cb, (4, 4), (5, 5), 2, backend=be), (0, 2, 5, 5)),
        "grid N=0": (lambda be: ik.grid_to_points(z(2, 3, 4, 4), c0, (4, 4), backend=be), (2, 0, 3)),
        "grid B=0": (lambda be: ik.grid_to_points(z(0, 3, 4, 4), cb, (4, 4), backend=be), (0, 3, 3)),
        "mollify B=0": (lambda be: ik.mollify(z(0, 4, 5), 0.1, backend=be), (0, 4, 5)),
        "wiener B=0": (lambda be: ik.wiener(z(0, 2, 4, 5), 0.1, backend=be), (0, 2, 4, 5)),
        "q_sample B=0": (lambda be: ik.q_sample(z(0, 1, 4, 5), z(0, 1, 4, 5), torch.zeros(0), 0.5, 0.1, backend=be),
                         (0, 1, 4, 5)),
        "grf B=0": (lambda be: ik.gaussian_random_field((0, 4, 4), 2.0, 3.0, backend=be), (0, 4, 4)),
        "noise B=0": (lambda be: ik.mollified_noise((2, 0, 4, 4), 0.1, backend=be), (2, 0, 4, 4)),
        "nmap N=0": (lambda be: ik.build_neighbor_map(c0, (4, 4), 3, backend=be).counts, (2, 0)),
    }
    for name, (call, shape) in cases.items():
        for be in ALL:
            with no_hang():
                out = call(be)
            assert tuple(out.shape) == shape, (name, be, out.shape)
    # knn with N = 0 has no k in [1, N]: the named error
    outcomes = same_error({be: (lambda be=be: ik.knn_to_grid(z(2, 0, 3), c0, (4, 4), (2, 2), 1, backend=be)) for be in ALL})
    assert "k must satisfy 1 <= k <= N = 0" in outcomes["reference"][1]
    for name, call in {"u H=0": lambda be: ik.mollify(z(2, 0, 4), 0.1, backend=be),
                       "u W=0": lambda be: ik.wiener(z(2, 4, 0), 0.1, backend=be),
                       "x0 H=0": lambda be: ik.q_sample(z(2, 0, 4), z(2, 0, 4), 0.5, 0.5, 0.1, backend=be),
                       "y h=0": lambda be: ik.grid_to_points(z(2, 3, 0, 4), c0, (4, 4), backend=be)}.items():
        outcomes = same_error({be: (lambda be=be: call(be)) for be in ALL})
        assert outcomes["reference"][0] is ValueError and ">= 1" in outcomes["reference"][1], (name, outcomes)


# ------------------------------------------------------------------ sizes past the int32 index range


BIG = 2**31  # one past the int32 range


def expanded(shape, dtype=torch.float32):
    """A tensor of `shape` that owns one element (all strides 0): no gigabytes allocated."""
    return torch.zeros((1,) * len(shape), dtype=dtype).expand(*shape)


def test_huge_sizes_are_refused_before_any_allocation():
    c_big = expanded((1, BIG, 2), torch.int64)
    x_big = expanded((1, BIG, 2))
    coords = torch.tensor([[[0, 0], [1, 2], [3, 1]]])
    x = torch.ones(1, 3, 2)
    cases = [
        ("conv N", lambda be: ik.sparse_depthwise_conv(x_big, c_big, (4, 4), torch.ones(2, 3, 3), backend=be),
         "number of points N"),
        ("conv K", lambda be: ik.sparse_depthwise_conv(x, coords, (4, 4), expanded((2, 46341, 46341)), backend=be),
         "kernel taps K^2"),
        ("conv H", lambda be: ik.sparse_depthwise_conv(x, coords, (2**31, 4), torch.ones(2, 3, 3), backend=be), "2^30"),
        ("nmap N", lambda be: ik.build_neighbor_map(c_big, (4, 4), 3, backend=be), "number of points N"),
        ("nmap K", lambda be: ik.build_neighbor_map(coords, (4, 4), 46341, backend=be), "kernel taps K^2"),
        ("nmap W", lambda be: ik.build_neighbor_map(coords, (4, 2**40), 3, backend=be), "2^30"),
        ("knn N", lambda be: ik.knn_to_grid(x_big, c_big, (4, 4), (2, 2), 1, backend=be), "number of points N"),
        ("knn cells", lambda be: ik.knn_to_grid(x, coords, (4, 4), (2**16, 2**16), 1, backend=be), "h * w"),
        ("knn out side", lambda be: ik.knn_to_grid(x, coords, (4, 4), (2**31, 1), 1, backend=be), "2^30"),
        ("grid N", lambda be: ik.grid_to_points(torch.zeros(1, 2, 3, 3), c_big, (4, 4), backend=be),
         "number of points N"),
        ("grid size", lambda be: ik.grid_to_points(torch.zeros(1, 2, 3, 3), coords, (2**31, 4), backend=be), "2^30"),
        ("grid y", lambda be: ik.grid_to_points(expanded((1, 2, 2**31, 1)), coords, (4, 4), backend=be), "2^30"),
        ("gather N", lambda be: ik.gather_points(torch.zeros(1, 2, 4, 4), c_big), "number of points N"),
        ("mollify H", lambda be: ik.mollify(expanded((2**31, 2)), 0.1, backend=be), "2^30"),
        ("grf shape", lambda be: ik.gaussian_random_field((2**31, 2), 2.0, 3.0, backend=be), "2^30"),
        ("noise shape", lambda be: ik.mollified_noise((2, 2**31), 0.1, backend=be), "2^30"),
        ("random_coords", lambda be: ik.random_coords(1, (2**31, 2), count=1), "2^30"),
        ("resample", lambda be: ik.resample_kernel(torch.ones(1, 3, 3), 1e9), "taps"),
        ("resample inf-ish", lambda be: ik.resample_kernel(torch.ones(1, 3, 3), 1e300), "taps"),
    ]
    for name, call, match in cases:
        outcomes = same_error({be: (lambda be=be: call(be)) for be in ALL})
        kind, message = outcomes["reference"]
        assert kind is ValueError and match in message, (name, outcomes)
    # meta tensors (no data at all): the size checks fire before any value would be read
    meta = dict(device="meta")
    with pytest.raises(ValueError, match="number of points N"):
        ik.sparse_depthwise_conv(torch.empty(1, BIG, 2, **meta), torch.empty(1, BIG, 2, dtype=torch.long, **meta),
                                 (4, 4), torch.empty(2, 3, 3, **meta))
    with pytest.raises(ValueError, match="2\\^30"):
        ik.mollify(torch.empty(3, 2**31, 1, **meta), 0.1)


@pytest.mark.skipif(not _ext.has_cpu_kernels(), reason="infdiff_kernels._C is not built")
def test_cpp_entry_points_check_sizes_before_indexing():
    """The extension called directly (bypassing the Python checks), with meta tensors: any read
    of their data would fail differently, so the size error proves the check comes first."""
    ext = _ext.ext
    meta = dict(device="meta")
    i32 = dict(dtype=torch.int32, **meta)
    cases = [
        ("conv N", lambda: ext.sparse_conv_forward(torch.empty(1, BIG, 1, **meta), torch.empty(1, BIG, 2, **i32),
                                                   torch.empty(1, 4, 4, **i32), torch.empty(1, BIG, **i32),
                                                   torch.empty(1, 3, 3, **meta), None, 0), "N (points)"),
        ("conv H", lambda: ext.sparse_conv_forward(torch.empty(1, 3, 1, **meta), torch.empty(1, 3, 2, **i32),
                                                   torch.empty(1, 2**31, 1, **i32), torch.empty(1, 3, **i32),
                                                   torch.empty(1, 3, 3, **meta), None, 0), "2^30"),
        ("conv K", lambda: ext.sparse_conv_forward(torch.empty(1, 3, 1, **meta), torch.empty(1, 3, 2, **i32),
                                                   torch.empty(1, 4, 4, **i32), torch.empty(1, 3, **i32),
                                                   torch.empty(1, 46341, 46341, **meta), None, 0), "K^2"),
        ("conv backward N", lambda: ext.sparse_conv_backward(
            torch.empty(1, BIG, 1, **meta), torch.empty(1, BIG, 1, **meta), torch.empty(1, BIG, 2, **i32),
            torch.empty(1, 4, 4, **i32), torch.empty(1, BIG, **i32), torch.empty(1, 3, 3, **meta), 0, True, True),
         "N (points)"),
        ("nmap height", lambda: ext.build_neighbor_map_cpu(torch.zeros(1, 1, 2, dtype=torch.int32), 2**31, 4, 3, True),
         "height"),
        ("nmap width", lambda: ext.build_neighbor_map_cpu(torch.zeros(1, 1, 2, dtype=torch.int32), 4, -1, 3, True),
         "width"),
        ("nmap K", lambda: ext.build_neighbor_map_cpu(torch.zeros(1, 1, 2, dtype=torch.int32), 4, 4, 46341, True),
         "K^2"),
        ("nmap even K", lambda: ext.build_neighbor_map_cpu(torch.zeros(1, 1, 2, dtype=torch.int32), 4, 4, 2, True),
         "odd"),
        ("knn cells", lambda: ext.knn_search(torch.zeros(1, 3, 2, dtype=torch.int32), 4, 4, 2**16, 2**16, 1, False),
         "h * w"),
        ("knn H", lambda: ext.knn_search(torch.zeros(1, 3, 2, dtype=torch.int32), 2**31, 4, 2, 2, 1, False), "2^30"),
        ("knn gather cells", lambda: ext.knn_gather(torch.empty(1, 3, 1, **meta), torch.empty(1, 2**32, 1, **i32),
                                                    torch.empty(1, 2**32, 1, **meta), 2**16, 2**16), "h * w"),
        ("knn scatter N", lambda: ext.knn_scatter(torch.empty(1, 1, 2, 2, **meta), torch.empty(1, 4, 1, **i32),
                                                  torch.empty(1, 4, 1, **meta), BIG), "N (points)"),
        ("grid N", lambda: ext.grid_to_points(torch.empty(1, 1, 4, 4, **meta), torch.empty(1, BIG, 2, **i32), 4, 4),
         "N (points)"),
        ("grid H", lambda: ext.grid_to_points(torch.empty(1, 1, 4, 4, **meta), torch.empty(1, 3, 2, **i32), 2**31, 4),
         "2^30"),
        ("grid backward h", lambda: ext.grid_to_points_backward(torch.empty(1, 3, 1, **meta),
                                                                torch.empty(1, 3, 2, **i32), 4, 4, 2**31, 4), "2^30"),
        ("spectral prepare", lambda: ext.spectral_prepare(torch.empty(1, 2**31, 1, **meta), None, None, None, False),
         "2^30"),
        ("spectral multiply", lambda: ext.spectral_multiply_(torch.empty(1, 2**31, 1, dtype=torch.complex64, **meta),
                                                              2**31, 1, 0, 0, 0.1, 0.0, 2.0, 1.0, 1.0), "2^30"),
    ]
    for name, call, match in cases:
        with pytest.raises(RuntimeError) as err:
            call()
        assert match in str(err.value), (name, str(err.value)[:300])


# ------------------------------------------------------------------ the DLPack (NumPy) front door


def test_numpy_inputs_get_the_same_errors():
    np = pytest.importorskip("numpy")
    coords = np.array([[[0, 0], [1, 2], [3, 1]]], dtype=np.int64)
    x = np.ones((1, 3, 2), dtype=np.float32)
    with pytest.raises(TypeError, match="coords must have dtype"):
        ik.sparse_depthwise_conv(x, coords.astype(np.float32), (4, 4), np.ones((2, 3, 3), dtype=np.float32))
    bad = coords.copy()
    bad[0, 1] = [9, 0]
    with pytest.raises(ValueError, match="outside the grid"):
        ik.knn_to_grid(x, bad, (4, 4), (2, 2), 1)
    with pytest.raises(ValueError, match="sigma"):
        ik.mollify(np.ones((2, 4, 4)), float("nan"))
    out = ik.mollify(np.ones((0, 4, 4)), 0.1)
    assert isinstance(out, np.ndarray) and out.shape == (0, 4, 4)
