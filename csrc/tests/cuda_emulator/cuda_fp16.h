// Emulated __half for the host CUDA emulation (see cuda_runtime.h): a float rounded to
// binary16 whenever one is made from a float (rounding_16bit.h), so the kernels' half
// paths are tested at half precision.
#pragma once

#include "rounding_16bit.h"

struct __half {
  float value;
};
inline float __half2float(__half h) { return h.value; }
inline __half __float2half_rn(float f) { return __half{cuda_emulator::round_to_half(f)}; }
