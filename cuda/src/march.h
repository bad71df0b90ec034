// Occupancy-grid ray marching with instant-ngp's constant step (cone angle 0, the rule for bounded scenes).
// Step k of a ray spans [t_base + k dt, t_base + (k + 1) dt) with t_base = t_min + u dt, u in [0, 1);
// it is emitted when it ends by t_max and its midpoint lies in an occupied cell. Empty cells are
// skipped to one step before the ray leaves them, and every emitted step is tested with the same
// float expressions as the PyTorch twin (renderers/torch_ops.py: march_rays), so both emit the same samples.
#pragma once
#include "common.h"

namespace fields {

struct MarchStep {
  float dt;       // (float) step
  float half_dt;  // (float) (0.5 * step), rounded once as the twin does
  float inv_dt;
};

// Distance along the ray at which it leaves `cell` (only used to skip, never to emit samples).
FIELDS_HD float cell_exit(const OccupancyView& g, const float o[3], const float inv_d[3], const int cell[3]) {
  float t_exit = 3.0e38f;
  for (int a = 0; a < 3; ++a) {
    if (inv_d[a] == 0.0f) continue;
    float bound = g.lo[a] + (float)(cell[a] + (inv_d[a] > 0.0f ? 1 : 0)) * g.cell_size[a];
    float t = (bound - o[a]) * inv_d[a];
    t_exit = t < t_exit ? t : t_exit;
  }
  return t_exit;
}

// Marches one ray and calls emit(t_start, t_end) for each sample, in order; returns the count.
template <typename Emit>
FIELDS_HD int64_t march_ray(const OccupancyView& g, const float o[3], const float d[3], float t_min, float t_max,
                            float offset, const MarchStep& s, Emit emit) {
  float n_float = floorf((t_max - t_min) / s.dt - offset);
  int64_t n_steps = n_float > 0.0f ? (int64_t)n_float : 0;
  float t_base = t_min + offset * s.dt;
  float inv_d[3];
  for (int a = 0; a < 3; ++a) inv_d[a] = d[a] != 0.0f ? 1.0f / d[a] : 0.0f;
  int64_t count = 0;
  int64_t k = 0;
  while (k < n_steps) {
    float t0 = t_base + (float)k * s.dt;
    float tm = t0 + s.half_dt;
    float p[3] = {o[0] + tm * d[0], o[1] + tm * d[1], o[2] + tm * d[2]};
    int cell[3];
    grid_cell(g, p, cell);
    if (grid_occupied(g, cell)) {
      emit(t0, t0 + s.dt);
      ++count;
      ++k;
      continue;
    }
    // First step whose midpoint passes the cell's exit, less one step of margin against rounding.
    float k_exit = ceilf((cell_exit(g, o, inv_d, cell) - t_base) * s.inv_dt - 0.5f) - 1.0f;
    int64_t k_next = k_exit < (float)n_steps ? (int64_t)k_exit : n_steps;
    k = k_next > k + 1 ? k_next : k + 1;
  }
  return count;
}

}  // namespace fields
