// Engine: one model, a bounded request queue, one scheduler thread that owns the ModelRunner and
// runs continuous batching (new requests are prefilled on their own, a budget of prompt tokens
// between two decode steps; running ones decode together; finished or cancelled ones leave at
// once), sampling on the host in double precision.
//
// Thread-safety: Engine methods are thread-safe. A RequestHandle may be read by one consumer thread
// while Cancel() is called from any thread.
//
// Determinism: a request's tokens, logprobs and logits depend only on the request (prompt,
// sampling parameters, request_key) and the model, never on what else the engine serves: its
// prefill runs alone, the runner's decode is batch-invariant (model.h), and sampling is keyed by
// (seed, request_key, step) with step = the 0-based index of the generated token (sampler.h).
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
  // Matched on the decoded text, across token boundaries; the streamed text ends right before the
  // first stop string (see StopStringFilter). Non-empty; needs an engine with a tokenizer.
  std::vector<std::string> stop_strings;
  // In addition to the model's EOS ids (config eos_token_ids plus the tokenizer's eos_ids()). A
  // stop token is part of output_ids and gets its token event, but its text is never streamed.
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;  // EOS ids no longer stop; stop_token_ids still do
  // Tests and the consensus layer: attach the full fp32 logits of every step to the events.
  bool return_logits = false;
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* FinishReasonName(FinishReason reason);

// One generated token, or the final event of a request. Every generated token (including a
// stopping one) has exactly one token event, in order.
struct StreamEvent {
  bool final = false;
  // Token events:
  int32_t token_id = -1;
  // Newly releasable text (UTF-8 safe; may be empty: incomplete characters and possible stop-string
  // prefixes are held back and released with a later event). The last token event of a request
  // carries everything that was held back. On a final event, only with kCancelled: the held-back
  // text of a cancelled request.
  std::string text;
  double logprob = 0.0;  // log-softmax of the raw logits (before temperature/top-k/top-p)
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
  // Destroying the last reference to a handle cancels the request too (nobody reads it any more).
  virtual void Cancel() = 0;
};

struct EngineStats {
  int waiting = 0;  // in the queue
  int running = 0;  // holding a runner sequence (prefilled or decoding)
  int64_t kv_bytes_used = 0;
  int64_t kv_bytes_capacity = 0;
  int64_t requests_finished = 0;
  int64_t tokens_generated = 0;
  // Scheduler-thread wall time by phase since start: where the steps' time goes.
  int64_t decode_steps = 0;
  int64_t decode_rows = 0;  // sequences over all decode steps (rows > steps: batches formed)
  double prefill_seconds = 0;  // runner Prefill calls
  double decode_seconds = 0;   // runner Decode calls
  double sample_seconds = 0;   // sampling, stop checks and event emission
};

struct ModelInfo {
  std::string id;  // served name (the folder name unless configured)
  std::filesystem::path dir;
  crypto::Hash256 digest{};
  ModelConfig config;
  std::string path_description;
  // Canary fingerprint (DESIGN §4.2, ComputeCanaryFingerprint), measured by Engine::Make(options)
  // before the scheduler takes the runner (when EngineOptions.compute_fingerprint).
  // FAILED_PRECONDITION when this node is not batch-invariant (e.g. DecodeKernel::kTorch): it
  // may serve, but must not join an echelon.
  absl::StatusOr<crypto::Hash256> fingerprint = absl::FailedPreconditionError("not measured");
};

struct EngineOptions {
  std::filesystem::path model_dir;
  std::string model_id;  // empty = folder name
  RunnerOptions runner;
  int max_queue = 64;            // waiting requests; more → RESOURCE_EXHAUSTED
  int max_running = 16;          // sequences decoding together (≤ runner.max_batch)
  int max_prompt_tokens = 4096;  // longer prompts → INVALID_ARGUMENT
  int max_new_tokens = 2048;     // upper bound on max_tokens
  // Prompt tokens prefilled per scheduler iteration, between decode steps (at least one
  // runner.prefill_chunk): a long prompt, or a burst of them, is prefilled over several
  // iterations, so running streams wait about one budget of prefill per token, and a cancel or
  // the shutdown deadline acts between slices. Results do not depend on it.
  int max_prefill_tokens_per_step = 512;
  // Threads that sample the rows of a decode step in parallel (sampling a 49k vocabulary costs
  // 0.4-1.3 ms a row on the host); 0 = hardware concurrency, at most 4. Results do not depend on
  // it.
  int sampling_threads = 0;
  // Engine::Make(options) measures the canary fingerprint at load (about 1 s on bench-135m); tools
  // that do not need it can skip it.
  bool compute_fingerprint = true;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Loads the tokenizer (Tokenizer::FromFolder), computes the model digest, loads the model
  // (LoadModel, which fixes the intra-op thread count) and starts the scheduler thread. Errors name
  // the step and the folder.
  static absl::StatusOr<std::unique_ptr<Engine>> Make(const EngineOptions& options);
  // Same, over a given runner (tests inject fakes). `tokenizer` may be null (no text in events).
  static absl::StatusOr<std::unique_ptr<Engine>> Make(const EngineOptions& options,
                                                      std::unique_ptr<ModelRunner> runner,
                                                      std::unique_ptr<Tokenizer> tokenizer);

  virtual const ModelInfo& info() const = 0;
  virtual const Tokenizer* tokenizer() const = 0;

  // Validates and enqueues. INVALID_ARGUMENT names the bad field (prompt_ids: empty, longer than
  // max_prompt_tokens or ids outside the vocabulary; max_tokens outside 1..max_new_tokens or
  // prompt + max_tokens over the runner's max_seq_len; sampling.*; stop_token_ids; stop_strings);
  // RESOURCE_EXHAUSTED when the queue is full; UNAVAILABLE after Shutdown began. Runner failures
  // later arrive as a final event with kError and the status, never as a crash.
  virtual absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(GenerateRequest request) = 0;

  // Stops intake; lets accepted requests (running and queued) go on until `deadline`, then cancels
  // what is left (final event kCancelled), and joins the scheduler. Idempotent; a later call with a
  // shorter deadline shortens it. The destructor calls Shutdown(0ms).
  virtual void Shutdown(std::chrono::milliseconds deadline) = 0;

  virtual EngineStats stats() const = 0;
};

}  // namespace atoma::engine
