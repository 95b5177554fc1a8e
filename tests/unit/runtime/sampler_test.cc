// Sampler, PRNG and stop-string filter: pure functions, tested exhaustively. The golden values
// were computed by an independent Python implementation of the algorithm documented in sampler.h
// (hashlib SHA-256, math.exp), so a change of algorithm or summation order shows up here.
#include "atoma/engine/sampler.h"

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atoma::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

crypto::Hash256 Key(uint8_t start, uint8_t stride) {
  crypto::Hash256 k{};
  for (int i = 0; i < 32; ++i) k[i] = static_cast<uint8_t>(start + stride * i);
  return k;
}

TEST(PrngTest, GoldenValues) {
  const crypto::Hash256 zero{};
  const crypto::Hash256 iota = Key(0, 1);
  crypto::Hash256 ff;
  ff.fill(0xff);
  EXPECT_EQ(PrngUniform(0, zero, 0), 0x1.61b56285639b9p-1);
  EXPECT_EQ(PrngUniform(42, iota, 7), 0x1.a0b8e5c4f11a0p-3);
  EXPECT_EQ(PrngUniform(~uint64_t{0}, ff, ~uint64_t{0}), 0x1.c27d12304ac59p-1);
  EXPECT_EQ(PrngUniform(1, zero, 0), 0x1.bbca58f673977p-1);
  EXPECT_EQ(PrngUniform(0, zero, 1), 0x1.9fb468953a140p-7);
}

TEST(PrngTest, UniformInUnitInterval) {
  const crypto::Hash256 key = Key(3, 5);
  constexpr int kN = 50000;
  double sum = 0;
  int buckets[10] = {};
  for (int s = 0; s < kN; ++s) {
    const double u = PrngUniform(99, key, s);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    ++buckets[static_cast<int>(u * 10)];
  }
  EXPECT_NEAR(sum / kN, 0.5, 0.01);
  for (int b : buckets) EXPECT_NEAR(b, kN / 10, 5 * std::sqrt(kN * 0.1 * 0.9));
}

TEST(PrngTest, EveryInputMatters) {
  const crypto::Hash256 key = Key(0, 1);
  crypto::Hash256 key2 = key;
  key2[31] ^= 1;
  const double base = PrngUniform(5, key, 9);
  EXPECT_NE(base, PrngUniform(6, key, 9));
  EXPECT_NE(base, PrngUniform(5, key2, 9));
  EXPECT_NE(base, PrngUniform(5, key, 10));
  EXPECT_EQ(base, PrngUniform(5, key, 9));
}

SamplingParams Params(double t, int k = 0, double p = 1.0, uint64_t seed = 0, int top_lp = 0) {
  SamplingParams sp;
  sp.temperature = t;
  sp.top_k = k;
  sp.top_p = p;
  sp.seed = seed;
  sp.top_logprobs = top_lp;
  return sp;
}

int32_t Token(std::span<const float> logits, const SamplingParams& p, uint64_t step,
              const crypto::Hash256& key = {}) {
  auto r = Sample(logits, p, key, step);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->token_id : -1;
}

TEST(SampleTest, GreedyIsArgmaxTiesToLowestId) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  EXPECT_EQ(Token(logits, Params(0), 0), 1);
  // top_k / top_p never move the argmax.
  EXPECT_EQ(Token(logits, Params(0, 1, 0.01), 3), 1);
  const std::vector<float> equal(7, 3.25f);
  EXPECT_EQ(Token(equal, Params(0), 0), 0);
  const std::vector<float> masked = {kNegInf, kNegInf, -100.0f, kNegInf};
  EXPECT_EQ(Token(masked, Params(0), 0), 2);
}

