// The tile buckets of the exact k-NN search (contract: docs/ops.md) and the ring walk over them,
// shared by the CPU kernels (csrc/cpu/knn.h), the CUDA kernels (csrc/cuda/knn.cu) and the
// C++ tests, so both backends find the same neighbours by the same code.
//
// Bucket layout, per batch element: tile_points[tile_start[t] .. tile_start[t + 1]) are the
// indices of the points in tile t (tile_start (tiles + 1), tile_points (N)). The order
// inside a tile is free: the search keeps the k first in (D, index) order whatever order it
// is offered the points in, so the CPU's stable counting sort and the GPU's atomic one
// give the same result.
#pragma once

#include <cstdint>

#include "knn_math.h"
#include "macros.h"

namespace infdiff {

// Tile of the lattice pixel (row, col): row-major over (tiles_h, tiles_w).
INFDIFF_HD int64_t point_tile(const KnnGeometry& g, int row, int col) {
  return static_cast<int64_t>(row / g.tile) * g.tiles_w + col / g.tile;
}

// The k nearest points of cell (i, j) into dist / index (k entries, (D, index) order), found
// by visiting Chebyshev rings of tiles around the tile of the pixel nearest to the cell
// until the ring's lower bound exceeds the k-th best D. coords (N, 2), start (tiles + 1)
// and points (N) are one batch element's. Returns how many neighbours were found
// (k, since k <= N). Dist/index pointer types are templated so the running list may live
// in CPU scratch or GPU global memory.
template <typename DistPtr, typename IndexPtr>
INFDIFF_HD int tile_ring_search(const KnnGeometry& g, int k, int i, int j, const int32_t* coords,
                                const int32_t* start, const int32_t* points, DistPtr dist, IndexPtr index) {
  const int tr = nearest_lattice_index(i, g.H, g.h) / g.tile;
  const int tc = nearest_lattice_index(j, g.W, g.w) / g.tile;
  int count = 0;
  for (int R = 0;; ++R) {
    if (R > 0) {
      const int64_t bound = ring_lower_bound(g, i, j, tr, tc, R);
      if (bound == kNoBound || (count == k && bound > dist[k - 1])) break;
    }
    const int a0 = tr - R > 0 ? tr - R : 0, a1 = tr + R < g.tiles_h - 1 ? tr + R : g.tiles_h - 1;
    const int b0 = tc - R > 0 ? tc - R : 0, b1 = tc + R < g.tiles_w - 1 ? tc + R : g.tiles_w - 1;
    for (int a = a0; a <= a1; ++a) {
      // The ring's first and last rows are walked whole, the rows between at their two ends.
      const bool edge_row = a == tr - R || a == tr + R;
      for (int b = b0; b <= b1; b = (edge_row || b >= tc + R) ? b + 1 : tc + R) {
        if (!edge_row && b != tc - R && b != tc + R) continue;
        const int64_t tile = static_cast<int64_t>(a) * g.tiles_w + b;
        for (int32_t q = start[tile]; q < start[tile + 1]; ++q) {
          const int32_t p = points[q];
          count = knn_offer(dist, index, count, k, lattice_distance(g, coords[2 * p], coords[2 * p + 1], i, j), p);
        }
      }
    }
  }
  return count;
}

}  // namespace infdiff
