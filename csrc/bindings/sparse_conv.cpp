// Tensor -> raw pointer glue of the sparse depthwise convolution for the CPU kernels
// (csrc/cpu) and, when built with CUDA, the CUDA launchers (csrc/cuda).
#include <ATen/OpMathType.h>
#include <torch/extension.h>

#include "../cpu/neighbor_map.h"
#include "../cpu/sparse_conv.h"
#include "registry.h"
#include "tensor_checks.h"

#include "cuda_types.h"
#ifdef INFDIFF_WITH_CUDA
#include "../cuda/sparse_conv.cuh"
#endif

namespace infdiff {
namespace bindings {
namespace {

SparseConvShape make_shape(const torch::Tensor& x, const torch::Tensor& lookup,
                           const torch::Tensor& weight, int64_t normalize) {
  TORCH_CHECK(x.dim() == 3, "x must be (B, N, C)");
  TORCH_CHECK(lookup.dim() == 3 && lookup.size(0) == x.size(0), "lookup must be (B, H, W)");
  TORCH_CHECK(weight.dim() == 3 && weight.size(0) == x.size(2) && weight.size(1) == weight.size(2),
              "weight must be (C, K, K)");
  TORCH_CHECK(normalize >= 0 && normalize <= 2, "normalize code must be 0, 1 or 2");
  INFDIFF_CHECK_INDEX(x.size(1), "N (points)");
  INFDIFF_CHECK_SIDE(lookup.size(1), "H (lookup rows)");
  INFDIFF_CHECK_SIDE(lookup.size(2), "W (lookup columns)");
  TORCH_CHECK(weight.size(1) % 2 == 1, "weight's K must be odd, got ", weight.size(1));
  INFDIFF_CHECK_INDEX(weight.size(1) * weight.size(1), "K^2 (kernel taps)");
  return SparseConvShape{x.size(0), x.size(1), x.size(2), static_cast<int>(lookup.size(1)),
                         static_cast<int>(lookup.size(2)), static_cast<int>(weight.size(1)),
                         static_cast<int>(normalize)};
}

void check_geometry(const torch::Tensor& x, const torch::Tensor& coords,
                    const torch::Tensor& lookup, const torch::Tensor& counts,
                    const torch::Tensor& weight) {
  INFDIFF_CHECK_INPUT(x, x.scalar_type());
  INFDIFF_CHECK_INPUT(weight, x.scalar_type());
  INFDIFF_CHECK_INPUT(coords, torch::kInt32);
  INFDIFF_CHECK_INPUT(lookup, torch::kInt32);
  INFDIFF_CHECK_INPUT(counts, torch::kInt32);
  TORCH_CHECK(coords.dim() == 3 && coords.size(0) == x.size(0) && coords.size(1) == x.size(1) &&
                  coords.size(2) == 2,
              "coords must be (B, N, 2)");
  TORCH_CHECK(counts.sizes() == coords.sizes().slice(0, 2), "counts must be (B, N)");
  INFDIFF_CHECK_SAME_DEVICE(x, coords);
  INFDIFF_CHECK_SAME_DEVICE(x, lookup);
  INFDIFF_CHECK_SAME_DEVICE(x, counts);
  INFDIFF_CHECK_SAME_DEVICE(x, weight);
}

// The kernels read x[lookup value]: a lookup that did not come from the map builder could
// send them out of bounds, so its values are checked too (on the CPU, see tensor_checks.h),
// after the shapes, so that a bad K is reported as such.
void check_map_values(const SparseConvShape& shape, const torch::Tensor& lookup, const torch::Tensor& counts) {
  INFDIFF_CHECK_VALUES(lookup, -1, shape.points, "lookup");
  INFDIFF_CHECK_VALUES(counts, 1, int64_t(shape.kernel_size) * shape.kernel_size + 1, "counts");
}

#ifdef INFDIFF_WITH_CUDA
// The (C, K, K) kernel as the (K*K, C) the CUDA kernels read (csrc/cuda/sparse_conv.cuh):
// one small copy per call, so the op keeps the (C, K, K) contract of docs/ops.md.
torch::Tensor transposed_kernel(const torch::Tensor& weight) {
  return weight.reshape({weight.size(0), weight.size(1) * weight.size(2)}).t().contiguous();
}

// The CUDA backward. The kernels take the kernel as (K*K, C) and give grad_w as (K*K, C)
// (csrc/cuda/sparse_conv.cuh); with torch.use_deterministic_algorithms(True), grad_w is
// summed in a fixed order through a scratch of per-block partials instead of float atomics.
// Temporaries are freed on return: torch's allocator orders their reuse after the kernels
// on `stream`.
template <typename scalar_t>
cudaError_t cuda_backward(const SparseConvShape& shape, const torch::Tensor& grad_out, const torch::Tensor& x,
                          const torch::Tensor& coords, const torch::Tensor& lookup, const torch::Tensor& counts,
                          const torch::Tensor& weight, torch::Tensor* grad_x, torch::Tensor* grad_w,
                          cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  const torch::Tensor weight_t = transposed_kernel(weight);
  torch::Tensor gw_t, scratch;
  if (grad_w) {
    gw_t = torch::zeros({weight_t.size(0), weight_t.size(1)}, grad_w->options());
    if (at::globalContext().deterministicAlgorithms())
      scratch = torch::empty({cuda::sparse_conv_grad_w_scratch<cuda_t<scalar_t>, acc_t>(shape)}, grad_w->options());
  }
  const cudaError_t err = cuda::sparse_conv_backward<cuda_t<scalar_t>, acc_t>(
      shape, cuda_ptr<scalar_t>(grad_out), cuda_ptr<scalar_t>(x), coords.data_ptr<int32_t>(),
      lookup.data_ptr<int32_t>(), counts.data_ptr<int32_t>(), cuda_ptr<scalar_t>(weight_t),
      grad_x ? cuda_mut_ptr<scalar_t>(*grad_x) : nullptr, grad_w ? gw_t.data_ptr<acc_t>() : nullptr,
      scratch.defined() ? scratch.data_ptr<acc_t>() : nullptr, stream);
  if (err == cudaSuccess && grad_w) grad_w->copy_(gw_t.t().reshape(grad_w->sizes()));
  return err;
}
#endif

torch::Tensor sparse_conv_forward(const torch::Tensor& x, const torch::Tensor& coords,
                                  const torch::Tensor& lookup, const torch::Tensor& counts,
                                  const torch::Tensor& weight,
                                  const c10::optional<torch::Tensor>& bias, int64_t normalize) {
  check_geometry(x, coords, lookup, counts, weight);
  const SparseConvShape shape = make_shape(x, lookup, weight, normalize);
  check_map_values(shape, lookup, counts);
  if (bias) {
    INFDIFF_CHECK_INPUT(*bias, x.scalar_type());
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(2), "bias must be (C,)");
    INFDIFF_CHECK_SAME_DEVICE(x, *bias);
  }
  auto out = torch::empty_like(x);
  if (x.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sparse_conv_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (x.is_cuda())
      INFDIFF_CUDA_LAUNCH(x, "sparse_conv_forward",
                          cuda::sparse_conv_forward<cuda_t<scalar_t>, acc_t>(
                              shape, cuda_ptr<scalar_t>(x), coords.data_ptr<int32_t>(), lookup.data_ptr<int32_t>(),
                              counts.data_ptr<int32_t>(), cuda_ptr<scalar_t>(transposed_kernel(weight)),
                              bias ? cuda_ptr<scalar_t>(*bias) : nullptr, cuda_mut_ptr<scalar_t>(out), stream));
    else
      cpu::sparse_conv_forward<scalar_t, acc_t>(
          shape, x.data_ptr<scalar_t>(), coords.data_ptr<int32_t>(), lookup.data_ptr<int32_t>(),
          counts.data_ptr<int32_t>(), weight.data_ptr<scalar_t>(),
          bias ? bias->data_ptr<scalar_t>() : nullptr, out.data_ptr<scalar_t>());
  });
  return out;
}

// Returns (grad_x, grad_weight); an output not asked for is an undefined tensor (None).
std::tuple<torch::Tensor, torch::Tensor> sparse_conv_backward(
    const torch::Tensor& grad_out, const torch::Tensor& x, const torch::Tensor& coords,
    const torch::Tensor& lookup, const torch::Tensor& counts, const torch::Tensor& weight,
    int64_t normalize, bool need_grad_x, bool need_grad_weight) {
  check_geometry(x, coords, lookup, counts, weight);
  INFDIFF_CHECK_INPUT(grad_out, x.scalar_type());
  TORCH_CHECK(grad_out.sizes() == x.sizes(), "grad_out must have the shape of x");
  INFDIFF_CHECK_SAME_DEVICE(x, grad_out);
  const SparseConvShape shape = make_shape(x, lookup, weight, normalize);
  check_map_values(shape, lookup, counts);
  torch::Tensor grad_x, grad_w;
  if (need_grad_x) grad_x = torch::empty_like(x);  // every entry is written
  const auto acc_dtype = at::toOpMathType(x.scalar_type());
  if (need_grad_weight) grad_w = torch::zeros(weight.sizes(), weight.options().dtype(acc_dtype));
  if (x.numel() == 0 || (!need_grad_x && !need_grad_weight))
    return {grad_x, need_grad_weight ? grad_w.to(weight.scalar_type()) : grad_w};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sparse_conv_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (x.is_cuda())
      INFDIFF_CUDA_LAUNCH(x, "sparse_conv_backward",
                          cuda_backward<scalar_t>(shape, grad_out, x, coords, lookup, counts, weight,
                                                  need_grad_x ? &grad_x : nullptr,
                                                  need_grad_weight ? &grad_w : nullptr, stream));
    else
      cpu::sparse_conv_backward<scalar_t, acc_t>(
          shape, grad_out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), coords.data_ptr<int32_t>(),
          lookup.data_ptr<int32_t>(), counts.data_ptr<int32_t>(), weight.data_ptr<scalar_t>(),
          need_grad_x ? grad_x.data_ptr<scalar_t>() : nullptr,
          need_grad_weight ? grad_w.data_ptr<acc_t>() : nullptr);
  });
  return {grad_x, need_grad_weight ? grad_w.to(weight.scalar_type()) : grad_w};
}

