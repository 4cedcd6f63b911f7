// Uniform random test inputs in [-1, 1), shared by the C++ tests that compare kernels.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

template <typename T>
std::vector<T> random_values(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& e : v) e = static_cast<T>(uni(rng));
  return v;
}
