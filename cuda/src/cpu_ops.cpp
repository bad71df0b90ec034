// CPU build of the native kernels: ATen parallel_for over rays, points or levels, calling the
// per-item routines shared with the CUDA build. Declared in cpu_ops.h, bound to Python in cpu_binding.cpp.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "composite.h"
#include "cpu_ops.h"
#include "fused_mlp.h"
#include "hash_encode.h"
#include "march.h"
#include "plane_sample.h"
#include "spherical_harmonics.h"
#include "torch_views.h"
#include "vm_products.h"

namespace fields::cpu {

using fields::HashLevel;
using fields::OccupancyView;
using fields::hash_levels;
using fields::occupancy_view;

void check_cpu_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// Packed samples (ray_indices int64, t_starts, t_ends), sorted by ray. One traversal: blocks of rays
// march in parallel into their own buffers, which are then copied out in ray order.
// march_one(r, emit) marches ray r, calling emit(t0, t1) per sample.
template <typename MarchOne>
std::vector<at::Tensor> march_packed(int64_t n_rays, MarchOne march_one) {
  struct Block {
    std::vector<int64_t> rays;
    std::vector<float> t0, t1;
  };
  constexpr int64_t kBlockRays = 128;
  const int64_t n_blocks = (n_rays + kBlockRays - 1) / kBlockRays;
  std::vector<Block> blocks(n_blocks);
  at::parallel_for(0, n_blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      Block& block = blocks[b];
      for (int64_t r = b * kBlockRays; r < std::min(n_rays, (b + 1) * kBlockRays); ++r)
        march_one(r, [&](float t0, float t1) {
          block.rays.push_back(r);
          block.t0.push_back(t0);
          block.t1.push_back(t1);
        });
    }
  });
  std::vector<int64_t> start(n_blocks + 1, 0);
  for (int64_t b = 0; b < n_blocks; ++b) start[b + 1] = start[b] + (int64_t)blocks[b].rays.size();
  auto ray_indices = at::empty({start[n_blocks]}, at::kLong);
  auto t_starts = at::empty({start[n_blocks]}, at::kFloat);
  auto t_ends = at::empty({start[n_blocks]}, at::kFloat);
  at::parallel_for(0, n_blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      std::copy(blocks[b].rays.begin(), blocks[b].rays.end(), ray_indices.data_ptr<int64_t>() + start[b]);
      std::copy(blocks[b].t0.begin(), blocks[b].t0.end(), t_starts.data_ptr<float>() + start[b]);
      std::copy(blocks[b].t1.begin(), blocks[b].t1.end(), t_ends.data_ptr<float>() + start[b]);
    }
  });
  return {ray_indices, t_starts, t_ends};
}

// max_samples <= 0: no limit.
int64_t sample_limit(int64_t max_samples) { return max_samples > 0 ? max_samples : INT64_MAX; }

// Uniform steps from first_steps (R,) int64 on, at most max_samples per ray: packed samples and the steps
// (R,) int64 where the next round resumes.
std::vector<at::Tensor> march_rays(at::Tensor origins, at::Tensor directions, at::Tensor t_min,
                                      at::Tensor t_max, at::Tensor offsets, at::Tensor first_steps,
                                      at::Tensor binary, std::vector<at::Tensor> mips, at::Tensor aabb,
                                      double step, int64_t max_samples) {
  for (auto* t : {&origins, &directions, &t_min, &t_max, &offsets}) check_cpu_float(*t, "march_rays input");
  TORCH_CHECK(first_steps.scalar_type() == at::kLong && first_steps.is_contiguous() &&
                  first_steps.numel() == origins.size(0),
              "first_steps: int64, one per ray");
  TORCH_CHECK(binary.device().is_cpu(), "binary must be a CPU grid");
  const OccupancyView g = occupancy_view(binary, mips, aabb);
  const fields::MarchStep s{(float)step, (float)(0.5 * step), (float)(1.0 / step)};
  const float *o = origins.data_ptr<float>(), *d = directions.data_ptr<float>();
  const float *tmin = t_min.data_ptr<float>(), *tmax = t_max.data_ptr<float>(), *off = offsets.data_ptr<float>();
  const int64_t* first = first_steps.data_ptr<int64_t>();
  const int64_t limit = sample_limit(max_samples);
  auto next_steps = at::empty_like(first_steps);
  int64_t* next = next_steps.data_ptr<int64_t>();
  auto packed = march_packed(origins.size(0), [&](int64_t r, auto emit) {
    fields::march_ray(g, o + 3 * r, d + 3 * r, tmin[r], tmax[r], off[r], first[r], limit, s, emit, next + r);
  });
  packed.push_back(next_steps);
  return packed;
}

