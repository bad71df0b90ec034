#include "cuda_api.h"

namespace fields {
namespace {

constexpr int kThreads = 256;

__global__ void mark_kernel(const int64_t* indices, int64_t m, uint8_t* selected) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < m) selected[indices[i]] = 1;
}

__global__ void decay_kernel(float* occs, const uint8_t* selected, int64_t n_cells, float decay) {
  int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (c < n_cells && selected[c]) occs[c] *= decay;
}

// Fresh values are optical thicknesses (>= 0): their bit patterns order like ints, and a cell's
// value (>= 0, or -1 for never-seen cells) is replaced by any larger one.
__global__ void max_kernel(float* occs, const int64_t* indices, const float* values, int64_t m) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < m) atomicMax(reinterpret_cast<int*>(occs + indices[i]), __float_as_int(fmaxf(values[i], 0.0f)));
}

unsigned blocks(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

}  // namespace

void launch_occupancy_ema(float* occs, uint8_t* selected, const int64_t* indices, const float* values, int64_t m,
                          int64_t n_cells, float decay, cudaStream_t stream) {
  if (m == 0) return;
  mark_kernel<<<blocks(m), kThreads, 0, stream>>>(indices, m, selected);
  decay_kernel<<<blocks(n_cells), kThreads, 0, stream>>>(occs, selected, n_cells, decay);
  max_kernel<<<blocks(m), kThreads, 0, stream>>>(occs, indices, values, m);
}

}  // namespace fields
