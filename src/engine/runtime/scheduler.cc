// The Engine implementation: a bounded waiting queue, one scheduler thread that owns the
// ModelRunner, and the continuous-batching loop:
//
//   loop:
//     drop cancelled waiting requests; past the shutdown deadline, cancel everything left
//     admit waiting requests (a runner sequence each) while fewer than max_running hold one
//     prefill up to max_prefill_tokens_per_step prompt tokens, oldest admitted first, each
//       runner call over ONE request's prompt (never shared with another's), in slices that end on
//       multiples of prefill_chunk; a request whose prompt is done samples its first token and
//       joins the decoders
//     one Decode step for all decoding sequences together; sample each row; emit events
//     sequences that finished, failed or were cancelled leave at once
// A long prompt is thus prefilled over several iterations: decoding streams wait about one budget
// of prefill per token, and a cancel or the shutdown deadline acts between slices.
//
// Determinism: a request's tokens depend only on its own prompt, parameters and request key: its
// prefill runs alone, in slices the runner computes exactly as one call (model.h), the runner's
// Decode is batch-invariant, and sampling is keyed by (seed, request_key, step) with step = index
// of the generated token.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/engine/engine.h"
#include "atoma/engine/sampler.h"
#include "engine_impl.h"

namespace atoma::engine {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "unknown";
}

namespace internal {
namespace {

// The state one request shares between its consumer (RequestHandle) and the scheduler.
class RequestState {
 public:
  explicit RequestState(GenerateRequest request) : request_(std::move(request)) {}

  // Scheduler side.
  const GenerateRequest& request() const { return request_; }
  void Push(StreamEvent event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  void Finish(StreamEvent event) {
    absl::MutexLock lock(&mu_);
    final_ = std::move(event);
  }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  // Consumer side.
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool Next(StreamEvent* event, std::chrono::milliseconds timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !events_.empty() || final_.has_value();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), absl::FromChrono(timeout))) return false;
    if (!events_.empty()) {
      *event = std::move(events_.front());
      events_.pop_front();
    } else {
      *event = *final_;
    }
    return true;
  }

 private:
  const GenerateRequest request_;  // immutable after Submit
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  std::deque<StreamEvent> events_ ABSL_GUARDED_BY(mu_);
  std::optional<StreamEvent> final_ ABSL_GUARDED_BY(mu_);
};

class RequestHandleImpl final : public RequestHandle {
 public:
  explicit RequestHandleImpl(std::shared_ptr<RequestState> state) : state_(std::move(state)) {}
  // A dropped handle means nobody reads the events any more: stop spending compute on them.
  ~RequestHandleImpl() override { state_->Cancel(); }
  bool Next(StreamEvent* event, std::chrono::milliseconds timeout) override {
    return state_->Next(event, timeout);
  }
  void Cancel() override { state_->Cancel(); }

 private:
  std::shared_ptr<RequestState> state_;
};

// A request being decoded. Scheduler thread only.
struct Sequence {
  std::shared_ptr<RequestState> state;
  int seq = -1;          // runner handle
  size_t prefilled = 0;  // prompt tokens in the runner's KV cache
  int32_t last_token = -1;
  std::vector<int32_t> output_ids;
  std::optional<StreamDecoder> decoder;  // only with a tokenizer
  StopStringFilter stop_filter;
  std::vector<int32_t> stop_ids;  // sorted: EOS (unless ignore_eos) and stop_token_ids
  bool done = false;

  const GenerateRequest& request() const { return state->request(); }
};

template <typename Fn>
absl::Status CallRunner(const char* what, Fn&& fn) {
  // The runner wraps libtorch; anything it lets escape becomes a Status here, never a crash.
  try {
    return fn();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(what, ": unknown exception"));
  }
}

