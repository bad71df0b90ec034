// The fused MLP's loops, templated on a vector type V (width V::W floats: load, store, set1, fma, relu,
// keep_where_positive). Each ISA's source file sets its target and instantiates these with its V, so one
// build holds every path. Row blocks are register-blocked broadcast-FMA products: MR rows x NV vectors of
// accumulators, the K loop loading NV weight vectors and broadcasting one input per row.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fused_mlp.h"

namespace fields::mlp {
namespace {  // each ISA's file gets its own copy, compiled for its target

// C (M x NV*W, row stride c_row) = or += sum_k A[r][k] B[k][.]; A[r][k] = a[r * a_row + k * a_k],
// B[k][.] = b + k * b_k. Stores ReLU(C) when relu; C * (mask > 0) when mask (same layout as C) is set.
template <class V, int MR, int NV>
inline void tile(int K, const float* a, int64_t a_row, int64_t a_k, const float* b, int64_t b_k, float* c,
                 int64_t c_row, bool accumulate, bool relu, const float* mask) {
  typename V::T acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = accumulate ? V::load(c + r * c_row + j * V::W) : V::zero();
  for (int k = 0; k < K; ++k) {
    typename V::T w[NV];
    for (int j = 0; j < NV; ++j) w[j] = V::load(b + k * b_k + j * V::W);
    for (int r = 0; r < MR; ++r) {
      const typename V::T s = V::set1(a[r * a_row + k * a_k]);
      for (int j = 0; j < NV; ++j) acc[r][j] = V::fma(s, w[j], acc[r][j]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NV; ++j) {
      typename V::T v = acc[r][j];
      if (relu) v = V::relu(v);
      if (mask) v = V::keep_where_positive(v, V::load(mask + r * c_row + j * V::W));
      V::store(c + r * c_row + j * V::W, v);
    }
}

// Rows per tile for a budget of accumulators per column of vectors: a power of two, so that tiles divide the
// padded rows (a multiple of kPad).
constexpr int rows_per_tile(int budget) {
  int rows = 1;
  while (rows * 2 <= budget && rows * 2 <= kPad) rows *= 2;
  return rows;
}

// The product over M rows (a multiple of kPad) and `cols` columns (a multiple of kPad): column panels of
// up to V::NV vectors (the panel of B stays in L1 across the row tiles); a narrower panel takes more rows
// per tile, up to V::ACC accumulators.
template <class V>
void product(int M, int cols, int K, const float* a, int64_t a_row, int64_t a_k, const float* b, int64_t b_k,
             float* c, int64_t c_row, bool accumulate, bool relu, const float* mask) {
  static_assert(V::NV <= 4 && V::ACC >= V::NV, "a tile holds at most 4 vectors per row");
  const int n_vectors = cols / V::W;
  for (int j0 = 0; j0 < n_vectors; j0 += V::NV) {
    const int nv = std::min(V::NV, n_vectors - j0);
    const float* bj = b + j0 * V::W;
    auto run = [&](auto rows, auto vectors) {  // integral_constants: the tile's shape
      constexpr int MR = decltype(rows)::value, NV = decltype(vectors)::value;
      for (int r = 0; r < M; r += MR)
        tile<V, MR, NV>(K, a + r * a_row, a_row, a_k, bj, b_k, c + r * c_row + j0 * V::W, c_row, accumulate, relu,
                        mask ? mask + r * c_row + j0 * V::W : nullptr);
    };
    using std::integral_constant;
    constexpr int NV = V::NV;
    if (nv == 1) run(integral_constant<int, rows_per_tile(V::ACC)>{}, integral_constant<int, 1>{});
    else if (nv == 2) run(integral_constant<int, rows_per_tile(V::ACC / 2)>{}, integral_constant<int, 2>{});
    else if (nv == 3) run(integral_constant<int, rows_per_tile(V::ACC / 3)>{}, integral_constant<int, (NV >= 3 ? 3 : 1)>{});
    else run(integral_constant<int, rows_per_tile(V::ACC / NV)>{}, integral_constant<int, NV>{});
  }
}

// Copies rows [0, rows) of src (row stride `width`) into dst (row stride `stride`), zeroing the padding
// columns and the rows up to `padded_rows`.
inline void load_block(const float* src, int rows, int width, float* dst, int stride, int padded_rows) {
  for (int r = 0; r < padded_rows; ++r) {
    float* d = dst + (int64_t)r * stride;
    if (r < rows) {
      std::memcpy(d, src + (int64_t)r * width, sizeof(float) * width);
      std::fill(d + width, d + stride, 0.0f);
    } else {
      std::fill(d, d + stride, 0.0f);
    }
  }
}

inline void store_block(const float* src, int stride, int rows, int width, float* dst) {
  for (int r = 0; r < rows; ++r) std::memcpy(dst + (int64_t)r * width, src + (int64_t)r * stride, sizeof(float) * width);
}

inline int round_up(int n, int m) { return (n + m - 1) / m * m; }

// Every one of the M rows of c (`cols` floats, a multiple of V::W; row stride c_row) set to the bias.
template <class V>
inline void fill_rows(const float* bias, int M, int cols, int64_t c_row, float* c) {
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < cols; j += V::W) V::store(c + r * c_row + j, V::load(bias + j));
}

// Whether a block's activations of width dims[l] are used where they lie in the caller's (N, dims[l]) array
// (a full block of a width that needs no padding) rather than copied into padded scratch.
inline bool in_place(const Plan& p, int l, int rows, int M) { return rows == M && p.dims[l] == p.pad[l]; }

// sums (cols floats) += the column sums of the M rows of g (row stride `cols`, a multiple of V::W).
template <class V>
inline void add_column_sums(const float* g, int M, int cols, float* sums) {
  for (int j = 0; j < cols; j += V::W) {
    typename V::T acc = V::load(sums + j);
    for (int r = 0; r < M; ++r) acc = V::fma(V::set1(1.0f), V::load(g + (int64_t)r * cols + j), acc);
    V::store(sums + j, acc);
  }
}

// CAM's modulation of a block: h (row stride h_row) = ReLU(gamma[r] * z + beta[r]) over the `s` columns of z
// (row stride z_row; h may be z), with the padding columns [d, s) and the rows [rows, M) set to zero. gamma and
// beta: row r's values at gamma[r * stride].
template <class V>
inline void modulate_relu(const float* z, int64_t z_row, float* h, int64_t h_row, int rows, int M, int d, int s,
                          const float* gamma, const float* beta, int stride) {
  for (int r = 0; r < M; ++r) {
    float* hr = h + r * h_row;
    if (r >= rows) {
      std::fill(hr, hr + s, 0.0f);
      continue;
    }
    const typename V::T g = V::set1(gamma[(int64_t)r * stride]), b = V::set1(beta[(int64_t)r * stride]);
    for (int j = 0; j < s; j += V::W) V::store(hr + j, V::relu(V::fma(g, V::load(z + r * z_row + j), b)));
    std::fill(hr + d, hr + s, 0.0f);
  }
}

inline float lane_sum(const float* lanes, int n) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += lanes[i];
  return sum;
}

// The modulation's backward for `rows` rows of g (the gradient of ReLU(gamma z + beta), masked already; row
// stride `s`, the columns): grad_beta[r] = sum g, grad_gamma[r] = sum g z (z: the block's saved outputs, row
// stride s); then g *= gamma[r], the gradient of z.
template <class V>
inline void modulation_backward(float* g, const float* z, int rows, int s, const float* gamma, float* grad_gamma,
                                float* grad_beta, int stride) {
  alignas(64) float lanes[2][V::W];
  for (int r = 0; r < rows; ++r) {
    float* gr = g + (int64_t)r * s;
    const float* zr = z + (int64_t)r * s;
    typename V::T sum_g = V::zero(), sum_gz = V::zero();
    for (int j = 0; j < s; j += V::W) {
      const typename V::T gj = V::load(gr + j);
      sum_g = V::fma(V::set1(1.0f), gj, sum_g);
      sum_gz = V::fma(gj, V::load(zr + j), sum_gz);
    }
    V::store(lanes[0], sum_g), V::store(lanes[1], sum_gz);
    grad_beta[(int64_t)r * stride] = lane_sum(lanes[0], V::W);
    grad_gamma[(int64_t)r * stride] = lane_sum(lanes[1], V::W);
    const typename V::T scale = V::set1(gamma[(int64_t)r * stride]);
    for (int j = 0; j < s; j += V::W) V::store(gr + j, V::fma(scale, V::load(gr + j), V::zero()));
  }
}

// A narrow last layer (kNarrow outputs or fewer, no skip input) runs as dot products with its weight's rows: a
// product would compute kPad columns (16) for the 1 sigma of a marching round or the 3 of a colour.
constexpr int kNarrow = 4;
inline bool narrow_last(const Plan& p) { return p.dims.back() <= kNarrow && !p.skip.back(); }

// The narrow last layer's weight rows from the packed forward weight (in_pad x pad, transposed): D rows of pad[l]
// floats (zero past the input width), contiguous.
inline std::vector<float> narrow_weight_rows(const Plan& p, const float* forward_w) {
  const int l = p.n_layers() - 1, d = p.dims[l + 1], k = p.pad[l];
  std::vector<float> rows((size_t)d * k);
  const float* w = forward_w + p.weight_offset[l];
  for (int o = 0; o < d; ++o)
    for (int i = 0; i < k; ++i) rows[(size_t)o * k + i] = w[(int64_t)i * p.pad[l + 1] + o];
  return rows;
}

// y[r][o] (row stride D) = bias[o] (when set) + sum over k < K of in[r][k] w[o][k], for R rows; K: a multiple of
// V::W, w: D rows of K floats.
template <class V, int R, int D>
inline void dot_rows(int K, const float* in, int64_t in_row, const float* w, const float* bias, float* y) {
  typename V::T acc[R][D];
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < D; ++o) acc[r][o] = V::zero();
  for (int k = 0; k < K; k += V::W) {
    typename V::T x[R];
    for (int r = 0; r < R; ++r) x[r] = V::load(in + r * in_row + k);
    for (int o = 0; o < D; ++o) {
      const typename V::T wo = V::load(w + o * K + k);
      for (int r = 0; r < R; ++r) acc[r][o] = V::fma(x[r], wo, acc[r][o]);
    }
  }
  alignas(64) float lanes[V::W];
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < D; ++o) {
      V::store(lanes, acc[r][o]);
      y[r * D + o] = lane_sum(lanes, V::W) + (bias ? bias[o] : 0.0f);
    }
}

