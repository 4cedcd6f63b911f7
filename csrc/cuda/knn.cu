// CUDA kernels of the k-NN lerp (SPEC section 2); launchers declared in knn.cuh. Same math
// as the CPU twin (csrc/cpu/knn.h) through csrc/common/knn_math.h. Torch-free.
//
// The search keeps each thread's running k-best list in the output buffers (global memory,
// L1-cached), so k is not bounded by registers. Gather and bilinear sampling run one thread
// per output element with the fastest index on the contiguous output axis; the scatters
// (backward) use atomicAdd into an accumulation-dtype buffer.
#include <cstdint>

#include "kernel_helpers.cuh"
#include "knn.cuh"

namespace infdiff {
namespace cuda {
namespace {

template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    search_kernel(const KnnGeometry g, int64_t N, int k, int64_t total, const int32_t* __restrict__ coords,
                  const int32_t* __restrict__ tile_start, const int32_t* __restrict__ tile_points,
                  int64_t* __restrict__ dist, int32_t* __restrict__ index, acc_t* __restrict__ weights) {
  const int64_t bc = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (bc >= total) return;
  const int cells = g.h * g.w;
  const int b = static_cast<int>(bc / cells), cell = static_cast<int>(bc - static_cast<int64_t>(b) * cells);
  const int i = cell / g.w, j = cell - i * g.w;
  const int tiles = g.tiles_h * g.tiles_w;
  const int32_t* cb = coords + b * N * 2;
  const int32_t* start = tile_start + static_cast<int64_t>(b) * (tiles + 1);
  const int32_t* pts = tile_points + b * N;
  int64_t* d = dist + bc * k;
  int32_t* idx = index + bc * k;
  const int tr = nearest_lattice_index(i, g.H, g.h) / g.tile, tc = nearest_lattice_index(j, g.W, g.w) / g.tile;
  int count = 0;
  for (int R = 0;; ++R) {
    if (R > 0) {
      const int64_t bound = ring_lower_bound(g, i, j, tr, tc, R);
      if (bound == kNoBound || (count == k && bound > d[k - 1])) break;
    }
    const int a0 = max(tr - R, 0), a1 = min(tr + R, g.tiles_h - 1);
    for (int a = a0; a <= a1; ++a) {
      const bool edge_row = (a == tr - R || a == tr + R);
      const int step = edge_row || R == 0 ? 1 : 2 * R;
      for (int t = tc - R; t <= tc + R; t += step) {
        if (t < 0 || t >= g.tiles_w) continue;
        const int tile = a * g.tiles_w + t;
        for (int32_t q = start[tile]; q < start[tile + 1]; ++q) {
          const int32_t p = pts[q];
          count = knn_offer(d, idx, count, k, lattice_distance(g, cb[2 * p], cb[2 * p + 1], i, j), p);
        }
      }
    }
  }
  double total_w = 0;
  for (int s = 0; s < k; ++s) total_w += inverse_square_weight(g, d[s]);
  for (int s = 0; s < k; ++s) weights[bc * k + s] = static_cast<acc_t>(inverse_square_weight(g, d[s]) / total_w);
}

// Thread per (b, c, cell), cell fastest: output stores coalesce.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(int64_t N, int64_t C, int64_t cells, int k, int64_t total, const scalar_t* __restrict__ x,
                  const int32_t* __restrict__ index, const acc_t* __restrict__ weights, scalar_t* __restrict__ out) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const int64_t bc = e / cells, g = e - bc * cells;
  const int64_t b = bc / C, c = bc - b * C;
  const int64_t base = (b * cells + g) * k;
  acc_t acc = 0;
  for (int s = 0; s < k; ++s) acc += weights[base + s] * to_acc<acc_t>(x[(b * N + index[base + s]) * C + c]);
  out[e] = from_acc<scalar_t>(acc);
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    scatter_kernel(int64_t N, int64_t C, int64_t cells, int k, int64_t total, const scalar_t* __restrict__ grad_out,
                   const int32_t* __restrict__ index, const acc_t* __restrict__ weights, acc_t* __restrict__ grad_x) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const int64_t bc = e / cells, g = e - bc * cells;
  const int64_t b = bc / C, c = bc - b * C;
  const int64_t base = (b * cells + g) * k;
  const acc_t go = to_acc<acc_t>(grad_out[e]);
  for (int s = 0; s < k; ++s) atomicAdd(grad_x + (b * N + index[base + s]) * C + c, weights[base + s] * go);
}

// Thread per (b, n, c), c fastest: point-feature accesses coalesce.
template <bool kAdjoint, typename scalar_t, typename acc_t, typename out_t>
__global__ void __launch_bounds__(kThreads)
    sample_kernel(int64_t N, int64_t C, int H, int W, int h, int w, int64_t total, const scalar_t* __restrict__ in,
                  const int32_t* __restrict__ coords, out_t* __restrict__ out) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const int64_t bn = e / C, c = e - bn * C, b = bn / N;
  const BilinearStencil<acc_t> st = bilinear_stencil<acc_t>(coords[2 * bn], coords[2 * bn + 1], H, W, h, w);
  const int64_t plane = (b * C + c) * h * w;
  if constexpr (kAdjoint) {
    const acc_t go = to_acc<acc_t>(in[e]);
#pragma unroll
    for (int t = 0; t < 4; ++t) atomicAdd(out + plane + st.offset[t], st.weight[t] * go);
  } else {
    acc_t v = 0;
#pragma unroll
    for (int t = 0; t < 4; ++t) v += st.weight[t] * to_acc<acc_t>(in[plane + st.offset[t]]);
    out[e] = from_acc<scalar_t>(v);
  }
}

}  // namespace

