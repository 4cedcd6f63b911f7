// Host/device qualifiers so the per-element math compiles under nvcc and under a
// plain C++ compiler (where the CPU build and ctest exercise it).
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define INFDIFF_HD __host__ __device__ __forceinline__
#else
#define INFDIFF_HD inline
#endif
