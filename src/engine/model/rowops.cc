// Portable row kernels (rowops.h) and the dispatch to the AVX2 ones (rowops_avx2.cc). Compiled with
// -ffp-contract=off like the whole library: every multiply and add below rounds on its own.
#include "atoma/engine/rowops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "rowops_internal.h"

namespace atoma::engine {

float FixedExp(float x) {
  using namespace internal::exp_constants;
  x = std::min(std::max(x, kMinX), kMaxX);
  const float n = std::nearbyint(x * kLog2e);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kC7;
  p = p * r + kC6;
  p = p * r + kC5;
  p = p * r + kC4;
  p = p * r + kC3;
  p = p * r + kC2;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return p * two_n;
}

namespace {

// The 8-lane sum both kernels use: lanes over blocks of 8, a fixed combine, then the tail.
inline float Combine8(const float lane[8]) {
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

float Dot8(const float* a, const float* b, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t n8 = n - n % 8;
  for (int64_t i = 0; i < n8; i += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += a[i + l] * b[i + l];
  }
  float s = Combine8(lane);
  for (int64_t i = n8; i < n; ++i) s += a[i] * b[i];
  return s;
}

void AttendHeadPortable(const float* q, const float* K, const float* V, int64_t len, int64_t hd,
                        float scale, float* sc, float* out) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < len; ++j) {
    sc[j] = Dot8(q, K + j * hd, hd) * scale;
    mx = std::max(mx, sc[j]);
  }
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t len8 = len - len % 8;
  for (int64_t j = 0; j < len; ++j) sc[j] = FixedExp(sc[j] - mx);
  for (int64_t j = 0; j < len8; j += 8) {
    for (int l = 0; l < 8; ++l) lane[l] += sc[j + l];
  }
  float sum = Combine8(lane);
  for (int64_t j = len8; j < len; ++j) sum += sc[j];
  const float inv = 1.0f / sum;
  for (int64_t d = 0; d < hd; ++d) out[d] = 0;
  for (int64_t j = 0; j < len; ++j) {
    const float p = sc[j] * inv;
    const float* v = V + j * hd;
    for (int64_t d = 0; d < hd; ++d) out[d] += p * v[d];
  }
}

}  // namespace

void AttendHead(GemmPath path, const float* q, const float* K, const float* V, int64_t len,
                int64_t hd, float scale, float* scores, float* out) {
  if (path == GemmPath::kAvx2) {
    internal::AttendHeadAvx2(q, K, V, len, hd, scale, scores, out);
  } else {
    AttendHeadPortable(q, K, V, len, hd, scale, scores, out);
  }
}

void SiluMul(GemmPath path, const float* g, const float* u, float* a, int64_t n) {
  if (path == GemmPath::kAvx2) {
    internal::SiluMulAvx2(g, u, a, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) a[i] = (g[i] / (1.0f + FixedExp(-g[i]))) * u[i];
}

}  // namespace atoma::engine
