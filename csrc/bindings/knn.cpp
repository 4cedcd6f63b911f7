// Tensor -> raw pointer glue of the k-NN lerp (contract: docs/ops.md) for the CPU kernels
// (csrc/cpu/knn.h) and, when built with CUDA, the CUDA launchers (csrc/cuda/knn.cuh).
#include <ATen/OpMathType.h>
#include <torch/extension.h>

#include "../cpu/knn.h"
#include "registry.h"
#include "tensor_checks.h"

#include "cuda_types.h"
#ifdef INFDIFF_WITH_CUDA
#include "../cuda/knn.cuh"
#endif

namespace infdiff {
namespace bindings {
namespace {


int checked_int(int64_t v, const char* name) {
  INFDIFF_CHECK_SIDE(v, name);
  return static_cast<int>(v);
}

#ifdef INFDIFF_WITH_CUDA
// The device search of coords (B, N, 2) into index / weights (B, h*w, k), with the scratch the
// CPU search allocates for itself: the tile buckets and each cell's running k-best distances.
// Freed on return: torch's allocator orders the reuse after the kernels on `stream`.
template <typename acc_t>
cudaError_t launch_knn_search(const KnnGeometry& geo, const torch::Tensor& coords, int64_t k, torch::Tensor& index,
                              torch::Tensor& weights, cudaStream_t stream) {
  const int64_t B = coords.size(0), N = coords.size(1);
  const int64_t tiles = static_cast<int64_t>(geo.tiles_h) * geo.tiles_w;
  auto tile_start = torch::zeros({B, tiles + 1}, coords.options());
  auto tile_rank = torch::empty({B, N}, coords.options());
  auto tile_points = torch::empty({B, N}, coords.options());
  auto dist = torch::empty(index.sizes(), coords.options().dtype(torch::kInt64));
  const cuda::KnnSearchScratch scratch{tile_start.data_ptr<int32_t>(), tile_rank.data_ptr<int32_t>(),
                                       tile_points.data_ptr<int32_t>(), dist.data_ptr<int64_t>()};
  return cuda::knn_search<acc_t>(geo, B, N, static_cast<int>(k), coords.data_ptr<int32_t>(), scratch,
                                 index.data_ptr<int32_t>(), weights.data_ptr<acc_t>(), stream);
}
#endif

// The (B, h*w, k) neighbour indices (int32) and normalised weights (float64 when `double_weights`,
// else float32) of every output cell.
std::tuple<torch::Tensor, torch::Tensor> knn_search(const torch::Tensor& coords, int64_t H, int64_t W,
                                                    int64_t h, int64_t w, int64_t k, bool double_weights) {
  INFDIFF_CHECK_INPUT(coords, torch::kInt32);
  TORCH_CHECK(coords.dim() == 3 && coords.size(2) == 2, "coords must be (B, N, 2)");
  const int64_t B = coords.size(0), N = coords.size(1);
  INFDIFF_CHECK_INDEX(N, "N (points)");
  TORCH_CHECK(k >= 1 && k <= N, "k must satisfy 1 <= k <= N");
  checked_int(h, "h");
  checked_int(w, "w");
  INFDIFF_CHECK_INDEX(h * w, "h * w (output cells)");
  const KnnGeometry geo = make_knn_geometry(checked_int(H, "H"), checked_int(W, "W"), checked_int(h, "h"),
                                            checked_int(w, "w"), N);
  const int64_t cells = h * w;
  auto index = torch::empty({B, cells, k}, coords.options());
  auto weights = torch::empty({B, cells, k}, coords.options().dtype(double_weights ? torch::kFloat64 : torch::kFloat32));
  if (B == 0) return {index, weights};
  if (coords.is_cuda()) {
    if (double_weights)
      INFDIFF_CUDA_LAUNCH(coords, "knn_search", launch_knn_search<double>(geo, coords, k, index, weights, stream));
    else
      INFDIFF_CUDA_LAUNCH(coords, "knn_search", launch_knn_search<float>(geo, coords, k, index, weights, stream));
  } else if (double_weights) {
    cpu::knn_search<double>(geo, B, N, static_cast<int>(k), coords.data_ptr<int32_t>(), index.data_ptr<int32_t>(),
                            weights.data_ptr<double>());
  } else {
    cpu::knn_search<float>(geo, B, N, static_cast<int>(k), coords.data_ptr<int32_t>(), index.data_ptr<int32_t>(),
                           weights.data_ptr<float>());
  }
  return {index, weights};
}

void check_neighbours(const torch::Tensor& feats, const torch::Tensor& index, const torch::Tensor& weights) {
  INFDIFF_CHECK_INPUT(index, torch::kInt32);
  INFDIFF_CHECK_INPUT(weights, at::toOpMathType(feats.scalar_type()));
  TORCH_CHECK(index.dim() == 3 && index.size(0) == feats.size(0), "index must be (B, h*w, k)");
  TORCH_CHECK(weights.sizes() == index.sizes(), "weights must have the shape of index");
  INFDIFF_CHECK_SAME_DEVICE(feats, index);
  INFDIFF_CHECK_SAME_DEVICE(feats, weights);
}

// (B, C, h, w) = weighted sum over the k neighbours of each cell of x (B, N, C).
torch::Tensor knn_gather(const torch::Tensor& x, const torch::Tensor& index, const torch::Tensor& weights,
                         int64_t h, int64_t w) {
  INFDIFF_CHECK_INPUT(x, x.scalar_type());
  TORCH_CHECK(x.dim() == 3, "x must be (B, N, C)");
  check_neighbours(x, index, weights);
  checked_int(h, "h");
  checked_int(w, "w");
  INFDIFF_CHECK_INDEX(h * w, "h * w (output cells)");
  INFDIFF_CHECK_INDEX(x.size(1), "N (points)");
  TORCH_CHECK(index.size(1) == h * w, "index must have h*w cells");
  INFDIFF_CHECK_VALUES(index, 0, x.size(1), "index");
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), cells = h * w, k = index.size(2);
  auto out = torch::empty({B, C, h, w}, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "knn_gather", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (x.is_cuda())
      INFDIFF_CUDA_LAUNCH(x, "knn_gather",
                          cuda::knn_gather<cuda_t<scalar_t>, acc_t>(
                              B, N, C, cells, static_cast<int>(k), cuda_ptr<scalar_t>(x), index.data_ptr<int32_t>(),
                              weights.data_ptr<acc_t>(), cuda_mut_ptr<scalar_t>(out), stream));
    else
      cpu::knn_gather<scalar_t, acc_t>(B, N, C, cells, static_cast<int>(k), x.data_ptr<scalar_t>(),
                                       index.data_ptr<int32_t>(), weights.data_ptr<acc_t>(), out.data_ptr<scalar_t>());
  });
  return out;
}

#ifdef INFDIFF_WITH_CUDA
// The CUDA adjoint of knn_gather: float atomics, or with torch.use_deterministic_algorithms(True)
// the atomic-free scatter of csrc/cuda/knn.cuh with its scratch (freed on return: torch's
// allocator orders the reuse after the kernels on `stream`).
template <typename scalar_t>
cudaError_t cuda_knn_scatter(int64_t B, int64_t N, int64_t C, int64_t cells, int64_t k, const torch::Tensor& grad_out,
                             const torch::Tensor& index, const torch::Tensor& weights, torch::Tensor& acc,
                             cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  if (!at::globalContext().deterministicAlgorithms())
    return cuda::knn_scatter<cuda_t<scalar_t>, acc_t>(B, N, C, cells, static_cast<int>(k), cuda_ptr<scalar_t>(grad_out),
                                                      index.data_ptr<int32_t>(), weights.data_ptr<acc_t>(),
                                                      acc.data_ptr<acc_t>(), stream);
  INFDIFF_CHECK_INDEX(cells * k, "h * w * k (neighbour references)");
  auto ref_start = torch::zeros({B, N + 1}, index.options());
  auto ref_rank = torch::empty({B, cells * k}, index.options());
  auto ref_list = torch::empty({B, cells * k}, index.options());
  const cuda::KnnScatterScratch scratch{ref_start.data_ptr<int32_t>(), ref_rank.data_ptr<int32_t>(),
                                        ref_list.data_ptr<int32_t>()};
  return cuda::knn_scatter_deterministic<cuda_t<scalar_t>, acc_t>(
      B, N, C, cells, static_cast<int>(k), cuda_ptr<scalar_t>(grad_out), index.data_ptr<int32_t>(),
      weights.data_ptr<acc_t>(), scratch, acc.data_ptr<acc_t>(), stream);
}
#endif

// (B, N, C): the adjoint of knn_gather applied to grad_out (B, C, h, w).
torch::Tensor knn_scatter(const torch::Tensor& grad_out, const torch::Tensor& index, const torch::Tensor& weights,
                          int64_t N) {
  INFDIFF_CHECK_INPUT(grad_out, grad_out.scalar_type());
  TORCH_CHECK(grad_out.dim() == 4, "grad_out must be (B, C, h, w)");
  check_neighbours(grad_out, index, weights);
  const int64_t B = grad_out.size(0), C = grad_out.size(1), cells = grad_out.size(2) * grad_out.size(3);
  INFDIFF_CHECK_INDEX(cells, "h * w (output cells)");
  INFDIFF_CHECK_INDEX(N, "N (points)");
  TORCH_CHECK(index.size(1) == cells, "index must have h*w cells");
  INFDIFF_CHECK_VALUES(index, 0, N, "index");
  const int64_t k = index.size(2);
  const auto acc_dtype = at::toOpMathType(grad_out.scalar_type());
  auto acc = torch::zeros({B, N, C}, grad_out.options().dtype(acc_dtype));
  if (acc.numel() == 0 || cells == 0) return acc.to(grad_out.scalar_type());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "knn_scatter", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (grad_out.is_cuda())
      INFDIFF_CUDA_LAUNCH(grad_out, "knn_scatter",
                          cuda_knn_scatter<scalar_t>(B, N, C, cells, k, grad_out, index, weights, acc, stream));
    else
      cpu::knn_scatter<scalar_t, acc_t>(B, N, C, cells, static_cast<int>(k), grad_out.data_ptr<scalar_t>(),
                                        index.data_ptr<int32_t>(), weights.data_ptr<acc_t>(), acc.data_ptr<acc_t>());
  });
  return acc.to(grad_out.scalar_type());
}