TEST(SampleTest, LogprobsAreRawLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, kNegInf};
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  for (double t : {0.0, 0.5, 1.0, 3.0}) {
    auto r = Sample(logits, Params(t, 0, 1.0, 1, 4), {}, 0);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NEAR(r->logprob, logits[r->token_id] - lse, 1e-12);
    ASSERT_EQ(r->top_logprobs.size(), 4u);
    EXPECT_EQ(r->top_logprobs[0].token_id, 2);
    EXPECT_NEAR(r->top_logprobs[0].logprob, 3.0 - lse, 1e-12);
    EXPECT_EQ(r->top_logprobs[1].token_id, 1);
    EXPECT_EQ(r->top_logprobs[2].token_id, 0);
    EXPECT_EQ(r->top_logprobs[3].token_id, 3);
    EXPECT_EQ(r->top_logprobs[3].logprob, -std::numeric_limits<double>::infinity());
    double total = 0;
    for (const auto& tl : r->top_logprobs) total += std::exp(tl.logprob);
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

TEST(SampleTest, TopLogprobsTiesByIdAndClampedToVocab) {
  const std::vector<float> logits = {1.0f, 5.0f, 1.0f, 5.0f, 0.0f};
  auto r = Sample(logits, Params(0, 0, 1.0, 0, 20), {}, 0);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->top_logprobs.size(), 5u);
  std::vector<int32_t> ids;
  for (const auto& tl : r->top_logprobs) ids.push_back(tl.token_id);
  EXPECT_THAT(ids, ElementsAre(1, 3, 0, 2, 4));
  auto none = Sample(logits, Params(0), {}, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->top_logprobs.empty());
}

TEST(SampleTest, RejectsBadLogits) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (double t : {0.0, 1.0}) {
    std::vector<float> with_nan = {0.0f, nan, 1.0f};
    auto r = Sample(with_nan, Params(t), {}, 0);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("NaN at token 1"));
    std::vector<float> with_inf = {0.0f, 1.0f, inf};
    EXPECT_EQ(Sample(with_inf, Params(t), {}, 0).status().code(),
              absl::StatusCode::kInvalidArgument);
    std::vector<float> all_masked(5, kNegInf);
    EXPECT_EQ(Sample(all_masked, Params(t), {}, 0).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Sample({}, Params(t), {}, 0).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(SampleTest, RejectsBadParamsNamingTheField) {
  const std::vector<float> logits = {0.0f, 1.0f};
  struct Case {
    SamplingParams p;
    const char* field;
  };
  const Case cases[] = {
      {Params(-0.1), "sampling.temperature"},
      {Params(std::nan("")), "sampling.temperature"},
      {Params(std::numeric_limits<double>::infinity()), "sampling.temperature"},
      {Params(1, -1), "sampling.top_k"},
      {Params(1, 0, 0.0), "sampling.top_p"},
      {Params(1, 0, 1.5), "sampling.top_p"},
      {Params(1, 0, std::nan("")), "sampling.top_p"},
      {Params(1, 0, 1.0, 0, -1), "sampling.top_logprobs"},
      {Params(1, 0, 1.0, 0, 21), "sampling.top_logprobs"},
  };
  for (const Case& c : cases) {
    auto r = Sample(logits, c.p, {}, 0);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(r.status().message(), HasSubstr(c.field));
    EXPECT_EQ(ValidateSamplingParams(c.p).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(ValidateSamplingParams(Params(0.7, 50, 0.9, 1, 20)).ok());
}

// Empirical frequencies over many steps against the exact probabilities.
std::vector<double> Frequencies(std::span<const float> logits, const SamplingParams& p, int n) {
  std::vector<double> f(logits.size());
  const crypto::Hash256 key = Key(7, 13);
  for (int s = 0; s < n; ++s) f[Token(logits, p, s, key)] += 1.0 / n;
  return f;
}

void ExpectDistribution(const std::vector<double>& freq, const std::vector<double>& probs, int n) {
  ASSERT_EQ(freq.size(), probs.size());
  for (size_t i = 0; i < probs.size(); ++i) {
    const double sigma = std::sqrt(probs[i] * (1 - probs[i]) / n);
    if (probs[i] == 0) {
      EXPECT_EQ(freq[i], 0.0) << "token " << i;
    } else {
      EXPECT_NEAR(freq[i], probs[i], 5 * sigma + 1e-9) << "token " << i;
    }
  }
}

std::vector<double> Softmax(const std::vector<double>& z, const std::vector<bool>& keep) {
  double m = -1e300;
  for (size_t i = 0; i < z.size(); ++i)
    if (keep[i]) m = std::max(m, z[i]);
  std::vector<double> p(z.size());
  double s = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    p[i] = keep[i] ? std::exp(z[i] - m) : 0.0;
    s += p[i];
  }
  for (double& v : p) v /= s;
  return p;
}

TEST(SampleDistributionTest, Temperature) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f, kNegInf};
  constexpr int kN = 20000;
  for (double t : {1.0, 0.5, 2.0}) {
    std::vector<double> z;
    for (float x : logits) z.push_back(x / t);
    const auto probs = Softmax(z, {true, true, true, true, false});
    ExpectDistribution(Frequencies(logits, Params(t, 0, 1.0, 11), kN), probs, kN);
  }
}

