// Per-coefficient math of the spectral filters (contract: docs/ops.md), shared by the CPU and CUDA
// kernels and unit-tested by csrc/tests/test_spectral_math.cpp.
//
// "reflect" runs a DCT-II through an FFT of the original size (Makhoul 1980): the input is
// reordered along each axis as v = [x0, x2, x4, ..., x5, x3, x1] and rfft2'd. Each pair of
// rfft2 rows (k1, H - k1) at column k2 then holds exactly the four DCT-II coefficients
// (k1 | H-k1, k2 | W-k2), so the DCT-domain filter becomes a 4-real butterfly applied in
// place on the rfft2 spectrum (`reflect_butterfly`), followed by irfft2 and the inverse
// reordering. The 4x mirrored image is never built.
#pragma once

#include <cmath>
#include <cstdint>

#include "macros.h"

namespace infdiff {
namespace spectral {

enum Boundary : int { kPeriodic = 0, kReflect = 1 };
// kMollify: G; kWiener: G / (G^2 + nsr); kGrf: scale * sqrt(lambda_k) (periodic only).
enum Mode : int { kMollify = 0, kWiener = 1, kGrf = 2 };

struct SpectralShape {
  int64_t batch;      // product of the leading dims
  int height, width;  // real grid (H, W); the spectrum is (batch, H, W/2 + 1) complex
};

struct SpectralParams {
  int boundary, mode;
  double sigma, nsr;         // mollify / Wiener
  double alpha, tau, scale;  // GRF: scale * sqrt(lambda_k)
};

constexpr double kPi = 3.14159265358979323846;

// G = exp(-rate * k^2) per squared integer index: periodic indices are cycles per unit
// length (rate 2 pi^2 sigma^2); DCT index k is k/2 cycles per unit length (rate pi^2 sigma^2 / 2).
INFDIFF_HD double gaussian_rate(double sigma, int boundary) {
  return boundary == kPeriodic ? 2.0 * kPi * kPi * sigma * sigma : 0.5 * kPi * kPi * sigma * sigma;
}

template <typename T>
INFDIFF_HD T gaussian(T rate, T k_squared) {
  return exp(-rate * k_squared);
}

template <typename T>
INFDIFF_HD T wiener_factor(T g, T nsr) {
  return g / (g * g + nsr);
}

// The filter of `mode` applied to a Gaussian gain g (mollify or Wiener).
template <typename T>
INFDIFF_HD T gain(int mode, T g, T nsr) {
  return mode == kWiener ? wiener_factor(g, nsr) : g;
}

// The gain reflect_butterfly takes for a DCT coefficient whose filter gain is g: halved,
// since the butterfly scales the doubled half-sums 2A and 2B of a row pair.
template <typename T>
INFDIFF_HD T butterfly_gain(int mode, T g, T nsr) {
  return T(0.5) * gain(mode, g, nsr);
}

// sqrt(lambda_k), lambda_k = tau^(2 alpha - 2) (4 pi^2 |k|^2 + tau^2)^(-alpha)
//                          = tau^(-2) (1 + 4 pi^2 |k|^2 / tau^2)^(-alpha),
// evaluated in the second form: nothing overflows for a large alpha or tau, and no
// (alpha - 1) ln tau cancels against alpha ln tau (which lost all digits for a large alpha).
template <typename T>
INFDIFF_HD T grf_sqrt_eigenvalue(T k_squared, T alpha, T tau) {
  return exp(-log(tau) - T(0.5) * alpha * log1p(T(4.0 * kPi * kPi) * k_squared / (tau * tau)));
}

// |signed frequency| of FFT index k of a length-n transform.
INFDIFF_HD int fold_frequency(int k, int n) { return k <= n - k ? k : n - k; }

// Makhoul's reordering: position p of v holds x[makhoul_source(p, n)].
INFDIFF_HD int makhoul_source(int p, int n) { return p < (n + 1) / 2 ? 2 * p : 2 * (n - 1 - p) + 1; }

// The DCT-domain filter on the rfft2 pair (v1 at row k1, v2 at row H - k1; same column k2)
// of the Makhoul-reordered input, in place. (c1, s1) = (cos, sin)(pi k1 / 2H), (c2, s2) =
// (cos, sin)(pi k2 / 2W); g00, g10, g01, g11 are the DCT gains at (k1, k2), (H-k1, k2),
// (k1, W-k2), (H-k1, W-k2), each already halved. For a self-paired row (k1 = 0 or H/2)
// pass v2 = v1: both outputs then agree.
//   P = e^{-i phi2} v undoes the column twiddle; A = (P1 + conj P2)/2 and B = (P1 - conj P2)/2i
//   split the row FFTs of the real and imaginary parts (DCT columns k2 and W-k2); e^{-i phi1} A
//   has real part X[k1] and imaginary part -X[H-k1], which the gains scale; then back.
template <typename T>
INFDIFF_HD void reflect_butterfly(T& v1r, T& v1i, T& v2r, T& v2i, T c1, T s1, T c2, T s2, T g00, T g10,
                                  T g01, T g11) {
  const T p1r = c2 * v1r + s2 * v1i, p1i = c2 * v1i - s2 * v1r;
  const T p2r = c2 * v2r + s2 * v2i, p2i = c2 * v2i - s2 * v2r;
  const T ar = p1r + p2r, ai = p1i - p2i;  // 2A
  const T br = p1i + p2i, bi = p2r - p1r;  // 2B
  // Z = e^{-i phi1} * (2A), scaled per part, rotated back.
  T zr = g00 * (c1 * ar + s1 * ai), zi = g10 * (c1 * ai - s1 * ar);
  const T a2r = c1 * zr - s1 * zi, a2i = c1 * zi + s1 * zr;
  zr = g01 * (c1 * br + s1 * bi);
  zi = g11 * (c1 * bi - s1 * br);
  const T b2r = c1 * zr - s1 * zi, b2i = c1 * zi + s1 * zr;
  const T q1r = a2r - b2i, q1i = a2i + b2r;  // A' + i B'
  const T q2r = a2r + b2i, q2i = b2r - a2i;  // conj A' + i conj B'
  v1r = c2 * q1r - s2 * q1i;
  v1i = c2 * q1i + s2 * q1r;
  v2r = c2 * q2r - s2 * q2i;
  v2i = c2 * q2i + s2 * q2r;
}

}  // namespace spectral
}  // namespace infdiff