// The cone-step marcher over cascaded grids (unbounded scenes): binaries (K, X, Y, Z), aabbs (K, 6). Rays
// start at t_starts (R,), at most max_samples per ray: packed samples and the distances (R,) where the next
// round resumes.
std::vector<at::Tensor> march_rays_cascaded(at::Tensor origins, at::Tensor directions,
                                               at::Tensor t_starts, at::Tensor t_max, at::Tensor binaries,
                                               at::Tensor aabbs, double dt_min, double dt_max, double cone,
                                               int64_t max_samples) {
  for (auto* t : {&origins, &directions, &t_starts, &t_max}) check_cpu_float(*t, "march_rays input");
  TORCH_CHECK(binaries.device().is_cpu(), "binaries must be CPU grids");
  TORCH_CHECK(dt_min > 0 && dt_max >= dt_min, "steps must satisfy 0 < dt_min <= dt_max");
  const fields::CascadeView g = fields::cascade_view(binaries, aabbs);
  const fields::ConeStep s{(float)dt_min, (float)dt_max, (float)cone};
  const float *o = origins.data_ptr<float>(), *d = directions.data_ptr<float>();
  const float *start = t_starts.data_ptr<float>(), *tmax = t_max.data_ptr<float>();
  const int64_t limit = sample_limit(max_samples);
  auto t_next = at::empty_like(t_starts);
  float* next = t_next.data_ptr<float>();
  auto packed = march_packed(origins.size(0), [&](int64_t r, auto emit) {
    fields::march_ray_cascaded(g, o + 3 * r, d + 3 * r, start[r], tmax[r], limit, s, emit, next + r);
  });
  packed.push_back(t_next);
  return packed;
}

// (R + 1,) int64 offsets of ray-sorted ray indices (S,): the samples of ray r are [offsets[r], offsets[r + 1]).
at::Tensor sample_offsets(at::Tensor ray_indices, int64_t n_rays) {
  TORCH_CHECK(ray_indices.scalar_type() == at::kLong && ray_indices.is_contiguous(), "ray_indices: int64");
  const int64_t n = ray_indices.size(0);
  auto offsets = at::empty({n_rays + 1}, at::kLong);
  const int64_t* ri = ray_indices.data_ptr<int64_t>();
  int64_t* off = offsets.data_ptr<int64_t>();
  // Sample i starts rays (ri[i - 1], ri[i]]; the end fills the rays after the last sample.
  at::parallel_for(0, n + 1, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t prev = i == 0 ? -1 : ri[i - 1];
      const int64_t next = i == n ? n_rays : ri[i];
      for (int64_t r = prev + 1; r <= next; ++r) off[r] = i;
    }
  });
  return offsets;
}

// ray_offsets (R + 1,) int64: samples of ray r are [ray_offsets[r], ray_offsets[r + 1]).
std::vector<at::Tensor> composite_forward(at::Tensor sigmas, at::Tensor rgbs, at::Tensor t_starts,
                                             at::Tensor t_ends, at::Tensor ray_offsets, double eps) {
  for (auto* t : {&sigmas, &rgbs, &t_starts, &t_ends}) check_cpu_float(*t, "composite input");
  const int64_t n_rays = ray_offsets.size(0) - 1;
  auto rgb = at::empty({n_rays, 3}, at::kFloat);
  auto depth = at::empty({n_rays}, at::kFloat);
  auto opacity = at::empty({n_rays}, at::kFloat);
  auto weights = at::empty_like(sigmas);
  const int64_t* off = ray_offsets.data_ptr<int64_t>();
  at::parallel_for(0, n_rays, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      fields::composite_ray_forward<double>(sigmas.data_ptr<float>(), rgbs.data_ptr<float>(),
                                            t_starts.data_ptr<float>(), t_ends.data_ptr<float>(), off[r],
                                            off[r + 1], (float)eps, rgb.data_ptr<float>() + 3 * r,
                                            depth.data_ptr<float>() + r, opacity.data_ptr<float>() + r,
                                            weights.data_ptr<float>());
  });
  return {rgb, depth, opacity, weights};
}

// Gradients of sigmas and rgbs; rgb, depth, opacity are the forward outputs.
std::vector<at::Tensor> composite_backward(at::Tensor grad_rgb, at::Tensor grad_depth,
                                              at::Tensor grad_opacity, at::Tensor rgb, at::Tensor depth,
                                              at::Tensor opacity, at::Tensor sigmas, at::Tensor rgbs,
                                              at::Tensor t_starts, at::Tensor t_ends,
                                              at::Tensor ray_offsets, double eps) {
  for (auto* t : {&grad_rgb, &grad_depth, &grad_opacity, &rgb, &depth, &opacity})
    check_cpu_float(*t, "composite gradient");
  const int64_t n_rays = ray_offsets.size(0) - 1;
  auto grad_sigmas = at::empty_like(sigmas);
  auto grad_rgbs = at::empty_like(rgbs);
  const int64_t* off = ray_offsets.data_ptr<int64_t>();
  at::parallel_for(0, n_rays, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      fields::composite_ray_backward<double>(
          grad_rgb.data_ptr<float>() + 3 * r, grad_depth.data_ptr<float>()[r], grad_opacity.data_ptr<float>()[r],
          rgb.data_ptr<float>() + 3 * r, depth.data_ptr<float>()[r], opacity.data_ptr<float>()[r],
          sigmas.data_ptr<float>(), rgbs.data_ptr<float>(), t_starts.data_ptr<float>(), t_ends.data_ptr<float>(),
          off[r], off[r + 1], (float)eps, grad_sigmas.data_ptr<float>(), grad_rgbs.data_ptr<float>());
  });
  return {grad_sigmas, grad_rgbs};
}

