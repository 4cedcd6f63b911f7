// Per-element math of the sparse depthwise convolution (contract: docs/ops.md), shared by the
// CPU kernels, the CUDA kernels and the C++ unit tests.
#pragma once

#include <cstdint>

#include "macros.h"

namespace infdiff {

// Sizes of one call: B batch elements of N points with C channels on an (H, W) grid,
// a (K, K) kernel and the Normalize code.
struct SparseConvShape {
  int64_t batch, points, channels;
  int height, width, kernel_size;
  int normalize;
};

// Same encoding as infdiff_kernels.sparse_conv.NORMALIZE_CODES.
enum Normalize : int { kPartial = 0, kMean = 1, kNone = 2 };

// The window scale s[b, n] (contract: docs/ops.md) for a window of `count` >= 1 points.
template <typename acc_t>
INFDIFF_HD acc_t window_scale(int normalize, int kernel_size, int32_t count) {
  if (normalize == kPartial) return acc_t(kernel_size * kernel_size) / acc_t(count);
  if (normalize == kMean) return acc_t(1) / acc_t(count);
  return acc_t(1);
}

// Index into a (K, K) kernel of the tap at offset (dy, dx) from the window centre.
INFDIFF_HD int tap_index(int dy, int dx, int radius, int kernel_size) {
  return (dy + radius) * kernel_size + (dx + radius);
}

// Point index stored in the (H, W) lookup grid of one batch element at (row, col), or -1
// when (row, col) is off the grid or holds no point.
INFDIFF_HD int32_t lookup_point(const int32_t* lookup, int height, int width, int row, int col) {
  if (row < 0 || row >= height || col < 0 || col >= width) return -1;
  return lookup[static_cast<int64_t>(row) * width + col];
}

}  // namespace infdiff
