// Emulated __half for the host CUDA emulation (see cuda_runtime.h): enough to compile the
// kernels' 16-bit instantiations; values are kept in float (no 16-bit rounding).
#pragma once

struct __half {
  float value;
};
inline float __half2float(__half h) { return h.value; }
inline __half __float2half_rn(float f) { return __half{f}; }