// One round of early termination over ray-sorted samples; ray_offsets (R + 1) over all rays. Updates
// optical_depth (R,) float64 and alive (R,) bool in place; returns keep (S,) bool.
at::Tensor termination_round(at::Tensor sigmas, at::Tensor t_starts, at::Tensor t_ends,
                                at::Tensor ray_offsets, at::Tensor optical_depth, at::Tensor alive,
                                double eps) {
  for (auto* t : {&sigmas, &t_starts, &t_ends}) check_cpu_float(*t, "termination input");
  TORCH_CHECK(optical_depth.scalar_type() == at::kDouble && optical_depth.is_contiguous(),
              "optical_depth must be float64");
  TORCH_CHECK(alive.scalar_type() == at::kBool && alive.is_contiguous(), "alive must be bool");
  const int64_t n_rays = ray_offsets.size(0) - 1;
  auto keep = at::empty({sigmas.size(0)}, at::kBool);
  const int64_t* off = ray_offsets.data_ptr<int64_t>();
  double* depth = optical_depth.data_ptr<double>();
  bool* live = alive.data_ptr<bool>();
  at::parallel_for(0, n_rays, 512, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      if (off[r] == off[r + 1]) continue;
      depth[r] = fields::termination_round_ray(sigmas.data_ptr<float>(), t_starts.data_ptr<float>(),
                                               t_ends.data_ptr<float>(), off[r], off[r + 1], depth[r], (float)eps,
                                               keep.data_ptr<bool>());
      live[r] = live[r] && (float)std::exp(-depth[r]) >= (float)eps;
    }
  });
  return keep;
}

// Four floats as one vector (gcc/clang vector extension): a row of 4 or 8 features read and added as 16-byte
// vectors. Written as scalar loops, gcc vectorised a point's 8 corners into gathers, slow on Zen 3.
typedef float Float4 __attribute__((vector_size(16)));

inline Float4 load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Whether rows of F features (F: a compile-time count, 0 when known only at run time) are read as Float4s.
template <int F>
constexpr bool kVectorRows = F > 0 && F % 4 == 0;

// A level's points [lo, hi) in blocks of kHashBlock: the corners of the next block are computed, and on a hashed
// level their rows prefetched, while fn(i, rows, weights) runs on the current block's points, so that the misses
// of rows spread over megabytes overlap (dense levels fit in the caches). With rows read as 16-byte vectors
// (Float4), on a 2-core AVX2 EPYC: the forward pass 1.5x as fast as one point at a time, the backward 1.4x as
// fast as scalar rows (docs/kernels.md, ninth round). With scalar rows the blocked forward was slower: gcc turned
// a block's reads into gathers.
constexpr int kHashBlock = 16;

template <bool Dense, bool ForWrite, typename Fn>
void for_points_prefetched(const float* x, const HashLevel& level, int64_t lo, int64_t hi, const float* table,
                           int64_t row_floats, Fn fn) {
  uint32_t rows[2][kHashBlock * 8];
  float weights[2][kHashBlock * 8];
  auto prepare = [&](int64_t start, int buf) {
    const int count = (int)std::min<int64_t>(kHashBlock, hi - start);
    for (int j = 0; j < count; ++j)
      fields::hash_corners_of<Dense>(x + 3 * (start + j), level, rows[buf] + 8 * j, weights[buf] + 8 * j);
    if (!Dense)
      for (int j = 0; j < 8 * count; ++j) __builtin_prefetch(table + (int64_t)rows[buf][j] * row_floats, ForWrite);
  };
  if (hi <= lo) return;
  prepare(lo, 0);
  int buf = 0;
  for (int64_t start = lo; start < hi; start += kHashBlock, buf ^= 1) {
    if (start + kHashBlock < hi) prepare(start + kHashBlock, buf ^ 1);
    const int count = (int)std::min<int64_t>(kHashBlock, hi - start);
    for (int j = 0; j < count; ++j) fn(start + j, rows[buf] + 8 * j, weights[buf] + 8 * j);
  }
}

// One level of the encoding for points [lo, hi); F features per row (a compile-time constant where
// it is 1, 2, 4 or 8, so that the feature loops unroll; 0: n_feat at run time).
template <int F, bool Dense>
void encode_level(const float* x, const float* table, const HashLevel& level, int64_t lo, int64_t hi,
                  int64_t out_stride, int64_t n_feat, float* out) {
  const int64_t nf = F > 0 ? F : n_feat;
  for_points_prefetched<Dense, false>(x, level, lo, hi, table, nf, [&](int64_t i, const uint32_t* corner,
                                                                       const float* w) {
    float* dst = out + i * out_stride;
    if constexpr (kVectorRows<F>) {
      Float4 acc[F / 4] = {};
      for (int c = 0; c < 8; ++c)
        for (int q = 0; q < F / 4; ++q) acc[q] += w[c] * load4(table + (int64_t)corner[c] * F + 4 * q);
      std::memcpy(dst, acc, sizeof(acc));
    } else if constexpr (F > 0) {
      float acc[F] = {};
      for (int c = 0; c < 8; ++c)
        for (int f = 0; f < F; ++f) acc[f] += w[c] * table[(int64_t)corner[c] * F + f];
      for (int f = 0; f < F; ++f) dst[f] = acc[f];
    } else {
      for (int64_t f = 0; f < nf; ++f) dst[f] = 0.0f;
      for (int c = 0; c < 8; ++c)
        for (int64_t f = 0; f < nf; ++f) dst[f] += w[c] * table[(int64_t)corner[c] * nf + f];
    }
  });
}

