// The one Python extension module, infdiff_kernels._C. Each op family registers its
// functions from its own bindings file.
#include <torch/extension.h>

#include "registry.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "infdiff kernels: C++ CPU and CUDA backends (see infdiff_kernels for the API)";
#ifdef INFDIFF_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  infdiff::bindings::register_sparse_conv(m);
  infdiff::bindings::register_knn(m);
  infdiff::bindings::register_spectral(m);
}
