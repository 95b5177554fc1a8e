// Test doubles for the engine: a ModelRunner whose logits are a hash of each sequence's own token
// history (so any mixing of sequences changes outputs), with fault injection, and a tiny
// Tokenizer whose tokens are short ASCII pieces (so stop strings can straddle token boundaries).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "atoma/engine/model.h"
#include "atoma/engine/tokenizer.h"

namespace atoma::engine::testing {

constexpr int32_t kFakeVocab = 64;
constexpr int32_t kFakeEos = 0;

// Logits of a sequence: a pure function of its token history (splitmix64 over an FNV-1a hash).
inline std::vector<float> FakeLogits(const std::vector<int32_t>& history) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : history) {
    h ^= static_cast<uint32_t>(t);
    h *= 1099511628211ull;
  }
  std::vector<float> out(kFakeVocab);
  for (int32_t i = 0; i < kFakeVocab; ++i) {
    uint64_t z = (h += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    out[i] = static_cast<float>(static_cast<double>(z >> 40) / (1 << 24) * 6.0 - 3.0);
  }
  out[kFakeEos] = -20.0f;  // EOS only when a test asks for it
  return out;
}

// Shared between a test and the FakeRunner the engine owns.
struct FakeControl {
  int max_slots = 64;
  std::atomic<int> decode_sleep_ms{0};
  std::atomic<int> prefill_sleep_ms{0};
  // When > 0, a Prefill call that continues a sequence must start on a multiple of this (the
  // engine slices prompts on the runner's prefill_chunk).
  std::atomic<int> prefill_chunk{0};
  std::atomic<int> fail_prefill_call{-1};  // 0-based index of the Prefill call that fails
  std::atomic<int> fail_decode_call{-1};
  std::atomic<int> nan_decode_call{-1};  // Decode call whose first row gets a NaN
  std::atomic<int> throw_decode_call{-1};
  std::atomic<int> eos_after{-1};  // EOS becomes the argmax once a sequence generated this many
  // When set, Prefill blocks until it is notified (after signalling prefill_entered).
  std::shared_ptr<absl::Notification> prefill_gate;
  std::atomic<int> prefill_entered{0};

  std::atomic<int> prefill_calls{0};
  std::atomic<int> max_prefill_call_tokens{0};
  std::atomic<int> decode_calls{0};
  std::atomic<int> max_batch_seen{0};
  std::atomic<int> prefills_since_decode{0};
  std::atomic<int> max_prefills_between_decodes{0};
  std::atomic<int> contract_violations{0};
};

// a = max(a, v), atomically.
inline void RaiseTo(std::atomic<int>& a, int v) {
  int seen = a.load();
  while (v > seen && !a.compare_exchange_weak(seen, v)) {
  }
}

class FakeRunner final : public ModelRunner {
 public:
  explicit FakeRunner(std::shared_ptr<FakeControl> control, int max_seq_len = 4096)
      : control_(std::move(control)) {
    config_.architecture = "FakeForCausalLM";
    config_.vocab_size = kFakeVocab;
    config_.max_position_embeddings = max_seq_len;
    config_.eos_token_ids = {kFakeEos};
  }

  const ModelConfig& config() const override { return config_; }
  std::string path_description() const override { return "fake/hash-logits"; }

  absl::StatusOr<int> AddSequence(int max_len) override {
    if (static_cast<int>(seqs_.size()) >= control_->max_slots) {
      return absl::ResourceExhaustedError("fake runner: no free slot");
    }
    const int id = next_id_++;
    seqs_[id] = Seq{{}, 0, max_len};
    return id;
  }
  void RemoveSequence(int seq) override { seqs_.erase(seq); }

