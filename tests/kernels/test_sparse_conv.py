"""sparse_depthwise_conv and resample_kernel against docs/ops.md#sparse_depthwise_conv:
the reference against the contract's dense form and a literal loop, every backend against the
reference, errors, gradients and the custom-op contract."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import infdiff_kernels as ik
from infdiff_kernels import _ext
from infdiff_kernels.sparse_conv import reference
from infdiff_kernels.sparse_conv.neighbor_map import build_neighbor_map_op
from infdiff_kernels.sparse_conv.ops import sparse_depthwise_conv_op

from .cases import (
    BACKEND_PARAMS,
    COMPILED_PARAMS,
    CPU_BACKENDS,
    FLOAT_DTYPES,
    HALF_DTYPES,
    NORMALIZE,
    SPARSE_CONV_CASES,
    TOLERANCES,
    names_argument,
    random_points,
)
from .cases import SPARSE_CONV_SIZE as SIZE

DENSITIES = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16)
KERNEL_SIZES = (1, 3, 5, 7, 9)


def make_case(batch, channels, k, density, size=SIZE, dtype=torch.float64, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    n = max(1, round(density * size[0] * size[1]))
    coords = random_points(batch, size, n, generator=g)
    x = torch.randn(batch, n, channels, generator=g, dtype=torch.float64).to(dtype)
    weight = torch.randn(channels, k, k, generator=g, dtype=torch.float64).to(dtype)
    b = torch.randn(channels, generator=g, dtype=torch.float64).to(dtype) if bias else None
    return x, coords, weight, b


def literal_loop(x, coords, size, weight, bias, normalize):
    """docs/ops.md#sparse_depthwise_conv word for word, in Python loops (tiny cases only)."""
    b_, n_, c_ = x.shape
    k = weight.shape[-1]
    r = k // 2
    out = torch.empty_like(x)
    for b in range(b_):
        pts = [tuple(p) for p in coords[b].tolist()]
        for n, (rn, cn) in enumerate(pts):
            window = [p for p, (rp, cp) in enumerate(pts) if abs(rp - rn) <= r and abs(cp - cn) <= r]
            m = len(window)
            s = {"partial": k * k / m, "mean": 1 / m, "none": 1.0}[normalize]
            for c in range(c_):
                acc = sum(weight[c, pts[p][0] - rn + r, pts[p][1] - cn + r] * x[b, p, c] for p in window)
                out[b, n, c] = s * acc + (bias[c] if bias is not None else 0)
    return out


@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("k,density", [(1, 1.0), (3, 0.5), (5, 0.25), (3, 1 / 16), (7, 1 / 8)])
def test_reference_matches_literal_spec(normalize, k, density):
    x, coords, weight, bias = make_case(2, 3, k, density, size=(7, 6))
    expected = literal_loop(x, coords, (7, 6), weight, bias, normalize)
    got = reference.sparse_depthwise_conv(x, coords, (7, 6), weight, bias, normalize)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("k", KERNEL_SIZES)
@pytest.mark.parametrize("density", DENSITIES)
def test_reference_matches_dense_oracle(normalize, k, density):
    x, coords, weight, bias = make_case(3, 3, k, density)
    expected = reference.dense_oracle(x, coords, SIZE, weight, bias, normalize)
    got = reference.sparse_depthwise_conv(x, coords, SIZE, weight, bias, normalize)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_partial_equals_dense_conv_where_window_is_full():
    x, coords, weight, bias = make_case(1, 4, 5, 1.0)
    dense = torch.zeros(1, 4, *SIZE, dtype=x.dtype)
    dense[0, :, coords[0, :, 0], coords[0, :, 1]] = x[0].T
    conv = F.conv2d(dense, weight[:, None], bias, padding=2, groups=4)
    got = reference.sparse_depthwise_conv(x, coords, SIZE, weight, bias, "partial")
    interior = (coords[0, :, 0] >= 2) & (coords[0, :, 0] < SIZE[0] - 2) & (coords[0, :, 1] >= 2) & (coords[0, :, 1] < SIZE[1] - 2)
    expected = conv[0, :, coords[0, :, 0], coords[0, :, 1]].T
    torch.testing.assert_close(got[0, interior], expected[interior])


