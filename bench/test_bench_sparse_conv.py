"""pytest-benchmark form of bench/sparse_conv.py, for tracking one case over time with
pytest-benchmark's storage and comparison (`--benchmark-autosave`, `--benchmark-compare`).

    pytest bench/ --benchmark-only

Not collected by the default test run (tests live in tests/). Sizes are small (128^2,
density 1/4) so a run takes seconds; the full table comes from `python -m bench.sparse_conv`.
"""
from fractions import Fraction

import pytest
import torch

import infdiff_kernels as ik

from .sparse_conv import B, C, K, dense_fns, make_points, sparse_backend_fns

SIZE = 128
DENSITY = Fraction(1, 4)
MODES = ("fwd", "fwd+bwd")
BACKENDS = [b for b in ik.available_backends("cpu") if b not in ("triton", "reference")]


@pytest.fixture(scope="module")
def case():
    generator = torch.Generator().manual_seed(0)
    coords = make_points(B, SIZE, DENSITY, generator)
    n = coords.shape[1]
    return {
        "coords": coords,
        "x": torch.randn(B, n, C, generator=generator),
        "weight": torch.randn(C, K, K, generator=generator) / K,
        "bias": torch.randn(C, generator=generator),
        "grad_sparse": torch.randn(B, n, C, generator=generator),
        "image": torch.randn(B, C, SIZE, SIZE, generator=generator),
        "grad_dense": torch.randn(B, C, SIZE, SIZE, generator=generator),
        "nmap": ik.build_neighbor_map(coords, (SIZE, SIZE), K),
    }


@pytest.mark.parametrize("mode", MODES)
def test_dense_depthwise(benchmark, case, mode):
    fns = dense_fns(case["image"], case["weight"], case["bias"], case["grad_dense"])
    benchmark.group = f"sparse_conv {SIZE}^2 d={DENSITY} {mode}"
    out = benchmark(fns[mode])
    assert out.shape == case["image"].shape


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_depthwise(benchmark, case, backend, mode):
    fns = sparse_backend_fns(
        backend, case["x"], case["coords"], (SIZE, SIZE), case["weight"], case["bias"], case["nmap"], case["grad_sparse"]
    )
    benchmark.group = f"sparse_conv {SIZE}^2 d={DENSITY} {mode}"
    out = benchmark(fns[mode])
    assert out.shape == case["x"].shape
    if mode == "fwd+bwd":
        assert case["x"].grad is not None and case["weight"].grad is not None


def test_build_neighbor_map(benchmark, case):
    benchmark.group = f"sparse_conv {SIZE}^2 d={DENSITY} build"
    nmap = benchmark(ik.build_neighbor_map, case["coords"], (SIZE, SIZE), K)
    assert nmap.counts.shape == case["coords"].shape[:2]