template <class V, int D>
inline void narrow_rows_of(int rows, int K, const float* in, int64_t in_row, const float* w, const float* bias,
                           float* y) {
  constexpr int R = D <= 2 ? 4 : 2;  // accumulators and inputs within 16 registers
  int r = 0;
  for (; r + R <= rows; r += R) dot_rows<V, R, D>(K, in + r * in_row, in_row, w, bias, y + r * D);
  for (; r < rows; ++r) dot_rows<V, 1, D>(K, in + r * in_row, in_row, w, bias, y + r * D);
}

// The narrow last layer's output y (rows x d, row stride d) from its input `in` (row stride in_row, K floats).
template <class V>
inline void narrow_rows(int rows, int d, int K, const float* in, int64_t in_row, const float* w, const float* bias,
                        float* y) {
  switch (d) {
    case 1: return narrow_rows_of<V, 1>(rows, K, in, in_row, w, bias, y);
    case 2: return narrow_rows_of<V, 2>(rows, K, in, in_row, w, bias, y);
    case 3: return narrow_rows_of<V, 3>(rows, K, in, in_row, w, bias, y);
    default: return narrow_rows_of<V, 4>(rows, K, in, in_row, w, bias, y);
  }
}

// The narrow last layer's weight gradient: gw[k * gw_row + o] += sum over the block's rows of act[r][k] g[r][o],
// for o < d and k < K (a multiple of kPad), in passes of 64 columns held in registers.
template <class V>
inline void narrow_weight_grad(int rows, int d, int K, const float* act, int64_t act_row, const float* g,
                               int64_t g_row, float* gw, int64_t gw_row) {
  constexpr int NC = 64 / V::W;
  alignas(64) float lanes[64];
  for (int o = 0; o < d; ++o)
    for (int k0 = 0; k0 < K; k0 += 64) {
      const int nc = std::min(64, K - k0) / V::W;
      typename V::T acc[NC];
      for (int j = 0; j < NC; ++j) acc[j] = V::zero();
      for (int r = 0; r < rows; ++r) {
        const typename V::T s = V::set1(g[r * g_row + o]);
        for (int j = 0; j < NC; ++j)
          if (j < nc) acc[j] = V::fma(s, V::load(act + r * act_row + k0 + j * V::W), acc[j]);
      }
      for (int j = 0; j < nc; ++j) V::store(lanes + j * V::W, acc[j]);
      for (int k = 0; k < nc * V::W; ++k) gw[(int64_t)(k0 + k) * gw_row + o] += lanes[k];
    }
}

