#include "fake_engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace atoma::api::testing {
namespace {

constexpr std::string_view kSpecialText[] = {"<s>", "</s>", "<|im_start|>", "<|im_end|>"};

}  // namespace

std::vector<int32_t> FakeTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (add_special_tokens) ids.push_back(kBos);
  size_t i = 0;
  while (i < text.size()) {
    bool special = false;
    for (int k = 0; k < 4; ++k) {
      if (text.substr(i).starts_with(kSpecialText[k])) {
        ids.push_back(256 + k);
        i += kSpecialText[k].size();
        special = true;
        break;
      }
    }
    if (!special) ids.push_back(static_cast<unsigned char>(text[i++]));
  }
  return ids;
}

std::string FakeTokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 0 && id < 256) {
      out.push_back(static_cast<char>(id));
    } else if (id >= 256 && id < kVocab && !skip_special_tokens) {
      out.append(kSpecialText[id - 256]);
    }
  }
  return out;
}

std::optional<std::string> FakeTokenizer::IdToToken(int32_t id) const {
  if (id < 0 || id >= kVocab) return std::nullopt;
  if (id >= 256) return std::string(kSpecialText[id - 256]);
  return std::string(1, static_cast<char>(id));
}

std::optional<int32_t> FakeTokenizer::TokenToId(std::string_view token) const {
  for (int k = 0; k < 4; ++k) {
    if (token == kSpecialText[k]) return 256 + k;
  }
  if (token.size() == 1) return static_cast<unsigned char>(token[0]);
  return std::nullopt;
}

