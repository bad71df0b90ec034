#include "composite.h"
#include "cuda_api.h"

namespace fields {
namespace {

constexpr int kThreads = 128;

__global__ void composite_forward_kernel(const float* sigmas, const float* rgbs, const float* t_starts,
                                         const float* t_ends, const int64_t* ray_offsets, int64_t n_rays, float eps,
                                         float* rgb, float* depth, float* opacity, float* weights) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  composite_ray_forward<float>(sigmas, rgbs, t_starts, t_ends, ray_offsets[r], ray_offsets[r + 1], eps, rgb + 3 * r,
                               depth + r, opacity + r, weights);
}

__global__ void composite_backward_kernel(const float* grad_rgb, const float* grad_depth, const float* grad_opacity,
                                          const float* rgb, const float* depth, const float* opacity,
                                          const float* sigmas, const float* rgbs, const float* t_starts,
                                          const float* t_ends, const int64_t* ray_offsets, int64_t n_rays, float eps,
                                          float* grad_sigmas, float* grad_rgbs) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  composite_ray_backward<float>(grad_rgb + 3 * r, grad_depth[r], grad_opacity[r], rgb + 3 * r, depth[r], opacity[r],
                                sigmas, rgbs, t_starts, t_ends,
                                ray_offsets[r], ray_offsets[r + 1], eps, grad_sigmas, grad_rgbs);
}

__global__ void termination_round_kernel(const float* sigmas, const float* t_starts, const float* t_ends,
                                         const int64_t* ray_offsets, int64_t n_rays, float eps,
                                         double* optical_depth, bool* alive, bool* keep) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= n_rays || ray_offsets[r] == ray_offsets[r + 1]) return;
  double depth = termination_round_ray(sigmas, t_starts, t_ends, ray_offsets[r], ray_offsets[r + 1],
                                       optical_depth[r], eps, keep);
  optical_depth[r] = depth;
  alive[r] = alive[r] && (float)exp(-depth) >= eps;
}

// Sample i starts the rays (ray_indices[i - 1], ray_indices[i]]; i == n fills the rays after the last one.
__global__ void sample_offsets_kernel(const int64_t* ray_indices, int64_t n, int64_t n_rays, int64_t* offsets) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i > n) return;
  const int64_t prev = i == 0 ? -1 : ray_indices[i - 1];
  const int64_t next = i == n ? n_rays : ray_indices[i];
  for (int64_t r = prev + 1; r <= next; ++r) offsets[r] = i;
}

unsigned blocks(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

}  // namespace

void launch_sample_offsets(const int64_t* ray_indices, int64_t n, int64_t n_rays, int64_t* offsets,
                           cudaStream_t stream) {
  sample_offsets_kernel<<<blocks(n + 1), kThreads, 0, stream>>>(ray_indices, n, n_rays, offsets);
}

void launch_composite_forward(const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                              const int64_t* ray_offsets, int64_t n_rays, float eps, float* rgb, float* depth,
                              float* opacity, float* weights, cudaStream_t stream) {
  if (n_rays == 0) return;
  composite_forward_kernel<<<blocks(n_rays), kThreads, 0, stream>>>(sigmas, rgbs, t_starts, t_ends, ray_offsets,
                                                                    n_rays, eps, rgb, depth, opacity, weights);
}

void launch_composite_backward(const float* grad_rgb, const float* grad_depth, const float* grad_opacity,
                               const float* rgb, const float* depth, const float* opacity, const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                               const int64_t* ray_offsets, int64_t n_rays, float eps, float* grad_sigmas,
                               float* grad_rgbs, cudaStream_t stream) {
  if (n_rays == 0) return;
  composite_backward_kernel<<<blocks(n_rays), kThreads, 0, stream>>>(grad_rgb, grad_depth, grad_opacity, rgb, depth,
                                                                     opacity, sigmas, rgbs,
                                                                     t_starts, t_ends, ray_offsets, n_rays, eps,
                                                                     grad_sigmas, grad_rgbs);
}

void launch_termination_round(const float* sigmas, const float* t_starts, const float* t_ends,
                              const int64_t* ray_offsets, int64_t n_rays, float eps, double* optical_depth,
                              bool* alive, bool* keep, cudaStream_t stream) {
  if (n_rays == 0) return;
  termination_round_kernel<<<blocks(n_rays), kThreads, 0, stream>>>(sigmas, t_starts, t_ends, ray_offsets, n_rays,
                                                                     eps, optical_depth, alive, keep);
}

}  // namespace fields
