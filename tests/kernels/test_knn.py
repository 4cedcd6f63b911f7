"""knn_to_grid and grid_to_points against docs/ops.md#knn_to_grid and #grid_to_points: every
backend (the reference included) against an independent exact oracle written from the
contract's text (fractions, no infdiff code), every backend against the reference, errors,
gradients and the custom-op contract."""
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import infdiff_kernels as ik
from infdiff_kernels.knn import reference
from infdiff_kernels.knn.ops import grid_to_points_op, knn_gather_op, knn_search_op

from .cases import (
    BACKEND_PARAMS,
    COMPILED_PARAMS,
    CPU_BACKENDS,
    FLOAT_DTYPES,
    GRID_TO_POINTS_CASES,
    KNN_CASES,
    TOLERANCES,
    names_argument,
    random_points,
)

# The search implementations of docs/ops.md#backends that can run on this machine's CPU.
SEARCHES = ["torch"] + ["cpu"] * ("cpu" in ik.available_backends("cpu"))
HAS_CPP = "cpu" in ik.available_backends("cpu")


def clustered_points(batch, size, n):
    """Points packed into the top-left corner, so cells far away must search far."""
    h, w = size
    side = int(np.ceil(np.sqrt(n)))
    pts = [(i // side, i % side) for i in range(n)]
    return torch.tensor(pts, dtype=torch.int64).expand(batch, n, 2).contiguous()


def spec_oracle(x, coords, size, out_size, k):
    """docs/ops.md#knn_to_grid from its text alone: exact squared distances as fractions of the domain
    positions, ordered by (distance, point index), inverse-square weights, normalised."""
    (H, W), (h, w) = size, out_size
    x = np.asarray(x, dtype=np.float64)
    B, N, C = x.shape
    out = np.zeros((B, C, h, w))
    for b in range(B):
        pts = [(Fraction(2 * r + 1, 2 * H), Fraction(2 * c + 1, 2 * W)) for r, c in coords[b].tolist()]
        for i in range(h):
            for j in range(w):
                gy, gx = Fraction(2 * i + 1, 2 * h), Fraction(2 * j + 1, 2 * w)
                d2 = [((py - gy) ** 2 + (px - gx) ** 2, p) for p, (py, px) in enumerate(pts)]
                chosen = sorted(d2)[:k]
                a = np.array([1.0 / max(float(d), 1e-16) for d, _ in chosen])
                feats = np.stack([x[b, p] for _, p in chosen])
                out[b, :, i, j] = (a[:, None] * feats).sum(0) / a.sum()
    return out


def spec_neighbours(coords, size, out_size, k):
    (H, W), (h, w) = size, out_size
    res = []
    for b in range(coords.shape[0]):
        pts = [(Fraction(2 * r + 1, 2 * H), Fraction(2 * c + 1, 2 * W)) for r, c in coords[b].tolist()]
        cells = []
        for i in range(h):
            for j in range(w):
                gy, gx = Fraction(2 * i + 1, 2 * h), Fraction(2 * j + 1, 2 * w)
                cells.append([p for _, p in sorted(((py - gy) ** 2 + (px - gx) ** 2, p) for p, (py, px) in enumerate(pts))[:k]])
        res.append(cells)
    return res


def make_case(size, out_size, n, batch, channels=3, dtype=torch.float64, seed=0, clustered=False):
    g = torch.Generator().manual_seed(seed)
    coords = clustered_points(batch, size, n) if clustered else random_points(batch, size, n, generator=g)
    x = torch.randn(batch, n, channels, generator=g, dtype=torch.float64).to(dtype)
    return x, coords


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("size,out_size,n,k,batch", KNN_CASES[:4])
@pytest.mark.parametrize("clustered", [False, True])
def test_every_backend_matches_spec_oracle(backend, device, size, out_size, n, k, batch, clustered):
    x, coords = make_case(size, out_size, n, batch, clustered=clustered)
    out = ik.knn_to_grid(x.to(device), coords.to(device), size, out_size, k, backend=backend)
    np.testing.assert_allclose(out.cpu().numpy(), spec_oracle(x, coords, size, out_size, k), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("size,out_size,n,k,batch", KNN_CASES)
@pytest.mark.parametrize("clustered", [False, True])
def test_search_neighbours_equal_the_contract_order(search, size, out_size, n, k, batch, clustered):
    """The neighbour sets and their order, including every tie, equal the contract's, for both
    the brute force ("torch") and the compiled ring search ("cpu")."""
    _, coords = make_case(size, out_size, n, batch, clustered=clustered)
    expected = torch.tensor(spec_neighbours(coords, size, out_size, k)).view(batch, -1, k)
    index, weights = knn_search_op(coords.to(torch.int32), *size, *out_size, k, True, search)
    assert torch.equal(index.long(), expected)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2], dtype=torch.float64))


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_ties_resolve_to_smaller_point_index(backend, device):
    # Cell centre (0.5, 0.5) of a 1x1 grid is equidistant from the four central pixels of 4x4.
    coords = torch.tensor([[[2, 2], [1, 1], [2, 1], [1, 2], [0, 0]]], device=device)
    x = torch.eye(5, dtype=torch.float64, device=device)[None]
    out = ik.knn_to_grid(x, coords, (4, 4), (1, 1), k=3, backend=backend)
    expected = torch.tensor([1 / 3, 1 / 3, 1 / 3, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(out[0, :, 0, 0].cpu(), expected)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_a_point_on_the_cell_centre_takes_all_the_weight(backend, device):
    # docs/ops.md#knn_to_grid: 48 / 16 = 3 is odd, so each cell centre is a pixel centre and k does
    # not matter; at 32 / 16 = 2 no pixel sits on a centre and a larger k averages more.
    x = torch.randn(1, 48 * 48, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
    coords = ik.grid_coords((48, 48), 1, device=device)
    three = ik.knn_to_grid(x, coords, (48, 48), (16, 16), k=3, backend=backend)
    centre = x[0].reshape(48, 48, 2)[1::3, 1::3].permute(2, 0, 1)  # pixel 3 i + 1 sits on cell i's centre
    torch.testing.assert_close(three[0], centre, rtol=1e-9, atol=0)  # others' share <= 48^2 x 1e-16 (d >= 1/48; the clamp)
    torch.testing.assert_close(ik.knn_to_grid(x, coords, (48, 48), (16, 16), k=20, backend=backend), three, rtol=1e-9, atol=0)
    x2, coords2 = x[:, : 32 * 32], ik.grid_coords((32, 32), 1, device=device)
    assert not torch.allclose(ik.knn_to_grid(x2, coords2, (32, 32), (16, 16), k=3, backend=backend),
                              ik.knn_to_grid(x2, coords2, (32, 32), (16, 16), k=20, backend=backend))


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("k", range(1, 9))
def test_backend_matches_reference(backend, device, dtype, k):
    size, out_size = (10, 9), (6, 7)
    x, coords = make_case(size, out_size, 24, 2, channels=5, dtype=dtype, seed=k)
    ref = ik.knn_to_grid(x, coords, size, out_size, k, backend="reference")
    out = ik.knn_to_grid(x.to(device), coords.to(device), size, out_size, k, backend=backend)
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(out.cpu(), ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_backward_matches_reference(backend, device, dtype):
    size, out_size = (8, 8), (5, 6)
    x, coords = make_case(size, out_size, 20, 2, channels=4, dtype=dtype)
    g = torch.randn(2, 4, *out_size, dtype=dtype)
    xr, xb = x.clone().requires_grad_(), x.to(device).requires_grad_()
    (expected,) = torch.autograd.grad(ik.knn_to_grid(xr, coords, size, out_size, 3, backend="reference"), xr, g)
    (got,) = torch.autograd.grad(ik.knn_to_grid(xb, coords.to(device), size, out_size, 3, backend=backend), xb, g.to(device))
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(got.cpu(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_gradcheck(backend, device):
    size, out_size = (6, 6), (4, 5)
    x, coords = make_case(size, out_size, 10, 2, channels=2)
    x, coords = x.to(device).requires_grad_(), coords.to(device)
    assert torch.autograd.gradcheck(lambda t: ik.knn_to_grid(t, coords, size, out_size, 3, backend=backend), (x,))
    y = torch.randn(2, 2, *out_size, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ik.grid_to_points(t, coords, size, backend=backend), (y,))
    assert torch.autograd.gradgradcheck(lambda t: ik.grid_to_points(t, coords, size, backend=backend), (y,))


@pytest.mark.parametrize("backend,device", COMPILED_PARAMS)
def test_opcheck(backend, device):
    size, out_size = (6, 6), (4, 5)
    x, coords = make_case(size, out_size, 10, 2, channels=3)
    x, coords = x.to(device).requires_grad_(), coords.to(device=device, dtype=torch.int32)
    search = ik._dispatch.knn_search(backend)
    index, weights = knn_search_op(coords, *size, *out_size, 3, True, search)
    torch.library.opcheck(knn_search_op, (coords, *size, *out_size, 3, True, search))
    torch.library.opcheck(knn_gather_op, (x, index, weights, *out_size, backend))
    y = torch.randn(2, 3, *out_size, dtype=torch.float64, device=device, requires_grad=True)
    torch.library.opcheck(grid_to_points_op, (y, coords, *size, backend))


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("size,out_size", GRID_TO_POINTS_CASES)
def test_grid_to_points_equals_grid_sample(backend, device, dtype, size, out_size):
    g = torch.Generator().manual_seed(1)
    coords = random_points(2, size, min(10, size[0] * size[1]), generator=g)
    y = torch.randn(2, 3, *out_size, generator=g, dtype=torch.float64).to(dtype)
    H, W = size
    c = coords.double()
    grid = torch.stack(((2 * c[..., 1] + 1) / W - 1, (2 * c[..., 0] + 1) / H - 1), -1).to(dtype)
    expected = F.grid_sample(y, grid[:, :, None], mode="bilinear", padding_mode="border", align_corners=False)
    out = ik.grid_to_points(y.to(device), coords.to(device), size, backend=backend)
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(out.cpu(), expected[..., 0].transpose(1, 2), rtol=rtol, atol=atol)


@pytest.mark.parametrize("out_size", [(32, 32), (96, 80)])
def test_compiled_search_scales_on_a_realistic_case(out_size):
    """Ring search == brute force at pipeline-like sizes (1/8 of 64^2 onto 32^2 and the reverse)."""
    if not HAS_CPP:
        pytest.skip("infdiff_kernels._C is not built")
    coords = ik.random_coords(2, (64, 64), 1 / 8, generator=torch.Generator().manual_seed(3))
    expected, _ = reference.knn_search(coords, (64, 64), out_size, 3)
    index, _ = knn_search_op(coords.to(torch.int32), 64, 64, *out_size, 3, False, "cpu")
    assert torch.equal(index.long(), expected)


@pytest.mark.parametrize(
    "size,fraction,out_size,k,clustered",
    [
        ((64, 64), 1 / 4, (32, 32), 3, False),  # the lattice map proves nearly every cell
        ((64, 64), 1 / 8, (32, 32), 3, False),  # hit masks from two 8-column runs of the bitmap
        ((48, 64), 1 / 2, (20, 70), 8, False),  # non-square, anisotropic box, upsampled columns
        ((40, 40), 1 / 16, (50, 30), 5, False),
        ((40, 40), 1 / 4, (16, 16), 3, True),  # far cells fall back to the tile search
    ],
)
def test_compiled_search_equals_brute_force_on_dense_lattices(size, fraction, out_size, k, clustered):
    if not HAS_CPP:
        pytest.skip("infdiff_kernels._C is not built")
    n = int(size[0] * size[1] * fraction)
    if clustered:
        coords = clustered_points(2, size, n)
    else:
        coords = random_points(2, size, n, generator=torch.Generator().manual_seed(5))  # unsorted: ties by index
    expected, _ = reference.knn_search(coords, size, out_size, k)
    index, _ = knn_search_op(coords.to(torch.int32), *size, *out_size, k, False, "cpu")
    assert torch.equal(index.long(), expected)


@pytest.mark.parametrize("out_size", [(16, 16), (10, 13)])  # whole 8 x 8 transposes / a ragged tail
@pytest.mark.parametrize("channels", [16, 12])
def test_cpu_gather_blocks_match_reference(out_size, channels):
    """float32 with C a multiple of 8 takes the register-transpose store of the CPU gather."""
    if not HAS_CPP:
        pytest.skip("infdiff_kernels._C is not built")
    x, coords = make_case((20, 20), out_size, 100, 2, channels=channels, dtype=torch.float32, seed=2)
    ref = ik.knn_to_grid(x, coords, (20, 20), out_size, 3, backend="reference")
    out = ik.knn_to_grid(x, coords, (20, 20), out_size, 3, backend="cpu")
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def _knn_error_cases():
    x, coords = make_case((6, 6), (3, 3), 10, 1)
    # (id, exception, arguments replaced, the argument the message must name)
    return [
        ("k zero", ValueError, dict(k=0), "k"),
        ("k above N", ValueError, dict(k=11), "k"),
        ("k not an int", ValueError, dict(k=2.0), "k"),
        ("out_size zero", ValueError, dict(out_size=(0, 3)), "out_size"),
        ("outside", ValueError, dict(size=(2, 2)), "coords"),
        ("duplicates", ValueError, dict(coords=torch.zeros_like(coords)), "coords"),
        ("N mismatch", ValueError, dict(x=x[:, :5]), "coords"),
        ("x dtype", TypeError, dict(x=x.long()), "x"),
        ("coords dtype", TypeError, dict(coords=coords.double()), "coords"),
        ("lattice distance", ValueError, dict(out_size=(2**20 + 1, 2**20 - 1)), "size"),
        ("backend", ValueError, dict(backend="nope"), "backend"),
    ], (x, coords)


KNN_ERRORS, KNN_BASE = _knn_error_cases()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name,exc,override,argument", KNN_ERRORS, ids=[c[0] for c in KNN_ERRORS])
def test_knn_to_grid_errors_name_the_argument(backend, name, exc, override, argument):
    x, coords = KNN_BASE
    kwargs = dict(x=x, coords=coords, size=(6, 6), out_size=(3, 3), k=3, backend=backend) | override
    with pytest.raises(exc, match=names_argument(argument)):
        ik.knn_to_grid(**kwargs)


def test_duplicates_pass_with_check_false():
    x, coords = KNN_BASE
    out = ik.knn_to_grid(x, torch.zeros_like(coords), (6, 6), (3, 3), check=False)  # the caller vouches
    assert out.shape == (1, 3, 3, 3)


def _grid_error_cases():
    _, coords = KNN_BASE
    y = torch.zeros(1, 1, 3, 3)
    return [
        ("B mismatch", ValueError, dict(y=torch.zeros(2, 1, 3, 3)), "coords"),
        ("y dtype", TypeError, dict(y=y.long()), "y"),
        ("y ndim", ValueError, dict(y=y[0]), "y"),
        ("y empty", ValueError, dict(y=torch.zeros(1, 1, 0, 3)), "y"),
        ("outside", ValueError, dict(size=(2, 2)), "coords"),
        ("size", ValueError, dict(size=(6, 0)), "size"),
        ("coords shape", ValueError, dict(coords=coords[..., :1]), "coords"),
    ], (y, coords)


GRID_ERRORS, GRID_BASE = _grid_error_cases()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name,exc,override,argument", GRID_ERRORS, ids=[c[0] for c in GRID_ERRORS])
def test_grid_to_points_errors_name_the_argument(backend, name, exc, override, argument):
    y, coords = GRID_BASE
    kwargs = dict(y=y, coords=coords, size=(6, 6), backend=backend) | override
    with pytest.raises(exc, match=names_argument(argument)):
        ik.grid_to_points(**kwargs)


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_inputs_are_not_written(backend, device):
    x, coords = make_case((6, 6), (3, 3), 10, 1)
    x, coords = x.to(device), coords.to(device)
    x0, c0 = x.clone(), coords.clone()
    ik.knn_to_grid(x, coords, (6, 6), (3, 3), backend=backend)
    assert torch.equal(x, x0) and torch.equal(coords, c0)


def test_numpy_in_numpy_out():
    x, coords = make_case((6, 6), (3, 3), 10, 1)
    out = ik.knn_to_grid(x.numpy(), coords.numpy(), (6, 6), (3, 3))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, spec_oracle(x, coords, (6, 6), (3, 3), 3), rtol=1e-10)
