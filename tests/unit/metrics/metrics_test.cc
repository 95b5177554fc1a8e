// NodeMetrics: the text exposition after observations, bucket layout, sampled gauges and
// counters, samplers that fail, and observations that are dropped.
#include "atoma/metrics/metrics.h"

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"

namespace atoma::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The value of the one sample line `series` (name plus labels exactly as rendered), or nullopt.
std::optional<double> Value(const std::string& text, const std::string& series) {
  std::optional<double> found;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ")) {
      EXPECT_FALSE(found.has_value()) << "two lines for " << series;
      found = std::stod(std::string(line));
    }
  }
  return found;
}

// The finite `le` bounds of a histogram series, in order.
std::vector<double> Bounds(const std::string& text, const std::string& name,
                           const std::string& labels_prefix) {
  std::vector<double> bounds;
  const std::string prefix = name + "_bucket{" + labels_prefix + "le=\"";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, prefix)) continue;
    const std::string bound(line.substr(0, line.find('"')));
    if (bound != "+Inf") bounds.push_back(std::stod(bound));
  }
  return bounds;
}

TEST(NodeMetricsTest, EventMetricsAppearWithTheirValues) {
  NodeMetrics m;
  m.ObserveTimeToFirstToken("tiny", 0.0015);
  m.ObserveTimeToFirstToken("tiny", 0.5);
  m.ObserveInterTokenLatency("tiny", 0.004);
  m.ObserveRequestLatency("tiny", "sampling", 2.0);
  m.ObserveRequestLatency("tiny", "none", 0.02);
  m.AddPromptTokens("tiny", 5);
  m.AddPromptTokens("tiny", 7);
  m.AddGenerationTokens("tiny", 3);
  m.AddGenerationTokens("other", 1);
  m.CountRequest("tiny", "sampling", "ok");
  m.CountRequest("tiny", "sampling", "ok");
  m.CountRequest("tiny", "none", "cancelled");
  const std::string text = m.Render();

  EXPECT_THAT(text, HasSubstr("# TYPE atoma_time_to_first_token_seconds histogram"));
  EXPECT_EQ(Value(text, "atoma_time_to_first_token_seconds_count{model=\"tiny\"}"), 2);
  EXPECT_DOUBLE_EQ(*Value(text, "atoma_time_to_first_token_seconds_sum{model=\"tiny\"}"), 0.5015);
  EXPECT_EQ(Value(text, "atoma_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"0.001\"}"),
            0);
  EXPECT_EQ(Value(text, "atoma_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"0.002\"}"),
            1);
  EXPECT_EQ(Value(text, "atoma_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"0.512\"}"),
            2);
  EXPECT_EQ(Value(text, "atoma_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"+Inf\"}"), 2);
  EXPECT_EQ(Value(text, "atoma_inter_token_latency_seconds_count{model=\"tiny\"}"), 1);
  EXPECT_EQ(Value(text, "atoma_inter_token_latency_seconds_bucket{model=\"tiny\",le=\"0.002\"}"),
            0);
  EXPECT_EQ(Value(text, "atoma_inter_token_latency_seconds_bucket{model=\"tiny\",le=\"0.004\"}"),
            1);
  EXPECT_EQ(
      Value(text, "atoma_request_duration_seconds_count{model=\"tiny\",security=\"sampling\"}"), 1);
  EXPECT_EQ(Value(text, "atoma_request_duration_seconds_sum{model=\"tiny\",security=\"none\"}"),
            0.02);
  EXPECT_THAT(text, HasSubstr("# TYPE atoma_prompt_tokens_total counter"));
  EXPECT_EQ(Value(text, "atoma_prompt_tokens_total{model=\"tiny\"}"), 12);
  EXPECT_EQ(Value(text, "atoma_generation_tokens_total{model=\"tiny\"}"), 3);
  EXPECT_EQ(Value(text, "atoma_generation_tokens_total{model=\"other\"}"), 1);
  EXPECT_EQ(
      Value(text, "atoma_requests_total{model=\"tiny\",outcome=\"ok\",security=\"sampling\"}"), 2);
  EXPECT_EQ(
      Value(text, "atoma_requests_total{model=\"tiny\",outcome=\"cancelled\",security=\"none\"}"),
      1);
  // No series for a model that saw no event of that kind.
  EXPECT_EQ(Value(text, "atoma_prompt_tokens_total{model=\"other\"}"), std::nullopt);
}

