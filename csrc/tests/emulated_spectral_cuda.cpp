// Runs the CUDA kernels of csrc/cuda/spectral.cu on the host through the CUDA emulation in
// csrc/tests/cuda_emulator (the machine has no GPU), against the CPU kernels of
// csrc/cpu/spectral.h (whose math test_spectral_math checks against direct DCT sums).
// CMake generates the included source from spectral.cu by rewriting each launch.
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "random_values.h"
#include "cpu/spectral.h"
#include "spectral_emulated.inc"

namespace {

using infdiff::spectral::SpectralParams;
using infdiff::spectral::SpectralShape;

// The filter of (boundary, mode) on a random interleaved rfft2 spectrum (batch, H, W/2 + 1, 2).
template <typename T>
void check_multiply(int64_t batch, int H, int W, int boundary, int mode, std::mt19937& rng, double tol) {
  const SpectralShape shape{batch, H, W};
  // sigma of a few pixels, so gains span (0, 1]; GRF with a large alpha and tau.
  const SpectralParams params{boundary, mode, 1.5 / (H > W ? H : W), 0.05, 2.5, 3.0, 1.7};
  const std::vector<T> spec = random_values<T>(batch * H * (W / 2 + 1) * 2, rng);
  std::vector<T> on_cpu = spec, on_cuda = spec;
  infdiff::cpu::spectral_multiply<T>(shape, params, on_cpu.data());
  CHECK_EQ(infdiff::cuda::spectral_multiply<T>(shape, params, on_cuda.data(), nullptr), cudaSuccess);
  for (size_t i = 0; i < spec.size(); ++i) CHECK_NEAR(on_cuda[i], on_cpu[i], tol, tol);
}

// a * x + s * y (or x alone), reordered or not, and the inverse reordering back.
template <typename T>
void check_reordering(int64_t leading, int64_t per_a, int H, int W, bool combine, bool reorder, std::mt19937& rng,
                      double tol) {
  const SpectralShape shape{leading * per_a, H, W};
  const int64_t n = shape.batch * H * W;
  const std::vector<T> x = random_values<T>(n, rng), y = random_values<T>(n, rng);
  const std::vector<T> a = random_values<T>(leading, rng), s = random_values<T>(leading, rng);
  const T* yp = combine ? y.data() : nullptr;
  const T* ap = combine ? a.data() : nullptr;
  const T* sp = combine ? s.data() : nullptr;
  std::vector<T> on_cpu(n), on_cuda(n);
  infdiff::cpu::prepare<T>(shape, x.data(), yp, ap, sp, per_a, reorder, on_cpu.data());
  CHECK_EQ(infdiff::cuda::spectral_prepare<T>(shape, x.data(), yp, ap, sp, per_a, reorder, on_cuda.data(), nullptr),
           cudaSuccess);
  for (int64_t i = 0; i < n; ++i) CHECK_NEAR(on_cuda[i], on_cpu[i], tol, tol);

  std::vector<T> back_cpu(n), back_cuda(n);
  infdiff::cpu::unreorder<T>(shape, on_cpu.data(), back_cpu.data());
  CHECK_EQ(infdiff::cuda::spectral_unreorder<T>(shape, on_cuda.data(), back_cuda.data(), nullptr), cudaSuccess);
  for (int64_t i = 0; i < n; ++i) CHECK_NEAR(back_cuda[i], back_cpu[i], tol, tol);
}

}  // namespace

int main() {
  namespace sp = infdiff::spectral;
  std::mt19937 rng(7);
  // Even and odd sides (a self-paired middle row only when H is even), a single pixel, a
  // single row or column, and more than one block of threads (2 x 24 x 33: 816 coefficients).
  const int sizes[][2] = {{1, 1}, {1, 6}, {7, 1}, {4, 6}, {5, 3}, {8, 9}, {24, 33}};
  for (const auto& hw : sizes)
    for (int boundary : {sp::kPeriodic, sp::kReflect})
      for (int mode : {sp::kMollify, sp::kWiener, sp::kGrf}) {
        check_multiply<double>(2, hw[0], hw[1], boundary, mode, rng, 1e-12);
        check_multiply<float>(1, hw[0], hw[1], boundary, mode, rng, 2e-5);
      }
  check_multiply<double>(0, 4, 6, sp::kReflect, sp::kWiener, rng, 1e-12);  // empty batch: nothing to do
  for (const auto& hw : sizes)
    for (bool combine : {false, true})
      for (bool reorder : {false, true}) {
        check_reordering<double>(2, 3, hw[0], hw[1], combine, reorder, rng, 1e-15);
        check_reordering<float>(1, 1, hw[0], hw[1], combine, reorder, rng, 1e-6);
      }
  return infdiff_test::finish("emulated_spectral_cuda");
}
