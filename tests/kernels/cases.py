"""Helpers shared by the kernel tests: which backends can run here and random point sets."""
import pytest
import torch

import infdiff_kernels

CUDA = torch.cuda.is_available()


def backend_params(backends=("cpu", "triton", "cuda")):
    """pytest params (backend, device) for every non-reference backend; those that cannot run
    here are skipped with the reason the dispatcher gives."""
    params = []
    for backend in backends:
        device = "cuda" if backend == "cuda" or (backend == "triton" and CUDA) else "cpu"
        marks = []
        if backend not in infdiff_kernels.available_backends(device):
            try:
                infdiff_kernels._dispatch.resolve_backend(backend, torch.device(device))
                reason = "unavailable"
            except (RuntimeError, ValueError) as err:
                reason = str(err)
            if backend == "cuda" and not CUDA:
                reason = "no CUDA device on this machine (the CPU twin of this test runs the same math via 'cpu')"
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(backend, device, id=f"{backend}", marks=marks))
    return params


def random_points(batch, size, count, generator=None, device="cpu", dtype=torch.int64):
    """(B, N, 2) distinct random pixel coordinates per batch element."""
    h, w = size
    rows = [torch.randperm(h * w, generator=generator)[:count] for _ in range(batch)]
    linear = torch.stack(rows)
    return torch.stack((linear // w, linear % w), dim=-1).to(device=device, dtype=dtype)
