// Sampling and stopping, as pure functions over plain data: the counter-based PRNG, token selection
// from a row of logits (greedy, temperature, top-k, top-p) with log-probabilities, and the stop
// string filter that holds back streamed text which may turn out to be part of a stop string.
//
// Everything here is part of the protocol (DESIGN §3, §4.5): two nodes of one echelon must pick the
// same token from the same logits, so the algorithms are specified exactly below, in double
// precision, with every sum taken in a stated order. Changing any of them changes outputs, which
// the golden-value tests in tests/unit/runtime catch on purpose.
//
// Thread-safety: the free functions are pure and thread-safe. StopStringFilter is a value type with
// no internal locking (one per request).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/crypto/sha256.h"

namespace atoma::engine {

struct SamplingParams {
  double temperature = 0.0;  // 0 = greedy (argmax, ties to the lowest id); must be finite, >= 0
  int top_k = 0;             // 0 = off; larger than the vocabulary = off
  double top_p = 1.0;        // in (0, 1]; 1 = off
  uint64_t seed = 0;
  int top_logprobs = 0;  // alternatives reported per generated token (0..20)
};

struct TokenLogprob {
  int32_t token_id = 0;
  double logprob = 0.0;
};

// The sampling PRNG: a double uniform in [0, 1), a pure function of (seed, request_key, step).
//
//   d = SHA-256("atoma/sample" ‖ 0x00 ‖ seed as uint64 big-endian ‖ request_key (32 bytes) ‖
//               step as uint64 big-endian)
//   x = the first 8 bytes of d read as a big-endian uint64
//   u = (x >> 11) · 2^-53            (the top 53 bits; exactly representable, never 1.0)
//
// The framing follows DESIGN §4's H(tag, ...) encoding. `step` is the 0-based index of the token
// being generated (0 for the token sampled from the prefill logits).
double PrngUniform(uint64_t seed, const crypto::Hash256& request_key, uint64_t step);

struct SampleResult {
  int32_t token_id = -1;
  double logprob = 0.0;                    // of token_id, see below
  std::vector<TokenLogprob> top_logprobs;  // params.top_logprobs entries (fewer if vocab smaller)
};

// Picks the next token from one row of logits. Exact algorithm (x = logits as doubles, V = size):
//
//  0. INVALID_ARGUMENT if V == 0, any x_i is NaN or +inf, or every x_i is -inf (no token can be
//     chosen); also for parameters outside their ranges (see SamplingParams).
//  1. Log-probabilities are the log-softmax of the RAW logits, before temperature, top-k and top-p:
//     m = max x, lse = m + log(Σ_{i ascending} exp(x_i − m)), logprob_i = x_i − lse. They describe
//     the model's distribution and do not depend on the sampling parameters (as vLLM's default;
//     OpenAI's API does not specify it). The reported logprob of a -inf logit is -inf.
//  2. temperature == 0: token = argmax x, ties to the lowest id. top_k/top_p do not change it (the
//     argmax is always inside their sets).
//  3. temperature > 0: weights w_i = exp((x_i − m) / temperature); tokens with w_i == 0 are
//  dropped.
//     The rest are ordered by w descending, ties by id ascending (a strict total order, so every
//     correct sort gives the same sequence).
//       top_k > 0: keep the first min(top_k, n) of that order.
//       top_p < 1: S = Σ w of the kept tokens in ascending id order; keep the shortest prefix of
//       the
//                  order whose running sum (accumulated in that order) is >= top_p · S (all kept
//                  if rounding means it never is). At least one token is always kept.
//     Draw: u = PrngUniform(params.seed, request_key, step); T = Σ w of the kept tokens in
//     ascending id order; walking the kept tokens in ascending id order with a running sum c, the
//     token is the first with c > u · T (the last kept token if rounding leaves none).
//  4. top_logprobs: the params.top_logprobs highest logprob_i, ordered by logprob descending, ties
//     by id ascending.
//
// exp and log come from the C library, so the bits are those of the platform's libm (glibc on
// every node we build); that is part of a node's echelon like its GEMM kernel.
absl::StatusOr<SampleResult> Sample(std::span<const float> logits, const SamplingParams& params,
                                    const crypto::Hash256& request_key, uint64_t step);

// Checks SamplingParams ranges; INVALID_ARGUMENT naming the field ("sampling.temperature", ...).
absl::Status ValidateSamplingParams(const SamplingParams& params);

// Stop strings on streamed text. Text goes in piece by piece (as the stream decoder produces it);
// what comes out is safe to send to the client: never a stop string, nothing after one, and never a
// suffix that could still become the start of one — that is held back until it is either ruled out
// (released by a later Push) or the generation ends (Flush).
//
// Generation stops at the first piece that completes a stop string; when that piece completes
// several, the one that starts first in the text wins.
class StopStringFilter {
 public:
  StopStringFilter() = default;
  // Empty strings in `stops` are ignored (validation upstream rejects them).
  explicit StopStringFilter(std::vector<std::string> stops);

  // Appends `piece` and returns the text that can be released now. Once a stop string has
  // completed, *stopped is set to true, the returned text ends right before it, and everything
  // after is dropped; further calls return "" with *stopped true.
  std::string Push(std::string_view piece, bool* stopped);
  // End of generation: returns the held-back text (empty after a stop) and clears it.
  std::string Flush();

  bool stopped() const { return stopped_; }
  // Bytes currently held back.
  size_t held() const { return buffer_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string buffer_;  // held-back text: the longest suffix that is a proper prefix of a stop
  bool stopped_ = false;
};

}  // namespace atoma::engine