absl::StatusOr<std::string> FakeTokenizer::ApplyChatTemplate(
    std::span<const engine::ChatMessage> messages, bool add_generation_prompt) const {
  if (format_ == engine::ChatFormat::kNone) {
    return absl::FailedPreconditionError("no chat format");
  }
  std::string out;
  for (const engine::ChatMessage& m : messages) {
    absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

struct FakeEngine::Request {
  engine::GenerateRequest request;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<engine::StreamEvent> events;
  std::optional<engine::StreamEvent> final_event;
  std::atomic<bool> cancel{false};
  std::chrono::steady_clock::time_point cancel_time;
  std::vector<int32_t> output;

  void Push(engine::StreamEvent event) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(std::move(event));
    cv.notify_all();
  }
};

class FakeEngine::Handle : public engine::RequestHandle {
 public:
  Handle(FakeEngine* engine, std::shared_ptr<Request> request)
      : engine_(engine), request_(std::move(request)) {}

  bool Next(engine::StreamEvent* event, std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(request_->mu);
    if (request_->final_event && request_->events.empty()) {
      *event = *request_->final_event;
      return true;
    }
    if (!request_->cv.wait_for(lock, timeout, [&] { return !request_->events.empty(); })) {
      return false;
    }
    *event = std::move(request_->events.front());
    request_->events.pop_front();
    if (event->final) request_->final_event = *event;
    return true;
  }

  void Cancel() override {
    if (request_->cancel.exchange(true)) return;
    {
      std::lock_guard<std::mutex> lock(request_->mu);
      request_->cancel_time = std::chrono::steady_clock::now();
    }
    engine_->cancels_seen_.fetch_add(1);
    std::lock_guard<std::mutex> lock(engine_->mu_);
    engine_->last_cancel_ = std::chrono::steady_clock::now();
  }

 private:
  FakeEngine* engine_;
  std::shared_ptr<Request> request_;
};

FakeEngine::FakeEngine(FakeEngineOptions options)
    : options_(std::move(options)), tokenizer_(options_.chat_format) {
  info_.id = options_.id;
  info_.digest.fill(0xab);
  info_.config.architecture = "LlamaForCausalLM";
  info_.config.vocab_size = FakeTokenizer::kVocab;
  info_.config.max_position_embeddings = options_.context_length;
  info_.path_description = "fake/step";
  crypto::Hash256 fingerprint;
  fingerprint.fill(0xcd);
  info_.fingerprint = fingerprint;
  thread_ = std::thread([this] { Loop(); });
}

FakeEngine::~FakeEngine() { Shutdown(std::chrono::milliseconds(0)); }

absl::StatusOr<std::shared_ptr<engine::RequestHandle>> FakeEngine::Submit(
    engine::GenerateRequest request) {
  if (!options_.submit_status.ok()) return options_.submit_status;
  if (request.max_tokens <= 0) return absl::InvalidArgumentError("max_tokens must be > 0");
  auto r = std::make_shared<Request>();
  r->request = std::move(request);
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return absl::UnavailableError("engine is shutting down");
  if (static_cast<int>(waiting_.size()) >= options_.max_queue) {
    return absl::ResourceExhaustedError("engine queue is full");
  }
  last_request_ = r->request;
  waiting_.push_back(r);
  submitted_.fetch_add(1);
  cv_.notify_all();
  return std::shared_ptr<engine::RequestHandle>(std::make_shared<Handle>(this, r));
}

void FakeEngine::Loop() {
  while (true) {
    std::vector<std::shared_ptr<Request>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running_.empty(); });
      if (stopping_ && waiting_.empty() && running_.empty()) return;
      while (!waiting_.empty() && static_cast<int>(running_.size()) < options_.max_running) {
        running_.push_back(waiting_.front());
        waiting_.pop_front();
      }
      batch = running_;
    }
    std::this_thread::sleep_for(options_.step);
    std::vector<std::shared_ptr<Request>> done;
    for (const auto& r : batch) {
      engine::StreamEvent final_event;
      final_event.final = true;
      final_event.prompt_tokens = static_cast<int>(r->request.prompt_ids.size());
      const int step = static_cast<int>(r->output.size());
      if (r->cancel.load()) {
        final_event.finish_reason = engine::FinishReason::kCancelled;
        final_event.text = options_.held_text;
      } else if (options_.fail_after_tokens >= 0 && step >= options_.fail_after_tokens) {
        final_event.finish_reason = engine::FinishReason::kError;
        final_event.status = absl::InternalError("injected engine fault");
      } else {
        const bool eos = options_.eos_after_tokens >= 0 && step == options_.eos_after_tokens &&
                         !r->request.ignore_eos;
        engine::StreamEvent token;
        token.token_id = eos ? FakeTokenizer::kEos
                             : TokenAt(r->request.sampling.seed + options_.token_offset, step);
        token.text = eos ? "" : std::string(1, static_cast<char>(token.token_id));
        token.logprob = -0.5;
        for (int k = 0; k < r->request.sampling.top_logprobs; ++k) {
          token.top_logprobs.push_back({token.token_id + k, -0.5 - k});
        }
        r->output.push_back(token.token_id);
        r->Push(std::move(token));
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++generated_;
        }
        const bool stop_id =
            std::find(r->request.stop_token_ids.begin(), r->request.stop_token_ids.end(),
                      r->output.back()) != r->request.stop_token_ids.end();
        if (eos || stop_id) {
          final_event.finish_reason = engine::FinishReason::kStop;
        } else if (static_cast<int>(r->output.size()) >= r->request.max_tokens) {
          final_event.finish_reason = engine::FinishReason::kLength;
        } else {
          continue;
        }
      }
      final_event.completion_tokens = static_cast<int>(r->output.size());
      final_event.output_ids = r->output;
      if (final_event.finish_reason == engine::FinishReason::kCancelled) {
        std::lock_guard<std::mutex> lock(r->mu);
        const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now() - r->cancel_time);
        std::lock_guard<std::mutex> engine_lock(mu_);
        worst_cancel_latency_ = std::max(worst_cancel_latency_, latency);
      }
      r->Push(std::move(final_event));
      done.push_back(r);
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& r : done) {
      running_.erase(std::find(running_.begin(), running_.end(), r));
      ++finished_;
    }
  }
}

void FakeEngine::Shutdown(std::chrono::milliseconds deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
  }
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (waiting_.empty() && running_.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& r : waiting_) r->cancel = true;
    for (const auto& r : running_) r->cancel = true;
  }
  thread_.join();
}

engine::EngineStats FakeEngine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  engine::EngineStats s;
  s.waiting = static_cast<int>(waiting_.size());
  s.running = static_cast<int>(running_.size());
  s.requests_finished = finished_;
  s.tokens_generated = generated_;
  return s;
}

std::optional<engine::GenerateRequest> FakeEngine::last_request() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_request_;
}

std::chrono::microseconds FakeEngine::worst_cancel_latency() const {
  std::lock_guard<std::mutex> lock(mu_);
  return worst_cancel_latency_;
}

std::optional<std::chrono::steady_clock::time_point> FakeEngine::last_cancel_time() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_cancel_;
}

}  // namespace atoma::api::testing