  absl::Status Prefill(int seq, std::span<const int32_t> tokens,
                       std::vector<float>* last_logits) override {
    const int call = control_->prefill_calls.fetch_add(1);
    const int since = control_->prefills_since_decode.fetch_add(1) + 1;
    RaiseTo(control_->max_prefills_between_decodes, since);
    control_->prefill_entered.fetch_add(1);
    if (control_->prefill_gate) control_->prefill_gate->WaitForNotification();
    const int sleep = control_->prefill_sleep_ms.load();
    if (sleep > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep));
    if (call == control_->fail_prefill_call.load()) {
      return absl::InternalError("fake runner: injected prefill failure");
    }
    RaiseTo(control_->max_prefill_call_tokens, static_cast<int>(tokens.size()));
    // A prompt may arrive in several calls, never after the sequence started decoding.
    auto it = seqs_.find(seq);
    if (it == seqs_.end() || it->second.decoding) return Violation("prefill of bad seq");
    const int chunk = control_->prefill_chunk.load();
    if (chunk > 0 && it->second.history.size() % chunk != 0) {
      return Violation("prefill slice does not start on a chunk boundary");
    }
    if (tokens.empty()) return Violation("empty prefill");
    it->second.history.insert(it->second.history.end(), tokens.begin(), tokens.end());
    if (static_cast<int>(it->second.history.size()) > it->second.max_len) {
      return Violation("prompt over its reserved length");
    }
    it->second.prompt_len = static_cast<int>(it->second.history.size());
    *last_logits = Logits(it->second);
    return absl::OkStatus();
  }

  absl::Status Decode(std::span<const int> seqs, std::span<const int32_t> tokens,
                      std::vector<float>* logits) override {
    const int call = control_->decode_calls.fetch_add(1);
    control_->prefills_since_decode.store(0);
    const int sleep = control_->decode_sleep_ms.load();
    if (sleep > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep));
    RaiseTo(control_->max_batch_seen, static_cast<int>(seqs.size()));
    if (call == control_->fail_decode_call.load()) {
      return absl::InternalError("fake runner: injected decode failure");
    }
    if (call == control_->throw_decode_call.load()) throw std::runtime_error("fake torch error");
    if (seqs.size() != tokens.size() || seqs.empty()) return Violation("decode shapes");
    std::set<int> distinct(seqs.begin(), seqs.end());
    if (distinct.size() != seqs.size()) return Violation("duplicate seq in decode");
    logits->clear();
    for (size_t i = 0; i < seqs.size(); ++i) {
      auto it = seqs_.find(seqs[i]);
      if (it == seqs_.end() || it->second.history.empty()) return Violation("decode of bad seq");
      it->second.decoding = true;
      if (tokens[i] < 0 || tokens[i] >= kFakeVocab) return Violation("token out of vocab");
      it->second.history.push_back(tokens[i]);
      if (static_cast<int>(it->second.history.size()) > it->second.max_len) {
        return Violation("sequence over its reserved length");
      }
      std::vector<float> row = Logits(it->second);
      if (i == 0 && call == control_->nan_decode_call.load()) row[3] = std::nanf("");
      logits->insert(logits->end(), row.begin(), row.end());
    }
    return absl::OkStatus();
  }

  int64_t kv_bytes_used() const override {
    int64_t n = 0;
    for (const auto& [id, s] : seqs_) n += s.max_len * 16;
    return n;
  }
  int64_t kv_bytes_capacity() const override { return int64_t{control_->max_slots} * 4096 * 16; }

 private:
  struct Seq {
    std::vector<int32_t> history;
    int prompt_len = 0;
    int max_len = 0;
    bool decoding = false;
  };
  std::vector<float> Logits(const Seq& s) const {
    std::vector<float> l = FakeLogits(s.history);
    const int eos_after = control_->eos_after.load();
    if (eos_after >= 0 && static_cast<int>(s.history.size()) - s.prompt_len >= eos_after) {
      l[kFakeEos] = 50.0f;
    }
    return l;
  }
  absl::Status Violation(const std::string& what) {
    control_->contract_violations.fetch_add(1);
    return absl::InternalError("fake runner contract violation: " + what);
  }

  std::shared_ptr<FakeControl> control_;
  ModelConfig config_;
  std::map<int, Seq> seqs_;
  int next_id_ = 0;
};

// Token i (i > 0) decodes to a short ASCII piece; token 0 is the special "<eos>".
inline std::string FakePiece(int32_t id) {
  static constexpr char kChars[] = "abcdefg ";
  std::string s(1, kChars[id % 8]);
  if (id >= 8) s += kChars[(id / 8) % 8];
  if (id >= 40) s += '.';
  return s;
}

class FakeTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override {
    // Single characters map to their one-character token; enough for tests that build prompts.
    std::vector<int32_t> ids;
    for (char c : text) {
      for (int32_t id = 1; id < 8; ++id) {
        if (FakePiece(id)[0] == c) ids.push_back(id);
      }
    }
    return ids;
  }
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id == kFakeEos) {
        if (!skip_special_tokens) out += "<eos>";
      } else {
        out += FakePiece(id);
      }
    }
    return out;
  }
  std::optional<std::string> IdToToken(int32_t id) const override {
    if (id < 0 || id >= kFakeVocab) return std::nullopt;
    return id == kFakeEos ? std::string("<eos>") : FakePiece(id);
  }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    for (int32_t id = 0; id < kFakeVocab; ++id) {
      if (IdToToken(id) == token) return id;
    }
    return std::nullopt;
  }
  bool IsSpecial(int32_t id) const override { return id == kFakeEos; }
  int32_t vocab_size() const override { return kFakeVocab; }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::vector<int32_t> eos_ids() const override { return {kFakeEos}; }
  ChatFormat chat_format() const override { return ChatFormat::kNone; }
  absl::StatusOr<std::string> ApplyChatTemplate(std::span<const ChatMessage>, bool) const override {
    return absl::FailedPreconditionError("fake tokenizer has no chat format");
  }
};

}  // namespace atoma::engine::testing
