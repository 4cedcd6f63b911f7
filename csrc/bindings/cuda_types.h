// What every bindings file needs to hand torch tensors to the torch-free CUDA launchers.
#pragma once

#include <torch/extension.h>

#define INFDIFF_NO_CUDA() TORCH_CHECK(false, "infdiff_kernels._C was built without CUDA")

#ifdef INFDIFF_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace infdiff {
namespace bindings {

// torch's 16-bit types are layout-compatible with CUDA's.
template <typename T> struct CudaType { using type = T; };
template <> struct CudaType<at::Half> { using type = __half; };
template <> struct CudaType<at::BFloat16> { using type = __nv_bfloat16; };
template <typename T>
using cuda_t = typename CudaType<T>::type;

template <typename T>
const cuda_t<T>* cuda_ptr(const torch::Tensor& t) {
  return reinterpret_cast<const cuda_t<T>*>(t.data_ptr<T>());
}
template <typename T>
cuda_t<T>* cuda_mut_ptr(torch::Tensor& t) {
  return reinterpret_cast<cuda_t<T>*>(t.data_ptr<T>());
}

inline void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, " CUDA launch failed: ", cudaGetErrorString(err));
}

}  // namespace bindings
}  // namespace infdiff
#endif
