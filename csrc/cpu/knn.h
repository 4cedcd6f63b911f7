// CPU kernels of the k-NN lerp between sparse points and dense grids (contract: docs/ops.md).
// Torch-free: raw pointers and sizes, instantiated for each dtype by the bindings.
//
// knn_search scans a padded map of point indices around each output cell (knn_lattice.h)
// when the points fill their lattice densely enough (map size <= 16 (N + h w) per batch
// element): in exact distance order through per-class sorted offset tables when the output
// grid has few cell classes (a bit mask of hits first, read from an occupancy bitmap when
// the tables allow, then the walk), else in bound order.
// Cells the map cannot prove go to an exact scan of every point when they are a handful, or
// to the tile ring search of knn_tiles.h over points bucketed by tile (a counting sort). The
// gather/scatter kernels then only read the (B, h*w, k) neighbour indices and normalised
// weights, which backward reuses.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef __AVX__
#include <immintrin.h>
#endif

#include "../common/knn_math.h"
#include "../common/knn_tiles.h"
#include "knn_lattice.h"

namespace infdiff {
namespace cpu {

// The tile buckets of knn_tiles.h for every batch element (tile_start (B, tiles + 1),
// tile_points (B, N)): a counting sort, so the points of a tile come in ascending order.
inline void bucket_points(const KnnGeometry& g, int64_t batch, int64_t N, const int32_t* coords,
                          std::vector<int32_t>& tile_start, std::vector<int32_t>& tile_points) {
  const int64_t tiles = static_cast<int64_t>(g.tiles_h) * g.tiles_w;
  tile_start.assign(batch * (tiles + 1), 0);
  tile_points.resize(batch * N);
  std::vector<int32_t> row_tile(g.H), col_tile(g.W);
  for (int r = 0; r < g.H; ++r) row_tile[r] = r / g.tile;
  for (int c = 0; c < g.W; ++c) col_tile[c] = c / g.tile;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    int32_t* start = tile_start.data() + b * (tiles + 1);
    const int32_t* cb = coords + b * N * 2;
    // point_tile without its two divisions per call: the search may need the buckets for a
    // handful of cells only, so building them must stay cheap next to the search itself.
    auto tile_of = [&](int64_t n) { return static_cast<int64_t>(row_tile[cb[2 * n]]) * g.tiles_w + col_tile[cb[2 * n + 1]]; };
    for (int64_t n = 0; n < N; ++n) ++start[tile_of(n) + 1];
    for (int64_t t = 0; t < tiles; ++t) start[t + 1] += start[t];
    std::vector<int32_t> fill(start, start + tiles);
    int32_t* out = tile_points.data() + b * N;
    for (int64_t n = 0; n < N; ++n) out[fill[tile_of(n)]++] = static_cast<int32_t>(n);
  }
}

// index (B, h*w, k) int32 and normalised weights (B, h*w, k) for every output cell: the
// lattice map when the plan allows it (read in exact distance order through the cell classes
// when there are few, else in bound order), then the tile ring search for every cell the map
// could not prove, whose buckets are built only when there is one.
// Threads take (batch, output row) pairs, whose D terms along the row are computed once.
template <typename acc_t>
void knn_search(const KnnGeometry& g, int64_t batch, int64_t N, int k, const int32_t* coords,
                int32_t* index, acc_t* weights) {
  const LatticePlan plan = make_lattice_plan(g, N, k);
  const LatticeClasses classes = make_lattice_classes(g, plan, N, k);
  std::vector<int32_t> map;
  std::vector<char> distinct;
  std::vector<uint8_t> bitmap;
  std::vector<int64_t> col_terms;
  const int64_t col_span = 2 * plan.Rb + 1;
  if (plan.usable) fill_lattice_map(plan, batch, N, coords, map, distinct);
  const LatticeWindow& window = classes.window;
  const int64_t row_bytes = lattice_bitmap_row_bytes(plan);
  const int64_t bitmap_plane = lattice_bitmap_plane(g, plan);
  if (classes.usable && window.usable) fill_lattice_bitmap(g, plan, batch, N, coords, bitmap);
  // Per output column: its nearest lattice column and its cell class, instead of two integer
  // divisions for every cell.
  std::vector<int32_t> col_nearest(g.w), col_class(g.w);
  for (int j = 0; j < g.w; ++j) {
    col_nearest[j] = nearest_lattice_index(j, g.W, g.w);
    col_class[j] = classes.usable ? j % classes.px : 0;
  }
  if (plan.usable && !classes.usable) {
    col_terms.resize(g.w * col_span);
    for (int j = 0; j < g.w; ++j) lattice_terms(j, g.W, g.w, g.sx, plan.Rb, col_terms.data() + j * col_span);
  }
  std::vector<int64_t> unproven;  // cells (b * h * w + cell) left to the tile search
#pragma omp parallel
  {
    std::vector<int64_t> dist(std::max(k, 1));
    std::vector<double> inv(std::max(k, 1));
    std::vector<int64_t> row_terms(2 * plan.Ra + 1);
    std::vector<int64_t> mine;
#pragma omp for schedule(dynamic, 1)
    for (int64_t bi = 0; bi < batch * g.h; ++bi) {
      const int64_t b = bi / g.h;
      const int i = static_cast<int>(bi % g.h);
      if (!plan.usable || !distinct[b]) {
        for (int j = 0; j < g.w; ++j) mine.push_back(bi * g.w + j);
        continue;
      }
      const int64_t nearest_row = nearest_lattice_index(i, g.H, g.h);
      const int32_t* map_row = map.data() + b * plan.plane + (nearest_row + plan.Ra) * plan.stride + plan.Rb;
      if (classes.usable) {
        const int64_t class_row = static_cast<int64_t>(i % classes.py) * classes.px;
        const int64_t* start = classes.start.data() + class_row;
        // The bitmap row of the window's first row for this output row (window.usable only).
        const uint8_t* window_row =
            window.usable
                ? bitmap.data() + b * bitmap_plane + (nearest_row + plan.Ra + window.a0) * row_bytes
                : nullptr;
        for (int j = 0; j < g.w; ++j) {
          const int64_t bc = bi * g.w + j, c = col_class[j];
          int32_t* idx = index + bc * k;
          const int j0 = col_nearest[j];
          const int32_t* centre = map_row + j0;
          const int64_t q0 = start[c];
          const uint64_t mask =
              window.usable ? lattice_window_mask(window.bits.data() + (class_row + c) * window.rows * window.groups * 256,
                                                  window.rows, window.groups, window_row, row_bytes,
                                                  j0 + plan.Rb + window.b0)
                            : lattice_gather_mask(classes.delta.data() + q0, classes.mask_length, centre);
          if (!lattice_mask_search_cell(mask, classes.entries.data() + q0, classes.delta.data() + q0,
                                        classes.tie_end.data() + q0, classes.mask_length, k, centre, dist.data(), idx,
                                        inv.data()) &&
              !lattice_class_search_cell(classes.entries.data() + q0, start[c + 1] - q0, plan.outside, k, centre,
                                         dist.data(), idx, inv.data())) {
            mine.push_back(bc);
            continue;
          }
          // As store_knn_weights, with each neighbour's weight taken from its table entry.
          double total = 0;
          for (int s = 0; s < k; ++s) total += inv[s];
          const double scale = 1.0 / total;
          for (int s = 0; s < k; ++s) weights[bc * k + s] = static_cast<acc_t>(inv[s] * scale);
        }
        continue;
      }
      lattice_terms(i, g.H, g.h, g.sy, plan.Ra, row_terms.data());
      for (int j = 0; j < g.w; ++j) {
        const int64_t bc = bi * g.w + j;
        if (lattice_search_cell(plan, k, map_row + nearest_lattice_index(j, g.W, g.w), row_terms.data(),
                                col_terms.data() + j * col_span, dist.data(), index + bc * k))
          store_knn_weights(g, k, dist.data(), weights + bc * k);
        else
          mine.push_back(bc);
      }
    }
#pragma omp critical
    unproven.insert(unproven.end(), mine.begin(), mine.end());
  }
  if (unproven.empty()) return;
  const int64_t cells = static_cast<int64_t>(g.h) * g.w, left = static_cast<int64_t>(unproven.size());
  // A few cells (the box cut by a lattice corner holds too few points) are cheaper to scan
  // against every point of their batch element than to bucket all the points for.
  const bool brute = left <= 2 * batch;
  std::vector<int32_t> tile_start, tile_points;
  if (!brute) bucket_points(g, batch, N, coords, tile_start, tile_points);
  const int64_t tiles = static_cast<int64_t>(g.tiles_h) * g.tiles_w;
#pragma omp parallel if (!brute)  // a few cells: no second barrier to wait at on a busy machine
  {
    std::vector<int64_t> dist(std::max(k, 1));
#pragma omp for schedule(dynamic, 64)
    for (int64_t u = 0; u < left; ++u) {
      const int64_t bc = unproven[u], b = bc / cells, cell = bc % cells;
      const int i = static_cast<int>(cell / g.w), j = static_cast<int>(cell % g.w);
      const int32_t* cb = coords + b * N * 2;
      if (brute) {
        int count = 0;
        for (int64_t n = 0; n < N; ++n)
          count = knn_offer(dist.data(), index + bc * k, count, k, lattice_distance(g, cb[2 * n], cb[2 * n + 1], i, j),
                            static_cast<int32_t>(n));
      } else {
        tile_ring_search(g, k, i, j, cb, tile_start.data() + b * (tiles + 1), tile_points.data() + b * N, dist.data(),
                         index + bc * k);
      }
      store_knn_weights(g, k, dist.data(), weights + bc * k);
    }
  }
}

// Writes acc (n cells x C, channels-last) to out (C, cells-plane) at cells [0, n).
template <typename scalar_t, typename acc_t>
void store_transposed(const acc_t* acc, int64_t n, int64_t C, int64_t plane, scalar_t* out) {
  for (int64_t c = 0; c < C; ++c) {
    scalar_t* o = out + c * plane;
    for (int64_t g = 0; g < n; ++g) o[g] = static_cast<scalar_t>(acc[g * C + c]);
  }
}

#ifdef __AVX__
// r[q] (cell q's 8 channels) becomes r[q] = channel q of the 8 cells, by unpacks and shuffles.
inline void transpose8x8(__m256* r) {
  __m256 t[8];
  for (int q = 0; q < 8; q += 2) {
    t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
    t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
  }
  __m256 u[8];
  for (int q = 0; q < 8; q += 4) {
    u[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
    u[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xEE);
    u[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
    u[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xEE);
  }
  // u[q] holds channel q of cells 0..3 (low lane) and channel q + 4 (high lane); u[q + 4] the
  // same for cells 4..7.
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
    r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
  }
}

// float: 8 x 8 register transposes instead of strided scalar loads (which dominated the gather).
inline void store_transposed(const float* acc, int64_t n, int64_t C, int64_t plane, float* out) {
  if (n % 8 != 0 || C % 8 != 0) return store_transposed<float, float>(acc, n, C, plane, out);
  // Channel groups outer: each of the 8 planes being written then advances sequentially.
  for (int64_t c = 0; c < C; c += 8) {
    for (int64_t g = 0; g < n; g += 8) {
      __m256 r[8];
      for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(acc + (g + q) * C + c);
      transpose8x8(r);
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(out + (c + q) * plane + g, r[q]);
    }
  }
}
#endif

// out (B, C, cells) = sum_s weights[b, cell, s] * x[b, index[b, cell, s], :], for channel count
// and k fixed at compile time when kC, kK > 0 (runtime values C_, k_ otherwise).
template <int kC, int kK, typename scalar_t, typename acc_t>
void knn_gather_blocks(int64_t batch, int64_t N, int64_t C_, int64_t cells, int k_, const scalar_t* x,
                       const int32_t* index, const acc_t* weights, scalar_t* out) {
  const int64_t C = kC > 0 ? kC : C_;
  const int k = kK > 0 ? kK : k_;
  constexpr int64_t kBlock = 256;  // cells per transposed write: 1 KB runs per channel plane
  const int64_t blocks = (cells + kBlock - 1) / kBlock;
#pragma omp parallel
  {
    std::vector<acc_t> acc(kBlock * C);
    // Dynamic: on a shared machine a thread that loses its core hands its blocks to the others
    // instead of holding everyone at the barrier (static made 2 threads slower than 1 there).
#pragma omp for schedule(dynamic, 1)
    for (int64_t bb = 0; bb < batch * blocks; ++bb) {
      const int64_t b = bb / blocks, g0 = (bb % blocks) * kBlock, g1 = std::min(g0 + kBlock, cells);
      const scalar_t* xb = x + b * N * C;
      for (int64_t g = g0; g < g1; ++g) {
        acc_t* a = acc.data() + (g - g0) * C;
        const int32_t* id = index + (b * cells + g) * k;
        const acc_t* wt = weights + (b * cells + g) * k;
        const scalar_t* x0 = xb + static_cast<int64_t>(id[0]) * C;
        if constexpr (kK == 3) {  // one pass over the accumulator instead of three
          const scalar_t* x1 = xb + static_cast<int64_t>(id[1]) * C;
          const scalar_t* x2 = xb + static_cast<int64_t>(id[2]) * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c)
            a[c] = wt[0] * static_cast<acc_t>(x0[c]) + wt[1] * static_cast<acc_t>(x1[c]) +
                   wt[2] * static_cast<acc_t>(x2[c]);
        } else {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) a[c] = wt[0] * static_cast<acc_t>(x0[c]);
          for (int s = 1; s < k; ++s) {
            const scalar_t* xp = xb + static_cast<int64_t>(id[s]) * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) a[c] += wt[s] * static_cast<acc_t>(xp[c]);
          }
        }
      }
      store_transposed(acc.data(), g1 - g0, C, cells, out + b * C * cells + g0);
    }
  }
}

