// CPU kernels of the sparse depthwise convolution (contract: docs/ops.md). Torch-free: raw
// pointers and sizes, instantiated for each dtype by the bindings.
//
// Why it is shaped this way: at 1/4 density only ~12 of a 7x7 window's 49 pixels hold a
// point, and a branch per tap mispredicts about half the time. So each point first
// gathers its present neighbours into a short list without branches, then runs the
// multiply-adds over that list. OpenMP runs over points; the channel loops are contiguous
// (features channels-last, kernel transposed to (K*K, C)) so they vectorise. The channel
// loop lives in its own function with restrict pointers: inlined into the neighbour loop,
// GCC 12 vectorised it with gathers, 4x slower (measured with perf).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/sparse_conv_math.h"

namespace infdiff {
namespace cpu {

// (C, K*K) -> (K*K, C) in the accumulation type, so the inner loop is over contiguous c.
template <typename scalar_t, typename acc_t>
std::vector<acc_t> transpose_kernel(const scalar_t* weight, int64_t channels, int taps) {
  std::vector<acc_t> out(static_cast<size_t>(taps) * channels);
  for (int64_t c = 0; c < channels; ++c)
    for (int t = 0; t < taps; ++t) out[t * channels + c] = static_cast<acc_t>(weight[c * taps + t]);
  return out;
}

// The points present in the window of the point at (row, col): their indices and their
// taps (window offset of the neighbour), written without data-dependent branches.
// Returns how many there are.
inline int gather_window(const int32_t* grid, int height, int width, int row, int col, int kernel_size,
                         int32_t* neighbours, int32_t* taps) {
  const int r = kernel_size / 2;
  int found = 0;
  for (int dy = -r; dy <= r; ++dy) {
    const int rr = row + dy;
    if (rr < 0 || rr >= height) continue;  // whole rows: predictable
    const int32_t* line = grid + static_cast<int64_t>(rr) * width;
    const int lo = std::max(-r, -col), hi = std::min(r, width - 1 - col);
    for (int dx = lo; dx <= hi; ++dx) {
      const int32_t p = line[col + dx];
      neighbours[found] = p;
      taps[found] = tap_index(dy, dx, r, kernel_size);
      found += p >= 0;
    }
  }
  return found;
}

// acc[c] += s * w[c] * v[c]
template <typename scalar_t, typename acc_t>
inline void scaled_fma(acc_t* __restrict acc, acc_t s, const acc_t* __restrict w, const scalar_t* __restrict v,
                       int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) acc[c] += s * w[c] * static_cast<acc_t>(v[c]);
}

// acc[c] = sum_j coef_j * w[taps_j, c] * v[rows_j, c].
template <typename scalar_t, typename acc_t>
inline void window_sum(acc_t* acc, int count, const int32_t* rows, const int32_t* taps, const acc_t* coef,
                       const scalar_t* v, const acc_t* wt, int64_t C) {
  std::fill(acc, acc + C, acc_t(0));
  for (int j = 0; j < count; ++j)
    scaled_fma(acc, coef[j], wt + static_cast<int64_t>(taps[j]) * C, v + static_cast<int64_t>(rows[j]) * C, C);
}

// out[b, n, :] = s[b, n] * sum_{p in window(n)} w[:, tap(p - n)] * x[b, p, :] + bias
template <typename scalar_t, typename acc_t>
void sparse_conv_forward(const SparseConvShape& sh, const scalar_t* x, const int32_t* coords,
                         const int32_t* lookup, const int32_t* counts, const scalar_t* weight,
                         const scalar_t* bias, scalar_t* out) {
  const int K = sh.kernel_size, taps = K * K;
  const int64_t C = sh.channels, N = sh.points;
  const std::vector<acc_t> wt = transpose_kernel<scalar_t, acc_t>(weight, C, taps);
#pragma omp parallel
  {
    std::vector<acc_t> acc(C);
    std::vector<int32_t> nbr(taps), tap(taps);
    // The forward sums unscaled: coefficients of one.
    const std::vector<acc_t> ones(taps, acc_t(1));
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < sh.batch * N; ++bn) {
      const int64_t b = bn / N;
      const int32_t* grid = lookup + b * sh.height * sh.width;
      const int found = gather_window(grid, sh.height, sh.width, coords[2 * bn], coords[2 * bn + 1], K,
                                      nbr.data(), tap.data());
      window_sum<scalar_t, acc_t>(acc.data(), found, nbr.data(), tap.data(), ones.data(), x + b * N * C,
                                  wt.data(), C);
      const acc_t s = window_scale<acc_t>(sh.normalize, K, counts[bn]);
      scalar_t* o = out + bn * C;
      for (int64_t c = 0; c < C; ++c)
        o[c] = static_cast<scalar_t>(s * acc[c] + (bias ? static_cast<acc_t>(bias[c]) : acc_t(0)));
    }
  }
}

