// Engine: one model, a bounded request queue, one scheduler thread that owns the ModelRunner and
// runs continuous batching (new requests are prefilled on their own, running ones decode together,
// finished or cancelled ones leave at once), sampling on the host in double precision.
//
// Thread-safety: Engine methods are thread-safe. A RequestHandle may be read by one consumer thread
// while Cancel() is called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/crypto/sha256.h"
#include "atoma/engine/model.h"
#include "atoma/engine/sampler.h"
#include "atoma/engine/tokenizer.h"

namespace atoma::engine {

// SamplingParams and TokenLogprob live in sampler.h (included above).

struct GenerateRequest {
  // Keys the sampling PRNG together with seed and step: (seed, request_key, step). The consensus
  // layer passes request_id; for anonymous single-node use the entry layer hashes the request.
  crypto::Hash256 request_key{};
  std::vector<int32_t> prompt_ids;
  SamplingParams sampling;
  int max_tokens = 256;
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;  // in addition to the model's EOS ids
  bool ignore_eos = false;
  // Tests and the consensus layer: attach the full fp32 logits of every step to the events.
  bool return_logits = false;
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* FinishReasonName(FinishReason reason);

// One generated token, or the final event of a request.
struct StreamEvent {
  bool final = false;
  // Token events:
  int32_t token_id = -1;
  std::string text;  // newly completed text (UTF-8 safe; may be empty)
  double logprob = 0.0;
  std::vector<TokenLogprob> top_logprobs;
  std::vector<float> logits;  // only with return_logits
  // Final event:
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status status;  // non-OK with kError
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::vector<int32_t> output_ids;  // all generated ids (stop strings trimmed out of text only)
};

// The consumer side of one request. Events arrive in order; the last one has final == true.
class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  // Waits up to `timeout` for the next event. Returns false on timeout; true with *event filled
  // otherwise. After the final event, returns true with the final event again.
  virtual bool Next(StreamEvent* event, std::chrono::milliseconds timeout) = 0;
  // Asks the scheduler to stop this request; it finishes with kCancelled within one decode step.
  virtual void Cancel() = 0;
};

struct EngineStats {
  int waiting = 0;
  int running = 0;
  int64_t kv_bytes_used = 0;
  int64_t kv_bytes_capacity = 0;
  int64_t requests_finished = 0;
  int64_t tokens_generated = 0;
};

struct ModelInfo {
  std::string id;  // served name (the folder name unless configured)
  std::filesystem::path dir;
  crypto::Hash256 digest{};
  ModelConfig config;
  std::string path_description;
};

struct EngineOptions {
  std::filesystem::path model_dir;
  std::string model_id;  // empty = folder name
  RunnerOptions runner;
  int max_queue = 64;            // waiting requests; more → RESOURCE_EXHAUSTED
  int max_running = 16;          // sequences decoding together (≤ runner.max_batch)
  int max_prompt_tokens = 4096;  // longer prompts → INVALID_ARGUMENT
  int max_new_tokens = 2048;     // upper bound on max_tokens
  // Threads that sample the rows of a decode step in parallel (sampling a 49k vocabulary costs
  // 0.4-1.3 ms a row on the host); 0 = hardware concurrency, at most 4. Results do not depend on
  // it.
  int sampling_threads = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Loads the model and tokenizer and starts the scheduler thread.
  static absl::StatusOr<std::unique_ptr<Engine>> Make(const EngineOptions& options);
  // Same, over a given runner (tests inject fakes). `tokenizer` may be null (no text in events).
  static absl::StatusOr<std::unique_ptr<Engine>> Make(const EngineOptions& options,
                                                      std::unique_ptr<ModelRunner> runner,
                                                      std::unique_ptr<Tokenizer> tokenizer);

  virtual const ModelInfo& info() const = 0;
  virtual const Tokenizer* tokenizer() const = 0;

  // Validates and enqueues. INVALID_ARGUMENT names the bad field; RESOURCE_EXHAUSTED when the queue
  // is full; UNAVAILABLE after Shutdown began.
  virtual absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(GenerateRequest request) = 0;

  // Stops intake; lets running requests finish until `deadline`, then cancels what is left, and
  // joins the scheduler. Idempotent.
  virtual void Shutdown(std::chrono::milliseconds deadline) = 0;

  virtual EngineStats stats() const = 0;
};

}  // namespace atoma::engine