// The gradient rows of one level from all n points (read-modify-write, rows prefetched for writing).
template <int F, bool Dense>
void accumulate_level(const float* x, const float* grad_out, const HashLevel& level, int64_t n, int64_t out_stride,
                      int64_t n_feat, float* grad_table) {
  const int64_t nf = F > 0 ? F : n_feat;
  for_points_prefetched<Dense, true>(x, level, 0, n, grad_table, nf, [&](int64_t i, const uint32_t* corner,
                                                                         const float* w) {
    const float* g = grad_out + i * out_stride;
    for (int c = 0; c < 8; ++c) {
      float* dst = grad_table + (int64_t)corner[c] * nf;
      if constexpr (kVectorRows<F>) {
        for (int q = 0; q < F / 4; ++q) {
          const Float4 sum = load4(dst + 4 * q) + w[c] * load4(g + 4 * q);
          std::memcpy(dst + 4 * q, &sum, sizeof(sum));
        }
      } else {
        for (int64_t f = 0; f < nf; ++f) dst[f] += w[c] * g[f];
      }
    }
  });
}

// fn(integral_constant F, bool_constant Dense) for the feature count and the level's kind.
template <typename Fn>
void with_level_shape(int64_t n_feat, bool dense, Fn fn) {
  auto with_kind = [&](auto f) {
    if (dense)
      fn(f, std::true_type{});
    else
      fn(f, std::false_type{});
  };
  switch (n_feat) {
    case 1: with_kind(std::integral_constant<int, 1>{}); break;
    case 2: with_kind(std::integral_constant<int, 2>{}); break;
    case 4: with_kind(std::integral_constant<int, 4>{}); break;
    case 8: with_kind(std::integral_constant<int, 8>{}); break;
    default: with_kind(std::integral_constant<int, 0>{});
  }
}

// x (N, 3) in [0, 1], table (rows, F) -> (N, L * F). Level-major: all points of a level together.
at::Tensor hash_encode_forward(at::Tensor x, at::Tensor table, at::Tensor scales,
                                  at::Tensor resolutions, at::Tensor rows, at::Tensor offsets,
                                  int64_t n_dense) {
  check_cpu_float(x, "x");
  check_cpu_float(table, "table");
  const auto levels = hash_levels(scales, resolutions, rows, offsets, n_dense);
  const int64_t n = x.size(0), n_levels = (int64_t)levels.size(), n_feat = table.size(1);
  auto out = at::empty({n, n_levels * n_feat}, at::kFloat);
  const float *xp = x.data_ptr<float>(), *tp = table.data_ptr<float>();
  float* op = out.data_ptr<float>();
  for (int64_t l = 0; l < n_levels; ++l)
    with_level_shape(n_feat, levels[l].dense, [&](auto f, auto dense) {
      at::parallel_for(0, n, 2048, [&](int64_t lo, int64_t hi) {
        encode_level<decltype(f)::value, decltype(dense)::value>(xp, tp, levels[l], lo, hi, n_levels * n_feat,
                                                                  n_feat, op + l * n_feat);
      });
    });
  return out;
}

// Gradient of the table (rows, F) from grad_out (N, L * F). Levels own disjoint rows, so threads take every
// T-th level (dense and hashed levels spread over the threads) and zero and add into its rows without atomics.
at::Tensor hash_encode_backward(at::Tensor grad_out, at::Tensor x, int64_t table_rows, int64_t n_feat,
                                   at::Tensor scales, at::Tensor resolutions, at::Tensor rows,
                                   at::Tensor offsets, int64_t n_dense) {
  check_cpu_float(grad_out, "grad_out");
  check_cpu_float(x, "x");
  const auto levels = hash_levels(scales, resolutions, rows, offsets, n_dense);
  const int64_t n = x.size(0), n_levels = (int64_t)levels.size();
  TORCH_CHECK(n_levels > 0 && (int64_t)levels.back().offset + levels.back().rows == table_rows,
              "the levels must cover the table's rows");
  auto grad_table = at::empty({table_rows, n_feat}, at::kFloat);
  const float *xp = x.data_ptr<float>(), *gp = grad_out.data_ptr<float>();
  float* tp = grad_table.data_ptr<float>();
  const int64_t n_tasks = std::min<int64_t>(at::get_num_threads(), n_levels);
  at::parallel_for(0, n_tasks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; ++task)
      for (int64_t l = task; l < n_levels; l += n_tasks) {
        std::fill_n(tp + (int64_t)levels[l].offset * n_feat, (int64_t)levels[l].rows * n_feat, 0.0f);
        with_level_shape(n_feat, levels[l].dense, [&](auto f, auto dense) {
          accumulate_level<decltype(f)::value, decltype(dense)::value>(xp, gp + l * n_feat, levels[l], n,
                                                                       n_levels * n_feat, n_feat, tp);
        });
      }
  });
  return grad_table;
}

// Planes (P, C, H, W) sampled at coords (P, N, 2) in [-1, 1] (u along W): (N, C) summed over the planes
// when sum_planes, else (P, N, C). Parallel over points.
at::Tensor plane_sample_forward(at::Tensor planes, at::Tensor coords, bool sum_planes) {
  check_cpu_float(planes, "planes");
  check_cpu_float(coords, "coords");
  const int64_t n_planes = planes.size(0), n_chan = planes.size(1), height = planes.size(2), width = planes.size(3);
  const int64_t n = coords.size(1), area = height * width;
  TORCH_CHECK(coords.size(0) == n_planes && coords.size(2) == 2, "coords must be (planes, N, 2)");
  auto out = sum_planes ? at::zeros({n, n_chan}, at::kFloat) : at::empty({n_planes, n, n_chan}, at::kFloat);
  const float *pp = planes.data_ptr<float>(), *cp = coords.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n, 1024, [&](int64_t lo, int64_t hi) {
    int64_t cells[4];
    float w[4];
    for (int64_t i = lo; i < hi; ++i)
      for (int64_t p = 0; p < n_planes; ++p) {
        const float* uv = cp + (p * n + i) * 2;
        fields::plane_corners(uv[0], uv[1], (int)height, (int)width, cells, w);
        const float* channel = pp + p * n_chan * area;
        float* dst = op + (sum_planes ? i : p * n + i) * n_chan;
        for (int64_t c = 0; c < n_chan; ++c, channel += area) {
          const float v = w[0] * channel[cells[0]] + w[1] * channel[cells[1]] + w[2] * channel[cells[2]] +
                          w[3] * channel[cells[3]];
          dst[c] = sum_planes ? dst[c] + v : v;
        }
      }
  });
  return out;
}