void check_points(const torch::Tensor& coords, int64_t B) {
  INFDIFF_CHECK_INPUT(coords, torch::kInt32);
  TORCH_CHECK(coords.dim() == 3 && coords.size(0) == B && coords.size(2) == 2, "coords must be (B, N, 2)");
  INFDIFF_CHECK_INDEX(coords.size(1), "N (points)");
}

// (B, N, C): bilinear samples of y (B, C, h, w) at the points of an (H, W) lattice.
torch::Tensor grid_to_points(const torch::Tensor& y, const torch::Tensor& coords, int64_t H, int64_t W) {
  INFDIFF_CHECK_INPUT(y, y.scalar_type());
  TORCH_CHECK(y.dim() == 4, "y must be (B, C, h, w)");
  check_points(coords, y.size(0));
  INFDIFF_CHECK_SAME_DEVICE(y, coords);
  const int64_t B = y.size(0), C = y.size(1), N = coords.size(1);
  const int h = checked_int(y.size(2), "h"), w = checked_int(y.size(3), "w");
  const int Hi = checked_int(H, "H"), Wi = checked_int(W, "W");
  auto out = torch::empty({B, N, C}, y.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "grid_to_points", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (y.is_cuda())
      INFDIFF_CUDA_LAUNCH(y, "grid_to_points",
                          cuda::grid_to_points<cuda_t<scalar_t>, acc_t>(B, N, C, Hi, Wi, h, w, cuda_ptr<scalar_t>(y),
                                                                        coords.data_ptr<int32_t>(),
                                                                        cuda_mut_ptr<scalar_t>(out), stream));
    else
      cpu::grid_to_points<scalar_t, acc_t>(B, N, C, Hi, Wi, h, w, y.data_ptr<scalar_t>(), coords.data_ptr<int32_t>(),
                                           out.data_ptr<scalar_t>());
  });
  return out;
}

