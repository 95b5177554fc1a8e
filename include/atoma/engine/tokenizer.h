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
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      std::string_view tokenizer_json, std::string_view tokenizer_config_json);
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
//
// Cost: each Push decodes only a short window of recent ids (the ids since the last emitted
// piece plus one piece of context, as Hugging Face's DecodeStream does), so a long generation
// costs O(n), not O(n^2). The context matters for decoders that look at neighbouring tokens (for
// example SentencePiece's leading-space strip).
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
  std::vector<int32_t> ids_;  // the window: ids_[0, read_) were emitted already
  size_t read_ = 0;
  std::string prefix_;  // Decode of ids_[0, read_)
};

// Trains a small byte-level BPE tokenizer (GPT-2 style Split regex pre-tokenizer, ByteLevel
// decoder) on `corpus` and returns tokenizer.json text. Ids: 0..255 the byte tokens (id = byte
// value), then one id per merge in the order learned, then the special tokens "<|endoftext|>",
// "<|im_start|>", "<|im_end|>". Training stops at `vocab_size` ids or when no pair of symbols
// occurs in the corpus any more, whichever comes first, so a small corpus gives fewer ids than
// asked: callers (model synthesis) may give the model a larger vocab_size than the tokenizer's,
// leaving the extra ids unused. Merges are picked by count, ties by the smaller pair of token
// strings (bytewise), so training is deterministic. INVALID_ARGUMENT when vocab_size < 259.
absl::StatusOr<std::string> TrainByteLevelBpe(std::string_view corpus, int vocab_size);

// A few KB of plain English text for TrainByteLevelBpe when synthesizing test models.
std::string_view BuiltinTrainingCorpus();

// tokenizer_config.json text for synthesized models: ChatML chat template, no BOS token,
// eos_token "<|im_end|>", to go with TrainByteLevelBpe's tokenizer.json.
std::string SynthTokenizerConfigJson();

}  // namespace atoma::engine