TEST(SampleDistributionTest, TopKAndTopP) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f};
  constexpr int kN = 20000;
  const std::vector<double> z = {0, 1, 2, 3};
  // top_k = 2 keeps {2, 3}, renormalized.
  ExpectDistribution(Frequencies(logits, Params(1, 2), kN), Softmax(z, {false, false, true, true}),
                     kN);
  // p = [.032, .087, .237, .644]: top_p = 0.8 keeps {3, 2}; 0.9 keeps {3, 2, 1}.
  ExpectDistribution(Frequencies(logits, Params(1, 0, 0.8), kN),
                     Softmax(z, {false, false, true, true}), kN);
  ExpectDistribution(Frequencies(logits, Params(1, 0, 0.9), kN),
                     Softmax(z, {false, true, true, true}), kN);
  // top_k then top_p over the renormalized top-k mass: top-3 = [.089, .242, .665] → 0.7 keeps 2.
  ExpectDistribution(Frequencies(logits, Params(1, 3, 0.7), kN),
                     Softmax(z, {false, false, true, true}), kN);
}

TEST(SampleDistributionTest, EqualLogitsAreUniformAndTruncateByLowestId) {
  const std::vector<float> logits(4, 1.5f);
  constexpr int kN = 20000;
  ExpectDistribution(Frequencies(logits, Params(1), kN), {0.25, 0.25, 0.25, 0.25}, kN);
  ExpectDistribution(Frequencies(logits, Params(1, 2), kN), {0.5, 0.5, 0, 0}, kN);
  ExpectDistribution(Frequencies(logits, Params(1, 0, 0.5), kN), {0.5, 0.5, 0, 0}, kN);
  ExpectDistribution(Frequencies(logits, Params(1, 0, 0.51), kN), {1. / 3, 1. / 3, 1. / 3, 0}, kN);
}

TEST(SampleTest, TinyTopPAndTopK1AreGreedy) {
  std::vector<float> logits;
  for (int i = 0; i < 300; ++i) logits.push_back(std::sin(i * 0.37f) * 3);
  const int32_t greedy = Token(logits, Params(0), 0);
  for (int s = 0; s < 200; ++s) {
    EXPECT_EQ(Token(logits, Params(1.5, 0, 1e-9, s), s), greedy);
    EXPECT_EQ(Token(logits, Params(1.5, 1, 1.0, s), s), greedy);
  }
}

TEST(SampleTest, TopKLargerThanVocabIsOff) {
  std::vector<float> logits;
  for (int i = 0; i < 100; ++i) logits.push_back(std::cos(i * 1.1f));
  for (int s = 0; s < 200; ++s) {
    EXPECT_EQ(Token(logits, Params(0.9, 0, 1.0, 3), s),
              Token(logits, Params(0.9, 1000, 1.0, 3), s));
    EXPECT_EQ(Token(logits, Params(0.9, 0, 1.0, 3), s), Token(logits, Params(0.9, 100, 1.0, 3), s));
  }
}

TEST(SampleTest, MaskedTokensAreNeverSampled) {
  std::vector<float> logits(50, kNegInf);
  logits[17] = -3.0f;
  logits[41] = -3.5f;
  for (int s = 0; s < 500; ++s) {
    const int32_t t = Token(logits, Params(5.0, 0, 1.0, 8), s);
    EXPECT_TRUE(t == 17 || t == 41) << t;
  }
}

// The same inputs as ref_sampler.py: 1000 logits with many ties, key 0..31, seed 1234.
TEST(SampleTest, GoldenTokens) {
  std::vector<float> logits;
  for (int i = 0; i < 1000; ++i) logits.push_back(((i * 7919) % 613) / 64.0f - 4.0f);
  const crypto::Hash256 key = Key(0, 1);
  struct Case {
    double t;
    int k;
    double p;
    std::vector<int32_t> expected;
  };
  const Case cases[] = {
      {1.0, 0, 1.0, {234, 160, 233, 86, 920, 271, 184, 187, 272, 344, 479, 835}},
      {0.7, 40, 1.0, {233, 172, 233, 86, 895, 282, 184, 184, 282, 319, 466, 834}},
      {1.3, 0, 0.9, {234, 160, 233, 86, 920, 271, 184, 187, 272, 344, 479, 835}},
      {0.8, 50, 0.5, {270, 184, 270, 86, 932, 282, 233, 233, 282, 319, 466, 846}},
      {2.0, 0, 1.0, {234, 160, 233, 86, 921, 271, 184, 187, 273, 344, 473, 835}},
  };
  for (const Case& c : cases) {
    std::vector<int32_t> got;
    for (int s = 0; s < 12; ++s) got.push_back(Token(logits, Params(c.t, c.k, c.p, 1234), s, key));
    EXPECT_EQ(got, c.expected) << "t=" << c.t << " k=" << c.k << " p=" << c.p;
  }
}

