"""Every input check of infdiff_kernels (docs/ops.md#errors), shared by every backend so
every backend fails alike. No other module raises on bad input.

Each raises ValueError (TypeError for a wrong dtype or type) naming the argument and what
was expected, before any kernel runs.

Two kinds of check live here. Checks of types, shapes and Python scalars run in the public
functions. Checks that read tensor values (coordinates on the grid, distinct points) run
inside a custom op (`checked_coords_op`, and the neighbour-map op of sparse_conv), so that
torch.compile keeps them in a graph without a host sync in the traced code; they still run
before the kernel that would index with those coordinates.

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
        raise TypeError(f"dtype must be torch.int32 or torch.int64 (point coordinates), got {dtype}")
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


def coords_tensor(coords):
    """coords (B, N, 2) int32/int64 with N in the int32 index range (shape and dtype only)."""
    tensor("coords", coords, 3)
    dtype_in("coords", coords, COORD_DTYPES)
    if coords.shape[-1] != 2:
        raise ValueError(f"coords must be (B, N, 2), got shape {tuple(coords.shape)}")
    index_count("coords", coords.shape[1], "the number of points N")
    return coords


def points(x, coords, size, x_name="x"):
    """x (B, N, C) float features on coords (B, N, 2) int of a grid of `size` (H, W).
    Returns (H, W). Shapes and dtypes only: the coordinates' values are checked by
    checked_coords_op (or the neighbour-map op) where the kernels read them."""
    tensor(x_name, x, 3)
    dtype_in(x_name, x, FLOAT_DTYPES)
    coords_tensor(coords)
    if coords.shape[:2] != x.shape[:2]:
        raise ValueError(
            f"coords (B, N) = {tuple(coords.shape[:2])} does not match {x_name} (B, N) = {tuple(x.shape[:2])}"
        )
    same_device(**{x_name: x, "coords": coords})
    return size2("size", size)


def coords_in_range(coords, size):
    h, w = size
    if coords.numel():
        # One reduction decides, the elementwise mask that names the point runs only on
        # failure: 0.09 ms instead of 0.23 for bench/knn.py's 4 x 16384 points (1 thread), and
        # one parallel region instead of seven for a thread without a core to hold up.
        lo, hi = torch.aminmax(coords.reshape(-1, 2), dim=0)
        (row_lo, col_lo), (row_hi, col_hi) = lo.tolist(), hi.tolist()
        if row_lo < 0 or col_lo < 0 or row_hi >= h or col_hi >= w:
            rows, cols = coords[..., 0], coords[..., 1]
            bad = (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)
            b, n = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"coords[{b}, {n}] = {coords[b, n].tolist()} lies outside the grid [0, {h}) x [0, {w}) given by size"
            )
    return size


def duplicate_error(coords, b, n):
    """The error for point n of batch element b of coords (B, N, 2), which repeats another."""
    return ValueError(
        f"coords holds duplicate points in batch element {b}: {coords[b, n].tolist()} "
        "appears more than once (pass check=False to skip this check)"
    )


def distinct(coords, size):
    """ValueError when a batch element of coords (B, N, 2) holds a pixel twice."""
    if coords.shape[1] < 2:
        return
    linear = coords[..., 0].long() * size[1] + coords[..., 1].long()
    # Points in strictly increasing row-major order (as the pipeline keeps them) are distinct:
    # one pass, 0.25 ms instead of the sort's 1.0 for bench/knn.py's 4 x 16384 points at 1
    # thread, a tenth of the op. Any other order takes the sort.
    if bool((linear[:, 1:] > linear[:, :-1]).all()):
        return
    linear = linear.sort(1).values
    same = linear[:, 1:] == linear[:, :-1]
    if bool(same.any()):
        b, n = (int(i) for i in same.nonzero()[0])
        v = int(linear[b, n])
        raise ValueError(
            f"coords holds duplicate points in batch element {b}: {[v // size[1], v % size[1]]} "
            "appears more than once (pass check=False to skip this check)"
        )


def every_point_kept(lookup, linear, index, coords):
    """lookup (B, H*W) after scattering point indices index (B, N) at pixels linear (B, N):
    a point whose pixel does not read back its own index shares that pixel with another."""
    lost = lookup.gather(1, linear) != index
    if bool(lost.any()):
        raise duplicate_error(coords, *(int(i) for i in lost.nonzero()[0]))


def neighbor_map_status(coords, size, off_grid, duplicate):
    """Turns the C++ neighbour-map pass's findings on coords (B, N, 2) int32 (flat index
    b * N + n of the first point off the grid / repeating another, or -1) into the errors the
    torch path raises."""
    if off_grid >= 0:
        coords_in_range(coords, size)  # raises, naming the point
    if duplicate >= 0:
        n = coords.shape[1]
        raise duplicate_error(coords, duplicate // n, duplicate % n)


@torch.library.custom_op("infdiff::checked_coords", mutates_args=())
def checked_coords_op(coords: torch.Tensor, H: int, W: int, distinct_points: bool) -> torch.Tensor:
    """coords (B, N, 2) as the contiguous int32 copy the kernels index with, after checking
    that every point lies on the (H, W) grid (and, with distinct_points, that no batch element
    repeats a pixel). A custom op so that torch.compile calls it instead of tracing the checks,
    which read tensor values."""
    coords_in_range(coords, (H, W))
    if distinct_points:
        distinct(coords, (H, W))
    return coords.to(torch.int32, memory_format=torch.contiguous_format, copy=True)


@checked_coords_op.register_fake
def _(coords, H, W, distinct_points):
    return coords.new_empty(coords.shape, dtype=torch.int32)


def kernel_size(value):
    """A window side K: an odd int >= 1 whose K^2 taps fit int32."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"kernel_size K must be an odd int >= 1, got {value!r}")
    index_count("kernel_size", value * value, "the number of kernel taps K^2")
    return value


