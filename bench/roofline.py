"""Roofline table of the GPU kernels: bytes each op moves and flops it does, per op, size and
density, and the time those imply on A100 / H100 (docs/roofline.md explains the model).

    python -m bench.roofline            # 128^2 and 256^2, densities 1 .. 1/16, fwd and fwd+bwd
    python -m bench.roofline --quick    # 128^2, densities 1 and 1/4

With a CUDA device, every op is also timed (cuda backend) and printed beside its roofline time
as a fraction of it. Without one only the model is printed: the roofline bounds GPU kernels,
and a CPU time next to it would compare nothing.

Models (fp32, B=4, C=64, K=7, k=3 neighbours for knn_to_grid):
- "floor": compulsory DRAM bytes, every input read once and every output written once, as if
  the op were one kernel with perfect caching. No implementation moves less.
- "passes": the launches the code really makes (torch ops and zero-fills included), each
  reading its inputs and writing its outputs once: what perfect caching within a launch gives.
- "before" / "after" (sparse conv only): the 32-byte sectors the warps of
  csrc/cuda/sparse_conv.cu request, instruction by instruction with no reuse between
  instructions; "before" is the kernels up to issue 15 item 3 (weights (C, K, K), every tap
  probed by every channel thread), "after" the redesign (weights (K*K, C), each point's
  present neighbours gathered once into a shared-memory list, 16-byte channel vectors).
  That is request traffic through L1/L2, an upper bound on DRAM traffic.
"""
import math
import sys
from dataclasses import dataclass
from fractions import Fraction

import torch

from ._common import arg_parser, resolve_device, skipped, time_fn, write_json

FAMILY = "roofline"
B, C, K, KNN_K = 4, 64, 7, 3
FULL_SIZES = (128, 256)
FULL_DENSITIES = (Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(1, 8), Fraction(1, 16))
QUICK_SIZES = (128,)
QUICK_DENSITIES = (Fraction(1), Fraction(1, 4))
ELEM = 4  # fp32 features, weights and accumulators
INDEX = 4  # int32 coords, lookup, counts, k-NN indices
SECTOR = 32  # bytes a memory request moves at the least
WARP = 32
# The kernels' block size and the grad_w launch constants of csrc/cuda/sparse_conv.cu, which
# fix how many per-block atomics the weight gradient issues.
THREADS = 256
TARGET_WEIGHT_BLOCKS = 2048
MAX_GRID_YZ = 65535
# The redesigned kernels load channels in 16-byte vectors: 4 fp32 per thread.
VECTOR = 16 // ELEM

# name: (DRAM bytes/s, fp32 FLOP/s without tensor cores). The kernels are CUDA-core fp32 FMA
# loops, so the non-tensor fp32 peak is the compute roof that applies to them.
GPUS = {
    "A100-40GB": (1.555e12, 19.5e12),
    "A100-80GB-SXM": (2.0e12, 19.5e12),
    "H100-SXM": (3.35e12, 67e12),
}


@dataclass(frozen=True)
class Cost:
    """Bytes moved and floating-point operations of one op (or part of one)."""

    bytes: float
    flops: float

    def __add__(self, other):
        return Cost(self.bytes + other.bytes, self.flops + other.flops)


@dataclass(frozen=True)
class ConvShape:
    """One sparse-conv case: B elements of N points on an (H, W) grid, C channels, (K, K) kernel."""

    batch: int
    height: int
    width: int
    points: int
    channels: int
    kernel_size: int

    @property
    def taps(self) -> int:
        return self.kernel_size * self.kernel_size


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def conv_shape(batch, height, width, points, channels, kernel_size) -> ConvShape:
    """A checked ConvShape: points in [1, H W], K odd."""
    for name, value in (("batch", batch), ("height", height), ("width", width), ("points", points),
                        ("channels", channels), ("kernel_size", kernel_size)):
        _positive_int(name, value)
    if points > height * width:
        raise ValueError(f"points must be at most height * width = {height * width}, got {points}")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    return ConvShape(batch, height, width, points, channels, kernel_size)


