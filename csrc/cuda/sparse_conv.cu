// CUDA kernels of the sparse depthwise convolution (contract: docs/ops.md); the launchers are
// declared in sparse_conv.cuh. Same math and data structures as the CPU twin
// (csrc/cpu/sparse_conv.h), through the shared per-element helpers of
// csrc/common/sparse_conv_math.h. Torch-free.
//
// Forward and grad_x run one thread per (point, group of V channels): consecutive threads
// cover consecutive channel groups of one point, and the kernel is laid out (K*K, C), so
// the feature and weight loads of a warp are contiguous 16-byte vectors (a cache line per
// tap) and the lookup-grid and counts loads of a point are broadcasts. Each point's present
// neighbours are gathered once into a shared-memory list by its channel threads together,
// and the multiply-adds then run over that list (about d * K * K entries at density d, not
// K * K probes per channel). grad_x uses the gather form of the transposed convolution (the
// window relation is symmetric), so it needs no atomics. grad_w reduces over a chunk of
// points per block, then either issues one atomicAdd per (tap, channel) per block or, in
// deterministic mode, writes per-block partials that a second kernel sums in a fixed order.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "kernel_helpers.cuh"
#include "sparse_conv.cuh"

namespace infdiff {
namespace cuda {
namespace {

// grad_w: accumulators per thread, i.e. taps of one kernel row handled by one block.
constexpr int kMaxRowChunk = 8;
// grad_w: blocks to aim for in total, so every SM has several and the atomics stay few.
constexpr int64_t kTargetWeightBlocks = 2048;
constexpr int64_t kMaxGridX = 2147483647, kMaxGridYZ = 65535;
// Neighbour-list entries per point gathered at once: a whole window up to K = 11; larger
// windows are gathered a few kernel rows at a time, so the list stays in shared memory.
constexpr int kListEntries = 128;
// Dynamic shared memory a launch may use without opting in (cudaFuncSetAttribute).
constexpr int64_t kMaxDynamicSmem = 48 * 1024;

// Channels per thread: one 16-byte vector (4 floats, 2 doubles, 8 halves).
template <typename scalar_t>
constexpr int vector_width() {
  return static_cast<int>(16 / sizeof(scalar_t));
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

// The V channels of one row starting at p, widened. kAligned (every row 16-byte aligned,
// which the launcher checked) loads one vector. Otherwise V is 1 (the scalar path: C not a
// multiple of the vector width, or a base pointer off 16 bytes) and a thread past the last
// channel loads nothing. (A V-wide scalar tail made ptxas spill on sm_80 for 16-bit types.)
template <int V, bool kAligned, typename scalar_t, typename acc_t>
__device__ __forceinline__ void load_channels(const scalar_t* __restrict__ p, int valid, acc_t (&out)[V]) {
  if constexpr (kAligned) {
    const Vec<scalar_t, V> v = *reinterpret_cast<const Vec<scalar_t, V>*>(p);
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = to_acc<acc_t>(v.v[k]);
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = k < valid ? to_acc<acc_t>(p[k]) : acc_t(0);
  }
}

template <int V, bool kAligned, typename scalar_t, typename acc_t>
__device__ __forceinline__ void store_channels(scalar_t* __restrict__ p, int valid, const acc_t (&in)[V]) {
  if constexpr (kAligned) {
    Vec<scalar_t, V> v;
#pragma unroll
    for (int k = 0; k < V; ++k) v.v[k] = from_acc<scalar_t>(in[k]);
    *reinterpret_cast<Vec<scalar_t, V>*>(p) = v;
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k)
      if (k < valid) p[k] = from_acc<scalar_t>(in[k]);
  }
}

// KS is the kernel size when known at compile time (loops fully unrolled), or 0 for a
// runtime kernel size read from the shape (loops kept rolled to bound code size).
template <int KS>
__device__ __forceinline__ int kernel_size_of(const SparseConvShape& sh) {
  return KS > 0 ? KS : sh.kernel_size;
}

// Shared memory of forward and grad_x, one region after the other:
//   s(count) for count in [0, K*K] (entry 0 unused), so the hot loops do a table read
//     instead of an IEEE division, whose slow-path subroutine call makes ptxas spill;
//   per point row of the block, `entries` neighbour indices, their taps, and the number of
//     present neighbours in each of the `rows` kernel rows gathered at once.
struct WindowLayout {
  int rows;     // kernel rows gathered at once
  int entries;  // rows * K: list capacity per point
};

template <typename acc_t>
__host__ __device__ __forceinline__ int64_t scale_table_bytes(int kernel_size) {
  // Rounded up to 16 bytes so the int32 lists after it stay aligned.
  return ((static_cast<int64_t>(kernel_size) * kernel_size + 1) * static_cast<int64_t>(sizeof(acc_t)) + 15) / 16 * 16;
}

inline int64_t list_bytes_per_point(const WindowLayout& lay) {
  return (2 * static_cast<int64_t>(lay.entries) + lay.rows) * static_cast<int64_t>(sizeof(int32_t));
}

// Fills the scale table (the table holds exactly window_scale's values) and returns it.
template <typename acc_t>
__device__ __forceinline__ const acc_t* fill_scale_table(const SparseConvShape& sh, int K, unsigned char* smem) {
  acc_t* table = reinterpret_cast<acc_t*>(smem);
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, taps = K * K;
#pragma unroll 1
  for (int m = tid; m <= taps; m += blockDim.x * blockDim.y)
    table[m] = m > 0 ? window_scale<acc_t>(sh.normalize, K, m) : acc_t(0);
  __syncthreads();
  return table;
}

// Counts are clamped into the table's range: valid ones are in [1, K*K] already.
__device__ __forceinline__ int clamp_count(int32_t count, int taps) {
  return count < 1 ? 1 : (count > taps ? taps : count);
}

// Thread layout shared by all kernels: threadIdx.x runs over a tile of channel groups
// (blockIdx.y picks the tile), threadIdx.y over points, blockIdx.z (striding) over batch
// elements. No 64-bit division anywhere: ptxas implements it as a call, which costs
// spills around the call site.
dim3 channel_block(int64_t groups) {
  int tile = 1;
  while (tile < 32 && tile < groups) tile *= 2;
  if (groups > 32) tile = static_cast<int>(std::min<int64_t>(kThreads, (groups + 31) / 32 * 32));
  return dim3(tile, kThreads / tile);
}

// Forward (kGradX false):  out[n] = s[n] * sum_{p in window(n)} w[tap(p - n)] * x[p] + bias
// grad_x (kGradX true):    grad_x[q] = sum_{u in window(q)} s[u] * w[tap(q - u)] * g[u]
// `src` is x or g, `weight_t` the (K*K, C) kernel. Every thread of the block runs the same
// number of loop trips (the point loop strides by whole blocks), because the list is built
// between barriers; threads without a point or channels only help build it.
template <bool kGradX, int KS, int V, bool kAligned, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    window_kernel(const SparseConvShape sh, const WindowLayout lay, const scalar_t* __restrict__ src,
                  const int32_t* __restrict__ coords, const int32_t* __restrict__ lookup,
                  const int32_t* __restrict__ counts, const scalar_t* __restrict__ weight_t,
                  const scalar_t* __restrict__ bias, scalar_t* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char window_storage[];
  constexpr int kUnroll = KS > 0 ? KS : 1;
  const int K = kernel_size_of<KS>(sh), r = K / 2, taps = K * K;
  const int64_t C = sh.channels, N = sh.points;
  const acc_t* scale = fill_scale_table<acc_t>(sh, K, window_storage);
  const int point_rows = blockDim.y;
  int32_t* lists = reinterpret_cast<int32_t*>(window_storage + scale_table_bytes<acc_t>(K));
  int32_t* nbr = lists + threadIdx.y * lay.entries;
  int32_t* tap = lists + (point_rows + threadIdx.y) * lay.entries;
  int32_t* row_found = lists + 2 * point_rows * lay.entries + threadIdx.y * lay.rows;

  const int64_t c0 = (static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x) * V;
  const bool has_channels = c0 < C;
  const int valid = has_channels ? static_cast<int>(C - c0 < V ? C - c0 : V) : 0;
  acc_t bias_c[V];
#pragma unroll
  for (int k = 0; k < V; ++k) bias_c[k] = acc_t(0);
  if (!kGradX && bias && has_channels) load_channels<V, kAligned>(bias + c0, valid, bias_c);

#pragma unroll 1
  for (int64_t b = blockIdx.z; b < sh.batch; b += gridDim.z) {
    const int32_t* grid = lookup + b * sh.height * sh.width;
    const int32_t* counts_b = counts + b * N;
    const scalar_t* src_b = src + b * N * C + c0;
#pragma unroll 1
    for (int64_t n0 = static_cast<int64_t>(blockIdx.x) * point_rows; n0 < N;
         n0 += static_cast<int64_t>(gridDim.x) * point_rows) {
      const int64_t n = n0 + threadIdx.y;
      const bool has_point = n < N;
      const int row = has_point ? coords[2 * (b * N + n)] : 0;
      const int col = has_point ? coords[2 * (b * N + n) + 1] : 0;
      acc_t acc[V];
#pragma unroll
      for (int k = 0; k < V; ++k) acc[k] = acc_t(0);
#pragma unroll 1
      for (int dy0 = -r; dy0 <= r; dy0 += lay.rows) {
        const int rows_here = r - dy0 + 1 < lay.rows ? r - dy0 + 1 : lay.rows;
        // 1. The channel threads of a point share out its kernel rows and count each
        //    row's present neighbours ...
#pragma unroll 1
        for (int i = threadIdx.x; i < rows_here; i += blockDim.x) {
          int found = 0;
#pragma unroll kUnroll
          for (int dx = -r; dx <= r; ++dx)
            found += has_point && lookup_point(grid, sh.height, sh.width, row + dy0 + i, col + dx) >= 0;
          row_found[i] = found;
        }
        __syncthreads();
        // 2. ... then write them in tap order, each row at the sum of the rows before it,
        //    so the list (and the order of the sums) does not depend on thread timing.
#pragma unroll 1
        for (int i = threadIdx.x; i < rows_here; i += blockDim.x) {
          int at = 0;
          for (int i2 = 0; i2 < i; ++i2) at += row_found[i2];
          const int dy = dy0 + i;
#pragma unroll kUnroll
          for (int dx = -r; dx <= r; ++dx) {
            const int32_t p = has_point ? lookup_point(grid, sh.height, sh.width, row + dy, col + dx) : -1;
            if (p >= 0) {
              nbr[at] = p;
              tap[at] = kGradX ? tap_index(-dy, -dx, r, K) : tap_index(dy, dx, r, K);
              ++at;
            }
          }
        }
        __syncthreads();
        int found = 0;
        for (int i = 0; i < rows_here; ++i) found += row_found[i];
        // 3. The multiply-adds over the present neighbours only.
        if (has_point && has_channels) {
#pragma unroll 1
          for (int j = 0; j < found; ++j) {
            const int32_t p = nbr[j];
            acc_t w[V], v[V];
            load_channels<V, kAligned>(weight_t + static_cast<int64_t>(tap[j]) * C + c0, valid, w);
            load_channels<V, kAligned>(src_b + static_cast<int64_t>(p) * C, valid, v);
            if (kGradX) {
              const acc_t su = scale[clamp_count(counts_b[p], taps)];
#pragma unroll
              for (int k = 0; k < V; ++k) acc[k] += su * w[k] * v[k];
            } else {
#pragma unroll
              for (int k = 0; k < V; ++k) acc[k] += w[k] * v[k];
            }
          }
        }
        __syncthreads();  // the list is rewritten by the next chunk or point
      }
      if (has_point && has_channels) {
        if (!kGradX) {
          const acc_t sn = scale[clamp_count(counts_b[n], taps)];
#pragma unroll
          for (int k = 0; k < V; ++k) acc[k] = sn * acc[k] + bias_c[k];
        }
        store_channels<V, kAligned>(out + (b * N + n) * C + c0, valid, acc);
      }
    }
  }
}

// grad_w[tap(dy, dx), c] += sum_q s[q] * g[q, c] * x[u(q, dy, dx), c], grad_w (K*K, C).
// A block handles one chunk of points (of every batch element blockIdx.z strides over), one
// channel tile and kRow consecutive taps of one kernel row (blockIdx.x encodes tap group
// and chunk), keeping one accumulator per (tap, channel) in registers; the point rows of the
// block are then reduced in shared memory, one tap at a time, in a fixed order. The block's
// sum goes to grad_w with one atomicAdd per (tap, channel), or, when `partials` is given
// (deterministic mode), to its own slot (blockIdx.z * chunks + chunk) of partials
// (slots, K*K, C), which sum_partials_kernel then adds up in slot order.
// __launch_bounds__ asks for one resident block at least: with the default, ptxas held the
// kernel to 64-80 registers and spilled a few bytes for 16-bit and double inputs (kRow * V
// accumulators); with it, 88 registers and no spill.
template <int KS, int kRow, int V, bool kAligned, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads, 1)
    grad_w_kernel(const SparseConvShape sh, const scalar_t* __restrict__ grad_out,
                  const scalar_t* __restrict__ x, const int32_t* __restrict__ coords,
                  const int32_t* __restrict__ lookup, const int32_t* __restrict__ counts,
                  int chunks, int64_t chunk, acc_t* __restrict__ grad_w, acc_t* __restrict__ partials) {
  extern __shared__ __align__(16) unsigned char weight_storage[];
  __shared__ acc_t partial[kThreads * V];
  const int K = kernel_size_of<KS>(sh), r = K / 2, taps = K * K;
  // A table read, not window_scale's division: its slow-path call made ptxas spill on sm_80.
  const acc_t* scale = fill_scale_table<acc_t>(sh, K, weight_storage);
  const int row_chunks = (K + kRow - 1) / kRow;
  const int group = static_cast<int>(blockIdx.x) / chunks;
  const int chunk_index = static_cast<int>(blockIdx.x) - group * chunks;
  const int64_t begin = static_cast<int64_t>(chunk_index) * chunk;
  const int dy = group / row_chunks - r;
  const int dx0 = (group - (group / row_chunks) * row_chunks) * kRow - r;
  const int64_t C = sh.channels, N = sh.points;
  const int64_t c0 = (static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x) * V;
  const int valid = c0 < C ? static_cast<int>(C - c0 < V ? C - c0 : V) : 0;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, threads = blockDim.x * blockDim.y;
  const int64_t end = begin + chunk < N ? begin + chunk : N;

  acc_t acc[kRow][V];
#pragma unroll
  for (int j = 0; j < kRow; ++j)
#pragma unroll
    for (int k = 0; k < V; ++k) acc[j][k] = acc_t(0);
  if (valid > 0) {
#pragma unroll 1
    for (int64_t b = blockIdx.z; b < sh.batch; b += gridDim.z) {
      const int32_t* grid = lookup + b * sh.height * sh.width;
      const scalar_t* xb = x + b * N * C + c0;
#pragma unroll 1
      for (int64_t q = b * N + begin + threadIdx.y; q < b * N + end; q += blockDim.y) {
        const int row = coords[2 * q] + dy, col = coords[2 * q + 1];
        const acc_t sq = scale[clamp_count(counts[q], taps)];
        acc_t gq[V];
        load_channels<V, kAligned>(grad_out + q * C + c0, valid, gq);
#pragma unroll
        for (int k = 0; k < V; ++k) gq[k] *= sq;
#pragma unroll
        for (int j = 0; j < kRow; ++j) {
          const int dx = dx0 + j;
          if (dx > r) break;
          const int32_t u = lookup_point(grid, sh.height, sh.width, row, col + dx);
          if (u >= 0) {
            acc_t xu[V];
            load_channels<V, kAligned>(xb + static_cast<int64_t>(u) * C, valid, xu);
#pragma unroll
            for (int k = 0; k < V; ++k) acc[j][k] += gq[k] * xu[k];
          }
        }
      }
    }
  }
  // Block reduction, one tap at a time: thread (x, y) parks its V sums at
  // partial[y * tile * V + x * V + k]; thread o then sums column o over the point rows.
  const int row_width = blockDim.x * V;
  const int64_t c_tile = static_cast<int64_t>(blockIdx.y) * row_width;
  acc_t* slot = partials ? partials + (static_cast<int64_t>(blockIdx.z) * chunks + chunk_index) * taps * C : nullptr;
#pragma unroll
  for (int j = 0; j < kRow; ++j) {
    const int dx = dx0 + j;
    if (dx > r) break;  // the same for the whole block
#pragma unroll
    for (int k = 0; k < V; ++k) partial[tid * V + k] = acc[j][k];
    __syncthreads();
    const int64_t t = tap_index(dy, dx, r, K);
    for (int o = tid; o < row_width; o += threads) {
      const int64_t c = c_tile + o;
      if (c >= C) continue;
      acc_t sum = acc_t(0);
      for (int y = 0; y < static_cast<int>(blockDim.y); ++y) sum += partial[y * row_width + o];
      if (slot)
        slot[t * C + c] = sum;
      else
        atomicAdd(grad_w + t * C + c, sum);
    }
    __syncthreads();
  }
}

// Deterministic grad_w: element e of (K*K, C) is the sum of the slots' partials in slot order.
template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    sum_partials_kernel(int64_t elements, int64_t slots, const acc_t* __restrict__ partials,
                        acc_t* __restrict__ grad_w) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= elements) return;
  acc_t sum = acc_t(0);
  for (int64_t s = 0; s < slots; ++s) sum += partials[s * elements + e];
  grad_w[e] = sum;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Every row of every tensor the kernels read with vectors must start on 16 bytes.
bool vector_aligned(int64_t channels, int width, std::initializer_list<const void*> pointers) {
  if (channels % width != 0) return false;
  for (const void* p : pointers)
    if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// Calls launch(std::bool_constant<aligned>).
template <typename Launch>
void with_alignment(bool aligned, Launch&& launch) {
  if (aligned)
    launch(std::true_type{});
  else
    launch(std::false_type{});
}

// Threads per point: one per `width` channels (one vector, or one channel on the scalar path).
int64_t channel_groups(const SparseConvShape& sh, int width) { return ceil_div(sh.channels, width); }

// The gather layout of forward and grad_x, and the block it fits in: the whole window at
// once up to kListEntries entries, else as many kernel rows as fit; point rows per block
// reduced (to a power of two) until the lists fit in the shared memory left by the table.
template <typename acc_t>
bool window_launch_config(const SparseConvShape& sh, int width, WindowLayout* lay, dim3* block) {
  const int K = sh.kernel_size;
  const int rows = K * K <= kListEntries ? K : std::max(1, kListEntries / K);
  *lay = WindowLayout{rows, rows * K};
  *block = channel_block(channel_groups(sh, width));
  const int64_t room = kMaxDynamicSmem - scale_table_bytes<acc_t>(K);
  while (block->y > 1 && static_cast<int64_t>(block->y) * list_bytes_per_point(*lay) > room) block->y /= 2;
  return static_cast<int64_t>(block->y) * list_bytes_per_point(*lay) <= room;
}

template <typename acc_t>
size_t window_smem_bytes(const SparseConvShape& sh, const WindowLayout& lay, dim3 block) {
  return static_cast<size_t>(scale_table_bytes<acc_t>(sh.kernel_size) + block.y * list_bytes_per_point(lay));
}

// Grid of forward and grad_x: channel tiles on y, batch on z, point groups on x; the
// kernels stride over what does not fit.
dim3 window_grid(const SparseConvShape& sh, int width, dim3 block) {
  const int64_t x = std::max<int64_t>(1, std::min<int64_t>(ceil_div(sh.points, block.y), kMaxGridX));
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(ceil_div(channel_groups(sh, width), block.x)),
              static_cast<unsigned>(std::min<int64_t>(sh.batch, kMaxGridYZ)));
}

template <bool kGradX, int KS, typename scalar_t, typename acc_t>
void launch_window(const SparseConvShape& sh, const scalar_t* src, const int32_t* coords, const int32_t* lookup,
                   const int32_t* counts, const scalar_t* weight_t, const scalar_t* bias, scalar_t* out,
                   cudaStream_t stream) {
  const bool aligned = vector_aligned(sh.channels, vector_width<scalar_t>(), {src, weight_t, bias, out});
  with_alignment(aligned, [&](auto a) {
    constexpr bool kAligned = decltype(a)::value;
    constexpr int V = kAligned ? vector_width<scalar_t>() : 1;
    WindowLayout lay;
    dim3 block;
    window_launch_config<acc_t>(sh, V, &lay, &block);
    window_kernel<kGradX, KS, V, kAligned, scalar_t, acc_t><<<window_grid(sh, V, block), block, window_smem_bytes<acc_t>(sh, lay, block), stream>>>(
        sh, lay, src, coords, lookup, counts, weight_t, bias, out);
  });
}

// Chunking of grad_w: chunks per batch element so that the whole grid has about
// kTargetWeightBlocks blocks, but at least a few points per thread row to amortise the
// block reduction.
struct WeightGrid {
  dim3 block, grid;
  int64_t chunk, chunks;
};

template <int kRow>
WeightGrid weight_grid(const SparseConvShape& sh, int width) {
  WeightGrid wg;
  wg.block = channel_block(channel_groups(sh, width));
  const int K = sh.kernel_size;
  const int64_t channel_tiles = ceil_div(channel_groups(sh, width), wg.block.x);
  const int64_t tap_groups = static_cast<int64_t>(K) * ceil_div(K, kRow);
  const int64_t z = std::min<int64_t>(sh.batch, kMaxGridYZ);
  const int64_t wanted = std::max<int64_t>(1, ceil_div(kTargetWeightBlocks, channel_tiles * tap_groups * z));
  const int64_t min_chunk = 4 * static_cast<int64_t>(wg.block.y);
  wg.chunk = std::max<int64_t>(min_chunk, ceil_div(sh.points, wanted));
  wg.chunks = ceil_div(sh.points, wg.chunk);
  wg.grid = dim3(static_cast<unsigned>(wg.chunks * tap_groups), static_cast<unsigned>(channel_tiles),
                 static_cast<unsigned>(z));
  return wg;
}

template <int KS, int kRow, typename scalar_t, typename acc_t>
void launch_grad_w(const SparseConvShape& sh, const scalar_t* grad_out, const scalar_t* x,
                   const int32_t* coords, const int32_t* lookup, const int32_t* counts,
                   acc_t* grad_w, acc_t* partials, cudaStream_t stream) {
  const bool aligned = vector_aligned(sh.channels, vector_width<scalar_t>(), {grad_out, x});
  const int width = aligned ? vector_width<scalar_t>() : 1;
  const WeightGrid wg = weight_grid<kRow>(sh, width);
  with_alignment(aligned, [&](auto a) {
    constexpr bool kAligned = decltype(a)::value;
    constexpr int V = kAligned ? vector_width<scalar_t>() : 1;
    grad_w_kernel<KS, kRow, V, kAligned, scalar_t, acc_t><<<wg.grid, wg.block, scale_table_bytes<acc_t>(sh.kernel_size), stream>>>(
        sh, grad_out, x, coords, lookup, counts, static_cast<int>(wg.chunks), wg.chunk, grad_w, partials);
  });
  if (partials) {
    const int64_t elements = static_cast<int64_t>(sh.kernel_size) * sh.kernel_size * sh.channels;
    sum_partials_kernel<acc_t><<<blocks_for(elements), kThreads, 0, stream>>>(
        elements, static_cast<int64_t>(wg.grid.z) * wg.chunks, partials, grad_w);
  }
}

// Channel tiles go on grid.y; grad_w puts (tap group, point chunk) on grid.x.
template <typename scalar_t, typename acc_t>
bool grid_fits(const SparseConvShape& sh) {
  if (sh.kernel_size <= 0) return false;
  WindowLayout lay;
  dim3 block;
  const int64_t tap_groups = static_cast<int64_t>(sh.kernel_size) * ceil_div(sh.kernel_size, kMaxRowChunk);
  // The scalar path (one channel per thread) has the most channel tiles and point rows.
  // grad_w holds the scale table and a vector of acc_t per thread.
  const int64_t grad_w_smem = scale_table_bytes<acc_t>(sh.kernel_size) +
                              kThreads * vector_width<scalar_t>() * static_cast<int64_t>(sizeof(acc_t));
  return window_launch_config<acc_t>(sh, 1, &lay, &block) && grad_w_smem <= kMaxDynamicSmem &&
         ceil_div(sh.channels, block.x) <= kMaxGridYZ &&
         tap_groups * ceil_div(sh.points, 4) <= kMaxGridX;
}

// A known K keeps one whole kernel row per grad_w block; a runtime K splits rows into chunks.
template <int KS>
constexpr int row_chunk() {
  return KS > 0 ? KS : kMaxRowChunk;
}

}  // namespace

