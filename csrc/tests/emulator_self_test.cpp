// The host CUDA emulation (csrc/tests/cuda_emulator) itself: the semantics the kernel tests
// rely on. Shared memory is per block and a barrier really waits for the whole block;
// blocks never overlap; atomics do not lose updates; a barrier the block does not reach
// as a whole, and an impossible launch configuration, are reported, not hung on.
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

namespace {

constexpr int kBlock = 64;

// Each thread writes its slot, then reads its neighbour's: wrong without a real barrier.
__global__ void rotate_kernel(int32_t* out) {
  __shared__ int32_t slots[kBlock];
  slots[threadIdx.x] = static_cast<int32_t>(blockIdx.x * kBlock + threadIdx.x);
  __syncthreads();
  out[blockIdx.x * kBlock + threadIdx.x] = slots[(threadIdx.x + 1) % kBlock];
}

// A block's shared value must survive until every thread of that block has read it.
__global__ void block_owner_kernel(int32_t* out) {
  __shared__ int32_t owner;
  if (threadIdx.x == 0) owner = static_cast<int32_t>(blockIdx.x);
  __syncthreads();
  out[blockIdx.x * kBlock + threadIdx.x] = owner;
}

__global__ void count_kernel(int64_t* total, double* sum) {
  atomicAdd(total, int64_t(1));
  atomicAdd(sum, 0.5);
}

// Threads past `live` leave before the barrier the others wait at.
__global__ void early_exit_kernel(int live, int32_t* out) {
  if (static_cast<int>(threadIdx.x) >= live) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

void test_barrier_and_shared_memory() {
  const int blocks = 3;
  std::vector<int32_t> out(blocks * kBlock, -1);
  cuda_emulator::launch(rotate_kernel, dim3(blocks), dim3(kBlock))(out.data());
  CHECK_EQ(cudaGetLastError(), cudaSuccess);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < kBlock; ++t) CHECK_EQ(out[b * kBlock + t], b * kBlock + (t + 1) % kBlock);

  cuda_emulator::launch(block_owner_kernel, dim3(blocks), dim3(kBlock))(out.data());
  CHECK_EQ(cudaGetLastError(), cudaSuccess);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < kBlock; ++t) CHECK_EQ(out[b * kBlock + t], b);
}

void test_atomics_lose_nothing() {
  int64_t total = 0;
  double sum = 0;
  cuda_emulator::launch(count_kernel, dim3(4, 2), dim3(32, 4))(&total, &sum);
  CHECK_EQ(cudaGetLastError(), cudaSuccess);
  CHECK_EQ(total, 4 * 2 * 32 * 4);
  CHECK_EQ(sum, 0.5 * 4 * 2 * 32 * 4);
}

void test_misuse_is_reported() {
  std::vector<int32_t> out(kBlock, 0);
  // Every thread reaches the barrier: fine.
  cuda_emulator::launch(early_exit_kernel, dim3(2), dim3(kBlock))(kBlock, out.data());
  CHECK_EQ(cudaGetLastError(), cudaSuccess);
  // Half the block leaves first: reported (a GPU may hang or run on with stale data).
  cuda_emulator::launch(early_exit_kernel, dim3(2), dim3(kBlock))(kBlock / 2, out.data());
  CHECK_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  CHECK_EQ(cudaGetLastError(), cudaSuccess);  // reading the error clears it, as in CUDA
  // No thread at all, or more than a block may hold.
  cuda_emulator::launch(count_kernel, dim3(1), dim3(0))(nullptr, nullptr);
  CHECK_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  cuda_emulator::launch(count_kernel, dim3(1), dim3(1025))(nullptr, nullptr);
  CHECK_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
}

// 16-bit values round to nearest, ties to even, at their own precision (11 significant bits
// for half, 8 for bfloat16), as a GPU's conversions do.
void test_16bit_rounding() {
  const float h = 1.0f / 2048, b = 1.0f / 256;  // half an ulp at 1.0 of each type
  CHECK_EQ(__half2float(__float2half_rn(1.0f + h)), 1.0f);                 // tie: to even (down)
  CHECK_EQ(__half2float(__float2half_rn(1.0f + 3 * h)), 1.0f + 4 * h);     // tie: to even (up)
  CHECK_EQ(__half2float(__float2half_rn(1.0f + 1.5f * h)), 1.0f + 2 * h);  // nearest
  CHECK_EQ(__half2float(__float2half_rn(65520.0f)), INFINITY);             // past the largest half
  CHECK_EQ(__bfloat162float(__float2bfloat16_rn(1.0f + b)), 1.0f);
  CHECK_EQ(__bfloat162float(__float2bfloat16_rn(1.0f + 3 * b)), 1.0f + 4 * b);
  CHECK_EQ(__bfloat162float(__float2bfloat16_rn(-1.0f - 1.5f * b)), -1.0f - 2 * b);
  CHECK(std::isnan(__bfloat162float(__float2bfloat16_rn(NAN))));
  cuda_emulator::round_16bit = false;  // the mode off: values kept whole
  CHECK_EQ(__half2float(__float2half_rn(1.0f + h)), 1.0f + h);
  cuda_emulator::round_16bit = true;
}

}  // namespace

int main() {
  test_16bit_rounding();
  test_barrier_and_shared_memory();
  test_atomics_lose_nothing();
  test_misuse_is_reported();
  return infdiff_test::finish("emulator_self_test");
}
