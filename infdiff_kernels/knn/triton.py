"""Triton kernels of the k-NN lerp (docs/ops.md#knn_to_grid): the weighted gather onto the grid, its
adjoint scatter, bilinear sampling at the points and its adjoint.

The exact neighbour search is not done here: `ops.knn_search_op` runs the compiled ring
search of the C++/CUDA extension for the tensors' device when it is built, and otherwise the
torch brute force of `reference.knn_search`. The scatters use atomic adds into an
accumulation-dtype buffer (float32, or float64 for float64 inputs), so their summation order
is not fixed on GPUs.

Every pointer offset that involves a program id or a size is summed in int64 before it
touches a pointer (`ptr + (a + b)`, b int64), so no offset wraps past 2^31 elements;
.ci/triton_compile.py checks this in the compiled TTIR."""
import os

import torch
import triton
import triton.language as tl

_MAX_BLOCK_C = 64

# Rows (cells or points) per program and warps, tuned per channel count (and dtype, which
# the autotuner adds to every key) on a GPU. The interpreter cannot time anything, so under
# TRITON_INTERPRET it keeps the first config and CPU tests do not benchmark.
_ROW_CONFIGS = [
    triton.Config({"BLOCK_ROWS": 32}, num_warps=4),
    triton.Config({"BLOCK_ROWS": 64}, num_warps=4),
    triton.Config({"BLOCK_ROWS": 128}, num_warps=8),
]
# The sampler holds four taps and their int64 offsets per element: at 128 x 32 (8 warps,
# sm_80) or 64 x 32 (4 warps, sm_90) ptxas spills, so its tiles stay at 16 elements a thread.
_SAMPLE_CONFIGS = [
    triton.Config({"BLOCK_ROWS": 32}, num_warps=4),
    triton.Config({"BLOCK_ROWS": 64}, num_warps=8),
    triton.Config({"BLOCK_ROWS": 16}, num_warps=2),
]
if os.environ.get("TRITON_INTERPRET", "0") == "1":
    _ROW_CONFIGS, _SAMPLE_CONFIGS = _ROW_CONFIGS[:1], _SAMPLE_CONFIGS[:1]


def _block_c(channels):
    return min(_MAX_BLOCK_C, triton.next_power_of_2(max(1, channels)))


def _acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


