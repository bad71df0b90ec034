// Thin torch binding of the CUDA launchers (cuda_api.h): checks, allocation, streams. Same entry points and
// semantics as the CPU build (cpu_ops.cpp), so Python treats both alike.
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda_api.h"
#include "torch_binding.h"
#include "torch_views.h"

namespace {

using fields::HashLevels;
using fields::OccupancyView;
using fields::occupancy_view;

void check_cuda_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }

int64_t sample_limit(int64_t max_samples) { return max_samples > 0 ? max_samples : INT64_MAX; }

// Count, allocate, fill: packed samples (ray_indices int64, t_starts, t_ends), sorted by ray, and where each
// ray's next round resumes (`next`, filled by the count pass).
template <typename Count, typename Fill>
std::vector<at::Tensor> march_packed(const at::Tensor& origins, at::Tensor next, Count count, Fill fill) {
  const int64_t n_rays = origins.size(0);
  auto counts = at::empty({n_rays}, origins.options().dtype(at::kLong));
  count(counts.data_ptr<int64_t>());
  auto inclusive = at::cumsum(counts, 0);
  const int64_t total = n_rays ? inclusive[-1].item<int64_t>() : 0;
  auto starts = (inclusive - counts).contiguous();
  auto ray_indices = at::empty({total}, counts.options());
  auto t_starts = at::empty({total}, origins.options());
  auto t_ends = at::empty({total}, origins.options());
  fill(starts.data_ptr<int64_t>(), ray_indices.data_ptr<int64_t>(), t_starts.data_ptr<float>(),
       t_ends.data_ptr<float>());
  return {ray_indices, t_starts, t_ends, next};
}

std::vector<at::Tensor> march_rays(at::Tensor origins, at::Tensor directions, at::Tensor t_min,
                                      at::Tensor t_max, at::Tensor offsets, at::Tensor first_steps,
                                      at::Tensor binary, std::vector<at::Tensor> mips, at::Tensor aabb,
                                      double step, int64_t max_samples) {
  for (auto* t : {&origins, &directions, &t_min, &t_max, &offsets}) check_cuda_float(*t, "march_rays input");
  TORCH_CHECK(first_steps.is_cuda() && first_steps.scalar_type() == at::kLong && first_steps.is_contiguous() &&
                  first_steps.numel() == origins.size(0),
              "first_steps: int64 on the GPU, one per ray");
  TORCH_CHECK(binary.is_cuda(), "binary must be a CUDA grid");
  const fields::RayBatch rays{origins.data_ptr<float>(), directions.data_ptr<float>(), t_min.data_ptr<float>(),
                              t_max.data_ptr<float>(), offsets.data_ptr<float>(), first_steps.data_ptr<int64_t>(),
                              sample_limit(max_samples), origins.size(0)};
  const OccupancyView g = occupancy_view(binary, mips, aabb);
  const fields::MarchStep s{(float)step, (float)(0.5 * step), (float)(1.0 / step)};
  auto next_steps = at::empty_like(first_steps);
  return march_packed(
      origins, next_steps,
      [&](int64_t* counts) {
        fields::launch_march_count(g, s, rays, counts, next_steps.data_ptr<int64_t>(), stream());
      },
      [&](const int64_t* starts, int64_t* rays_out, float* t0, float* t1) {
        fields::launch_march_fill(g, s, rays, starts, rays_out, t0, t1, stream());
      });
}

std::vector<at::Tensor> march_rays_cascaded(at::Tensor origins, at::Tensor directions,
                                               at::Tensor t_starts, at::Tensor t_max, at::Tensor binaries,
                                               at::Tensor aabbs, double dt_min, double dt_max, double cone,
                                               int64_t max_samples) {
  for (auto* t : {&origins, &directions, &t_starts, &t_max}) check_cuda_float(*t, "march_rays input");
  TORCH_CHECK(binaries.is_cuda(), "binaries must be CUDA grids");
  TORCH_CHECK(dt_min > 0 && dt_max >= dt_min, "steps must satisfy 0 < dt_min <= dt_max");
  const fields::RayBatch rays{origins.data_ptr<float>(), directions.data_ptr<float>(), t_starts.data_ptr<float>(),
                              t_max.data_ptr<float>(), nullptr, nullptr, sample_limit(max_samples),
                              origins.size(0)};
  const fields::CascadeView g = fields::cascade_view(binaries, aabbs);
  const fields::ConeStep s{(float)dt_min, (float)dt_max, (float)cone};
  auto t_next = at::empty_like(t_starts);
  return march_packed(
      origins, t_next,
      [&](int64_t* counts) {
        fields::launch_march_cascaded_count(g, s, rays, counts, t_next.data_ptr<float>(), stream());
      },
      [&](const int64_t* starts, int64_t* rays_out, float* t0, float* t1) {
        fields::launch_march_cascaded_fill(g, s, rays, starts, rays_out, t0, t1, stream());
      });
}

