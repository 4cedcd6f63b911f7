// Runs the CUDA kernels of csrc/cuda/sparse_conv.cu on the host through the CUDA emulation
// in csrc/tests/cuda_emulator (the machine has no GPU), against the CPU kernels of
// csrc/cpu/sparse_conv.h (themselves checked against a naive loop by test_sparse_conv_cpu).
// CMake generates the included source from sparse_conv.cu by rewriting each
// `kernel<<<grid, block, smem, stream>>>(args)` into an emulated launch.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/sparse_conv.h"
#include "sparse_conv_emulated.inc"

namespace {

struct Geometry {
  std::vector<int32_t> coords, lookup, counts;
};

// B samples of N distinct random pixels of an (H, W) grid; counts from the lookup grid.
Geometry make_geometry(int64_t B, int64_t N, int H, int W, int K, std::mt19937& rng) {
  Geometry g{std::vector<int32_t>(B * N * 2), std::vector<int32_t>(B * H * W, -1),
             std::vector<int32_t>(B * N)};
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int> pixels(H * W);
    for (int i = 0; i < H * W; ++i) pixels[i] = i;
    std::shuffle(pixels.begin(), pixels.end(), rng);
    for (int64_t n = 0; n < N; ++n) {
      g.coords[(b * N + n) * 2] = pixels[n] / W;
      g.coords[(b * N + n) * 2 + 1] = pixels[n] % W;
      g.lookup[b * H * W + pixels[n]] = static_cast<int32_t>(n);
    }
  }
  const int r = K / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) {
      int m = 0;
      for (int dy = -r; dy <= r; ++dy)
        for (int dx = -r; dx <= r; ++dx)
          m += infdiff::lookup_point(g.lookup.data() + b * H * W, H, W,
                                     g.coords[(b * N + n) * 2] + dy,
                                     g.coords[(b * N + n) * 2 + 1] + dx) >= 0;
      g.counts[b * N + n] = m;
    }
  return g;
}

template <typename T>
void run(int64_t B, int64_t N, int64_t C, int H, int W, int K, int normalize, std::mt19937& rng,
         double tol) {
  const Geometry geo = make_geometry(B, N, H, W, K, rng);
  const int64_t taps = K * K;
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  std::vector<T> x(B * N * C), g(B * N * C), w(C * taps), bias(C);
  for (auto* v : {&x, &g, &w, &bias})
    for (auto& e : *v) e = static_cast<T>(uni(rng));
  const infdiff::SparseConvShape sh{B, N, C, H, W, K, normalize};

  std::vector<T> out_cpu(x.size()), out_gpu(x.size()), gx_cpu(x.size()), gx_gpu(x.size());
  std::vector<T> gw_cpu(w.size(), T(0)), gw_gpu(w.size(), T(0));
  infdiff::cpu::sparse_conv_forward<T, T>(sh, x.data(), geo.coords.data(), geo.lookup.data(),
                                          geo.counts.data(), w.data(), bias.data(), out_cpu.data());
  infdiff::cpu::sparse_conv_backward<T, T>(sh, g.data(), x.data(), geo.coords.data(),
                                           geo.lookup.data(), geo.counts.data(), w.data(),
                                           gx_cpu.data(), gw_cpu.data());
  CHECK_EQ((infdiff::cuda::sparse_conv_forward<T, T>(sh, x.data(), geo.coords.data(),
                                                    geo.lookup.data(), geo.counts.data(), w.data(),
                                                    bias.data(), out_gpu.data(), nullptr)),
           cudaSuccess);
  CHECK_EQ((infdiff::cuda::sparse_conv_backward<T, T>(sh, g.data(), x.data(), geo.coords.data(),
                                                     geo.lookup.data(), geo.counts.data(),
                                                     w.data(), gx_gpu.data(), gw_gpu.data(),
                                                     nullptr)),
           cudaSuccess);
  for (size_t i = 0; i < x.size(); ++i) CHECK_NEAR(out_gpu[i], out_cpu[i], tol, tol);
  for (size_t i = 0; i < x.size(); ++i) CHECK_NEAR(gx_gpu[i], gx_cpu[i], tol, tol);
  for (size_t i = 0; i < w.size(); ++i) CHECK_NEAR(gw_gpu[i], gw_cpu[i], tol, tol);

  // Only one gradient asked for; no bias.
  std::vector<T> gw_only(w.size(), T(0)), out_nb(x.size());
  CHECK_EQ((infdiff::cuda::sparse_conv_backward<T, T>(sh, g.data(), x.data(), geo.coords.data(),
                                                     geo.lookup.data(), geo.counts.data(),
                                                     w.data(), nullptr, gw_only.data(), nullptr)),
           cudaSuccess);
  for (size_t i = 0; i < w.size(); ++i) CHECK_NEAR(gw_only[i], gw_cpu[i], tol, tol);
  CHECK_EQ((infdiff::cuda::sparse_conv_forward<T, T>(sh, x.data(), geo.coords.data(),
                                                    geo.lookup.data(), geo.counts.data(), w.data(),
                                                    nullptr, out_nb.data(), nullptr)),
           cudaSuccess);
  for (size_t i = 0; i < x.size(); ++i)
    CHECK_NEAR(out_nb[i], static_cast<double>(out_cpu[i]) - static_cast<double>(bias[i % C]), tol, tol);
}

}  // namespace

int main() {
  std::mt19937 rng(99);
  // K = 3, 5, 7 take the specialised kernels; 1, 9 and 11 the runtime-K ones (9 and 11
  // split a kernel row over two grad_w blocks). Kept small: the emulation is slow.
  for (int normalize : {infdiff::kPartial, infdiff::kMean, infdiff::kNone})
    for (int K : {3, 9}) run<double>(2, 20, 5, 6, 7, K, normalize, rng, 1e-12);
  for (int K : {1, 5, 7, 11}) run<double>(2, 20, 5, 6, 7, K, infdiff::kPartial, rng, 1e-12);
  for (int K : {3, 9}) run<float>(1, 42, 3, 6, 7, K, infdiff::kMean, rng, 1e-5);
  // One point (its window holds only itself); few points on a larger grid, so most windows
  // are otherwise empty and many cross the border.
  run<double>(1, 1, 3, 5, 4, 3, infdiff::kPartial, rng, 1e-12);
  run<double>(2, 4, 3, 9, 11, 5, infdiff::kMean, rng, 1e-12);
  // Channel tiles wider than a warp, a partial last tile, a single channel, empty input.
  run<double>(2, 30, 40, 8, 9, 3, infdiff::kPartial, rng, 1e-12);
  run<double>(1, 12, 1, 4, 5, 5, infdiff::kMean, rng, 1e-12);
  run<float>(1, 0, 4, 4, 5, 3, infdiff::kPartial, rng, 1e-5);
  return infdiff_test::finish("emulated_sparse_conv_cuda");
}
