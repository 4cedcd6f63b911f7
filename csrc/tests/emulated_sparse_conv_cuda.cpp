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

// (C, K*K) <-> (K*K, C): the CUDA launchers take and give the kernel transposed.
template <typename T>
std::vector<T> transposed(const std::vector<T>& m, int64_t rows, int64_t cols) {
  std::vector<T> t(m.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = m[i * cols + j];
  return t;
}

// The CUDA kernels run on `dev_t` copies (from_float) of the inputs, the CPU kernels on
// `ref_t` copies (to_ref) of the same values, and the results are compared through
// to_double. dev_t = ref_t for float and double; __half / __nv_bfloat16 against float for
// the 16-bit paths. `x_offset` shifts every feature row pointer's base by that many
// elements, to take the unaligned (scalar) path.
template <typename dev_t, typename ref_t, typename acc_t, typename FromFloat, typename ToDouble>
void run_typed(int64_t B, int64_t N, int64_t C, int H, int W, int K, int normalize, std::mt19937& rng, double atol,
               double rtol, double w_tol, FromFloat from_float, ToDouble to_double, int x_offset = 0) {
  const Geometry geo = make_geometry(B, N, H, W, K, rng);
  const int64_t taps = K * K;
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  std::vector<dev_t> x_store(B * N * C + x_offset), g(B * N * C), w(C * taps), bias(C);
  dev_t* x = x_store.data() + x_offset;
  for (int64_t i = 0; i < B * N * C; ++i) x[i] = from_float(uni(rng));
  for (auto* v : {&g, &w, &bias})
    for (auto& e : *v) e = from_float(uni(rng));
  // The CPU reference sees exactly the values the device kernels see.
  auto to_ref = [&](const dev_t* v, size_t n) {
    std::vector<ref_t> r(n);
    for (size_t i = 0; i < n; ++i) r[i] = static_cast<ref_t>(to_double(v[i]));
    return r;
  };
  const std::vector<ref_t> rx = to_ref(x, B * N * C), rg = to_ref(g.data(), g.size()),
                           rw = to_ref(w.data(), w.size()), rbias = to_ref(bias.data(), bias.size());
  const std::vector<dev_t> wt = transposed(w, C, taps);
  const infdiff::SparseConvShape sh{B, N, C, H, W, K, normalize};

  std::vector<ref_t> out_cpu(B * N * C), gx_cpu(B * N * C), gw_cpu(w.size(), ref_t(0));
  infdiff::cpu::sparse_conv_forward<ref_t, ref_t>(sh, rx.data(), geo.coords.data(), geo.lookup.data(),
                                                  geo.counts.data(), rw.data(), rbias.data(), out_cpu.data());
  infdiff::cpu::sparse_conv_backward<ref_t, ref_t>(sh, rg.data(), rx.data(), geo.coords.data(), geo.lookup.data(),
                                                   geo.counts.data(), rw.data(), gx_cpu.data(), gw_cpu.data());

  std::vector<dev_t> out_gpu(B * N * C), gx_gpu(B * N * C), out_nb(B * N * C);
  std::vector<acc_t> gw_gpu(w.size(), acc_t(0)), gw_only(w.size(), acc_t(0));
  CHECK_EQ((infdiff::cuda::sparse_conv_forward<dev_t, acc_t>(sh, x, geo.coords.data(), geo.lookup.data(),
                                                            geo.counts.data(), wt.data(), bias.data(),
                                                            out_gpu.data(), nullptr)),
           cudaSuccess);
  CHECK_EQ((infdiff::cuda::sparse_conv_backward<dev_t, acc_t>(sh, g.data(), x, geo.coords.data(),
                                                             geo.lookup.data(), geo.counts.data(), wt.data(),
                                                             gx_gpu.data(), gw_gpu.data(), nullptr, nullptr)),
           cudaSuccess);
  const std::vector<acc_t> gw_back = transposed(gw_gpu, taps, C);
  for (int64_t i = 0; i < B * N * C; ++i) CHECK_NEAR(to_double(out_gpu[i]), out_cpu[i], atol, rtol);
  for (int64_t i = 0; i < B * N * C; ++i) CHECK_NEAR(to_double(gx_gpu[i]), gx_cpu[i], atol, rtol);
  for (size_t i = 0; i < w.size(); ++i) CHECK_NEAR(gw_back[i], gw_cpu[i], w_tol, w_tol);

  // Only one gradient asked for, deterministic mode: a fixed-order sum, bit-identical on
  // a second run.
  const int64_t scratch_size = infdiff::cuda::sparse_conv_grad_w_scratch<dev_t, acc_t>(sh);
  CHECK(B * N * C == 0 || scratch_size > 0);
  std::vector<acc_t> scratch(scratch_size), gw_again(w.size(), acc_t(0));
  for (auto* out : {&gw_only, &gw_again})
    CHECK_EQ((infdiff::cuda::sparse_conv_backward<dev_t, acc_t>(sh, g.data(), x, geo.coords.data(),
                                                               geo.lookup.data(), geo.counts.data(), wt.data(),
                                                               nullptr, out->data(), scratch.data(), nullptr)),
             cudaSuccess);
  const std::vector<acc_t> gw_only_back = transposed(gw_only, taps, C);
  for (size_t i = 0; i < w.size(); ++i) CHECK_NEAR(gw_only_back[i], gw_cpu[i], w_tol, w_tol);
  for (size_t i = 0; i < w.size(); ++i) CHECK_EQ(gw_again[i], gw_only[i]);

  // No bias.
  CHECK_EQ((infdiff::cuda::sparse_conv_forward<dev_t, acc_t>(sh, x, geo.coords.data(), geo.lookup.data(),
                                                            geo.counts.data(), wt.data(), nullptr, out_nb.data(),
                                                            nullptr)),
           cudaSuccess);
  for (int64_t i = 0; i < B * N * C; ++i)
    CHECK_NEAR(to_double(out_nb[i]), static_cast<double>(out_cpu[i]) - static_cast<double>(rbias[i % C]), atol, rtol);
}

template <typename T>
void run(int64_t B, int64_t N, int64_t C, int H, int W, int K, int normalize, std::mt19937& rng, double tol,
         int x_offset = 0) {
  run_typed<T, T, T>(B, N, C, H, W, K, normalize, rng, tol, tol, tol, [](double v) { return static_cast<T>(v); },
                     [](T v) { return static_cast<double>(v); }, x_offset);
}

// 16-bit features (rounded on every load and store by the emulation, cuda_runtime.h's
// rounding_16bit.h) against the float CPU kernel on the same rounded inputs. Both accumulate
// in float, so they differ by the rounding of the 16-bit output (half an ulp, relative
// 2^-11 for half and 2^-8 for bf16: rtol is one ulp, for a float sum that lands next to a
// rounding boundary), plus float summation-order noise, absolute since outputs can cancel
// to near zero (atol). grad_w stays in float: only the summation order differs.
template <typename H16>
void run_16bit(int64_t B, int64_t N, int64_t C, int H, int W, int K, int normalize, std::mt19937& rng, double ulp,
               H16 (*from_float)(float), float (*to_float)(H16), int x_offset = 0) {
  run_typed<H16, float, float>(
      B, N, C, H, W, K, normalize, rng, 1e-5, ulp, 1e-5, [&](double v) { return from_float(static_cast<float>(v)); },
      [&](H16 v) { return static_cast<double>(to_float(v)); }, x_offset);
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
  // Vector loads (C a multiple of the vector width, rows 16-byte aligned) and the scalar
  // path: C not a multiple, or the features one element off a 16-byte boundary.
  run<float>(2, 25, 8, 7, 8, 3, infdiff::kPartial, rng, 1e-5);
  run<float>(2, 25, 8, 7, 8, 5, infdiff::kNone, rng, 1e-5, 1);
  run<float>(1, 25, 6, 7, 8, 7, infdiff::kMean, rng, 1e-5);
  run<double>(2, 25, 4, 7, 8, 3, infdiff::kPartial, rng, 1e-12);
  run<double>(1, 25, 4, 7, 8, 3, infdiff::kPartial, rng, 1e-12, 1);
  // A window larger than one neighbour list (K = 13: 169 taps) is gathered in row chunks.
  run<double>(1, 30, 2, 12, 13, 13, infdiff::kPartial, rng, 1e-12);
  // Half and bfloat16 rounded as on a GPU: vector (C = 16) and scalar (C = 5) paths.
  for (int K : {3, 7}) {
    run_16bit<__half>(2, 30, 16, 7, 9, K, infdiff::kPartial, rng, 1.0 / 1024, __float2half_rn, __half2float);
    run_16bit<__nv_bfloat16>(2, 30, 16, 7, 9, K, infdiff::kMean, rng, 1.0 / 128, __float2bfloat16_rn,
                             __bfloat162float);
  }
  run_16bit<__half>(1, 20, 5, 6, 7, 5, infdiff::kNone, rng, 1.0 / 1024, __float2half_rn, __half2float);
  run_16bit<__nv_bfloat16>(1, 20, 8, 6, 7, 3, infdiff::kPartial, rng, 1.0 / 128, __float2bfloat16_rn,
                           __bfloat162float, 1);
  return infdiff_test::finish("emulated_sparse_conv_cuda");
}
