// Unit tests of the per-element math shared by the CPU and CUDA sparse convolution
// (csrc/common/sparse_conv_math.h).
#include <cstdint>
#include <vector>

#include "check.h"
#include "common/sparse_conv_math.h"

using infdiff::kMean;
using infdiff::kNone;
using infdiff::kPartial;
using infdiff::lookup_point;
using infdiff::tap_index;
using infdiff::window_scale;

static void test_window_scale() {
  // partial: K^2 / m, so a full window has scale 1.
  CHECK_EQ(window_scale<double>(kPartial, 3, 9), 1.0);
  CHECK_EQ(window_scale<double>(kPartial, 3, 1), 9.0);
  CHECK_EQ(window_scale<double>(kPartial, 5, 4), 25.0 / 4.0);
  CHECK_EQ(window_scale<float>(kPartial, 7, 3), 49.0f / 3.0f);
  // mean: 1 / m.
  CHECK_EQ(window_scale<double>(kMean, 3, 1), 1.0);
  CHECK_EQ(window_scale<double>(kMean, 3, 4), 0.25);
  CHECK_EQ(window_scale<float>(kMean, 5, 3), 1.0f / 3.0f);
  // none: 1 whatever the count.
  CHECK_EQ(window_scale<double>(kNone, 3, 1), 1.0);
  CHECK_EQ(window_scale<double>(kNone, 7, 17), 1.0);
  CHECK_EQ(window_scale<float>(kNone, 15, 225), 1.0f);
}

static void test_tap_index() {
  // Row-major (K, K) with the centre at (r, r).
  CHECK_EQ(tap_index(0, 0, 1, 3), 4);
  CHECK_EQ(tap_index(-1, -1, 1, 3), 0);
  CHECK_EQ(tap_index(1, 1, 1, 3), 8);
  CHECK_EQ(tap_index(-1, 1, 1, 3), 2);
  CHECK_EQ(tap_index(1, -1, 1, 3), 6);
  CHECK_EQ(tap_index(0, 0, 7, 15), 112);
  CHECK_EQ(tap_index(-7, 7, 7, 15), 14);
  // Every tap of a K = 5 kernel gets a distinct index in [0, 25).
  std::vector<int> seen(25, 0);
  for (int dy = -2; dy <= 2; ++dy)
    for (int dx = -2; dx <= 2; ++dx) ++seen[tap_index(dy, dx, 2, 5)];
  for (int v : seen) CHECK_EQ(v, 1);
}

static void test_lookup_point() {
  // 3 x 4 grid; points at (0, 0) -> 0, (1, 3) -> 1, (2, 1) -> 2.
  const int H = 3, W = 4;
  std::vector<int32_t> grid(H * W, -1);
  grid[0 * W + 0] = 0;
  grid[1 * W + 3] = 1;
  grid[2 * W + 1] = 2;
  CHECK_EQ(lookup_point(grid.data(), H, W, 0, 0), 0);
  CHECK_EQ(lookup_point(grid.data(), H, W, 1, 3), 1);
  CHECK_EQ(lookup_point(grid.data(), H, W, 2, 1), 2);
  CHECK_EQ(lookup_point(grid.data(), H, W, 1, 1), -1);  // on the grid, no point
  // Off the grid on each side, including just past the last row / column.
  CHECK_EQ(lookup_point(grid.data(), H, W, -1, 0), -1);
  CHECK_EQ(lookup_point(grid.data(), H, W, 0, -1), -1);
  CHECK_EQ(lookup_point(grid.data(), H, W, H, 0), -1);
  CHECK_EQ(lookup_point(grid.data(), H, W, 1, W), -1);
  CHECK_EQ(lookup_point(grid.data(), H, W, -5, 100), -1);
  // Corners that do exist.
  grid[(H - 1) * W + (W - 1)] = 7;
  CHECK_EQ(lookup_point(grid.data(), H, W, H - 1, W - 1), 7);
}

int main() {
  test_window_scale();
  test_tap_index();
  test_lookup_point();
  return infdiff_test::finish("test_sparse_conv_math");
}
