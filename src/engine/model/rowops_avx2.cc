// The AVX2 row kernels (rowops.h): the portable operations of rowops.cc, 8 lanes at a time, with
// the same bits. Only multiplies, adds, divides, min/max and exact integer steps, each rounded on
// its own (no FMA: the file is compiled with -ffp-contract=off and calls no fmadd). Functions
// marked ATOMA_AVX2 run only after CpuHasAvx2Fma().
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "atoma/engine/rowops.h"
#include "rowops_internal.h"

#if defined(__GNUC__) || defined(__clang__)
#define ATOMA_AVX2 __attribute__((target("avx2,fma")))
#define ATOMA_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#else
#error "the AVX2 kernels need GCC or Clang"
#endif

namespace atoma::engine::internal {
namespace {

using namespace exp_constants;

// FixedExp on 8 lanes: the same steps as the scalar one.
ATOMA_AVX2_INLINE __m256 Exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kMinX)), _mm256_set1_ps(kMaxX));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Hi))),
                                 _mm256_mul_ps(n, _mm256_set1_ps(kLn2Lo)));
  __m256 p = _mm256_set1_ps(kC7);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC6));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC5));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC4));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC3));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC2));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

ATOMA_AVX2_INLINE float Combine8(__m256 v) {
  alignas(32) float lane[8];
  _mm256_store_ps(lane, v);
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

ATOMA_AVX2_INLINE float Dot8(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  const int64_t n8 = n - n % 8;
  for (int64_t i = 0; i < n8; i += 8) {
    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  }
  float s = Combine8(acc);
  for (int64_t i = n8; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

ATOMA_AVX2 void AttendHeadAvx2(const float* q, const float* K, const float* V, int64_t len,
                               int64_t hd, float scale, float* sc, float* out) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < len; ++j) {
    sc[j] = Dot8(q, K + j * hd, hd) * scale;
    mx = std::max(mx, sc[j]);
  }
  const int64_t len8 = len - len % 8;
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 lanes = _mm256_setzero_ps();
  for (int64_t j = 0; j < len8; j += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(sc + j), vmx));
    _mm256_storeu_ps(sc + j, e);
    lanes = _mm256_add_ps(lanes, e);
  }
  for (int64_t j = len8; j < len; ++j) sc[j] = FixedExp(sc[j] - mx);
  float sum = Combine8(lanes);
  for (int64_t j = len8; j < len; ++j) sum += sc[j];
  const float inv = 1.0f / sum;
  const int64_t hd8 = hd - hd % 8;
  for (int64_t d = 0; d < hd; ++d) out[d] = 0;
  for (int64_t j = 0; j < len; ++j) {
    const float p = sc[j] * inv;
    const __m256 vp = _mm256_set1_ps(p);
    const float* v = V + j * hd;
    for (int64_t d = 0; d < hd8; d += 8) {
      _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_loadu_ps(out + d),
                                              _mm256_mul_ps(vp, _mm256_loadu_ps(v + d))));
    }
    for (int64_t d = hd8; d < hd; ++d) out[d] += p * v[d];
  }
}

ATOMA_AVX2 void SiluMulAvx2(const float* g, const float* u, float* a, int64_t n) {
  const int64_t n8 = n - n % 8;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 den = _mm256_add_ps(one, Exp8(_mm256_xor_ps(gv, sign)));
    _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_div_ps(gv, den), _mm256_loadu_ps(u + i)));
  }
  for (int64_t i = n8; i < n; ++i) a[i] = (g[i] / (1.0f + FixedExp(-g[i]))) * u[i];
}

}  // namespace atoma::engine::internal
