"""torch.library custom ops of the sparse depthwise convolution (forward, backward, fake
kernels, autograd) and the public `sparse_depthwise_conv`, which validates once, picks
the backend and calls them."""
from typing import Optional

import torch

from .. import _dispatch, _validate
from . import reference
from .neighbor_map import build_neighbor_map
from .reference import NORMALIZE_CODES


@torch.library.custom_op("infdiff::sparse_depthwise_conv", mutates_args=())
def sparse_depthwise_conv_op(
    x: torch.Tensor,
    coords: torch.Tensor,
    lookup: torch.Tensor,
    counts: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    normalize: int,
    backend: str,
) -> torch.Tensor:
    return _dispatch.kernels("sparse_conv", backend).sparse_conv_forward(x, coords, lookup, counts, weight, bias, normalize)


@sparse_depthwise_conv_op.register_fake
def _(x, coords, lookup, counts, weight, bias, normalize, backend):
    return torch.empty_like(x)


@torch.library.custom_op("infdiff::sparse_depthwise_conv_backward", mutates_args=())
def sparse_depthwise_conv_backward_op(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    coords: torch.Tensor,
    lookup: torch.Tensor,
    counts: torch.Tensor,
    weight: torch.Tensor,
    normalize: int,
    backend: str,
    need_grad_x: bool,
    need_grad_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x, grad_weight); an output not asked for is an empty tensor."""
    gx, gw = _dispatch.kernels("sparse_conv", backend).sparse_conv_backward(
        grad_out, x, coords, lookup, counts, weight, normalize, need_grad_x, need_grad_weight
    )
    return (gx if gx is not None else x.new_empty(0)), (gw if gw is not None else weight.new_empty(0))


@sparse_depthwise_conv_backward_op.register_fake
def _(grad_out, x, coords, lookup, counts, weight, normalize, backend, need_grad_x, need_grad_weight):
    gx = torch.empty_like(x) if need_grad_x else x.new_empty(0)
    gw = torch.empty_like(weight) if need_grad_weight else weight.new_empty(0)
    return gx, gw


def _setup_context(ctx, inputs, output):
    x, coords, lookup, counts, weight, bias, normalize, backend = inputs
    ctx.save_for_backward(x, coords, lookup, counts, weight)
    ctx.normalize, ctx.backend, ctx.has_bias = normalize, backend, bias is not None


def _backward(ctx, grad_out):
    x, coords, lookup, counts, weight = ctx.saved_tensors
    need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[4]
    gx = gw = gb = None
    if need_x or need_w:
        gx, gw = sparse_depthwise_conv_backward_op(
            grad_out.contiguous(), x, coords, lookup, counts, weight, ctx.normalize, ctx.backend, need_x, need_w
        )
    if ctx.has_bias and ctx.needs_input_grad[5]:
        gb = grad_out.sum((0, 1), dtype=torch.float64 if x.dtype == torch.float64 else torch.float32).to(x.dtype)
    return (gx if need_x else None), None, None, None, (gw if need_w else None), gb, None, None


sparse_depthwise_conv_op.register_autograd(_backward, setup_context=_setup_context)


def sparse_depthwise_conv(
    x, coords, size, weight, bias=None, normalize="partial", *, backend=None, check=True, neighbor_map=None
):
    """Depthwise convolution of the point features x (B, N, C) on the points coords (B, N, 2)
    of an (H, W) grid with weight (C, K, K), normalised by each window's point count.
    Returns (B, N, C) on the same points.

    neighbor_map: a NeighborMap of (coords, size, K) from `build_neighbor_map`, to share
    among all layers on the same points; built here (by this backend's builder) when None.
    When given, the kernels read the map's coordinates, checked when it was built, and coords
    must only match them in shape and device. check=False skips the duplicate-point check.
    weight and bias are cast to x's dtype (as under autocast).
    Contract: docs/ops.md#sparse_depthwise_conv"""
    size = _validate.points(x, coords, size)
    k = _validate.kernel(weight, bias, x.shape[-1])
    _validate.choice("normalize", normalize, _validate.NORMALIZE_MODES)
    _validate.same_device(x=x, weight=weight, bias=bias)
    backend = _dispatch.resolve_backend(backend, x.device)
    if neighbor_map is None:
        neighbor_map = build_neighbor_map(coords, size, k, check=check, backend=backend)
    else:
        _validate.neighbor_map(neighbor_map, size, k, coords, x.device)
    weight = weight.to(x.dtype)
    bias = bias.to(x.dtype) if bias is not None else None
    if backend == "reference":
        return reference.sparse_depthwise_conv(x, neighbor_map.coords, size, weight, bias, normalize)
    return sparse_depthwise_conv_op(
        x.contiguous(),
        neighbor_map.coords,
        neighbor_map.lookup,
        neighbor_map.counts,
        weight.contiguous(),
        bias.contiguous() if bias is not None else None,
        NORMALIZE_CODES[normalize],
        backend,
    )
