// CPU kernels of the sparse depthwise convolution (SPEC section 1). Torch-free: raw
// pointers and sizes, instantiated for each dtype by the bindings. OpenMP runs over
// points; the channel loops are contiguous (channels-last features, kernel transposed to
// (K*K, C)) so the compiler vectorises them.
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

// out[b, n, :] = s[b, n] * sum_{p in window(n)} w[:, tap(p - n)] * x[b, p, :] + bias
template <typename scalar_t, typename acc_t>
void sparse_conv_forward(const SparseConvShape& sh, const scalar_t* x, const int32_t* coords,
                         const int32_t* lookup, const int32_t* counts, const scalar_t* weight,
                         const scalar_t* bias, scalar_t* out) {
  const int K = sh.kernel_size, r = K / 2, taps = K * K;
  const int64_t C = sh.channels, N = sh.points;
  const std::vector<acc_t> wt = transpose_kernel<scalar_t, acc_t>(weight, C, taps);
#pragma omp parallel
  {
    std::vector<acc_t> acc(C);
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < sh.batch * N; ++bn) {
      const int64_t b = bn / N;
      const int row = coords[2 * bn], col = coords[2 * bn + 1];
      const int32_t* grid = lookup + b * sh.height * sh.width;
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int dy = -r; dy <= r; ++dy) {
        for (int dx = -r; dx <= r; ++dx) {
          const int32_t p = lookup_point(grid, sh.height, sh.width, row + dy, col + dx);
          if (p < 0) continue;
          const scalar_t* xp = x + (b * N + p) * C;
          const acc_t* wp = wt.data() + tap_index(dy, dx, r, K) * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) acc[c] += wp[c] * static_cast<acc_t>(xp[c]);
        }
      }
      const acc_t s = window_scale<acc_t>(sh.normalize, K, counts[bn]);
      scalar_t* o = out + bn * C;
      for (int64_t c = 0; c < C; ++c)
        o[c] = static_cast<scalar_t>(s * acc[c] + (bias ? static_cast<acc_t>(bias[c]) : acc_t(0)));
    }
  }
}

// One pass over every (point q, neighbour u) pair gives both gradients, because the window
// relation is symmetric:
//   grad_x[q] = sum_{u in window(q)} s[u] * w[:, tap(q - u)] * g[u]
//   grad_w[:, tap(u - q)] += s[q] * g[q] * x[u]
// grad_w (C, K*K) is accumulated per thread in acc_t and reduced at the end; either output
// may be null.
template <typename scalar_t, typename acc_t>
void sparse_conv_backward(const SparseConvShape& sh, const scalar_t* grad_out, const scalar_t* x,
                          const int32_t* coords, const int32_t* lookup, const int32_t* counts,
                          const scalar_t* weight, scalar_t* grad_x, acc_t* grad_w) {
  const int K = sh.kernel_size, r = K / 2, taps = K * K;
  const int64_t C = sh.channels, N = sh.points;
  const std::vector<acc_t> wt = transpose_kernel<scalar_t, acc_t>(weight, C, taps);
  std::vector<acc_t> gw_total(grad_w ? static_cast<size_t>(taps) * C : 0, acc_t(0));
#pragma omp parallel
  {
    std::vector<acc_t> gx(C), gq(C);
    std::vector<acc_t> gw(grad_w ? static_cast<size_t>(taps) * C : 0, acc_t(0));
#pragma omp for schedule(static)
    for (int64_t bq = 0; bq < sh.batch * N; ++bq) {
      const int64_t b = bq / N;
      const int row = coords[2 * bq], col = coords[2 * bq + 1];
      const int32_t* grid = lookup + b * sh.height * sh.width;
      const acc_t sq = window_scale<acc_t>(sh.normalize, K, counts[bq]);
      const scalar_t* g = grad_out + bq * C;
      for (int64_t c = 0; c < C; ++c) gq[c] = sq * static_cast<acc_t>(g[c]);
      std::fill(gx.begin(), gx.end(), acc_t(0));
      for (int dy = -r; dy <= r; ++dy) {
        for (int dx = -r; dx <= r; ++dx) {
          const int32_t u = lookup_point(grid, sh.height, sh.width, row + dy, col + dx);
          if (u < 0) continue;
          const int64_t bu = b * N + u;
          if (grad_x) {
            const acc_t su = window_scale<acc_t>(sh.normalize, K, counts[bu]);
            const acc_t* wp = wt.data() + tap_index(-dy, -dx, r, K) * C;
            const scalar_t* gu = grad_out + bu * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) gx[c] += su * wp[c] * static_cast<acc_t>(gu[c]);
          }
          if (grad_w) {
            acc_t* gwp = gw.data() + tap_index(dy, dx, r, K) * C;
            const scalar_t* xu = x + bu * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) gwp[c] += gq[c] * static_cast<acc_t>(xu[c]);
          }
        }
      }
      if (grad_x)
        for (int64_t c = 0; c < C; ++c) grad_x[bq * C + c] = static_cast<scalar_t>(gx[c]);
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
