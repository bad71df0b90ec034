// The fused MLP's plan, weight packing, gradient reduction, ISA choice and generic (plain C++) path.
#include "fused_mlp.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "fused_mlp_kernels.h"

namespace fields::mlp {

#if defined(__x86_64__) || defined(__i386__)
#define FIELDS_MLP_X86 1
void forward_rows_avx512(const Plan&, const float*, const float*, int64_t, int64_t, float*, float* const*, float*,
                         const Modulation*);
void backward_rows_avx512(const Plan&, const float*, const float*, const float*, const float* const*, int64_t,
                          int64_t, float*, float*, float*, const Modulation*, int);
void forward_rows_avx2(const Plan&, const float*, const float*, int64_t, int64_t, float*, float* const*, float*,
                       const Modulation*);
void backward_rows_avx2(const Plan&, const float*, const float*, const float*, const float* const*, int64_t, int64_t,
                        float*, float*, float*, const Modulation*, int);
#else
#define FIELDS_MLP_X86 0
#endif

namespace {

// Four floats as a GCC/Clang vector extension: the compiler's own instructions for the build's target
// (SSE on a plain x86-64 build, NEON on ARM), no intrinsics.
struct Generic {
  typedef float T __attribute__((vector_size(16)));
  static constexpr int W = 4, ACC = 8, NV = 2;
  static T zero() { return T{}; }
  static T load(const float* p) {
    T t;
    std::memcpy(&t, p, sizeof t);
    return t;
  }
  static void store(float* p, T t) { std::memcpy(p, &t, sizeof t); }
  static T set1(float s) { return T{} + s; }
  static T fma(T a, T b, T c) { return a * b + c; }
  static T relu(T t) { return t > 0.0f ? t : T{}; }
  static T keep_where_positive(T t, T m) { return m > 0.0f ? t : T{}; }
};

}  // namespace

namespace {

bool cpu_has(Isa isa) {
#if FIELDS_MLP_X86
  if (isa == Isa::avx512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  if (isa == Isa::avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return isa == Isa::generic;
}

// The packed row of layer l's input i: the previous output's first, then (a skip layer) the network input's.
int packed_row(const Plan& p, int l, int i) { return i < p.dims[l] ? i : p.pad[l] + (i - p.dims[l]); }

}  // namespace

Plan::Plan(std::vector<int> widths, bool with_biases, const std::vector<int>& skip_layers)
    : dims(std::move(widths)), biased(with_biases) {
  if (dims.size() < 2) throw std::invalid_argument("fused MLP: needs at least one layer");
  for (int d : dims) {
    if (d <= 0) throw std::invalid_argument("fused MLP: every width must be positive");
    pad.push_back(padded(d));
    max_pad = std::max(max_pad, pad.back());
  }
  skip.assign(n_layers(), false);
  for (int l : skip_layers) {
    if (l < 1 || l >= n_layers())
      throw std::invalid_argument("fused MLP: a skip layer must be one of 1 .. n_layers - 1");
    skip[l] = true;
  }
  for (int l = 0; l < n_layers(); ++l) {
    weight_offset.push_back(weight_floats);
    weight_floats += (int64_t)in_pad(l) * pad[l + 1];
  }
  for (int l = 0; biased && l < n_layers(); ++l) {
    bias_offset.push_back(weight_floats);
    weight_floats += pad[l + 1];
  }
}

void pack_weights(const Plan& p, const float* const* weights, const float* const* biases, float* forward_w,
                  float* backward_w) {
  std::fill(forward_w, forward_w + p.weight_floats, 0.0f);
  std::fill(backward_w, backward_w + p.weight_floats, 0.0f);
  for (int l = 0; l < p.n_layers(); ++l) {
    const int n_in = p.in_dim(l), n_out = p.dims[l + 1];
    float *fw = forward_w + p.weight_offset[l], *bw = backward_w + p.weight_offset[l];
    for (int o = 0; o < n_out; ++o)
      for (int i = 0; i < n_in; ++i) {
        const float w = weights[l][(int64_t)o * n_in + i];
        const int row = packed_row(p, l, i);
        fw[(int64_t)row * p.pad[l + 1] + o] = w;
        bw[(int64_t)o * p.in_pad(l) + row] = w;
      }
    for (int o = 0; p.biased && o < n_out; ++o)
      forward_w[p.bias_offset[l] + o] = backward_w[p.bias_offset[l] + o] = biases[l][o];
  }
}

void add_weight_grads(const Plan& p, const float* const* grad_w, int count, float* const* weight_grads,
                      float* const* bias_grads) {
  for (int l = 0; l < p.n_layers(); ++l) {
    const int n_in = p.in_dim(l), n_out = p.dims[l + 1];
    for (int o = 0; o < n_out; ++o)
      for (int i = 0; i < n_in; ++i) {
        const int64_t at = p.weight_offset[l] + (int64_t)packed_row(p, l, i) * p.pad[l + 1] + o;
        float sum = 0.0f;
        for (int c = 0; c < count; ++c) sum += grad_w[c][at];
        weight_grads[l][(int64_t)o * n_in + i] = sum;
      }
    for (int o = 0; p.biased && o < n_out; ++o) {
      float sum = 0.0f;
      for (int c = 0; c < count; ++c) sum += grad_w[c][p.bias_offset[l] + o];
      bias_grads[l][o] = sum;
    }
  }
}

Isa choose_isa(const std::string& name) {
  if (name.empty() || name == "auto") return cpu_has(Isa::avx512) ? Isa::avx512 : cpu_has(Isa::avx2) ? Isa::avx2 : Isa::generic;
  const Isa isa = name == "avx512" ? Isa::avx512 : name == "avx2" ? Isa::avx2 : Isa::generic;
  if (isa == Isa::generic && name != "generic")
    throw std::invalid_argument("FIELDS_CPU_ISA='" + name + "': expected auto, avx512, avx2 or generic");
  if (!cpu_has(isa)) throw std::invalid_argument("FIELDS_CPU_ISA='" + name + "': this CPU does not support it");
  return isa;
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (auto [isa, name] : {std::pair{Isa::avx512, "avx512"}, {Isa::avx2, "avx2"}, {Isa::generic, "generic"}})
    if (cpu_has(isa)) names.push_back(name);
  return names;
}

void forward_rows(Isa isa, const Plan& p, const float* forward_w, const float* x, int64_t r0, int64_t r1, float* y,
                  float* const* hidden, float* scratch, const Modulation* mod) {
#if FIELDS_MLP_X86
  if (isa == Isa::avx512) return forward_rows_avx512(p, forward_w, x, r0, r1, y, hidden, scratch, mod);
  if (isa == Isa::avx2) return forward_rows_avx2(p, forward_w, x, r0, r1, y, hidden, scratch, mod);
#endif
  forward_rows_impl<Generic>(p, forward_w, x, r0, r1, y, hidden, scratch, mod);
}

void backward_rows(Isa isa, const Plan& p, const float* backward_w, const float* grad_y, const float* x,
                   const float* const* hidden, int64_t r0, int64_t r1, float* grad_x, float* grad_w, float* scratch,
                   const Modulation* mod, int grad_x_from) {
#if FIELDS_MLP_X86
  if (isa == Isa::avx512)
    return backward_rows_avx512(p, backward_w, grad_y, x, hidden, r0, r1, grad_x, grad_w, scratch, mod,
                                grad_x_from);
  if (isa == Isa::avx2)
    return backward_rows_avx2(p, backward_w, grad_y, x, hidden, r0, r1, grad_x, grad_w, scratch, mod, grad_x_from);
#endif
  backward_rows_impl<Generic>(p, backward_w, grad_y, x, hidden, r0, r1, grad_x, grad_w, scratch, mod, grad_x_from);
}

}  // namespace fields::mlp
