"""Triton kernels of the sparse depthwise convolution (SPEC section 1), with the signatures
of the C++ extension's `sparse_conv_forward` / `sparse_conv_backward` so ops.py calls
either backend the same way.

Every kernel works on a tile of BLOCK_N points x BLOCK_C channels of the channels-last
features, so a row of channels is one coalesced load; the K*K window offsets are a loop,
and a neighbour is one load from the lookup grid. All gradients are gathers (the window
relation is symmetric), so nothing needs atomics and results are deterministic:
  grad_x[q]        = sum_{u in window(q)} s[u] * w[:, tap(q - u)] * g[u]
  grad_w[:, tap(d)] = sum_q s[q] * g[q] * x[neighbour of q at offset d]
grad_w is reduced per (point chunk, tap, channel block) program into a float32/float64
partial buffer, then summed over chunks by torch.
"""
import os

import torch
import triton
import triton.language as tl

_SUPPORTED = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# The grad_w reduction runs one program per (chunk of point blocks, channel block): a GPU
# wants a few programs per SM, but each chunk adds a (K*K, C) partial sum, capped in
# elements here. The interpreter runs programs one after another, so it takes one chunk.
_GRAD_W_TARGET_PROGRAMS = 1024
_GRAD_W_PARTIAL_ELEMENTS = 1 << 22
_INTERPRETER_TILE = 1 << 16


@triton.jit
def _point_tile(coords_ptr, block, total, N, H, W, BLOCK_N: tl.constexpr):
    """One tile of points: flattened indices b * N + n (int64), mask, row, col, b * N and
    the point's own cell (b * H + row) * W + col of the lookup grid (int64)."""
    bn = block.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    pmask = bn < total
    row = tl.load(coords_ptr + 2 * bn, mask=pmask, other=0)
    col = tl.load(coords_ptr + 2 * bn + 1, mask=pmask, other=0)
    b = bn // N
    return bn, pmask, row, col, b * N, (b * H + row) * W + col


# The window loops look the neighbour up inline rather than through a helper, and hoist
# what does not depend on the offset: under TRITON_INTERPRET every op and every call of a
# nested jit function costs a fraction of a millisecond whatever the tile size.


@triton.jit
def _forward_kernel(
    x_ptr, coords_ptr, lookup_ptr, scale_ptr, w_ptr, bias_ptr, out_ptr,
    total, N, C, H, W,
    K: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    R: tl.constexpr = K // 2
    bn, pmask, row, col, first, cell = _point_tile(coords_ptr, tl.program_id(0), total, N, H, W, BLOCK_N)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    w_rows = w_ptr + c * (K * K)
    acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=scale_ptr.dtype.element_ty)
    for dy in range(-R, R + 1):
        row_ok = pmask & (row >= -dy) & (row < H - dy)
        for dx in range(-R, R + 1):
            ok = row_ok & (col >= -dx) & (col < W - dx)
            p = tl.load(lookup_ptr + cell + (dy * W + dx), mask=ok, other=-1)
            xm = (p >= 0)[:, None] & cmask[None, :]
            xv = tl.load(x_ptr + ((first + p) * C)[:, None] + c[None, :], mask=xm, other=0.0)
            wv = tl.load(w_rows + ((dy + R) * K + dx + R), mask=cmask, other=0.0)
            acc += wv.to(acc.dtype)[None, :] * xv.to(acc.dtype)
    acc *= tl.load(scale_ptr + bn, mask=pmask, other=0.0)[:, None]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + c, mask=cmask, other=0.0).to(acc.dtype)[None, :]
    omask = pmask[:, None] & cmask[None, :]
    tl.store(out_ptr + bn[:, None] * C + c[None, :], acc.to(out_ptr.dtype.element_ty), mask=omask)