// Gradient of the planes (P, C, H, W) from grad_out ((N, C) when sum_planes, else (P, N, C)). Tasks own
// disjoint (plane, channel block) pairs, so they add without atomics.
at::Tensor plane_sample_backward(at::Tensor grad_out, at::Tensor coords, int64_t height, int64_t width,
                                    bool sum_planes) {
  check_cpu_float(grad_out, "grad_out");
  check_cpu_float(coords, "coords");
  const int64_t n_planes = coords.size(0), n = coords.size(1), n_chan = grad_out.size(-1), area = height * width;
  auto grad_planes = at::zeros({n_planes, n_chan, height, width}, at::kFloat);
  const int64_t wanted = 2 * (int64_t)at::get_num_threads();
  const int64_t blocks = std::min<int64_t>(n_chan, std::max<int64_t>(1, (wanted + n_planes - 1) / n_planes));
  const int64_t block = (n_chan + blocks - 1) / blocks, per_plane = (n_chan + block - 1) / block;
  const float *gp = grad_out.data_ptr<float>(), *cp = coords.data_ptr<float>();
  float* out = grad_planes.data_ptr<float>();
  at::parallel_for(0, n_planes * per_plane, 1, [&](int64_t lo, int64_t hi) {
    int64_t cells[4];
    float w[4];
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t p = task / per_plane, c0 = (task % per_plane) * block, c1 = std::min(n_chan, c0 + block);
      float* plane = out + p * n_chan * area;
      for (int64_t i = 0; i < n; ++i) {
        const float* uv = cp + (p * n + i) * 2;
        fields::plane_corners(uv[0], uv[1], (int)height, (int)width, cells, w);
        const float* g = gp + (sum_planes ? i : p * n + i) * n_chan;
        for (int64_t c = c0; c < c1; ++c) {
          float* channel = plane + c * area;
          for (int k = 0; k < 4; ++k) channel[cells[k]] += w[k] * g[c];
        }
      }
    }
  });
  return grad_planes;
}

// A TensoRF factor (1, C, H, W), float32 on the CPU, any strides.
fields::FactorView factor_view(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, name, " must be a float32 CPU tensor");
  TORCH_CHECK(t.dim() == 4 && t.size(0) == 1, name, " must be (1, C, H, W)");
  return {t.data_ptr<float>(), t.stride(1), t.stride(2), t.stride(3), (int)t.size(2), (int)t.size(3)};
}

struct VMFactors {
  fields::FactorView planes[3], lines[3];
  int64_t n_chan;
  bool channels_inner;  // every factor's channels adjacent (channels_last): the loops vectorise
};

VMFactors vm_factors(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines) {
  TORCH_CHECK(planes.size() == 3 && lines.size() == 3, "three planes and three lines");
  VMFactors f;
  f.n_chan = planes[0].size(1);
  f.channels_inner = true;
  for (int m = 0; m < 3; ++m) {
    TORCH_CHECK(planes[m].size(1) == f.n_chan && lines[m].size(1) == f.n_chan && lines[m].size(3) == 1,
                "planes (1, C, H, W) and lines (1, C, L, 1) of one channel count");
    f.planes[m] = factor_view(planes[m], "planes");
    f.lines[m] = factor_view(lines[m], "lines");
    f.channels_inner &= f.planes[m].channel_stride == 1 && f.lines[m].channel_stride == 1;
  }
  return f;
}

// Pair m's products at point i into out (C,), or their sum added to *sum when out is null. kInner: channel
// strides of 1 (known to the compiler, so the channel loop vectorises).
template <bool kInner>
void vm_pair_forward(const VMFactors& f, int m, const float* point, float* out, float* sum) {
  const fields::FactorView &plane = f.planes[m], &line = f.lines[m];
  const fields::PairCorners k = fields::pair_corners(plane, line, point, m);
  const int64_t cp = kInner ? 1 : plane.channel_stride, cl = kInner ? 1 : line.channel_stride;
  float total = 0.0f;
  for (int64_t c = 0; c < f.n_chan; ++c) {
    const float product = fields::plane_value(plane.data, k, c * cp) * fields::line_value(line.data, k, c * cl);
    if (out) out[c] = product;
    else total += product;
  }
  if (!out) *sum += total;
}

