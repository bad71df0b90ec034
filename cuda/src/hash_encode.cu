#include <cuda_fp16.h>

#include "cuda_api.h"

namespace fields {
namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// One thread per (point, level): blockIdx.y is the level, so a block's lookups share one level's rows.
template <typename T>
__global__ void hash_encode_forward_kernel(const float* x, const T* table, HashLevels levels, int64_t n,
                                           int n_features, float* out) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int l = blockIdx.y;
  uint32_t rows[8];
  float w[8];
  hash_corners(x + 3 * i, levels.level[l], rows, w);
  float* dst = out + (i * levels.count + l) * n_features;
  for (int f = 0; f < n_features; ++f) {
    float acc = 0.0f;
    for (int c = 0; c < 8; ++c) acc += w[c] * to_float(table[(int64_t)rows[c] * n_features + f]);
    dst[f] = acc;
  }
}

__global__ void hash_encode_backward_kernel(const float* x, const float* grad_out, HashLevels levels, int64_t n,
                                            int n_features, float* grad_table) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int l = blockIdx.y;
  uint32_t rows[8];
  float w[8];
  hash_corners(x + 3 * i, levels.level[l], rows, w);
  const float* g = grad_out + (i * levels.count + l) * n_features;
  for (int c = 0; c < 8; ++c)
    for (int f = 0; f < n_features; ++f) atomicAdd(grad_table + (int64_t)rows[c] * n_features + f, w[c] * g[f]);
}

dim3 grid_for(int64_t n, int n_levels) { return dim3((unsigned)((n + kThreads - 1) / kThreads), n_levels); }

}  // namespace

void launch_hash_encode_forward(const float* x, const void* table, TableType type, const HashLevels& levels,
                                int64_t n, int n_features, float* out, cudaStream_t stream) {
  if (n == 0) return;
  if (type == TableType::kFloat16)
    hash_encode_forward_kernel<__half><<<grid_for(n, levels.count), kThreads, 0, stream>>>(
        x, static_cast<const __half*>(table), levels, n, n_features, out);
  else
    hash_encode_forward_kernel<float><<<grid_for(n, levels.count), kThreads, 0, stream>>>(
        x, static_cast<const float*>(table), levels, n, n_features, out);
}

void launch_hash_encode_backward(const float* x, const float* grad_out, const HashLevels& levels, int64_t n,
                                 int n_features, float* grad_table, cudaStream_t stream) {
  if (n == 0) return;
  hash_encode_backward_kernel<<<grid_for(n, levels.count), kThreads, 0, stream>>>(x, grad_out, levels, n, n_features,
                                                                                   grad_table);
}

}  // namespace fields
