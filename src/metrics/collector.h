// Internal to atoma_metrics: the prometheus::Collectable behind NodeMetrics. It owns the registry
// of event metrics and the samplers, and builds the sampled families on every Collect(), so that
// NodeMetrics::Render() and the HTTP server produce the same text from one code path.
//
// Thread-safety: all methods thread-safe. Samplers are copied under the lock and called outside
// it, so a slow sampler never blocks SetEngineSampler / SetConsensusSampler or another scrape.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "atoma/metrics/metrics.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace atoma::metrics::internal {

class Collector final : public prometheus::Collectable {
 public:
  using EngineSampler = std::function<std::vector<NodeMetrics::EngineSample>()>;
  using ConsensusSampler = std::function<NodeMetrics::ConsensusSample()>;

  Collector() : registry_(std::make_shared<prometheus::Registry>()) {}

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }
  void SetEngineSampler(EngineSampler f);
  void SetConsensusSampler(ConsensusSampler f);

  // The registry's families, then the sampled ones.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  mutable absl::Mutex mu_;
  EngineSampler engine_sampler_ ABSL_GUARDED_BY(mu_);
  ConsensusSampler consensus_sampler_ ABSL_GUARDED_BY(mu_);
};

// The sampled families, as plain functions over plain data (tested through Render()).
void AppendEngineFamilies(const std::vector<NodeMetrics::EngineSample>& samples,
                          std::vector<prometheus::MetricFamily>* out);
void AppendConsensusFamilies(const NodeMetrics::ConsensusSample& sample,
                             std::vector<prometheus::MetricFamily>* out);

}  // namespace atoma::metrics::internal