at::Tensor sample_offsets(at::Tensor ray_indices, int64_t n_rays) {
  TORCH_CHECK(ray_indices.is_cuda() && ray_indices.scalar_type() == at::kLong && ray_indices.is_contiguous(),
              "ray_indices: contiguous int64 on the GPU");
  auto offsets = at::empty({n_rays + 1}, ray_indices.options());
  fields::launch_sample_offsets(ray_indices.data_ptr<int64_t>(), ray_indices.size(0), n_rays,
                                offsets.data_ptr<int64_t>(), stream());
  return offsets;
}

std::vector<at::Tensor> composite_forward(at::Tensor sigmas, at::Tensor rgbs, at::Tensor t_starts,
                                             at::Tensor t_ends, at::Tensor ray_offsets, double eps) {
  for (auto* t : {&sigmas, &rgbs, &t_starts, &t_ends}) check_cuda_float(*t, "composite input");
  const int64_t n_rays = ray_offsets.size(0) - 1;
  auto rgb = at::empty({n_rays, 3}, sigmas.options());
  auto depth = at::empty({n_rays}, sigmas.options());
  auto opacity = at::empty({n_rays}, sigmas.options());
  auto weights = at::empty_like(sigmas);
  fields::launch_composite_forward(sigmas.data_ptr<float>(), rgbs.data_ptr<float>(), t_starts.data_ptr<float>(),
                                   t_ends.data_ptr<float>(), ray_offsets.data_ptr<int64_t>(), n_rays, (float)eps,
                                   rgb.data_ptr<float>(), depth.data_ptr<float>(), opacity.data_ptr<float>(),
                                   weights.data_ptr<float>(), stream());
  return {rgb, depth, opacity, weights};
}

std::vector<at::Tensor> composite_backward(at::Tensor grad_rgb, at::Tensor grad_depth,
                                              at::Tensor grad_opacity, at::Tensor rgb, at::Tensor depth,
                                              at::Tensor opacity, at::Tensor sigmas, at::Tensor rgbs,
                                              at::Tensor t_starts, at::Tensor t_ends,
                                              at::Tensor ray_offsets, double eps) {
  for (auto* t : {&grad_rgb, &grad_depth, &grad_opacity, &rgb, &depth, &opacity})
    check_cuda_float(*t, "composite gradient");
  const int64_t n_rays = ray_offsets.size(0) - 1;
  auto grad_sigmas = at::empty_like(sigmas);
  auto grad_rgbs = at::empty_like(rgbs);
  fields::launch_composite_backward(grad_rgb.data_ptr<float>(), grad_depth.data_ptr<float>(),
                                    grad_opacity.data_ptr<float>(), rgb.data_ptr<float>(), depth.data_ptr<float>(),
                                    opacity.data_ptr<float>(), sigmas.data_ptr<float>(), rgbs.data_ptr<float>(),
                                    t_starts.data_ptr<float>(), t_ends.data_ptr<float>(),
                                    ray_offsets.data_ptr<int64_t>(), n_rays, (float)eps,
                                    grad_sigmas.data_ptr<float>(), grad_rgbs.data_ptr<float>(), stream());
  return {grad_sigmas, grad_rgbs};
}

at::Tensor termination_round(at::Tensor sigmas, at::Tensor t_starts, at::Tensor t_ends,
                                at::Tensor ray_offsets, at::Tensor optical_depth, at::Tensor alive,
                                double eps) {
  for (auto* t : {&sigmas, &t_starts, &t_ends}) check_cuda_float(*t, "termination input");
  TORCH_CHECK(optical_depth.is_cuda() && optical_depth.scalar_type() == at::kDouble, "optical_depth: float64");
  TORCH_CHECK(alive.is_cuda() && alive.scalar_type() == at::kBool, "alive: bool");
  auto keep = at::empty({sigmas.size(0)}, sigmas.options().dtype(at::kBool));
  fields::launch_termination_round(sigmas.data_ptr<float>(), t_starts.data_ptr<float>(), t_ends.data_ptr<float>(),
                                   ray_offsets.data_ptr<int64_t>(), ray_offsets.size(0) - 1, (float)eps,
                                   optical_depth.data_ptr<double>(), alive.data_ptr<bool>(), keep.data_ptr<bool>(),
                                   stream());
  return keep;
}

HashLevels hash_levels_struct(const at::Tensor& scales, const at::Tensor& resolutions,
                              const at::Tensor& rows, const at::Tensor& offsets, int64_t n_dense) {
  TORCH_CHECK(scales.size(0) <= fields::kMaxHashLevels, "at most ", fields::kMaxHashLevels, " hash levels");
  const auto list = fields::hash_levels(scales, resolutions, rows, offsets, n_dense);
  HashLevels levels;
  levels.count = (int)list.size();
  std::copy(list.begin(), list.end(), levels.level);
  return levels;
}