// out (B, C, cells) = sum_s weights[b, cell, s] * x[b, index[b, cell, s], :]
// The common shapes (k = 3; C = 32, 64, 128) get unrolled channel loops with the k terms fused,
// about 20% faster than the runtime-sized loop at the shape (bench/knn.py).
template <typename scalar_t, typename acc_t>
void knn_gather(int64_t batch, int64_t N, int64_t C, int64_t cells, int k, const scalar_t* x,
                const int32_t* index, const acc_t* weights, scalar_t* out) {
  if (k == 3 && C == 32) return knn_gather_blocks<32, 3>(batch, N, C, cells, k, x, index, weights, out);
  if (k == 3 && C == 64) return knn_gather_blocks<64, 3>(batch, N, C, cells, k, x, index, weights, out);
  if (k == 3 && C == 128) return knn_gather_blocks<128, 3>(batch, N, C, cells, k, x, index, weights, out);
  if (k == 3) return knn_gather_blocks<0, 3>(batch, N, C, cells, k, x, index, weights, out);
  knn_gather_blocks<0, 0>(batch, N, C, cells, k, x, index, weights, out);
}

// grad_x (B, N, C), zero-filled by the caller, += the adjoint of knn_gather applied to
// grad_out (B, C, cells). Threads own (batch, channel block) pairs, so no two write alike.
template <typename scalar_t, typename acc_t>
void knn_scatter(int64_t batch, int64_t N, int64_t C, int64_t cells, int k, const scalar_t* grad_out,
                 const int32_t* index, const acc_t* weights, acc_t* grad_x) {
  constexpr int64_t kChannels = 16;
  const int64_t chunks = (C + kChannels - 1) / kChannels;
#pragma omp parallel for schedule(static)
  for (int64_t bq = 0; bq < batch * chunks; ++bq) {
    const int64_t b = bq / chunks, c0 = (bq % chunks) * kChannels, c1 = std::min(c0 + kChannels, C);
    const scalar_t* go = grad_out + b * C * cells;
    for (int64_t g = 0; g < cells; ++g) {
      const int64_t base = (b * cells + g) * k;
      for (int s = 0; s < k; ++s) {
        acc_t* gx = grad_x + (b * N + index[base + s]) * C;
        const acc_t wt = weights[base + s];
        for (int64_t c = c0; c < c1; ++c) gx[c] += wt * static_cast<acc_t>(go[c * cells + g]);
      }
    }
  }
}

