// Launchers of the CUDA k-NN lerp (contract: docs/ops.md). Torch-free: raw device pointers, sizes
// and a stream. Instantiated for (scalar_t, acc_t) in {(float, float), (double, double),
// (__half, float), (__nv_bfloat16, float)}; knn_search for acc_t in {float, double}.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "../common/knn_math.h"
#include "../common/knn_tiles.h"

namespace infdiff {
namespace cuda {

// Device scratch of knn_search, allocated by the caller. tile_start must be zero-filled.
struct KnnSearchScratch {
  int32_t* tile_start;   // (B, tiles + 1): the bucket starts of knn_tiles.h
  int32_t* tile_rank;    // (B, N): rank of each point among its tile's points
  int32_t* tile_points;  // (B, N): the bucketed point indices
  int64_t* dist;         // (B, cells, k): the running k-best D list of each cell
};

// The tile buckets of knn_tiles.h built on the device, then one thread per (batch, cell)
// walks the rings: index and weights (B, cells, k) are the outputs, coords (B, N, 2).
template <typename acc_t>
cudaError_t knn_search(const KnnGeometry& geo, int64_t batch, int64_t N, int k, const int32_t* coords,
                       const KnnSearchScratch& scratch, int32_t* index, acc_t* weights, cudaStream_t stream);

// out (B, C, cells) = sum_s weights * x[b, index, :].
template <typename scalar_t, typename acc_t>
cudaError_t knn_gather(int64_t batch, int64_t N, int64_t C, int64_t cells, int k, const scalar_t* x,
                       const int32_t* index, const acc_t* weights, scalar_t* out, cudaStream_t stream);

// grad_x (B, N, C) accumulator, zero-filled by the caller: atomic adjoint of knn_gather.
template <typename scalar_t, typename acc_t>
cudaError_t knn_scatter(int64_t batch, int64_t N, int64_t C, int64_t cells, int k, const scalar_t* grad_out,
                        const int32_t* index, const acc_t* weights, acc_t* grad_x, cudaStream_t stream);

// Device scratch of knn_scatter_deterministic, allocated by the caller. ref_start must be
// zero-filled.
struct KnnScatterScratch {
  int32_t* ref_start;  // (B, N + 1): where each point's references start in ref_list
  int32_t* ref_rank;   // (B, cells * k): rank of each reference among its point's
  int32_t* ref_list;   // (B, cells * k): the references (cell * k + slot) grouped by point
};

// grad_x (B, N, C) accumulator: the adjoint of knn_gather without float atomics, for
// torch.are_deterministic_algorithms_enabled(). Each point's references are found by
// inverting index and summed in ascending (cell, slot) order, so two runs are bit-identical.
// Every entry of grad_x is written.
template <typename scalar_t, typename acc_t>
cudaError_t knn_scatter_deterministic(int64_t batch, int64_t N, int64_t C, int64_t cells, int k,
                                      const scalar_t* grad_out, const int32_t* index, const acc_t* weights,
                                      const KnnScatterScratch& scratch, acc_t* grad_x, cudaStream_t stream);

// out (B, N, C): bilinear samples of y (B, C, h, w) at the points of an (H, W) lattice.
template <typename scalar_t, typename acc_t>
cudaError_t grid_to_points(int64_t batch, int64_t N, int64_t C, int H, int W, int h, int w, const scalar_t* y,
                           const int32_t* coords, scalar_t* out, cudaStream_t stream);

// grad_y (B, C, h, w) accumulator, zero-filled by the caller: atomic adjoint of grid_to_points.
template <typename scalar_t, typename acc_t>
cudaError_t grid_to_points_backward(int64_t batch, int64_t N, int64_t C, int H, int W, int h, int w,
                                    const scalar_t* grad_out, const int32_t* coords, acc_t* grad_y,
                                    cudaStream_t stream);

}  // namespace cuda
}  // namespace infdiff
