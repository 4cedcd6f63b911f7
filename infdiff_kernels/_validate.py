"""The checks of SPEC "Errors", shared by every backend so every backend fails alike.

Each raises ValueError (TypeError for a wrong dtype or type) naming the argument and what
was expected, before any kernel runs."""
import math
from numbers import Real

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SPECTRAL_DTYPES = (torch.float32, torch.float64)
COORD_DTYPES = (torch.int32, torch.int64)
NORMALIZE_MODES = ("partial", "mean", "none")
BOUNDARY_MODES = ("reflect", "periodic")


def tensor(name, value, ndim=None):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (or a DLPack array), got {type(value).__name__}")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    return value


def dtype_in(name, value, allowed):
    if value.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise TypeError(f"{name} must have dtype in ({names}), got {str(value.dtype).replace('torch.', '')}")


def same_device(**tensors):
    named = [(n, t) for n, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}: tensors must share a device")


def size2(name, value, minimum=1):
    """A (H, W) pair of positive ints."""
    try:
        h, w = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (H, W) of ints, got {value!r}") from None
    out = []
    for v in (h, w):
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{name} must be a pair (H, W) of ints >= {minimum}, got {value!r}")
        out.append(int(v))
    return tuple(out)


def positive_finite(name, value, allow_zero=False):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def points(x, coords, size, x_name="x"):
    """x (B, N, C) float features on coords (B, N, 2) int of a grid of `size` (H, W).
    Returns (H, W)."""
    tensor(x_name, x, 3)
    dtype_in(x_name, x, FLOAT_DTYPES)
    tensor("coords", coords, 3)
    dtype_in("coords", coords, COORD_DTYPES)
    if coords.shape[-1] != 2:
        raise ValueError(f"coords must be (B, N, 2), got shape {tuple(coords.shape)}")
    if coords.shape[:2] != x.shape[:2]:
        raise ValueError(
            f"coords (B, N) = {tuple(coords.shape[:2])} does not match {x_name} (B, N) = {tuple(x.shape[:2])}"
        )
    same_device(**{x_name: x, "coords": coords})
    return coords_in_range(coords, size2("size", size))


def coords_in_range(coords, size):
    h, w = size
    if coords.numel():
        rows, cols = coords[..., 0], coords[..., 1]
        bad = (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)
        if bool(bad.any()):
            b, n = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"coords[{b}, {n}] = {coords[b, n].tolist()} lies outside the grid [0, {h}) x [0, {w}) given by size"
            )
    return size


def kernel(weight, bias, channels):
    """weight (C, K, K) with K odd, bias (C,) or None, for features with `channels` channels."""
    tensor("weight", weight, 3)
    dtype_in("weight", weight, FLOAT_DTYPES)
    c, kh, kw = weight.shape
    if c != channels or kh != kw:
        raise ValueError(f"weight must be (C, K, K) = ({channels}, K, K), got shape {tuple(weight.shape)}")
    if kh % 2 == 0:
        raise ValueError(f"weight's kernel size K must be odd, got K = {kh}")
    if bias is not None:
        tensor("bias", bias, 1)
        dtype_in("bias", bias, FLOAT_DTYPES)
        if bias.shape[0] != channels:
            raise ValueError(f"bias must be (C,) = ({channels},), got shape {tuple(bias.shape)}")
    return kh


def k_neighbours(k, n):
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"k must be an int, got {k!r}")
    if k < 1 or k > n:
        raise ValueError(f"k must satisfy 1 <= k <= N = {n}, got k = {k}")
    return k
