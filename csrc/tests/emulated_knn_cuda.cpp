// Runs the CUDA kernels of csrc/cuda/knn.cu on the host through the CUDA emulation in
// csrc/tests/cuda_emulator (the machine has no GPU), against the CPU kernels of
// csrc/cpu/knn.h: the search (device bucketing, then the ring walk) must pick the same
// neighbours in the same order, and the lerps and their adjoints must agree.
// CMake generates the included source from knn.cu by rewriting each launch.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "random_values.h"
#include "cpu/knn.h"
#include "knn_emulated.inc"

namespace {

using infdiff::KnnGeometry;

// B samples of N lattice pixels of an (H, W) grid: distinct and spread out, or (`cluster`)
// all in the top-left corner box of about N pixels, so cells far away must walk many empty
// rings of tiles; `duplicates` repeats the first pixel (allowed when the caller skips the check).
std::vector<int32_t> make_coords(int64_t B, int64_t N, int H, int W, bool cluster, bool duplicates,
                                 std::mt19937& rng) {
  std::vector<int32_t> coords(B * N * 2);
  int box_h = H, box_w = W;
  if (cluster) {
    while (static_cast<int64_t>(box_h - 1) * box_w >= N && box_h > 1) --box_h;
    while (static_cast<int64_t>(box_h) * (box_w - 1) >= N && box_w > 1) --box_w;
  }
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int> pixels(box_h * box_w);
    for (int p = 0; p < box_h * box_w; ++p) pixels[p] = p;
    std::shuffle(pixels.begin(), pixels.end(), rng);
    for (int64_t n = 0; n < N; ++n) {
      const int p = pixels[duplicates && n % 3 == 1 ? 0 : n];
      coords[(b * N + n) * 2] = p / box_w;
      coords[(b * N + n) * 2 + 1] = p % box_w;
    }
  }
  return coords;
}

template <typename acc_t>
void check_search(int64_t B, int64_t N, int H, int W, int h, int w, int k, bool cluster, bool duplicates,
                  std::mt19937& rng, std::vector<int32_t>& coords, std::vector<int32_t>& index,
                  std::vector<acc_t>& weights) {
  coords = make_coords(B, N, H, W, cluster, duplicates, rng);
  const KnnGeometry geo = infdiff::make_knn_geometry(H, W, h, w, N);
  const int64_t cells = static_cast<int64_t>(h) * w, tiles = static_cast<int64_t>(geo.tiles_h) * geo.tiles_w;
  index.assign(B * cells * k, -1);
  weights.assign(B * cells * k, acc_t(0));
  infdiff::cpu::knn_search<acc_t>(geo, B, N, k, coords.data(), index.data(), weights.data());

  std::vector<int32_t> tile_start(B * (tiles + 1), 0), tile_rank(B * N), tile_points(B * N);
  std::vector<int64_t> dist(B * cells * k);
  std::vector<int32_t> index_cuda(B * cells * k, -1);
  std::vector<acc_t> weights_cuda(B * cells * k, acc_t(0));
  const infdiff::cuda::KnnSearchScratch scratch{tile_start.data(), tile_rank.data(), tile_points.data(), dist.data()};
  CHECK_EQ(infdiff::cuda::knn_search<acc_t>(geo, B, N, k, coords.data(), scratch, index_cuda.data(),
                                            weights_cuda.data(), nullptr),
           cudaSuccess);
  for (size_t e = 0; e < index.size(); ++e) CHECK_EQ(index_cuda[e], index[e]);
  for (size_t e = 0; e < index.size(); ++e) CHECK_NEAR(weights_cuda[e], weights[e], 1e-6, 1e-6);

  // The device buckets hold every point once, each in the tile of its pixel.
  std::vector<int> seen(B * N, 0);
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* start = tile_start.data() + b * (tiles + 1);
    CHECK_EQ(start[0], 0);
    CHECK_EQ(start[tiles], N);
    for (int64_t t = 0; t < tiles; ++t)
      for (int32_t q = start[t]; q < start[t + 1]; ++q) {
        const int32_t p = tile_points[b * N + q];
        ++seen[b * N + p];
        CHECK_EQ(infdiff::point_tile(geo, coords[(b * N + p) * 2], coords[(b * N + p) * 2 + 1]), t);
      }
  }
  for (int count : seen) CHECK_EQ(count, 1);
}

