// Emulated __nv_bfloat16 for the host CUDA emulation (see cuda_runtime.h): a float rounded
// to bfloat16 whenever one is made from a float (rounding_16bit.h), so the kernels' bf16
// paths are tested at bf16 precision.
#pragma once

#include "rounding_16bit.h"

struct __nv_bfloat16 {
  float value;
};
inline float __bfloat162float(__nv_bfloat16 h) { return h.value; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{cuda_emulator::round_to_bfloat16(f)}; }