def _check_backend(backend, device, x, coords, weight, bias, normalize, size=SIZE):
    expected = reference.sparse_depthwise_conv(
        x.double(), coords, size, weight.double(), None if bias is None else bias.double(), normalize
    )
    got = ik.sparse_depthwise_conv(
        x.to(device), coords.to(device), size, weight.to(device),
        None if bias is None else bias.to(device), normalize, backend=backend,
    )
    assert got.dtype == x.dtype and got.shape == x.shape
    rtol, atol = TOLERANCES[x.dtype]
    scale = expected.abs().amax().clamp(min=1.0)
    torch.testing.assert_close(got.double().cpu() / scale, expected / scale, rtol=rtol, atol=atol)


# The C++ backend is fast enough for the whole grid of sizes (the cross product of the axes).
FULL_GRID = list(itertools.product((1, 3), (1, 3, 64), KERNEL_SIZES, DENSITIES))


@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("batch,channels,k,density", FULL_GRID)
def test_cpu_matches_reference(batch, channels, k, density, dtype, normalize):
    if "cpu" not in ik.available_backends("cpu"):
        pytest.skip("infdiff_kernels._C is not built")
    x, coords, weight, bias = make_case(batch, channels, k, density, dtype=dtype)
    _check_backend("cpu", "cpu", x, coords, weight, bias, normalize)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("batch,channels,k,density", SPARSE_CONV_CASES)
def test_backend_matches_reference(backend, device, batch, channels, k, density, dtype, normalize):
    x, coords, weight, bias = make_case(batch, channels, k, density, dtype=dtype)
    _check_backend(backend, device, x, coords, weight, bias, normalize)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision(backend, device, dtype):
    x, coords, weight, bias = make_case(3, 64, 5, 0.5, dtype=dtype)
    _check_backend(backend, device, x, coords, weight, bias, "partial")


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("normalize", NORMALIZE)
def test_gradients_match_reference(backend, device, normalize):
    x, coords, weight, bias = make_case(3, 5, 5, 0.5)
    grads = []
    for b, dev in (("reference", "cpu"), (backend, device)):
        leaves = [t.to(dev).requires_grad_() for t in (x, weight, bias)]
        out = ik.sparse_depthwise_conv(leaves[0], coords.to(dev), SIZE, leaves[1], leaves[2], normalize, backend=b)
        g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=dev).view_as(out)
        grads.append([t.cpu() for t in torch.autograd.grad(out, leaves, g)])
    for got, expected in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_gradcheck(backend, device):
    x, coords, weight, bias = make_case(2, 3, 3, 0.5, size=(6, 5))
    leaves = [t.to(device).requires_grad_() for t in (x, weight, bias)]
    coords = coords.to(device)

    def fn(x_, w_, b_):
        return ik.sparse_depthwise_conv(x_, coords, (6, 5), w_, b_, "partial", backend=backend)

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_gradient_to_x_only(backend, device):
    x, coords, weight, _ = make_case(1, 3, 3, 0.5)
    xd = x.to(device).requires_grad_()
    out = ik.sparse_depthwise_conv(xd, coords.to(device), SIZE, weight.to(device), backend=backend)
    (gx,) = torch.autograd.grad(out.sum(), xd)
    xr = x.clone().requires_grad_()
    (expected,) = torch.autograd.grad(reference.sparse_depthwise_conv(xr, coords, SIZE, weight).sum(), xr)
    torch.testing.assert_close(gx.cpu(), expected)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("normalize", NORMALIZE)
