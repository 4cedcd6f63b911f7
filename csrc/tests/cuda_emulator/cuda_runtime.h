// Host emulation of the small part of the CUDA runtime the torch-free kernels use, so the
// C++ tests run the CUDA kernel code on a machine without a GPU. CMake rewrites each
// `kernel<<<grid, block, smem, stream>>>(args)` of a .cu file into
// `::cuda_emulator::launch(kernel, grid, block, smem, stream)(args)` and each
// `extern __shared__` array into the emulator's dynamic shared buffer.
//
// Execution model: the blocks of a launch run one after another; the threads of a block run
// concurrently, one std::thread each, so __syncthreads is a real barrier and shared memory
// (function statics, one copy per kernel instantiation) is shared by the block as on a GPU.
// Barrier misuse that a GPU may hang on or silently mis-run is reported as a launch failure
// by cudaGetLastError instead: a thread that leaves the kernel while others wait at
// __syncthreads, or reaches __syncthreads after another thread of its block has left.
// For tests only: slow, and blind to GPU-only faults (races across blocks, which never run
// together here; the memory model; occupancy and register limits).
#pragma once

#include <barrier>
#include <cmath>
#include <condition_variable>
#include <cstdint>
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

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
using cudaStream_t = void*;

namespace cuda_emulator {

// __syncthreads of one block. Threads that have left the kernel are counted, so a barrier
// reached by only part of the block is detected rather than waited on forever.
class BlockBarrier {
 public:
  void reset(unsigned threads) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_ = threads;
    waiting_ = 0;
    exited_ = false;
  }
  // false when the block misuses the barrier (the caller records the launch failure).
  bool sync() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (exited_) return false;
    const uint64_t generation = generation_;
    if (++waiting_ == live_) {
      release();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
    return !broken_generation(generation);
  }
  // Called when a thread returns from the kernel; false when others are waiting for it.
  bool exit() {
    std::lock_guard<std::mutex> lock(mutex_);
    exited_ = true;
    --live_;
    if (waiting_ == 0) return true;
    broken_ = generation_;
    release();
    return false;
  }

 private:
  void release() {
    waiting_ = 0;
    ++generation_;
    cv_.notify_all();
  }
  bool broken_generation(uint64_t generation) const { return broken_ == generation; }
  std::mutex mutex_;
  std::condition_variable cv_;
  unsigned live_ = 0, waiting_ = 0;
  uint64_t generation_ = 0, broken_ = UINT64_MAX;
  bool exited_ = false;
};

inline thread_local dim3 thread_idx, block_idx, block_dim, grid_dim;
inline thread_local BlockBarrier* block_barrier = nullptr;
inline std::mutex error_mutex;
inline cudaError_t last_error = cudaSuccess;
inline std::mutex atomic_mutex;
constexpr size_t kDynamicSharedBytes = 64 * 1024;
alignas(16) inline unsigned char dynamic_shared[kDynamicSharedBytes];

inline void record_error(cudaError_t err) {
  std::lock_guard<std::mutex> lock(error_mutex);
  if (last_error == cudaSuccess) last_error = err;
}

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
      record_error(cudaErrorInvalidConfiguration);
      return;
    }
    // One worker per CUDA thread for the whole launch. Every worker meets the others at
    // the end of each block, so no thread starts the next block (and reuses the block's
    // shared memory) before the last one has finished this one.
    BlockBarrier sync_barrier;
    sync_barrier.reset(threads);
    std::barrier block_end(static_cast<std::ptrdiff_t>(threads),
                           [&]() noexcept { sync_barrier.reset(threads); });
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        thread_idx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
        block_dim = block;
        grid_dim = grid;
        block_barrier = &sync_barrier;
        for (unsigned bz = 0; bz < grid.z; ++bz)
          for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
              block_idx = dim3(bx, by, bz);
              kernel(args...);
              if (!sync_barrier.exit()) record_error(cudaErrorLaunchFailure);
              block_end.arrive_and_wait();
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

inline void __syncthreads() {
  if (!cuda_emulator::block_barrier->sync()) cuda_emulator::record_error(cudaErrorLaunchFailure);
}

// Every atomic of every thread goes through one lock: the read-modify-write is indivisible,
// as on the GPU, and the order of the additions is whatever the threads' order is.
template <typename T>
T atomicAdd(T* address, T value) {
  std::lock_guard<std::mutex> lock(cuda_emulator::atomic_mutex);
  const T old = *address;
  *address = old + value;
  return old;
}

// CUDA's device-side overloads of min / max and sincospi, which kernels call unqualified.
template <typename T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
T max(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
void sincospi(T x, T* s, T* c) {
  const double phi = 3.14159265358979323846 * static_cast<double>(x);
  *s = static_cast<T>(std::sin(phi));
  *c = static_cast<T>(std::cos(phi));
}

inline cudaError_t cudaGetLastError() {
  std::lock_guard<std::mutex> lock(cuda_emulator::error_mutex);
  const cudaError_t err = cuda_emulator::last_error;
  cuda_emulator::last_error = cudaSuccess;
  return err;
}
