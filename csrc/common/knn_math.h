// Per-element math of the k-NN lerp between sparse points and dense grids (contract: docs/ops.md),
// shared by the CPU kernels, the CUDA kernels and the C++ unit tests.
//
// Distances are compared exactly, as the integer D of lattice_distance (the squared domain
// distance times a fixed factor, d2_scale^-1), ordered by (D, point index). The search
// buckets the points of an (H, W) lattice into T x T pixel tiles and visits tiles ring by
// ring (Chebyshev rings of tiles) around the tile holding the pixel nearest to the output
// cell; `ring_lower_bound` is the smallest D any pixel in ring R or beyond can have, so the
// search stops as soon as it exceeds the k-th best D found (see knn_tiles.h).
#pragma once

#include <cstdint>
#include <numeric>

#include "macros.h"

namespace infdiff {

// Sizes of one k-NN search: points on an (H, W) lattice, cells of an (h, w) grid, bucketed
// into tiles of `tile` x `tile` pixels. sy = W w / g and sx = H h / g with g = gcd(W w, H h).
struct KnnGeometry {
  int H, W, h, w;
  int64_t sy, sx;
  int tile, tiles_h, tiles_w;
  double d2_scale;  // d^2 (domain units) = D * d2_scale
};

constexpr int64_t kNoBound = INT64_MAX;

// Tiles of about `kPointsPerTile` expected points each: fewer points per tile scan less per
// ring, fewer tiles per ring walk fewer (possibly empty) buckets and ring bounds.
constexpr int64_t kPointsPerTile = 4;
inline int knn_tile_size(int H, int W, int64_t points) {
  if (points <= 0) return 1;
  int t = 1;
  while (static_cast<int64_t>(t + 1) * (t + 1) * points <= kPointsPerTile * static_cast<int64_t>(H) * W) ++t;
  return t;
}

// Host only (std::gcd): built once per call, then passed by value to every kernel.
inline KnnGeometry make_knn_geometry(int H, int W, int h, int w, int64_t points) {
  const int64_t ww = static_cast<int64_t>(W) * w, hh = static_cast<int64_t>(H) * h;
  const int64_t g = std::gcd(ww, hh);
  KnnGeometry geo;
  geo.H = H, geo.W = W, geo.h = h, geo.w = w;
  geo.sy = ww / g, geo.sx = hh / g;
  geo.tile = knn_tile_size(H, W, points);
  geo.tiles_h = (H + geo.tile - 1) / geo.tile;
  geo.tiles_w = (W + geo.tile - 1) / geo.tile;
  const double s = static_cast<double>(g) / (2.0 * static_cast<double>(hh) * static_cast<double>(ww));
  geo.d2_scale = s * s;
  return geo;
}

// (2 row + 1) out_size - (2 i + 1) in_size: the offset of lattice row `row` (of `in_size`)
// from cell row `i` (of `out_size`) in units of 1 / (2 in_size out_size), an exact integer.
INFDIFF_HD int64_t lattice_offset(int row, int i, int in_size, int out_size) {
  return (2 * static_cast<int64_t>(row) + 1) * out_size - (2 * static_cast<int64_t>(i) + 1) * in_size;
}

INFDIFF_HD int64_t lattice_distance(const KnnGeometry& g, int row, int col, int i, int j) {
  const int64_t ey = lattice_offset(row, i, g.H, g.h) * g.sy;
  const int64_t ex = lattice_offset(col, j, g.W, g.w) * g.sx;
  return ey * ey + ex * ex;
}

// The lattice index nearest to the centre of cell `i` (ties to the larger index).
INFDIFF_HD int nearest_lattice_index(int i, int in_size, int out_size) {
  const int64_t r = ((2 * static_cast<int64_t>(i) + 1) * in_size) / (2 * static_cast<int64_t>(out_size));
  return r < in_size ? static_cast<int>(r) : in_size - 1;
}

// (da, ia) before (db, ib) in the neighbour order: nearer first, ties to the smaller index.
INFDIFF_HD bool knn_before(int64_t da, int32_t ia, int64_t db, int32_t ib) {
  return da < db || (da == db && ia < ib);
}

// Smallest D of any pixel in tile rings >= R (R >= 1) around tile (tr, tc), for cell (i, j);
// kNoBound when no pixel of the lattice lies in those rings. Those pixels lie in one of four
// half-planes (rows below, above, columns right, left of the ring), and within each the D of
// the nearest row (column) alone bounds D from below.
INFDIFF_HD int64_t ring_lower_bound(const KnnGeometry& g, int i, int j, int tr, int tc, int R) {
  int64_t best = kNoBound;
  const int64_t below = static_cast<int64_t>(tr + R) * g.tile, above = static_cast<int64_t>(tr - R + 1) * g.tile - 1;
  const int64_t right = static_cast<int64_t>(tc + R) * g.tile, left = static_cast<int64_t>(tc - R + 1) * g.tile - 1;
  if (below < g.H) {
    const int64_t e = lattice_offset(static_cast<int>(below), i, g.H, g.h) * g.sy;
    best = e * e < best ? e * e : best;
  }
  if (above >= 0) {
    const int64_t e = lattice_offset(static_cast<int>(above), i, g.H, g.h) * g.sy;
    best = e * e < best ? e * e : best;
  }
  if (right < g.W) {
    const int64_t e = lattice_offset(static_cast<int>(right), j, g.W, g.w) * g.sx;
    best = e * e < best ? e * e : best;
  }
  if (left >= 0) {
    const int64_t e = lattice_offset(static_cast<int>(left), j, g.W, g.w) * g.sx;
    best = e * e < best ? e * e : best;
  }
  return best;
}

// Offers candidate (d, p) to the sorted list (dist, index) of `count` <= k entries; keeps the
// k first in (D, index) order. Returns the new count. Pointer types are templated so the list
// may live in registers, local or global memory.
template <typename DistPtr, typename IndexPtr>
INFDIFF_HD int knn_offer(DistPtr dist, IndexPtr index, int count, int k, int64_t d, int32_t p) {
  if (count == k && !knn_before(d, p, dist[k - 1], index[k - 1])) return count;
  int slot = count < k ? count : k - 1;
  while (slot > 0 && knn_before(d, p, dist[slot - 1], index[slot - 1])) {
    dist[slot] = dist[slot - 1];
    index[slot] = index[slot - 1];
    --slot;
  }
  dist[slot] = d;
  index[slot] = p;
  return count < k ? count + 1 : count;
}

// a_i = 1 / max(d_i^2, 1e-16) in domain units (contract: docs/ops.md), before normalisation.
INFDIFF_HD double inverse_square_weight(const KnnGeometry& g, int64_t D) {
  const double d2 = static_cast<double>(D) * g.d2_scale;
  return 1.0 / (d2 > 1e-16 ? d2 : 1e-16);
}

// weights (k) = the inverse-square weights of the k distances dist (k), normalised to sum 1.
template <typename DistPtr, typename acc_t>
INFDIFF_HD void store_knn_weights(const KnnGeometry& g, int k, DistPtr dist, acc_t* weights) {
  double total = 0;
  for (int s = 0; s < k; ++s) total += inverse_square_weight(g, dist[s]);
  const double scale = 1.0 / total;
  for (int s = 0; s < k; ++s) weights[s] = static_cast<acc_t>(inverse_square_weight(g, dist[s]) * scale);
}

// Source index of lattice point `coord` (of `in_size`) on a grid of `out_size`, as
// F.grid_sample(align_corners=False, padding_mode="border") computes it: clamped to
// [0, out_size - 1]. Bilinear taps are floor and floor + 1 (clamped), weight of the upper
// tap is the fraction.
template <typename acc_t>
INFDIFF_HD acc_t grid_source_index(int coord, int in_size, int out_size) {
  const acc_t s = static_cast<acc_t>(2 * static_cast<int64_t>(coord) + 1) * static_cast<acc_t>(out_size) /
                      (acc_t(2) * static_cast<acc_t>(in_size)) -
                  acc_t(0.5);
  const acc_t hi = static_cast<acc_t>(out_size - 1);
  return s < acc_t(0) ? acc_t(0) : (s > hi ? hi : s);
}

template <typename acc_t>
struct BilinearTap {
  int lo, hi;
  acc_t frac;  // weight of `hi`; `lo` gets 1 - frac
};

template <typename acc_t>
INFDIFF_HD BilinearTap<acc_t> bilinear_tap(int coord, int in_size, int out_size) {
  const acc_t s = grid_source_index<acc_t>(coord, in_size, out_size);
  BilinearTap<acc_t> t;
  t.lo = static_cast<int>(s);  // s >= 0, so truncation is floor
  t.frac = s - static_cast<acc_t>(t.lo);
  t.hi = t.lo + 1 < out_size ? t.lo + 1 : out_size - 1;
  return t;
}

// The four cells of an (h, w) grid that bilinear sampling at lattice pixel (row, col) of an
// (H, W) grid reads, as offsets into one (h, w) plane, with their weights.
template <typename acc_t>
struct BilinearStencil {
  int64_t offset[4];
  acc_t weight[4];
};

template <typename acc_t>
INFDIFF_HD BilinearStencil<acc_t> bilinear_stencil(int row, int col, int H, int W, int h, int w) {
  const BilinearTap<acc_t> ty = bilinear_tap<acc_t>(row, H, h);
  const BilinearTap<acc_t> tx = bilinear_tap<acc_t>(col, W, w);
  const int64_t lo = static_cast<int64_t>(ty.lo) * w, hi = static_cast<int64_t>(ty.hi) * w;
  BilinearStencil<acc_t> st;
  st.offset[0] = lo + tx.lo;
  st.offset[1] = lo + tx.hi;
  st.offset[2] = hi + tx.lo;
  st.offset[3] = hi + tx.hi;
  st.weight[0] = (1 - ty.frac) * (1 - tx.frac);
  st.weight[1] = (1 - ty.frac) * tx.frac;
  st.weight[2] = ty.frac * (1 - tx.frac);
  st.weight[3] = ty.frac * tx.frac;
  return st;
}

}  // namespace infdiff