@triton.jit
def _grad_x_kernel(
    g_ptr, coords_ptr, lookup_ptr, scale_ptr, w_ptr, gx_ptr,
    total, N, C, H, W,
    K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    R: tl.constexpr = K // 2
    bq, pmask, row, col, first, cell = _point_tile(coords_ptr, tl.program_id(0), total, N, H, W, BLOCK_N)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    w_rows = w_ptr + c * (K * K)
    acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=scale_ptr.dtype.element_ty)
    for dy in range(-R, R + 1):
        row_ok = pmask & (row >= -dy) & (row < H - dy)
        for dx in range(-R, R + 1):
            ok = row_ok & (col >= -dx) & (col < W - dx)
            u = tl.load(lookup_ptr + cell + (dy * W + dx), mask=ok, other=-1)
            present = u >= 0
            bu = first + u
            su = tl.load(scale_ptr + bu, mask=present, other=0.0)
            gv = tl.load(g_ptr + (bu * C)[:, None] + c[None, :], mask=present[:, None] & cmask[None, :], other=0.0)
            # q sits at offset (-dy, -dx) of u, so u saw q through the mirrored tap.
            wv = tl.load(w_rows + ((R - dy) * K + R - dx), mask=cmask, other=0.0)
            acc += wv.to(acc.dtype)[None, :] * (su[:, None] * gv.to(acc.dtype))
    omask = pmask[:, None] & cmask[None, :]
    tl.store(gx_ptr + bq[:, None] * C + c[None, :], acc.to(gx_ptr.dtype.element_ty), mask=omask)


@triton.jit
def _grad_w_kernel(
    g_ptr, x_ptr, coords_ptr, lookup_ptr, scale_ptr, partial_ptr,
    total, N, C, H, W, blocks_per_chunk,
    K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """partial[chunk, tap, c] = sum over the chunk's points q of s[q] g[q, c] x[u, c], u the
    neighbour of q at the tap's offset. Taps are the outer loop so one accumulator tile
    serves them all; the chunk's coords and g are re-read per tap, from cache on a GPU."""
    R: tl.constexpr = K // 2
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    chunk = tl.program_id(0).to(tl.int64)
    for tap in range(0, K * K):
        dy = tap // K - R
        dx = tap % K - R
        acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=partial_ptr.dtype.element_ty)
        for i in range(0, blocks_per_chunk):
            bq, pmask, row, col, first, cell = _point_tile(
                coords_ptr, chunk * blocks_per_chunk + i, total, N, H, W, BLOCK_N
            )
            ok = pmask & (row >= -dy) & (row < H - dy) & (col >= -dx) & (col < W - dx)
            u = tl.load(lookup_ptr + cell + (dy * W + dx), mask=ok, other=-1)
            m2 = (u >= 0)[:, None] & cmask[None, :]
            xv = tl.load(x_ptr + ((first + u) * C)[:, None] + c[None, :], mask=m2, other=0.0)
            gv = tl.load(g_ptr + (bq * C)[:, None] + c[None, :], mask=m2, other=0.0)
            sq = tl.load(scale_ptr + bq, mask=pmask, other=0.0)
            acc += (sq[:, None] * gv.to(acc.dtype)) * xv.to(acc.dtype)
        tl.store(partial_ptr + (chunk * (K * K) + tap) * C + c, tl.sum(acc, axis=0), mask=cmask)


def _interpreting(device):
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET", "0") == "1"


def _check_dtype(x):
    if x.dtype not in _SUPPORTED:
        raise TypeError(f"x must be float16, bfloat16, float32 or float64 for the triton backend, got {x.dtype}")


