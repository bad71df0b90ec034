// Fully fused CPU MLP (linear layers, ReLU between, none after the last): tiny-cuda-nn's FullyFusedMLP form
// (NVlabs/tiny-cuda-nn, src/fully_fused_mlp.cu, bias-free) run per block of rows on a CPU, the block's
// activations kept in cache; optionally every layer with a bias (as nn.Linear's default). Torch-free: plain
// pointers, row-major float32.
//
// Layer l maps dims[l] -> dims[l + 1]; its weight is nn.Linear's (dims[l + 1], dims[l]), its bias (dims[l + 1]).
// Every width is padded to a multiple of 16 in the packed weights and the block scratch (zeros), so the vector
// loops have no remainders. A caller runs `forward_rows` / `backward_rows` on disjoint row ranges in parallel, each
// with its own scratch (and, for backward, its own weight-gradient accumulator), then `add_weight_grads`.
// Two options make it CAM's trunk (maincold2/CAM, CAM_nerfacc's MLP): skip layers, whose input is the previous
// layer's output with the network's input appended (NeRF's skip connection; the weight is then (dims[l + 1],
// dims[l] + dims[0])), and a per-row scale and shift of every hidden layer's output (`Modulation`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fields::mlp {

enum class Isa { generic, avx2, avx512 };

constexpr int kPad = 16;         // widths are padded to this many floats
constexpr int kBlockRows = 64;   // rows per block: a block's activations stay in L1/L2

inline int padded(int n) { return (n + kPad - 1) / kPad * kPad; }

// Sizes and buffer offsets of an MLP with `dims` (n_layers + 1 widths: input, hidden..., output).
struct Plan {
  std::vector<int> dims, pad;            // widths and padded widths
  std::vector<bool> skip;                // skip[l]: layer l's input is (previous output, network input)
  std::vector<int64_t> weight_offset;    // layer l's packed (in_pad(l) * pad[l + 1]) floats start here
  std::vector<int64_t> bias_offset;      // biased: layer l's pad[l + 1] bias floats start here (after the weights)
  int64_t weight_floats = 0;             // size of one packed weight buffer (weights, then biases)
  int max_pad = 0;
  bool biased = false;

  // skip_layers: the layers (>= 1) whose input has the network input appended.
  Plan(std::vector<int> widths, bool with_biases, const std::vector<int>& skip_layers = {});
  int n_layers() const { return (int)dims.size() - 1; }
  int in_dim(int l) const { return dims[l] + (skip[l] ? dims[0] : 0); }  // layer l's weight's input count
  int in_pad(int l) const { return pad[l] + (skip[l] ? pad[0] : 0); }   // its packed rows: previous output, then input
  // Floats of per-range scratch forward/backward need (six block-sized buffers).
  int64_t scratch_floats() const { return 6 * (int64_t)kBlockRows * max_pad; }
};

// CAM's modulation: hidden layer l's output z (before ReLU) of row r becomes gamma[r, l] * z + beta[r, l]; gamma and
// beta are (N, n_layers - 1), row-major. A modulated forward saves z (not the ReLU output) as the hidden activation;
// backward writes grad_gamma and grad_beta (same layout).
struct Modulation {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float* grad_gamma = nullptr;
  float* grad_beta = nullptr;
};

// Packs weights[l] (dims[l + 1], in_dim(l)) into `forward_w` (per layer in_pad(l) x pad[l + 1]: transposed, input
// major) and `backward_w` (per layer pad[l + 1] x in_pad(l): nn.Linear's layout), zero-padded; biased plans also
// biases[l] (dims[l + 1]) into both at bias_offset[l].
void pack_weights(const Plan& plan, const float* const* weights, const float* const* biases, float* forward_w,
                  float* backward_w);

// y (rows, dims.back()) of rows [r0, r1) of x (N, dims[0]); when `hidden` is not null, hidden[l]
// (N, dims[l + 1]) receives hidden layer l's post-ReLU activations, or its output before the modulation when
// `modulation` is not null (what backward needs).
void forward_rows(Isa isa, const Plan& plan, const float* forward_w, const float* x, int64_t r0, int64_t r1,
                  float* y, float* const* hidden, float* scratch, const Modulation* modulation = nullptr);

// Rows [r0, r1): grad_x (N, dims[0]) when not null, and weight gradients added into `grad_w`, laid out
// as `forward_w` (per layer in_pad(l) x pad[l + 1], transposed, then the biases' gradients; zero it first); with
// a modulation (the forward's), also its grad_gamma and grad_beta rows. grad_x_from: grad_x's columns before it
// (rounded down to kPad; a network without skip layers) are set to zero, not computed (inputs without gradients).
void backward_rows(Isa isa, const Plan& plan, const float* backward_w, const float* grad_y, const float* x,
                   const float* const* hidden, int64_t r0, int64_t r1, float* grad_x, float* grad_w,
                   float* scratch, const Modulation* modulation = nullptr, int grad_x_from = 0);

// weight_grads[l] (dims[l + 1], in_dim(l)) = the sum of the `count` transposed accumulators `grad_w`, and for a
// biased plan bias_grads[l] (dims[l + 1]) likewise.
void add_weight_grads(const Plan& plan, const float* const* grad_w, int count, float* const* weight_grads,
                      float* const* bias_grads);

// The ISA to run: `name` is "" or "auto" (the best this CPU supports), "avx512", "avx2" or "generic";
// throws std::invalid_argument naming an unknown or unsupported choice.
Isa choose_isa(const std::string& name);
std::vector<std::string> supported_isas();

}  // namespace fields::mlp