def test_borders_corners_and_isolated_point(backend, device, normalize):
    h, w = 9, 8
    corners = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    edges = [(0, 3), (4, 0), (h - 1, 5), (6, w - 1), (1, 1)]
    isolated = [(4, 4)]  # no other point within radius 2
    pts = torch.tensor([corners + edges + isolated])
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, pts.shape[1], 3, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    _check_backend(backend, device, x, pts, weight, None, normalize, size=(h, w))
    out = ik.sparse_depthwise_conv(x.to(device), pts.to(device), (h, w), weight.to(device), None, normalize, backend=backend)
    # The isolated point sees only itself: m = 1, so s = K*K, 1 or 1 times the centre tap times x.
    scale = {"partial": 25.0, "mean": 1.0, "none": 1.0}[normalize]
    torch.testing.assert_close(out[0, -1].cpu(), scale * weight[:, 2, 2] * x[0, -1])


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_non_contiguous_inputs_and_inputs_unchanged(backend, device):
    x, coords, weight, bias = make_case(2, 6, 3, 0.5)
    x_nc = x.to(device).transpose(0, 1).contiguous().transpose(0, 1)[..., ::2]  # (B, N, 3), strided
    w_nc = weight.to(device)[::2].transpose(1, 2)
    coords_nc = torch.stack((coords[..., 0], coords[..., 1])).to(device).permute(1, 2, 0)
    assert not x_nc.is_contiguous() and not w_nc.is_contiguous() and not coords_nc.is_contiguous()
    before = [t.clone() for t in (x_nc, w_nc, coords_nc)]
    got = ik.sparse_depthwise_conv(x_nc, coords_nc, SIZE, w_nc, bias[::2].to(device), backend=backend)
    expected = reference.sparse_depthwise_conv(x_nc.contiguous().cpu(), coords, SIZE, w_nc.contiguous().cpu(), bias[::2])
    torch.testing.assert_close(got.cpu(), expected)
    for t, b in zip((x_nc, w_nc, coords_nc), before):
        assert torch.equal(t, b)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_neighbor_map_is_reused(backend, device):
    x, coords, weight, bias = make_case(3, 4, 7, 0.25)
    x, coords, weight = x.to(device), coords.to(device), weight.to(device)
    nmap = ik.build_neighbor_map(coords, SIZE, 7)
    assert nmap.lookup.shape == (3, *SIZE) and nmap.counts.shape == coords.shape[:2]
    assert nmap.nbytes == 4 * 3 * (SIZE[0] * SIZE[1] + 3 * coords.shape[1])
    # Ten layers on the same points share one map and agree with building it per call.
    y_shared, y_fresh = x, x
    for _ in range(10):
        y_shared = ik.sparse_depthwise_conv(y_shared, coords, SIZE, weight, backend=backend, neighbor_map=nmap).tanh()
        y_fresh = ik.sparse_depthwise_conv(y_fresh, coords, SIZE, weight, backend=backend).tanh()
    torch.testing.assert_close(y_shared, y_fresh)
    with pytest.raises(ValueError, match="neighbor_map"):
        ik.sparse_depthwise_conv(x, coords, SIZE, weight[:, 1:-1, 1:-1], backend=backend, neighbor_map=nmap)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("k", KERNEL_SIZES)
