// Emulated __nv_bfloat16 for the host CUDA emulation (see cuda_runtime.h): enough to compile
// the kernels' 16-bit instantiations; values are kept in float (no 16-bit rounding).
#pragma once

struct __nv_bfloat16 {
  float value;
};
inline float __bfloat162float(__nv_bfloat16 h) { return h.value; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{f}; }
