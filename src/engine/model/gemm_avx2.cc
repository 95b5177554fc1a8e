// The fixed-order AVX2/FMA decode kernel. Only the functions marked ATOMA_AVX2 use AVX2
// instructions, so the rest of the binary stays portable; Gemm calls them only after
// CpuHasAvx2Fma(). Compiled with -ffp-contract=off (the scalar tail must not be fused in one tile
// shape and not another).
//
// Every output element follows the same operations whatever tile computes it:
//   acc = 0; for each full 8-chunk of K in order: acc = fma(x_chunk, w_chunk, acc)
//   s = ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)); s = s + x[i]*w[i] for the tail; s = s + bias.
// The tiles differ only in how many elements they keep in flight (how often a loaded weight chunk
// is reused), which is what makes a row's bits independent of the batch.
#include <immintrin.h>

#include <cstdint>

#include "gemm_internal.h"

#if defined(__GNUC__) || defined(__clang__)
#define ATOMA_AVX2 __attribute__((target("avx2,fma")))
#define ATOMA_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#else
#error "the AVX2 kernel needs GCC or Clang"
#endif

namespace atoma::engine::internal {
namespace {

ATOMA_AVX2_INLINE float Finish(__m256 acc, const float* x, const float* w, int64_t k8, int64_t k,
                               const float* bias_n) {
  const __m128 lo = _mm256_castps256_ps128(acc);        // a0 a1 a2 a3
  const __m128 hi = _mm256_extractf128_ps(acc, 1);      // a4 a5 a6 a7
  const __m128 t = _mm_add_ps(lo, hi);                  // a0+a4 a1+a5 a2+a6 a3+a7
  const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));  // (a0+a4)+(a2+a6), (a1+a5)+(a3+a7)
  const __m128 v = _mm_add_ss(u, _mm_shuffle_ps(u, u, 1));
  float s = _mm_cvtss_f32(v);
  for (int64_t i = k8; i < k; ++i) s = s + x[i] * w[i];
  if (bias_n != nullptr) s = s + *bias_n;
  return s;
}

// R rows of x times C weight rows: R*C accumulators.
template <int R, int C>
ATOMA_AVX2_INLINE void Tile(const float* x, int64_t ldx, const float* w, int64_t k,
                            const float* bias, float* y, int64_t ldy, int64_t n0) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t k8 = k - k % 8;
  for (int64_t i = 0; i < k8; i += 8) {
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = _mm256_loadu_ps(w + (n0 + c) * k + i);
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * ldx + i);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      const int64_t n = n0 + c;
      y[r * ldy + n] =
          Finish(acc[r][c], x + r * ldx, w + n * k, k8, k, bias != nullptr ? bias + n : nullptr);
    }
  }
}

}  // namespace

ATOMA_AVX2 void GemmAvx2Range(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t k,
                              const float* bias, float* y, int64_t ldy, int64_t n_begin,
                              int64_t n_end) {
  if (rows < 4) {
    // Weight row outer, batch rows inner, one weight row at a time: a single sequential stream
    // from memory. Tile<1,4> (four interleaved weight-row streams) reached only about half the
    // DRAM bandwidth at batch 1; Tile<1,1> gives the same bits per element.
    for (int64_t n = n_begin; n < n_end; ++n) {
      for (int64_t r = 0; r < rows; ++r)
        Tile<1, 1>(x + r * ldx, ldx, w, k, bias, y + r * ldy, ldy, n);
    }
    return;
  }
  // Weight blocks of 4 rows outer, batch rows inner: a block is read from memory once and reused
  // from L1 for every row of x.
  int64_t n = n_begin;
  for (; n + 4 <= n_end; n += 4) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
      Tile<4, 2>(x + r * ldx, ldx, w, k, bias, y + r * ldy, ldy, n);
      Tile<4, 2>(x + r * ldx, ldx, w, k, bias, y + r * ldy, ldy, n + 2);
    }
    for (; r < rows; ++r) Tile<1, 4>(x + r * ldx, ldx, w, k, bias, y + r * ldy, ldy, n);
  }
  for (; n < n_end; ++n) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) Tile<4, 1>(x + r * ldx, ldx, w, k, bias, y + r * ldy, ldy, n);
    for (; r < rows; ++r) Tile<1, 1>(x + r * ldx, ldx, w, k, bias, y + r * ldy, ldy, n);
  }
}

}  // namespace atoma::engine::internal
