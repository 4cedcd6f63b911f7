// The CPU fast path of the exact k-NN search (contract: docs/ops.md) for points that fill their
// lattice densely enough: a padded (H + 2 Ra, W + 2 Rb) map of point indices per batch
// element (-1 where no point), scanned around the pixel nearest to each output cell.
//
// Offsets (a, b) of a box |a| <= Ra, |b| <= Rb around that pixel are visited in the order of
// a lower bound of their D that holds for every cell: the nearest pixel lies within half a
// pixel of the cell centre, so |dy| >= (2|a| - 1) h and |dx| >= (2|b| - 1) w. Once the k-th
// best D found is below the next offset's bound, no later offset can displace it; once it is
// below the bound of everything outside the box, the search is proven. Cells the box cannot
// prove (clustered points, far from the cell) are left to the tile ring search of knn.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../common/knn_math.h"

namespace infdiff {
namespace cpu {

struct LatticeOffset {
  int64_t bound;  // smallest D a pixel at this offset can have, for any cell
  int32_t delta;  // linear offset in the padded map
  int16_t ra, cb;  // a + Ra, b + Rb: indices into the per-row / per-column D terms
};

struct LatticePlan {
  int Ra = 0, Rb = 0;
  int64_t stride = 0, plane = 0;  // padded row length and map size per batch element
  int64_t outside = 0;            // smallest D of any offset outside the box
  std::vector<LatticeOffset> offsets;
  bool usable = false;
};

// (((2|a| - 1)^+ * unit) * scale)^2, saturated to kNoBound (offsets beyond the lattice).
inline int64_t lattice_axis_bound(int64_t a, int64_t unit, int64_t scale) {
  const int64_t m = std::max<int64_t>(2 * std::abs(a) - 1, 0);
  const __int128 e = static_cast<__int128>(m) * unit * scale;
  const __int128 d = e * e;
  return d > static_cast<__int128>(kNoBound) ? kNoBound : static_cast<int64_t>(d);
}

inline int64_t saturating_add(int64_t a, int64_t b) { return a > kNoBound - b ? kNoBound : a + b; }

// The box covers about twice the expected k-NN radius (k points in a disc at density N / (H W));
// the map is used only while its size stays a small multiple of the N + h w the search handles.
inline LatticePlan make_lattice_plan(const KnnGeometry& g, int64_t N, int k) {
  LatticePlan plan;
  constexpr int kMaxRadius = 16;
  const double rho = std::sqrt(static_cast<double>(k) / (3.14159265358979 * static_cast<double>(N)));
  plan.Ra = std::min({static_cast<int>(std::ceil(2.0 * rho * g.H)) + 1, kMaxRadius, g.H});
  plan.Rb = std::min({static_cast<int>(std::ceil(2.0 * rho * g.W)) + 1, kMaxRadius, g.W});
  plan.stride = static_cast<int64_t>(g.W) + 2 * plan.Rb;
  plan.plane = (static_cast<int64_t>(g.H) + 2 * plan.Ra) * plan.stride;
  const int64_t work = N + static_cast<int64_t>(g.h) * g.w;
  if (plan.plane > 16 * work || plan.plane > INT32_MAX) return plan;
  plan.outside = std::min(lattice_axis_bound(plan.Ra + 1, g.h, g.sy), lattice_axis_bound(plan.Rb + 1, g.w, g.sx));
  for (int a = -plan.Ra; a <= plan.Ra; ++a) {
    for (int b = -plan.Rb; b <= plan.Rb; ++b) {
      const int64_t bound = saturating_add(lattice_axis_bound(a, g.h, g.sy), lattice_axis_bound(b, g.w, g.sx));
      if (bound >= plan.outside) continue;  // the outside bound already covers it: left to the fallback
      plan.offsets.push_back({bound, static_cast<int32_t>(a * plan.stride + b), static_cast<int16_t>(a + plan.Ra),
                              static_cast<int16_t>(b + plan.Rb)});
    }
  }
  std::stable_sort(plan.offsets.begin(), plan.offsets.end(),
                   [](const LatticeOffset& x, const LatticeOffset& y) { return x.bound < y.bound; });
  plan.usable = true;
  return plan;
}

// Fills map (B, plane) with point indices; false for a batch element holding a pixel twice
// (possible with check=False), whose cells then all take the tile search.
inline void fill_lattice_map(const LatticePlan& plan, int64_t batch, int64_t N,
                             const int32_t* coords, std::vector<int32_t>& map, std::vector<char>& distinct) {
  map.assign(batch * plan.plane, -1);
  distinct.assign(batch, 1);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    int32_t* m = map.data() + b * plan.plane + plan.Ra * plan.stride + plan.Rb;
    const int32_t* cb = coords + b * N * 2;
    for (int64_t n = 0; n < N; ++n) {
      int32_t& slot = m[cb[2 * n] * plan.stride + cb[2 * n + 1]];
      if (slot >= 0) distinct[b] = 0;
      slot = static_cast<int32_t>(n);
    }
  }
}

// The terms of D for one output row (column): term[a + R] for the lattice
// row (column) a away from the nearest one.
inline void lattice_terms(int i, int in_size, int out_size, int64_t scale, int R, int64_t* term) {
  const int r0 = nearest_lattice_index(i, in_size, out_size);
  for (int a = -R; a <= R; ++a) {
    const bool inside = r0 + a >= 0 && r0 + a < in_size;  // outside, the map holds no point
    const int64_t e = inside ? lattice_offset(r0 + a, i, in_size, out_size) * scale : 0;
    term[a + R] = e * e;
  }
}

// The k nearest points of cell (i, j) through the map; false when the box cannot prove them.
// `map_centre` points at the cell's nearest pixel in the padded map. Offsets are read in
// groups whose hits are compacted without branches (a hit is a coin flip at typical
// densities), then offered; the stopping test runs between groups, which stays exact since
// offering more candidates never changes the k best.
inline bool lattice_search_cell(const LatticePlan& plan, int k, const int32_t* map_centre, const int64_t* row_terms,
                                const int64_t* col_terms, int64_t* dist, int32_t* index) {
  constexpr int kGroup = 8;
  const LatticeOffset* o = plan.offsets.data();
  const int64_t total = static_cast<int64_t>(plan.offsets.size());
  int count = 0;
  for (int64_t q0 = 0; q0 < total; q0 += kGroup) {
    if (count == k && o[q0].bound > dist[k - 1]) return true;
    int64_t cand_d[kGroup];
    int32_t cand_p[kGroup];
    int hits = 0;
    const int64_t q1 = std::min(q0 + kGroup, total);
    for (int64_t q = q0; q < q1; ++q) {
      const int32_t p = map_centre[o[q].delta];
      cand_d[hits] = row_terms[o[q].ra] + col_terms[o[q].cb];
      cand_p[hits] = p;
      hits += p >= 0;
    }
    for (int h = 0; h < hits; ++h) count = knn_offer(dist, index, count, k, cand_d[h], cand_p[h]);
  }
  return count == k && plan.outside > dist[k - 1];
}

}  // namespace cpu
}  // namespace infdiff