// TensoRF's VM products at points x (N, 3) in [-1, 1] (vm_products.h): (N, 3C), the pairs side by side, or
// with sum_products their sum over pairs and channels (N,). Parallel over points.
at::Tensor vm_products_forward(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                                  at::Tensor x, bool sum_products) {
  check_cpu_float(x, "x");
  TORCH_CHECK(x.dim() == 2 && x.size(1) == 3, "x must be (N, 3)");
  const VMFactors f = vm_factors(planes, lines);
  const int64_t n = x.size(0), width = 3 * f.n_chan;
  auto out = sum_products ? at::zeros({n}, at::kFloat) : at::empty({n, width}, at::kFloat);
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, n, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      for (int m = 0; m < 3; ++m) {
        float* dst = sum_products ? nullptr : op + i * width + m * f.n_chan;
        if (f.channels_inner) vm_pair_forward<true>(f, m, xp + 3 * i, dst, op + i);
        else vm_pair_forward<false>(f, m, xp + 3 * i, dst, op + i);
      }
  });
  return out;
}

// Pair m's plane and line gradients from grad_out, over all points. Per point, a chunk of channels' upstream
// gradients times the other factor first, then one add loop per corner (with channel strides of 1, every loop
// vectorises).
template <bool kInner>
void vm_pair_backward(const VMFactors& f, const VMFactors& grads, int m, const float* xp, const float* go, int64_t n,
                      bool sum_products) {
  constexpr int64_t kChunk = 64;
  const fields::FactorView &plane = f.planes[m], &line = f.lines[m];
  float *gplane = grads.planes[m].data, *gline = grads.lines[m].data;
  const int64_t cp = kInner ? 1 : plane.channel_stride, cl = kInner ? 1 : line.channel_stride;
  const int64_t n_chan = f.n_chan, width = 3 * n_chan;
  float to_plane[kChunk], to_line[kChunk];
  for (int64_t i = 0; i < n; ++i) {
    const fields::PairCorners k = fields::pair_corners(plane, line, xp + 3 * i, m);
    for (int64_t c0 = 0; c0 < n_chan; c0 += kChunk) {
      const int64_t nc = std::min(kChunk, n_chan - c0);
      for (int64_t q = 0; q < nc; ++q) {
        const int64_t c = c0 + q;
        const float grad = sum_products ? go[i] : go[i * width + m * n_chan + c];
        to_plane[q] = grad * fields::line_value(line.data, k, c * cl);
        to_line[q] = grad * fields::plane_value(plane.data, k, c * cp);
      }
      for (int j = 0; j < 4; ++j) {
        float* dst = gplane + c0 * cp + k.plane[j];
        const float w = k.plane_weight[j];
        for (int64_t q = 0; q < nc; ++q) dst[q * cp] += w * to_plane[q];
      }
      for (int j = 0; j < 2; ++j) {
        float* dst = gline + c0 * cl + k.line[j];
        const float w = k.line_weight[j];
        for (int64_t q = 0; q < nc; ++q) dst[q * cl] += w * to_line[q];
      }
    }
  }
}

// Gradients of the planes and lines (zeros_like each, so with their strides) from grad_out ((N,) with
// sum_products, else (N, 3C)). One task per pair, so they add without atomics: splitting a pair's channels
// between threads measured 2x slower (the halves share cache lines), private copies per thread no faster.
std::vector<at::Tensor> vm_products_backward(at::Tensor grad_out, const std::vector<at::Tensor>& planes,
                                                const std::vector<at::Tensor>& lines, at::Tensor x,
                                                bool sum_products) {
  check_cpu_float(grad_out, "grad_out");
  check_cpu_float(x, "x");
  const VMFactors f = vm_factors(planes, lines);
  std::vector<at::Tensor> grads;
  for (const auto& factors : {planes, lines})
    for (const auto& factor : factors) grads.push_back(at::zeros_like(factor));
  const VMFactors g = vm_factors({grads.begin(), grads.begin() + 3}, {grads.begin() + 3, grads.end()});
  const int64_t n = x.size(0);
  const float *xp = x.data_ptr<float>(), *go = grad_out.data_ptr<float>();
  at::parallel_for(0, 3, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) {
      if (f.channels_inner && g.channels_inner) vm_pair_backward<true>(f, g, (int)m, xp, go, n, sum_products);
      else vm_pair_backward<false>(f, g, (int)m, xp, go, n, sum_products);
    }
  });
  return grads;
}

// EMA update of occupancy values (cells,) at indices (M,) with fresh values (M,); returns the binary grid (cells,).
at::Tensor occupancy_update(at::Tensor occs, at::Tensor indices, at::Tensor values, double decay,
                               double threshold) {
  check_cpu_float(occs, "occs");
  check_cpu_float(values, "values");
  TORCH_CHECK(indices.scalar_type() == at::kLong && indices.is_contiguous(), "indices must be int64");
  const int64_t n_cells = occs.size(0), m = indices.size(0);
  float* occ = occs.data_ptr<float>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  const float* val = values.data_ptr<float>();
  std::vector<uint8_t> selected(n_cells, 0);
  for (int64_t i = 0; i < m; ++i) selected[idx[i]] = 1;
  at::parallel_for(0, n_cells, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c)
      if (selected[c]) occ[c] *= (float)decay;
  });
  for (int64_t i = 0; i < m; ++i) occ[idx[i]] = occ[idx[i]] > val[i] ? occ[idx[i]] : val[i];
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t c = 0; c < n_cells; ++c)
    if (occ[c] >= 0.0f) {
      sum += occ[c];
      ++count;
    }
  const float thre = (float)std::min(count ? sum / count : 0.0, threshold);
  auto binary = at::empty({n_cells}, at::kBool);
  bool* b = binary.data_ptr<bool>();
  at::parallel_for(0, n_cells, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) b[c] = occ[c] > thre;
  });
  return binary;
}