def neighbor_map(value, size, k, coords, device):
    """A NeighborMap built for the points coords (B, N, 2) (shape, device), this size and
    this K. The map's own coordinates were checked when it was built; they are the ones the
    kernels read."""
    from .sparse_conv.neighbor_map import NeighborMap

    if not isinstance(value, NeighborMap):
        raise TypeError(f"neighbor_map must be a NeighborMap from build_neighbor_map, got {type(value).__name__}")
    if value.size != size or value.kernel_size != k or value.coords.shape != coords.shape or value.coords.device != device:
        raise ValueError(
            f"neighbor_map was built for size={value.size}, K={value.kernel_size}, coords "
            f"{tuple(value.coords.shape)} on {value.coords.device}; this call has size={size}, "
            f"K={k}, coords {tuple(coords.shape)} on {device}"
        )
    return value


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


def lattice_distance(size, out_size):
    """The k-NN search compares the integer lattice distance D (docs/ops.md#knn_to_grid) in
    int64: refuse sizes whose largest D does not fit."""
    from .knn.reference import max_lattice_distance

    if max_lattice_distance(size, out_size) > 2**63 - 1:
        raise ValueError(
            f"size={size} with out_size={out_size}: the integer lattice distance D of the k-NN search "
            "can exceed 2^63 - 1; use smaller or less coprime sizes"
        )


def knn_inputs(x, coords, size, out_size, k):
    """knn_to_grid's x (B, N, C) float and coords (B, N, 2), sizes and k: returns
    (size, out_size, k)."""
    size = points(x, coords, size)
    out_size = size2("out_size", out_size)
    k = k_neighbours(k, x.shape[1])
    lattice_distance(size, out_size)
    index_count("out_size", out_size[0] * out_size[1], "the number of output cells h * w")
    return size, out_size, k


def grid_points(y, coords, size):
    """grid_to_points' y (B, C, h, w) float grid and coords (B, N, 2): returns (H, W)."""
    tensor("y", y, 4)
    dtype_in("y", y, FLOAT_DTYPES)
    coords_tensor(coords)
    if coords.shape[0] != y.shape[0]:
        raise ValueError(f"coords has B = {coords.shape[0]} but y has B = {y.shape[0]}")
    if y.shape[2] < 1 or y.shape[3] < 1:
        raise ValueError(f"y must have h, w >= 1, got shape {tuple(y.shape)}")
    if max(y.shape[2:]) > MAX_SIDE:
        raise ValueError(f"y must have h, w <= 2^30 (int32 index arithmetic), got shape {tuple(y.shape)}")
    same_device(y=y, coords=coords)
    return size2("size", size)