// (B, C, h, w): the adjoint of grid_to_points applied to grad_out (B, N, C).
torch::Tensor grid_to_points_backward(const torch::Tensor& grad_out, const torch::Tensor& coords, int64_t H,
                                      int64_t W, int64_t h, int64_t w) {
  INFDIFF_CHECK_INPUT(grad_out, grad_out.scalar_type());
  TORCH_CHECK(grad_out.dim() == 3, "grad_out must be (B, N, C)");
  check_points(coords, grad_out.size(0));
  TORCH_CHECK(coords.size(1) == grad_out.size(1), "coords and grad_out must have the same N");
  INFDIFF_CHECK_SAME_DEVICE(grad_out, coords);
  const int64_t B = grad_out.size(0), N = grad_out.size(1), C = grad_out.size(2);
  const int hi = checked_int(h, "h"), wi = checked_int(w, "w"), Hi = checked_int(H, "H"), Wi = checked_int(W, "W");
  const auto acc_dtype = at::toOpMathType(grad_out.scalar_type());
  auto acc = torch::zeros({B, C, h, w}, grad_out.options().dtype(acc_dtype));
  if (grad_out.numel() == 0) return acc.to(grad_out.scalar_type());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "grid_to_points_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (grad_out.is_cuda())
      INFDIFF_CUDA_LAUNCH(grad_out, "grid_to_points_backward",
                          cuda::grid_to_points_backward<cuda_t<scalar_t>, acc_t>(
                              B, N, C, Hi, Wi, hi, wi, cuda_ptr<scalar_t>(grad_out), coords.data_ptr<int32_t>(),
                              acc.data_ptr<acc_t>(), stream));
    else
      cpu::grid_to_points_backward<scalar_t, acc_t>(B, N, C, Hi, Wi, hi, wi, grad_out.data_ptr<scalar_t>(),
                                                    coords.data_ptr<int32_t>(), acc.data_ptr<acc_t>());
  });
  return acc.to(grad_out.scalar_type());
}

}  // namespace

void register_knn(pybind11::module_& m) {
  namespace py = pybind11;
  m.def("knn_search", &knn_search, "exact k-NN of every output cell among the points: (index, weights)",
        py::arg("coords"), py::arg("H"), py::arg("W"), py::arg("h"), py::arg("w"), py::arg("k"),
        py::arg("double_weights"));
  m.def("knn_gather", &knn_gather, "k-NN lerp of point features onto the grid", py::arg("x"), py::arg("index"),
        py::arg("weights"), py::arg("h"), py::arg("w"));
  m.def("knn_scatter", &knn_scatter, "adjoint of knn_gather", py::arg("grad_out"), py::arg("index"),
        py::arg("weights"), py::arg("N"));
  m.def("grid_to_points", &grid_to_points, "bilinear samples of a grid at the points", py::arg("y"),
        py::arg("coords"), py::arg("H"), py::arg("W"));
  m.def("grid_to_points_backward", &grid_to_points_backward, "adjoint of grid_to_points", py::arg("grad_out"),
        py::arg("coords"), py::arg("H"), py::arg("W"), py::arg("h"), py::arg("w"));
}

}  // namespace bindings
}  // namespace infdiff
