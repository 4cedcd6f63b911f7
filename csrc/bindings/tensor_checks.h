// Internal invariants of the tensors handed to a kernel. The user-facing checks (docs/ops.md,
// errors) happen once in Python before this point; these only guard the raw-pointer
// contract against a caller that bypassed them.
#pragma once

#include <torch/extension.h>

#define INFDIFF_CHECK_INPUT(t, dtype_)                                              \
  TORCH_CHECK((t).is_contiguous(), #t " must be contiguous");                      \
  TORCH_CHECK((t).scalar_type() == (dtype_), #t " has dtype ", (t).scalar_type(), \
              ", expected ", (dtype_))

#define INFDIFF_CHECK_SAME_DEVICE(a, b) \
  TORCH_CHECK((a).device() == (b).device(), #a " and " #b " must be on the same device")

// Sizes the kernels index with int32 arithmetic (point indices and coordinates are int32,
// grid sides and tap counts are ints), checked before any size is cast or any pointer read,
// so a caller that bypassed the Python checks gets an error, never a wrapped index. A grid
// side may be at most 2^30: row + K / 2 and padded maps past the last row stay in range.
namespace infdiff {
constexpr int64_t kMaxIndex = 2147483647;  // 2^31 - 1
constexpr int64_t kMaxSide = int64_t(1) << 30;
}  // namespace infdiff

#define INFDIFF_CHECK_INDEX(value, what)                                                              \
  TORCH_CHECK((value) >= 0 && (value) <= ::infdiff::kMaxIndex, what, " = ", (value),                 \
              " is outside [0, 2^31 - 1], the int32 index range of the kernels")

#define INFDIFF_CHECK_SIDE(value, what)                                                               \
  TORCH_CHECK((value) >= 1 && (value) <= ::infdiff::kMaxSide, what, " must be in [1, 2^30], got ", (value))

// Index tensors (neighbour maps, k-NN lists) whose values the kernels index with: on the CPU
// they are checked to lie in [lo, hi) before the kernel runs, so a tensor that did not come
// from the builders raises instead of reading out of bounds. CUDA tensors are not read here
// (it would synchronise the stream on every call); their values are the builders' promise.
#define INFDIFF_CHECK_VALUES(t, lo, hi, what)                                                          \
  do {                                                                                                \
    if ((t).device().is_cpu() && (t).numel() > 0) {                                                   \
      const int64_t lo_ = (t).min().item<int64_t>(), hi_ = (t).max().item<int64_t>();                 \
      TORCH_CHECK(lo_ >= (lo) && hi_ < (hi), what, " values must be in [", (lo), ", ", (hi), "), got [", \
                  lo_, ", ", hi_, "]");                                                               \
    }                                                                                                 \
  } while (0)
