// Minimal check macros for the C++ unit tests (no test framework: the CI has no internet).
// A failing check prints where and what, and the test exits non-zero at the end.
#pragma once

#include <cmath>
#include <cstdio>

namespace infdiff_test {
inline int& failures() {
  static int count = 0;
  return count;
}
inline int finish(const char* name) {
  if (failures() == 0) std::printf("%s: all checks passed\n", name);
  else std::printf("%s: %d check(s) FAILED\n", name, failures());
  return failures() == 0 ? 0 : 1;
}
}  // namespace infdiff_test

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
      ++infdiff_test::failures();                                                \
    }                                                                            \
  } while (0)

#define CHECK_EQ(a, b)                                                           \
  do {                                                                           \
    if (!((a) == (b))) {                                                         \
      std::printf("%s:%d: CHECK_EQ failed: %s == %s\n", __FILE__, __LINE__, #a, #b); \
      ++infdiff_test::failures();                                                \
    }                                                                            \
  } while (0)

// |a - b| <= atol + rtol * |b|
#define CHECK_NEAR(a, b, atol, rtol)                                             \
  do {                                                                           \
    const double a_ = static_cast<double>(a), b_ = static_cast<double>(b);       \
    if (!(std::fabs(a_ - b_) <= (atol) + (rtol) * std::fabs(b_))) {              \
      std::printf("%s:%d: CHECK_NEAR failed: %s = %.17g vs %s = %.17g\n", __FILE__, \
                  __LINE__, #a, a_, #b, b_);                                     \
      ++infdiff_test::failures();                                                \
    }                                                                            \
  } while (0)
