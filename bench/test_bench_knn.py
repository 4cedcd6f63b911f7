"""pytest-benchmark form of bench/knn.py (knn_to_grid against the cKDTree + einsum baseline,
grid_to_points), for tracking over time with `--benchmark-autosave` / `--benchmark-compare`.

    pytest bench/ --benchmark-only

Not collected by the default test run (tests live in tests/). Small sizes (64^2 at 1/4 onto
32^2) so a run takes seconds; the full table comes from `python -m bench.knn`.
"""
import pytest
import torch

import infdiff_kernels as ik

from .knn import B, C, K, _timed, ckdtree_knn_to_grid, make_points

SIZE, OUT, FRACTION = 64, 32, 4
MODES = ("fwd", "fwd+bwd")
BACKENDS = [b for b in ik.available_backends("cpu") if b not in ("triton", "reference")]


@pytest.fixture(scope="module")
def case():
    generator = torch.Generator().manual_seed(0)
    coords = make_points(SIZE, FRACTION, generator)
    return {
        "coords": coords,
        "x": torch.randn(B, coords.shape[1], C, generator=generator).requires_grad_(),
        "y": torch.randn(B, C, OUT, OUT, generator=generator).requires_grad_(),
    }


def group(op, mode):
    return f"{op} {SIZE}^2 1/{FRACTION} -> {OUT}^2 {mode}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_to_grid(benchmark, case, backend, mode):
    call = lambda t: ik.knn_to_grid(t, case["coords"], (SIZE, SIZE), (OUT, OUT), K, backend=backend, check=False)
    benchmark.group = group("knn_to_grid", mode)
    out = benchmark(_timed(call, case["x"])[mode])
    assert out.shape == (B, C, OUT, OUT)


def test_knn_to_grid_ckdtree(benchmark, case):
    pytest.importorskip("scipy")
    x, coords = case["x"].detach().numpy(), case["coords"].numpy()
    benchmark.group = group("knn_to_grid", "fwd")
    out = benchmark(ckdtree_knn_to_grid, x, coords, SIZE, OUT, K, 1)
    assert out.shape == (B, C, OUT, OUT)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_grid_to_points(benchmark, case, backend, mode):
    call = lambda t: ik.grid_to_points(t, case["coords"], (SIZE, SIZE), backend=backend)
    benchmark.group = group("grid_to_points", mode)
    out = benchmark(_timed(call, case["y"])[mode])
    assert out.shape == (B, case["coords"].shape[1], C)
