// Launchers of the CUDA sparse depthwise convolution (contract: docs/ops.md). Torch-free: raw
// device pointers, sizes and a stream, so nvcc compiles them without torch or a GPU.
// Instantiated for (scalar_t, acc_t) in {(float, float), (double, double),
// (__half, float), (__nv_bfloat16, float)}.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "../common/sparse_conv_math.h"

namespace infdiff {
namespace cuda {

// The kernel is taken transposed, weight_t (K*K, C) instead of the op's (C, K, K), and
// grad_w is produced as (K*K, C): with channels contiguous, the threads of a warp (which
// cover consecutive channels) read one cache line per tap instead of K*K lines apart. The
// caller transposes once per call (a few KiB), not the kernels once per point.

// out (B, N, C) = s * sum_window w * x + bias; bias may be null.
template <typename scalar_t, typename acc_t>
cudaError_t sparse_conv_forward(const SparseConvShape& shape, const scalar_t* x,
                                const int32_t* coords, const int32_t* lookup,
                                const int32_t* counts, const scalar_t* weight_t,
                                const scalar_t* bias, scalar_t* out, cudaStream_t stream);

// acc_t elements of the scratch the deterministic grad_w needs (its per-block partials).
template <typename scalar_t, typename acc_t>
int64_t sparse_conv_grad_w_scratch(const SparseConvShape& shape);

// grad_x (B, N, C) and grad_w (K*K, C, accumulated in acc_t); either may be null.
// grad_w must be zero-filled by the caller. With grad_w_scratch null, grad_w is summed with
// float atomics (order, hence rounding, varies from run to run); with a scratch of
// sparse_conv_grad_w_scratch elements, per-block partials are summed in a fixed order and
// two runs give bit-identical grad_w (torch.are_deterministic_algorithms_enabled()).
template <typename scalar_t, typename acc_t>
cudaError_t sparse_conv_backward(const SparseConvShape& shape, const scalar_t* grad_out,
                                 const scalar_t* x, const int32_t* coords,
                                 const int32_t* lookup, const int32_t* counts,
                                 const scalar_t* weight_t, scalar_t* grad_x, acc_t* grad_w,
                                 acc_t* grad_w_scratch, cudaStream_t stream);

}  // namespace cuda
}  // namespace infdiff
