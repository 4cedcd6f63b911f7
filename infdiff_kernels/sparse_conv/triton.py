"""Triton kernels of the sparse depthwise convolution (docs/ops.md#sparse_depthwise_conv), with the signatures
of the C++ extension's `sparse_conv_forward` / `sparse_conv_backward` so ops.py calls
either backend the same way.

Every kernel works on a tile of BLOCK_N points x BLOCK_C channels of the channels-last
features, so a row of channels is one coalesced load; the K*K window offsets are walked
TAP_BLOCK at a time, and a neighbour is one load from the lookup grid. All gradients are
gathers (the window relation is symmetric), so nothing needs atomics and results are
deterministic:
  grad_x[q]         = sum_{u in window(q)} s[u] * w[:, tap(q - u)] * g[u]
  grad_w[:, tap(d)] = sum_q s[q] * g[q] * x[neighbour of q at offset d]
grad_w is reduced per (chunk of points, channel block) program into a float32 (float64
for float64 inputs) partial buffer, then summed over chunks by torch.

Every pointer offset that involves a program id or a size is int64 (the channel index c
included), so none wraps past 2^31 elements; .ci/triton_compile.py checks this in the
compiled TTIR.
"""
import os

import torch
import triton
import triton.language as tl

# The grad_w reduction runs one program per (chunk of point blocks, channel block): a GPU
# wants a few programs per SM, but each chunk adds a (K*K, C) partial sum, capped in
# elements here. The interpreter runs programs one after another, so it takes one chunk.
_GRAD_W_TARGET_PROGRAMS = 1024
_GRAD_W_PARTIAL_ELEMENTS = 1 << 22
_INTERPRETER_TILE = 1 << 20
_INTERPRETER = os.environ.get("TRITON_INTERPRET", "0") == "1"


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


@triton.jit
def _window_tile(lookup_ptr, pmask, row, col, cell, t0, H, W, K: tl.constexpr, TAP_BLOCK: tl.constexpr):
    """Neighbours (BLOCK_N, TAP_BLOCK) at taps t0 .. t0 + TAP_BLOCK - 1 of the tile's
    points (-1 where absent), and those taps."""
    R: tl.constexpr = K // 2
    t = t0 + tl.arange(0, TAP_BLOCK)
    dy = t // K - R
    dx = t % K - R
    rr = row[:, None] + dy[None, :]
    cc = col[:, None] + dx[None, :]
    ok = pmask[:, None] & (t < K * K)[None, :] & (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
    return tl.load(lookup_ptr + (cell[:, None] + (dy * W + dx)[None, :]), mask=ok, other=-1), t


# Taps are processed TAP_BLOCK at a time as the middle axis of a (points, taps, channels)
# tile: one on a GPU, where registers are the limit, and all K*K under TRITON_INTERPRET,
# which pays a fraction of a millisecond per op whatever the tile size.
#
# On a GPU the forward and grad_x tiles are autotuned per (C, K, dtype): TILE is the number of
# (point, channel) elements of a tile, BLOCK_N = TILE // BLOCK_C points (BLOCK_C is set by
# the launcher from C). grad_w tunes warps only: its partial-sum buffer is sized from the
# launcher's point blocks before the launch. The interpreter cannot time anything, so
# under TRITON_INTERPRET the single config is empty and the launcher passes its own tile.
if _INTERPRETER:
    _TILE_CONFIGS = _GRAD_W_CONFIGS = [triton.Config({})]
else:
    _TILE_CONFIGS = [
        triton.Config({"TILE": 1024}, num_warps=4),
        triton.Config({"TILE": 2048}, num_warps=8),
        triton.Config({"TILE": 512}, num_warps=2),
    ]
    _GRAD_W_CONFIGS = [triton.Config({}, num_warps=4), triton.Config({}, num_warps=8)]


@triton.autotune(configs=_TILE_CONFIGS, key=["C", "K"])
@triton.jit
def _forward_kernel(
    x_ptr, coords_ptr, lookup_ptr, scale_ptr, w_ptr, bias_ptr, out_ptr,
    total, N, C, H, W,
    K: tl.constexpr, HAS_BIAS: tl.constexpr,
    TILE: tl.constexpr, TAP_BLOCK: tl.constexpr, BLOCK_C: tl.constexpr,
):
    BLOCK_N: tl.constexpr = TILE // BLOCK_C
    bn, pmask, row, col, first, cell = _point_tile(coords_ptr, tl.program_id(0), total, N, H, W, BLOCK_N)
    c = (tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
    cmask = c < C
    acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=scale_ptr.dtype.element_ty)
    for t0 in range(0, K * K, TAP_BLOCK):
        p, t = _window_tile(lookup_ptr, pmask, row, col, cell, t0, H, W, K, TAP_BLOCK)
        xm = (p >= 0)[:, :, None] & cmask[None, None, :]
        xv = tl.load(x_ptr + ((first[:, None] + p) * C)[:, :, None] + c[None, None, :], mask=xm, other=0.0)
        wm = (t < K * K)[:, None] & cmask[None, :]
        wv = tl.load(w_ptr + (c[None, :] * (K * K) + t[:, None]), mask=wm, other=0.0)
        acc += tl.sum(wv.to(acc.dtype)[None, :, :] * xv.to(acc.dtype), axis=1)
    acc *= tl.load(scale_ptr + bn, mask=pmask, other=0.0)[:, None]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + c, mask=cmask, other=0.0).to(acc.dtype)[None, :]
    omask = pmask[:, None] & cmask[None, :]
    tl.store(out_ptr + bn[:, None] * C + c[None, :], acc.to(out_ptr.dtype.element_ty), mask=omask)