def points_at(size: int, density) -> int:
    """N for a density of a size^2 grid, rounded as bench/sparse_conv.py draws them."""
    return max(1, round(float(density) * size * size))


def mean_in_range_offsets(length: int, kernel_size: int) -> float:
    """Offsets in [-r, r] that stay on an axis of `length` pixels, averaged over positions."""
    _positive_int("length", length)
    r = kernel_size // 2
    return sum(min(i + r, length - 1) - max(i - r, 0) + 1 for i in range(length)) / length


def mean_in_grid_taps(shape: ConvShape) -> float:
    """Window taps that fall on the grid, averaged over pixels: the lookups a point makes
    (lookup_point loads nothing for an off-grid tap)."""
    return mean_in_range_offsets(shape.height, shape.kernel_size) * mean_in_range_offsets(shape.width, shape.kernel_size)


def mean_window_count(shape: ConvShape) -> float:
    """Expected window size m (present taps, the point itself included) of N distinct points
    drawn uniformly: each other in-grid pixel of the window holds a point with probability
    (N - 1) / (H W - 1)."""
    pixels = shape.height * shape.width
    if pixels == 1:
        return 1.0
    return 1.0 + (mean_in_grid_taps(shape) - 1.0) * (shape.points - 1) / (pixels - 1)


