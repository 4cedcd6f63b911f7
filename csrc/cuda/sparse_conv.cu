// CUDA kernels of the sparse depthwise convolution (contract: docs/ops.md); the launchers are
// declared in sparse_conv.cuh. Same math and data structures as the CPU twin
// (csrc/cpu/sparse_conv.h), through the shared per-element helpers of
// csrc/common/sparse_conv_math.h. Torch-free.
//
// Forward and grad_x run one thread per (point, channel): consecutive threads cover
// consecutive channels of one point, so feature loads are coalesced and the lookup-grid
// and counts loads of a point are warp broadcasts. grad_x uses the gather form of the
// transposed convolution (the window relation is symmetric), so it needs no atomics.
// grad_w reduces over a chunk of points per block and issues one atomicAdd per
// (channel, tap) per block.
#include <algorithm>
#include <cstdint>

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

// KS is the kernel size when known at compile time (loops fully unrolled), or 0 for a
// runtime kernel size read from the shape (loops kept rolled to bound code size).
template <int KS>
__device__ __forceinline__ int kernel_size_of(const SparseConvShape& sh) {
  return KS > 0 ? KS : sh.kernel_size;
}

// s(count) for count in [0, K*K] into shared memory (entry 0 unused), so the hot loops do a
// table read instead of an IEEE division, whose slow-path subroutine call makes ptxas
// spill. The table holds exactly window_scale's values. Counts are clamped into the
// table's range: valid ones are in [1, K*K] already.
template <typename acc_t>
__device__ __forceinline__ const acc_t* fill_scale_table(const SparseConvShape& sh, int K) {
  extern __shared__ __align__(16) unsigned char scale_storage[];
  acc_t* table = reinterpret_cast<acc_t*>(scale_storage);
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, taps = K * K;
#pragma unroll 1
  for (int m = tid; m <= taps; m += blockDim.x * blockDim.y)
    table[m] = m > 0 ? window_scale<acc_t>(sh.normalize, K, m) : acc_t(0);
  __syncthreads();
  return table;
}

__device__ __forceinline__ int clamp_count(int32_t count, int taps) {
  return count < 1 ? 1 : (count > taps ? taps : count);
}

// Thread layout shared by all kernels: threadIdx.x runs over a tile of channels
// (blockIdx.y picks the tile), threadIdx.y over points, blockIdx.z (striding) over batch
// elements. No 64-bit division anywhere: ptxas implements it as a call, which costs
// spills around the call site.
dim3 channel_block(int64_t channels) {
  int tile = 1;
  while (tile < 32 && tile < channels) tile *= 2;
  if (channels > 32) tile = static_cast<int>(std::min<int64_t>(kThreads, (channels + 31) / 32 * 32));
  return dim3(tile, kThreads / tile);
}

template <int KS, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const SparseConvShape sh, const scalar_t* __restrict__ x,
                   const int32_t* __restrict__ coords, const int32_t* __restrict__ lookup,
                   const int32_t* __restrict__ counts, const scalar_t* __restrict__ weight,
                   const scalar_t* __restrict__ bias, scalar_t* __restrict__ out) {
  constexpr int kUnroll = KS > 0 ? KS : 1;
  const int K = kernel_size_of<KS>(sh), r = K / 2, taps = K * K;
  const int64_t C = sh.channels, N = sh.points;
  const acc_t* scale = fill_scale_table<acc_t>(sh, K);
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const scalar_t* wc = weight + c * taps;
  const acc_t bc = bias ? to_acc<acc_t>(bias[c]) : acc_t(0);
#pragma unroll 1
  for (int64_t b = blockIdx.z; b < sh.batch; b += gridDim.z) {
    const int32_t* grid = lookup + b * sh.height * sh.width;
    const scalar_t* xc = x + b * N * C + c;
#pragma unroll 1
    for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; n < N;
         n += static_cast<int64_t>(gridDim.x) * blockDim.y) {
      const int64_t bn = b * N + n;
      const int row = coords[2 * bn], col = coords[2 * bn + 1];
      acc_t acc = acc_t(0);
#pragma unroll kUnroll
      for (int dy = -r; dy <= r; ++dy) {
#pragma unroll kUnroll
        for (int dx = -r; dx <= r; ++dx) {
          const int32_t p = lookup_point(grid, sh.height, sh.width, row + dy, col + dx);
          if (p >= 0)
            acc += to_acc<acc_t>(wc[tap_index(dy, dx, r, K)]) * to_acc<acc_t>(xc[p * C]);
        }
      }
      out[bn * C + c] = from_acc<scalar_t>(scale[clamp_count(counts[bn], taps)] * acc + bc);
    }
  }
}

