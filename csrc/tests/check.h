// The one check harness of the C++ tests (no test framework: the CI has no internet).
// A failing check prints where and what and the test carries on, so one run shows every
// failure; `finish` turns the tally into the exit code ctest reads. A test that ran no
// check at all fails too, so a loop over an empty case list cannot pass silently.
#pragma once

#include <cmath>
#include <cstdio>

namespace infdiff_test {

struct Tally {
  long checks = 0, failures = 0;
};
inline Tally& tally() {
  static Tally t;
  return t;
}

// Failures past this many are counted but not printed: a wrong kernel fails every element.
constexpr long kPrintedFailures = 30;

inline bool record(bool ok) {
  ++tally().checks;
  if (!ok) ++tally().failures;
  return ok || tally().failures > kPrintedFailures;
}

inline int finish(const char* name) {
  const Tally& t = tally();
  if (t.checks == 0) {
    std::printf("%s: FAILED, no check ran\n", name);
    return 1;
  }
  if (t.failures == 0) std::printf("%s: all %ld checks passed\n", name, t.checks);
  else std::printf("%s: %ld of %ld checks FAILED\n", name, t.failures, t.checks);
  return t.failures == 0 ? 0 : 1;
}

}  // namespace infdiff_test

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!infdiff_test::record(static_cast<bool>(cond)))                      \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
  } while (0)

// Values are printed as doubles, which holds every integer and float the tests compare.
#define CHECK_EQ(a, b)                                                                               \
  do {                                                                                               \
    const auto a_ = (a);                                                                             \
    const auto b_ = (b);                                                                             \
    if (!infdiff_test::record(a_ == b_))                                                             \
      std::printf("%s:%d: CHECK_EQ failed: %s = %.17g vs %s = %.17g\n", __FILE__, __LINE__, #a,      \
                  static_cast<double>(a_), #b, static_cast<double>(b_));                             \
  } while (0)

// |a - b| <= atol + rtol * |b|; a NaN on either side fails.
#define CHECK_NEAR(a, b, atol, rtol)                                                                 \
  do {                                                                                               \
    const double a_ = static_cast<double>(a), b_ = static_cast<double>(b);                           \
    if (!infdiff_test::record(std::fabs(a_ - b_) <= (atol) + (rtol) * std::fabs(b_)))                \
      std::printf("%s:%d: CHECK_NEAR failed: %s = %.17g vs %s = %.17g\n", __FILE__, __LINE__, #a, a_, \
                  #b, b_);                                                                           \
  } while (0)