// Both gradients come from one gather per point, because the window relation is symmetric:
//   grad_x[q] = sum_{u in window(q)} s[u] * w[:, tap(q - u)] * g[u]
//   grad_w[:, tap(u - q)] += s[q] * g[q] * x[u]
// grad_w (C, K*K) is accumulated per thread in acc_t and reduced at the end; either output
// may be null.
template <typename scalar_t, typename acc_t>
void sparse_conv_backward(const SparseConvShape& sh, const scalar_t* grad_out, const scalar_t* x,
                          const int32_t* coords, const int32_t* lookup, const int32_t* counts,
                          const scalar_t* weight, scalar_t* grad_x, acc_t* grad_w) {
  const int K = sh.kernel_size, taps = K * K;
  const int64_t C = sh.channels, N = sh.points, total = sh.batch * N;
  const std::vector<acc_t> wt = transpose_kernel<scalar_t, acc_t>(weight, C, taps);
  std::vector<acc_t> scale(total);  // s of every point, so the neighbour loop never divides
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) scale[i] = window_scale<acc_t>(sh.normalize, K, counts[i]);
  std::vector<acc_t> gw_total(grad_w ? static_cast<size_t>(taps) * C : 0, acc_t(0));
#pragma omp parallel
  {
    std::vector<acc_t> gx(C), gq(C), coef(taps);
    std::vector<int32_t> nbr(taps), tap(taps), flipped(taps);
    std::vector<acc_t> gw(grad_w ? static_cast<size_t>(taps) * C : 0, acc_t(0));
#pragma omp for schedule(static)
    for (int64_t bq = 0; bq < total; ++bq) {
      const int64_t b = bq / N;
      const int32_t* grid = lookup + b * sh.height * sh.width;
      const int found = gather_window(grid, sh.height, sh.width, coords[2 * bq], coords[2 * bq + 1], K,
                                      nbr.data(), tap.data());
      if (grad_x) {
        for (int j = 0; j < found; ++j) {
          coef[j] = scale[b * N + nbr[j]];
          flipped[j] = taps - 1 - tap[j];  // tap(-dy, -dx)
        }
        window_sum<scalar_t, acc_t>(gx.data(), found, nbr.data(), flipped.data(), coef.data(),
                                    grad_out + b * N * C, wt.data(), C);
        for (int64_t c = 0; c < C; ++c) grad_x[bq * C + c] = static_cast<scalar_t>(gx[c]);
      }
      if (grad_w) {
        const scalar_t* g = grad_out + bq * C;
        for (int64_t c = 0; c < C; ++c) gq[c] = scale[bq] * static_cast<acc_t>(g[c]);
        for (int j = 0; j < found; ++j) {
          acc_t* gwp = gw.data() + static_cast<int64_t>(tap[j]) * C;
          const scalar_t* xu = x + (b * N + nbr[j]) * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) gwp[c] += gq[c] * static_cast<acc_t>(xu[c]);
        }
      }
    }
    if (grad_w) {
#pragma omp critical
      for (size_t i = 0; i < gw.size(); ++i) gw_total[i] += gw[i];
    }
  }
  if (grad_w)
    for (int64_t c = 0; c < C; ++c)
      for (int t = 0; t < taps; ++t) grad_w[c * taps + t] = gw_total[t * C + c];
}

}  // namespace cpu
}  // namespace infdiff
