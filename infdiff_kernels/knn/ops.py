"""torch.library custom ops of the k-NN lerp (search, gather, scatter, bilinear sampling and
its adjoint; fake kernels; autograd) and the public `knn_to_grid` / `grid_to_points`, which
validate once (_validate), pick the backend (_dispatch) and call them.

knn_to_grid = knn_gather(x, *knn_search(coords)): the search runs once per call, and the
gather saves its (index, weights) so backward is the scatter over the same neighbours.
gather and scatter are each other's adjoint, so each one's autograd is the other."""
import torch

from .. import _dispatch, _validate
from . import reference


@torch.library.custom_op("infdiff::knn_search", mutates_args=())
def knn_search_op(
    coords: torch.Tensor, H: int, W: int, h: int, w: int, k: int, double_weights: bool, search: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(index (B, h*w, k) int32, weights (B, h*w, k) float64 or float32) of the exact search
    of docs/ops.md#knn_to_grid, run by `search` ("cpu" / "cuda": compiled; "torch": the
    brute force of reference.py), as _dispatch.knn_search names it for the backend."""
    if search == "torch":
        index, weights = reference.knn_search(coords, (H, W), (h, w), k)
        return index.to(torch.int32), weights.to(torch.float64 if double_weights else torch.float32)
    return _dispatch.kernels("knn", search).knn_search(coords, H, W, h, w, k, double_weights)


@knn_search_op.register_fake
def _(coords, H, W, h, w, k, double_weights, search):
    b = coords.shape[0]
    dtype = torch.float64 if double_weights else torch.float32
    return coords.new_empty((b, h * w, k), dtype=torch.int32), coords.new_empty((b, h * w, k), dtype=dtype)


@torch.library.custom_op("infdiff::knn_gather", mutates_args=())
def knn_gather_op(x: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, h: int, w: int, backend: str) -> torch.Tensor:
    return _dispatch.kernels("knn", backend).knn_gather(x, index, weights, h, w)


@knn_gather_op.register_fake
def _(x, index, weights, h, w, backend):
    return x.new_empty((x.shape[0], x.shape[2], h, w))


@torch.library.custom_op("infdiff::knn_scatter", mutates_args=())
def knn_scatter_op(grad_out: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, n: int, backend: str) -> torch.Tensor:
    return _dispatch.kernels("knn", backend).knn_scatter(grad_out, index, weights, n)


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
    return _dispatch.kernels("knn", backend).grid_to_points(y, coords, H, W)


@grid_to_points_op.register_fake
def _(y, coords, H, W, backend):
    return y.new_empty((y.shape[0], coords.shape[1], y.shape[1]))


@torch.library.custom_op("infdiff::grid_to_points_backward", mutates_args=())
def grid_to_points_backward_op(
    grad_out: torch.Tensor, coords: torch.Tensor, H: int, W: int, h: int, w: int, backend: str
) -> torch.Tensor:
    return _dispatch.kernels("knn", backend).grid_to_points_backward(grad_out, coords, H, W, h, w)


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


def knn_to_grid(x, coords, size, out_size, k=3, *, backend=None, check=True):
    """Features x (B, N, C) on the points coords (B, N, 2) of an (H, W) lattice, moved onto an
    (h, w) grid (B, C, h, w) by inverse-square-distance weighting of each cell's k nearest
    points, found exactly in (lattice distance, point index) order.

    check=False skips the duplicate-point check. Gradients flow to x. The gather runs on
    `backend`; the search runs as docs/ops.md#backends lists: compiled for "cpu" and "cuda",
    the torch brute force for "reference" and "triton".
    Contract: docs/ops.md#knn_to_grid"""
    size, out_size, k = _validate.knn_inputs(x, coords, size, out_size, k)
    backend = _dispatch.resolve_backend(backend, x.device)
    coords32 = _validate.checked_coords_op(coords, *size, check)
    if backend == "reference":
        return reference.knn_to_grid(x, coords32, size, out_size, k)
    search = _dispatch.knn_search(backend)
    index, weights = knn_search_op(coords32, *size, *out_size, k, x.dtype == torch.float64, search)
    return knn_gather_op(x.contiguous(), index, weights, *out_size, backend)


def grid_to_points(y, coords, size, *, backend=None):
    """Bilinear samples (B, N, C) of the grid y (B, C, h, w) at the points coords (B, N, 2)
    of an (H, W) lattice: F.grid_sample(border, align_corners=False) at their centres.
    Gradients flow to y.
    Contract: docs/ops.md#grid_to_points"""
    size = _validate.grid_points(y, coords, size)
    backend = _dispatch.resolve_backend(backend, y.device)
    coords32 = _validate.checked_coords_op(coords, *size, False)
    if backend == "reference":
        return reference.grid_to_points(y, coords32, size)
    return grid_to_points_op(y.contiguous(), coords32, *size, backend)
