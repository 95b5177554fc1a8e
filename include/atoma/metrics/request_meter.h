// RequestMeter: the Prometheus observations of one generation, shared by the gRPC API and the
// OpenAI-compatible HTTP API so both report the same metrics the same way: time to first token,
// inter-token latency, and, when it ends, its outcome, duration (successful ones) and token counts.
// A meter without NodeMetrics (metrics off) only counts tokens.
//
// Not thread-safe: one meter per generation, used by the thread that streams it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "atoma/metrics/metrics.h"

namespace atoma::metrics {

// The requests_total outcome of a generation that ended with `code` (gRPC codes are the same
// numbers): "ok", "cancelled", "disputed" (ABORTED: a dispute decided the round), "refused" (the
// request was turned away) or "error".
inline const char* OutcomeOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kCancelled:
      return "cancelled";
    case absl::StatusCode::kAborted:
      return "disputed";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
      return "refused";
    default:
      return "error";
  }
}

class RequestMeter {
 public:
  using Clock = std::chrono::steady_clock;

  // `accepted`: when the request arrived (the first token's latency counts from it).
  RequestMeter(NodeMetrics* metrics, std::string model, std::string security,
               Clock::time_point accepted)
      : metrics_(metrics),
        model_(std::move(model)),
        security_(std::move(security)),
        accepted_(accepted) {}

  // One generated token, streamed at `now`.
  void Token(Clock::time_point now) {
    ++tokens_;
    if (metrics_ == nullptr) return;
    const double seconds = std::chrono::duration<double>(now - last_.value_or(accepted_)).count();
    if (last_.has_value()) {
      metrics_->ObserveInterTokenLatency(model_, seconds);
    } else {
      metrics_->ObserveTimeToFirstToken(model_, seconds);
    }
    last_ = now;
  }

  // The end: `outcome` is the requests_total label ("ok", "cancelled", "disputed", "refused",
  // "error"). Prompt tokens count when the request ran (ok, or some tokens came out).
  void Done(std::string_view outcome, int prompt_tokens) {
    if (metrics_ == nullptr) return;
    metrics_->CountRequest(model_, security_, std::string(outcome));
    if (outcome == "ok") {
      metrics_->ObserveRequestLatency(
          model_, security_, std::chrono::duration<double>(Clock::now() - accepted_).count());
    }
    if (prompt_tokens > 0 && (outcome == "ok" || tokens_ > 0)) {
      metrics_->AddPromptTokens(model_, static_cast<uint64_t>(prompt_tokens));
    }
    if (tokens_ > 0) metrics_->AddGenerationTokens(model_, static_cast<uint64_t>(tokens_));
  }

 private:
  NodeMetrics* metrics_;
  std::string model_;
  std::string security_;
  Clock::time_point accepted_;
  std::optional<Clock::time_point> last_;
  int tokens_ = 0;
};

}  // namespace atoma::metrics
