// Prometheus metrics of the node (issue 5): one NodeMetrics object owns every metric family, and a
// MetricsServer serves their text exposition on GET /metrics.
//
// Two kinds of metric live here:
// - Event metrics (latency histograms, token and request counters) are updated by the code that
//   sees the event (API server, engine callbacks) through the Observe*/Add*/Count* methods. They
//   are ordinary prometheus-cpp families in registry().
// - Sampled metrics (engine queue depths and KV cache use, consensus and settlement counts) are
//   read at scrape time from samplers the node registers, because the components that own those
//   numbers already keep them and copying every change into a gauge would couple them to this
//   module. The consensus numbers are monotonic counts, so they are exposed with Prometheus
//   *counter* type (`# TYPE ... counter`, names ending in _total) by a custom collector that builds
//   the families from each sample; prometheus-cpp's own Counter cannot be set to an absolute
//   value, and exposing them as gauges would make rate() and reset detection misbehave in
//   PromQL tooling that looks at the type.
//
// Label values become series, and series cost memory for the life of the process: pass only
// values from bounded sets (configured model names, the security levels, fixed outcome and reason
// strings), never client-supplied text.
//
// Thread-safety: every method of NodeMetrics and MetricsServer is thread-safe. Samplers are
// called on the thread that renders (the caller of Render() or one of the HTTP server's threads),
// possibly from two scrapes at once, so they must be thread-safe themselves and should be cheap.
//
// Error contract: observing never fails (a negative or non-finite duration is a caller bug and is
// dropped rather than poisoning a histogram's sum); a sampler that throws is logged and its
// families are left out of that scrape. MetricsServer::Start returns INVALID_ARGUMENT for a
// malformed listen address and UNAVAILABLE when it cannot bind, both naming the address; no
// exception escapes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace atoma::metrics {

namespace internal {
class Collector;
struct EventFamilies;
}  // namespace internal

// Every metric of the node, registered once at construction. One per node, built by the
// composition root and passed by reference to the components that report.
class NodeMetrics {
 public:
  NodeMetrics();  // creates the registry and every family below
  ~NodeMetrics();
  NodeMetrics(const NodeMetrics&) = delete;
  NodeMetrics& operator=(const NodeMetrics&) = delete;

  // Inference, by model label "model". Histogram buckets: time to first token and inter-token
  // latency exponential ×2 from 1 ms to 32.8 s; request duration ×2 from 10 ms to 655 s (~11 min).
  void ObserveTimeToFirstToken(const std::string& model,
                               double seconds);  // atoma_time_to_first_token_seconds{model}
  void ObserveInterTokenLatency(const std::string& model,
                                double seconds);  // atoma_inter_token_latency_seconds{model}
  void ObserveRequestLatency(const std::string& model, const std::string& security,
                             double seconds);  // atoma_request_duration_seconds{model,security}
  void AddPromptTokens(const std::string& model, uint64_t n);      // atoma_prompt_tokens_total
  void AddGenerationTokens(const std::string& model, uint64_t n);  // atoma_generation_tokens_total
  // atoma_requests_total{model,outcome,security}; outcome: ok|error|cancelled|...
  void CountRequest(const std::string& model, const std::string& security,
                    const std::string& outcome);

  // Sampled at scrape time. Gauges atoma_requests_running{model}, atoma_requests_waiting{model},
  // atoma_kv_cache_bytes{kind="used|capacity",model}. Samples naming the same model are summed.
  struct EngineSample {
    std::string model;
    int running = 0;
    int waiting = 0;
    int64_t kv_bytes_used = 0;
    int64_t kv_bytes_capacity = 0;
  };
  // Absolute counts since the process started (counters: they must never go down, or Prometheus
  // reads a reset). Exposed as
  //   atoma_consensus_rounds_total{outcome="certified|disputed|failed"}
  //   atoma_attestations_verified_total             (attestations_accepted)
  //   atoma_peer_messages_rejected_total{reason}    (one series per key of `rejected`)
  //   atoma_equivocations_reported_total, atoma_slashings_submitted_total,
  //   atoma_peer_call_errors_total
  //   atoma_settlements_total{outcome="settled|rejected"}
  //   atoma_settlement_calls_failed_total           (ledger calls that failed and will be retried)
  struct ConsensusSample {
    uint64_t rounds_certified = 0, rounds_disputed = 0, rounds_failed = 0;
    uint64_t attestations_accepted = 0, equivocations_reported = 0, slashings_submitted = 0,
             peer_call_errors = 0;
    std::map<std::string, uint64_t> rejected;  // reason -> count
    uint64_t settled = 0, settlement_rejected = 0, settlement_calls_failed = 0;
  };
  // Replace the sampler (an empty function removes it; its families then disappear). Whatever the
  // sampler captures must outlive this NodeMetrics and any MetricsServer started on it, or be
  // removed first.
  void SetEngineSampler(std::function<std::vector<EngineSample>()> f);
  void SetConsensusSampler(std::function<ConsensusSample()> f);

  // The Prometheus text exposition (format 0.0.4) of everything: the registry's families, then
  // the sampled ones (samplers are called first). For tests and for serving.
  std::string Render();

  // The registry of the event metrics; other modules may add their own families to it and they
  // are rendered and served with the rest.
  std::shared_ptr<prometheus::Registry> registry();

 private:
  friend class MetricsServer;
  // Shared with any MetricsServer, so a server never scrapes a destroyed collector.
  std::shared_ptr<internal::Collector> collector_;
  std::unique_ptr<internal::EventFamilies> events_;  // point into collector_'s registry
};

// Serves GET /metrics on a socket of its own (one thread, one connection at a time; request heads
// bounded to 8 KiB and 2 s). The body is NodeMetrics::Render()'s text. Other paths get 404. The
// destructor stops serving and joins the thread (a scrape in progress finishes first).
// (prometheus-cpp's civetweb Exposer could not start its threads inside atoma-node.)
class MetricsServer {
 public:
  // `listen` is "host:port" with an IPv4 address or host name (no IPv6 yet); port 0
  // picks a free port, read it back with bound_port(). Whatever the samplers of `metrics` capture
  // must outlive the returned server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              NodeMetrics& metrics);
  virtual ~MetricsServer() = default;
  virtual int bound_port() const = 0;
};

}  // namespace atoma::metrics