def test_neighbor_map_counts_match_dense_count(backend, device, k):
    _, coords, _, _ = make_case(3, 1, 1, 0.3)
    nmap = ik.build_neighbor_map(coords.to(device), SIZE, k, backend=backend)
    mask = torch.zeros(3, 1, *SIZE)
    mask[torch.arange(3)[:, None], 0, coords[..., 0], coords[..., 1]] = 1
    dense = F.conv2d(mask, torch.ones(1, 1, k, k), padding=k // 2)[:, 0]
    expected = dense[torch.arange(3)[:, None], coords[..., 0], coords[..., 1]]
    assert torch.equal(nmap.counts.cpu(), expected.to(torch.int32))
    lookup = torch.full((3, *SIZE), -1, dtype=torch.int32)
    lookup[torch.arange(3)[:, None], coords[..., 0], coords[..., 1]] = torch.arange(coords.shape[1], dtype=torch.int32)
    assert torch.equal(nmap.lookup.cpu(), lookup) and torch.equal(nmap.coords.cpu(), coords.to(torch.int32))


@pytest.mark.parametrize("backend,device", COMPILED_PARAMS)
def test_opcheck(backend, device):
    x, coords, weight, bias = make_case(2, 3, 3, 0.5, dtype=torch.float32)
    nmap = ik.build_neighbor_map(coords.to(device), SIZE, 3)
    args = (
        x.to(device).requires_grad_(), nmap.coords, nmap.lookup, nmap.counts,
        weight.to(device).requires_grad_(), bias.to(device).requires_grad_(), 0, backend,
    )
    torch.library.opcheck(sparse_depthwise_conv_op, args)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_neighbor_map_opcheck(backend, device):
    _, coords, _, _ = make_case(2, 3, 3, 0.5)
    builder = ik._dispatch.neighbor_map_builder(backend)
    torch.library.opcheck(build_neighbor_map_op, (coords.to(device), *SIZE, 5, True, builder))


def test_torch_compile_traces_the_op():
    if "cpu" not in ik.available_backends("cpu"):
        pytest.skip("infdiff_kernels._C is not built")
    x, coords, weight, bias = make_case(2, 3, 3, 0.5, dtype=torch.float32)
    nmap = ik.build_neighbor_map(coords, SIZE, 3)

    def layer(x_, w_):
        return sparse_depthwise_conv_op(x_, nmap.coords, nmap.lookup, nmap.counts, w_, None, 0, "cpu").relu()

    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, weight), layer(x, weight))


# ---- errors (docs/ops.md#errors): every backend, same messages, before any kernel runs ----

def _error_cases():
    x, coords, weight, bias = make_case(2, 3, 3, 0.5, dtype=torch.float32)
    dup = coords.clone()
    dup[1, 1] = dup[1, 0]
    out_of_range = coords.clone()
    out_of_range[0, 2, 1] = SIZE[1]
    negative = coords.clone()
    negative[1, 0, 0] = -1
    other_map = ik.build_neighbor_map(coords, SIZE, 5)
    # (id, exception, arguments replaced, the argument the message must name)
    return [
        ("B mismatch", ValueError, dict(x=x[:1]), "coords"),
        ("N mismatch", ValueError, dict(x=x[:, :-1]), "coords"),
        ("outside", ValueError, dict(coords=out_of_range), "coords"),
        ("negative", ValueError, dict(coords=negative), "coords"),
        ("duplicates", ValueError, dict(coords=dup), "coords"),
        ("even K", ValueError, dict(weight=torch.randn(3, 4, 4)), "weight"),
        ("weight C", ValueError, dict(weight=torch.randn(2, 3, 3)), "weight"),
        ("weight not square", ValueError, dict(weight=torch.randn(3, 3, 5)), "weight"),
        ("weight dtype", TypeError, dict(weight=torch.ones(3, 3, 3, dtype=torch.int64)), "weight"),
        ("weight device", ValueError, dict(weight=torch.randn(3, 3, 3, device="meta")), "weight"),
        ("bias shape", ValueError, dict(bias=torch.randn(4)), "bias"),
        ("normalize", ValueError, dict(normalize="sum"), "normalize"),
        ("backend", ValueError, dict(backend="opencl"), "backend"),
        ("x dtype", TypeError, dict(x=x.to(torch.int32)), "x"),
        ("x ndim", ValueError, dict(x=x[0]), "x"),
        ("coords dtype", TypeError, dict(coords=coords.float()), "coords"),
        ("size", ValueError, dict(size=(12,)), "size"),
        ("map of another K", ValueError, dict(neighbor_map=other_map), "neighbor_map"),
        ("map of another type", TypeError, dict(neighbor_map=(coords, SIZE)), "neighbor_map"),
    ], (x, coords, weight, bias)