// Runs fn(i) for i in [0, n) on a fixed set of threads (the caller's included) and waits.
// Sampling rows are pure functions of their own inputs, so results do not depend on the split.
class ParallelFor {
 public:
  explicit ParallelFor(int threads) {
    for (int t = 1; t < threads; ++t) workers_.emplace_back([this] { Work(); });
  }
  ~ParallelFor() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (auto& w : workers_) w.join();
  }
  ParallelFor(const ParallelFor&) = delete;
  ParallelFor& operator=(const ParallelFor&) = delete;

  template <typename Fn>
  void Run(size_t n, Fn&& fn) {
    if (workers_.empty() || n < 2) {
      for (size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    std::function<void(size_t)> job(std::forward<Fn>(fn));
    {
      absl::MutexLock lock(&mu_);
      job_ = &job;
      n_ = n;
      next_.store(0);
      pending_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    for (size_t i; (i = next_.fetch_add(1)) < n;) job(i);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* pending) { return *pending == 0; }, &pending_));
    job_ = nullptr;
  }

 private:
  void Work() {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(size_t)>* job;
      size_t n;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || generation_ != seen; };
        mu_.Await(absl::Condition(&ready));
        if (stop_) return;
        seen = generation_;
        job = job_;
        n = n_;
      }
      for (size_t i; (i = next_.fetch_add(1)) < n;) (*job)(i);
      absl::MutexLock lock(&mu_);
      --pending_;
    }
  }

  absl::Mutex mu_;
  const std::function<void(size_t)>* job_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t n_ ABSL_GUARDED_BY(mu_) = 0;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<size_t> next_{0};
  std::vector<std::thread> workers_;
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(const EngineOptions& options, std::unique_ptr<ModelRunner> runner,
             std::unique_ptr<Tokenizer> tokenizer, ModelInfo info, int max_running, int max_seq_len,
             int sampling_threads)
      : options_(options),
        runner_(std::move(runner)),
        tokenizer_(std::move(tokenizer)),
        info_(std::move(info)),
        max_running_(max_running),
        max_seq_len_(max_seq_len),
        vocab_(static_cast<int32_t>(runner_->config().vocab_size)),
        log_(GetLogger("engine")),
        pool_(sampling_threads) {
    for (int64_t id : runner_->config().eos_token_ids) eos_ids_.push_back(static_cast<int32_t>(id));
    if (tokenizer_) {
      for (int32_t id : tokenizer_->eos_ids()) eos_ids_.push_back(id);
    }
    std::sort(eos_ids_.begin(), eos_ids_.end());
    eos_ids_.erase(std::unique(eos_ids_.begin(), eos_ids_.end()), eos_ids_.end());
    kv_used_ = runner_->kv_bytes_used();
    kv_capacity_ = runner_->kv_bytes_capacity();
    thread_ = std::thread([this] { Loop(); });
  }

  ~EngineImpl() override { Shutdown(std::chrono::milliseconds(0)); }

  const ModelInfo& info() const override { return info_; }
  const Tokenizer* tokenizer() const override { return tokenizer_.get(); }

  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(GenerateRequest request) override {
    RETURN_IF_ERROR(Validate(request));
    auto state = std::make_shared<RequestState>(std::move(request));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return absl::UnavailableError("engine is shutting down");
      if (static_cast<int>(waiting_.size()) >= options_.max_queue) {
        return absl::ResourceExhaustedError(
            absl::StrCat("engine queue is full (", options_.max_queue, " waiting requests)"));
      }
      waiting_.push_back(state);
    }
    return std::make_shared<RequestHandleImpl>(std::move(state));
  }

  void Shutdown(std::chrono::milliseconds deadline) override {
    {
      absl::MutexLock lock(&mu_);
      const auto d = std::chrono::steady_clock::now() + deadline;
      if (!stopping_ || d < deadline_) deadline_ = d;
      stopping_ = true;
    }
    absl::MutexLock join_lock(&join_mu_);
    if (thread_.joinable()) thread_.join();
  }

  EngineStats stats() const override {
    EngineStats s;
    {
      absl::MutexLock lock(&mu_);
      s.waiting = static_cast<int>(waiting_.size());
    }
    s.running = running_count_.load();
    s.kv_bytes_used = kv_used_.load();
    s.kv_bytes_capacity = kv_capacity_.load();
    s.requests_finished = requests_finished_.load();
    s.tokens_generated = tokens_generated_.load();
    s.decode_steps = decode_steps_.load();
    s.decode_rows = decode_rows_.load();
    s.prefill_seconds = prefill_ns_.load() * 1e-9;
    s.decode_seconds = decode_ns_.load() * 1e-9;
    s.sample_seconds = sample_ns_.load() * 1e-9;
    return s;
  }

 private:
  absl::Status Validate(const GenerateRequest& r) const {
    const int prompt_len = static_cast<int>(r.prompt_ids.size());
    if (prompt_len == 0) return absl::InvalidArgumentError("prompt_ids: the prompt is empty");
    if (r.prompt_ids.size() > static_cast<size_t>(options_.max_prompt_tokens)) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_ids: ", r.prompt_ids.size(),
                                                     " tokens, over max_prompt_tokens ",
                                                     options_.max_prompt_tokens));
    }
    for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
      if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= vocab_) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt_ids: token id ", r.prompt_ids[i], " at position ", i,
                         " is outside the vocabulary [0, ", vocab_, ")"));
      }
    }
    if (r.max_tokens < 1 || r.max_tokens > options_.max_new_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_tokens must be in 1..", options_.max_new_tokens, ", got ", r.max_tokens));
    }
    RETURN_IF_ERROR(ValidateSamplingParams(r.sampling));
    for (int32_t id : r.stop_token_ids) {
      if (id < 0 || id >= vocab_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stop_token_ids: token id ", id, " is outside the vocabulary [0, ", vocab_, ")"));
      }
    }
    if (!r.stop_strings.empty() && !tokenizer_) {
      return absl::InvalidArgumentError(
          "stop_strings: this engine has no tokenizer, so it cannot match text");
    }
    for (const std::string& s : r.stop_strings) {
      if (s.empty()) return absl::InvalidArgumentError("stop_strings: empty stop string");
    }
    if (static_cast<int64_t>(prompt_len) + r.max_tokens > max_seq_len_) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_tokens: prompt (", prompt_len, " tokens) + max_tokens (", r.max_tokens,
                       ") exceeds the maximum sequence length ", max_seq_len_));
    }
    return absl::OkStatus();
  }

  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !waiting_.empty();
  }

  void Loop() {
    for (;;) {
      std::vector<std::shared_ptr<RequestState>> admit;
      std::vector<std::shared_ptr<RequestState>> drop;
      bool past_deadline = false;
      {
        absl::MutexLock lock(&mu_);
        if (running_.empty() && prefilling_.empty()) {
          mu_.Await(absl::Condition(this, &EngineImpl::HasWorkOrStopping));
        }
        if (stopping_ && waiting_.empty() && running_.empty() && prefilling_.empty()) break;
        past_deadline = stopping_ && std::chrono::steady_clock::now() >= deadline_;
        for (auto it = waiting_.begin(); it != waiting_.end();) {
          if (past_deadline || (*it)->cancelled()) {
            drop.push_back(std::move(*it));
            it = waiting_.erase(it);
          } else {
            ++it;
          }
        }
        while (static_cast<int>(running_.size() + prefilling_.size() + admit.size()) <
                   max_running_ &&
               !waiting_.empty()) {
          admit.push_back(std::move(waiting_.front()));
          waiting_.pop_front();
        }
      }
      for (auto& state : drop) FinishUnstarted(*state, FinishReason::kCancelled, absl::OkStatus());
      if (past_deadline) {
        for (auto& s : prefilling_) Finish(*s, FinishReason::kCancelled, absl::OkStatus());
        for (auto& s : running_) Finish(*s, FinishReason::kCancelled, absl::OkStatus());
        prefilling_.clear();
        running_.clear();
        UpdateStats();
        continue;
      }
      Admit(std::move(admit));
      PrefillStep();
      DecodeStep();
      UpdateStats();
    }
    UpdateStats();
  }

  // Gives each admitted request a runner sequence and queues it for prefill.
  void Admit(std::vector<std::shared_ptr<RequestState>> admit) {
    for (size_t i = 0; i < admit.size(); ++i) {
      std::shared_ptr<RequestState>& state = admit[i];
      if (state->cancelled()) {
        FinishUnstarted(*state, FinishReason::kCancelled, absl::OkStatus());
        continue;
      }
      const GenerateRequest& req = state->request();
      const int max_len = static_cast<int>(req.prompt_ids.size()) + req.max_tokens;
      absl::StatusOr<int> seq = absl::InternalError("unset");
      absl::Status st = CallRunner("AddSequence", [&] {
        seq = runner_->AddSequence(max_len);
        return absl::OkStatus();
      });
      if (st.ok()) st = seq.status();
      if (absl::IsResourceExhausted(st) && !(running_.empty() && prefilling_.empty())) {
        // No KV room until a running sequence leaves: requeue this and the rest, in order, at the
        // front of the queue.
        absl::MutexLock lock(&mu_);
        for (size_t j = admit.size(); j-- > i;) waiting_.push_front(std::move(admit[j]));
        return;
      }
      if (!st.ok()) {
        FinishUnstarted(*state, FinishReason::kError, st);
        continue;
      }
      auto s = std::make_unique<Sequence>();
      s->state = std::move(state);
      s->seq = *seq;
      running_count_.fetch_add(1);
      s->output_ids.reserve(req.max_tokens);
      if (tokenizer_) s->decoder.emplace(*tokenizer_, /*skip_special_tokens=*/true);
      s->stop_filter = StopStringFilter(req.stop_strings);
      s->stop_ids = req.stop_token_ids;
      if (!req.ignore_eos) s->stop_ids.insert(s->stop_ids.end(), eos_ids_.begin(), eos_ids_.end());
      std::sort(s->stop_ids.begin(), s->stop_ids.end());
      prefilling_.push_back(std::move(s));
    }
  }

  // Prefills at most max_prefill_tokens_per_step prompt tokens (at least one prefill_chunk),
  // oldest admitted request first. A slice ends at the prompt's end or on a multiple of
  // prefill_chunk, so the runner computes the same chunks as it would in one call and the bits do
  // not depend on the budget or the load. A request whose prompt is done samples its first token.
  void PrefillStep() {
    for (auto& s : prefilling_) {
      if (s->state->cancelled()) Finish(*s, FinishReason::kCancelled, absl::OkStatus());
    }
    std::erase_if(prefilling_, [](const std::unique_ptr<Sequence>& s) { return s->done; });
    const int64_t chunk = std::max(1, options_.runner.prefill_chunk);
    int64_t budget = options_.max_prefill_tokens_per_step;
    bool first = true;
    while (!prefilling_.empty()) {
      Sequence& s = *prefilling_.front();
      const std::vector<int32_t>& prompt = s.request().prompt_ids;
      const int64_t left = static_cast<int64_t>(prompt.size() - s.prefilled);
      // The rest of the prompt if it fits the budget, else the whole chunks that fit; the first
      // slice of an iteration is at least one chunk (or the rest, if shorter).
      const int64_t fits = left <= budget ? left : budget / chunk * chunk;
      const int64_t take = first ? std::max(fits, std::min(left, chunk)) : fits;
      if (take <= 0) break;
      first = false;
      budget -= take;
      const auto t0 = Clock::now();
      absl::Status st = CallRunner("Prefill", [&] {
        return runner_->Prefill(s.seq, std::span<const int32_t>(prompt).subspan(s.prefilled, take),
                                &logits_);
      });
      AddTime(prefill_ns_, t0);
      if (st.ok() && logits_.size() != static_cast<size_t>(vocab_)) {
        st = absl::InternalError(
            absl::StrCat("Prefill returned ", logits_.size(), " logits, expected ", vocab_));
      }
      if (!st.ok()) {
        Finish(s, FinishReason::kError, st);
        prefilling_.pop_front();
        continue;
      }
      s.prefilled += take;
      if (s.prefilled < prompt.size()) break;  // the budget ran out inside this prompt
      const auto t1 = Clock::now();
      Step(s, logits_);
      AddTime(sample_ns_, t1);
      if (!s.done) running_.push_back(std::move(prefilling_.front()));
      prefilling_.pop_front();
    }
  }

  // One Decode call for every running sequence, then sampling of each row.
  void DecodeStep() {
    for (auto& s : running_) {
      if (s->state->cancelled()) Finish(*s, FinishReason::kCancelled, absl::OkStatus());
    }
    RemoveDone();
    if (running_.empty()) return;
    seqs_.clear();
    tokens_.clear();
    for (const auto& s : running_) {
      seqs_.push_back(s->seq);
      tokens_.push_back(s->last_token);
    }
    const auto t0 = Clock::now();
    absl::Status st =
        CallRunner("Decode", [&] { return runner_->Decode(seqs_, tokens_, &logits_); });
    AddTime(decode_ns_, t0);
    decode_steps_.fetch_add(1);
    decode_rows_.fetch_add(static_cast<int64_t>(seqs_.size()));
    if (st.ok() && logits_.size() != running_.size() * static_cast<size_t>(vocab_)) {
      st = absl::InternalError(absl::StrCat("Decode returned ", logits_.size(),
                                            " logits, expected ", running_.size(), " x ", vocab_));
    }
    if (!st.ok()) {
      log_->error("decode step over {} sequences failed: {}", running_.size(), st.ToString());
      for (auto& s : running_) Finish(*s, FinishReason::kError, st);
      running_.clear();
      return;
    }
    // Rows are sampled in parallel (pure functions of their own row), then applied in row order.
    const auto t1 = Clock::now();
    samples_.resize(running_.size());
    pool_.Run(running_.size(), [&](size_t i) {
      const Sequence& s = *running_[i];
      if (s.state->cancelled()) return;
      samples_[i] = Sample(std::span<const float>(logits_).subspan(i * vocab_, vocab_),
                           s.request().sampling, s.request().request_key, s.output_ids.size());
    });
    for (size_t i = 0; i < running_.size(); ++i) {
      Sequence& s = *running_[i];
      // Cancelled while the step ran: no more tokens for it.
      if (s.state->cancelled()) {
        Finish(s, FinishReason::kCancelled, absl::OkStatus());
        continue;
      }
      Apply(s, std::move(samples_[i]), std::span<const float>(logits_).subspan(i * vocab_, vocab_));
    }
    AddTime(sample_ns_, t1);
    RemoveDone();
  }

  using Clock = std::chrono::steady_clock;
  static void AddTime(std::atomic<int64_t>& counter, Clock::time_point since) {
    counter.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count());
  }

  void RemoveDone() {
    std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->done; });
  }

  // Samples the next token of `s` from `logits` and applies it.
  void Step(Sequence& s, std::span<const float> logits) {
    const GenerateRequest& req = s.request();
    Apply(s, Sample(logits, req.sampling, req.request_key, s.output_ids.size()), logits);
  }

  // Appends the sampled token to `s`, emits its event, and finishes `s` when a stop condition
  // holds (or with kError when sampling failed).
  void Apply(Sequence& s, absl::StatusOr<SampleResult> r, std::span<const float> logits) {
    const GenerateRequest& req = s.request();
    if (!r.ok()) {
      Finish(s, FinishReason::kError,
             absl::InternalError(absl::StrCat("sampling failed: ", r.status().message())));
      return;
    }
    const int32_t token = r->token_id;
    s.output_ids.push_back(token);
    s.last_token = token;
    tokens_generated_.fetch_add(1);

    FinishReason finish = FinishReason::kNone;
    StreamEvent ev;
    ev.token_id = token;
    ev.logprob = r->logprob;
    ev.top_logprobs = std::move(r->top_logprobs);
    if (req.return_logits) ev.logits.assign(logits.begin(), logits.end());

    // A stop token ends the request; its text is never streamed.
    const bool stop_token = std::binary_search(s.stop_ids.begin(), s.stop_ids.end(), token);
    bool stopped = false;
    if (stop_token) {
      finish = FinishReason::kStop;
    } else if (s.decoder) {
      ev.text = s.stop_filter.Push(s.decoder->Push(token), &stopped);
      if (stopped) finish = FinishReason::kStop;
    }
    if (finish == FinishReason::kNone && static_cast<int>(s.output_ids.size()) >= req.max_tokens) {
      finish = FinishReason::kLength;
    }
    if (finish != FinishReason::kNone && !stopped && s.decoder) {
      // Last token: release what the decoder and the filter held back (unless that completes a
      // stop string after all).
      ev.text += s.stop_filter.Push(s.decoder->Flush(), &stopped);
      if (stopped) {
        finish = FinishReason::kStop;
      } else {
        ev.text += s.stop_filter.Flush();
      }
    }
    s.state->Push(std::move(ev));
    if (finish != FinishReason::kNone) Finish(s, finish, absl::OkStatus());
  }

  void Finish(Sequence& s, FinishReason reason, absl::Status status) {
    StreamEvent ev;
    ev.final = true;
    ev.finish_reason = reason;
    ev.status = std::move(status);
    ev.prompt_tokens = static_cast<int>(s.request().prompt_ids.size());
    ev.completion_tokens = static_cast<int>(s.output_ids.size());
    ev.output_ids = s.output_ids;
    if (reason == FinishReason::kCancelled && s.decoder && !s.stop_filter.stopped()) {
      // Text held back as a possible stop-string prefix is released: it was generated and no stop
      // string completed.
      bool stopped = false;
      ev.text = s.stop_filter.Push(s.decoder->Flush(), &stopped);
      if (!stopped) ev.text += s.stop_filter.Flush();
    }
    if (reason == FinishReason::kError) {
      log_->warn("request failed after {} tokens: {}", s.output_ids.size(), ev.status.ToString());
    }
    if (s.seq >= 0) {
      const int seq = s.seq;
      absl::Status st = CallRunner("RemoveSequence", [&] {
        runner_->RemoveSequence(seq);
        return absl::OkStatus();
      });
      if (!st.ok()) log_->error("{}", st.ToString());
      s.seq = -1;
      running_count_.fetch_sub(1);
      kv_used_.store(runner_->kv_bytes_used());
    }
    s.done = true;
    // Counters first: a consumer that sees the final event also sees them.
    requests_finished_.fetch_add(1);
    s.state->Finish(std::move(ev));
  }

  // Finishes a request that never got a runner sequence.
  void FinishUnstarted(RequestState& state, FinishReason reason, absl::Status status) {
    if (reason == FinishReason::kError) {
      log_->warn("request failed before its first token: {}", status.ToString());
    }
    StreamEvent ev;
    ev.final = true;
    ev.finish_reason = reason;
    ev.status = std::move(status);
    ev.prompt_tokens = static_cast<int>(state.request().prompt_ids.size());
    requests_finished_.fetch_add(1);
    state.Finish(std::move(ev));
  }

  void UpdateStats() {
    kv_used_.store(runner_->kv_bytes_used());
    kv_capacity_.store(runner_->kv_bytes_capacity());
  }

  const EngineOptions options_;
  const std::unique_ptr<ModelRunner> runner_;  // used by the scheduler thread only
  const std::unique_ptr<Tokenizer> tokenizer_;
  const ModelInfo info_;
  const int max_running_;
  const int max_seq_len_;
  const int32_t vocab_;
  std::vector<int32_t> eos_ids_;  // sorted; set in the constructor, read-only after
  std::shared_ptr<spdlog::logger> log_;

  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<RequestState>> waiting_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point deadline_ ABSL_GUARDED_BY(mu_);

  // Scheduler thread only.
  std::deque<std::unique_ptr<Sequence>> prefilling_;  // admitted, prompt not fully prefilled
  std::vector<std::unique_ptr<Sequence>> running_;    // decoding
  std::vector<float> logits_;
  std::vector<int> seqs_;
  std::vector<int32_t> tokens_;
  std::vector<absl::StatusOr<SampleResult>> samples_;
  ParallelFor pool_;

  // Published by the scheduler for stats().
  std::atomic<int> running_count_{0};
  std::atomic<int64_t> kv_used_{0};
  std::atomic<int64_t> kv_capacity_{0};
  std::atomic<int64_t> requests_finished_{0};
  std::atomic<int64_t> tokens_generated_{0};
  std::atomic<int64_t> decode_steps_{0};
  std::atomic<int64_t> decode_rows_{0};
  std::atomic<int64_t> prefill_ns_{0};
  std::atomic<int64_t> decode_ns_{0};
  std::atomic<int64_t> sample_ns_{0};

  absl::Mutex join_mu_;
  std::thread thread_;  // last: starts after every other member is ready
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> MakeEngine(const EngineOptions& options,
                                                   std::unique_ptr<ModelRunner> runner,
                                                   std::unique_ptr<Tokenizer> tokenizer,
                                                   ModelInfo info) {
  if (!runner) return absl::InvalidArgumentError("engine: no model runner");
  if (options.max_queue < 1) return absl::InvalidArgumentError("engine.max_queue must be >= 1");
  if (options.max_running < 1) {
    return absl::InvalidArgumentError("engine.max_running must be >= 1");
  }
  if (options.max_prompt_tokens < 1) {
    return absl::InvalidArgumentError("engine.max_prompt_tokens must be >= 1");
  }
  if (options.max_new_tokens < 1) {
    return absl::InvalidArgumentError("engine.max_new_tokens must be >= 1");
  }
  if (options.max_prefill_tokens_per_step < 1) {
    return absl::InvalidArgumentError("engine.max_prefill_tokens_per_step must be >= 1");
  }
  const ModelConfig& config = runner->config();
  if (config.vocab_size < 1 || config.vocab_size > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine: model vocab_size ", config.vocab_size, " is out of range"));
  }
  auto log = GetLogger("engine");
  int max_running = options.max_running;
  if (options.runner.max_batch > 0 && max_running > options.runner.max_batch) {
    log->warn("max_running {} is above the runner's max_batch {}; using {}", max_running,
              options.runner.max_batch, options.runner.max_batch);
    max_running = options.runner.max_batch;
  }
  int64_t max_seq_len = options.runner.max_seq_len > 0 ? options.runner.max_seq_len : INT32_MAX;
  if (config.max_position_embeddings > 0) {
    max_seq_len = std::min(max_seq_len, config.max_position_embeddings);
  }
  if (tokenizer && tokenizer->vocab_size() > config.vocab_size) {
    log->warn("tokenizer has {} ids but the model only {}: ids past the model's are rejected",
              tokenizer->vocab_size(), config.vocab_size);
  }
  info.config = config;
  info.path_description = runner->path_description();
  if (info.id.empty()) {
    info.id = !options.model_id.empty()               ? options.model_id
              : !options.model_dir.filename().empty() ? options.model_dir.filename().string()
                                                      : std::string("model");
  }
  int sampling_threads = options.sampling_threads;
  if (sampling_threads <= 0) {
    sampling_threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
  }
  return std::unique_ptr<Engine>(new EngineImpl(options, std::move(runner), std::move(tokenizer),
                                                std::move(info), max_running,
                                                static_cast<int>(max_seq_len), sampling_threads));
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Engine>> Engine::Make(const EngineOptions& options,
                                                     std::unique_ptr<ModelRunner> runner,
                                                     std::unique_ptr<Tokenizer> tokenizer) {
  ModelInfo info;
  info.dir = options.model_dir;
  return internal::MakeEngine(options, std::move(runner), std::move(tokenizer), std::move(info));
}

}  // namespace atoma::engine
