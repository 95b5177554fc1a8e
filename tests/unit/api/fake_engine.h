// Test doubles for the gRPC layer: a byte-level Tokenizer and an Engine whose scheduler thread
// produces deterministic tokens at a fixed step interval. Faults can be injected: Submit errors,
// a generation failing after N tokens, a bounded queue. The engine records what it was asked
// (the last request, when Cancel reached it, tokens made after that) so tests can check that the
// API layer converted and cancelled correctly.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "atoma/engine/engine.h"

namespace atoma::api::testing {

// Ids 0..255 are bytes; then the special tokens below. Chat: ChatML (or none).
class FakeTokenizer : public engine::Tokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int32_t kImStart = 258;
  static constexpr int32_t kImEnd = 259;
  static constexpr int32_t kVocab = 260;

  explicit FakeTokenizer(engine::ChatFormat format) : format_(format) {}

  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override;
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  std::optional<std::string> IdToToken(int32_t id) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  bool IsSpecial(int32_t id) const override { return id >= 256 && id < kVocab; }
  int32_t vocab_size() const override { return kVocab; }
  std::optional<int32_t> bos_id() const override { return kBos; }
  std::vector<int32_t> eos_ids() const override { return {kEos}; }
  engine::ChatFormat chat_format() const override { return format_; }
  absl::StatusOr<std::string> ApplyChatTemplate(std::span<const engine::ChatMessage> messages,
                                                bool add_generation_prompt) const override;

 private:
  engine::ChatFormat format_;
};

struct FakeEngineOptions {
  std::string id = "fake";
  engine::ChatFormat chat_format = engine::ChatFormat::kChatML;
  std::chrono::milliseconds step{2};  // time per decode step (all running requests advance)
  int max_queue = 64;
  int max_running = 8;
  int context_length = 512;
  absl::Status submit_status;  // non-OK: Submit returns it
  int fail_after_tokens = -1;  // >= 0: the request ends with kError (INTERNAL) after N tokens
  int eos_after_tokens = -1;   // >= 0: emit EOS as token N+1 and stop (kStop)
  std::string held_text;       // text a cancelled request's final event carries (held back)
  int token_offset = 0;        // != 0: a "different model" (consensus tests' dishonest member)
};

class FakeEngine : public engine::Engine {
 public:
  explicit FakeEngine(FakeEngineOptions options);
  ~FakeEngine() override;

  const engine::ModelInfo& info() const override { return info_; }
  const engine::Tokenizer* tokenizer() const override { return &tokenizer_; }
  absl::StatusOr<std::shared_ptr<engine::RequestHandle>> Submit(
      engine::GenerateRequest request) override;
  void Shutdown(std::chrono::milliseconds deadline) override;
  engine::EngineStats stats() const override;

  // Token generated at `step` (0-based) for `seed`: a lowercase letter byte.
  static int32_t TokenAt(uint64_t seed, int step) {
    return 'a' + static_cast<int>((seed + step) % 26);
  }

  // What tests inspect.
  std::optional<engine::GenerateRequest> last_request() const;
  int submitted() const { return submitted_.load(); }
  int cancels_seen() const { return cancels_seen_.load(); }
  // Wall time from a Cancel() call to the request leaving the engine, worst case so far.
  std::chrono::microseconds worst_cancel_latency() const;
  // Time of the latest Cancel() call.
  std::optional<std::chrono::steady_clock::time_point> last_cancel_time() const;

 private:
  struct Request;
  class Handle;
  void Loop();

  FakeEngineOptions options_;
  FakeTokenizer tokenizer_;
  engine::ModelInfo info_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> waiting_;
  std::vector<std::shared_ptr<Request>> running_;
  bool stopping_ = false;
  std::optional<engine::GenerateRequest> last_request_;
  std::optional<std::chrono::steady_clock::time_point> last_cancel_;
  std::chrono::microseconds worst_cancel_latency_{0};
  int64_t finished_ = 0;
  int64_t generated_ = 0;

  std::atomic<int> submitted_{0};
  std::atomic<int> cancels_seen_{0};
  std::thread thread_;
};

}  // namespace atoma::api::testing
