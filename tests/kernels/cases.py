"""What the kernel tests run on, in one place: the backend list, the dtypes, one literal case
table per op, and the helpers that turn them into pytest parameters.

A new backend is one line: add it to BACKENDS (and to infdiff_kernels._dispatch); every test
parametrised over BACKEND_PARAMS then runs it against the reference."""
import re

import pytest
import torch

import infdiff_kernels

CUDA = torch.cuda.is_available()

# Every backend, the reference first: tests that compare a backend with the reference run the
# reference against itself too (a cheap check of the comparison).
BACKENDS = ("reference", "cpu", "triton", "cuda")
FLOAT_DTYPES = (torch.float64, torch.float32)
HALF_DTYPES = (torch.float16, torch.bfloat16)

# (rtol, atol) of a backend against the float64 reference, per input dtype. Half types round
# the inputs and the output to 8 (bf16) or 11 (fp16) bits; accumulation is float32.
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}

# ---- one literal case table per op ----

# sparse_depthwise_conv: (batch, channels, K, density) on a 12 x 10 grid. The Triton
# interpreter runs every program in Python, so the table is a diagonal through the space
# (K from 1 to 9, densities from full to 1/16, one and many channels).
SPARSE_CONV_SIZE = (12, 10)
SPARSE_CONV_CASES = [
    (1, 1, 1, 1.0),
    (3, 3, 3, 0.5),
    (1, 64, 5, 0.25),
    (3, 3, 7, 1 / 8),
    (1, 3, 9, 1 / 16),
    (3, 64, 3, 1.0),
]
NORMALIZE = ("partial", "mean", "none")

# knn_to_grid: (size, out_size, N, k, B): h*w < N, h*w > N, coprime and non-square sizes, k = N.
KNN_CASES = [
    ((8, 8), (4, 4), 40, 3, 2),
    ((8, 8), (16, 16), 6, 2, 2),
    ((6, 10), (7, 3), 25, 5, 1),
    ((5, 7), (9, 11), 8, 8, 2),
    ((9, 9), (3, 3), 81, 1, 1),
    ((4, 4), (4, 4), 7, 4, 3),
    ((12, 12), (5, 5), 20, 7, 1),
]

# grid_to_points: (size of the point lattice, size of the sampled grid).
GRID_TO_POINTS_CASES = [((8, 8), (4, 4)), ((5, 7), (9, 3)), ((16, 16), (16, 16)), ((3, 4), (1, 1))]

# the spectral filters: grid shapes (..., H, W), tiny (the Triton interpreter is slow): odd,
# even, degenerate, batched.
SPECTRAL_SHAPES = [(12, 10), (2, 3, 7, 6), (1, 2, 5, 9), (3, 1, 8), (2, 6, 1)]
BOUNDARIES = ("reflect", "periodic")


def _device(backend):
    return "cuda" if backend == "cuda" or (backend == "triton" and CUDA) else "cpu"


def _skip_reason(backend, device):
    if backend == "cuda" and not CUDA:
        return "no CUDA device on this machine (the CPU twin of this test runs the same math via 'cpu')"
    try:
        infdiff_kernels._dispatch.resolve_backend(backend, torch.device(device))
    except (RuntimeError, ValueError) as err:
        return str(err)
    return None


def backend_params(backends=BACKENDS):
    """pytest params (backend, device) for `backends`; those that cannot run here are skipped
    with the reason the dispatcher gives."""
    params = []
    for backend in backends:
        device = _device(backend)
        reason = _skip_reason(backend, device)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(backend, device, id=backend, marks=marks))
    return params


BACKEND_PARAMS = backend_params()
COMPILED_PARAMS = backend_params(BACKENDS[1:])  # for tests of the custom ops themselves
# The backends that run on this machine's CPU (no skips): for tests that compare backends
# with each other on one input (the same error from every backend, say).
CPU_BACKENDS = [b for b in BACKENDS if b in infdiff_kernels.available_backends("cpu")]


def names_argument(name):
    """A pytest.raises `match` for an error whose message starts with the whole argument
    name `name` (so "x" does not match a message about "x0" or a message that merely
    contains the letter)."""
    return rf"^{re.escape(name)}(?![\w])"


def random_points(batch, size, count, generator=None, device="cpu", dtype=torch.int64):
    """(B, N, 2) distinct random pixel coordinates per batch element."""
    h, w = size
    rows = [torch.randperm(h * w, generator=generator)[:count] for _ in range(batch)]
    linear = torch.stack(rows)
    return torch.stack((linear // w, linear % w), dim=-1).to(device=device, dtype=dtype)
