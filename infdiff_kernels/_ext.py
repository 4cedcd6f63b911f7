"""Loads the compiled extension infdiff_kernels._C, or says loudly why it is missing.

Without it the package still works through the "reference" and "triton" backends."""
import warnings

try:
    from . import _C as ext
except ImportError as _err:  # not built, or built against another torch
    ext = None
    load_error = str(_err)
    warnings.warn(
        "infdiff_kernels._C could not be loaded "
        f"({load_error}); the 'cpu' and 'cuda' backends are unavailable and backend=None "
        "falls back to 'reference' (CPU) or 'triton' (CUDA). Build it with "
        "`pip install --no-build-isolation -e .` (see README).",
        RuntimeWarning,
        stacklevel=2,
    )
else:
    load_error = None


def has_cpu_kernels() -> bool:
    return ext is not None


def has_cuda_kernels() -> bool:
    return ext is not None and bool(ext.with_cuda)
