// CPU construction of the sparse-conv neighbour map (see
// infdiff_kernels/sparse_conv/neighbor_map.py for the data structure), one batch element
// per thread: scatter the point indices, then count each window. Torch-free.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/sparse_conv_math.h"

namespace infdiff {
namespace cpu {

// What build_neighbor_map found wrong, as flat point indices b * N + n (-1: nothing).
struct NeighborMapStatus {
  int64_t out_of_range = -1;
  int64_t duplicate = -1;
};

// lookup (B, H, W) <- point index or -1; counts (B, N) <- window sizes for a K x K window,
// read off a summed-area table of the occupied pixels (4 loads a point, whatever K).
// Counts are left unset when a point lies off the grid or (with check_duplicates) repeats.
inline NeighborMapStatus build_neighbor_map(const int32_t* coords, int64_t batch, int64_t points, int height,
                                            int width, int kernel_size, bool check_duplicates, int32_t* lookup,
                                            int32_t* counts) {
  const int64_t plane = static_cast<int64_t>(height) * width, stride = width + 1;
  const int r = kernel_size / 2;
  int64_t first_bad = -1, first_dup = -1;
#pragma omp parallel reduction(max : first_bad, first_dup)
  {
    std::vector<int32_t> table(static_cast<size_t>(height + 1) * stride);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      int32_t* grid = lookup + b * plane;
      const int32_t* pts = coords + 2 * b * points;
      std::fill(grid, grid + plane, -1);
      int64_t bad = -1, dup = -1;
      for (int64_t n = 0; n < points; ++n) {
        const int row = pts[2 * n], col = pts[2 * n + 1];
        if (row < 0 || row >= height || col < 0 || col >= width) {
          bad = b * points + n;
          break;
        }
        int32_t& cell = grid[static_cast<int64_t>(row) * width + col];
        if (cell >= 0 && dup < 0) dup = b * points + n;
        cell = static_cast<int32_t>(n);
      }
      // reduction(max) of "-1 or a flat index": any error wins; which one is reported when
      // several batch elements have one does not matter.
      first_bad = std::max(first_bad, bad);
      if (check_duplicates) first_dup = std::max(first_dup, dup);
      if (bad >= 0 || (check_duplicates && dup >= 0)) continue;
      // table[i][j] = number of points in rows < i, cols < j.
      std::fill(table.begin(), table.begin() + stride, 0);
      for (int i = 0; i < height; ++i) {
        const int32_t* line = grid + static_cast<int64_t>(i) * width;
        int32_t* above = table.data() + static_cast<int64_t>(i) * stride;
        int32_t* here = above + stride;
        int32_t run = 0;
        here[0] = 0;
        for (int j = 0; j < width; ++j) {
          run += line[j] >= 0;
          here[j + 1] = above[j + 1] + run;
        }
      }
      for (int64_t n = 0; n < points; ++n) {
        const int row = pts[2 * n], col = pts[2 * n + 1];
        const int64_t r0 = std::max(row - r, 0), r1 = std::min(row + r + 1, height);
        const int64_t c0 = std::max(col - r, 0), c1 = std::min(col + r + 1, width);
        counts[b * points + n] = table[r1 * stride + c1] - table[r0 * stride + c1] - table[r1 * stride + c0] +
                                 table[r0 * stride + c0];
      }
    }
  }
  NeighborMapStatus status;
  status.out_of_range = first_bad;
  status.duplicate = first_dup;
  return status;
}

}  // namespace cpu
}  // namespace infdiff