// The table may be float32 or float16 (the half-precision option); the output is float32.
at::Tensor hash_encode_forward(at::Tensor x, at::Tensor table, at::Tensor scales,
                                  at::Tensor resolutions, at::Tensor rows, at::Tensor offsets,
                                  int64_t n_dense) {
  check_cuda_float(x, "x");
  TORCH_CHECK(table.is_cuda() && table.is_contiguous(), "table must be a contiguous CUDA tensor");
  TORCH_CHECK(table.scalar_type() == at::kFloat || table.scalar_type() == at::kHalf,
              "table must be float32 or float16");
  const HashLevels levels = hash_levels_struct(scales, resolutions, rows, offsets, n_dense);
  const int64_t n = x.size(0);
  const int n_feat = (int)table.size(1);
  auto out = at::empty({n, levels.count * n_feat}, x.options());
  auto type = table.scalar_type() == at::kHalf ? fields::TableType::kFloat16 : fields::TableType::kFloat32;
  fields::launch_hash_encode_forward(x.data_ptr<float>(), table.data_ptr(), type, levels, n, n_feat,
                                     out.data_ptr<float>(), stream());
  return out;
}

at::Tensor hash_encode_backward(at::Tensor grad_out, at::Tensor x, int64_t table_rows, int64_t n_feat,
                                   at::Tensor scales, at::Tensor resolutions, at::Tensor rows,
                                   at::Tensor offsets, int64_t n_dense) {
  check_cuda_float(grad_out, "grad_out");
  check_cuda_float(x, "x");
  const HashLevels levels = hash_levels_struct(scales, resolutions, rows, offsets, n_dense);
  auto grad_table = at::zeros({table_rows, n_feat}, x.options());
  fields::launch_hash_encode_backward(x.data_ptr<float>(), grad_out.data_ptr<float>(), levels, x.size(0), (int)n_feat,
                                      grad_table.data_ptr<float>(), stream());
  return grad_table;
}

at::Tensor plane_sample_forward(at::Tensor planes, at::Tensor coords, bool sum_planes) {
  check_cuda_float(planes, "planes");
  check_cuda_float(coords, "coords");
  const int64_t n_planes = planes.size(0), n_chan = planes.size(1), n = coords.size(1);
  TORCH_CHECK(coords.size(0) == n_planes && coords.size(2) == 2, "coords must be (planes, N, 2)");
  auto out = sum_planes ? at::empty({n, n_chan}, planes.options()) : at::empty({n_planes, n, n_chan}, planes.options());
  fields::launch_plane_sample_forward(planes.data_ptr<float>(), coords.data_ptr<float>(), n, (int)n_planes, (int)n_chan,
                                      (int)planes.size(2), (int)planes.size(3), sum_planes, out.data_ptr<float>(),
                                      stream());
  return out;
}

at::Tensor plane_sample_backward(at::Tensor grad_out, at::Tensor coords, int64_t height, int64_t width,
                                    bool sum_planes) {
  check_cuda_float(grad_out, "grad_out");
  check_cuda_float(coords, "coords");
  const int64_t n_planes = coords.size(0), n_chan = grad_out.size(-1);
  auto grad_planes = at::zeros({n_planes, n_chan, height, width}, grad_out.options());
  fields::launch_plane_sample_backward(grad_out.data_ptr<float>(), coords.data_ptr<float>(), coords.size(1),
                                       (int)n_planes, (int)n_chan, (int)height, (int)width, sum_planes,
                                       grad_planes.data_ptr<float>(), stream());
  return grad_planes;
}

at::Tensor occupancy_update(at::Tensor occs, at::Tensor indices, at::Tensor values, double decay,
                               double threshold) {
  check_cuda_float(occs, "occs");
  check_cuda_float(values, "values");
  TORCH_CHECK(indices.is_cuda() && indices.scalar_type() == at::kLong && indices.is_contiguous(),
              "indices must be int64 on the GPU");
  auto selected = at::zeros({occs.size(0)}, occs.options().dtype(at::kByte));
  fields::launch_occupancy_ema(occs.data_ptr<float>(), selected.data_ptr<uint8_t>(), indices.data_ptr<int64_t>(),
                               values.data_ptr<float>(), indices.size(0), occs.size(0), (float)decay, stream());
  auto thre = occs.masked_select(occs >= 0).mean().clamp_max(threshold);
  return occs > thre;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("march_rays", &march_rays, "occupancy-grid ray marching to packed samples");
  m.def("march_rays_cascaded", &march_rays_cascaded, "cone-step marching through cascaded grids");
  m.def("sample_offsets", &sample_offsets, "per-ray offsets of ray-sorted samples");
  m.def("composite_forward", &composite_forward, "alpha compositing with early termination");
  m.def("composite_backward", &composite_backward, "gradients of alpha compositing");
  m.def("termination_round", &termination_round, "one round of early termination");
  m.def("hash_encode_forward", &hash_encode_forward, "hash-grid encoding");
  m.def("hash_encode_backward", &hash_encode_backward, "gradient of the hash table");
  m.def("plane_sample_forward", &plane_sample_forward, "bilinear feature-plane lookup");
  m.def("plane_sample_backward", &plane_sample_backward, "gradient of the feature planes");
  m.def("occupancy_update", &occupancy_update, "occupancy-grid EMA update and binarisation");
}