// out (B, N, C): bilinear samples of y (B, C, h, w) at the points (grid_sample semantics).
template <typename scalar_t, typename acc_t>
void grid_to_points(int64_t batch, int64_t N, int64_t C, int H, int W, int h, int w, const scalar_t* y,
                    const int32_t* coords, scalar_t* out) {
  const int64_t plane = static_cast<int64_t>(h) * w;
#pragma omp parallel for schedule(static)
  for (int64_t bn = 0; bn < batch * N; ++bn) {
    const int64_t b = bn / N;
    const BilinearStencil<acc_t> st = bilinear_stencil<acc_t>(coords[2 * bn], coords[2 * bn + 1], H, W, h, w);
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t* p = y + (b * C + c) * plane;
      acc_t v = 0;
      for (int t = 0; t < 4; ++t) v += st.weight[t] * static_cast<acc_t>(p[st.offset[t]]);
      out[bn * C + c] = static_cast<scalar_t>(v);
    }
  }
}

// grad_y (B, C, h, w), zero-filled by the caller, += the adjoint of grid_to_points applied to
// grad_out (B, N, C). Threads own (batch, channel block) pairs.
template <typename scalar_t, typename acc_t>
void grid_to_points_backward(int64_t batch, int64_t N, int64_t C, int H, int W, int h, int w,
                             const scalar_t* grad_out, const int32_t* coords, acc_t* grad_y) {
  constexpr int64_t kChannels = 16;
  const int64_t chunks = (C + kChannels - 1) / kChannels, plane = static_cast<int64_t>(h) * w;
#pragma omp parallel for schedule(static)
  for (int64_t bq = 0; bq < batch * chunks; ++bq) {
    const int64_t b = bq / chunks, c0 = (bq % chunks) * kChannels, c1 = std::min(c0 + kChannels, C);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t bn = b * N + n;
      const BilinearStencil<acc_t> st = bilinear_stencil<acc_t>(coords[2 * bn], coords[2 * bn + 1], H, W, h, w);
      for (int64_t c = c0; c < c1; ++c) {
        const acc_t go = static_cast<acc_t>(grad_out[bn * C + c]);
        acc_t* p = grad_y + (b * C + c) * plane;
        for (int t = 0; t < 4; ++t) p[st.offset[t]] += st.weight[t] * go;
      }
    }
  }
}

}  // namespace cpu
}  // namespace infdiff