ERROR_CASES, BASE = _error_cases()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name,exc,override,argument", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_argument(backend, name, exc, override, argument):
    x, coords, weight, bias = BASE
    kwargs = dict(x=x, coords=coords, size=SIZE, weight=weight, bias=bias, normalize="partial", backend=backend)
    kwargs.update(override)
    with pytest.raises(exc, match=names_argument(argument)):
        ik.sparse_depthwise_conv(**kwargs)


def test_duplicates_unchecked_with_check_false():
    x, coords, weight, _ = BASE
    dup = coords.clone()
    dup[1, 1] = dup[1, 0]
    out = ik.sparse_depthwise_conv(x, dup, SIZE, weight, backend="reference", check=False)
    assert out.shape == x.shape


def test_unavailable_backend_says_why():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    x, coords, weight, _ = BASE
    with pytest.raises(RuntimeError, match=names_argument("backend") + "='cuda' cannot run here"):
        ik.sparse_depthwise_conv(x, coords, SIZE, weight, backend="cuda")


# ---- resample_kernel ----

@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("k,scale", [(7, 2.0), (7, 0.5), (5, 1.0), (3, 3.0), (9, 1.5), (5, 0.6)])
def test_resample_kernel_matches_the_contract(k, scale, normalize):
    weight = torch.randn(4, k, k, dtype=torch.float64)
    r = k // 2
    r_new = int(r * scale + 0.5)
    out = ik.resample_kernel(weight, scale, normalize)
    assert out.shape == (4, 2 * r_new + 1, 2 * r_new + 1)
    expected = F.interpolate(weight[:, None], size=out.shape[-2:], mode="bilinear", align_corners=True)[:, 0]
    if normalize != "mean":
        expected = expected * (r / r_new) ** 2
    torch.testing.assert_close(out, expected)
    # Taps are the bilinear interpolation at offsets o * r / r' (along the centre column).
    pos = r + torch.arange(-r_new, r_new + 1, dtype=torch.float64) * r / r_new
    lo = pos.long().clamp(max=k - 1)
    hi = (lo + 1).clamp(max=k - 1)
    t = pos - lo
    column = (1 - t) * weight[:, lo, r] + t * weight[:, hi, r]
    factor = 1.0 if normalize == "mean" else (r / r_new) ** 2
    torch.testing.assert_close(out[:, :, r_new], column * factor)


def test_resample_kernel_identity_and_centre_tap():
    weight = torch.randn(2, 5, 5)
    torch.testing.assert_close(ik.resample_kernel(weight, 1.0), weight)
    torch.testing.assert_close(ik.resample_kernel(weight, 0.2), weight[:, 2:3, 2:3])  # r' = floor(0.4 + 0.5) = 0
    assert ik.resample_kernel(weight, 0.25 + 1e-9).shape[-1] == 3  # 2 * 0.25 + 0.5 = 1.0 rounds half up
    one = torch.randn(3, 1, 1)
    torch.testing.assert_close(ik.resample_kernel(one, 4.0), one)


def test_resample_kernel_keeps_dense_response_across_resolutions():
    """The same smooth function sampled at 2x the resolution gives the same partial-conv
    output with the resampled kernel: consistent magnitude across resolutions."""
    h = 32
    t7 = torch.linspace(-1, 1, 7, dtype=torch.float64)
    weight = torch.exp(-3 * (t7[:, None] ** 2 + t7[None] ** 2))[None]  # smooth, near 0 at the rim

    def field(n):
        t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        return (torch.sin(2 * torch.pi * t)[:, None] * torch.cos(2 * torch.pi * t)[None]).view(1, -1, 1)

    def grid(n):
        ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        return torch.stack((ii, jj), -1).view(1, -1, 2)

    lo = ik.sparse_depthwise_conv(field(h), grid(h), (h, h), weight, backend="reference").view(h, h)
    hi = ik.sparse_depthwise_conv(field(2 * h), grid(2 * h), (2 * h, 2 * h), ik.resample_kernel(weight, 2.0), backend="reference")
    hi = hi.view(1, 1, 2 * h, 2 * h)
    hi_at_lo = F.avg_pool2d(hi, 2)[0, 0]
    interior = slice(6, h - 6)
    rel = (hi_at_lo[interior, interior] - lo[interior, interior]).abs().max() / lo.abs().max()
    assert rel < 0.05


