// Host emulation of the small part of the CUDA runtime the torch-free kernels use, so the
// C++ tests can run the CUDA kernel code on a machine without a GPU (one std::thread per
// CUDA thread, one block at a time, std::barrier for __syncthreads;
// every thread must reach each __syncthreads, i.e. no early return before one). For tests only: slow,
// and blind to GPU-only faults (races across blocks, memory model, occupancy).
#pragma once

#include <barrier>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
using cudaStream_t = void*;

namespace cuda_emulator {
inline thread_local dim3 thread_idx, block_idx, block_dim, grid_dim;
inline thread_local std::barrier<>* block_barrier = nullptr;
inline cudaError_t last_error = cudaSuccess;
inline std::mutex atomic_mutex;
constexpr size_t kDynamicSharedBytes = 64 * 1024;
alignas(16) inline unsigned char dynamic_shared[kDynamicSharedBytes];

// Runs kernel(args...) over the grid, block by block, with one std::thread per thread.
template <typename Kernel>
struct Launch {
  Kernel kernel;
  dim3 grid, block;
  size_t shared_bytes;
  template <typename... Args>
  void operator()(Args... args) const {
    const unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || shared_bytes > kDynamicSharedBytes || grid.y > 65535 ||
        grid.z > 65535 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
      last_error = cudaErrorInvalidConfiguration;
      return;
    }
    // One worker per CUDA thread for the whole launch; a barrier after each block keeps
    // the block's shared memory (function statics here) from being reused too early.
    std::barrier<> barrier(threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        thread_idx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
        block_dim = block;
        grid_dim = grid;
        block_barrier = &barrier;
        for (unsigned bz = 0; bz < grid.z; ++bz)
          for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
              block_idx = dim3(bx, by, bz);
              kernel(args...);
              barrier.arrive_and_wait();
            }
      });
    for (auto& th : pool) th.join();
  }
};

template <typename Kernel>
Launch<Kernel> launch(Kernel kernel, dim3 grid, dim3 block, size_t shared_bytes = 0,
                      cudaStream_t = nullptr) {
  return Launch<Kernel>{kernel, grid, block, shared_bytes};
}
}  // namespace cuda_emulator

#define threadIdx (::cuda_emulator::thread_idx)
#define blockIdx (::cuda_emulator::block_idx)
#define blockDim (::cuda_emulator::block_dim)
#define gridDim (::cuda_emulator::grid_dim)

inline void __syncthreads() { cuda_emulator::block_barrier->arrive_and_wait(); }

template <typename T>
T atomicAdd(T* address, T value) {
  std::lock_guard<std::mutex> lock(cuda_emulator::atomic_mutex);
  const T old = *address;
  *address = old + value;
  return old;
}

inline cudaError_t cudaGetLastError() {
  const cudaError_t err = cuda_emulator::last_error;
  cuda_emulator::last_error = cudaSuccess;
  return err;
}