template <typename acc_t>
cudaError_t knn_search(const KnnGeometry& geo, int64_t batch, int64_t N, int k, const int32_t* coords,
                       const int32_t* tile_start, const int32_t* tile_points, int64_t* dist, int32_t* index,
                       acc_t* weights, cudaStream_t stream) {
  const int64_t total = batch * geo.h * static_cast<int64_t>(geo.w);
  if (total == 0) return cudaSuccess;
  search_kernel<acc_t><<<blocks_for(total), kThreads, 0, stream>>>(geo, N, k, total, coords, tile_start, tile_points,
                                                                   dist, index, weights);
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
cudaError_t knn_gather(int64_t batch, int64_t N, int64_t C, int64_t cells, int k, const scalar_t* x,
                       const int32_t* index, const acc_t* weights, scalar_t* out, cudaStream_t stream) {
  const int64_t total = batch * C * cells;
  if (total == 0) return cudaSuccess;
  gather_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(N, C, cells, k, total, x, index,
                                                                             weights, out);
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
cudaError_t knn_scatter(int64_t batch, int64_t N, int64_t C, int64_t cells, int k, const scalar_t* grad_out,
                        const int32_t* index, const acc_t* weights, acc_t* grad_x, cudaStream_t stream) {
  const int64_t total = batch * C * cells;
  if (total == 0) return cudaSuccess;
  scatter_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(N, C, cells, k, total, grad_out,
                                                                              index, weights, grad_x);
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
cudaError_t grid_to_points(int64_t batch, int64_t N, int64_t C, int H, int W, int h, int w, const scalar_t* y,
                           const int32_t* coords, scalar_t* out, cudaStream_t stream) {
  const int64_t total = batch * N * C;
  if (total == 0) return cudaSuccess;
  sample_kernel<false, scalar_t, acc_t, scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(N, C, H, W, h, w,
                                                                                             total, y, coords, out);
  return cudaGetLastError();
}

template <typename scalar_t, typename acc_t>
cudaError_t grid_to_points_backward(int64_t batch, int64_t N, int64_t C, int H, int W, int h, int w,
                                    const scalar_t* grad_out, const int32_t* coords, acc_t* grad_y,
                                    cudaStream_t stream) {
  const int64_t total = batch * N * C;
  if (total == 0) return cudaSuccess;
  sample_kernel<true, scalar_t, acc_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(N, C, H, W, h, w, total,
                                                                                         grad_out, coords, grad_y);
  return cudaGetLastError();
}

template cudaError_t knn_search<float>(const KnnGeometry&, int64_t, int64_t, int, const int32_t*, const int32_t*,
                                       const int32_t*, int64_t*, int32_t*, float*, cudaStream_t);
template cudaError_t knn_search<double>(const KnnGeometry&, int64_t, int64_t, int, const int32_t*, const int32_t*,
                                        const int32_t*, int64_t*, int32_t*, double*, cudaStream_t);

#define INFDIFF_KNN_INSTANTIATE(scalar_t, acc_t)                                                                  \
  template cudaError_t knn_gather<scalar_t, acc_t>(int64_t, int64_t, int64_t, int64_t, int, const scalar_t*,      \
                                                   const int32_t*, const acc_t*, scalar_t*, cudaStream_t);        \
  template cudaError_t knn_scatter<scalar_t, acc_t>(int64_t, int64_t, int64_t, int64_t, int, const scalar_t*,     \
                                                    const int32_t*, const acc_t*, acc_t*, cudaStream_t);          \
  template cudaError_t grid_to_points<scalar_t, acc_t>(int64_t, int64_t, int64_t, int, int, int, int,             \
                                                       const scalar_t*, const int32_t*, scalar_t*, cudaStream_t); \
  template cudaError_t grid_to_points_backward<scalar_t, acc_t>(int64_t, int64_t, int64_t, int, int, int, int,    \
                                                                const scalar_t*, const int32_t*, acc_t*,          \
                                                                cudaStream_t);

INFDIFF_KNN_INSTANTIATE(float, float)
INFDIFF_KNN_INSTANTIATE(double, double)
INFDIFF_KNN_INSTANTIATE(__half, float)
INFDIFF_KNN_INSTANTIATE(__nv_bfloat16, float)

}  // namespace cuda
}  // namespace infdiff
