"""torch.library custom ops of the k-NN lerp (search, gather, scatter, bilinear sampling and
its adjoint; fake kernels; autograd) and the public `knn_to_grid` / `grid_to_points`, which
validate once, pick the backend and call them.

knn_to_grid = knn_gather(x, *knn_search(coords)): the search runs once per call, and the
gather saves its (index, weights) so backward is the scatter over the same neighbours.
gather and scatter are each other's adjoint, so each one's autograd is the other."""
import torch

from .. import _dispatch, _ext, _validate
from . import reference


def _kernels(backend):
    if backend == "triton":
        from . import triton as triton_kernels

        return triton_kernels
    return _ext.ext  # "cpu" and "cuda": the extension dispatches on the tensors' device


def _search_kernels(device):
    """The compiled exact search for `device` when built, else None (the torch brute force)."""
    if device.type == "cpu" and _ext.has_cpu_kernels():
        return _ext.ext
    if device.type == "cuda" and _ext.has_cuda_kernels():
        return _ext.ext
    return None


@torch.library.custom_op("infdiff::knn_search", mutates_args=())
def knn_search_op(
    coords: torch.Tensor, H: int, W: int, h: int, w: int, k: int, double_weights: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(index (B, h*w, k) int32, weights (B, h*w, k) float64 or float32), SPEC section 2."""
    ext = _search_kernels(coords.device)
    if ext is not None:
        return ext.knn_search(coords, H, W, h, w, k, double_weights)
    index, weights = reference.knn_search(coords, (H, W), (h, w), k)
    return index.to(torch.int32), weights.to(torch.float64 if double_weights else torch.float32)


@knn_search_op.register_fake
def _(coords, H, W, h, w, k, double_weights):
    b = coords.shape[0]
    dtype = torch.float64 if double_weights else torch.float32
    return coords.new_empty((b, h * w, k), dtype=torch.int32), coords.new_empty((b, h * w, k), dtype=dtype)


@torch.library.custom_op("infdiff::knn_gather", mutates_args=())
def knn_gather_op(x: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, h: int, w: int, backend: str) -> torch.Tensor:
    return _kernels(backend).knn_gather(x, index, weights, h, w)


@knn_gather_op.register_fake
def _(x, index, weights, h, w, backend):
    return x.new_empty((x.shape[0], x.shape[2], h, w))


@torch.library.custom_op("infdiff::knn_scatter", mutates_args=())
def knn_scatter_op(grad_out: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, n: int, backend: str) -> torch.Tensor:
    return _kernels(backend).knn_scatter(grad_out, index, weights, n)


@knn_scatter_op.register_fake
def _(grad_out, index, weights, n, backend):
    return grad_out.new_empty((grad_out.shape[0], n, grad_out.shape[1]))


def _gather_backward(ctx, grad):
    index, weights = ctx.saved_tensors
    return knn_scatter_op(grad.contiguous(), index, weights, ctx.n, ctx.backend), None, None, None, None, None


def _gather_setup(ctx, inputs, output):
    x, index, weights, h, w, backend = inputs
    ctx.save_for_backward(index, weights)
    ctx.n, ctx.backend = x.shape[1], backend


def _scatter_setup(ctx, inputs, output):
    grad_out, index, weights, n, backend = inputs
    ctx.save_for_backward(index, weights)
    ctx.hw, ctx.backend = tuple(grad_out.shape[2:]), backend


def _scatter_backward(ctx, grad):
    index, weights = ctx.saved_tensors
    return knn_gather_op(grad.contiguous(), index, weights, *ctx.hw, ctx.backend), None, None, None, None


knn_gather_op.register_autograd(_gather_backward, setup_context=_gather_setup)
knn_scatter_op.register_autograd(_scatter_backward, setup_context=_scatter_setup)


@torch.library.custom_op("infdiff::grid_to_points", mutates_args=())
def grid_to_points_op(y: torch.Tensor, coords: torch.Tensor, H: int, W: int, backend: str) -> torch.Tensor:
    return _kernels(backend).grid_to_points(y, coords, H, W)


@grid_to_points_op.register_fake
def _(y, coords, H, W, backend):
    return y.new_empty((y.shape[0], coords.shape[1], y.shape[1]))


@torch.library.custom_op("infdiff::grid_to_points_backward", mutates_args=())
def grid_to_points_backward_op(
    grad_out: torch.Tensor, coords: torch.Tensor, H: int, W: int, h: int, w: int, backend: str
) -> torch.Tensor:
    return _kernels(backend).grid_to_points_backward(grad_out, coords, H, W, h, w)


@grid_to_points_backward_op.register_fake
def _(grad_out, coords, H, W, h, w, backend):
    return grad_out.new_empty((grad_out.shape[0], grad_out.shape[2], h, w))


def _sample_setup(ctx, inputs, output):
    y, coords, H, W, backend = inputs
    ctx.save_for_backward(coords)
    ctx.sizes, ctx.backend = (H, W, y.shape[2], y.shape[3]), backend


def _sample_backward(ctx, grad):
    (coords,) = ctx.saved_tensors
    return grid_to_points_backward_op(grad.contiguous(), coords, *ctx.sizes, ctx.backend), None, None, None, None


def _adjoint_setup(ctx, inputs, output):
    grad_out, coords, H, W, h, w, backend = inputs
    ctx.save_for_backward(coords)
    ctx.sizes, ctx.backend = (H, W), backend


def _adjoint_backward(ctx, grad):
    (coords,) = ctx.saved_tensors
    return grid_to_points_op(grad.contiguous(), coords, *ctx.sizes, ctx.backend), None, None, None, None, None, None


grid_to_points_op.register_autograd(_sample_backward, setup_context=_sample_setup)
grid_to_points_backward_op.register_autograd(_adjoint_backward, setup_context=_adjoint_setup)


check_distinct = _validate.distinct


def check_distance_range(size, out_size):
    if reference.max_lattice_distance(size, out_size) > 2**63 - 1:
        raise ValueError(
            f"size={size} with out_size={out_size}: the integer lattice distance D of SPEC section 2 "
            "can exceed 2^63 - 1; use smaller or less coprime sizes"
        )


def knn_to_grid(x, coords, size, out_size, k=3, *, backend=None, check=True):
    """Features x (B, N, C) on the points coords (B, N, 2) of an (H, W) lattice, moved onto an
    (h, w) grid (B, C, h, w) by inverse-square-distance weighting of each cell's k nearest
    points, found exactly in the (D, index) order of SPEC section 2.

    check=False skips the duplicate-point check. Gradients flow to x. Backends "cpu" and
    "cuda" search with the compiled ring search; "triton" gathers/scatters in Triton and uses
    the compiled search for the device when built, else the torch brute force."""
    size = _validate.points(x, coords, size)
    out_size = _validate.size2("out_size", out_size)
    k = _validate.k_neighbours(k, x.shape[1])
    check_distance_range(size, out_size)
    _validate.index_count("out_size", out_size[0] * out_size[1], "the number of output cells h * w")
    backend = _dispatch.resolve_backend(backend, x.device)
    if check:
        check_distinct(coords, size)
    if backend == "reference":
        return reference.knn_to_grid(x, coords, size, out_size, k)
    index, weights = knn_search_op(
        coords.to(torch.int32).contiguous(), *size, *out_size, k, x.dtype == torch.float64
    )
    return knn_gather_op(x.contiguous(), index, weights, *out_size, backend)


def grid_to_points(y, coords, size, *, backend=None):
    """Bilinear samples (B, N, C) of the grid y (B, C, h, w) at the points coords (B, N, 2)
    of an (H, W) lattice: F.grid_sample(border, align_corners=False) at their centres.
    Gradients flow to y."""
    _validate.tensor("y", y, 4)
    _validate.dtype_in("y", y, _validate.FLOAT_DTYPES)
    _validate.tensor("coords", coords, 3)
    _validate.dtype_in("coords", coords, _validate.COORD_DTYPES)
    if coords.shape[-1] != 2:
        raise ValueError(f"coords must be (B, N, 2), got shape {tuple(coords.shape)}")
    if coords.shape[0] != y.shape[0]:
        raise ValueError(f"coords has B = {coords.shape[0]} but y has B = {y.shape[0]}")
    if y.shape[2] < 1 or y.shape[3] < 1:
        raise ValueError(f"y must have h, w >= 1, got shape {tuple(y.shape)}")
    _validate.same_device(y=y, coords=coords)
    _validate.index_count("coords", coords.shape[1], "the number of points N")
    if max(y.shape[2:]) > _validate.MAX_SIDE:
        raise ValueError(f"y must have h, w <= 2^30 (int32 index arithmetic), got shape {tuple(y.shape)}")
    size = _validate.coords_in_range(coords, _validate.size2("size", size))
    backend = _dispatch.resolve_backend(backend, y.device)
    if backend == "reference":
        return reference.grid_to_points(y, coords, size)
    return grid_to_points_op(y.contiguous(), coords.to(torch.int32).contiguous(), *size, backend)
