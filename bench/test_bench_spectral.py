"""pytest-benchmark form of bench/spectral.py (the spectral filters against a bare FFT round
trip and scipy.ndimage), for `--benchmark-autosave` / `--benchmark-compare`.

    pytest bench/ --benchmark-only

Not collected by the default test run (tests live in tests/). One small size (B*C = 64 planes
of 128^2); the full table comes from `python -m bench.spectral`.
"""
import pytest

from .spectral import implementations

SIZE = 128
IMPLS = implementations(SIZE, headline_only=False, big=False)


@pytest.mark.parametrize("impl", [name for name in IMPLS if name != "reference:reflect"])
def test_spectral(benchmark, impl):
    benchmark.group = f"spectral 64x{SIZE}^2"
    benchmark(IMPLS[impl])
