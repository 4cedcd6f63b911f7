// Registration hooks of the op families, called by module.cpp.
#pragma once

#include <torch/extension.h>

namespace infdiff {
namespace bindings {

void register_sparse_conv(pybind11::module_& m);
void register_knn(pybind11::module_& m);
void register_spectral(pybind11::module_& m);

}  // namespace bindings
}  // namespace infdiff
