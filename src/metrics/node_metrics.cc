#include <array>
#include <cmath>
#include <exception>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "atoma/common/logging.h"
#include "atoma/metrics/metrics.h"
#include "collector.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace atoma::metrics {
namespace internal {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// `count` bounds start, start·factor, ... (prometheus-cpp adds +Inf).
prometheus::Histogram::BucketBoundaries Exponential(double start, double factor, int count) {
  prometheus::Histogram::BucketBoundaries bounds;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

// The series of one family by label values, looked up without building a prometheus::Labels map
// and without Family::Add, which allocates a fresh metric (for a histogram, its bucket vector)
// on every call even when the series exists: inter-token latency is observed once per token.
template <typename T, size_t N>
class SeriesCache {
 public:
  SeriesCache(prometheus::Family<T>& family, std::array<std::string, N> names,
              prometheus::Histogram::BucketBoundaries buckets = {})
      : family_(family), names_(std::move(names)), buckets_(std::move(buckets)) {}

  T& Get(const std::array<std::string_view, N>& values) {
    // Length-prefixed so that no two different value tuples share a key.
    std::string key;
    for (std::string_view v : values) {
      key += std::to_string(v.size());
      key += ':';
      key += v;
    }
    absl::MutexLock lock(&mu_);
    auto it = series_.find(key);
    if (it != series_.end()) return *it->second;
    prometheus::Labels labels;
    for (size_t i = 0; i < N; ++i) labels.emplace(names_[i], std::string(values[i]));
    T* series;
    if constexpr (std::is_same_v<T, prometheus::Histogram>) {
      series = &family_.Add(labels, buckets_);
    } else {
      series = &family_.Add(labels);
    }
    series_.emplace(std::move(key), series);
    return *series;
  }

 private:
  prometheus::Family<T>& family_;
  const std::array<std::string, N> names_;
  const prometheus::Histogram::BucketBoundaries buckets_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, T*> series_ ABSL_GUARDED_BY(mu_);
};

prometheus::Family<prometheus::Histogram>& HistogramFamily(prometheus::Registry& registry,
                                                           const std::string& name,
                                                           const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const std::string& name,
                                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

// A duration that is negative (a clock went backwards) or not finite is a caller bug; one such
// observation would make the histogram's _sum NaN or wrong for the life of the process.
bool ValidDuration(double seconds) { return std::isfinite(seconds) && seconds >= 0; }

ClientMetric Sample(std::vector<ClientMetric::Label> labels, MetricType type, double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

// A family without series adds nothing to the exposition but its HELP and TYPE lines; leave it
// out, as prometheus-cpp does for its own families.
void Push(MetricFamily family, std::vector<MetricFamily>* out) {
  if (!family.metric.empty()) out->push_back(std::move(family));
}

}  // namespace

// Defined here rather than in a header: NodeMetrics only holds a pointer to it.
struct EventFamilies {
  explicit EventFamilies(prometheus::Registry& registry)
      : time_to_first_token(
            HistogramFamily(registry, "atoma_time_to_first_token_seconds",
                            "Time from accepting a request to its first generated token."),
            {"model"}, TokenLatencyBuckets()),
        inter_token_latency(HistogramFamily(registry, "atoma_inter_token_latency_seconds",
                                            "Time between consecutive generated tokens."),
                            {"model"}, TokenLatencyBuckets()),
        request_duration(HistogramFamily(registry, "atoma_request_duration_seconds",
                                         "Time from accepting a request to its end (any outcome), "
                                         "consensus included for verified requests."),
                         {"model", "security"}, Exponential(0.010, 2, 17)),
        prompt_tokens(CounterFamily(registry, "atoma_prompt_tokens_total",
                                    "Prompt tokens of accepted requests."),
                      {"model"}),
        generation_tokens(
            CounterFamily(registry, "atoma_generation_tokens_total", "Generated tokens."),
            {"model"}),
        requests(CounterFamily(registry, "atoma_requests_total", "Finished requests by outcome."),
                 {"model", "security", "outcome"}) {}

  // 1 ms ×2 … 32.768 s: 16 bounds.
  static prometheus::Histogram::BucketBoundaries TokenLatencyBuckets() {
    return Exponential(0.001, 2, 16);
  }

  SeriesCache<prometheus::Histogram, 1> time_to_first_token;
  SeriesCache<prometheus::Histogram, 1> inter_token_latency;
  SeriesCache<prometheus::Histogram, 2> request_duration;
  SeriesCache<prometheus::Counter, 1> prompt_tokens;
  SeriesCache<prometheus::Counter, 1> generation_tokens;
  SeriesCache<prometheus::Counter, 3> requests;
};

void Collector::SetEngineSampler(EngineSampler f) {
  absl::MutexLock lock(&mu_);
  engine_sampler_ = std::move(f);
}

void Collector::SetConsensusSampler(ConsensusSampler f) {
  absl::MutexLock lock(&mu_);
  consensus_sampler_ = std::move(f);
}

std::vector<MetricFamily> Collector::Collect() const {
  std::vector<MetricFamily> families = registry_->Collect();
  EngineSampler engine;
  ConsensusSampler consensus;
  {
    absl::MutexLock lock(&mu_);
    engine = engine_sampler_;
    consensus = consensus_sampler_;
  }
  // A sampler belongs to another module; its failure costs its own families for one scrape, not
  // the scrape (and not the civetweb thread that runs it).
  if (engine) {
    try {
      AppendEngineFamilies(engine(), &families);
    } catch (const std::exception& e) {
      GetLogger("metrics")->warn("engine metrics sampler failed: {}", e.what());
    } catch (...) {
      GetLogger("metrics")->warn("engine metrics sampler failed (unknown exception)");
    }
  }
  if (consensus) {
    try {
      AppendConsensusFamilies(consensus(), &families);
    } catch (const std::exception& e) {
      GetLogger("metrics")->warn("consensus metrics sampler failed: {}", e.what());
    } catch (...) {
      GetLogger("metrics")->warn("consensus metrics sampler failed (unknown exception)");
    }
  }
  return families;
}

void AppendEngineFamilies(const std::vector<NodeMetrics::EngineSample>& samples,
                          std::vector<MetricFamily>* out) {
  struct Totals {
    int64_t running = 0, waiting = 0, kv_used = 0, kv_capacity = 0;
  };
  // Summed by model: two entries for one model would otherwise be two series with the same
  // labels, which Prometheus rejects for the whole scrape. std::map also orders the output.
  std::map<std::string, Totals> by_model;
  for (const NodeMetrics::EngineSample& s : samples) {
    Totals& t = by_model[s.model];
    t.running += s.running;
    t.waiting += s.waiting;
    t.kv_used += s.kv_bytes_used;
    t.kv_capacity += s.kv_bytes_capacity;
  }
  MetricFamily running =
      Family("atoma_requests_running", "Requests the engine is executing now.", MetricType::Gauge);
  MetricFamily waiting =
      Family("atoma_requests_waiting", "Requests queued for the engine, not yet running.",
             MetricType::Gauge);
  MetricFamily kv =
      Family("atoma_kv_cache_bytes", "KV cache bytes in use and in total (kind=used|capacity).",
             MetricType::Gauge);
  for (const auto& [model, t] : by_model) {
    running.metric.push_back(
        Sample({{"model", model}}, MetricType::Gauge, static_cast<double>(t.running)));
    waiting.metric.push_back(
        Sample({{"model", model}}, MetricType::Gauge, static_cast<double>(t.waiting)));
    kv.metric.push_back(Sample({{"kind", "used"}, {"model", model}}, MetricType::Gauge,
                               static_cast<double>(t.kv_used)));
    kv.metric.push_back(Sample({{"kind", "capacity"}, {"model", model}}, MetricType::Gauge,
                               static_cast<double>(t.kv_capacity)));
  }
  Push(std::move(running), out);
  Push(std::move(waiting), out);
  Push(std::move(kv), out);
}

void AppendConsensusFamilies(const NodeMetrics::ConsensusSample& s,
                             std::vector<MetricFamily>* out) {
  constexpr MetricType kCounter = MetricType::Counter;
  auto counter = [&](std::string name, std::string help, uint64_t value) {
    MetricFamily family = Family(std::move(name), std::move(help), kCounter);
    family.metric.push_back(Sample({}, kCounter, static_cast<double>(value)));
    Push(std::move(family), out);
  };

  MetricFamily rounds = Family("atoma_consensus_rounds_total",
                               "Consensus rounds this node finished, by outcome.", kCounter);
  rounds.metric.push_back(
      Sample({{"outcome", "certified"}}, kCounter, static_cast<double>(s.rounds_certified)));
  rounds.metric.push_back(
      Sample({{"outcome", "disputed"}}, kCounter, static_cast<double>(s.rounds_disputed)));
  rounds.metric.push_back(
      Sample({{"outcome", "failed"}}, kCounter, static_cast<double>(s.rounds_failed)));
  Push(std::move(rounds), out);

  counter("atoma_attestations_verified_total",
          "Peer attestations whose signature and contents checked out.", s.attestations_accepted);

  MetricFamily rejected = Family("atoma_peer_messages_rejected_total",
                                 "Peer messages rejected before use, by reason.", kCounter);
  for (const auto& [reason, count] : s.rejected) {
    rejected.metric.push_back(Sample({{"reason", reason}}, kCounter, static_cast<double>(count)));
  }
  Push(std::move(rejected), out);

  counter("atoma_equivocations_reported_total",
          "Equivocations (two different attestations by one node for one request) reported.",
          s.equivocations_reported);
  counter("atoma_slashings_submitted_total", "Slashing evidence submitted to the ledger.",
          s.slashings_submitted);
  counter("atoma_peer_call_errors_total", "Calls to peers that failed (transport or status).",
          s.peer_call_errors);

  MetricFamily settlements = Family(
      "atoma_settlements_total",
      "Certificates the ledger decided, by outcome (settled, or rejected for good).", kCounter);
  settlements.metric.push_back(
      Sample({{"outcome", "settled"}}, kCounter, static_cast<double>(s.settled)));
  settlements.metric.push_back(
      Sample({{"outcome", "rejected"}}, kCounter, static_cast<double>(s.settlement_rejected)));
  Push(std::move(settlements), out);

  counter("atoma_settlement_calls_failed_total",
          "Settlement calls to the ledger that failed and will be retried.",
          s.settlement_calls_failed);
}

}  // namespace internal

NodeMetrics::NodeMetrics()
    : collector_(std::make_shared<internal::Collector>()),
      events_(std::make_unique<internal::EventFamilies>(*collector_->registry())) {}

NodeMetrics::~NodeMetrics() = default;

void NodeMetrics::ObserveTimeToFirstToken(const std::string& model, double seconds) {
  if (!internal::ValidDuration(seconds)) return;
  events_->time_to_first_token.Get({model}).Observe(seconds);
}

void NodeMetrics::ObserveInterTokenLatency(const std::string& model, double seconds) {
  if (!internal::ValidDuration(seconds)) return;
  events_->inter_token_latency.Get({model}).Observe(seconds);
}

void NodeMetrics::ObserveRequestLatency(const std::string& model, const std::string& security,
                                        double seconds) {
  if (!internal::ValidDuration(seconds)) return;
  events_->request_duration.Get({model, security}).Observe(seconds);
}

void NodeMetrics::AddPromptTokens(const std::string& model, uint64_t n) {
  events_->prompt_tokens.Get({model}).Increment(static_cast<double>(n));
}

void NodeMetrics::AddGenerationTokens(const std::string& model, uint64_t n) {
  events_->generation_tokens.Get({model}).Increment(static_cast<double>(n));
}

void NodeMetrics::CountRequest(const std::string& model, const std::string& security,
                               const std::string& outcome) {
  events_->requests.Get({model, security, outcome}).Increment();
}

void NodeMetrics::SetEngineSampler(std::function<std::vector<EngineSample>()> f) {
  collector_->SetEngineSampler(std::move(f));
}

void NodeMetrics::SetConsensusSampler(std::function<ConsensusSample()> f) {
  collector_->SetConsensusSampler(std::move(f));
}

std::string NodeMetrics::Render() {
  return prometheus::TextSerializer().Serialize(collector_->Collect());
}

std::shared_ptr<prometheus::Registry> NodeMetrics::registry() { return collector_->registry(); }

}  // namespace atoma::metrics
