// Alpha compositing of one ray's packed samples, forward and backward, with early termination:
// a sample whose transmittance before it is below `eps` gets weight 0, as do all after it.
// Twin: renderers/torch_ops.py composite (with early_stop_eps).
#pragma once
#include "common.h"

namespace fields {

// Opacity of sample i: 1 - exp(-sigma_i dt_i), with the product rounded in float as the twin does.
template <typename Acc>
FIELDS_HD Acc sample_alpha(const float* sigmas, const float* t_starts, const float* t_ends, int64_t i) {
  return 1 - (Acc)expf(-sigmas[i] * (t_ends[i] - t_starts[i]));
}

// Samples [begin, end) of one ray. Writes rgb (3), depth, opacity and the samples' weights.
template <typename Acc>
FIELDS_HD void composite_ray_forward(const float* sigmas, const float* rgbs, const float* t_starts,
                                     const float* t_ends, int64_t begin, int64_t end, float eps, float* rgb,
                                     float* depth, float* opacity, float* weights) {
  Acc trans = 1, r = 0, gr = 0, b = 0, dep = 0, op = 0;
  int64_t i = begin;
  for (; i < end; ++i) {
    if (trans < (Acc)eps) break;
    Acc alpha = sample_alpha<Acc>(sigmas, t_starts, t_ends, i);
    Acc w = trans * alpha;
    weights[i] = (float)w;
    r += w * rgbs[3 * i];
    gr += w * rgbs[3 * i + 1];
    b += w * rgbs[3 * i + 2];
    dep += w * (Acc)0.5 * ((Acc)t_starts[i] + (Acc)t_ends[i]);
    op += w;
    trans *= 1 - alpha;
  }
  for (; i < end; ++i) weights[i] = 0.0f;
  rgb[0] = (float)r;
  rgb[1] = (float)gr;
  rgb[2] = (float)b;
  *depth = (float)dep;
  *opacity = (float)op;
}

// Gradients of sigmas and rgbs of one ray's samples from the gradients of its rgb (3), depth and opacity.
// With v_i = g_rgb . c_i + g_depth m_i + g_opacity and T_{i+1} = T_i (1 - alpha_i):
//   dL/dsigma_i = dt_i (T_{i+1} v_i - sum_{j > i} w_j v_j),   dL/dc_i = w_i g_rgb,
// where the suffix sum is the ray's total sum_j w_j v_j (from its forward outputs) less the running prefix.
template <typename Acc>
FIELDS_HD void composite_ray_backward(const float* g_rgb, float g_depth, float g_opacity, const float* rgb,
                                      float depth, float opacity, const float* sigmas, const float* rgbs,
                                      const float* t_starts, const float* t_ends, int64_t begin, int64_t end,
                                      float eps, float* grad_sigmas, float* grad_rgbs) {
  const Acc total = (Acc)g_rgb[0] * rgb[0] + (Acc)g_rgb[1] * rgb[1] + (Acc)g_rgb[2] * rgb[2] +
                    (Acc)g_depth * depth + (Acc)g_opacity * opacity;
  Acc trans = 1, prefix = 0;
  int64_t i = begin;
  for (; i < end; ++i) {
    if (trans < (Acc)eps) break;
    float dt = t_ends[i] - t_starts[i];
    Acc alpha = sample_alpha<Acc>(sigmas, t_starts, t_ends, i);
    Acc w = trans * alpha;
    Acc v = g_rgb[0] * (Acc)rgbs[3 * i] + g_rgb[1] * (Acc)rgbs[3 * i + 1] + g_rgb[2] * (Acc)rgbs[3 * i + 2] +
            g_depth * (Acc)0.5 * ((Acc)t_starts[i] + (Acc)t_ends[i]) + g_opacity;
    prefix += w * v;
    Acc trans_next = trans * (1 - alpha);
    grad_sigmas[i] = (float)(dt * (trans_next * v - (total - prefix)));
    grad_rgbs[3 * i] = (float)(w * g_rgb[0]);
    grad_rgbs[3 * i + 1] = (float)(w * g_rgb[1]);
    grad_rgbs[3 * i + 2] = (float)(w * g_rgb[2]);
    trans = trans_next;
  }
  for (; i < end; ++i) {
    grad_sigmas[i] = 0.0f;
    grad_rgbs[3 * i] = grad_rgbs[3 * i + 1] = grad_rgbs[3 * i + 2] = 0.0f;
  }
}

}  // namespace fields

namespace fields {

// One round of early termination for one ray: its next samples [begin, end) continue the optical depth
// `depth` carried from earlier rounds. keep[i]: transmittance before sample i >= eps. Returns the new depth.
FIELDS_HD double termination_round_ray(const float* sigmas, const float* t_starts, const float* t_ends, int64_t begin,
                                       int64_t end, double depth, float eps, bool* keep) {
  for (int64_t i = begin; i < end; ++i) {
    keep[i] = (float)exp(-depth) >= eps;
    depth += (double)(sigmas[i] * (t_ends[i] - t_starts[i]));
  }
  return depth;
}

}  // namespace fields