TEST(SampleTest, LargeVocabTopPMatchesFullSortReference) {
  // A vocabulary large enough that the growing partial sort needs several rounds.
  // Peaked (sigma 2) and nearly flat (sigma 0.05, like a random model) logits: the cut falls in
  // the first partial sort, the second, or needs the full sort; kept sets small and large.
  for (float sigma : {2.0f, 0.05f}) {
    std::mt19937 rng(5);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> logits(20000);
    for (float& x : logits) x = dist(rng);
    const crypto::Hash256 key = Key(1, 2);
    for (double p : {0.003, 0.3, 0.95, 0.999}) {
      for (int s = 0; s < 20; ++s) {
        // Reference: full sort, written independently of the implementation.
        const SamplingParams sp = Params(1.0, 0, p, 77);
        double m = -1e300;
        for (float x : logits) m = std::max<double>(m, x);
        std::vector<double> w(logits.size());
        std::vector<int32_t> order(logits.size());
        for (size_t i = 0; i < logits.size(); ++i) {
          w[i] = std::exp((logits[i] - m) / 1.0);
          order[i] = static_cast<int32_t>(i);
        }
        std::sort(order.begin(), order.end(),
                  [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
        double total = 0;
        for (double v : w) total += v;
        size_t keep = order.size();
        double c = 0;
        for (size_t j = 0; j < order.size(); ++j) {
          c += w[order[j]];
          if (c >= p * total) {
            keep = j + 1;
            break;
          }
        }
        std::vector<int32_t> kept(order.begin(), order.begin() + keep);
        std::sort(kept.begin(), kept.end());
        double t = 0;
        for (int32_t id : kept) t += w[id];
        const double target = PrngUniform(77, key, s) * t;
        int32_t expected = kept.back();
        c = 0;
        for (int32_t id : kept) {
          c += w[id];
          if (c > target) {
            expected = id;
            break;
          }
        }
        EXPECT_EQ(Token(logits, sp, s, key), expected)
            << "sigma=" << sigma << " p=" << p << " step=" << s;
        // top_k first, then top_p over the kept set, against the same reference on the top-k.
        if (s == 0) {
          const SamplingParams spk = Params(1.0, 5000, p, 77);
          std::vector<int32_t> topk(order.begin(), order.begin() + 5000);
          double tk = 0;
          std::vector<int32_t> topk_sorted = topk;
          std::sort(topk_sorted.begin(), topk_sorted.end());
          for (int32_t id : topk_sorted) tk += w[id];
          size_t kk = topk.size();
          double ck = 0;
          for (size_t j = 0; j < topk.size(); ++j) {
            ck += w[topk[j]];
            if (ck >= p * tk) {
              kk = j + 1;
              break;
            }
          }
          std::vector<int32_t> kept_k(topk.begin(), topk.begin() + kk);
          std::sort(kept_k.begin(), kept_k.end());
          double tt = 0;
          for (int32_t id : kept_k) tt += w[id];
          const double tgt = PrngUniform(77, key, s) * tt;
          int32_t exp_k = kept_k.back();
          ck = 0;
          for (int32_t id : kept_k) {
            ck += w[id];
            if (ck > tgt) {
              exp_k = id;
              break;
            }
          }
          EXPECT_EQ(Token(logits, spk, s, key), exp_k) << "top_k sigma=" << sigma << " p=" << p;
        }
      }
    }
  }
}

// ---- StopStringFilter ----

std::string RunFilter(StopStringFilter& f, const std::vector<std::string>& pieces, bool* stopped,
                      std::vector<std::string>* outs = nullptr) {
  std::string all;
  *stopped = false;
  for (const auto& p : pieces) {
    std::string out = f.Push(p, stopped);
    if (outs) outs->push_back(out);
    all += out;
    if (*stopped) return all;
  }
  return all + f.Flush();
}

TEST(StopStringFilterTest, StopAcrossPieceBoundaries) {
  StopStringFilter f({"STOP"});
  bool stopped = false;
  std::vector<std::string> outs;
  EXPECT_EQ(RunFilter(f, {"hello S", "T", "O", "P world"}, &stopped, &outs), "hello ");
  EXPECT_TRUE(stopped);
  // "S", "ST", "STO" were held back, never streamed.
  EXPECT_THAT(outs, ElementsAre("hello ", "", "", ""));
  EXPECT_EQ(f.Push("more", &stopped), "");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(f.Flush(), "");
}

TEST(StopStringFilterTest, HeldPrefixIsReleasedWhenRuledOut) {
  StopStringFilter f({"STOP"});
  bool stopped = false;
  std::vector<std::string> outs;
  EXPECT_EQ(RunFilter(f, {"a ST", "ART", "x"}, &stopped, &outs), "a STARTx");
  EXPECT_FALSE(stopped);
  EXPECT_THAT(outs, ElementsAre("a ", "START", "x"));
}

TEST(StopStringFilterTest, HeldTextFlushedAtEnd) {
  StopStringFilter f({"</end>"});
  bool stopped = false;
  EXPECT_EQ(f.Push("text</e", &stopped), "text");
  EXPECT_EQ(f.held(), 3u);
  EXPECT_EQ(f.Flush(), "</e");
  EXPECT_FALSE(stopped);
}

TEST(StopStringFilterTest, EarliestStartWinsAndOverlaps) {
  bool stopped = false;
  StopStringFilter f1({"cd", "abcd"});
  EXPECT_EQ(RunFilter(f1, {"xxab", "cdyy"}, &stopped), "xx");
  EXPECT_TRUE(stopped);
  StopStringFilter f2({"ab"});
  EXPECT_EQ(RunFilter(f2, {"a", "a", "b"}, &stopped), "a");
  EXPECT_TRUE(stopped);
  StopStringFilter f3({"\n\n"});
  EXPECT_EQ(RunFilter(f3, {"line\n", "\nnext"}, &stopped), "line");
  StopStringFilter f4({"x"});
  EXPECT_EQ(RunFilter(f4, {"x"}, &stopped), "");
  EXPECT_TRUE(stopped);
  StopStringFilter none;
  EXPECT_EQ(RunFilter(none, {"any", "thing"}, &stopped), "anything");
  EXPECT_EQ(none.held(), 0u);
}

// Property test: random texts over a small alphabet, random stops, random splits; the streamed
// output is exactly the reference and every streamed prefix is a prefix of the reference.
TEST(StopStringFilterTest, RandomizedAgainstReference) {
  std::mt19937 rng(12345);
  auto rand_str = [&](int min_len, int max_len) {
    std::string s(std::uniform_int_distribution<int>(min_len, max_len)(rng), 'a');
    for (char& c : s) c = "abc"[rng() % 3];
    return s;
  };
  for (int iter = 0; iter < 3000; ++iter) {
    const std::string text = rand_str(0, 30);
    std::vector<std::string> stops;
    const int n_stops = rng() % 4;
    for (int i = 0; i < n_stops; ++i) stops.push_back(rand_str(1, 4));
    std::vector<std::string> pieces;
    for (size_t pos = 0; pos < text.size();) {
      const size_t len = std::min<size_t>(text.size() - pos, rng() % 4);
      pieces.push_back(text.substr(pos, len));
      pos += len;
    }
    // Reference: the first piece boundary where any stop occurs in the text so far.
    std::string expected = text;
    bool expect_stop = false;
    size_t end = 0;
    for (const auto& p : pieces) {
      end += p.size();
      size_t best = std::string::npos;
      for (const auto& s : stops) best = std::min(best, text.substr(0, end).find(s));
      if (best != std::string::npos) {
        expected = text.substr(0, best);
        expect_stop = true;
        break;
      }
    }
    StopStringFilter f(stops);
    bool stopped = false;
    std::string streamed;
    for (const auto& p : pieces) {
      streamed += f.Push(p, &stopped);
      ASSERT_EQ(expected.compare(0, streamed.size(), streamed), 0) << text;
      if (stopped) break;
    }
    if (!stopped) streamed += f.Flush();
    ASSERT_EQ(streamed, expected) << "text=" << text;
    ASSERT_EQ(stopped, expect_stop) << "text=" << text;
  }
}

}  // namespace
}  // namespace atoma::engine