template <class V>
void forward_rows_impl(const Plan& p, const float* forward_w, const float* x, int64_t r0, int64_t r1, float* y,
                       float* const* hidden, float* scratch, const Modulation* mod) {
  const int L = p.n_layers(), n_hidden = L - 1;
  const int64_t block = (int64_t)kBlockRows * p.max_pad;
  float* buf[2] = {scratch, scratch + block};
  float* x_buf = scratch + 2 * block;  // the block's input, kept for the skip layers
  const bool narrow = narrow_last(p);
  const std::vector<float> narrow_w = narrow ? narrow_weight_rows(p, forward_w) : std::vector<float>();
  for (int64_t b0 = r0; b0 < r1; b0 += kBlockRows) {
    const int rows = (int)std::min<int64_t>(kBlockRows, r1 - b0), M = round_up(rows, kPad);
    // A full block of an unpadded width is read, and its saved activations written, where they are: no copy.
    const float* x_in = x + b0 * p.dims[0];
    int64_t x_row = p.dims[0];
    if (!in_place(p, 0, rows, M)) {
      load_block(x_in, rows, p.dims[0], x_buf, p.pad[0], M);
      x_in = x_buf, x_row = p.pad[0];
    }
    const float* in = x_in;
    int64_t in_row = x_row;
    for (int l = 0; l < L; ++l) {
      const float* w = forward_w + p.weight_offset[l];
      const bool last = l == L - 1, saved = !last && hidden;
      // a modulated block's output is saved before its modulation, which then runs in scratch
      const bool direct = saved && !mod && in_place(p, l + 1, rows, M);
      const int d = p.dims[l + 1];
      if (last && narrow) {
        const float* bias = p.biased ? forward_w + p.bias_offset[l] : nullptr;
        narrow_rows<V>(rows, d, p.pad[l], in, in_row, narrow_w.data(), bias, y + b0 * d);
        break;
      }
      float* out = direct ? hidden[l] + b0 * d : in == buf[0] ? buf[1] : buf[0];
      const int64_t out_row = direct ? d : p.pad[l + 1];
      const bool relu = !last && !mod;
      if (p.biased) fill_rows<V>(forward_w + p.bias_offset[l], M, p.pad[l + 1], out_row, out);  // the product adds onto it
      if (p.skip[l]) {  // (previous output, input) through the two parts of the weight
        product<V>(M, p.pad[l + 1], p.dims[l], in, in_row, 1, w, p.pad[l + 1], out, out_row, p.biased, false, nullptr);
        product<V>(M, p.pad[l + 1], p.dims[0], x_in, x_row, 1, w + (int64_t)p.pad[l] * p.pad[l + 1], p.pad[l + 1], out,
                   out_row, true, relu, nullptr);
      } else {
        product<V>(M, p.pad[l + 1], p.dims[l], in, in_row, 1, w, p.pad[l + 1], out, out_row, p.biased, relu, nullptr);
      }
      if (last) store_block(out, out_row, rows, d, y + b0 * d);
      else if (saved && !direct) store_block(out, out_row, rows, d, hidden[l] + b0 * d);
      if (mod && !last)
        modulate_relu<V>(out, out_row, out, out_row, rows, M, d, p.pad[l + 1], mod->gamma + b0 * n_hidden + l,
                         mod->beta + b0 * n_hidden + l, n_hidden);
      in = out, in_row = out_row;
    }
  }
}

