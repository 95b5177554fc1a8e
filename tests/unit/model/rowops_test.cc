// The fixed-order row kernels (rowops.h): FixedExp against libm over its whole range, attention
// and SiLU*up against double-precision references, and the AVX2 versions bit for bit equal to the
// portable ones on odd sizes (tails of the 8-lane loops).
#include "atoma/engine/rowops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace atoma::engine {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(FixedExpTest, CloseToLibmOverItsRangeAndClamped) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(FixedExp(x) - want) / want);
  }
  std::printf("[ exp      ] FixedExp worst relative error %.2e over [-87, 88]\n", worst);
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(FixedExp(0.0f), 1.0f);
  EXPECT_EQ(FixedExp(-1000.0f), FixedExp(-87.0f));  // clamped, never 0 or a denormal
  EXPECT_GT(FixedExp(-1000.0f), 0.0f);
  EXPECT_EQ(FixedExp(1000.0f), FixedExp(88.0f));  // clamped, never inf
  EXPECT_TRUE(std::isfinite(FixedExp(1000.0f)));
}

// Attention of one head against a double-precision softmax, and AVX2 == portable.
TEST(RowOpsTest, AttendHeadMatchesReferenceAndPathsAgree) {
  for (const auto& [len, hd] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 16}, {7, 16}, {8, 64}, {33, 64}, {300, 64}, {1025, 128}, {5, 10}}) {
    const auto q = Random(hd, 1 + len, 1.0f);
    const auto K = Random(len * hd, 2 + len, 1.0f);
    const auto V = Random(len * hd, 3 + len, 1.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    std::vector<double> ref(hd, 0.0), w(len);
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < len; ++j) {
      double s = 0;
      for (int64_t d = 0; d < hd; ++d) s += static_cast<double>(q[d]) * K[j * hd + d];
      w[j] = s * scale;
      mx = std::max(mx, w[j]);
    }
    for (auto& x : w) sum += (x = std::exp(x - mx));
    for (int64_t j = 0; j < len; ++j) {
      for (int64_t d = 0; d < hd; ++d) ref[d] += w[j] / sum * V[j * hd + d];
    }
    std::vector<float> scores(len), portable(hd);
    AttendHead(GemmPath::kPortable, q.data(), K.data(), V.data(), len, hd, scale, scores.data(),
               portable.data());
    for (int64_t d = 0; d < hd; ++d) {
      EXPECT_NEAR(portable[d], ref[d], 1e-5) << "len " << len << " hd " << hd << " d " << d;
    }
    if (!CpuHasAvx2Fma()) continue;
    std::vector<float> avx2(hd);
    AttendHead(GemmPath::kAvx2, q.data(), K.data(), V.data(), len, hd, scale, scores.data(),
               avx2.data());
    EXPECT_TRUE(SameBits(portable, avx2)) << "len " << len << " hd " << hd;
  }
}

TEST(RowOpsTest, SiluMulMatchesReferenceAndPathsAgree) {
  for (int64_t n : {1, 7, 8, 9, 176, 1536, 1539}) {
    auto g = Random(n, 10 + n, 12.0f);
    const auto u = Random(n, 20 + n, 2.0f);
    if (n > 3) {
      g[0] = 200.0f;   // exp(-200) clamps: silu(x) = x
      g[1] = -200.0f;  // exp(200) clamps: silu(x) ~ 0
      g[2] = 0.0f;
    }
    std::vector<float> portable(n);
    SiluMul(GemmPath::kPortable, g.data(), u.data(), portable.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double x = g[i];
      const double want = x / (1.0 + std::exp(-x)) * u[i];
      EXPECT_NEAR(portable[i], want, 1e-5 * std::max(1.0, std::abs(want)))
          << "n " << n << " i " << i;
    }
    if (!CpuHasAvx2Fma()) continue;
    std::vector<float> avx2(n);
    SiluMul(GemmPath::kAvx2, g.data(), u.data(), avx2.data(), n);
    EXPECT_TRUE(SameBits(portable, avx2)) << "n " << n;
  }
}

}  // namespace
}  // namespace atoma::engine
