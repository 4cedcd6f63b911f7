"""The checks of SPEC "Errors", shared by every backend so every backend fails alike.

Each raises ValueError (TypeError for a wrong dtype or type) naming the argument and what
was expected, before any kernel runs.

Index limits: the kernels hold point indices, coordinates, grid sides and kernel taps in
int32 (the C++ entry points check the same again before they index), so N, K^2 and the
cell count h * w of a k-NN output grid must stay below 2^31 and a grid side at most 2^30
(room for a window offset or a padded map beyond the last row). Sizes are checked before
any value is read, so a huge zero-stride (expanded) tensor is refused without allocating."""
import math
from numbers import Real

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SPECTRAL_DTYPES = (torch.float32, torch.float64)
COORD_DTYPES = (torch.int32, torch.int64)
NORMALIZE_MODES = ("partial", "mean", "none")
BOUNDARY_MODES = ("reflect", "periodic")
INT32_MAX = 2**31 - 1
MAX_SIDE = 2**30
# A Gaussian wider than this (a million domain widths) filters exactly like this one: every
# non-constant mode's gain exp(-pi^2 sigma^2 k^2 / 2) already underflows to 0 in float64.
SIGMA_MAX = 1e6


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
        if v > MAX_SIDE:
            raise ValueError(f"{name} must be a pair (H, W) of ints <= 2^30 (int32 index arithmetic), got {value!r}")
        out.append(int(v))
    return tuple(out)


def index_count(name, count, what):
    """A count that the kernels index with int32 (points N, kernel taps K^2, grid cells)."""
    if count > INT32_MAX:
        raise ValueError(f"{name}: {what} = {count} exceeds 2^31 - 1, the int32 index range of the kernels")
    return count


def sigma(value, name="sigma"):
    """A blur width: a finite number >= 0 (values above SIGMA_MAX act exactly as SIGMA_MAX)."""
    return min(positive_finite(name, value, allow_zero=True), SIGMA_MAX)


def finite_values(name, t):
    """A float tensor whose entries must all be finite (e.g. per-example coefficients)."""
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must hold finite values, got {t.tolist() if t.numel() <= 8 else 'NaN/Inf entries'}")
    return t


def spatial_grid(name, u):
    """u (..., H, W) float32/float64 with H, W >= 1 (the spectral ops' input)."""
    tensor(name, u)
    if u.dim() < 2:
        raise ValueError(f"{name} must be a (..., H, W) grid with at least 2 dimensions, got shape {tuple(u.shape)}")
    dtype_in(name, u, SPECTRAL_DTYPES)
    if u.shape[-2] < 1 or u.shape[-1] < 1:
        raise ValueError(f"{name} must have H, W >= 1, got shape {tuple(u.shape)}")
    if max(u.shape[-2:]) > MAX_SIDE:
        raise ValueError(f"{name} must have H, W <= 2^30 (int32 index arithmetic), got shape {tuple(u.shape)}")
    return u


def grf_parameters(alpha, tau, dtype):
    """alpha > 1 and tau > 0 (checked by the caller) whose spectrum is representable in
    `dtype`: the constant mode has standard deviation 1 / tau, the others decay from there."""
    limit = 0.5 * math.log(torch.finfo(dtype).max) - 1.0  # |ln tau| bound: 1 / tau and tau^2 stay finite
    if alpha > 1e30:
        raise ValueError(f"alpha must be <= 1e30 (a kernel parameter in {str(dtype).replace('torch.', '')}), got {alpha!r}")
    if abs(math.log(tau)) > limit:
        raise ValueError(
            f"tau = {tau!r} is outside [{math.exp(-limit):.3g}, {math.exp(limit):.3g}]: the field's spectrum "
            f"(constant-mode standard deviation 1 / tau) is not representable in {str(dtype).replace('torch.', '')}"
        )


def coord_dtype(dtype):
    """The dtype asked of a coordinate constructor (random_coords, grid_coords)."""
    if dtype not in COORD_DTYPES:
        raise TypeError(f"dtype must be torch.int32 or torch.int64 (SPEC coordinates), got {dtype}")
    return dtype


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
    index_count("coords", coords.shape[1], "the number of points N")
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


def distinct(coords, size):
    """ValueError when a batch element of coords (B, N, 2) holds a pixel twice."""
    if coords.shape[1] < 2:
        return
    linear = (coords[..., 0].long() * size[1] + coords[..., 1].long()).sort(1).values
    same = linear[:, 1:] == linear[:, :-1]
    if bool(same.any()):
        b, n = (int(i) for i in same.nonzero()[0])
        v = int(linear[b, n])
        raise ValueError(
            f"coords holds duplicate points in batch element {b}: {[v // size[1], v % size[1]]} "
            "appears more than once (pass check=False to skip this check)"
        )


def kernel(weight, bias, channels):
    """weight (C, K, K) with K odd, bias (C,) or None, for features with `channels` channels."""
    tensor("weight", weight, 3)
    dtype_in("weight", weight, FLOAT_DTYPES)
    c, kh, kw = weight.shape
    if c != channels or kh != kw:
        raise ValueError(f"weight must be (C, K, K) = ({channels}, K, K), got shape {tuple(weight.shape)}")
    if kh % 2 == 0:
        raise ValueError(f"weight's kernel size K must be odd, got K = {kh}")
    index_count("weight", kh * kh, "the number of kernel taps K^2")
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