// Fused ReLU MLP (fused_mlp.h). weights[l]: nn.Linear's (out, in); biases: none, or one (out,) per layer;
// skip_layers: the layers whose input has x appended (their weights (out, in + n_in)); gamma and beta: empty, or
// CAM's modulation of the hidden layers (N, n_layers - 1). Returns {y (N, n_out)} and, when save_hidden, what
// mlp_backward takes: each hidden layer's (N, width) output after its ReLU, or before its modulation.
fields::mlp::Plan mlp_plan(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                           const std::vector<at::Tensor>& biases, const std::vector<int64_t>& skip_layers) {
  check_cpu_float(x, "mlp input");
  TORCH_CHECK(x.dim() == 2, "mlp input must be (N, n_in)");
  TORCH_CHECK(!weights.empty(), "mlp needs at least one weight");
  const std::vector<int> skips(skip_layers.begin(), skip_layers.end());
  for (int l : skips)
    TORCH_CHECK(l >= 1 && l < (int)weights.size(), "mlp skip layer ", l, " must be one of 1 .. n_layers - 1");
  std::vector<int> dims{(int)x.size(1)};
  for (const auto& w : weights) {
    check_cpu_float(w, "mlp weight");
    const int l = (int)dims.size() - 1;
    const int n_in = dims.back() + (std::find(skips.begin(), skips.end(), l) != skips.end() ? dims[0] : 0);
    TORCH_CHECK(w.dim() == 2 && w.size(1) == n_in, "mlp weight ", l, " must be (out, ", n_in, "), got ", w.sizes());
    dims.push_back((int)w.size(0));
  }
  TORCH_CHECK(biases.empty() || biases.size() == weights.size(), "mlp biases: none or one per layer");
  for (size_t l = 0; l < biases.size(); ++l) {
    check_cpu_float(biases[l], "mlp bias");
    TORCH_CHECK(biases[l].dim() == 1 && biases[l].size(0) == dims[l + 1], "mlp bias ", l, " must be (", dims[l + 1],
                "), got ", biases[l].sizes());
  }
  return fields::mlp::Plan(dims, !biases.empty(), skips);
}

// CAM's modulation from gamma and beta (both empty: none), checked against x (N, .) and the plan's hidden layers.
std::optional<fields::mlp::Modulation> mlp_modulation(const fields::mlp::Plan& plan, const at::Tensor& x,
                                                      const at::Tensor& gamma, const at::Tensor& beta) {
  if (gamma.numel() == 0 && beta.numel() == 0) return std::nullopt;
  for (const auto* t : {&gamma, &beta}) {
    check_cpu_float(*t, "mlp modulation");
    TORCH_CHECK(t->sizes() == at::IntArrayRef({x.size(0), plan.n_layers() - 1}),
                "mlp gamma and beta must be (N, n_layers - 1) = (", x.size(0), ", ", plan.n_layers() - 1, "), got ",
                t->sizes());
  }
  fields::mlp::Modulation mod;
  mod.gamma = gamma.data_ptr<float>(), mod.beta = beta.data_ptr<float>();
  return mod;
}

std::vector<float*> float_pointers(std::vector<at::Tensor>& tensors) {
  std::vector<float*> pointers;
  for (auto& t : tensors) pointers.push_back(t.data_ptr<float>());
  return pointers;
}

std::vector<at::Tensor> packed_weights(const fields::mlp::Plan& plan, const std::vector<at::Tensor>& weights,
                                          const std::vector<at::Tensor>& biases) {
  std::vector<const float*> w, b;
  for (const auto& t : weights) w.push_back(t.data_ptr<float>());
  for (const auto& t : biases) b.push_back(t.data_ptr<float>());
  auto forward_w = at::empty({plan.weight_floats}, at::kFloat);
  auto backward_w = at::empty({plan.weight_floats}, at::kFloat);
  fields::mlp::pack_weights(plan, w.data(), b.data(), forward_w.data_ptr<float>(), backward_w.data_ptr<float>());
  return {forward_w, backward_w};
}

std::vector<at::Tensor> mlp_forward(at::Tensor x, std::vector<at::Tensor> weights,
                                       std::vector<at::Tensor> biases, bool save_hidden, std::string isa_name,
                                       std::vector<int64_t> skip_layers, at::Tensor gamma, at::Tensor beta) {
  const auto plan = mlp_plan(x, weights, biases, skip_layers);
  const auto mod = mlp_modulation(plan, x, gamma, beta);
  const auto isa = fields::mlp::choose_isa(isa_name);  // an unknown name: ValueError
  const int64_t n = x.size(0), n_blocks = (n + fields::mlp::kBlockRows - 1) / fields::mlp::kBlockRows;
  const auto packed = packed_weights(plan, weights, biases);
  const float* forward_w = packed[0].data_ptr<float>();
  std::vector<at::Tensor> out{at::empty({n, plan.dims.back()}, at::kFloat)};
  for (int l = 1; save_hidden && l < plan.n_layers(); ++l) out.push_back(at::empty({n, plan.dims[l]}, at::kFloat));
  auto hidden = float_pointers(out);
  const float* xp = x.data_ptr<float>();
  at::parallel_for(0, n_blocks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> scratch(plan.scratch_floats());
    fields::mlp::forward_rows(isa, plan, forward_w, xp, lo * fields::mlp::kBlockRows,
                              std::min(n, hi * fields::mlp::kBlockRows), hidden[0],
                              save_hidden ? hidden.data() + 1 : nullptr, scratch.data(), mod ? &*mod : nullptr);
  });
  return out;
}

