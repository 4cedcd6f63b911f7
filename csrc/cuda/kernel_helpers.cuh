// What every CUDA kernel file of infdiff shares: the launch constants, the accumulator casts
// of the 16-bit types, and the switch that turns a runtime kernel size into a template
// argument. Torch-free, so the host emulation of the C++ tests compiles it too.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace infdiff {
namespace cuda {

// Threads per block of every kernel: a multiple of the warp size that leaves registers for
// the k-NN search and the unrolled convolution taps without spilling (checked by ptxas in CI).
constexpr int kThreads = 256;

// Blocks of kThreads threads covering `work` one-thread items.
inline unsigned blocks_for(int64_t work) { return static_cast<unsigned>((work + kThreads - 1) / kThreads); }

// Loads widen to the accumulation type and stores round back to nearest; __half and
// __nv_bfloat16 have no implicit conversions that would do it.
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ acc_t to_acc(scalar_t v) {
  return static_cast<acc_t>(v);
}
template <>
__device__ __forceinline__ float to_acc<float, __half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_acc<float, __nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename scalar_t, typename acc_t>
__device__ __forceinline__ scalar_t from_acc(acc_t v) {
  return static_cast<scalar_t>(v);
}
template <>
__device__ __forceinline__ __half from_acc<__half, float>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) {
  return __float2bfloat16_rn(v);
}

// Calls launch(std::integral_constant<int, KS>) with KS = kernel_size for the sizes the
// models use (3, 5, 7), whose loops the kernels then fully unroll, and KS = 0 ("read the
// size at run time", loops kept rolled) for every other size, which bounds the code size.
template <typename Launch>
void with_kernel_size(int kernel_size, Launch&& launch) {
  switch (kernel_size) {
    case 3:
      launch(std::integral_constant<int, 3>{});
      break;
    case 5:
      launch(std::integral_constant<int, 5>{});
      break;
    case 7:
      launch(std::integral_constant<int, 7>{});
      break;
    default:
      launch(std::integral_constant<int, 0>{});
  }
}

}  // namespace cuda
}  // namespace infdiff
