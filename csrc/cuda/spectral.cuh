// Launchers of the CUDA spectral-filter kernels (contract: docs/ops.md). Torch-free: raw device
// pointers, sizes and a stream; the transforms are cuFFT calls made through torch.fft.
// Instantiated for float and double.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "../common/spectral_math.h"

namespace infdiff {
namespace cuda {

using spectral::SpectralParams;
using spectral::SpectralShape;

// In place on the interleaved complex rfft2 spectrum (batch, H, W/2 + 1, 2); the transfer
// function is evaluated per coefficient in the kernel.
template <typename T>
cudaError_t spectral_multiply(const SpectralShape& shape, const SpectralParams& params, T* spec,
                              cudaStream_t stream);

// out = a * x + s * y per leading batch element (a[b / per_a]), gathered through Makhoul's
// reordering when `reorder`; y, a, s may be null (out = x, reordered or not).
template <typename T>
cudaError_t spectral_prepare(const SpectralShape& shape, const T* x, const T* y, const T* a,
                             const T* s, int64_t per_a, bool reorder, T* out, cudaStream_t stream);

// out = the inverse Makhoul reordering of w.
template <typename T>
cudaError_t spectral_unreorder(const SpectralShape& shape, const T* w, T* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace infdiff
