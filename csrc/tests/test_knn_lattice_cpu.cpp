// The two ways csrc/cpu/knn_lattice.h builds a cell's hit mask (which of its class's first
// mask_length entries hold a point) must agree bit for bit: reading the point map entry by
// entry (lattice_gather_mask) and looking the occupancy bitmap's row runs up in the window
// tables (lattice_window_mask). Checked on every output cell of geometries whose tables take
// one and two runs of 8 columns, with one and with several cell classes, points drawn at
// random (a point near every border too, where the window reads the padding).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/knn.h"

namespace {

using namespace infdiff;
using namespace infdiff::cpu;

struct Geometry {
  int H, W, h, w, k;
  double fill;
  int groups;  // the runs of 8 columns the window must take here (0: no window expected)
};

// N distinct random pixels of an (H, W) lattice, as (row, col) pairs.
std::vector<int32_t> random_pixels(int H, int W, int64_t N, std::mt19937& rng) {
  std::vector<int> pixels(H * W);
  for (int i = 0; i < H * W; ++i) pixels[i] = i;
  std::shuffle(pixels.begin(), pixels.end(), rng);
  std::vector<int32_t> coords(2 * N);
  for (int64_t n = 0; n < N; ++n) coords[2 * n] = pixels[n] / W, coords[2 * n + 1] = pixels[n] % W;
  return coords;
}

void test_window_mask_equals_gather_mask(const Geometry& geo, std::mt19937& rng) {
  const int64_t N = static_cast<int64_t>(geo.fill * geo.H * geo.W);
  const KnnGeometry g = make_knn_geometry(geo.H, geo.W, geo.h, geo.w, N);
  const LatticePlan plan = make_lattice_plan(g, N, geo.k);
  const LatticeClasses classes = make_lattice_classes(g, plan, N, geo.k);
  CHECK(classes.usable);
  CHECK_EQ(classes.window.usable, geo.groups > 0);
  if (!classes.window.usable) return;
  CHECK_EQ(classes.window.groups, geo.groups);
  const std::vector<int32_t> coords = random_pixels(geo.H, geo.W, N, rng);
  std::vector<int32_t> map;
  std::vector<char> distinct;
  std::vector<uint8_t> bitmap;
  fill_lattice_map(plan, 1, N, coords.data(), map, distinct);
  fill_lattice_bitmap(g, plan, 1, N, coords.data(), bitmap);
  const LatticeWindow& win = classes.window;
  const int64_t row_bytes = lattice_bitmap_row_bytes(plan);
  int64_t cells_with_hits = 0;
  for (int i = 0; i < g.h; ++i) {
    for (int j = 0; j < g.w; ++j) {
      const int r0 = nearest_lattice_index(i, g.H, g.h), c0 = nearest_lattice_index(j, g.W, g.w);
      const int64_t cls = static_cast<int64_t>(i % classes.py) * classes.px + j % classes.px;
      const int32_t* centre = map.data() + (r0 + plan.Ra) * plan.stride + plan.Rb + c0;
      const uint64_t expected =
          lattice_gather_mask(classes.delta.data() + classes.start[cls], classes.mask_length, centre);
      const uint64_t got = lattice_window_mask(win.bits.data() + cls * win.rows * win.groups * 256, win.rows,
                                               win.groups, bitmap.data() + (r0 + plan.Ra + win.a0) * row_bytes,
                                               row_bytes, c0 + plan.Rb + win.b0);
      CHECK_EQ(got, expected);
      cells_with_hits += expected != 0;
    }
  }
  CHECK(cells_with_hits > 0);  // the masks compared were not all empty
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  const Geometry geometries[] = {
      {256, 256, 128, 128, 3, 1.0 / 4, 1},  // bench/knn.py's 1/4 case: one class, 32 entries
      {256, 256, 128, 128, 3, 1.0 / 8, 2},  // its 1/8 case: 64 entries span 9 or more columns
      {64, 64, 32, 32, 3, 1.0 / 4, 1},
      {64, 64, 64, 64, 3, 1.0 / 4, 1},      // cells on the pixel centres
      {96, 64, 48, 32, 5, 1.0 / 4, 1},      // non-square lattice (taller pixels), k = 5
      {30, 30, 20, 20, 3, 1.0 / 4, 1},      // 2 x 2 cell classes
      {28, 28, 16, 16, 3, 1.0 / 4, 0},      // the MNIST preset: 16 classes, tables too large
  };
  for (const Geometry& geo : geometries) test_window_mask_equals_gather_mask(geo, rng);
  return infdiff_test::finish("test_knn_lattice_cpu");
}
