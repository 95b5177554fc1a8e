// The AVX2 row kernels behind rowops.h and the constants both versions share; private to
// atoma_model.
#pragma once

#include <cstdint>

namespace atoma::engine::internal {

namespace exp_constants {
inline constexpr float kMinX = -87.0f;
inline constexpr float kMaxX = 88.0f;
inline constexpr float kLog2e = 1.44269504088896341f;
// ln 2 = kLn2Hi + kLn2Lo; kLn2Hi has 8 significant bits, so n * kLn2Hi is exact for |n| <= 127.
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
// 1/k! for k = 2..7 (the Taylor polynomial of e^r on |r| <= ln2 / 2).
inline constexpr float kC2 = 1.0f / 2;
inline constexpr float kC3 = 1.0f / 6;
inline constexpr float kC4 = 1.0f / 24;
inline constexpr float kC5 = 1.0f / 120;
inline constexpr float kC6 = 1.0f / 720;
inline constexpr float kC7 = 1.0f / 5040;
}  // namespace exp_constants

// Precondition: CpuHasAvx2Fma(). The same bits as the portable versions (rowops.cc).
void AttendHeadAvx2(const float* q, const float* K, const float* V, int64_t len, int64_t hd,
                    float scale, float* scores, float* out);
void SiluMulAvx2(const float* g, const float* u, float* a, int64_t n);

}  // namespace atoma::engine::internal