def _window_scale(counts, normalize, kernel_size, dtype):
    """s of SPEC section 1 per point, flattened, in the accumulation dtype (float64 for
    float64 inputs, else float32): one division per point instead of one per tap."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    m = counts.reshape(-1).to(acc)
    if normalize == 0:
        return (kernel_size * kernel_size) / m
    if normalize == 1:
        return 1.0 / m
    return torch.ones_like(m)


def _blocks(points, channels, interpreting):
    """(BLOCK_N, BLOCK_C). On a GPU the tile stays near 2048 elements so the accumulator
    lives in registers. The interpreter pays per op, not per element, so there one tile
    takes (nearly) everything."""
    if interpreting:
        block_c = min(triton.next_power_of_2(channels), 256)
        return min(triton.next_power_of_2(points), max(16, _INTERPRETER_TILE // block_c)), block_c
    block_c = min(triton.next_power_of_2(channels), 64)
    return max(16, 2048 // block_c), block_c


def sparse_conv_forward(x, coords, lookup, counts, weight, bias, normalize):
    """out[b, n] = s[b, n] * sum over the window of n of w[:, tap] * x[b, p] + bias."""
    _check_dtype(x)
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    b, n, c = x.shape
    h, w, k = lookup.shape[1], lookup.shape[2], weight.shape[-1]
    scale = _window_scale(counts, normalize, k, x.dtype)
    block_n, block_c = _blocks(b * n, c, _interpreting(x.device))
    grid = (triton.cdiv(b * n, block_n), triton.cdiv(c, block_c))
    _forward_kernel[grid](
        x, coords, lookup, scale, weight, bias if bias is not None else x, out,
        b * n, n, c, h, w,
        K=k, HAS_BIAS=bias is not None, BLOCK_N=block_n, BLOCK_C=block_c,
    )
    return out


def _grad_w_chunks(point_blocks, taps, channels, channel_blocks, interpreting):
    """(chunks, blocks_per_chunk): how the grad_w reduction splits the point blocks."""
    if interpreting:
        return 1, point_blocks
    by_programs = _GRAD_W_TARGET_PROGRAMS // channel_blocks
    by_memory = _GRAD_W_PARTIAL_ELEMENTS // (taps * channels)
    chunks = max(1, min(point_blocks, by_programs, by_memory))
    blocks_per_chunk = triton.cdiv(point_blocks, chunks)
    return triton.cdiv(point_blocks, blocks_per_chunk), blocks_per_chunk


def sparse_conv_backward(grad_out, x, coords, lookup, counts, weight, normalize, need_grad_x, need_grad_weight):
    """(grad_x or None, grad_weight or None); grad_weight is accumulated in float32 (float64
    for float64 inputs) and returned in weight's dtype."""
    _check_dtype(x)
    grad_x = torch.empty_like(x) if need_grad_x else None
    grad_w = None
    if x.numel() == 0:
        return grad_x, (torch.zeros_like(weight) if need_grad_weight else None)
    b, n, c = x.shape
    h, w, k = lookup.shape[1], lookup.shape[2], weight.shape[-1]
    scale = _window_scale(counts, normalize, k, x.dtype)
    interpreting = _interpreting(x.device)
    block_n, block_c = _blocks(b * n, c, interpreting)
    point_blocks, channel_blocks = triton.cdiv(b * n, block_n), triton.cdiv(c, block_c)
    if need_grad_x:
        _grad_x_kernel[(point_blocks, channel_blocks)](
            grad_out, coords, lookup, scale, weight, grad_x,
            b * n, n, c, h, w,
            K=k, BLOCK_N=block_n, BLOCK_C=block_c,
        )
    if need_grad_weight:
        chunks, blocks_per_chunk = _grad_w_chunks(point_blocks, k * k, c, channel_blocks, interpreting)
        partial = torch.empty((chunks, k * k, c), device=x.device, dtype=scale.dtype)
        _grad_w_kernel[(chunks, channel_blocks)](
            grad_out, x, coords, lookup, scale, partial,
            b * n, n, c, h, w, blocks_per_chunk,
            K=k, BLOCK_N=block_n, BLOCK_C=block_c,
        )
        grad_w = partial.sum(0).t().reshape(weight.shape).to(weight.dtype)
    return grad_x, grad_w
