// Tokenizer for Hugging Face `tokenizer.json` files: byte-level BPE (GPT-2, Llama-3, Qwen, SmolLM)
// and SentencePiece-style BPE with byte fallback (Llama-2, TinyLlama, Mistral), pre-tokenizer
// regexes (PCRE2), added and special tokens, and chat prompt formats (ChatML, Llama-3, Llama-2).
//
// It must give exactly the ids Hugging Face's tokenizers give; tests/unit/tokenizer checks that
// against a reference implementation over a varied corpus.
//
// Thread-safety: a Tokenizer is immutable after construction; all const methods may be called
// concurrently. StreamDecoder is not thread-safe (one per request).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace atoma::engine {

enum class ChatFormat {
  kNone,    // the model has no chat format we know; chat requests are rejected
  kChatML,  // <|im_start|>role\n...<|im_end|>\n (Qwen, SmolLM-Instruct)
  kLlama3,  // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  kLlama2,  // [INST] ... [/INST] with <<SYS>> blocks (Llama-2, TinyLlama-chat, Mistral)
};

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Parses tokenizer.json text (and optionally tokenizer_config.json text, which may be empty) into
  // a tokenizer. Unsupported models/normalizers/pre-tokenizers give INVALID_ARGUMENT naming them.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                             std::string_view tokenizer_config_json);
  // Reads `dir`/tokenizer.json and, if present, `dir`/tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFolder(const std::filesystem::path& dir);

  // Text to ids. `add_special_tokens` applies the post-processor (for example a leading BOS), as
  // HF's `encode(text, add_special_tokens=...)`. Added/special tokens written in the text are
  // always recognised, as HF does.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const = 0;

  // Ids to text. With `skip_special_tokens`, special added tokens are dropped. Bytes that do not
  // form valid UTF-8 become U+FFFD, as HF does.
  virtual std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;

  // The raw vocabulary string of an id (e.g. "Ġthe"), or nullopt for an id out of range.
  virtual std::optional<std::string> IdToToken(int32_t id) const = 0;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;

  // Size of the id space (max id + 1 over the model vocabulary and added tokens).
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  // End-of-sequence ids: tokenizer_config's eos_token plus, for chat formats, the end-of-turn token
  // (<|eot_id|>, <|im_end|>).
  virtual std::vector<int32_t> eos_ids() const = 0;

  virtual ChatFormat chat_format() const = 0;
  // Renders messages in the model's chat format; with `add_generation_prompt` it ends with the
  // assistant header. FAILED_PRECONDITION when chat_format() is kNone; INVALID_ARGUMENT for an
  // unknown role. The result is text to pass to Encode(text, /*add_special_tokens=*/false); it
  // includes the BOS token text where the format has one.
  virtual absl::StatusOr<std::string> ApplyChatTemplate(std::span<const ChatMessage> messages,
                                                        bool add_generation_prompt) const = 0;
};

// Turns a stream of ids into text pieces without ever emitting half a UTF-8 character: bytes of an
// incomplete character are held until the character completes. Decoding all pieces concatenated
// equals Tokenizer::Decode of all ids (for valid output).
class StreamDecoder {
 public:
  // `tokenizer` must outlive the decoder.
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);
  // Returns the new text completed by `id` (possibly empty).
  std::string Push(int32_t id);
  // Returns what is held back (incomplete bytes become U+FFFD) and resets.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t emitted_bytes_ = 0;  // bytes of Decode(ids_) already returned
};

// Trains a small byte-level BPE tokenizer (GPT-2 style pre-tokenizer, ByteLevel decoder) on
// `corpus` and returns tokenizer.json text with `vocab_size` entries (256 byte tokens, merges, then
// the special tokens "<|endoftext|>", "<|im_start|>", "<|im_end|>"). Deterministic. Used by
// `atoma-cli model synth`.
absl::StatusOr<std::string> TrainByteLevelBpe(std::string_view corpus, int vocab_size);

}  // namespace atoma::engine