// The gather / scatter through one search's neighbours, and the bilinear sampling at the
// points and its adjoint, CUDA against CPU.
template <typename T>
void check_lerps(int64_t B, int64_t N, int64_t C, int H, int W, int h, int w, int k, const std::vector<int32_t>& coords,
                 const std::vector<int32_t>& index, const std::vector<T>& weights, double tol) {
  std::mt19937 rng(static_cast<unsigned>(B * 131 + N * 17 + C));
  const int64_t cells = static_cast<int64_t>(h) * w;
  const std::vector<T> x = random_values<T>(B * N * C, rng), grid_grad = random_values<T>(B * C * cells, rng);
  std::vector<T> out_cpu(B * C * cells), out_cuda(B * C * cells);
  infdiff::cpu::knn_gather<T, T>(B, N, C, cells, k, x.data(), index.data(), weights.data(), out_cpu.data());
  CHECK_EQ((infdiff::cuda::knn_gather<T, T>(B, N, C, cells, k, x.data(), index.data(), weights.data(),
                                            out_cuda.data(), nullptr)),
           cudaSuccess);
  for (size_t e = 0; e < out_cpu.size(); ++e) CHECK_NEAR(out_cuda[e], out_cpu[e], tol, tol);

  std::vector<T> gx_cpu(B * N * C, T(0)), gx_cuda(B * N * C, T(0));
  infdiff::cpu::knn_scatter<T, T>(B, N, C, cells, k, grid_grad.data(), index.data(), weights.data(), gx_cpu.data());
  CHECK_EQ((infdiff::cuda::knn_scatter<T, T>(B, N, C, cells, k, grid_grad.data(), index.data(), weights.data(),
                                             gx_cuda.data(), nullptr)),
           cudaSuccess);
  for (size_t e = 0; e < gx_cpu.size(); ++e) CHECK_NEAR(gx_cuda[e], gx_cpu[e], tol, tol);

  // Deterministic mode: the same adjoint without float atomics, bit-identical on a rerun.
  const int64_t refs = cells * k;
  std::vector<int32_t> ref_rank(B * refs), ref_list(B * refs);
  std::vector<T> gx_det(B * N * C), gx_det_again(B * N * C);
  for (auto* out : {&gx_det, &gx_det_again}) {
    std::vector<int32_t> ref_start(B * (N + 1), 0);
    const infdiff::cuda::KnnScatterScratch scratch{ref_start.data(), ref_rank.data(), ref_list.data()};
    CHECK_EQ((infdiff::cuda::knn_scatter_deterministic<T, T>(B, N, C, cells, k, grid_grad.data(), index.data(),
                                                             weights.data(), scratch, out->data(), nullptr)),
             cudaSuccess);
  }
  for (size_t e = 0; e < gx_cpu.size(); ++e) CHECK_NEAR(gx_det[e], gx_cpu[e], tol, tol);
  for (size_t e = 0; e < gx_cpu.size(); ++e) CHECK_EQ(gx_det_again[e], gx_det[e]);

  const std::vector<T> points_grad = random_values<T>(B * N * C, rng);
  std::vector<T> samples_cpu(B * N * C), samples_cuda(B * N * C);
  infdiff::cpu::grid_to_points<T, T>(B, N, C, H, W, h, w, grid_grad.data(), coords.data(), samples_cpu.data());
  CHECK_EQ((infdiff::cuda::grid_to_points<T, T>(B, N, C, H, W, h, w, grid_grad.data(), coords.data(),
                                                samples_cuda.data(), nullptr)),
           cudaSuccess);
  for (size_t e = 0; e < samples_cpu.size(); ++e) CHECK_NEAR(samples_cuda[e], samples_cpu[e], tol, tol);

  std::vector<T> gy_cpu(B * C * cells, T(0)), gy_cuda(B * C * cells, T(0));
  infdiff::cpu::grid_to_points_backward<T, T>(B, N, C, H, W, h, w, points_grad.data(), coords.data(), gy_cpu.data());
  CHECK_EQ((infdiff::cuda::grid_to_points_backward<T, T>(B, N, C, H, W, h, w, points_grad.data(), coords.data(),
                                                         gy_cuda.data(), nullptr)),
           cudaSuccess);
  for (size_t e = 0; e < gy_cpu.size(); ++e) CHECK_NEAR(gy_cuda[e], gy_cpu[e], tol, tol);
}

template <typename T>
void run(int64_t B, int64_t N, int64_t C, int H, int W, int h, int w, int k, bool cluster, bool duplicates,
         std::mt19937& rng, double tol) {
  std::vector<int32_t> coords, index;
  std::vector<T> weights;
  check_search<T>(B, N, H, W, h, w, k, cluster, duplicates, rng, coords, index, weights);
  check_lerps<T>(B, N, C, H, W, h, w, k, coords, index, weights, tol);
}

}  // namespace

int main() {
  std::mt19937 rng(3);
  // One point (every cell's only neighbour), k = N, odd and unequal sides, upsampling and
  // downsampling grids, clustered points (cells far from any point walk empty rings up to
  // the grid border), repeated pixels, a batch of two, more than 256 cells (several
  // blocks) and more than 256 tiles (the scan's runs hold several tiles each).
  run<double>(1, 1, 3, 5, 7, 4, 3, 1, false, false, rng, 1e-12);
  run<double>(2, 6, 2, 5, 7, 9, 11, 6, false, false, rng, 1e-12);
  run<double>(2, 20, 5, 9, 13, 6, 5, 4, false, false, rng, 1e-12);
  run<double>(1, 12, 4, 16, 16, 16, 16, 3, true, false, rng, 1e-12);
  run<double>(2, 15, 3, 7, 6, 8, 5, 3, false, true, rng, 1e-12);
  run<float>(1, 30, 3, 11, 10, 17, 19, 8, false, false, rng, 1e-5);
  run<float>(1, 1500, 2, 64, 64, 20, 20, 4, false, false, rng, 1e-5);
  return infdiff_test::finish("emulated_knn_cuda");
}