@triton.jit
def _row_tile(rows, BLOCK: tl.constexpr):
    """(batch index as int64, row indices) of this program. Batch and row blocks share grid
    axis 0 (up to 2^31 - 1 programs) because axes 1 and 2 stop at 65,535, about 2.1 M rows."""
    row_blocks = tl.cdiv(rows, BLOCK)
    pid = tl.program_id(0)
    return (pid // row_blocks).to(tl.int64), (pid % row_blocks) * BLOCK + tl.arange(0, BLOCK)


@triton.autotune(configs=_ROW_CONFIGS, key=["C", "k"])
@triton.jit
def _gather_kernel(x_ptr, index_ptr, weights_ptr, out_ptr, N, C, cells, k,
                   BLOCK_ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    b, g = _row_tile(cells, BLOCK_ROWS)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    gm, cm = g < cells, c < C
    mask = gm[:, None] & cm[None, :]
    acc = tl.zeros((BLOCK_ROWS, BLOCK_C), dtype=weights_ptr.dtype.element_ty)
    base = (b * cells + g) * k
    for s in range(k):
        p = tl.load(index_ptr + (base + s), mask=gm, other=0).to(tl.int64)
        wt = tl.load(weights_ptr + (base + s), mask=gm, other=0)
        xv = tl.load(x_ptr + ((b * N + p)[:, None] * C + c[None, :]), mask=mask, other=0)
        acc += wt[:, None] * xv.to(acc.dtype)
    tl.store(out_ptr + ((b * C + c[None, :]) * cells + g[:, None]),
             acc.to(out_ptr.dtype.element_ty), mask=mask)


# Benchmark runs add into acc too: reset_to_zero clears it before each and before the real run.
@triton.autotune(configs=_ROW_CONFIGS, key=["C", "k"], reset_to_zero=["acc_ptr"])
@triton.jit
def _scatter_kernel(grad_ptr, index_ptr, weights_ptr, acc_ptr, N, C, cells, k,
                    BLOCK_ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    b, g = _row_tile(cells, BLOCK_ROWS)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    gm, cm = g < cells, c < C
    mask = gm[:, None] & cm[None, :]
    go = tl.load(grad_ptr + ((b * C + c[None, :]) * cells + g[:, None]), mask=mask, other=0)
    go = go.to(acc_ptr.dtype.element_ty)
    base = (b * cells + g) * k
    for s in range(k):
        p = tl.load(index_ptr + (base + s), mask=gm, other=0).to(tl.int64)
        wt = tl.load(weights_ptr + (base + s), mask=gm, other=0)
        tl.atomic_add(acc_ptr + ((b * N + p)[:, None] * C + c[None, :]), wt[:, None] * go, mask=mask)


@triton.jit
def _taps(coords_ptr, offs, m, in_size, out_size, dtype: tl.constexpr):
    """grid_sample(border, align_corners=False) taps of lattice index coords[offs]."""
    q = tl.load(coords_ptr + offs, mask=m, other=0).to(dtype)
    src = (2 * q + 1) * out_size / (2.0 * in_size) - 0.5
    # zeros + (out_size - 1), not (out_size - 1).to(dtype): a size of 1 arrives as the
    # constexpr 1 on a GPU, which has no .to, and the sum takes src's dtype either way.
    src = tl.minimum(tl.maximum(src, 0.0), tl.zeros_like(src) + (out_size - 1))
    lo = src.to(tl.int32)  # src >= 0: truncation is floor
    frac = src - lo.to(dtype)
    hi = tl.minimum(lo + 1, out_size - 1)
    return lo, hi, frac


# The adjoint (grad_mode) accumulates into out with atomics: reset_to_zero as for the scatter.
@triton.autotune(configs=_SAMPLE_CONFIGS, key=["C", "grad_mode"], reset_to_zero=["out_ptr"])
@triton.jit
def _sample_kernel(y_ptr, coords_ptr, out_ptr, N, C, H, W, h, w, grad_mode: tl.constexpr,
                   ACC: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """grad_mode=False: out (B, N, C) = samples of y (B, C, h, w). grad_mode=True: the adjoint,
    y_ptr is grad_out (B, N, C) and out_ptr the (B, C, h, w) accumulator (atomic adds)."""
    b, n = _row_tile(N, BLOCK_ROWS)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    nm, cm = n < N, c < C
    mask = nm[:, None] & cm[None, :]
    y0, y1, fy = _taps(coords_ptr, (b * N + n) * 2, nm, H, h, ACC)
    x0, x1, fx = _taps(coords_ptr, (b * N + n) * 2 + 1, nm, W, w, ACC)
    plane = (b * C + c[None, :]) * h * w
    o00 = plane + (y0 * w + x0)[:, None]
    o01 = plane + (y0 * w + x1)[:, None]
    o10 = plane + (y1 * w + x0)[:, None]
    o11 = plane + (y1 * w + x1)[:, None]
    w00 = ((1 - fy) * (1 - fx))[:, None]
    w01 = ((1 - fy) * fx)[:, None]
    w10 = (fy * (1 - fx))[:, None]
    w11 = (fy * fx)[:, None]
    pts = (b * N + n)[:, None] * C + c[None, :]
    if grad_mode:
        go = tl.load(y_ptr + pts, mask=mask, other=0).to(ACC)
        tl.atomic_add(out_ptr + o00, w00 * go, mask=mask)
        tl.atomic_add(out_ptr + o01, w01 * go, mask=mask)
        tl.atomic_add(out_ptr + o10, w10 * go, mask=mask)
        tl.atomic_add(out_ptr + o11, w11 * go, mask=mask)
    else:
        v = w00 * tl.load(y_ptr + o00, mask=mask, other=0).to(ACC)
        v += w01 * tl.load(y_ptr + o01, mask=mask, other=0).to(ACC)
        v += w10 * tl.load(y_ptr + o10, mask=mask, other=0).to(ACC)
        v += w11 * tl.load(y_ptr + o11, mask=mask, other=0).to(ACC)
        tl.store(out_ptr + pts, v.to(out_ptr.dtype.element_ty), mask=mask)


def _grid(batch, rows, channels):
    """(grid of the autotuned BLOCK_ROWS, BLOCK_C): axis 0 is (batch, row block) as _row_tile
    reads it, axis 1 channels."""
    bc = _block_c(channels)
    return lambda meta: (batch * triton.cdiv(rows, meta["BLOCK_ROWS"]), triton.cdiv(channels, bc)), bc


def _tl_acc(dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def knn_gather(x, index, weights, h, w):
    b, n, c = x.shape
    cells, k = index.shape[1:]
    out = x.new_empty((b, c, h, w))
    if out.numel() == 0:
        return out
    grid, bc = _grid(b, cells, c)
    _gather_kernel[grid](x, index, weights, out, n, c, cells, k, BLOCK_C=bc)
    return out


def knn_scatter(grad_out, index, weights, n):
    b, c = grad_out.shape[:2]
    cells, k = index.shape[1:]
    acc = torch.zeros((b, n, c), device=grad_out.device, dtype=_acc_dtype(grad_out.dtype))
    if acc.numel() and cells:
        grid, bc = _grid(b, cells, c)
        _scatter_kernel[grid](grad_out, index, weights, acc, n, c, cells, k, BLOCK_C=bc)
    return acc.to(grad_out.dtype)


def grid_to_points(y, coords, H, W):
    b, c, h, w = y.shape
    n = coords.shape[1]
    out = y.new_empty((b, n, c))
    if out.numel():
        grid, bc = _grid(b, n, c)
        _sample_kernel[grid](y, coords, out, n, c, H, W, h, w, grad_mode=False, ACC=_tl_acc(y.dtype), BLOCK_C=bc)
    return out


def grid_to_points_backward(grad_out, coords, H, W, h, w):
    b, n, c = grad_out.shape
    acc = torch.zeros((b, c, h, w), device=grad_out.device, dtype=_acc_dtype(grad_out.dtype))
    if grad_out.numel():
        grid, bc = _grid(b, n, c)
        _sample_kernel[grid](grad_out, coords, acc, n, c, H, W, h, w, grad_mode=True, ACC=_tl_acc(grad_out.dtype),
                             BLOCK_C=bc)
    return acc.to(grad_out.dtype)