template <typename scalar_t, typename acc_t>
cudaError_t sparse_conv_forward(const SparseConvShape& shape, const scalar_t* x,
                                const int32_t* coords, const int32_t* lookup,
                                const int32_t* counts, const scalar_t* weight_t,
                                const scalar_t* bias, scalar_t* out, cudaStream_t stream) {
  if (shape.batch * shape.points * shape.channels == 0) return cudaSuccess;
  if (!grid_fits<scalar_t, acc_t>(shape)) return cudaErrorInvalidValue;
  with_kernel_size(shape.kernel_size, [&](auto ks) {
    launch_window<false, decltype(ks)::value, scalar_t, acc_t>(shape, x, coords, lookup, counts, weight_t, bias, out, stream);
  });
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
int64_t sparse_conv_grad_w_scratch(const SparseConvShape& shape) {
  if (shape.batch * shape.points * shape.channels == 0 || shape.kernel_size <= 0) return 0;
  // The launch picks the vector or the scalar path from the pointers, which are not known
  // here: room for the larger of the two.
  int64_t elements = 0;
  with_kernel_size(shape.kernel_size, [&](auto ks) {
    for (int width : {1, vector_width<scalar_t>()}) {
      const WeightGrid wg = weight_grid<row_chunk<decltype(ks)::value>()>(shape, width);
      elements = std::max(elements, static_cast<int64_t>(wg.grid.z) * wg.chunks * shape.kernel_size *
                                        shape.kernel_size * shape.channels);
    }
  });
  return elements;
}

template <typename scalar_t, typename acc_t>
cudaError_t sparse_conv_backward(const SparseConvShape& shape, const scalar_t* grad_out,
                                 const scalar_t* x, const int32_t* coords,
                                 const int32_t* lookup, const int32_t* counts,
                                 const scalar_t* weight_t, scalar_t* grad_x, acc_t* grad_w,
                                 acc_t* grad_w_scratch, cudaStream_t stream) {
  if (shape.batch * shape.points * shape.channels == 0) return cudaSuccess;
  if (!grid_fits<scalar_t, acc_t>(shape)) return cudaErrorInvalidValue;
  if (grad_x) {
    with_kernel_size(shape.kernel_size, [&](auto ks) {
      launch_window<true, decltype(ks)::value, scalar_t, acc_t>(shape, grad_out, coords, lookup, counts, weight_t,
                                               static_cast<const scalar_t*>(nullptr), grad_x, stream);
    });
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (grad_w) {
    with_kernel_size(shape.kernel_size, [&](auto ks) {
      constexpr int KS = decltype(ks)::value;
      launch_grad_w<KS, row_chunk<KS>()>(shape, grad_out, x, coords, lookup, counts, grad_w, grad_w_scratch, stream);
    });
  }
  return cudaGetLastError();
}

#define INFDIFF_INSTANTIATE_SPARSE_CONV(scalar_t, acc_t)                                         \
  template cudaError_t sparse_conv_forward<scalar_t, acc_t>(                                     \
      const SparseConvShape&, const scalar_t*, const int32_t*, const int32_t*, const int32_t*,  \
      const scalar_t*, const scalar_t*, scalar_t*, cudaStream_t);                                \
  template cudaError_t sparse_conv_backward<scalar_t, acc_t>(                                    \
      const SparseConvShape&, const scalar_t*, const scalar_t*, const int32_t*, const int32_t*, \
      const int32_t*, const scalar_t*, scalar_t*, acc_t*, acc_t*, cudaStream_t);            \
  template int64_t sparse_conv_grad_w_scratch<scalar_t, acc_t>(const SparseConvShape&);

INFDIFF_INSTANTIATE_SPARSE_CONV(float, float)
INFDIFF_INSTANTIATE_SPARSE_CONV(double, double)
INFDIFF_INSTANTIATE_SPARSE_CONV(__half, float)
INFDIFF_INSTANTIATE_SPARSE_CONV(__nv_bfloat16, float)

#undef INFDIFF_INSTANTIATE_SPARSE_CONV

}  // namespace cuda
}  // namespace infdiff
