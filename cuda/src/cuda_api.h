// Launchers of the CUDA kernels: raw device pointers and a stream, no torch, so each .cu compiles with
// plain nvcc in about a second. cuda_ops.cpp binds them to tensors.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "hash_encode.h"
#include "march.h"

namespace fields {

constexpr int kMaxHashLevels = 32;
struct HashLevels {
  HashLevel level[kMaxHashLevels];
  int count;
};

enum class TableType { kFloat32, kFloat16 };

// Rays to march: origins, directions (n_rays, 3); t_min, t_max (n_rays,); for the constant step, offsets
// (n_rays,) and the steps first_steps (n_rays,) the round starts from; for the cone step, t_min is where it
// starts. At most max_samples samples per ray.
struct RayBatch {
  const float* origins;
  const float* directions;
  const float* t_min;
  const float* t_max;
  const float* offsets;
  const int64_t* first_steps;
  int64_t max_samples;
  int64_t n_rays;
};

// Pass 1: samples per ray (n_rays,) and where each ray's next round resumes. Pass 2: fills the samples of
// ray r from sample_offsets[r] on.
// Constant step through one grid (bounded scenes), resuming at step next_steps (n_rays,):
void launch_march_count(const OccupancyView& grid, MarchStep step, const RayBatch& rays, int64_t* counts,
                        int64_t* next_steps, cudaStream_t stream);
void launch_march_fill(const OccupancyView& grid, MarchStep step, const RayBatch& rays,
                       const int64_t* sample_offsets, int64_t* ray_indices, float* t_starts, float* t_ends,
                       cudaStream_t stream);
// Cone step through cascaded grids (unbounded scenes), resuming at distance t_next (n_rays,):
void launch_march_cascaded_count(const CascadeView& grid, ConeStep step, const RayBatch& rays, int64_t* counts,
                                 float* t_next, cudaStream_t stream);
void launch_march_cascaded_fill(const CascadeView& grid, ConeStep step, const RayBatch& rays,
                                const int64_t* sample_offsets, int64_t* ray_indices, float* t_starts, float* t_ends,
                                cudaStream_t stream);

// offsets (n_rays + 1) of ray-sorted ray_indices (n): the samples of ray r are [offsets[r], offsets[r + 1]).
void launch_sample_offsets(const int64_t* ray_indices, int64_t n, int64_t n_rays, int64_t* offsets,
                           cudaStream_t stream);

// ray_offsets (n_rays + 1): the samples of ray r are [ray_offsets[r], ray_offsets[r + 1]).
void launch_composite_forward(const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                              const int64_t* ray_offsets, int64_t n_rays, float eps, float* rgb, float* depth,
                              float* opacity, float* weights, cudaStream_t stream);
// rgb, depth, opacity: the forward outputs.
void launch_composite_backward(const float* grad_rgb, const float* grad_depth, const float* grad_opacity,
                               const float* rgb, const float* depth, const float* opacity, const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                               const int64_t* ray_offsets, int64_t n_rays, float eps, float* grad_sigmas,
                               float* grad_rgbs, cudaStream_t stream);

// One round of early termination; updates optical_depth (n_rays) and alive (n_rays) in place.
void launch_termination_round(const float* sigmas, const float* t_starts, const float* t_ends,
                              const int64_t* ray_offsets, int64_t n_rays, float eps, double* optical_depth,
                              bool* alive, bool* keep, cudaStream_t stream);

// x (n, 3) in [0, 1]; table (rows, n_features) of float or half; out (n, levels * n_features) float.
void launch_hash_encode_forward(const float* x, const void* table, TableType type, const HashLevels& levels,
                                int64_t n, int n_features, float* out, cudaStream_t stream);
// grad_table (rows, n_features) float, zeroed by the caller; atomics add every point's share.
void launch_hash_encode_backward(const float* x, const float* grad_out, const HashLevels& levels, int64_t n,
                                 int n_features, float* grad_table, cudaStream_t stream);

// planes (n_planes, n_chan, height, width), coords (n_planes, n, 2) in [-1, 1]; out (n, n_chan) summed over
// the planes when sum_planes, else (n_planes, n, n_chan).
void launch_plane_sample_forward(const float* planes, const float* coords, int64_t n, int n_planes, int n_chan,
                                 int height, int width, bool sum_planes, float* out, cudaStream_t stream);
// grad_planes zeroed by the caller; atomics add every point's share.
void launch_plane_sample_backward(const float* grad_out, const float* coords, int64_t n, int n_planes, int n_chan,
                                  int height, int width, bool sum_planes, float* grad_planes, cudaStream_t stream);

// EMA step on occs (n_cells): mark the selected cells, decay each once, then max in the values.
void launch_occupancy_ema(float* occs, uint8_t* selected, const int64_t* indices, const float* values, int64_t m,
                          int64_t n_cells, float decay, cudaStream_t stream);

}  // namespace fields