template <class V>
void backward_rows_impl(const Plan& p, const float* backward_w, const float* grad_y, const float* x,
                        const float* const* hidden, int64_t r0, int64_t r1, float* grad_x, float* grad_w,
                        float* scratch, const Modulation* mod, int grad_x_from) {
  const int L = p.n_layers(), n_hidden = L - 1;
  const bool skips = std::find(p.skip.begin(), p.skip.end(), true) != p.skip.end();
  const int64_t block = (int64_t)kBlockRows * p.max_pad;
  float *g = scratch, *g_next = scratch + block, *act_buf = scratch + 2 * block, *x_buf = scratch + 3 * block;
  float *z_buf = scratch + 4 * block, *gx_buf = scratch + 5 * block;  // saved outputs; the input's gradient
  for (int64_t b0 = r0; b0 < r1; b0 += kBlockRows) {
    const int rows = (int)std::min<int64_t>(kBlockRows, r1 - b0), M = round_up(rows, kPad);
    load_block(grad_y + b0 * p.dims[L], rows, p.dims[L], g, p.pad[L], M);
    const float* x_in = x + b0 * p.dims[0];  // row stride pad[0] either way
    if (!in_place(p, 0, rows, M)) load_block(x_in, rows, p.dims[0], x_buf, p.pad[0], M), x_in = x_buf;
    // with skip layers the input's gradient gathers in gx_buf; without, it goes out from layer 0 as before
    if (skips && grad_x) std::fill(gx_buf, gx_buf + (int64_t)M * p.pad[0], 0.0f);
    for (int l = L - 1; l >= 0; --l) {
      const int d_in = p.dims[l], d_out = p.dims[l + 1], s_in = p.pad[l], s_out = p.pad[l + 1], k_in = p.in_pad(l);
      const float* bw = backward_w + p.weight_offset[l];
      float* gw = grad_w + p.weight_offset[l];
      // the layer's input (row stride s_in): the network input, a saved activation, or one rebuilt from its
      // saved output before the modulation (kept in z_buf for the modulation's gradient)
      const bool direct = in_place(p, l, rows, M) && !(mod && l > 0);
      const float* act = l == 0 ? x_in : hidden[l - 1] + b0 * d_in;
      if (l > 0 && mod) {
        load_block(act, rows, d_in, z_buf, s_in, M);
        modulate_relu<V>(z_buf, s_in, act_buf, s_in, rows, M, d_in, s_in, mod->gamma + b0 * n_hidden + l - 1,
                         mod->beta + b0 * n_hidden + l - 1, n_hidden);
        act = act_buf;
      } else if (l > 0 && !direct) {
        load_block(act, rows, d_in, act_buf, s_in, M), act = act_buf;
      }
      // grad W^T (k_in x s_out) += (act, input)^T g: rows are the inputs, the sum runs over the block's rows
      if (l == L - 1 && narrow_last(p)) narrow_weight_grad<V>(rows, d_out, s_in, act, s_in, g, s_out, gw, s_out);
      else product<V>(s_in, s_out, M, act, 1, s_in, g, s_out, gw, s_out, true, false, nullptr);
      if (p.skip[l])
        product<V>(p.pad[0], s_out, M, x_in, 1, p.pad[0], g, s_out, gw + (int64_t)s_in * s_out, s_out, true, false,
                   nullptr);
      // g is the gradient of the layer's pre-activation output: its column sums are the bias's
      if (p.biased) add_column_sums<V>(g, M, s_out, grad_w + p.bias_offset[l]);
      if (p.skip[l] && grad_x)  // the input's share of the gradient: g times the weight's input part
        product<V>(M, p.pad[0], d_out, g, s_out, 1, bw + s_in, k_in, gx_buf, p.pad[0], true, false, nullptr);
      if (l == 0) {
        if (!grad_x) break;
        if (skips) {
          product<V>(M, s_in, d_out, g, s_out, 1, bw, k_in, gx_buf, s_in, true, false, nullptr);
          store_block(gx_buf, s_in, rows, d_in, grad_x + b0 * d_in);
          break;
        }
      }
      // grad of the layer input = g W, times ReLU'(pre-activation) = (post-activation > 0) below the top; the
      // input's gradient goes straight into grad_x where its rows are unpadded
      float* out = l == 0 && direct ? grad_x + b0 * d_in : g_next;
      // the input's columns before grad_x_from: zero, not computed
      const int c0 = l == 0 ? std::min(grad_x_from / kPad * kPad, s_in) : 0;
      product<V>(M, s_in - c0, d_out, g, s_out, 1, bw + c0, k_in, out + c0, s_in, false, false, l > 0 ? act : nullptr);
      for (int r = 0; c0 > 0 && r < M; ++r) std::fill(out + (int64_t)r * s_in, out + (int64_t)r * s_in + c0, 0.0f);
      if (l == 0) {
        if (!direct) store_block(g_next, s_in, rows, d_in, grad_x + b0 * d_in);
        break;
      }
      if (mod)  // through the modulation: gamma's and beta's gradients, and g becomes the output's before it
        modulation_backward<V>(g_next, z_buf, rows, s_in, mod->gamma + b0 * n_hidden + l - 1,
                               mod->grad_gamma + b0 * n_hidden + l - 1, mod->grad_beta + b0 * n_hidden + l - 1,
                               n_hidden);
      std::swap(g, g_next);
    }
  }
}

}  // namespace
}  // namespace fields::mlp