TEST(NodeMetricsTest, HistogramBuckets) {
  NodeMetrics m;
  m.ObserveTimeToFirstToken("m", 1);
  m.ObserveInterTokenLatency("m", 1);
  m.ObserveRequestLatency("m", "none", 1);
  const std::string text = m.Render();
  for (const char* name :
       {"atoma_time_to_first_token_seconds", "atoma_inter_token_latency_seconds"}) {
    SCOPED_TRACE(name);
    const std::vector<double> b = Bounds(text, name, "model=\"m\",");
    ASSERT_EQ(b.size(), 16u);
    EXPECT_DOUBLE_EQ(b.front(), 0.001);
    EXPECT_DOUBLE_EQ(b.back(), 32.768);  // ~30 s
    for (size_t i = 1; i < b.size(); ++i) EXPECT_DOUBLE_EQ(b[i], 2 * b[i - 1]);
  }
  const std::vector<double> b =
      Bounds(text, "atoma_request_duration_seconds", "model=\"m\",security=\"none\",");
  ASSERT_EQ(b.size(), 17u);
  EXPECT_DOUBLE_EQ(b.front(), 0.010);
  EXPECT_DOUBLE_EQ(b.back(), 655.36);  // ~11 min
}

TEST(NodeMetricsTest, InvalidDurationsAreDropped) {
  NodeMetrics m;
  m.ObserveTimeToFirstToken("m", 0.1);
  m.ObserveTimeToFirstToken("m", -1);
  m.ObserveTimeToFirstToken("m", std::numeric_limits<double>::quiet_NaN());
  m.ObserveInterTokenLatency("m", std::numeric_limits<double>::infinity());
  m.ObserveRequestLatency("m", "none", -0.5);
  const std::string text = m.Render();
  EXPECT_EQ(Value(text, "atoma_time_to_first_token_seconds_count{model=\"m\"}"), 1);
  EXPECT_EQ(Value(text, "atoma_time_to_first_token_seconds_sum{model=\"m\"}"), 0.1);
  EXPECT_THAT(text, Not(HasSubstr("atoma_inter_token_latency_seconds_count")));
  EXPECT_THAT(text, Not(HasSubstr("atoma_request_duration_seconds_count")));
}

TEST(NodeMetricsTest, EngineSamplerGaugesAreReadAtEveryRender) {
  NodeMetrics m;
  EXPECT_THAT(m.Render(), Not(HasSubstr("atoma_requests_running")));
  int calls = 0;
  m.SetEngineSampler([&calls] {
    ++calls;
    // Two entries for "a" (two engine instances of one model) are summed into one series.
    return std::vector<NodeMetrics::EngineSample>{
        {.model = "a", .running = 2, .waiting = 5, .kv_bytes_used = 100, .kv_bytes_capacity = 1000},
        {.model = "b",
         .running = calls,
         .waiting = 0,
         .kv_bytes_used = 0,
         .kv_bytes_capacity = int64_t{1} << 40},
        {.model = "a", .running = 1, .waiting = 0, .kv_bytes_used = 50, .kv_bytes_capacity = 1000},
    };
  });
  std::string text = m.Render();
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(text, HasSubstr("# TYPE atoma_requests_running gauge"));
  EXPECT_EQ(Value(text, "atoma_requests_running{model=\"a\"}"), 3);
  EXPECT_EQ(Value(text, "atoma_requests_waiting{model=\"a\"}"), 5);
  EXPECT_EQ(Value(text, "atoma_kv_cache_bytes{kind=\"used\",model=\"a\"}"), 150);
  EXPECT_EQ(Value(text, "atoma_kv_cache_bytes{kind=\"capacity\",model=\"a\"}"), 2000);
  EXPECT_EQ(Value(text, "atoma_requests_running{model=\"b\"}"), 1);
  EXPECT_EQ(Value(text, "atoma_kv_cache_bytes{kind=\"capacity\",model=\"b\"}"),
            static_cast<double>(int64_t{1} << 40));

  text = m.Render();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(Value(text, "atoma_requests_running{model=\"b\"}"), 2);

  m.SetEngineSampler(nullptr);
  text = m.Render();
  EXPECT_EQ(calls, 2);
  EXPECT_THAT(text, Not(HasSubstr("atoma_requests_running")));
}

