// CUDA kernels of the k-NN lerp (contract: docs/ops.md); launchers declared in knn.cuh. Same math
// as the CPU twin (csrc/cpu/knn.h) through csrc/common/knn_math.h, and the same tile buckets
// and ring walk through csrc/common/knn_tiles.h. Torch-free.
//
// The search buckets the points by tile with a counting sort on the device (count, scan,
// fill), then keeps each thread's running k-best list in the output buffers (global memory,
// L1-cached), so k is not bounded by registers. Gather and bilinear sampling run one thread
// per output element with the fastest index on the contiguous output axis; the scatters
// (backward) use atomicAdd into an accumulation-dtype buffer, except the deterministic k-NN
// scatter, which inverts the neighbour lists (count, scan, fill, sort per point) and sums each
// point's references in cell order.
#include <cstdint>

#include "kernel_helpers.cuh"
#include "knn.cuh"

namespace infdiff {
namespace cuda {
namespace {

// Bucketing, step 1 of 3: thread per (b, n) counts its point into tile_start[b, tile + 1]
// (zero-filled by the caller) and keeps its rank among the tile's points.
__global__ void __launch_bounds__(kThreads)
    count_tiles_kernel(const KnnGeometry g, int64_t N, int64_t total, const int32_t* __restrict__ coords,
                       int32_t* __restrict__ tile_start, int32_t* __restrict__ tile_rank) {
  const int64_t bn = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (bn >= total) return;
  const int64_t b = bn / N, tiles = static_cast<int64_t>(g.tiles_h) * g.tiles_w;
  const int64_t tile = point_tile(g, coords[2 * bn], coords[2 * bn + 1]);
  tile_rank[bn] = atomicAdd(tile_start + b * (tiles + 1) + tile + 1, 1);
}

// Step 2: block per batch element turns the counts into tile starts (an inclusive scan of
// entries 1..tiles, entry 0 being 0). Each thread scans a contiguous run of tiles, thread 0
// scans the run totals in shared memory, and each run then adds its offset.
__global__ void __launch_bounds__(kThreads)
    scan_tiles_kernel(int64_t tiles, int32_t* __restrict__ tile_start) {
  __shared__ int32_t run_offset[kThreads];
  int32_t* counts = tile_start + static_cast<int64_t>(blockIdx.x) * (tiles + 1) + 1;
  const int64_t run = (tiles + kThreads - 1) / kThreads;
  const int64_t begin = threadIdx.x * run, end = begin + run < tiles ? begin + run : tiles;
  int32_t sum = 0;
  for (int64_t t = begin; t < end; ++t) sum += counts[t];
  run_offset[threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t offset = 0;
    for (int r = 0; r < kThreads; ++r) {
      const int32_t run_total = run_offset[r];
      run_offset[r] = offset;
      offset += run_total;
    }
  }
  __syncthreads();
  int32_t running = run_offset[threadIdx.x];
  for (int64_t t = begin; t < end; ++t) {
    running += counts[t];
    counts[t] = running;
  }
}

// Step 3: thread per (b, n) stores its point at its tile's start plus its rank.
__global__ void __launch_bounds__(kThreads)
    fill_tiles_kernel(const KnnGeometry g, int64_t N, int64_t total, const int32_t* __restrict__ coords,
                      const int32_t* __restrict__ tile_start, const int32_t* __restrict__ tile_rank,
                      int32_t* __restrict__ tile_points) {
  const int64_t bn = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (bn >= total) return;
  const int64_t b = bn / N, tiles = static_cast<int64_t>(g.tiles_h) * g.tiles_w;
  const int64_t tile = point_tile(g, coords[2 * bn], coords[2 * bn + 1]);
  tile_points[b * N + tile_start[b * (tiles + 1) + tile] + tile_rank[bn]] = static_cast<int32_t>(bn - b * N);
}

// Thread per (b, cell): the ring walk of knn_tiles.h, its running k-best list kept in the
// dist / index outputs.
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
  const int64_t tiles = static_cast<int64_t>(g.tiles_h) * g.tiles_w;
  int64_t* d = dist + bc * k;
  tile_ring_search(g, k, i, j, coords + b * N * 2, tile_start + b * (tiles + 1), tile_points + b * N, d,
                   index + bc * k);
  store_knn_weights(g, k, d, weights + bc * k);
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

// Deterministic scatter, step 1 of 4: thread per reference e (B * cells * k) counts itself
// into ref_start[b, point + 1] (zero-filled by the caller) and keeps its rank there. Integer
// atomics: the counts are exact, only the ranks depend on timing (step 3 sorts them away).
__global__ void __launch_bounds__(kThreads)
    count_refs_kernel(int64_t N, int64_t refs, int64_t total, const int32_t* __restrict__ index,
                      int32_t* __restrict__ ref_start, int32_t* __restrict__ ref_rank) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const int64_t b = e / refs;
  ref_rank[e] = atomicAdd(ref_start + b * (N + 1) + index[e] + 1, 1);
}

// Step 2 is scan_tiles_kernel over the N counts of each batch element. Step 3: each
// reference stores its index within its batch element at its point's start plus its rank.
__global__ void __launch_bounds__(kThreads)
    fill_refs_kernel(int64_t N, int64_t refs, int64_t total, const int32_t* __restrict__ index,
                     const int32_t* __restrict__ ref_start, const int32_t* __restrict__ ref_rank,
                     int32_t* __restrict__ ref_list) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const int64_t b = e / refs;
  ref_list[b * refs + ref_start[b * (N + 1) + index[e]] + ref_rank[e]] = static_cast<int32_t>(e - b * refs);
}

// Step 4: thread per (b, n) sorts its references (heapsort: in place, O(L log L) even for
// a point that is the neighbour of every cell), which fixes the order of the sums.
__global__ void __launch_bounds__(kThreads)
    sort_refs_kernel(int64_t N, int64_t refs, int64_t total, const int32_t* __restrict__ ref_start,
                     int32_t* __restrict__ ref_list) {
  const int64_t bn = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (bn >= total) return;
  const int64_t b = bn / N, n = bn - b * N;
  int32_t* a = ref_list + b * refs + ref_start[b * (N + 1) + n];
  const int64_t len = ref_start[b * (N + 1) + n + 1] - ref_start[b * (N + 1) + n];
  auto sift_down = [a](int64_t root, int64_t end) {
    while (2 * root + 1 < end) {
      int64_t child = 2 * root + 1;
      if (child + 1 < end && a[child] < a[child + 1]) ++child;
      if (a[root] >= a[child]) return;
      const int32_t t = a[root];
      a[root] = a[child];
      a[child] = t;
      root = child;
    }
  };
  for (int64_t i = len / 2 - 1; i >= 0; --i) sift_down(i, len);
  for (int64_t end = len - 1; end > 0; --end) {
    const int32_t t = a[0];
    a[0] = a[end];
    a[end] = t;
    sift_down(0, end);
  }
}

// Step 5: thread per (b, n, c), c fastest, sums its point's references in ascending
// (cell, slot) order: grad_x[b, n, c] = sum weights[b, cell, s] * grad_out[b, c, cell].
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    sum_refs_kernel(int64_t N, int64_t C, int64_t cells, int k, int64_t total, const scalar_t* __restrict__ grad_out,
                    const acc_t* __restrict__ weights, const int32_t* __restrict__ ref_start,
                    const int32_t* __restrict__ ref_list, acc_t* __restrict__ grad_x) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const int64_t bn = e / C, c = e - bn * C, b = bn / N, n = bn - b * N;
  const int64_t refs = cells * k;
  const int32_t* list = ref_list + b * refs;
  const scalar_t* plane = grad_out + (b * C + c) * cells;
  acc_t acc = 0;
  for (int32_t i = ref_start[b * (N + 1) + n]; i < ref_start[b * (N + 1) + n + 1]; ++i) {
    const int32_t r = list[i];
    acc += weights[b * refs + r] * to_acc<acc_t>(plane[r / k]);
  }
  grad_x[e] = acc;
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
                       const KnnSearchScratch& scratch, int32_t* index, acc_t* weights, cudaStream_t stream) {
  const int64_t total = batch * geo.h * static_cast<int64_t>(geo.w), points = batch * N;
  if (total == 0 || points == 0) return cudaSuccess;
  const int64_t tiles = static_cast<int64_t>(geo.tiles_h) * geo.tiles_w;
  count_tiles_kernel<<<blocks_for(points), kThreads, 0, stream>>>(geo, N, points, coords, scratch.tile_start,
                                                                  scratch.tile_rank);
  scan_tiles_kernel<<<static_cast<unsigned>(batch), kThreads, 0, stream>>>(tiles, scratch.tile_start);
  fill_tiles_kernel<<<blocks_for(points), kThreads, 0, stream>>>(geo, N, points, coords, scratch.tile_start,
                                                                 scratch.tile_rank, scratch.tile_points);
  search_kernel<acc_t><<<blocks_for(total), kThreads, 0, stream>>>(geo, N, k, total, coords, scratch.tile_start,
                                                                   scratch.tile_points, scratch.dist, index, weights);
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
cudaError_t knn_scatter_deterministic(int64_t batch, int64_t N, int64_t C, int64_t cells, int k,
                                      const scalar_t* grad_out, const int32_t* index, const acc_t* weights,
                                      const KnnScatterScratch& scratch, acc_t* grad_x, cudaStream_t stream) {
  const int64_t refs = cells * k, total_refs = batch * refs, total = batch * N * C;
  if (total == 0 || refs == 0) return cudaSuccess;
  count_refs_kernel<<<blocks_for(total_refs), kThreads, 0, stream>>>(N, refs, total_refs, index, scratch.ref_start,
                                                                     scratch.ref_rank);
  scan_tiles_kernel<<<static_cast<unsigned>(batch), kThreads, 0, stream>>>(N, scratch.ref_start);
  fill_refs_kernel<<<blocks_for(total_refs), kThreads, 0, stream>>>(N, refs, total_refs, index, scratch.ref_start,
                                                                    scratch.ref_rank, scratch.ref_list);
  sort_refs_kernel<<<blocks_for(batch * N), kThreads, 0, stream>>>(N, refs, batch * N, scratch.ref_start,
                                                                   scratch.ref_list);
  sum_refs_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
      N, C, cells, k, total, grad_out, weights, scratch.ref_start, scratch.ref_list, grad_x);
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

template cudaError_t knn_search<float>(const KnnGeometry&, int64_t, int64_t, int, const int32_t*,
                                       const KnnSearchScratch&, int32_t*, float*, cudaStream_t);
template cudaError_t knn_search<double>(const KnnGeometry&, int64_t, int64_t, int, const int32_t*,
                                        const KnnSearchScratch&, int32_t*, double*, cudaStream_t);

#define INFDIFF_KNN_INSTANTIATE(scalar_t, acc_t)                                                                  \
  template cudaError_t knn_gather<scalar_t, acc_t>(int64_t, int64_t, int64_t, int64_t, int, const scalar_t*,      \
                                                   const int32_t*, const acc_t*, scalar_t*, cudaStream_t);        \
  template cudaError_t knn_scatter<scalar_t, acc_t>(int64_t, int64_t, int64_t, int64_t, int, const scalar_t*,     \
                                                    const int32_t*, const acc_t*, acc_t*, cudaStream_t);          \
  template cudaError_t knn_scatter_deterministic<scalar_t, acc_t>(int64_t, int64_t, int64_t, int64_t, int,      \
                                                                  const scalar_t*, const int32_t*, const acc_t*, \
                                                                  const KnnScatterScratch&, acc_t*, cudaStream_t); \
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
