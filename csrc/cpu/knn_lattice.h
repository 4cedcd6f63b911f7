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
#include <cstring>
#include <numeric>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

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
  // Threads only for large fills: every parallel region ends at a barrier that, on a shared
  // machine, waits for a thread without a core, and this fill is a small part of the search.
#pragma omp parallel for schedule(static) if (batch * N >= (int64_t{1} << 20))
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

// Bytes per padded row of the occupancy bitmap: the padded columns and the 2-byte reads of
// lattice_window_mask, whose last run of 8 may start up to 7 columns before the row's end.
inline int64_t lattice_bitmap_row_bytes(const LatticePlan& plan) { return (plan.stride >> 3) + 3; }

// Bytes per batch element of the occupancy bitmap: H + 2 Ra padded rows.
inline int64_t lattice_bitmap_plane(const KnnGeometry& g, const LatticePlan& plan) {
  return (static_cast<int64_t>(g.H) + 2 * plan.Ra) * lattice_bitmap_row_bytes(plan);
}

// bits (B, H + 2 Ra, row_bytes): bit (pc & 7) of byte (pc >> 3) set where padded column pc
// of the row holds a point.
inline void fill_lattice_bitmap(const KnnGeometry& g, const LatticePlan& plan, int64_t batch, int64_t N,
                                const int32_t* coords, std::vector<uint8_t>& bits) {
  const int64_t row_bytes = lattice_bitmap_row_bytes(plan), plane = lattice_bitmap_plane(g, plan);
  bits.assign(batch * plane, 0);
  // Threads as fill_lattice_map takes them: only for large fills.
#pragma omp parallel for schedule(static) if (batch * N >= (int64_t{1} << 20))
  for (int64_t b = 0; b < batch; ++b) {
    uint8_t* m = bits.data() + b * plane + plan.Ra * row_bytes;
    const int32_t* cb = coords + b * N * 2;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t pc = cb[2 * n + 1] + plan.Rb;
      m[cb[2 * n] * row_bytes + (pc >> 3)] |= static_cast<uint8_t>(1u << (pc & 7));
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

// Cell classes: the D of the pixel at offset (a, b) from a cell's nearest pixel depends only
// on (i mod py, j mod px) with py = h / gcd(H, h), px = w / gcd(W, w) (moving py cells moves
// the nearest pixel by a whole number of lattice rows). For each class the box offsets are
// sorted by their exact D, so a cell's search reads its map in distance order: the first hits
// are already its nearest, and it stops at the first offset farther than the k-th hit. Each
// entry carries the inverse-square weight of its D, so the weights cost one division per cell.
struct ClassEntry {
  int64_t D;
  double inv;  // inverse_square_weight(D), before normalisation
  int32_t delta;
  int16_t a, b;  // the offset: delta = a * stride + b
};

// The hit mask of a cell from an occupancy bitmap instead of a gather of map entries, when
// the mask's entries of every class fit in a window of `rows` lattice rows by `groups` runs of
// 8 columns (offsets a0 .., b0 .. from the nearest pixel): each run's 8 bits index a table
// giving their mask bits in the class's distance order, so a cell's mask costs rows * groups
// table reads. The AVX2 gathers of map entries it replaces stalled the search (about half its
// time at 1/4 of 256^2 onto 128^2, perf).
struct LatticeWindow {
  int a0 = 0, b0 = 0, rows = 0, groups = 0;
  std::vector<uint64_t> bits;  // (classes, rows, groups, 256)
  bool usable = false;
};

struct LatticeClasses {
  int py = 0, px = 0;
  std::vector<int64_t> start;  // (py * px + 1): entries of class (ry, rx) at [start[c], start[c + 1])
  std::vector<ClassEntry> entries;
  std::vector<int32_t> delta;     // entries[q].delta, packed for the hit mask
  std::vector<int32_t> tie_end;   // one past the last entry of the class with entries[q]'s D
  int mask_length = 0;            // entries the hit mask covers (<= 64)
  LatticeWindow window;
  bool usable = false;
};

// More classes than this and the tables outgrow the caches: the bound-ordered scan then runs.
constexpr int64_t kMaxLatticeClasses = 64;

inline __int128 class_axis_term(int i, int a, int in_size, int out_size, int64_t scale) {
  const __int128 e = static_cast<__int128>(lattice_offset(nearest_lattice_index(i, in_size, out_size) + a, i, in_size, out_size)) * scale;
  return e * e;
}

// The window tables of LatticeWindow for the first mask_length entries of every class; not
// usable when the tables would outgrow 128 KB (more than 64 runs of 8 columns a class).
inline LatticeWindow make_lattice_window(const LatticeClasses& c) {
  LatticeWindow win;
  const int classes = c.py * c.px, L = c.mask_length;
  if (L == 0) return win;
  int a_lo = INT32_MAX, a_hi = INT32_MIN, b_lo = INT32_MAX, b_hi = INT32_MIN;
  for (int cls = 0; cls < classes; ++cls) {
    for (int q = 0; q < L; ++q) {
      const ClassEntry& e = c.entries[c.start[cls] + q];
      a_lo = std::min<int>(a_lo, e.a), a_hi = std::max<int>(a_hi, e.a);
      b_lo = std::min<int>(b_lo, e.b), b_hi = std::max<int>(b_hi, e.b);
    }
  }
  win.a0 = a_lo, win.b0 = b_lo, win.rows = a_hi - a_lo + 1, win.groups = (b_hi - b_lo + 8) / 8;
  if (static_cast<int64_t>(classes) * win.rows * win.groups > 64) return win;
  win.bits.assign(static_cast<size_t>(classes) * win.rows * win.groups * 256, 0);
  for (int cls = 0; cls < classes; ++cls) {
    for (int q = 0; q < L; ++q) {
      const ClassEntry& e = c.entries[c.start[cls] + q];
      const int column = e.b - b_lo;
      uint64_t* run = win.bits.data() + ((static_cast<size_t>(cls) * win.rows + (e.a - a_lo)) * win.groups + column / 8) * 256;
      for (int byte = 0; byte < 256; ++byte)
        if (byte >> (column % 8) & 1) run[byte] |= uint64_t{1} << q;
    }
  }
  win.usable = true;
  return win;
}

inline LatticeClasses make_lattice_classes(const KnnGeometry& g, const LatticePlan& plan, int64_t N, int k) {
  LatticeClasses c;
  c.py = g.h / std::gcd(g.H, g.h);
  c.px = g.w / std::gcd(g.W, g.w);
  if (!plan.usable || static_cast<int64_t>(c.py) * c.px > kMaxLatticeClasses) return c;
  c.start.push_back(0);
  for (int ry = 0; ry < c.py; ++ry) {
    for (int rx = 0; rx < c.px; ++rx) {
      const size_t first = c.entries.size();
      for (int a = -plan.Ra; a <= plan.Ra; ++a) {
        const __int128 ty = class_axis_term(ry, a, g.H, g.h, g.sy);
        for (int b = -plan.Rb; b <= plan.Rb; ++b) {
          const __int128 D = ty + class_axis_term(rx, b, g.W, g.w, g.sx);
          // At or beyond the box's outside bound an entry can never be needed: a cell whose
          // k-th D reaches that bound is not proven by the box and takes the tile search.
          if (D >= static_cast<__int128>(plan.outside)) continue;
          const int64_t d = static_cast<int64_t>(D);
          c.entries.push_back({d, inverse_square_weight(g, d), static_cast<int32_t>(a * plan.stride + b),
                               static_cast<int16_t>(a), static_cast<int16_t>(b)});
        }
      }
      std::sort(c.entries.begin() + first, c.entries.end(), [](const ClassEntry& x, const ClassEntry& y) {
        return x.D < y.D || (x.D == y.D && x.delta < y.delta);
      });
      c.start.push_back(static_cast<int64_t>(c.entries.size()));
      c.tie_end.resize(c.entries.size());
      for (size_t q = c.entries.size(); q-- > first;) {
        const bool last = q + 1 == c.entries.size() || c.entries[q + 1].D != c.entries[q].D;
        c.tie_end[q] = last ? static_cast<int32_t>(q + 1 - first) : c.tie_end[q + 1];
      }
    }
  }
  for (const ClassEntry& e : c.entries) c.delta.push_back(e.delta);
  // About 2.5 k expected hits: the k-th and its ties then lie inside the mask for all but a
  // few cells, which take the walk.
  const double fill = static_cast<double>(N) / (static_cast<double>(g.H) * g.W);
  int64_t length = static_cast<int64_t>(std::min(64.0, std::ceil(2.5 * k / std::max(fill, 1e-9))));
  length = (length + 7) / 8 * 8;  // whole gathers
  for (int64_t q = 0; q + 1 < static_cast<int64_t>(c.start.size()); ++q)
    length = std::min(length, (c.start[q + 1] - c.start[q]) / 8 * 8);  // 0: every cell takes the walk
  c.mask_length = static_cast<int>(length);
  c.window = make_lattice_window(c);
  c.usable = true;
  return c;
}

// knn_offer carrying each neighbour's inverse-square weight along.
inline int knn_offer_weighted(int64_t* dist, int32_t* index, double* inv, int count, int k, int64_t d, int32_t p,
                              double a) {
  if (count == k && !knn_before(d, p, dist[k - 1], index[k - 1])) return count;
  int slot = count < k ? count : k - 1;
  while (slot > 0 && knn_before(d, p, dist[slot - 1], index[slot - 1])) {
    dist[slot] = dist[slot - 1];
    index[slot] = index[slot - 1];
    inv[slot] = inv[slot - 1];
    --slot;
  }
  dist[slot] = d;
  index[slot] = p;
  inv[slot] = a;
  return count < k ? count + 1 : count;
}

// Bit q set when the class's entry q (q < L, a multiple of 8) holds a point: map reads.
inline uint64_t lattice_gather_mask(const int32_t* delta, int L, const int32_t* map_centre) {
  uint64_t mask = 0;
#ifdef __AVX2__
  // 8 map reads per gather, a hit is a clear sign bit.
  for (int q = 0; q < L; q += 8) {
    const __m256i v = _mm256_i32gather_epi32(map_centre, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(delta + q)), 4);
    mask |= static_cast<uint64_t>(~_mm256_movemask_ps(_mm256_castsi256_ps(v)) & 0xff) << q;
  }
#else
  for (int q = 0; q < L; ++q) mask |= static_cast<uint64_t>(map_centre[delta[q]] >= 0) << q;
#endif
  return mask;
}

// The same mask from the occupancy bitmap (LatticeWindow): `first_row` points at the padded
// bitmap row of the window's first row, `col` is the padded column of its first column.
inline uint64_t lattice_window_mask(const uint64_t* class_bits, int rows, int groups, const uint8_t* first_row,
                                    int64_t row_bytes, int64_t col) {
  uint64_t mask = 0;
  const uint8_t* p = first_row + (col >> 3);
  const int shift = static_cast<int>(col & 7);
  for (int r = 0; r < rows; ++r, p += row_bytes) {
    for (int u = 0; u < groups; ++u, class_bits += 256) {
      uint16_t word;
      std::memcpy(&word, p + u, sizeof word);
      mask |= class_bits[(word >> shift) & 0xff];
    }
  }
  return mask;
}

// The k nearest points of a cell from the bit mask of which of its class's first L entries
// hold a point: the k-th set bit is the k-th nearest hit, and every hit up to the end of that
// entry's tie group (equal D) is offered, so ties still go to the smaller index. Branches
// depend only on the few hits offered, not on each entry. False (nothing decided) when the
// mask holds fewer than k hits or the tie group runs past it; the entries are all inside the
// box's proven range, so a true result needs no further proof.
inline bool lattice_mask_search_cell(uint64_t mask, const ClassEntry* e, const int32_t* delta, const int32_t* tie_end,
                                     int L, int k, const int32_t* map_centre, int64_t* dist, int32_t* index,
                                     double* inv) {
  uint64_t m = mask;
  for (int s = 1; s < k && m; ++s) m &= m - 1;
  if (m == 0) return false;
  const int end = tie_end[__builtin_ctzll(m)];
  if (end > L) return false;
  uint64_t cand = end == 64 ? mask : mask & ((uint64_t{1} << end) - 1);
  int count = 0;
  while (cand) {
    const int q = __builtin_ctzll(cand);
    cand &= cand - 1;
    count = knn_offer_weighted(dist, index, inv, count, k, e[q].D, map_centre[delta[q]], e[q].inv);
  }
  return true;
}

// The k nearest points of a cell through its class's sorted entries [e, e + n); false when the
// box cannot prove them. Entries are read in small groups whose hits are compacted without
// branches (a hit is a coin flip at typical densities); offering a group's farther entries
// after the k-th hit is harmless, they are rejected.
inline bool lattice_class_search_cell(const ClassEntry* e, int64_t n, int64_t outside, int k,
                                      const int32_t* map_centre, int64_t* dist, int32_t* index, double* inv) {
  constexpr int kGroup = 4;
  int count = 0;
  for (int64_t q0 = 0; q0 < n; q0 += kGroup) {
    if (count == k && e[q0].D > dist[k - 1]) return true;
    int32_t cand_p[kGroup], cand_q[kGroup];
    int hits = 0;
    const int64_t q1 = std::min<int64_t>(q0 + kGroup, n);
    for (int64_t q = q0; q < q1; ++q) {
      const int32_t p = map_centre[e[q].delta];
      cand_p[hits] = p;
      cand_q[hits] = static_cast<int32_t>(q);
      hits += p >= 0;
    }
    for (int h = 0; h < hits; ++h)
      count = knn_offer_weighted(dist, index, inv, count, k, e[cand_q[h]].D, cand_p[h], e[cand_q[h]].inv);
  }
  return count == k && outside > dist[k - 1];
}

}  // namespace cpu
}  // namespace infdiff
