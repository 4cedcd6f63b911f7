// Unit test of csrc/common/knn_math.h and knn_tiles.h: lattice distance D against its
// definition, the ring lower bound against every pixel beyond the ring, (D, index) insertion
// order, the ring walk over the tile buckets against a brute-force sort, and the bilinear
// taps of grid_sample(border, align_corners=False). Returns non-zero on failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>
#include <vector>

#include "check.h"
#include "common/knn_math.h"
#include "common/knn_tiles.h"
#include "cpu/knn.h"

using namespace infdiff;

// D is proportional to the squared domain distance, with the factor of d2_scale.
static void test_distance_matches_domain_distance() {
  const int sizes[][4] = {{8, 8, 4, 4}, {7, 5, 3, 11}, {256, 256, 128, 128}, {6, 10, 7, 3}};
  for (auto& s : sizes) {
    const KnnGeometry g = make_knn_geometry(s[0], s[1], s[2], s[3], 10);
    for (int r = 0; r < s[0]; r += 3)
      for (int c = 0; c < s[1]; c += 2)
        for (int i = 0; i < s[2]; i += 2)
          for (int j = 0; j < s[3]; j += 3) {
            const double dy = (r + 0.5) / s[0] - (i + 0.5) / s[2], dx = (c + 0.5) / s[1] - (j + 0.5) / s[3];
            const double d2 = dy * dy + dx * dx;
            const double got = static_cast<double>(lattice_distance(g, r, c, i, j)) * g.d2_scale;
            CHECK_NEAR(got, d2, 1e-12, 1e-12);
          }
  }
}

// Every pixel in tile rings >= R has D >= ring_lower_bound, and when the bound is kNoBound
// no pixel lies there.
static void test_ring_bound_is_a_lower_bound() {
  const int sizes[][4] = {{9, 13, 4, 5}, {16, 16, 16, 16}, {5, 7, 11, 3}};
  for (auto& s : sizes) {
    for (int64_t n : {1, 5, 30}) {
      const KnnGeometry g = make_knn_geometry(s[0], s[1], s[2], s[3], n);
      for (int i = 0; i < g.h; ++i)
        for (int j = 0; j < g.w; ++j) {
          const int tr = nearest_lattice_index(i, g.H, g.h) / g.tile, tc = nearest_lattice_index(j, g.W, g.w) / g.tile;
          for (int R = 1; R <= g.tiles_h + g.tiles_w; ++R) {
            const int64_t bound = ring_lower_bound(g, i, j, tr, tc, R);
            bool any = false;
            for (int r = 0; r < g.H; ++r)
              for (int c = 0; c < g.W; ++c) {
                const int ring = std::max(std::abs(r / g.tile - tr), std::abs(c / g.tile - tc));
                if (ring < R) continue;
                any = true;
                CHECK(lattice_distance(g, r, c, i, j) >= bound);
              }
            CHECK(any == (bound != kNoBound));
          }
        }
    }
  }
}

static void test_offer_keeps_k_first_in_order() {
  int64_t dist[3];
  int32_t index[3];
  int count = 0;
  const int64_t ds[] = {5, 3, 5, 1, 3, 5, 0};
  const int32_t ps[] = {4, 6, 2, 9, 1, 0, 7};
  for (int t = 0; t < 7; ++t) count = knn_offer(dist, index, count, 3, ds[t], ps[t]);
  CHECK_EQ(count, 3);
  CHECK(dist[0] == 0 && index[0] == 7);
  CHECK(dist[1] == 1 && index[1] == 9);
  CHECK(dist[2] == 3 && index[2] == 1);  // tie at D = 3: index 1 before 6
}

// The k nearest points of every cell by the ring walk over the CPU buckets equal the k first
// of all points sorted by (D, index): points spread over the lattice (drawn with
// replacement, so some pixels repeat), or packed in one corner so most cells are far from
// every point and walk empty rings up to the border.
static void test_ring_search_matches_brute_force() {
  std::mt19937 rng(5);
  const int cases[][6] = {{1, 1, 1, 1, 1, 1}, {5, 7, 3, 4, 1, 1}, {9, 13, 6, 5, 20, 4},
                          {16, 16, 16, 16, 12, 12}, {7, 6, 11, 9, 30, 7}, {32, 24, 10, 13, 200, 5}};
  for (const auto& cs : cases)
    for (bool corner : {false, true}) {
      const int H = cs[0], W = cs[1], h = cs[2], w = cs[3], N = cs[4], k = cs[5];
      std::uniform_int_distribution<int> row(0, corner ? (H - 1) / 3 : H - 1), col(0, corner ? (W - 1) / 3 : W - 1);
      std::vector<int32_t> coords(2 * N);
      for (int n = 0; n < N; ++n) coords[2 * n] = row(rng), coords[2 * n + 1] = col(rng);
      const KnnGeometry g = make_knn_geometry(H, W, h, w, N);
      std::vector<int32_t> start, points;
      cpu::bucket_points(g, 1, N, coords.data(), start, points);
      std::vector<int64_t> dist(k);
      std::vector<int32_t> index(k);
      for (int i = 0; i < h; ++i)
        for (int j = 0; j < w; ++j) {
          CHECK_EQ(tile_ring_search(g, k, i, j, coords.data(), start.data(), points.data(), dist.data(), index.data()),
                   k);
          std::vector<std::pair<int64_t, int32_t>> all(N);
          for (int n = 0; n < N; ++n) all[n] = {lattice_distance(g, coords[2 * n], coords[2 * n + 1], i, j), n};
          std::sort(all.begin(), all.end());
          for (int s = 0; s < k; ++s) {
            CHECK_EQ(dist[s], all[s].first);
            CHECK_EQ(index[s], all[s].second);
          }
        }
    }
}

static void test_bilinear_taps_follow_grid_sample() {
  // 4 lattice points onto 2 cells: source positions -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
  const double expect_src[] = {0.0, 0.25, 0.75, 1.0};
  for (int c = 0; c < 4; ++c) {
    const BilinearTap<double> t = bilinear_tap<double>(c, 4, 2);
    CHECK_NEAR(t.lo + t.frac, expect_src[c], 1e-15, 0);
    CHECK(t.hi <= 1 && t.lo <= t.hi);
  }
  const BilinearTap<double> one = bilinear_tap<double>(3, 5, 1);
  CHECK(one.lo == 0 && one.hi == 0 && one.frac == 0.0);
}

static void test_tile_size() {
  CHECK(knn_tile_size(256, 256, 16384) == 4);  // 16 pixels at density 1/4: 4 points a tile
  CHECK(knn_tile_size(256, 256, 8192) == 5);
  CHECK(knn_tile_size(8, 8, 64) == 2);
  CHECK(knn_tile_size(8, 8, 1) >= 8);
}

int main() {
  test_distance_matches_domain_distance();
  test_ring_bound_is_a_lower_bound();
  test_offer_keeps_k_first_in_order();
  test_ring_search_matches_brute_force();
  test_bilinear_taps_follow_grid_sample();
  test_tile_size();
  return infdiff_test::finish("test_knn_math");
}
