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

// The two marchers of march.h behind one call shape, so that one pair of kernels serves both. Resume: the
// type of where a ray's next round starts.
struct UniformMarch {
  using Resume = int64_t;
  OccupancyView grid;
  MarchStep step;
  template <typename Emit>
  __device__ int64_t operator()(const RayBatch& rays, int64_t r, Emit emit, Resume* next) const {
    return march_ray(grid, rays.origins + 3 * r, rays.directions + 3 * r, rays.t_min[r], rays.t_max[r],
                     rays.offsets[r], rays.first_steps[r], rays.max_samples, step, emit, next);
  }
};

struct CascadedMarch {
  using Resume = float;
  CascadeView grid;
  ConeStep step;
  template <typename Emit>
  __device__ int64_t operator()(const RayBatch& rays, int64_t r, Emit emit, Resume* next) const {
    return march_ray_cascaded(grid, rays.origins + 3 * r, rays.directions + 3 * r, rays.t_min[r], rays.t_max[r],
                              rays.max_samples, step, emit, next);
  }
};

template <typename March>
__global__ void march_count_kernel(March march, RayBatch rays, int64_t* counts, typename March::Resume* next) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= rays.n_rays) return;
  counts[r] = march(rays, r, CountOnly{}, next + r);
}

template <typename March>
__global__ void march_fill_kernel(March march, RayBatch rays, const int64_t* sample_offsets, int64_t* ray_indices,
                                  float* t_starts, float* t_ends) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= rays.n_rays) return;
  int64_t cursor = sample_offsets[r];
  typename March::Resume unused;
  march(rays, r, WriteSamples{r, &cursor, ray_indices, t_starts, t_ends}, &unused);
}

unsigned blocks(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

template <typename March>
void count(const March& march, const RayBatch& rays, int64_t* counts, typename March::Resume* next,
           cudaStream_t stream) {
  if (rays.n_rays == 0) return;
  march_count_kernel<<<blocks(rays.n_rays), kThreads, 0, stream>>>(march, rays, counts, next);
}

template <typename March>
void fill(const March& march, const RayBatch& rays, const int64_t* sample_offsets, int64_t* ray_indices,
          float* t_starts, float* t_ends, cudaStream_t stream) {
  if (rays.n_rays == 0) return;
  march_fill_kernel<<<blocks(rays.n_rays), kThreads, 0, stream>>>(march, rays, sample_offsets, ray_indices, t_starts,
                                                                  t_ends);
}

}  // namespace

void launch_march_count(const OccupancyView& grid, MarchStep step, const RayBatch& rays, int64_t* counts,
                        int64_t* next_steps, cudaStream_t stream) {
  count(UniformMarch{grid, step}, rays, counts, next_steps, stream);
}

void launch_march_fill(const OccupancyView& grid, MarchStep step, const RayBatch& rays,
                       const int64_t* sample_offsets, int64_t* ray_indices, float* t_starts, float* t_ends,
                       cudaStream_t stream) {
  fill(UniformMarch{grid, step}, rays, sample_offsets, ray_indices, t_starts, t_ends, stream);
}

void launch_march_cascaded_count(const CascadeView& grid, ConeStep step, const RayBatch& rays, int64_t* counts,
                                 float* t_next, cudaStream_t stream) {
  count(CascadedMarch{grid, step}, rays, counts, t_next, stream);
}

void launch_march_cascaded_fill(const CascadeView& grid, ConeStep step, const RayBatch& rays,
                                const int64_t* sample_offsets, int64_t* ray_indices, float* t_starts, float* t_ends,
                                cudaStream_t stream) {
  fill(CascadedMarch{grid, step}, rays, sample_offsets, ray_indices, t_starts, t_ends, stream);
}

}  // namespace fields
