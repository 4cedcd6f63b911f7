// Unit test of csrc/common/spectral_math.h: the Gaussian/Wiener/GRF factors, Makhoul's
// reordering, and the reflect butterfly against a direct 2-D DCT-II filter computed from
// its cosine sums (no FFT library: naive DFTs). Returns non-zero on failure.
#include <cmath>
#include <complex>
#include <cstdio>
#include <vector>

#include "check.h"
#include "common/spectral_math.h"

using namespace infdiff::spectral;
using cd = std::complex<double>;

static double dct_gain(int ky, int kx, double sigma, int mode, double nsr) {
  const double rate = gaussian_rate(sigma, kReflect);
  return gain<double>(mode, gaussian(rate, double(ky) * ky + double(kx) * kx), nsr);
}

// y = C^{-1} diag(gain) C x with the unnormalised 2-D DCT-II C, straight from the sums.
static std::vector<double> direct_dct_filter(const std::vector<double>& x, int H, int W, double sigma,
                                             int mode, double nsr) {
  std::vector<double> X(H * W, 0.0), y(H * W, 0.0);
  for (int k1 = 0; k1 < H; ++k1)
    for (int k2 = 0; k2 < W; ++k2) {
      double acc = 0;
      for (int n1 = 0; n1 < H; ++n1)
        for (int n2 = 0; n2 < W; ++n2)
          acc += x[n1 * W + n2] * std::cos(kPi * k1 * (2 * n1 + 1) / (2.0 * H)) *
                 std::cos(kPi * k2 * (2 * n2 + 1) / (2.0 * W));
      X[k1 * W + k2] = acc * dct_gain(k1, k2, sigma, mode, nsr);
    }
  for (int n1 = 0; n1 < H; ++n1)
    for (int n2 = 0; n2 < W; ++n2) {
      double acc = 0;
      for (int k1 = 0; k1 < H; ++k1)
        for (int k2 = 0; k2 < W; ++k2)
          acc += (k1 ? 2.0 : 1.0) * (k2 ? 2.0 : 1.0) * X[k1 * W + k2] *
                 std::cos(kPi * k1 * (2 * n1 + 1) / (2.0 * H)) * std::cos(kPi * k2 * (2 * n2 + 1) / (2.0 * W));
      y[n1 * W + n2] = acc / (H * W);
    }
  return y;
}

// The same through Makhoul's reordering, a naive full DFT, the butterfly on rows (k1, H-k1)
// for columns 0..W/2, Hermitian completion, inverse DFT and the inverse reordering.
static std::vector<double> butterfly_filter(const std::vector<double>& x, int H, int W, double sigma, int mode,
                                            double nsr) {
  std::vector<cd> V(H * W);
  for (int k1 = 0; k1 < H; ++k1)
    for (int k2 = 0; k2 < W; ++k2) {
      cd acc = 0;
      for (int p1 = 0; p1 < H; ++p1)
        for (int p2 = 0; p2 < W; ++p2)
          acc += x[makhoul_source(p1, H) * W + makhoul_source(p2, W)] *
                 std::polar(1.0, -2 * kPi * (double(k1) * p1 / H + double(k2) * p2 / W));
      V[k1 * W + k2] = acc;
    }
  const int wc = W / 2 + 1;
  for (int k1 = 0; k1 <= H / 2; ++k1) {
    const int k1m = (H - k1) % H;
    for (int k2 = 0; k2 < wc; ++k2) {
      double v1r = V[k1 * W + k2].real(), v1i = V[k1 * W + k2].imag();
      double v2r = V[k1m * W + k2].real(), v2i = V[k1m * W + k2].imag();
      const double h = 0.5;
      reflect_butterfly(v1r, v1i, v2r, v2i, std::cos(kPi * k1 / (2.0 * H)), std::sin(kPi * k1 / (2.0 * H)),
                        std::cos(kPi * k2 / (2.0 * W)), std::sin(kPi * k2 / (2.0 * W)),
                        h * dct_gain(k1, k2, sigma, mode, nsr), h * dct_gain(H - k1, k2, sigma, mode, nsr),
                        h * dct_gain(k1, W - k2, sigma, mode, nsr), h * dct_gain(H - k1, W - k2, sigma, mode, nsr));
      V[k1 * W + k2] = cd(v1r, v1i);
      V[k1m * W + k2] = cd(v2r, v2i);
    }
  }
  for (int k1 = 0; k1 < H; ++k1)  // columns past W/2 from Hermitian symmetry, as irfft2 does
    for (int k2 = wc; k2 < W; ++k2) V[k1 * W + k2] = std::conj(V[((H - k1) % H) * W + (W - k2)]);
  std::vector<double> y(H * W);
  for (int p1 = 0; p1 < H; ++p1)
    for (int p2 = 0; p2 < W; ++p2) {
      cd acc = 0;
      for (int k1 = 0; k1 < H; ++k1)
        for (int k2 = 0; k2 < W; ++k2)
          acc += V[k1 * W + k2] * std::polar(1.0, 2 * kPi * (double(k1) * p1 / H + double(k2) * p2 / W));
      y[makhoul_source(p1, H) * W + makhoul_source(p2, W)] = acc.real() / (H * W);
    }
  return y;
}

int main() {
  CHECK_NEAR(gaussian_rate(0.1, kPeriodic), 2 * kPi * kPi * 0.01, 1e-15, 1e-15);
  CHECK_NEAR(gaussian_rate(0.1, kReflect), 0.5 * kPi * kPi * 0.01, 1e-15, 1e-15);
  CHECK_NEAR(wiener_factor(0.5, 0.05), 0.5 / 0.3, 1e-15, 1e-15);
  CHECK_NEAR(grf_sqrt_eigenvalue(2.0, 2.0, 3.0), std::sqrt(9.0 * std::pow(8 * kPi * kPi + 9.0, -2.0)), 1e-13, 1e-13);
  CHECK_EQ(fold_frequency(5, 8), 3);
  for (int n = 1; n <= 9; ++n) {  // Makhoul's order is a permutation: evens up, odds down
    std::vector<int> seen(n, 0);
    for (int p = 0; p < n; ++p) ++seen[makhoul_source(p, n)];
    for (int i = 0; i < n; ++i) CHECK_EQ(seen[i], 1);
  }
  const int sizes[][2] = {{4, 6}, {5, 3}, {1, 4}, {6, 1}, {7, 8}};
  for (const auto& hw : sizes) {
    const int H = hw[0], W = hw[1];
    std::vector<double> x(H * W);
    for (int i = 0; i < H * W; ++i) x[i] = std::sin(1.3 * i + 0.2) + 0.1 * i;
    for (int mode : {kMollify, kWiener}) {
      const auto want = direct_dct_filter(x, H, W, 0.15, mode, 0.05);
      const auto got = butterfly_filter(x, H, W, 0.15, mode, 0.05);
      for (int i = 0; i < H * W; ++i) CHECK_NEAR(got[i], want[i], 1e-10, 1e-10);
    }
  }
  return infdiff_test::finish("test_spectral_math");
}
