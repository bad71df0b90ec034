// The fused MLP's AVX2 path: this file's functions are compiled for avx2,fma whatever the
// build's flags, and run only where the CPU supports them (choose_isa checks).
#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
// Generic tuning whatever -march tunes for: GCC 12's znver4 tuning (-march=native on an AMD EPYC of that family)
// made these loops 30-55 % slower than its generic tuning (docs/kernels.md).
#pragma GCC target("avx2,fma,tune=generic")
#include <immintrin.h>

#include "fused_mlp_kernels.h"

namespace fields::mlp {
namespace {

struct Avx2 {  // tiles of up to 12 accumulators (4 rows x 3 vectors, ...) + 3 weight vectors: of 16 ymm registers
  using T = __m256;
  static constexpr int W = 8, ACC = 12, NV = 3;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T set1(float s) { return _mm256_set1_ps(s); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T relu(T v) { return _mm256_max_ps(v, _mm256_setzero_ps()); }
  static T keep_where_positive(T v, T m) { return _mm256_and_ps(v, _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ)); }
};

}  // namespace

void forward_rows_avx2(const Plan& p, const float* forward_w, const float* x, int64_t r0, int64_t r1, float* y,
                     float* const* hidden, float* scratch, const Modulation* mod) {
  forward_rows_impl<Avx2>(p, forward_w, x, r0, r1, y, hidden, scratch, mod);
}

void backward_rows_avx2(const Plan& p, const float* backward_w, const float* grad_y, const float* x,
                      const float* const* hidden, int64_t r0, int64_t r1, float* grad_x, float* grad_w,
                      float* scratch, const Modulation* mod, int grad_x_from) {
  backward_rows_impl<Avx2>(p, backward_w, grad_y, x, hidden, r0, r1, grad_x, grad_w, scratch, mod, grad_x_from);
}

}  // namespace fields::mlp
#endif
