// Occupancy-grid ray marching. march_ray: instant-ngp's constant step (cone angle 0, the rule for bounded
// scenes). march_ray_cascaded: its cone step over cascaded grids (unbounded scenes), further below.
// Step k of a ray spans [t_base + k dt, t_base + (k + 1) dt) with t_base = t_min + u dt, u in [0, 1);
// it is emitted when it ends by t_max and its midpoint lies in an occupied cell. Empty space is skipped
// through a pyramid of coarser grids, and steps are tested with the same float expressions as the PyTorch
// twin (renderers/torch_ops.py: march_rays), so both emit the same samples.
// Both marchers march in rounds: a call emits at most max_samples samples of a ray and returns where the
// next call resumes (a step index, or a distance), so that samples behind an opaque surface are never marched.
#pragma once
#include "common.h"

namespace fields {

struct MarchStep {
  float dt;       // (float) step
  float half_dt;  // (float) (0.5 * step), rounded once as the twin does
  float inv_dt;
};

// Distance along the ray at which it leaves the level-`level` ancestor of `cell` (2^level fine cells wide);
// only used to skip or to bound runs, with a step of margin, never to decide a sample by itself.
FIELDS_HD float cell_exit(const OccupancyView& g, const float o[3], const float inv_d[3], const int cell[3],
                          int level) {
  float t_exit = 3.0e38f;
  for (int a = 0; a < 3; ++a) {
    if (inv_d[a] == 0.0f) continue;
    float size = g.cell_size[a] * (float)(1 << level);
    float bound = g.lo[a] + (float)((cell[a] >> level) + (inv_d[a] > 0.0f ? 1 : 0)) * size;
    float t = (bound - o[a]) * inv_d[a];
    t_exit = t < t_exit ? t : t_exit;
  }
  return t_exit;
}

// The cell (clamped into the grid) of the midpoint of step k, t_base + (k + 1/2) dt: one expression for every test.
FIELDS_HD void step_cell(const OccupancyView& g, const float o[3], const float d[3], float t_base, int64_t k,
                         const MarchStep& s, int cell[3]) {
  float tm = (t_base + (float)k * s.dt) + s.half_dt;
  float p[3] = {o[0] + tm * d[0], o[1] + tm * d[1], o[2] + tm * d[2]};
  grid_cell(g, p, cell);
}

// Marches one ray from step first_step on and calls emit(t_start, t_end) for each sample, in order, until
// max_samples were emitted; returns the count and sets *next_step to the step after the last one emitted
// (the number of steps when the ray ended first).
// A step is tested like the twin tests it; once one is inside an occupied cell, the steps after it
// whose midpoints lie at least a step before the cell's exit are inside too and are emitted untested.
// From an empty cell the ray jumps to one step before the exit of its largest empty ancestor, and past that
// step too when its midpoint lies in the same ancestor (half the jumps: it is then empty without a full test).
template <typename Emit>
FIELDS_HD int64_t march_ray(const OccupancyView& g, const float o[3], const float d[3], float t_min, float t_max,
                            float offset, int64_t first_step, int64_t max_samples, const MarchStep& s, Emit emit,
                            int64_t* next_step) {
  float n_float = floorf((t_max - t_min) / s.dt - offset);
  int64_t n_steps = n_float > 0.0f ? (int64_t)n_float : 0;
  float t_base = t_min + offset * s.dt;
  float inv_d[3];
  for (int a = 0; a < 3; ++a) inv_d[a] = d[a] != 0.0f ? 1.0f / d[a] : 0.0f;
  int64_t count = 0;
  int64_t k = first_step < n_steps ? first_step : n_steps;
  while (k < n_steps && count < max_samples) {
    float t0 = t_base + (float)k * s.dt;
    int cell[3];
    step_cell(g, o, d, t_base, k, s, cell);
    if (grid_occupied(g, cell)) {
      float k_safe = floorf((cell_exit(g, o, inv_d, cell, 0) - t_base) * s.inv_dt - 0.5f) - 1.0f;
      int64_t k_last = k_safe < (float)(n_steps - 1) ? (int64_t)k_safe : n_steps - 1;
      emit(t0, t0 + s.dt);
      ++count;
      for (++k; k <= k_last && count < max_samples; ++k) {
        float t = t_base + (float)k * s.dt;
        emit(t, t + s.dt);
        ++count;
      }
      continue;
    }
    int level = 0;
    while (level < g.n_mips && !ancestor_occupied(g, cell, level + 1)) ++level;
    float k_exit = ceilf((cell_exit(g, o, inv_d, cell, level) - t_base) * s.inv_dt - 0.5f) - 1.0f;
    int64_t k_next = k_exit < (float)n_steps ? (int64_t)k_exit : n_steps;
    if (k_next > k && k_next < n_steps) {
      int next[3];
      step_cell(g, o, d, t_base, k_next, s, next);
      bool same = true;
      for (int a = 0; a < 3; ++a) same = same && (next[a] >> level) == (cell[a] >> level);
      k_next += same ? 1 : 0;
    }
    k = k_next > k + 1 ? k_next : k + 1;
  }
  *next_step = count < max_samples ? n_steps : k;
  return count;
}

// Cascaded occupancy grids (unbounded scenes): level k spans the inner box enlarged 2^k times about its
// centre, all levels with the same resolution; a point reads the finest level whose box holds it.
constexpr int kMaxCascades = 8;

struct CascadeView {
  const uint8_t* cells;  // (levels, X, Y, Z), x-major within a level
  int levels;
  int res[3];
  float lo[kMaxCascades][3];
  float hi[kMaxCascades][3];
  float scale[kMaxCascades][3];  // res / (hi - lo), in float as the twin computes it
};

// instant-ngp's cone step: dt = clamp(t * cone, dt_min, dt_max).
struct ConeStep {
  float dt_min;
  float dt_max;
  float cone;
};

FIELDS_HD bool cascade_occupied(const CascadeView& g, const float p[3]) {
  int level = g.levels - 1;
  for (int k = 0; k < g.levels - 1; ++k) {
    bool inside = true;
    for (int a = 0; a < 3; ++a) inside = inside && p[a] >= g.lo[k][a] && p[a] <= g.hi[k][a];
    if (inside) {
      level = k;
      break;
    }
  }
  int cell[3];
  for (int a = 0; a < 3; ++a) {
    long long c = (long long)((p[a] - g.lo[level][a]) * g.scale[level][a]);
    c = c < 0 ? 0 : c;
    c = c > g.res[a] - 1 ? g.res[a] - 1 : c;
    cell[a] = (int)c;
  }
  const int64_t per_level = (int64_t)g.res[0] * g.res[1] * g.res[2];
  return g.cells[level * per_level + ((int64_t)cell[0] * g.res[1] + cell[1]) * g.res[2] + cell[2]] != 0;
}

// Marches one ray with the cone step from t_start on and calls emit(t_start, t_end) for each sample whose
// midpoint lies in an occupied cell, until max_samples were emitted; returns the count and sets *t_next to
// the end of the last one emitted (t_max when the ray ended first). A step is kept only when it ends by
// t_max. Same float expressions as the twin (torch_ops.march_rays_cascaded).
template <typename Emit>
FIELDS_HD int64_t march_ray_cascaded(const CascadeView& g, const float o[3], const float d[3], float t_start,
                                     float t_max, int64_t max_samples, const ConeStep& s, Emit emit, float* t_next) {
  float t = t_start;
  int64_t count = 0;
  while (count < max_samples) {
    const float dt = fminf(fmaxf(t * s.cone, s.dt_min), s.dt_max);
    const float t_end = t + dt;
    if (!(t_end <= t_max)) break;
    const float tm = t + 0.5f * dt;
    const float p[3] = {o[0] + tm * d[0], o[1] + tm * d[1], o[2] + tm * d[2]};
    if (cascade_occupied(g, p)) {
      emit(t, t_end);
      ++count;
    }
    t = t_end;
  }
  *t_next = count < max_samples ? t_max : t;
  return count;
}

}  // namespace fields
