"""Coordinate helpers: random distinct pixel subsets, full grids, and gather/scatter between
dense images and point features."""
import pytest
import torch

import infdiff_kernels as ik


def test_random_coords_are_distinct_in_range_and_sized():
    g = torch.Generator().manual_seed(0)
    coords = ik.random_coords(3, (10, 7), 0.25, generator=g)
    assert coords.shape == (3, round(0.25 * 70), 2) and coords.dtype == torch.int64
    assert bool((coords[..., 0] < 10).all() and (coords[..., 1] < 7).all() and (coords >= 0).all())
    for b in range(3):
        assert len({tuple(p) for p in coords[b].tolist()}) == coords.shape[1]
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
    "kwargs,match",
    [(dict(fraction=0.0), "fraction"), (dict(fraction=1.5), "fraction"), (dict(count=0), "count"),
     (dict(count=17), "count"), (dict(), "exactly one"), (dict(fraction=0.5, count=3), "exactly one")],
)
def test_random_coords_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ik.random_coords(1, (4, 4), **kwargs)


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


def test_gather_points_errors():
    with pytest.raises(ValueError, match="outside"):
        ik.gather_points(torch.zeros(1, 1, 2, 2), torch.tensor([[[2, 0]]]))
    with pytest.raises(ValueError, match="coords must be"):
        ik.gather_points(torch.zeros(2, 1, 2, 2), torch.tensor([[[0, 0]]]))