// grad_x[q] = sum_{u in window(q)} s[u] * w[:, tap(q - u)] * g[u]
template <int KS, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    grad_x_kernel(const SparseConvShape sh, const scalar_t* __restrict__ grad_out,
                  const int32_t* __restrict__ coords, const int32_t* __restrict__ lookup,
                  const int32_t* __restrict__ counts, const scalar_t* __restrict__ weight,
                  scalar_t* __restrict__ grad_x) {
  constexpr int kUnroll = KS > 0 ? KS : 1;
  const int K = kernel_size_of<KS>(sh), r = K / 2, taps = K * K;
  const int64_t C = sh.channels, N = sh.points;
  const acc_t* scale = fill_scale_table<acc_t>(sh, K);
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const scalar_t* wc = weight + c * taps;
#pragma unroll 1
  for (int64_t b = blockIdx.z; b < sh.batch; b += gridDim.z) {
    const int32_t* grid = lookup + b * sh.height * sh.width;
    const int32_t* counts_b = counts + b * N;
    const scalar_t* gc = grad_out + b * N * C + c;
#pragma unroll 1
    for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; q < N;
         q += static_cast<int64_t>(gridDim.x) * blockDim.y) {
      const int64_t bq = b * N + q;
      const int row = coords[2 * bq], col = coords[2 * bq + 1];
      acc_t acc = acc_t(0);
#pragma unroll kUnroll
      for (int dy = -r; dy <= r; ++dy) {
#pragma unroll kUnroll
        for (int dx = -r; dx <= r; ++dx) {
          const int32_t u = lookup_point(grid, sh.height, sh.width, row + dy, col + dx);
          if (u >= 0) {
            const acc_t su = scale[clamp_count(counts_b[u], taps)];
            acc += su * to_acc<acc_t>(wc[tap_index(-dy, -dx, r, K)]) * to_acc<acc_t>(gc[u * C]);
          }
        }
      }
      grad_x[bq * C + c] = from_acc<scalar_t>(acc);
    }
  }
}

