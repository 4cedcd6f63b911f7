// CUDA kernels of the spectral filters (contract: docs/ops.md): the in-place spectral multiply
// (transfer function evaluated per coefficient) and the Makhoul reordering passes that
// turn the "reflect" DCT-II into an rfft2 of the original size (see spectral_math.h).
#include "kernel_helpers.cuh"
#include "spectral.cuh"

namespace infdiff {
namespace cuda {
namespace {

// The butterfly gain of the DCT coefficient (ky, kx).
template <typename T>
__device__ __forceinline__ T dct_gain(int mode, T rate, T nsr, int ky, int kx) {
  return spectral::butterfly_gain(mode, spectral::gaussian(rate, T(ky) * T(ky) + T(kx) * T(kx)), nsr);
}

// One thread per coefficient (row, k2) of the rfft2 spectrum.
template <typename T>
__global__ void periodic_kernel(T* __restrict__ spec, int64_t rows, int H, int wc, int mode, T rate, T nsr, T alpha,
                                T tau, T scale) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= rows * wc) return;
  const int k2 = static_cast<int>(idx % wc);
  const int ky = spectral::fold_frequency(static_cast<int>((idx / wc) % H), H);
  const T k_sq = T(ky) * T(ky) + T(k2) * T(k2);
  T f;
  if (mode == spectral::kGrf)
    f = scale * spectral::grf_sqrt_eigenvalue(k_sq, alpha, tau);
  else
    f = spectral::gain(mode, spectral::gaussian(rate, k_sq), nsr);
  spec[2 * idx] *= f;
  spec[2 * idx + 1] *= f;
}

// One thread per (batch, row pair k1 | H - k1, k2).
template <typename T>
__global__ void reflect_kernel(T* __restrict__ spec, int64_t batch, int H, int W, int wc, int mode, T rate, T nsr) {
  const int pairs = H / 2 + 1;
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= batch * pairs * wc) return;
  const int k2 = static_cast<int>(idx % wc);
  const int64_t bp = idx / wc;
  const int k1 = static_cast<int>(bp % pairs), k1m = (H - k1) % H;
  const int64_t b = bp / pairs;
  T* p1 = spec + 2 * ((b * H + k1) * wc + k2);
  T* p2 = spec + 2 * ((b * H + k1m) * wc + k2);
  T s1, c1, s2, c2;
  sincospi(T(k1) / T(2 * H), &s1, &c1);
  sincospi(T(k2) / T(2 * W), &s2, &c2);
  T v1r = p1[0], v1i = p1[1], v2r = p2[0], v2i = p2[1];
  spectral::reflect_butterfly(v1r, v1i, v2r, v2i, c1, s1, c2, s2, dct_gain(mode, rate, nsr, k1, k2),
                              dct_gain(mode, rate, nsr, H - k1, k2), dct_gain(mode, rate, nsr, k1, W - k2),
                              dct_gain(mode, rate, nsr, H - k1, W - k2));
  p1[0] = v1r;
  p1[1] = v1i;
  if (k1m != k1) {
    p2[0] = v2r;
    p2[1] = v2i;
  }
}

template <typename T>
__global__ void prepare_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ a,
                               const T* __restrict__ s, int64_t per_a, int64_t total, int H, int W, bool reorder,
                               T* __restrict__ out) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= total) return;
  const int j = static_cast<int>(idx % W);
  const int i = static_cast<int>((idx / W) % H);
  const int64_t b = idx / (int64_t(H) * W);
  const int64_t src = reorder ? (b * H + spectral::makhoul_source(i, H)) * W + spectral::makhoul_source(j, W) : idx;
  T v = x[src];
  if (y != nullptr) v = a[b / per_a] * v + s[b / per_a] * y[src];
  out[idx] = v;
}

template <typename T>
__global__ void unreorder_kernel(const T* __restrict__ w, int64_t total, int H, int W, T* __restrict__ out) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= total) return;
  const int j = static_cast<int>(idx % W);
  const int i = static_cast<int>((idx / W) % H);
  const int64_t b = idx / (int64_t(H) * W);
  out[(b * H + spectral::makhoul_source(i, H)) * W + spectral::makhoul_source(j, W)] = w[idx];
}

}  // namespace

template <typename T>
cudaError_t spectral_multiply(const SpectralShape& sh, const SpectralParams& p, T* spec, cudaStream_t stream) {
  const int wc = sh.width / 2 + 1;
  if (sh.batch == 0) return cudaSuccess;
  if (p.boundary == spectral::kReflect && p.mode != spectral::kGrf) {
    const int64_t n = sh.batch * (sh.height / 2 + 1) * wc;
    reflect_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
        spec, sh.batch, sh.height, sh.width, wc, p.mode, T(spectral::gaussian_rate(p.sigma, spectral::kReflect)),
        T(p.nsr));
  } else {
    const int64_t rows = sh.batch * sh.height;
    periodic_kernel<T><<<blocks_for(rows * wc), kThreads, 0, stream>>>(
        spec, rows, sh.height, wc, p.mode, T(spectral::gaussian_rate(p.sigma, spectral::kPeriodic)), T(p.nsr),
        T(p.alpha), T(p.tau), T(p.scale));
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t spectral_prepare(const SpectralShape& sh, const T* x, const T* y, const T* a, const T* s, int64_t per_a,
                             bool reorder, T* out, cudaStream_t stream) {
  const int64_t total = sh.batch * sh.height * sh.width;
  if (total == 0) return cudaSuccess;
  prepare_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(x, y, a, s, per_a, total, sh.height, sh.width,
                                                                 reorder, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t spectral_unreorder(const SpectralShape& sh, const T* w, T* out, cudaStream_t stream) {
  const int64_t total = sh.batch * sh.height * sh.width;
  if (total == 0) return cudaSuccess;
  unreorder_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(w, total, sh.height, sh.width, out);
  return cudaGetLastError();
}

#define INFDIFF_SPECTRAL_INSTANTIATE(T)                                                                        \
  template cudaError_t spectral_multiply<T>(const SpectralShape&, const SpectralParams&, T*, cudaStream_t);   \
  template cudaError_t spectral_prepare<T>(const SpectralShape&, const T*, const T*, const T*, const T*,      \
                                           int64_t, bool, T*, cudaStream_t);                                   \
  template cudaError_t spectral_unreorder<T>(const SpectralShape&, const T*, T*, cudaStream_t);

INFDIFF_SPECTRAL_INSTANTIATE(float)
INFDIFF_SPECTRAL_INSTANTIATE(double)

}  // namespace cuda
}  // namespace infdiff