@pytest.mark.parametrize("bad,exc,argument", [
    (dict(scale=0.0), ValueError, "scale"), (dict(scale=-1.0), ValueError, "scale"),
    (dict(scale=float("nan")), ValueError, "scale"), (dict(scale=1e12), ValueError, "scale"),
    (dict(normalize="avg"), ValueError, "normalize"),
    (dict(weight=torch.randn(2, 4, 4)), ValueError, "weight"), (dict(weight=torch.ones(2, 3, 3, dtype=torch.int64)), TypeError, "weight"),
    (dict(weight=torch.randn(3, 3)), ValueError, "weight"),
])
def test_resample_kernel_errors(bad, exc, argument):
    kwargs = dict(weight=torch.randn(2, 3, 3), scale=2.0, normalize="partial")
    kwargs.update(bad)
    with pytest.raises(exc, match=names_argument(argument)):
        ik.resample_kernel(**kwargs)


def _bad_maps():
    _, coords, _, _ = make_case(3, 1, 1, 0.4)
    dup = coords.clone()
    dup[2, 3] = dup[2, 1]
    off = coords.clone()
    off[1, 4, 0] = SIZE[0]
    return [("duplicate", dup, r"^coords holds duplicate points in batch element 2"), ("off the grid", off, r"^coords\[1, 4\]")]


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("name,coords,message", _bad_maps(), ids=[c[0] for c in _bad_maps()])
def test_every_neighbor_map_builder_names_the_bad_point(backend, device, name, coords, message):
    """The C++ pass ("cpu") and the torch builder (the others) report the same point."""
    with pytest.raises(ValueError, match=message):
        ik.build_neighbor_map(coords.to(device), SIZE, 3, backend=backend)


@pytest.mark.parametrize("kernel_size", [0, 2, -3, 3.0, True])
def test_build_neighbor_map_names_kernel_size(kernel_size):
    _, coords, _, _ = make_case(1, 1, 1, 0.4)
    with pytest.raises(ValueError, match=names_argument("kernel_size")):
        ik.build_neighbor_map(coords, SIZE, kernel_size)


# ---- the C++ entry checks its own contract (callers that bypass _validate.py) ----

def _raw_case(k):
    x, coords, weight, _ = make_case(1, 3, 3, 0.5, dtype=torch.float32)
    nmap = ik.build_neighbor_map(coords, SIZE, 3)
    weight = torch.randn(x.shape[2], k, k)
    return x, nmap, weight


@pytest.mark.parametrize("k", [2, 4])
def test_cpp_entry_refuses_even_k(k):
    if "cpu" not in ik.available_backends("cpu"):
        pytest.skip("infdiff_kernels._C is not built")
    x, nmap, weight = _raw_case(k)
    with pytest.raises(RuntimeError, match=f"weight's K must be odd, got {k}"):
        _ext.ext.sparse_conv_forward(x, nmap.coords, nmap.lookup, nmap.counts, weight, None, 0)
    with pytest.raises(RuntimeError, match=f"weight's K must be odd, got {k}"):
        _ext.ext.sparse_conv_backward(x, x, nmap.coords, nmap.lookup, nmap.counts, weight, 0, True, True)


def test_cpp_entry_refuses_lookup_values_out_of_range():
    if "cpu" not in ik.available_backends("cpu"):
        pytest.skip("infdiff_kernels._C is not built")
    x, nmap, weight = _raw_case(3)
    lookup = nmap.lookup.clone()
    lookup[0, 0, 0] = x.shape[1]  # one past the last point: the kernel would read past x
    with pytest.raises(RuntimeError, match=r"lookup values must be in \[-1, "):
        _ext.ext.sparse_conv_forward(x, nmap.coords, lookup, nmap.counts, weight, None, 0)
