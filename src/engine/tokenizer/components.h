// The pieces of a Hugging Face tokenizer pipeline, built from tokenizer.json: normalizers,
// pre-tokenizers, the BPE model, decoders. Each mirrors the behaviour of the Rust `tokenizers`
// crate (the reference for exactness), including its quirks, which the comments point out.
//
// Internal to atoma_tokenizer. Every component is immutable after construction and safe to use
// from many threads at once (the BPE cache has its own locks).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "regex.h"

namespace atoma::engine::tok {

// ---- Normalizers ---------------------------------------------------------------------------

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string Normalize(std::string text) const = 0;
};

// Builds a normalizer from its JSON (null gives nullptr). INVALID_ARGUMENT for unknown types.
absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& j);

// ---- Pre-tokenizers ------------------------------------------------------------------------

// A piece of a segment on its way to the model. `at_origin` is true when it starts at offset 0
// of the original text (Metaspace's prepend_scheme "first" looks at that).
struct Piece {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits (empty pieces are dropped).
  virtual void Split(std::vector<Piece>* pieces) const = 0;
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& j);

// ---- Decoders ------------------------------------------------------------------------------

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& j);

// ---- BPE model -----------------------------------------------------------------------------

class BpeModel {
 public:
  // Parses the "model" object of tokenizer.json. `max_id` bounds ids (untrusted files).
  static absl::StatusOr<std::unique_ptr<BpeModel>> Make(const nlohmann::json& j);

  // Appends the ids of one pre-tokenized word.
  void Tokenize(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The vocabulary string of `id`, or nullptr.
  const std::string* IdToToken(int32_t id) const;
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  BpeModel() = default;
  std::vector<int32_t> MergeWord(std::string_view word) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;             // "" for ids the vocabulary skips
  absl::flat_hash_map<char32_t, int32_t> char_ids_;  // single-character tokens, by code point
  // (left id << 32 | right id) -> (rank, merged id)
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};  // ids of <0xNN>, -1 when absent

  // Word -> ids cache (words of at most kMaxCachedWordBytes). Sharded to keep lock contention low
  // when many request threads encode at once; a shard is cleared when it grows past its cap.
  static constexpr size_t kShards = 16;
  static constexpr size_t kShardCap = 16384;
  static constexpr size_t kMaxCachedWordBytes = 256;
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<int32_t>> map ABSL_GUARDED_BY(mu);
  };
  mutable std::array<Shard, kShards> cache_;
};

}  // namespace atoma::engine::tok