def warp_sectors(lanes: int, stride_bytes: int, elem_bytes: int = ELEM) -> int:
    """Distinct 32-byte sectors one warp load touches when lane l reads elem_bytes at
    l * stride_bytes from a sector-aligned base."""
    _positive_int("lanes", lanes)
    _positive_int("stride_bytes", stride_bytes)
    _positive_int("elem_bytes", elem_bytes)
    return len({s for lane in range(lanes) for s in range(lane * stride_bytes // SECTOR,
                                                        (lane * stride_bytes + elem_bytes - 1) // SECTOR + 1)})


def neighbor_map_bytes(shape: ConvShape) -> int:
    """coords (B, N, 2), lookup (B, H, W) and counts (B, N), all int32."""
    return INDEX * shape.batch * (shape.height * shape.width + 3 * shape.points)


def _require_warp_channels(shape: ConvShape):
    if shape.channels % WARP:
        raise ValueError(
            f"channels must be a multiple of {WARP} for the warp-level sparse-conv models (a warp then covers "
            f"32 channels of one point), got {shape.channels}")


def sparse_conv_flops(shape: ConvShape, backward: bool) -> float:
    """2 C flops (multiply, add) per present tap and point; fwd adds scale and bias per
    output; bwd does it for grad_x and for grad_w, plus the scale of g and the bias sum."""
    per_point = 2 * shape.channels * mean_window_count(shape)
    if backward:
        per_point *= 2
    return shape.batch * shape.points * (per_point + 2 * shape.channels)


def sparse_conv_floor(shape: ConvShape, backward: bool = False) -> Cost:
    """Compulsory DRAM bytes. fwd: read x, weight, bias and the neighbour map, write y.
    bwd: read grad_out, x, weight and the map, write grad_x, grad_w and grad_bias."""
    features = ELEM * shape.batch * shape.points * shape.channels
    weight = ELEM * shape.channels * shape.taps
    bias = ELEM * shape.channels
    nmap = neighbor_map_bytes(shape)
    moved = 2 * features + weight + bias + nmap if not backward else 3 * features + 2 * weight + bias + nmap
    return Cost(moved, sparse_conv_flops(shape, backward))


def channel_block(groups: int) -> tuple:
    """(threads per point, points per block) of csrc/cuda/sparse_conv.cu's channel_block for
    `groups` threads' worth of channels per point."""
    tile = 1
    while tile < 32 and tile < groups:
        tile *= 2
    if groups > 32:
        tile = min(THREADS, -(-groups // 32) * 32)
    return tile, THREADS // tile


def grad_w_blocks(shape: ConvShape, width: int = 1) -> int:
    """Blocks of the grad_w launch (launch_grad_w with KS = K in {3, 5, 7}: one kernel row per
    block) with `width` channels per thread (1 before the redesign, VECTOR after), each of which
    issues one atomicAdd per (channel, tap of its row)."""
    tile, rows_per_block = channel_block(-(-shape.channels // width))
    channel_tiles = -(-shape.channels // (tile * width))
    z = min(shape.batch, MAX_GRID_YZ)
    tap_groups = shape.kernel_size
    wanted = max(1, -(-TARGET_WEIGHT_BLOCKS // (channel_tiles * tap_groups * z)))
    chunk = max(4 * rows_per_block, -(-shape.points // wanted))
    chunks = -(-shape.points // chunk)
    return chunks * tap_groups * channel_tiles * z


def _bwd_extra_bytes(shape: ConvShape) -> int:
    """The zero-fill of grad_w and torch's grad_out.sum for the bias."""
    return ELEM * shape.channels * shape.taps + ELEM * shape.batch * shape.points * shape.channels


def sparse_conv_before(shape: ConvShape, backward: bool = False) -> Cost:
    """Sector traffic of the kernels before the redesign, per warp (one point, 32 consecutive
    channels): fwd: coords (2 broadcast loads), every in-grid lookup (broadcast), per present
    tap a weight load at weight + c*K*K + tap (lanes K*K*4 bytes apart: one sector each) and an
    x load (one 128-byte line), counts, bias and the output store.
    bwd: grad_x the same with counts[u] per present tap; grad_w walks the points once per
    kernel row (coords, counts, grad_out each time) and ends with per-block atomics, lanes
    again K*K*4 bytes apart; plus the zero-fill of grad_w and torch's grad_out.sum for the bias."""
    _require_warp_channels(shape)
    warps = shape.batch * shape.points * (shape.channels // WARP)
    lookups, present = mean_in_grid_taps(shape), mean_window_count(shape)
    weight_tap = warp_sectors(WARP, ELEM * shape.taps)
    row = warp_sectors(WARP, ELEM)
    if not backward:
        sectors = warps * (2 + lookups + present * (weight_tap + row) + 1 + row + row)
        return Cost(sectors * SECTOR, sparse_conv_flops(shape, backward))
    grad_x = 2 + lookups + present * (1 + weight_tap + row) + row
    grad_w = shape.kernel_size * (2 + 1 + row) + lookups + present * row
    sectors = warps * (grad_x + grad_w)
    sectors += grad_w_blocks(shape) * shape.kernel_size * (shape.channels // WARP) * weight_tap
    return Cost(sectors * SECTOR + _bwd_extra_bytes(shape), sparse_conv_flops(shape, backward))


def sparse_conv_after(shape: ConvShape, backward: bool = False) -> Cost:
    """Sector traffic of the redesigned kernels, per point (its C / VECTOR threads together,
    channels in 16-byte vectors, so one feature or weight row is C*4/32 sectors):
    fwd: coords (2 loads); the gather of the present neighbours, in which the thread of each
    window row probes that row's in-grid taps twice (count, then write the list: 2 T one-sector
    loads, the list itself living in shared memory); per present tap one weight row of the
    (K*K, C) layout and one x row; counts; the output row; bias once per block of points.
    bwd: grad_x likewise plus counts[u] per present tap; grad_w walks each point once per
    kernel row (coords, counts, grad_out row) with one broadcast lookup per in-grid tap and an
    x row per present tap, then one coalesced atomicAdd row per (block, tap of its row).
    The binding's transposes of the kernel (and of grad_w back) are counted as passes."""
    _require_warp_channels(shape)
    points = shape.batch * shape.points
    row = math.ceil(ELEM * shape.channels / SECTOR)
    lookups, present = mean_in_grid_taps(shape), mean_window_count(shape)
    _, points_per_block = channel_block(-(-shape.channels // VECTOR))
    blocks = shape.batch * -(-shape.points // points_per_block)
    weight_pass = 2 * ELEM * shape.channels * shape.taps  # read (C, K*K), write (K*K, C)
    if not backward:
        sectors = points * (2 + 2 * lookups + present * 2 * row + 1 + row) + blocks * row
        return Cost(sectors * SECTOR + weight_pass, sparse_conv_flops(shape, backward))
    grad_x = 2 + 2 * lookups + present * (1 + 2 * row) + row
    grad_w = shape.kernel_size * (2 + 1 + row) + lookups + present * row
    sectors = points * (grad_x + grad_w) + grad_w_blocks(shape, VECTOR) * shape.kernel_size * row
    extra = _bwd_extra_bytes(shape) + 2 * weight_pass  # the kernel transposed, grad_w transposed back
    return Cost(sectors * SECTOR + extra, sparse_conv_flops(shape, backward))


def knn_tile_size(height: int, width: int, points: int) -> int:
    """Side of the search's buckets, as csrc/common/knn_math.h picks it (about 4 points a tile)."""
    t = 1
    while (t + 1) * (t + 1) * points <= 4 * height * width:
        t += 1
    return t


def knn_to_grid_costs(batch, size, points, channels, out_size, k, backward=False) -> dict:
    """{"floor", "passes"} of knn_to_grid (features (B, N, C) of a size^2 lattice onto an
    out_size^2 grid, k neighbours), fp32 features and weights. The search is integer work:
    no fp flops counted for it. passes: zero-fill of the bucket starts, count, scan, fill,
    the search (its running k-best distances kept in an int64 buffer written and read back),
    the gather; bwd: zero-filled float accumulator, the scatter's atomics (read and write)."""
    cells = out_size * out_size
    tiles = -(-size // knn_tile_size(size, size, points)) ** 2
    feats = ELEM * batch * points * channels
    grid = ELEM * batch * channels * cells
    pairs = batch * cells * k
    coords = 2 * INDEX * batch * points
    flops = 2.0 * k * batch * channels * cells
    if not backward:
        floor = Cost(feats + coords + grid, flops)
        search = (INDEX * batch * (tiles + 1)  # zero-fill
                  + coords + 2 * INDEX * batch * points  # count: coords in, rank out, start atomics
                  + 2 * INDEX * batch * tiles  # scan
                  + coords + 3 * INDEX * batch * points  # fill
                  + coords + INDEX * batch * (tiles + points) + 2 * 8 * pairs + 2 * INDEX * pairs)  # search
        gather = feats + 2 * INDEX * pairs + grid
        return {"floor": floor, "passes": Cost(search + gather, flops)}
    floor = Cost(grid + 2 * INDEX * pairs + feats, flops)
    return {"floor": floor, "passes": Cost(feats + grid + 2 * INDEX * pairs + 2 * feats, flops)}


def grid_to_points_costs(batch, size, points, channels, grid_size, backward=False) -> dict:
    """{"floor", "passes"} of grid_to_points (grid (B, C, g, g) sampled at N points of a size^2
    lattice), fp32. fwd is one kernel (4 taps: 4 multiplies, 3 adds a value), the grid read
    once; bwd zero-fills a float grid and scatters with atomics (4 multiplies, 4 adds)."""
    feats = ELEM * batch * points * channels
    grid = ELEM * batch * channels * grid_size * grid_size
    coords = 2 * INDEX * batch * points
    if not backward:
        cost = Cost(grid + coords + feats, 7.0 * batch * points * channels)
        return {"floor": cost, "passes": cost}
    flops = 8.0 * batch * points * channels
    return {"floor": Cost(feats + coords + grid, flops), "passes": Cost(grid + feats + coords + 2 * grid, flops)}


def spectral_costs(planes, size, boundary="reflect", backward=False) -> dict:
    """{"floor", "passes"} of mollify / wiener on `planes` grids of size^2, fp32. passes: the
    reflect reorder (read, write), rfft2 as two passes (rows real -> half spectrum, then
    columns), the in-place multiply, irfft2 as two passes, the inverse reorder; periodic drops
    the two reorders. Assumes cuFFT does each axis in one pass at these sizes. Flops:
    2.5 n log2 n per real 2-D transform of n pixels, 6 per complex coefficient for the
    multiply. The backward is the same filter on the gradient: the same cost again."""
    if boundary not in ("reflect", "periodic"):
        raise ValueError(f"boundary must be 'reflect' or 'periodic', got {boundary!r}")
    pixels = size * size
    real = ELEM * planes * pixels
    half = 2 * ELEM * planes * size * (size // 2 + 1)
    transforms = (real + half) + 2 * half + 2 * half + 2 * half + (half + real)
    reorders = 4 * real if boundary == "reflect" else 0
    flops = planes * (2 * 2.5 * pixels * math.log2(pixels) + 6 * size * (size // 2 + 1))
    copies = 2 if backward else 1
    return {"floor": Cost(copies * 2 * real, copies * flops), "passes": Cost(copies * (transforms + reorders), copies * flops)}


def neighbor_map_costs(batch, size, points) -> dict:
    """{"floor", "passes"} of build_neighbor_map with the torch-ops builder (cuda backend),
    check=False: the floor reads the coords and writes lookup and counts; passes counts every
    torch op of neighbor_map.py (int64 index maths, the -1 fill, the scatter, the padded
    occupancy grid and its two cumsums, four corner gathers of the summed-area table)."""
    n = batch * points
    pixels = batch * size * size
    padded = batch * (size + 1) * (size + 1)
    floor = Cost(2 * INDEX * n + INDEX * pixels + INDEX * n, 0.0)
    scatter = (12 + 16 + 12 + 24) * n + 4 * points + 4 * pixels + 16 * n  # linear index, fill, scatter_
    occupancy = 4 * padded + (4 + 1 + 1 + 4 + 4 + 4) * pixels + 2 * 8 * padded  # zeros, >= 0, casts, copy, cumsums
    corners = 2 * 12 * n + 4 * 2 * 16 * n + 4 * (16 + 24 + 16) * n + 3 * 12 * n  # casts, clamps, gathers, sums
    return {"floor": floor, "passes": Cost(scatter + occupancy + corners, 0.0)}


def roofline_seconds(cost: Cost, gpu: str) -> float:
    """max(bytes / bandwidth, flops / fp32 peak) on `gpu` (a key of GPUS)."""
    if gpu not in GPUS:
        raise ValueError(f"gpu must be one of {sorted(GPUS)}, got {gpu!r}")
    bandwidth, peak = GPUS[gpu]
    return max(cost.bytes / bandwidth, cost.flops / peak)


def bound(cost: Cost, gpu: str) -> str:
    bandwidth, peak = GPUS[gpu]
    return "memory" if cost.bytes / bandwidth >= cost.flops / peak else "compute"


@dataclass
class Row:
    """One line of the table: an op at one size, density and mode under one model."""

    op: str
    size: int
    density: str
    mode: str
    model: str
    cost: Cost


def model_rows(sizes, densities) -> list:
    """The table's Rows: per size and density every point op under each of its models, fwd
    and fwd+bwd (the backward counted as its own launches after the forward), the neighbour
    map build (fwd only), then per size the spectral filters (dense grids: no density)."""
    rows = []
    modes = (("fwd", False), ("fwd+bwd", True))
    for size in sizes:
        for density in densities:
            n = points_at(size, density)
            shape = conv_shape(B, size, size, n, C, K)
            for mode, with_bwd in modes:
                for model, fn in (("floor", sparse_conv_floor), ("before", sparse_conv_before),
                                  ("after", sparse_conv_after)):
                    cost = fn(shape) + (fn(shape, backward=True) if with_bwd else Cost(0, 0))
                    rows.append(Row("sparse_conv", size, str(density), mode, model, cost))
                for op, fn in (("knn_to_grid", lambda bwd: knn_to_grid_costs(B, size, n, C, size // 2, KNN_K, bwd)),
                               ("grid_to_points", lambda bwd: grid_to_points_costs(B, size, n, C, size // 2, bwd))):
                    fwd = fn(False)
                    both = {m: fwd[m] + fn(True)[m] for m in fwd} if with_bwd else fwd
                    rows += [Row(op, size, str(density), mode, m, c) for m, c in both.items()]
            rows += [Row("build_neighbor_map", size, str(density), "fwd", m, c)
                     for m, c in neighbor_map_costs(B, size, n).items()]
        for mode, with_bwd in modes:
            rows += [Row("mollify/wiener", size, "dense", mode, m, c)
                     for m, c in spectral_costs(B * C, size, "reflect", with_bwd).items()]
    return rows


def format_table(rows, measured=None) -> str:
    """Rows with MB, MFLOP, flops per byte, the roofline time per GPU (us) and the bound on
    A100-80GB; with `measured` ({"gpu": a GPUS key, "times": {(op, size, density, mode):
    seconds}}), the measured time and roofline time on that GPU / measured time, on the floor
    rows (the floor is what "at the roofline" means)."""
    gpus = list(GPUS)
    header = ["op", "size", "d", "mode", "model", "MB", "MFLOP", "flop/B"] + [f"{g} us" for g in gpus] + ["bound"]
    if measured is not None:
        header += ["measured us", "roofline/measured"]
    lines = []
    for r in rows:
        cells = [r.op, f"{r.size}^2", r.density, r.mode, r.model, f"{r.cost.bytes / 1e6:.2f}",
                 f"{r.cost.flops / 1e6:.1f}", f"{r.cost.flops / r.cost.bytes:.2f}"]
        cells += [f"{roofline_seconds(r.cost, g) * 1e6:.1f}" for g in gpus]
        cells.append(bound(r.cost, "A100-80GB-SXM"))
        if measured is not None:
            got = measured["times"].get((r.op, r.size, r.density, r.mode)) if r.model == "floor" else None
            roof = roofline_seconds(r.cost, measured["gpu"])
            cells += ["" if got is None else f"{got * 1e6:.1f}", "" if got is None else f"{roof / got:.3g}"]
        lines.append(cells)
    widths = [max(len(c[i]) for c in [header] + lines) for i in range(len(header))]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(c) for c in lines])


def matching_gpu(device) -> str:
    """The GPUS entry of the device by name and memory; A100-80GB-SXM when none matches."""
    props = torch.cuda.get_device_properties(device)
    if "H100" in props.name:
        return "H100-SXM"
    if "A100" in props.name:
        return "A100-80GB-SXM" if props.total_memory > 50e9 else "A100-40GB"
    return "A100-80GB-SXM"


def measure(sizes, densities, device, repeats, backend="cuda") -> tuple:
    """Times of every op on `backend` ("cuda" on a GPU; "cpu" runs the same code in the
    tests), {(op, size, density, mode): seconds}, and the Timings for the JSON."""
    import infdiff_kernels as ik

    from .sparse_conv import make_points

    generator = torch.Generator().manual_seed(0)
    timings, times = [], {}

    def record(op, size, density, mode, fn):
        t = time_fn(fn, case=f"{op} {size}^2 d={density} {mode}", impl=backend, device=device, warmup=2, repeats=repeats)
        timings.append(t)
        if t.median_s is not None:
            times[(op, size, density, mode)] = t.median_s

    def forward_and_backward(call, leaves):
        def fn():
            for t in leaves:
                t.grad = None
            out = call()
            out.backward(torch.ones_like(out))

        return fn

    for size in sizes:
        half = size // 2
        for density in densities:
            d = str(density)
            coords = make_points(B, size, density, generator).to(device)
            n = coords.shape[1]
            x = torch.randn(B, n, C, device=device, requires_grad=True)
            weight = torch.randn(C, K, K, device=device, requires_grad=True)
            bias = torch.randn(C, device=device, requires_grad=True)
            y = torch.randn(B, C, half, half, device=device, requires_grad=True)
            nmap = ik.build_neighbor_map(coords, (size, size), K, check=False, backend=backend)

            def conv():
                return ik.sparse_depthwise_conv(x, coords, (size, size), weight, bias, backend=backend, neighbor_map=nmap)

            def knn():
                return ik.knn_to_grid(x, coords, (size, size), (half, half), KNN_K, backend=backend, check=False)

            def sample():
                return ik.grid_to_points(y, coords, (size, size), backend=backend)

            for op, call, leaves in (("sparse_conv", conv, (x, weight, bias)), ("knn_to_grid", knn, (x,)),
                                     ("grid_to_points", sample, (y,))):
                record(op, size, d, "fwd", lambda call=call: torch.no_grad()(call)())
                record(op, size, d, "fwd+bwd", forward_and_backward(call, leaves))
            record("build_neighbor_map", size, d, "fwd",
                   lambda: ik.build_neighbor_map(coords, (size, size), K, check=False, backend=backend))
        u = torch.randn(B, C, size, size, device=device, requires_grad=True)
        sigma = 2.0 / size
        record("mollify/wiener", size, "dense", "fwd", lambda: torch.no_grad()(ik.mollify)(u, sigma, backend=backend))
        record("mollify/wiener", size, "dense", "fwd+bwd",
               forward_and_backward(lambda: ik.mollify(u, sigma, backend=backend), (u,)))
    return times, timings


def main(argv=None):
    parser = arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", help="grid sides (default 128 256; --quick: 128)")
    parser.add_argument("--densities", type=Fraction, nargs="*", help="e.g. 1 1/4 (default 1 1/2 1/4 1/8 1/16)")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    densities = args.densities or (QUICK_DENSITIES if args.quick else FULL_DENSITIES)
    repeats = args.repeats or (3 if args.quick else 10)
    rows = model_rows(sizes, densities)

    measured, timings = None, []
    device = resolve_device(args.device)
    if device.type == "cuda" and torch.cuda.is_available():
        times, timings = measure(sizes, densities, device, repeats)
        measured = {"gpu": matching_gpu(device), "times": times}
        reason = None
    else:
        reason = ("no CUDA device: printing the model only (the roofline bounds GPU kernels; "
                  "a CPU time beside it would compare nothing)")
        timings.append(skipped("all", "cuda", reason))

    print(f"roofline, fp32, B={B} C={C} K={K} (knn_to_grid: k={KNN_K} onto size/2; grid_to_points: grid size/2; "
          f"mollify/wiener: B*C={B * C} reflect grids)")
    print("GPUs: " + ", ".join(f"{g} {bw / 1e12:.3f} TB/s, fp32 {fl / 1e12:.1f} TFLOP/s" for g, (bw, fl) in GPUS.items()))
    print(format_table(rows, measured))
    if measured is not None:
        print(f"measured on {torch.cuda.get_device_name(device)}, compared with the {measured['gpu']} roofline "
              "of the floor model (1.0 = at the roofline)")
    else:
        print(reason)

    extra = {
        "config": {"B": B, "C": C, "K": K, "knn_k": KNN_K, "dtype": "float32", "sizes": list(sizes),
                   "densities": [str(d) for d in densities]},
        "gpus": {g: {"bytes_per_s": bw, "fp32_flops_per_s": fl} for g, (bw, fl) in GPUS.items()},
        "model": [
            {"op": r.op, "size": r.size, "density": r.density, "mode": r.mode, "model": r.model,
             "bytes": r.cost.bytes, "flops": r.cost.flops,
             "roofline_s": {g: roofline_seconds(r.cost, g) for g in GPUS}, "bound_a100_80gb": bound(r.cost, "A100-80GB-SXM")}
            for r in rows
        ],
        "measured_against": measured and measured["gpu"],
    }
    path = write_json(FAMILY, timings, args, extra, device=device if measured is not None else "cpu")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
