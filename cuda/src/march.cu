#include "cuda_api.h"

namespace fields {
namespace {

constexpr int kThreads = 128;

struct CountOnly {
  __device__ void operator()(float, float) const {}
};

struct WriteSamples {
  int64_t ray;
  int64_t* cursor;
  int64_t* ray_indices;
  float* t_starts;
  float* t_ends;
  __device__ void operator()(float t0, float t1) const {
    int64_t at = (*cursor)++;
    ray_indices[at] = ray;
    t_starts[at] = t0;
    t_ends[at] = t1;
  }
};

__global__ void march_count_kernel(OccupancyView grid, const float* origins, const float* directions,
                                   const float* t_min, const float* t_max, const float* offsets, MarchStep step,
                                   int64_t n_rays, int64_t* counts) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  counts[r] = march_ray(grid, origins + 3 * r, directions + 3 * r, t_min[r], t_max[r], offsets[r], step, CountOnly{});
}

__global__ void march_fill_kernel(OccupancyView grid, const float* origins, const float* directions,
                                  const float* t_min, const float* t_max, const float* offsets, MarchStep step,
                                  int64_t n_rays, const int64_t* sample_offsets, int64_t* ray_indices,
                                  float* t_starts, float* t_ends) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  int64_t cursor = sample_offsets[r];
  march_ray(grid, origins + 3 * r, directions + 3 * r, t_min[r], t_max[r], offsets[r], step,
            WriteSamples{r, &cursor, ray_indices, t_starts, t_ends});
}

unsigned blocks(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

}  // namespace

void launch_march_count(const OccupancyView& grid, const float* origins, const float* directions, const float* t_min,
                        const float* t_max, const float* offsets, MarchStep step, int64_t n_rays, int64_t* counts,
                        cudaStream_t stream) {
  if (n_rays == 0) return;
  march_count_kernel<<<blocks(n_rays), kThreads, 0, stream>>>(grid, origins, directions, t_min, t_max, offsets, step,
                                                              n_rays, counts);
}

void launch_march_fill(const OccupancyView& grid, const float* origins, const float* directions, const float* t_min,
                       const float* t_max, const float* offsets, MarchStep step, int64_t n_rays,
                       const int64_t* sample_offsets, int64_t* ray_indices, float* t_starts, float* t_ends,
                       cudaStream_t stream) {
  if (n_rays == 0) return;
  march_fill_kernel<<<blocks(n_rays), kThreads, 0, stream>>>(grid, origins, directions, t_min, t_max, offsets, step,
                                                             n_rays, sample_offsets, ray_indices, t_starts, t_ends);
}

}  // namespace fields
