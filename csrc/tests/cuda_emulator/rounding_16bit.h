// The 16-bit rounding of the host CUDA emulation (see cuda_fp16.h, cuda_bf16.h): the
// emulated __half and __nv_bfloat16 hold a float, rounded to nearest-even at the 16-bit
// precision whenever a float becomes one, so the kernels' 16-bit paths round exactly where a
// GPU's would (every store and every conversion) and the tests see the real precision.
// `round_16bit = false` keeps full float values instead, for a test that wants to separate
// rounding error from a logic error.
#pragma once

#include <cstdint>
#include <cstring>

namespace cuda_emulator {

inline bool round_16bit = true;

inline float round_to_half(float f) {
  if (!round_16bit) return f;
  // GCC and Clang implement _Float16 conversions as IEEE binary16, round-to-nearest-even
  // (overflow to inf, subnormals kept).
  return static_cast<float>(static_cast<_Float16>(f));
}

inline float round_to_bfloat16(float f) {
  if (!round_16bit) return f;
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    bits |= 0x00400000u;  // NaN stays a (quiet) NaN: rounding could carry it into inf
  } else {
    bits += 0x7fffu + ((bits >> 16) & 1u);  // nearest, ties to even
  }
  bits &= 0xffff0000u;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace cuda_emulator
