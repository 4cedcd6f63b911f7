// Tensor -> raw pointer glue of the spectral filters (contract: docs/ops.md) for the CPU kernels
// (csrc/cpu/spectral.h) and, when built with CUDA, the CUDA launchers (csrc/cuda).
// The transforms are torch.fft calls on the Python side; these are the passes between them.
#include <torch/extension.h>

#include "../cpu/spectral.h"
#include "registry.h"
#include "tensor_checks.h"

#include "cuda_types.h"
#ifdef INFDIFF_WITH_CUDA
#include "../cuda/spectral.cuh"
#endif

namespace infdiff {
namespace bindings {
namespace {

spectral::SpectralShape grid_shape(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2, "expected a (..., H, W) grid");
  const int64_t h = x.size(-2), w = x.size(-1);
  INFDIFF_CHECK_SIDE(h, "H");
  INFDIFF_CHECK_SIDE(w, "W");
  return {h * w == 0 ? 0 : x.numel() / (h * w), static_cast<int>(h), static_cast<int>(w)};
}

// spec: the complex rfft2 spectrum (..., H, W/2 + 1) of an (..., H, W) grid; filtered in place.
void spectral_multiply_(torch::Tensor spec, int64_t height, int64_t width, int64_t boundary, int64_t mode,
                        double sigma, double nsr, double alpha, double tau, double scale) {
  TORCH_CHECK(spec.is_complex() && spec.is_contiguous(), "spec must be a contiguous complex tensor");
  TORCH_CHECK(spec.dim() >= 2 && spec.size(-2) == height && spec.size(-1) == width / 2 + 1,
              "spec must be (..., H, W/2 + 1)");
  INFDIFF_CHECK_SIDE(height, "height");
  INFDIFF_CHECK_SIDE(width, "width");
  TORCH_CHECK(boundary == spectral::kPeriodic || boundary == spectral::kReflect, "unknown boundary code");
  TORCH_CHECK(mode >= spectral::kMollify && mode <= spectral::kGrf, "unknown mode code");
  const int64_t rows = height * (width / 2 + 1);
  const spectral::SpectralShape shape{rows == 0 ? 0 : spec.numel() / rows, static_cast<int>(height),
                                      static_cast<int>(width)};
  const spectral::SpectralParams params{static_cast<int>(boundary), static_cast<int>(mode), sigma, nsr,
                                        alpha, tau, scale};
  if (spec.numel() == 0) return;
  auto re = torch::view_as_real(spec);
  AT_DISPATCH_FLOATING_TYPES(re.scalar_type(), "spectral_multiply_", [&] {
    if (spec.is_cuda())
      INFDIFF_CUDA_LAUNCH(spec, "spectral_multiply_",
                          cuda::spectral_multiply<scalar_t>(shape, params, re.data_ptr<scalar_t>(), stream));
    else
      cpu::spectral_multiply<scalar_t>(shape, params, re.data_ptr<scalar_t>());
  });
}

// a * x + s * y per leading batch element (a, s: (B,)), Makhoul-reordered when `reorder`;
// y, a, s None: x alone.
torch::Tensor spectral_prepare(const torch::Tensor& x, const c10::optional<torch::Tensor>& y,
                               const c10::optional<torch::Tensor>& a, const c10::optional<torch::Tensor>& s,
                               bool reorder) {
  INFDIFF_CHECK_INPUT(x, x.scalar_type());
  const bool combine = y.has_value();
  TORCH_CHECK(combine == a.has_value() && combine == s.has_value(), "y, a and s go together");
  int64_t per_a = 1;
  if (combine) {
    INFDIFF_CHECK_INPUT(*y, x.scalar_type());
    INFDIFF_CHECK_INPUT(*a, x.scalar_type());
    INFDIFF_CHECK_INPUT(*s, x.scalar_type());
    TORCH_CHECK(y->sizes() == x.sizes(), "y must have the shape of x");
    TORCH_CHECK(x.dim() >= 3 && a->dim() == 1 && a->size(0) == x.size(0) && s->sizes() == a->sizes(),
                "a and s must be (B,) for x (B, ..., H, W)");
    INFDIFF_CHECK_SAME_DEVICE(x, *y);
    INFDIFF_CHECK_SAME_DEVICE(x, *a);
    INFDIFF_CHECK_SAME_DEVICE(x, *s);
  }
  const auto shape = grid_shape(x);
  if (combine && x.size(0) > 0) per_a = shape.batch / x.size(0);
  auto out = torch::empty_like(x);
  if (x.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "spectral_prepare", [&] {
    const scalar_t* yp = combine ? y->data_ptr<scalar_t>() : nullptr;
    const scalar_t* ap = combine ? a->data_ptr<scalar_t>() : nullptr;
    const scalar_t* sp = combine ? s->data_ptr<scalar_t>() : nullptr;
    if (x.is_cuda())
      INFDIFF_CUDA_LAUNCH(x, "spectral_prepare",
                          cuda::spectral_prepare<scalar_t>(shape, x.data_ptr<scalar_t>(), yp, ap, sp, per_a, reorder,
                                                           out.data_ptr<scalar_t>(), stream));
    else
      cpu::prepare<scalar_t>(shape, x.data_ptr<scalar_t>(), yp, ap, sp, per_a, reorder, out.data_ptr<scalar_t>());
  });
  return out;
}

torch::Tensor spectral_unreorder(const torch::Tensor& w) {
  INFDIFF_CHECK_INPUT(w, w.scalar_type());
  auto out = torch::empty_like(w);
  if (w.numel() == 0) return out;
  const auto shape = grid_shape(w);
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "spectral_unreorder", [&] {
    if (w.is_cuda())
      INFDIFF_CUDA_LAUNCH(w, "spectral_unreorder",
                          cuda::spectral_unreorder<scalar_t>(shape, w.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                                             stream));
    else
      cpu::unreorder<scalar_t>(shape, w.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

void register_spectral(pybind11::module_& m) {
  m.def("spectral_multiply_", &spectral_multiply_, "spectral filter, in place on an rfft2 spectrum",
        pybind11::arg("spec"), pybind11::arg("height"), pybind11::arg("width"), pybind11::arg("boundary"),
        pybind11::arg("mode"), pybind11::arg("sigma"), pybind11::arg("nsr"), pybind11::arg("alpha"),
        pybind11::arg("tau"), pybind11::arg("scale"));
  m.def("spectral_prepare", &spectral_prepare, "a * x + s * y, Makhoul-reordered when asked",
        pybind11::arg("x"), pybind11::arg("y"), pybind11::arg("a"), pybind11::arg("s"), pybind11::arg("reorder"));
  m.def("spectral_unreorder", &spectral_unreorder, "inverse Makhoul reordering", pybind11::arg("w"));
}

}  // namespace bindings
}  // namespace infdiff
