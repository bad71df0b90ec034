// The fused MLP's loops, templated on a vector type V (width V::W floats: load, store, set1, fma, relu,
// keep_where_positive). Each ISA's source file sets its target and instantiates these with its V, so one
// build holds every path. Row blocks are register-blocked broadcast-FMA products: MR rows x NV vectors of
// accumulators, the K loop loading NV weight vectors and broadcasting one input per row.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

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

template <class V>
void forward_rows_impl(const Plan& p, const float* forward_w, const float* x, int64_t r0, int64_t r1, float* y,
                       float* const* hidden, float* scratch) {
  const int L = p.n_layers();
  float* buf[2] = {scratch, scratch + (int64_t)kBlockRows * p.max_pad};
  for (int64_t b0 = r0; b0 < r1; b0 += kBlockRows) {
    const int rows = (int)std::min<int64_t>(kBlockRows, r1 - b0), M = round_up(rows, kPad);
    // A full block of an unpadded width is read, and its saved activations written, where they are: no copy.
    const float* in = x + b0 * p.dims[0];
    int64_t in_row = p.dims[0];
    if (!in_place(p, 0, rows, M)) {
      load_block(in, rows, p.dims[0], buf[0], p.pad[0], M);
      in = buf[0], in_row = p.pad[0];
    }
    for (int l = 0; l < L; ++l) {
      const float* w = forward_w + p.weight_offset[l];
      const bool last = l == L - 1, saved = !last && hidden, direct = saved && in_place(p, l + 1, rows, M);
      const int d = p.dims[l + 1];
      float* out = direct ? hidden[l] + b0 * d : in == buf[0] ? buf[1] : buf[0];
      const int64_t out_row = direct ? d : p.pad[l + 1];
      if (p.biased) fill_rows<V>(forward_w + p.bias_offset[l], M, p.pad[l + 1], out_row, out);  // the product adds onto it
      product<V>(M, p.pad[l + 1], p.dims[l], in, in_row, 1, w, p.pad[l + 1], out, out_row, p.biased, !last, nullptr);
      if (last) store_block(out, out_row, rows, d, y + b0 * d);
      else if (saved && !direct) store_block(out, out_row, rows, d, hidden[l] + b0 * d);
      in = out, in_row = out_row;
    }
  }
}

template <class V>
void backward_rows_impl(const Plan& p, const float* backward_w, const float* grad_y, const float* x,
                        const float* const* hidden, int64_t r0, int64_t r1, float* grad_x, float* grad_w,
                        float* scratch) {
  const int L = p.n_layers();
  const int64_t block = (int64_t)kBlockRows * p.max_pad;
  float *g = scratch, *g_next = scratch + block, *act_buf = scratch + 2 * block;
  for (int64_t b0 = r0; b0 < r1; b0 += kBlockRows) {
    const int rows = (int)std::min<int64_t>(kBlockRows, r1 - b0), M = round_up(rows, kPad);
    load_block(grad_y + b0 * p.dims[L], rows, p.dims[L], g, p.pad[L], M);
    for (int l = L - 1; l >= 0; --l) {
      const int d_in = p.dims[l], d_out = p.dims[l + 1], s_in = p.pad[l], s_out = p.pad[l + 1];
      const bool direct = in_place(p, l, rows, M);  // then d_in == s_in: the layer's input is read where it is
      const float* act = (l == 0 ? x : hidden[l - 1]) + b0 * d_in;
      if (!direct) load_block(act, rows, d_in, act_buf, s_in, M), act = act_buf;
      // grad W^T (s_in x s_out) += act^T g: rows are the inputs, the sum runs over the block's rows
      product<V>(s_in, s_out, M, act, 1, s_in, g, s_out, grad_w + p.weight_offset[l], s_out, true,
                 false, nullptr);
      // g is the gradient of the layer's pre-activation output: its column sums are the bias's
      if (p.biased) add_column_sums<V>(g, M, s_out, grad_w + p.bias_offset[l]);
      if (l == 0 && !grad_x) break;
      // grad of the layer input = g W, times ReLU'(pre-activation) = (post-activation > 0) below the top; the
      // input's gradient goes straight into grad_x where its rows are unpadded
      float* out = l == 0 && direct ? grad_x + b0 * d_in : g_next;
      product<V>(M, s_in, d_out, g, s_out, 1, backward_w + p.weight_offset[l], s_in, out, s_in, false, false,
                 l > 0 ? act : nullptr);
      if (l == 0 && !direct) store_block(g_next, s_in, rows, d_in, grad_x + b0 * d_in);
      std::swap(g, g_next);
    }
  }
}

}  // namespace
}  // namespace fields::mlp
