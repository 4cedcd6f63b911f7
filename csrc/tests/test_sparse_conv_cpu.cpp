// The OpenMP CPU kernels of the sparse depthwise convolution (csrc/cpu/sparse_conv.h),
// i.e. the math shared with the CUDA kernels, against a naive all-pairs loop written
// straight from the contract in docs/ops.md (windows found by comparing coordinates, not through the
// lookup grid).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/sparse_conv.h"

namespace {

struct Case {
  int64_t B, N, C;
  int H, W, K, normalize;
  std::vector<int32_t> coords, lookup, counts;
};

// B samples of N distinct random pixels of an (H, W) grid.
Case make_case(int64_t B, int64_t N, int64_t C, int H, int W, int K, int normalize,
               std::mt19937& rng) {
  Case cs{B, N, C, H, W, K, normalize, {}, {}, {}};
  cs.coords.resize(B * N * 2);
  cs.lookup.assign(B * H * W, -1);
  cs.counts.resize(B * N);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int> pixels(H * W);
    for (int i = 0; i < H * W; ++i) pixels[i] = i;
    std::shuffle(pixels.begin(), pixels.end(), rng);
    for (int64_t n = 0; n < N; ++n) {
      const int pix = pixels[n];
      cs.coords[(b * N + n) * 2] = pix / W;
      cs.coords[(b * N + n) * 2 + 1] = pix % W;
      cs.lookup[b * H * W + pix] = static_cast<int32_t>(n);
    }
  }
  const int r = K / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) {
      int m = 0;
      for (int64_t p = 0; p < N; ++p)
        m += std::abs(cs.coords[(b * N + p) * 2] - cs.coords[(b * N + n) * 2]) <= r &&
             std::abs(cs.coords[(b * N + p) * 2 + 1] - cs.coords[(b * N + n) * 2 + 1]) <= r;
      cs.counts[b * N + n] = m;
    }
  return cs;
}

double scale_of(const Case& cs, int32_t m) {
  if (cs.normalize == infdiff::kPartial) return double(cs.K * cs.K) / m;
  if (cs.normalize == infdiff::kMean) return 1.0 / m;
  return 1.0;
}

// Calls f(b, n, p, tap) for every point n and every p in window(n).
template <typename F>
void for_each_pair(const Case& cs, F f) {
  const int r = cs.K / 2;
  for (int64_t b = 0; b < cs.B; ++b)
    for (int64_t n = 0; n < cs.N; ++n)
      for (int64_t p = 0; p < cs.N; ++p) {
        const int dy = cs.coords[(b * cs.N + p) * 2] - cs.coords[(b * cs.N + n) * 2];
        const int dx = cs.coords[(b * cs.N + p) * 2 + 1] - cs.coords[(b * cs.N + n) * 2 + 1];
        if (std::abs(dy) <= r && std::abs(dx) <= r) f(b, n, p, (dy + r) * cs.K + (dx + r));
      }
}

template <typename T>
void run(const Case& cs, std::mt19937& rng, double atol, double rtol) {
  const int64_t C = cs.C, N = cs.N, taps = cs.K * cs.K;
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  std::vector<T> x(cs.B * N * C), g(cs.B * N * C), w(C * taps), bias(C);
  for (auto* v : {&x, &g, &w, &bias})
    for (auto& e : *v) e = static_cast<T>(uni(rng));

  std::vector<double> out_ref(cs.B * N * C, 0.0), gx_ref(cs.B * N * C, 0.0), gw_ref(C * taps, 0.0);
  for_each_pair(cs, [&](int64_t b, int64_t n, int64_t p, int tap) {
    const double sn = scale_of(cs, cs.counts[b * N + n]);
    for (int64_t c = 0; c < C; ++c) {
      out_ref[(b * N + n) * C + c] += sn * double(w[c * taps + tap]) * double(x[(b * N + p) * C + c]);
      gx_ref[(b * N + p) * C + c] += sn * double(w[c * taps + tap]) * double(g[(b * N + n) * C + c]);
      gw_ref[c * taps + tap] += sn * double(g[(b * N + n) * C + c]) * double(x[(b * N + p) * C + c]);
    }
  });
  for (int64_t i = 0; i < cs.B * N * C; ++i) out_ref[i] += double(bias[i % C]);

  const infdiff::SparseConvShape sh{cs.B, N, C, cs.H, cs.W, cs.K, cs.normalize};
  std::vector<T> out(cs.B * N * C), gx(cs.B * N * C);
  std::vector<T> gw(C * taps, T(0));
  infdiff::cpu::sparse_conv_forward<T, T>(sh, x.data(), cs.coords.data(), cs.lookup.data(),
                                          cs.counts.data(), w.data(), bias.data(), out.data());
  infdiff::cpu::sparse_conv_backward<T, T>(sh, g.data(), x.data(), cs.coords.data(),
                                           cs.lookup.data(), cs.counts.data(), w.data(),
                                           gx.data(), gw.data());
  for (size_t i = 0; i < out.size(); ++i) CHECK_NEAR(out[i], out_ref[i], atol, rtol);
  for (size_t i = 0; i < gx.size(); ++i) CHECK_NEAR(gx[i], gx_ref[i], atol, rtol);
  for (size_t i = 0; i < gw.size(); ++i) CHECK_NEAR(gw[i], gw_ref[i], atol, rtol);

  // Without bias, and with only one of the two gradients asked for.
  std::vector<T> out_nb(out.size()), gx_only(gx.size()), gw_only(gw.size(), T(0));
  infdiff::cpu::sparse_conv_forward<T, T>(sh, x.data(), cs.coords.data(), cs.lookup.data(),
                                          cs.counts.data(), w.data(), nullptr, out_nb.data());
  for (size_t i = 0; i < out.size(); ++i)
    CHECK_NEAR(out_nb[i], out_ref[i] - double(bias[i % C]), atol, rtol);
  infdiff::cpu::sparse_conv_backward<T, T>(sh, g.data(), x.data(), cs.coords.data(),
                                           cs.lookup.data(), cs.counts.data(), w.data(),
                                           gx_only.data(), nullptr);
  infdiff::cpu::sparse_conv_backward<T, T>(sh, g.data(), x.data(), cs.coords.data(),
                                           cs.lookup.data(), cs.counts.data(), w.data(), nullptr,
                                           gw_only.data());
  for (size_t i = 0; i < gx.size(); ++i) CHECK_EQ(gx_only[i], gx[i]);
  for (size_t i = 0; i < gw.size(); ++i) CHECK_NEAR(gw_only[i], gw[i], atol, rtol);
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  for (int normalize : {infdiff::kPartial, infdiff::kMean, infdiff::kNone}) {
    for (int K : {1, 3, 5}) {
      // Sparse (1/3 of the pixels), dense (every pixel) and a single point per sample.
      for (int64_t N : {14, 42, 1}) {
        const Case cs = make_case(2, N, 5, 6, 7, K, normalize, rng);
        run<double>(cs, rng, 1e-12, 1e-12);
        run<float>(cs, rng, 1e-4, 1e-4);
      }
    }
  }
  return infdiff_test::finish("test_sparse_conv_cpu");
}