def image_points(image, coords):
    """gather_points' image (B, C, H, W) and coords (B, N, 2): returns (H, W)."""
    tensor("image", image, 4)
    coords_tensor(coords)
    if coords.shape[0] != image.shape[0]:
        raise ValueError(f"coords must be (B, N, 2) with B = {image.shape[0]}, got shape {tuple(coords.shape)}")
    same_device(image=image, coords=coords)
    return tuple(image.shape[2:])


def resample_inputs(weight, scale, normalize):
    """resample_kernel's arguments: returns (K, scale)."""
    tensor("weight", weight, 3)
    dtype_in("weight", weight, FLOAT_DTYPES)
    _, k, k2 = weight.shape
    if k != k2 or k % 2 == 0:
        raise ValueError(f"weight must be (C, K, K) with K odd, got shape {tuple(weight.shape)}")
    scale = positive_finite("scale", scale)
    choice("normalize", normalize, NORMALIZE_MODES)
    r = k // 2
    span = 2 * r * scale + 2  # > K' (a float: no overflow error for a huge scale)
    index_count("scale", span * span, f"the resampled kernel's taps K'^2 (K = {k}, scale = {scale})")
    return k, scale


def batch_count(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"batch must be an int >= 0, got {value!r}")
    return value


def point_count(fraction, count, size):
    """random_coords' N from exactly one of fraction in (0, 1] and count in [1, H * W]."""
    h, w = size
    if (fraction is None) == (count is None):
        raise ValueError(f"fraction and count: give exactly one of them, got fraction={fraction!r}, count={count!r}")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 < fraction <= 1:
            raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
        return max(1, round(fraction * h * w))
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= h * w:
        raise ValueError(f"count must be an int in [1, H * W = {h * w}], got {count!r}")
    return count


# ---- the spectral ops (docs/ops.md#spectral-filters) ----


def boundary(value):
    return choice("boundary", value, BOUNDARY_MODES)


def greater_than_one(name, value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 1:
        raise ValueError(f"{name} must be a finite number > 1, got {value!r}")
    return float(value)


def grid_shape(shape):
    """A shape (..., H, W) of ints >= 0 with H, W >= 1, as a tuple."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a sequence (..., H, W) of ints, got {shape!r}") from None
    if len(dims) < 2 or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in dims) or min(dims[-2:]) < 1:
        raise ValueError(f"shape must be (..., H, W) with ints >= 0 and H, W >= 1, got {shape!r}")
    if max(dims[-2:]) > MAX_SIDE:
        raise ValueError(f"shape must have H, W <= 2^30 (int32 index arithmetic), got {shape!r}")
    return dims


def per_batch(name, value, x0):
    """a or s of q_sample: a Python float or a (B,) tensor on x0's device; returned as a (B,)
    tensor of x0's dtype."""
    b = x0.shape[0]
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.shape[0] != b:
            raise ValueError(f"{name} must be a float or a tensor of shape (B,) = ({b},), got shape {tuple(value.shape)}")
        dtype_in(name, value, FLOAT_DTYPES)
        same_device(x0=x0, **{name: value})
        return finite_values(name, value).to(x0.dtype).contiguous()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite float or a (B,) tensor, got {value!r}")
    return torch.full((b,), float(value), dtype=x0.dtype, device=x0.device)


def noise_dtype(dtype):
    """The dtype asked of a noise generator (gaussian_random_field, mollified_noise)."""
    if dtype not in SPECTRAL_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def q_sample_inputs(x0, noise):
    """x0 and noise (B, ..., H, W) of one shape, dtype and device."""
    spatial_grid("x0", x0)
    spatial_grid("noise", noise)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    if noise.dtype != x0.dtype:
        raise TypeError(f"noise must have the dtype of x0 ({x0.dtype}), got {noise.dtype}")
    same_device(x0=x0, noise=noise)
    if x0.dim() < 3:
        raise ValueError(f"x0 must be (B, ..., H, W) with at least 3 dimensions, got shape {tuple(x0.shape)}")