TEST(NodeMetricsTest, ConsensusSamplerCounters) {
  NodeMetrics m;
  EXPECT_THAT(m.Render(), Not(HasSubstr("atoma_consensus_rounds_total")));
  NodeMetrics::ConsensusSample s;
  s.rounds_certified = 10;
  s.rounds_disputed = 2;
  s.rounds_failed = 1;
  s.attestations_accepted = 30;
  s.equivocations_reported = 4;
  s.slashings_submitted = 3;
  s.peer_call_errors = 7;
  s.rejected = {{"bad_signature", 5}, {"stale_epoch", 6}};
  s.settled = 9;
  s.settlement_rejected = 1;
  s.settlement_calls_failed = 8;
  m.SetConsensusSampler([s] { return s; });
  const std::string text = m.Render();

  for (const char* name :
       {"atoma_consensus_rounds_total", "atoma_attestations_verified_total",
        "atoma_peer_messages_rejected_total", "atoma_equivocations_reported_total",
        "atoma_slashings_submitted_total", "atoma_peer_call_errors_total",
        "atoma_settlements_total", "atoma_settlement_calls_failed_total"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + name + " counter"));
  }
  EXPECT_EQ(Value(text, "atoma_consensus_rounds_total{outcome=\"certified\"}"), 10);
  EXPECT_EQ(Value(text, "atoma_consensus_rounds_total{outcome=\"disputed\"}"), 2);
  EXPECT_EQ(Value(text, "atoma_consensus_rounds_total{outcome=\"failed\"}"), 1);
  EXPECT_EQ(Value(text, "atoma_attestations_verified_total"), 30);
  EXPECT_EQ(Value(text, "atoma_peer_messages_rejected_total{reason=\"bad_signature\"}"), 5);
  EXPECT_EQ(Value(text, "atoma_peer_messages_rejected_total{reason=\"stale_epoch\"}"), 6);
  EXPECT_EQ(Value(text, "atoma_equivocations_reported_total"), 4);
  EXPECT_EQ(Value(text, "atoma_slashings_submitted_total"), 3);
  EXPECT_EQ(Value(text, "atoma_peer_call_errors_total"), 7);
  EXPECT_EQ(Value(text, "atoma_settlements_total{outcome=\"settled\"}"), 9);
  EXPECT_EQ(Value(text, "atoma_settlements_total{outcome=\"rejected\"}"), 1);
  EXPECT_EQ(Value(text, "atoma_settlement_calls_failed_total"), 8);
}

TEST(NodeMetricsTest, NoRejectionsNoRejectedFamily) {
  NodeMetrics m;
  m.SetConsensusSampler([] { return NodeMetrics::ConsensusSample{}; });
  const std::string text = m.Render();
  EXPECT_EQ(Value(text, "atoma_consensus_rounds_total{outcome=\"certified\"}"), 0);
  EXPECT_THAT(text, Not(HasSubstr("atoma_peer_messages_rejected_total")));
}

TEST(NodeMetricsTest, AThrowingSamplerCostsOnlyItsOwnFamilies) {
  NodeMetrics m;
  m.AddPromptTokens("m", 1);
  m.SetEngineSampler(
      []() -> std::vector<NodeMetrics::EngineSample> { throw std::runtime_error("engine gone"); });
  m.SetConsensusSampler([] {
    NodeMetrics::ConsensusSample s;
    s.settled = 2;
    return s;
  });
  std::string text;
  ASSERT_NO_THROW(text = m.Render());
  EXPECT_EQ(Value(text, "atoma_prompt_tokens_total{model=\"m\"}"), 1);
  EXPECT_EQ(Value(text, "atoma_settlements_total{outcome=\"settled\"}"), 2);
  EXPECT_THAT(text, Not(HasSubstr("atoma_requests_running")));
}

TEST(NodeMetricsTest, FamiliesAddedToTheRegistryAreRendered) {
  NodeMetrics m;
  prometheus::BuildCounter()
      .Name("atoma_test_extra_total")
      .Help("added by another module")
      .Register(*m.registry())
      .Add({{"k", "v"}})
      .Increment(4);
  EXPECT_EQ(Value(m.Render(), "atoma_test_extra_total{k=\"v\"}"), 4);
}

TEST(NodeMetricsTest, ConcurrentObservationsAndRendersAllCount) {
  NodeMetrics m;
  m.SetEngineSampler([] { return std::vector<NodeMetrics::EngineSample>{{.model = "m"}}; });
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      // Half the threads share a model, so series creation races too.
      const std::string model = t % 2 == 0 ? "shared" : "own" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        m.ObserveInterTokenLatency(model, 0.003);
        m.AddGenerationTokens(model, 1);
        m.CountRequest(model, "none", "ok");
      }
    });
  }
  for (int i = 0; i < 20; ++i) EXPECT_THAT(m.Render(), HasSubstr("atoma_requests_running"));
  for (std::thread& t : threads) t.join();
  const std::string text = m.Render();
  EXPECT_EQ(Value(text, "atoma_inter_token_latency_seconds_count{model=\"shared\"}"),
            2 * kPerThread);
  EXPECT_EQ(Value(text, "atoma_generation_tokens_total{model=\"shared\"}"), 2 * kPerThread);
  EXPECT_EQ(Value(text, "atoma_requests_total{model=\"own3\",outcome=\"ok\",security=\"none\"}"),
            kPerThread);
}

TEST(NodeMetricsTest, LabelValuesAreEscaped) {
  NodeMetrics m;
  m.AddPromptTokens("we\"ird\\", 1);
  EXPECT_EQ(Value(m.Render(), "atoma_prompt_tokens_total{model=\"we\\\"ird\\\\\"}"), 1);
}

}  // namespace
}  // namespace atoma::metrics
