// What every bindings file needs to hand torch tensors to the torch-free CUDA launchers.
#pragma once

#include <torch/extension.h>

#define INFDIFF_NO_CUDA() TORCH_CHECK(false, "infdiff_kernels._C was built without CUDA")

// The device branch of every op: `if (t.is_cuda()) INFDIFF_CUDA_LAUNCH(t, "op", launch); else
// <CPU kernel>;`. `launch` is a call returning cudaError_t that may name `stream` (torch's
// current stream); it runs with t's device current, and a launch error becomes a Python
// exception naming the op. A build without CUDA raises instead, and never compiles `launch`
// (which names CUDA-only types), so the call sites need no #ifdef.
#ifdef INFDIFF_WITH_CUDA
#define INFDIFF_CUDA_LAUNCH(device_tensor, op_name, ...)                       \
  do {                                                                        \
    const c10::cuda::CUDAGuard infdiff_device_guard((device_tensor).device()); \
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();              \
    ::infdiff::bindings::check_cuda(__VA_ARGS__, op_name);                     \
  } while (0)
#else
#define INFDIFF_CUDA_LAUNCH(device_tensor, op_name, ...) \
  do {                                                  \
    INFDIFF_NO_CUDA();                                  \
  } while (0)
#endif

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