// {grad_x (empty unless need_grad_x), grad_weights..., grad_biases..., then with a modulation grad_gamma and
// grad_beta} from grad_y (N, n_out) and mlp_forward's saved state. Row blocks are split into one contiguous chunk
// per thread, each with its own weight-gradient sums. grad_x_from: grad_x's leading columns that no gradient flows
// to (an SH basis of directions without gradients) are zero, not computed (see fused_mlp.h).
std::vector<at::Tensor> mlp_backward(at::Tensor grad_y, at::Tensor x, std::vector<at::Tensor> hidden,
                                        std::vector<at::Tensor> weights, std::vector<at::Tensor> biases,
                                        bool need_grad_x, std::string isa_name, std::vector<int64_t> skip_layers,
                                        at::Tensor gamma, at::Tensor beta, int64_t grad_x_from) {
  const auto plan = mlp_plan(x, weights, biases, skip_layers);
  auto mod = mlp_modulation(plan, x, gamma, beta);
  at::Tensor grad_gamma, grad_beta;
  if (mod) {
    grad_gamma = at::empty_like(gamma), grad_beta = at::empty_like(beta);
    mod->grad_gamma = grad_gamma.data_ptr<float>(), mod->grad_beta = grad_beta.data_ptr<float>();
  }
  const auto isa = fields::mlp::choose_isa(isa_name);  // an unknown name: ValueError
  check_cpu_float(grad_y, "mlp grad_y");
  TORCH_CHECK((int)hidden.size() == plan.n_layers() - 1, "mlp_backward needs mlp_forward's hidden activations");
  for (int l = 0; l + 1 < plan.n_layers(); ++l) {
    check_cpu_float(hidden[l], "mlp hidden activation");
    TORCH_CHECK(hidden[l].sizes() == at::IntArrayRef({x.size(0), plan.dims[l + 1]}), "mlp hidden ", l, " shape");
  }
  const int64_t n = x.size(0), n_blocks = (n + fields::mlp::kBlockRows - 1) / fields::mlp::kBlockRows;
  TORCH_CHECK(grad_y.sizes() == at::IntArrayRef({n, plan.dims.back()}), "mlp grad_y must be (N, n_out)");
  auto packed = packed_weights(plan, weights, biases);
  const int64_t n_chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n_blocks));
  auto grad_w_chunks = at::zeros({n_chunks, plan.weight_floats}, at::kFloat);
  auto grad_x = need_grad_x ? at::empty_like(x) : at::Tensor();
  std::vector<const float*> h;
  for (const auto& t : hidden) h.push_back(t.data_ptr<float>());
  at::parallel_for(0, n_chunks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> scratch(plan.scratch_floats());
    for (int64_t c = lo; c < hi; ++c)
      fields::mlp::backward_rows(isa, plan, packed[1].data_ptr<float>(), grad_y.data_ptr<float>(),
                                 x.data_ptr<float>(), h.data(), std::min(n, c * n_blocks / n_chunks * fields::mlp::kBlockRows),
                                 std::min(n, (c + 1) * n_blocks / n_chunks * fields::mlp::kBlockRows),
                                 need_grad_x ? grad_x.data_ptr<float>() : nullptr, grad_w_chunks[c].data_ptr<float>(),
                                 scratch.data(), mod ? &*mod : nullptr, (int)grad_x_from);
  });
  std::vector<at::Tensor> out{need_grad_x ? grad_x : at::empty({0}, at::kFloat)};
  for (const auto& w : weights) out.push_back(at::empty_like(w));
  for (const auto& b : biases) out.push_back(at::empty_like(b));
  std::vector<const float*> chunks;
  for (int64_t c = 0; c < n_chunks; ++c) chunks.push_back(grad_w_chunks[c].data_ptr<float>());
  auto grads = float_pointers(out);
  fields::mlp::add_weight_grads(plan, chunks.data(), (int)n_chunks, grads.data() + 1,
                                grads.data() + 1 + weights.size());
  if (mod) out.insert(out.end(), {grad_gamma, grad_beta});
  return out;
}

std::vector<std::string> mlp_isas() { return fields::mlp::supported_isas(); }

// A colour network's input (N, degree^2 + F): the SH basis of unit directions (N, 3), then features (N, F); one
// pass instead of PyTorch's dozens of column operations and a concatenation.
at::Tensor view_inputs(at::Tensor directions, at::Tensor features, int64_t degree) {
  check_cpu_float(directions, "directions");
  check_cpu_float(features, "features");
  TORCH_CHECK(directions.dim() == 2 && directions.size(1) == 3, "directions must be (N, 3)");
  TORCH_CHECK(features.dim() == 2 && features.size(0) == directions.size(0), "features must be (N, F)");
  TORCH_CHECK(degree >= 1 && degree <= 4, "spherical harmonics degree must be in 1..4");
  const int64_t n = directions.size(0), n_features = features.size(1), n_basis = degree * degree;
  const int64_t width = n_basis + n_features;
  auto out = at::empty({n, width}, directions.options());
  const float* d = directions.data_ptr<float>();
  const float* f = features.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, n, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float* row = o + i * width;
      fields::sh_basis(d[3 * i], d[3 * i + 1], d[3 * i + 2], (int)degree, row);
      std::copy(f + i * n_features, f + (i + 1) * n_features, row + n_basis);
    }
  });
  return out;
}

}  // namespace fields::cpu
