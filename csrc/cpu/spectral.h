// CPU kernels of the spectral filters (contract: docs/ops.md). Torch-free: raw pointers and sizes;
// the transforms themselves are torch.fft calls made by the Python side. The transfer
// function is evaluated here, per call, from 1-D tables of O(H + W) values (the Gaussian is
// separable; the Wiener factor and sqrt(lambda_k) are applied per coefficient).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../common/spectral_math.h"

namespace infdiff {
namespace cpu {

using spectral::SpectralParams;
using spectral::SpectralShape;

namespace detail {

template <typename T>
std::vector<T> gaussian_table(int n, double rate) {
  std::vector<T> g(n + 1);
  for (int k = 0; k <= n; ++k) {
    const double v = spectral::gaussian(rate, double(k) * double(k));
    // Subnormal gains change nothing visible but make every multiply by them slow.
    g[k] = v < double(std::numeric_limits<T>::min()) ? T(0) : static_cast<T>(v);
  }
  return g;
}

template <typename T>
void twiddles(int n, std::vector<T>& c, std::vector<T>& s, int count) {
  c.resize(count);
  s.resize(count);
  for (int k = 0; k < count; ++k) {
    const double phi = spectral::kPi * k / (2.0 * n);
    c[k] = static_cast<T>(std::cos(phi));
    s[k] = static_cast<T>(std::sin(phi));
  }
}

template <typename T>
void periodic_multiply(const SpectralShape& sh, const SpectralParams& p, T* spec) {
  const int H = sh.height, W = sh.width, Wc = W / 2 + 1;
  const double rate = spectral::gaussian_rate(p.sigma, spectral::kPeriodic);
  const std::vector<T> gy = gaussian_table<T>(H / 2, rate), gx = gaussian_table<T>(Wc - 1, rate);
  const T nsr = static_cast<T>(p.nsr);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < sh.batch * H; ++row) {
    const int ky = spectral::fold_frequency(static_cast<int>(row % H), H);
    T* z = spec + 2 * row * Wc;
    if (p.mode == spectral::kGrf) {
      for (int kx = 0; kx < Wc; ++kx) {
        const double f = p.scale * spectral::grf_sqrt_eigenvalue<double>(double(ky) * ky + double(kx) * kx,
                                                                           p.alpha, p.tau);
        z[2 * kx] *= static_cast<T>(f);
        z[2 * kx + 1] *= static_cast<T>(f);
      }
    } else if (p.mode == spectral::kWiener) {
      for (int kx = 0; kx < Wc; ++kx) {
        const T f = spectral::wiener_factor(gy[ky] * gx[kx], nsr);
        z[2 * kx] *= f;
        z[2 * kx + 1] *= f;
      }
    } else {
      const T g = gy[ky];
#pragma omp simd
      for (int kx = 0; kx < Wc; ++kx) {
        z[2 * kx] *= g * gx[kx];
        z[2 * kx + 1] *= g * gx[kx];
      }
    }
  }
}

// One row pair (k1, H - k1): row-constant factors hoisted, the column loop free of branches
// and aliasing so it vectorises. `self` rows (k1 = 0 or H/2) pair with themselves.
template <typename T, bool kWienerMode>
void reflect_row_pair(T* __restrict__ r1, T* __restrict__ r2, bool self, int Wc, T y0, T y1, T c1, T s1,
                      const T* __restrict__ gx, const T* __restrict__ gxm, const T* __restrict__ c2,
                      const T* __restrict__ s2, T nsr) {
  constexpr int kMode = kWienerMode ? spectral::kWiener : spectral::kMollify;
  auto gain = [nsr](T g) { return spectral::butterfly_gain(kMode, g, nsr); };
  if (self) {
    for (int k2 = 0; k2 < Wc; ++k2) {
      T v1r = r1[2 * k2], v1i = r1[2 * k2 + 1], v2r = v1r, v2i = v1i;
      spectral::reflect_butterfly(v1r, v1i, v2r, v2i, c1, s1, c2[k2], s2[k2], gain(y0 * gx[k2]), gain(y1 * gx[k2]),
                                  gain(y0 * gxm[k2]), gain(y1 * gxm[k2]));
      r1[2 * k2] = v1r;
      r1[2 * k2 + 1] = v1i;
    }
    return;
  }
#pragma omp simd
  for (int k2 = 0; k2 < Wc; ++k2) {
    T v1r = r1[2 * k2], v1i = r1[2 * k2 + 1], v2r = r2[2 * k2], v2i = r2[2 * k2 + 1];
    spectral::reflect_butterfly(v1r, v1i, v2r, v2i, c1, s1, c2[k2], s2[k2], gain(y0 * gx[k2]), gain(y1 * gx[k2]),
                                gain(y0 * gxm[k2]), gain(y1 * gxm[k2]));
    r1[2 * k2] = v1r;
    r1[2 * k2 + 1] = v1i;
    r2[2 * k2] = v2r;
    r2[2 * k2 + 1] = v2i;
  }
}

template <typename T>
void reflect_multiply(const SpectralShape& sh, const SpectralParams& p, T* spec) {
  const int H = sh.height, W = sh.width, Wc = W / 2 + 1, pairs = H / 2 + 1;
  const double rate = spectral::gaussian_rate(p.sigma, spectral::kReflect);
  // Gaussian factors at DCT indices 0..H (resp. 0..W) and, per rfft column k2, at W - k2;
  // index H (or W) only ever multiplies a zero.
  const std::vector<T> gy = gaussian_table<T>(H, rate), gx = gaussian_table<T>(W, rate);
  std::vector<T> gxm(Wc);
  for (int k2 = 0; k2 < Wc; ++k2) gxm[k2] = gx[W - k2];
  std::vector<T> c1, s1, c2, s2;
  twiddles(H, c1, s1, pairs);
  twiddles(W, c2, s2, Wc);
  const T nsr = static_cast<T>(p.nsr);
#pragma omp parallel for schedule(static)
  for (int64_t bp = 0; bp < sh.batch * pairs; ++bp) {
    const int k1 = static_cast<int>(bp % pairs), k1m = (H - k1) % H;
    T* r1 = spec + 2 * ((bp / pairs) * H + k1) * Wc;
    T* r2 = spec + 2 * ((bp / pairs) * H + k1m) * Wc;
    if (p.mode == spectral::kWiener)
      reflect_row_pair<T, true>(r1, r2, k1 == k1m, Wc, gy[k1], gy[H - k1], c1[k1], s1[k1], gx.data(), gxm.data(),
                                c2.data(), s2.data(), nsr);
    else
      reflect_row_pair<T, false>(r1, r2, k1 == k1m, Wc, gy[k1], gy[H - k1], c1[k1], s1[k1], gx.data(), gxm.data(),
                                 c2.data(), s2.data(), nsr);
  }
}

}  // namespace detail

// In place on the interleaved complex rfft2 spectrum (batch, H, W/2 + 1, 2).
template <typename T>
void spectral_multiply(const SpectralShape& sh, const SpectralParams& p, T* spec) {
  if (p.boundary == spectral::kReflect && p.mode != spectral::kGrf)
    detail::reflect_multiply(sh, p, spec);
  else
    detail::periodic_multiply(sh, p, spec);
}

// out[b] = a[b] * x[b] + s[b] * y[b] on (batch, H, W) grids, gathered through Makhoul's
// reordering when `reorder`; y, a and s may be null (then out = x, reordered). a and s are
// per leading batch element: element b of the flattened batch uses a[b / per_a].
namespace detail {
// o[j] = f(j-th entry of Makhoul's reordering of the row r): even entries, then odd ones reversed.
template <typename T, typename F>
void reorder_row(int W, F f, T* o) {
  const int half = (W + 1) / 2;
  for (int j = 0; j < half; ++j) o[j] = f(2 * j);
  for (int j = half; j < W; ++j) o[j] = f(2 * (W - 1 - j) + 1);
}
}  // namespace detail

// out[b] = a[b] * x[b] + s[b] * y[b] on (batch, H, W) grids, gathered through Makhoul's
// reordering when `reorder`; y, a and s may be null (then out = x, reordered). a and s hold
// one value per leading batch element: flattened element b uses a[b / per_a].
template <typename T>
void prepare(const SpectralShape& sh, const T* x, const T* y, const T* a, const T* s, int64_t per_a,
             bool reorder, T* out) {
  const int H = sh.height, W = sh.width;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < sh.batch * H; ++row) {
    const int64_t b = row / H;
    const int i = static_cast<int>(row % H);
    const int64_t src = (b * H + (reorder ? spectral::makhoul_source(i, H) : i)) * W;
    const T* xr = x + src;
    T* o = out + row * W;
    if (y == nullptr) {
      if (reorder)
        detail::reorder_row(W, [xr](int j) { return xr[j]; }, o);
      else
        for (int j = 0; j < W; ++j) o[j] = xr[j];
      continue;
    }
    const T* yr = y + src;
    const T ab = a[b / per_a], sb = s[b / per_a];
    if (reorder) {
      detail::reorder_row(W, [=](int j) { return ab * xr[j] + sb * yr[j]; }, o);
    } else {
#pragma omp simd
      for (int j = 0; j < W; ++j) o[j] = ab * xr[j] + sb * yr[j];
    }
  }
}

// out = the inverse of Makhoul's reordering of w: out[b, src(i), src(j)] = w[b, i, j].
template <typename T>
void unreorder(const SpectralShape& sh, const T* w, T* out) {
  const int H = sh.height, W = sh.width, half = (W + 1) / 2;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < sh.batch * H; ++row) {
    const int64_t b = row / H;
    const int i = static_cast<int>(row % H);
    const T* wr = w + row * W;
    T* o = out + (b * H + spectral::makhoul_source(i, H)) * W;
    for (int j = 0; j < half; ++j) o[2 * j] = wr[j];
    for (int j = half; j < W; ++j) o[2 * (W - 1 - j) + 1] = wr[j];
  }
}

}  // namespace cpu
}  // namespace infdiff
