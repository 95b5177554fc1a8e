#include "atoma/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::engine {
namespace {

void AppendU64BigEndian(uint64_t v, uint8_t out[8]) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

}  // namespace

double PrngUniform(uint64_t seed, const crypto::Hash256& request_key, uint64_t step) {
  static constexpr std::string_view kTag("atoma/sample\0", 13);  // tag ‖ 0x00
  uint8_t seed_be[8];
  uint8_t step_be[8];
  AppendU64BigEndian(seed, seed_be);
  AppendU64BigEndian(step, step_be);
  crypto::Sha256 h;
  h.Update(kTag);
  h.Update(std::span<const uint8_t>(seed_be, 8));
  h.Update(std::span<const uint8_t>(request_key.data(), request_key.size()));
  h.Update(std::span<const uint8_t>(step_be, 8));
  const crypto::Hash256 d = h.Final();
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | d[i];
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

absl::Status ValidateSamplingParams(const SamplingParams& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampling.temperature must be a finite number >= 0, got ", params.temperature));
  }
  if (params.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_k must be >= 0 (0 = off), got ", params.top_k));
  }
  // Written so that NaN fails too.
  if (!(params.top_p > 0.0 && params.top_p <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_p must be in (0, 1], got ", params.top_p));
  }
  if (params.top_logprobs < 0 || params.top_logprobs > 20) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_logprobs must be in 0..20, got ", params.top_logprobs));
  }
  return absl::OkStatus();
}