// (lookup (B, H, W), counts (B, N), flat index of a point off the grid or -1, flat index
// of a repeated point or -1) for int32 CPU coords (B, N, 2).
std::tuple<torch::Tensor, torch::Tensor, int64_t, int64_t> build_neighbor_map_cpu(
    const torch::Tensor& coords, int64_t height, int64_t width, int64_t kernel_size, bool check_duplicates) {
  INFDIFF_CHECK_INPUT(coords, torch::kInt32);
  TORCH_CHECK(coords.device().is_cpu(), "coords must be a CPU tensor");
  TORCH_CHECK(coords.dim() == 3 && coords.size(2) == 2, "coords must be (B, N, 2)");
  INFDIFF_CHECK_SIDE(height, "height");
  INFDIFF_CHECK_SIDE(width, "width");
  TORCH_CHECK(kernel_size >= 1 && kernel_size % 2 == 1, "kernel_size must be odd and >= 1, got ", kernel_size);
  INFDIFF_CHECK_INDEX(kernel_size * kernel_size, "K^2 (kernel taps)");
  INFDIFF_CHECK_INDEX(coords.size(1), "N (points)");
  const auto b = coords.size(0), n = coords.size(1);
  auto lookup = torch::empty({b, height, width}, coords.options());
  auto counts = torch::empty({b, n}, coords.options());
  const auto status = cpu::build_neighbor_map(coords.data_ptr<int32_t>(), b, n, static_cast<int>(height),
                                              static_cast<int>(width), static_cast<int>(kernel_size),
                                              check_duplicates, lookup.data_ptr<int32_t>(),
                                              counts.data_ptr<int32_t>());
  return {lookup, counts, status.out_of_range, status.duplicate};
}

}  // namespace

void register_sparse_conv(pybind11::module_& m) {
  m.def("sparse_conv_forward", &sparse_conv_forward, "sparse depthwise conv forward",
        pybind11::arg("x"), pybind11::arg("coords"), pybind11::arg("lookup"), pybind11::arg("counts"),
        pybind11::arg("weight"), pybind11::arg("bias"), pybind11::arg("normalize"));
  m.def("sparse_conv_backward", &sparse_conv_backward, "sparse depthwise conv backward",
        pybind11::arg("grad_out"), pybind11::arg("x"), pybind11::arg("coords"), pybind11::arg("lookup"),
        pybind11::arg("counts"), pybind11::arg("weight"), pybind11::arg("normalize"),
        pybind11::arg("need_grad_x"), pybind11::arg("need_grad_weight"));
  m.def("build_neighbor_map_cpu", &build_neighbor_map_cpu, "neighbour map of CPU int32 coords",
        pybind11::arg("coords"), pybind11::arg("height"), pybind11::arg("width"), pybind11::arg("kernel_size"),
        pybind11::arg("check_duplicates"));
}

}  // namespace bindings
}  // namespace infdiff