// grad_w[c, tap(dy, dx)] += sum_q s[q] * g[q, c] * x[u(q, dy, dx), c].
// A block handles one chunk of points of one batch element, one channel tile and kRow
// consecutive taps of one kernel row (blockIdx.x encodes tap group and chunk), keeping
// one accumulator per tap in registers; the point rows of the block are then reduced in
// shared memory and each (channel, tap) gets a single atomicAdd.
template <int KS, int kRow, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    grad_w_kernel(const SparseConvShape sh, const scalar_t* __restrict__ grad_out,
                  const scalar_t* __restrict__ x, const int32_t* __restrict__ coords,
                  const int32_t* __restrict__ lookup, const int32_t* __restrict__ counts,
                  int chunks, int64_t chunk, acc_t* __restrict__ grad_w) {
  __shared__ acc_t partial[kRow][kThreads];
  const int K = kernel_size_of<KS>(sh), r = K / 2, taps = K * K;
  const int row_chunks = (K + kRow - 1) / kRow;
  const int group = static_cast<int>(blockIdx.x) / chunks;
  const int64_t begin = static_cast<int64_t>(blockIdx.x - group * chunks) * chunk;
  const int dy = group / row_chunks - r;
  const int dx0 = (group - (group / row_chunks) * row_chunks) * kRow - r;
  const int64_t C = sh.channels, N = sh.points;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int64_t end = begin + chunk < N ? begin + chunk : N;

  acc_t acc[kRow];
#pragma unroll
  for (int j = 0; j < kRow; ++j) acc[j] = acc_t(0);
  if (c < C) {
  #pragma unroll 1
  for (int64_t b = blockIdx.z; b < sh.batch; b += gridDim.z) {
      const int32_t* grid = lookup + b * sh.height * sh.width;
      const scalar_t* xc = x + b * N * C + c;
      for (int64_t q = b * N + begin + threadIdx.y; q < b * N + end; q += blockDim.y) {
        const int row = coords[2 * q] + dy, col = coords[2 * q + 1];
        const acc_t gq =
            window_scale<acc_t>(sh.normalize, K, counts[q]) * to_acc<acc_t>(grad_out[q * C + c]);
#pragma unroll
        for (int j = 0; j < kRow; ++j) {
          const int dx = dx0 + j;
          if (dx > r) break;
          const int32_t u = lookup_point(grid, sh.height, sh.width, row, col + dx);
          if (u >= 0) acc[j] += gq * to_acc<acc_t>(xc[u * C]);
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kRow; ++j) partial[j][tid] = acc[j];
  __syncthreads();
  const int tile = blockDim.x;
  for (int o = tid; o < kRow * tile; o += tile * blockDim.y) {
    const int j = o / tile, cx = o - j * tile;
    const int64_t cc = static_cast<int64_t>(blockIdx.y) * tile + cx;
    const int dx = dx0 + j;
    if (cc >= C || dx > r) continue;
    acc_t sum = acc_t(0);
    for (int y = 0; y < static_cast<int>(blockDim.y); ++y) sum += partial[j][y * tile + cx];
    atomicAdd(grad_w + cc * taps + tap_index(dy, dx, r, K), sum);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Shared memory of the scale table; launches needing more than the default 48 KiB
// (K > 78 in double) are refused by grid_fits.
constexpr int64_t kMaxDynamicSmem = 48 * 1024;
template <typename acc_t>
size_t scale_table_bytes(const SparseConvShape& sh) {
  return static_cast<size_t>((static_cast<int64_t>(sh.kernel_size) * sh.kernel_size + 1) * sizeof(acc_t));
}

// Grid of forward and grad_x: channel tiles on y, batch on z, point groups on x; the
// kernels stride over what does not fit.
dim3 elementwise_grid(const SparseConvShape& sh, dim3 block) {
  const int64_t x = std::max<int64_t>(1, std::min<int64_t>(ceil_div(sh.points, block.y), kMaxGridX));
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(ceil_div(sh.channels, block.x)),
              static_cast<unsigned>(std::min<int64_t>(sh.batch, kMaxGridYZ)));
}

template <int KS, typename scalar_t, typename acc_t>
void launch_forward(const SparseConvShape& sh, const scalar_t* x, const int32_t* coords,
                    const int32_t* lookup, const int32_t* counts, const scalar_t* weight,
                    const scalar_t* bias, scalar_t* out, cudaStream_t stream) {
  const dim3 block = channel_block(sh.channels);
  forward_kernel<KS, scalar_t, acc_t><<<elementwise_grid(sh, block), block, scale_table_bytes<acc_t>(sh), stream>>>(
      sh, x, coords, lookup, counts, weight, bias, out);
}

template <int KS, typename scalar_t, typename acc_t>
void launch_grad_x(const SparseConvShape& sh, const scalar_t* grad_out, const int32_t* coords,
                   const int32_t* lookup, const int32_t* counts, const scalar_t* weight,
                   scalar_t* grad_x, cudaStream_t stream) {
  const dim3 block = channel_block(sh.channels);
  grad_x_kernel<KS, scalar_t, acc_t><<<elementwise_grid(sh, block), block, scale_table_bytes<acc_t>(sh), stream>>>(
      sh, grad_out, coords, lookup, counts, weight, grad_x);
}

template <int KS, int kRow, typename scalar_t, typename acc_t>
void launch_grad_w(const SparseConvShape& sh, const scalar_t* grad_out, const scalar_t* x,
                   const int32_t* coords, const int32_t* lookup, const int32_t* counts,
                   acc_t* grad_w, cudaStream_t stream) {
  const dim3 block = channel_block(sh.channels);
  const int K = sh.kernel_size;
  const int64_t channel_tiles = ceil_div(sh.channels, block.x);
  const int64_t tap_groups = static_cast<int64_t>(K) * ceil_div(K, kRow);
  const int64_t z = std::min<int64_t>(sh.batch, kMaxGridYZ);
  // Chunks per batch element so that the whole grid has about kTargetWeightBlocks blocks,
  // but at least a few points per thread row to amortise the block reduction.
  const int64_t wanted = std::max<int64_t>(1, ceil_div(kTargetWeightBlocks, channel_tiles * tap_groups * z));
  const int64_t min_chunk = 4 * static_cast<int64_t>(block.y);
  const int64_t chunk = std::max<int64_t>(min_chunk, ceil_div(sh.points, wanted));
  const int64_t chunks = ceil_div(sh.points, chunk);
  const dim3 grid(static_cast<unsigned>(chunks * tap_groups), static_cast<unsigned>(channel_tiles),
                  static_cast<unsigned>(z));
  grad_w_kernel<KS, kRow, scalar_t, acc_t><<<grid, block, 0, stream>>>(
      sh, grad_out, x, coords, lookup, counts, static_cast<int>(chunks), chunk, grad_w);
}

// Channel tiles go on grid.y; grad_w puts (tap group, point chunk) on grid.x.
template <typename acc_t>
bool grid_fits(const SparseConvShape& sh) {
  const int64_t tap_groups = static_cast<int64_t>(sh.kernel_size) * ceil_div(sh.kernel_size, kMaxRowChunk);
  return sh.kernel_size > 0 && ceil_div(sh.channels, channel_block(sh.channels).x) <= kMaxGridYZ &&
         tap_groups * ceil_div(sh.points, 4) <= kMaxGridX &&
         static_cast<int64_t>(scale_table_bytes<acc_t>(sh)) <= kMaxDynamicSmem;
}

}  // namespace

template <typename scalar_t, typename acc_t>
cudaError_t sparse_conv_forward(const SparseConvShape& shape, const scalar_t* x,
                                const int32_t* coords, const int32_t* lookup,
                                const int32_t* counts, const scalar_t* weight,
                                const scalar_t* bias, scalar_t* out, cudaStream_t stream) {
  if (shape.batch * shape.points * shape.channels == 0) return cudaSuccess;
  if (!grid_fits<acc_t>(shape)) return cudaErrorInvalidValue;
  with_kernel_size(shape.kernel_size, [&](auto ks) {
    launch_forward<decltype(ks)::value, scalar_t, acc_t>(shape, x, coords, lookup, counts, weight, bias, out, stream);
  });
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
cudaError_t sparse_conv_backward(const SparseConvShape& shape, const scalar_t* grad_out,
                                 const scalar_t* x, const int32_t* coords,
                                 const int32_t* lookup, const int32_t* counts,
                                 const scalar_t* weight, scalar_t* grad_x, acc_t* grad_w,
                                 cudaStream_t stream) {
  if (shape.batch * shape.points * shape.channels == 0) return cudaSuccess;
  if (!grid_fits<acc_t>(shape)) return cudaErrorInvalidValue;
  if (grad_x) {
    with_kernel_size(shape.kernel_size, [&](auto ks) {
      launch_grad_x<decltype(ks)::value, scalar_t, acc_t>(shape, grad_out, coords, lookup, counts, weight, grad_x,
                                                            stream);
    });
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (grad_w) {
    // A known K keeps one whole kernel row per block; a runtime K splits rows into chunks.
    with_kernel_size(shape.kernel_size, [&](auto ks) {
      constexpr int KS = decltype(ks)::value;
      launch_grad_w<KS, (KS > 0 ? KS : kMaxRowChunk)>(shape, grad_out, x, coords, lookup, counts, grad_w, stream);
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
      const int32_t*, const scalar_t*, scalar_t*, acc_t*, cudaStream_t);

INFDIFF_INSTANTIATE_SPARSE_CONV(float, float)
INFDIFF_INSTANTIATE_SPARSE_CONV(double, double)
INFDIFF_INSTANTIATE_SPARSE_CONV(__half, float)
INFDIFF_INSTANTIATE_SPARSE_CONV(__nv_bfloat16, float)

#undef INFDIFF_INSTANTIATE_SPARSE_CONV

}  // namespace cuda
}  // namespace infdiff