absl::StatusOr<SampleResult> Sample(std::span<const float> logits, const SamplingParams& params,
                                    const crypto::Hash256& request_key, uint64_t step) {
  RETURN_IF_ERROR(ValidateSamplingParams(params));
  const size_t vocab = logits.size();
  if (vocab == 0) return absl::InvalidArgumentError("logits: empty row");
  if (vocab > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError("logits: row longer than the int32 id space");
  }

  // Max and argmax (strict > keeps the lowest id among ties); reject NaN and +inf.
  double m = -std::numeric_limits<double>::infinity();
  int32_t argmax = -1;
  for (size_t i = 0; i < vocab; ++i) {
    const float f = logits[i];
    if (std::isnan(f)) return absl::InvalidArgumentError(absl::StrCat("logits: NaN at token ", i));
    if (f == std::numeric_limits<float>::infinity()) {
      return absl::InvalidArgumentError(absl::StrCat("logits: +inf at token ", i));
    }
    if (static_cast<double>(f) > m) {
      m = f;
      argmax = static_cast<int32_t>(i);
    }
  }
  if (argmax < 0) return absl::InvalidArgumentError("logits: every logit is -inf");

  // Log-softmax of the raw logits; the sum runs in ascending id order.
  // At temperature 1 the sampling weights are these same terms ((x - m) / 1.0 == x - m exactly).
  const bool unit_temperature = params.temperature == 1.0;
  std::vector<double> w(unit_temperature ? vocab : 0);
  double sum = 0.0;
  for (size_t i = 0; i < vocab; ++i) {
    const double e = std::exp(static_cast<double>(logits[i]) - m);
    sum += e;
    if (unit_temperature) w[i] = e;
  }
  const double lse = m + std::log(sum);
  auto logprob = [&](int32_t id) { return static_cast<double>(logits[id]) - lse; };

  SampleResult result;
  if (params.temperature == 0.0) {
    result.token_id = argmax;
  } else {
    const double temp = params.temperature;
    if (!unit_temperature) {
      w.resize(vocab);
      for (size_t i = 0; i < vocab; ++i) {
        w[i] = std::exp((static_cast<double>(logits[i]) - m) / temp);
      }
    }
    std::vector<int32_t> cand;
    cand.reserve(vocab);
    for (size_t i = 0; i < vocab; ++i) {
      if (w[i] > 0.0) cand.push_back(static_cast<int32_t>(i));
    }
    // The argmax has w == exp(0) == 1, so cand is never empty.
    bool ascending = true;  // cand is built in id order; truncation reorders it
    auto before = [&w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
    if (params.top_k > 0 && static_cast<size_t>(params.top_k) < cand.size()) {
      std::nth_element(cand.begin(), cand.begin() + params.top_k, cand.end(), before);
      cand.resize(params.top_k);
      ascending = false;
    }
    if (params.top_p < 1.0) {
      if (!ascending) std::sort(cand.begin(), cand.end());
      ascending = true;
      double s = 0.0;
      for (int32_t id : cand) s += w[id];
      const double threshold = params.top_p * s;
      // Only the prefix of the order up to the cut is needed. Sorting a growing prefix gives the
      // same prefix as a full sort (strict total order); a flat diffuse distribution (a random
      // model) needs most of the vocabulary, so after two small rounds the rest is one full sort.
      struct Entry {
        double w;
        int32_t id;
      };
      std::vector<Entry> order(cand.size());
      for (size_t j = 0; j < cand.size(); ++j) order[j] = {w[cand[j]], cand[j]};
      auto entry_before = [](const Entry& a, const Entry& b) {
        return a.w > b.w || (a.w == b.w && a.id < b.id);
      };
      const size_t n = order.size();
      size_t keep = n;
      for (size_t k : {size_t{64}, size_t{1024}, n}) {
        k = std::min(k, n);
        if (k == n) {
          std::sort(order.begin(), order.end(), entry_before);
        } else {
          std::partial_sort(order.begin(), order.begin() + k, order.end(), entry_before);
        }
        double c = 0.0;
        bool found = false;
        for (size_t j = 0; j < k; ++j) {
          c += order[j].w;
          if (c >= threshold) {
            keep = j + 1;
            found = true;
            break;
          }
        }
        if (found || k == n) break;
      }
      if (keep < n && keep <= 256) {
        cand.resize(keep);
        for (size_t j = 0; j < keep; ++j) cand[j] = order[j].id;
        ascending = false;
      } else if (keep < n) {
        // Ascending ids of a large kept set through a mask over the vocabulary (cheaper than a
        // sort).
        std::vector<uint8_t> mask(vocab, 0);
        for (size_t j = 0; j < keep; ++j) mask[order[j].id] = 1;
        cand.clear();
        for (size_t i = 0; i < vocab; ++i) {
          if (mask[i]) cand.push_back(static_cast<int32_t>(i));
        }
        ascending = true;
      }
      // keep == n: everything stays and cand is already in ascending id order.
    }
    if (!ascending) std::sort(cand.begin(), cand.end());
    double total = 0.0;
    for (int32_t id : cand) total += w[id];
    const double target = PrngUniform(params.seed, request_key, step) * total;
    double c = 0.0;
    result.token_id = cand.back();
    for (int32_t id : cand) {
      c += w[id];
      if (c > target) {
        result.token_id = id;
        break;
      }
    }
  }
  result.logprob = logprob(result.token_id);

  if (params.top_logprobs > 0) {
    const size_t n = std::min<size_t>(params.top_logprobs, vocab);
    std::vector<int32_t> ids(vocab);
    std::iota(ids.begin(), ids.end(), 0);
    std::vector<double> lp(vocab);
    for (size_t i = 0; i < vocab; ++i) lp[i] = logprob(static_cast<int32_t>(i));
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&lp](int32_t a, int32_t b) {
      return lp[a] > lp[b] || (lp[a] == lp[b] && a < b);
    });
    result.top_logprobs.reserve(n);
    for (size_t j = 0; j < n; ++j) result.top_logprobs.push_back({ids[j], lp[ids[j]]});
  }
  return result;
}

StopStringFilter::StopStringFilter(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string StopStringFilter::Push(std::string_view piece, bool* stopped) {
  if (stopped_) {
    *stopped = true;
    return "";
  }
  buffer_.append(piece);
  // Nothing before buffer_ can start a stop string (that text was released only once ruled out),
  // so searching buffer_ alone finds every occurrence.
  size_t best = std::string::npos;
  for (const std::string& s : stops_) best = std::min(best, buffer_.find(s));
  if (best != std::string::npos) {
    std::string out = buffer_.substr(0, best);
    buffer_.clear();
    stopped_ = true;
    *stopped = true;
    return out;
  }
  *stopped = false;
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  const std::string_view buf(buffer_);
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, buf.size()); len > hold; --len) {
      if (buf.substr(buf.size() - len) == std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  std::string out = buffer_.substr(0, buffer_.size() - hold);
  buffer_.erase(0, buffer_.size() - hold);
  return out;
}

std::string StopStringFilter::Flush() {
  std::string out;
  out.swap(buffer_);
  return out;
}

}  // namespace atoma::engine
