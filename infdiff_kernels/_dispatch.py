"""Backend choice, done once per call before any kernel runs, and the table of which
implementation runs each part of an op for each backend (docs/ops.md#backends)."""
import importlib
import importlib.util
import os

import torch

from . import _ext

BACKENDS = ("reference", "cpu", "triton", "cuda")


def triton_unavailable_reason(device: torch.device):
    """Why backend="triton" cannot run on `device`, or None when it can."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'infdiff[triton]')"
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        return "Triton runs CPU tensors only under the interpreter: set TRITON_INTERPRET=1 before importing triton"
    if device.type not in ("cpu", "cuda"):
        return f"Triton does not run on device type {device.type!r}"
    return None


def _unavailable_reason(backend: str, device: torch.device):
    if backend == "reference":
        return None
    if backend == "cpu":
        if device.type != "cpu":
            return f"the 'cpu' backend runs CPU tensors, got {device.type} tensors"
        if not _ext.has_cpu_kernels():
            return f"infdiff_kernels._C is not built ({_ext.load_error})"
        return None
    if backend == "cuda":
        if device.type != "cuda":
            return f"the 'cuda' backend runs CUDA tensors, got {device.type} tensors"
        if not _ext.has_cuda_kernels():
            return "infdiff_kernels._C was built without CUDA kernels (no CUDA torch or nvcc at build time)"
        return None
    return triton_unavailable_reason(device)


def resolve_backend(backend, device: torch.device) -> str:
    """The backend to run on `device`: `backend` itself when it can run there, else an error;
    for None, the fastest that can: cuda > triton > reference on GPUs, cpu > reference on CPUs."""
    if backend is None:
        order = ("cuda", "triton") if device.type == "cuda" else ("cpu",)
        for candidate in order:
            if _unavailable_reason(candidate, device) is None:
                return candidate
        return "reference"
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be None or one of {BACKENDS}, got {backend!r}")
    reason = _unavailable_reason(backend, device)
    if reason is not None:
        raise RuntimeError(f"backend={backend!r} cannot run here: {reason}")
    return backend


def available_backends(device="cpu"):
    """The backends that can run on `device` in this process.
    Contract: docs/ops.md#backends"""
    device = torch.device(device)
    return [b for b in BACKENDS if _unavailable_reason(b, device) is None]


# Parts of an op that not every backend implements itself. Each backend's choice for each part
# is fixed here and documented in docs/ops.md#backends; nothing is substituted at run time
# because of what happens to be built.
#   neighbour map: "cpu" builds it in one C++ pass; the others build it with torch ops on the
#     tensors' device (a scatter and a summed-area table: no Triton or CUDA kernel exists).
#   k-NN search: "cpu" and "cuda" run the compiled exact ring search; "reference" and "triton"
#     run the torch brute force of knn/reference.py on the tensors' device.
NEIGHBOR_MAP_BUILDERS = {"reference": "torch", "cpu": "cpu", "triton": "torch", "cuda": "torch"}
KNN_SEARCHES = {"reference": "torch", "cpu": "cpu", "triton": "torch", "cuda": "cuda"}


def neighbor_map_builder(backend: str) -> str:
    """Who builds the neighbour map for a resolved `backend`: "cpu" (C++) or "torch"."""
    return NEIGHBOR_MAP_BUILDERS[backend]


def knn_search(backend: str) -> str:
    """Who runs the k-NN search for a resolved `backend`: "cpu", "cuda" (compiled) or "torch"."""
    return KNN_SEARCHES[backend]


def kernels(family: str, backend: str):
    """The module or extension holding `family`'s kernels ("sparse_conv", "knn", "spectral")
    for a resolved non-reference `backend` (or a part name "cpu" / "cuda"): the extension
    dispatches "cpu" and "cuda" on the tensors' device itself."""
    if backend == "triton":
        return importlib.import_module(f"infdiff_kernels.{family}.triton")
    if backend in ("cpu", "cuda"):
        return _ext.ext
    raise ValueError(f"no compiled kernels of {family} for backend {backend!r}")
