// The CPU kernels' entry points on tensors (cpu_ops.cpp), bound to Python in cpu_binding.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "torch_tensor.h"

namespace fields::cpu {

std::vector<at::Tensor> march_rays(at::Tensor origins, at::Tensor directions, at::Tensor t_min, at::Tensor t_max,
                                   at::Tensor offsets, at::Tensor first_steps, at::Tensor binary,
                                   std::vector<at::Tensor> mips, at::Tensor aabb, double step, int64_t max_samples);
std::vector<at::Tensor> march_rays_cascaded(at::Tensor origins, at::Tensor directions, at::Tensor t_starts,
                                            at::Tensor t_max, at::Tensor binaries, at::Tensor aabbs, double dt_min,
                                            double dt_max, double cone, int64_t max_samples);
at::Tensor sample_offsets(at::Tensor ray_indices, int64_t n_rays);
std::vector<at::Tensor> composite_forward(at::Tensor sigmas, at::Tensor rgbs, at::Tensor t_starts, at::Tensor t_ends,
                                          at::Tensor ray_offsets, double eps);
std::vector<at::Tensor> composite_backward(at::Tensor grad_rgb, at::Tensor grad_depth, at::Tensor grad_opacity,
                                           at::Tensor rgb, at::Tensor depth, at::Tensor opacity, at::Tensor sigmas,
                                           at::Tensor rgbs, at::Tensor t_starts, at::Tensor t_ends,
                                           at::Tensor ray_offsets, double eps);
at::Tensor termination_round(at::Tensor sigmas, at::Tensor t_starts, at::Tensor t_ends, at::Tensor ray_offsets,
                             at::Tensor optical_depth, at::Tensor alive, double eps);
at::Tensor hash_encode_forward(at::Tensor x, at::Tensor table, at::Tensor scales, at::Tensor resolutions,
                               at::Tensor rows, at::Tensor offsets, int64_t n_dense);
at::Tensor hash_encode_backward(at::Tensor grad_out, at::Tensor x, int64_t table_rows, int64_t n_feat,
                                at::Tensor scales, at::Tensor resolutions, at::Tensor rows, at::Tensor offsets,
                                int64_t n_dense);
at::Tensor plane_sample_forward(at::Tensor planes, at::Tensor coords, bool sum_planes);
at::Tensor plane_sample_backward(at::Tensor grad_out, at::Tensor coords, int64_t height, int64_t width,
                                 bool sum_planes);
at::Tensor vm_products_forward(const std::vector<at::Tensor>& planes, const std::vector<at::Tensor>& lines,
                               at::Tensor x, bool sum_products);
std::vector<at::Tensor> vm_products_backward(at::Tensor grad_out, const std::vector<at::Tensor>& planes,
                                             const std::vector<at::Tensor>& lines, at::Tensor x, bool sum_products);
std::vector<at::Tensor> mlp_forward(at::Tensor x, std::vector<at::Tensor> weights, std::vector<at::Tensor> biases,
                                    bool save_hidden, std::string isa_name, std::vector<int64_t> skip_layers,
                                    at::Tensor gamma, at::Tensor beta);
std::vector<at::Tensor> mlp_backward(at::Tensor grad_y, at::Tensor x, std::vector<at::Tensor> hidden,
                                     std::vector<at::Tensor> weights, std::vector<at::Tensor> biases, bool need_grad_x,
                                     std::string isa_name, std::vector<int64_t> skip_layers, at::Tensor gamma,
                                     at::Tensor beta, int64_t grad_x_from);
std::vector<std::string> mlp_isas();
at::Tensor view_inputs(at::Tensor directions, at::Tensor features, int64_t degree);
at::Tensor occupancy_update(at::Tensor occs, at::Tensor indices, at::Tensor values, double decay, double threshold);

}  // namespace fields::cpu