@triton.autotune(configs=_TILE_CONFIGS, key=["C", "K"])
@triton.jit
def _grad_x_kernel(
    g_ptr, coords_ptr, lookup_ptr, scale_ptr, w_ptr, gx_ptr,
    total, N, C, H, W,
    K: tl.constexpr, TILE: tl.constexpr, TAP_BLOCK: tl.constexpr, BLOCK_C: tl.constexpr,
):
    BLOCK_N: tl.constexpr = TILE // BLOCK_C
    bq, pmask, row, col, first, cell = _point_tile(coords_ptr, tl.program_id(0), total, N, H, W, BLOCK_N)
    c = (tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
    cmask = c < C
    acc = tl.zeros((BLOCK_N, BLOCK_C), dtype=scale_ptr.dtype.element_ty)
    for t0 in range(0, K * K, TAP_BLOCK):
        u, t = _window_tile(lookup_ptr, pmask, row, col, cell, t0, H, W, K, TAP_BLOCK)
        present = u >= 0
        bu = first[:, None] + u
        su = tl.load(scale_ptr + bu, mask=present, other=0.0)
        gm = present[:, :, None] & cmask[None, None, :]
        gv = tl.load(g_ptr + (bu * C)[:, :, None] + c[None, None, :], mask=gm, other=0.0)
        # q sits at offset (-dy, -dx) of u, so u saw q through the mirrored tap K*K-1-t.
        wm = (t < K * K)[:, None] & cmask[None, :]
        wv = tl.load(w_ptr + (c[None, :] * (K * K) + (K * K - 1 - t)[:, None]), mask=wm, other=0.0)
        acc += tl.sum(wv.to(acc.dtype)[None, :, :] * (su[:, :, None] * gv.to(acc.dtype)), axis=1)
    omask = pmask[:, None] & cmask[None, :]
    tl.store(gx_ptr + bq[:, None] * C + c[None, :], acc.to(gx_ptr.dtype.element_ty), mask=omask)


@triton.autotune(configs=_GRAD_W_CONFIGS, key=["C", "K"])
@triton.jit
def _grad_w_kernel(
    g_ptr, x_ptr, coords_ptr, lookup_ptr, scale_ptr, partial_ptr,
    total, N, C, H, W, blocks_per_chunk,
    K: tl.constexpr, BLOCK_N: tl.constexpr, TAP_BLOCK: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """partial[chunk, tap, c] = sum over the chunk's points q of s[q] g[q, c] x[u, c], u the
    neighbour of q at the tap's offset. Tap blocks are the outer loop so one accumulator
    tile serves them all; the chunk's coords and g are re-read per tap block, from cache on
    a GPU."""
    c = (tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)).to(tl.int64)
    cmask = c < C
    chunk = tl.program_id(0).to(tl.int64)
    for t0 in range(0, K * K, TAP_BLOCK):
        t = t0 + tl.arange(0, TAP_BLOCK)
        acc = tl.zeros((BLOCK_N, TAP_BLOCK, BLOCK_C), dtype=partial_ptr.dtype.element_ty)
        for i in range(0, blocks_per_chunk):
            bq, pmask, row, col, first, cell = _point_tile(
                coords_ptr, chunk * blocks_per_chunk + i, total, N, H, W, BLOCK_N
            )
            u, _ = _window_tile(lookup_ptr, pmask, row, col, cell, t0, H, W, K, TAP_BLOCK)
            xm = (u >= 0)[:, :, None] & cmask[None, None, :]
            xv = tl.load(x_ptr + ((first[:, None] + u) * C)[:, :, None] + c[None, None, :], mask=xm, other=0.0)
            gm = pmask[:, None] & cmask[None, :]
            gv = tl.load(g_ptr + (bq * C)[:, None] + c[None, :], mask=gm, other=0.0)
            sq = tl.load(scale_ptr + bq, mask=pmask, other=0.0)
            acc += (sq[:, None] * gv.to(acc.dtype))[:, None, :] * xv.to(acc.dtype)
        tm = (t < K * K)[:, None] & cmask[None, :]
        tl.store(partial_ptr + ((chunk * (K * K) + t)[:, None] * C + c[None, :]), tl.sum(acc, axis=0), mask=tm)


def _interpreting(device):
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET", "0") == "1"


def _window_scale(counts, normalize, kernel_size, dtype):
    """s of docs/ops.md#sparse_depthwise_conv per point, flattened, in the accumulation dtype (float64 for
    float64 inputs, else float32): one division per point instead of one per tap."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    m = counts.reshape(-1).to(acc)
    if normalize == 0:
        return (kernel_size * kernel_size) / m
    if normalize == 1:
        return 1.0 / m
    return torch.ones_like(m)


def _blocks(points, taps, channels, interpreting):
    """(BLOCK_N, TAP_BLOCK, BLOCK_C). On a GPU BLOCK_N is grad_w's (forward and grad_x
    autotune it through TILE, see _TILE_CONFIGS), and the tile stays near 1024 elements: the
    kernels are bound by gather latency, and at 16 x 64 ptxas gives ~110 registers a thread
    (sm_80, fp32) against ~180 at 32 x 64, so twice the warps per SM hide it. The
    interpreter pays per op, not per element, so there one tile takes (nearly) everything."""
    if interpreting:
        block_c = min(triton.next_power_of_2(channels), 256)
        tap_block = min(triton.next_power_of_2(taps), max(1, _INTERPRETER_TILE // (16 * block_c)))
        block_n = min(triton.next_power_of_2(points), max(16, _INTERPRETER_TILE // (tap_block * block_c)))
        return max(block_n, 16), tap_block, block_c
    block_c = min(triton.next_power_of_2(channels), 64)
    return max(16, 1024 // block_c), 1, block_c


def _tile_launch(points, channels, block_n, tap_block, block_c):
    """(grid, kwargs) of an autotuned-tile launch (forward, grad_x): under the interpreter the
    one config is empty and the tile comes from here; on a GPU the config adds TILE."""
    kwargs = dict(TAP_BLOCK=tap_block, BLOCK_C=block_c)
    if _INTERPRETER:
        kwargs["TILE"] = block_n * block_c
    return lambda meta: (triton.cdiv(points, meta["TILE"] // block_c), triton.cdiv(channels, block_c)), kwargs


def sparse_conv_forward(x, coords, lookup, counts, weight, bias, normalize):
    """out[b, n] = s[b, n] * sum over the window of n of w[:, tap] * x[b, p] + bias."""
    out = torch.empty_like(x)
    if x.numel() == 0:
        return out
    b, n, c = x.shape
    h, w, k = lookup.shape[1], lookup.shape[2], weight.shape[-1]
    scale = _window_scale(counts, normalize, k, x.dtype)
    grid, tile = _tile_launch(b * n, c, *_blocks(b * n, k * k, c, _interpreting(x.device)))
    _forward_kernel[grid](
        x, coords, lookup, scale, weight, bias if bias is not None else x, out,
        b * n, n, c, h, w,
        K=k, HAS_BIAS=bias is not None, **tile,
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
    grad_x = torch.empty_like(x) if need_grad_x else None
    grad_w = None
    if x.numel() == 0:
        return grad_x, (torch.zeros_like(weight) if need_grad_weight else None)
    b, n, c = x.shape
    h, w, k = lookup.shape[1], lookup.shape[2], weight.shape[-1]
    scale = _window_scale(counts, normalize, k, x.dtype)
    interpreting = _interpreting(x.device)
    block_n, tap_block, block_c = _blocks(b * n, k * k, c, interpreting)
    point_blocks, channel_blocks = triton.cdiv(b * n, block_n), triton.cdiv(c, block_c)
    if need_grad_x:
        grid, tile = _tile_launch(b * n, c, block_n, tap_block, block_c)
        _grad_x_kernel[grid](
            grad_out, coords, lookup, scale, weight, grad_x,
            b * n, n, c, h, w,
            K=k, **tile,
        )
    if need_grad_weight:
        chunks, blocks_per_chunk = _grad_w_chunks(point_blocks, k * k, c, channel_blocks, interpreting)
        partial = torch.empty((chunks, k * k, c), device=x.device, dtype=scale.dtype)
        _grad_w_kernel[(chunks, channel_blocks)](
            grad_out, x, coords, lookup, scale, partial,
            b * n, n, c, h, w, blocks_per_chunk,
            K=k, BLOCK_N=block_n, TAP_BLOCK=tap_block, BLOCK_C=block_c,
        )
        grad_w = partial.sum(0).t().reshape(weight.shape).to(weight.dtype)
    return grad_x, grad_w
