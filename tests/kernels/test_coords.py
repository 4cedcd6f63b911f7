"""Coordinate helpers (docs/ops.md#coordinate-helpers): random distinct pixel subsets, full
grids, and gather/scatter between dense images and point features; the coordinate check
that every op shares."""
import pytest
import torch

import infdiff_kernels as ik
from infdiff_kernels._validate import checked_coords_op

from .cases import names_argument


def test_random_coords_are_distinct_in_range_and_sized():
    g = torch.Generator().manual_seed(0)
    coords = ik.random_coords(3, (10, 7), 0.25, generator=g)
    assert coords.shape == (3, round(0.25 * 70), 2) and coords.dtype == torch.int64
    assert bool((coords[..., 0] < 10).all() and (coords[..., 1] < 7).all() and (coords >= 0).all())
    linear = (coords[..., 0] * 7 + coords[..., 1]).sort(1).values
    assert bool((linear[:, 1:] > linear[:, :-1]).all())  # distinct in every batch element
    assert ik.random_coords(2, (4, 4), count=16).shape == (2, 16, 2)
    assert ik.random_coords(1, (4, 4), count=5, dtype=torch.int32).dtype == torch.int32


def test_random_coords_are_uniform_and_reproducible():
    g = torch.Generator().manual_seed(1)
    coords = ik.random_coords(4000, (3, 3), count=3, generator=g)
    hits = torch.bincount((coords[..., 0] * 3 + coords[..., 1]).flatten(), minlength=9).double()
    # Each pixel is picked with probability 3/9: 4000 draws give 1333 +- 30 (sd).
    assert bool(((hits - 4000 / 3).abs() < 150).all()), hits
    a = ik.random_coords(2, (8, 8), 0.5, generator=torch.Generator().manual_seed(5))
    b = ik.random_coords(2, (8, 8), 0.5, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize(
    "kwargs,exc,argument",
    [(dict(fraction=0.0), ValueError, "fraction"), (dict(fraction=1.5), ValueError, "fraction"),
     (dict(count=0), ValueError, "count"), (dict(count=17), ValueError, "count"),
     (dict(), ValueError, "fraction"), (dict(fraction=0.5, count=3), ValueError, "fraction"),
     (dict(count=3, batch=-1), ValueError, "batch"), (dict(count=3, size=(4, 0)), ValueError, "size"),
     (dict(count=3, dtype=torch.float32), TypeError, "dtype")],
)
def test_random_coords_errors(kwargs, exc, argument):
    args = dict(batch=1, size=(4, 4)) | kwargs
    with pytest.raises(exc, match=names_argument(argument)):
        ik.random_coords(args.pop("batch"), args.pop("size"), **args)


def test_grid_coords_row_major():
    c = ik.grid_coords((2, 3))
    assert c.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert ik.grid_coords((2, 3), batch=4).shape == (4, 6, 2)


def test_gather_scatter_round_trip_and_full_grid():
    g = torch.Generator().manual_seed(2)
    image = torch.randn(2, 3, 5, 6, generator=g)
    coords = ik.random_coords(2, (5, 6), 0.4, generator=g)
    x = ik.gather_points(image, coords)
    assert x.shape == (2, coords.shape[1], 3)
    assert torch.equal(x[1, 0], image[1, :, coords[1, 0, 0], coords[1, 0, 1]])
    dense, mask = ik.scatter_points(x, coords, (5, 6))
    assert torch.equal(dense * mask, image * mask)
    assert int(mask.sum()) == 2 * coords.shape[1]
    full = ik.grid_coords((5, 6), batch=2)
    assert torch.equal(ik.gather_points(image, full).transpose(1, 2).reshape(2, 3, 5, 6), image)


@pytest.mark.parametrize(
    "image,coords,exc,argument",
    [
        (torch.zeros(1, 1, 2, 2), torch.tensor([[[2, 0]]]), ValueError, "coords"),  # off the image
        (torch.zeros(2, 1, 2, 2), torch.tensor([[[0, 0]]]), ValueError, "coords"),  # B mismatch
        (torch.zeros(1, 2, 2), torch.tensor([[[0, 0]]]), ValueError, "image"),
        (torch.zeros(1, 1, 2, 2), torch.tensor([[[0.0, 0.0]]]), TypeError, "coords"),
    ],
    ids=["outside", "B mismatch", "image ndim", "coords dtype"],
)
def test_gather_points_errors(image, coords, exc, argument):
    with pytest.raises(exc, match=names_argument(argument)):
        ik.gather_points(image, coords)


def test_scatter_points_refuses_duplicates_unless_told():
    x, coords = torch.ones(1, 2, 1), torch.tensor([[[1, 1], [1, 1]]])
    with pytest.raises(ValueError, match=names_argument("coords") + " holds duplicate"):
        ik.scatter_points(x, coords, (2, 2))
    image, mask = ik.scatter_points(x, coords, (2, 2), check=False)
    assert int(mask.sum()) == 1 and float(image[0, 0, 1, 1]) == 1.0


@pytest.mark.parametrize("distinct_points", [False, True])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_checked_coords_opcheck(distinct_points, dtype):
    coords = ik.random_coords(2, (5, 4), 0.5, generator=torch.Generator().manual_seed(4), dtype=dtype)
    torch.library.opcheck(checked_coords_op, (coords, 5, 4, distinct_points))
    out = checked_coords_op(coords, 5, 4, distinct_points)
    assert out.dtype == torch.int32 and out.is_contiguous() and torch.equal(out, coords.to(torch.int32))


@pytest.mark.parametrize(
    "order,duplicate,name",
    [("sorted", False, None), ("shuffled", False, None), ("sorted", True, "batch element 1"),
     ("shuffled", True, "batch element 1")],
)
def test_duplicate_check_in_any_point_order(order, duplicate, name):
    # Row-major-sorted points take a one-pass proof, any other order the sort: both must
    # find a repeat wherever it sits and pass every distinct set.
    g = torch.Generator().manual_seed(7)
    coords = ik.random_coords(2, (9, 8), 0.5, generator=g)
    linear = coords[..., 0] * 8 + coords[..., 1]
    coords = torch.gather(coords, 1, linear.argsort(1)[..., None].expand(-1, -1, 2))  # row-major
    if duplicate:
        coords[1, 5] = coords[1, 4]  # adjacent when sorted: not strictly increasing
    if order == "shuffled":
        coords = coords[:, torch.randperm(coords.shape[1], generator=g)]
    if name is None:
        assert torch.equal(checked_coords_op(coords, 9, 8, True), coords.to(torch.int32))
    else:
        with pytest.raises(ValueError, match=name):
            checked_coords_op(coords, 9, 8, True)
