#include "convert.h"

#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/crypto/sha256.h"

namespace atoma::api {
namespace {

// Most alternatives per token the engine reports (engine::SamplingParams::top_logprobs).
constexpr int kMaxTopLogprobs = 20;

absl::Status CheckText(const std::string& field, const std::string& text,
                       const ConvertLimits& limits) {
  if (text.size() > static_cast<size_t>(limits.max_prompt_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", text.size(), " bytes, over the node's limit of ", limits.max_prompt_bytes));
  }
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> EncodeText(const std::string& field, const std::string& text,
                                                bool add_special_tokens,
                                                const engine::Engine& engine,
                                                const ConvertLimits& limits) {
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty prompt"));
  RETURN_IF_ERROR(CheckText(field, text, limits));
  const engine::Tokenizer* tokenizer = engine.tokenizer();
  if (tokenizer == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model ", engine.info().id, " has no tokenizer; send the prompt as token_ids"));
  }
  return tokenizer->Encode(text, add_special_tokens);
}

absl::StatusOr<std::vector<int32_t>> EncodeChat(const std::string& field,
                                                const v1::ChatPrompt& chat,
                                                const engine::Engine& engine,
                                                const ConvertLimits& limits) {
  if (chat.messages().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".messages: empty conversation"));
  }
  std::vector<engine::ChatMessage> messages;
  messages.reserve(chat.messages_size());
  size_t total_bytes = 0;
  for (int i = 0; i < chat.messages_size(); ++i) {
    const v1::ChatMessage& m = chat.messages(i);
    const std::string prefix = absl::StrCat(field, ".messages[", i, "]");
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") {
      if (!IsValidUtf8(m.role())) {
        return absl::InvalidArgumentError(absl::StrCat(prefix, ".role: not valid UTF-8"));
      }
      return absl::InvalidArgumentError(absl::StrCat(prefix, ".role: \"", m.role().substr(0, 32),
                                                     "\" is not system, user or assistant"));
    }
    RETURN_IF_ERROR(CheckText(absl::StrCat(prefix, ".content"), m.content(), limits));
    total_bytes += m.content().size();
    messages.push_back({m.role(), m.content()});
  }
  if (total_bytes > static_cast<size_t>(limits.max_prompt_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", total_bytes,
                                                   " bytes of content, over the node's limit of ",
                                                   limits.max_prompt_bytes));
  }
  const engine::Tokenizer* tokenizer = engine.tokenizer();
  if (tokenizer == nullptr || tokenizer->chat_format() == engine::ChatFormat::kNone) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": model ", engine.info().id,
                     " has no chat format; send the prompt as text or token_ids"));
  }
  auto rendered = tokenizer->ApplyChatTemplate(messages, /*add_generation_prompt=*/true);
  if (!rendered.ok()) {
    return absl::Status(rendered.status().code(),
                        absl::StrCat(field, ": ", rendered.status().message()));
  }
  // The rendered text carries its own special tokens (BOS where the format has one).
  return tokenizer->Encode(*rendered, /*add_special_tokens=*/false);
}

// The id space prompts and stop ids must lie in: the model's output vocabulary.
int64_t VocabSize(const engine::Engine& engine) {
  int64_t vocab = engine.info().config.vocab_size;
  if (vocab <= 0 && engine.tokenizer() != nullptr) vocab = engine.tokenizer()->vocab_size();
  return vocab;
}

absl::Status CheckIds(const std::string& field, const google::protobuf::RepeatedField<int32_t>& ids,
                      int64_t vocab) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || (vocab > 0 && ids[i] >= vocab)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "]: id ", ids[i], " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSecurity(const v1::GenerateRequest& request) {
  if (!request.has_security()) return absl::OkStatus();
  switch (request.security().level_case()) {
    case v1::Security::LEVEL_NOT_SET:
    case v1::Security::kNone:
      return absl::OkStatus();
    case v1::Security::kSampling:
      return absl::UnimplementedError(
          "security.sampling: Sampling Consensus is not served by this node yet; use "
          "security.none");
    case v1::Security::kCrossValidation:
      return absl::UnimplementedError(
          "security.cross_validation: cross-validation is not served by this node yet; use "
          "security.none");
  }
  return absl::UnimplementedError("security: unknown level");
}

absl::StatusOr<engine::SamplingParams> ToSampling(const v1::GenerateRequest& request) {
  engine::SamplingParams out;
  if (!request.has_sampling()) return out;
  const v1::SamplingParams& s = request.sampling();
  if (!std::isfinite(s.temperature()) || s.temperature() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.temperature: ", s.temperature(), " must be >= 0"));
  }
  if (s.top_k() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_k: ", s.top_k(), " must be >= 0 (0 = off)"));
  }
  if (s.has_top_p()) {
    // Written so that NaN fails too.
    if (!(s.top_p() > 0.0 && s.top_p() <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampling.top_p: ", s.top_p(), " is outside (0, 1]"));
    }
    out.top_p = s.top_p();
  }
  if (s.top_logprobs() < 0 || s.top_logprobs() > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.top_logprobs: ", s.top_logprobs(),
                                                   " is outside [0, ", kMaxTopLogprobs, "]"));
  }
  out.temperature = s.temperature();
  out.top_k = s.top_k();
  out.seed = s.seed();
  out.top_logprobs = s.top_logprobs();
  return out;
}

void PutU64(crypto::Sha256& h, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
  h.Update(std::span<const uint8_t>(b, 8));
}

void PutBytes(crypto::Sha256& h, std::string_view s) {
  uint8_t b[4];
  const uint32_t n = static_cast<uint32_t>(s.size());
  for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(n >> (24 - 8 * i));
  h.Update(std::span<const uint8_t>(b, 4));
  h.Update(s);
}

void PutIds(crypto::Sha256& h, const std::vector<int32_t>& ids) {
  PutU64(h, ids.size());
  for (int32_t id : ids) PutU64(h, static_cast<uint64_t>(static_cast<uint32_t>(id)));
}

uint64_t DoubleBits(double d) {
  uint64_t bits;
  static_assert(sizeof bits == sizeof d);
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte or 0xF8..0xFF as a lead byte
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMinForLen[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len]) return false;          // overlong
    if (cp > 0x10FFFF) return false;                 // past Unicode
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // surrogate
    i += len;
  }
  return true;
}

absl::StatusOr<engine::GenerateRequest> ToEngineRequest(const v1::GenerateRequest& request,
                                                        const engine::Engine& engine,
                                                        const ConvertLimits& limits) {
  RETURN_IF_ERROR(CheckSecurity(request));
  engine::GenerateRequest out;
  const int64_t vocab = VocabSize(engine);

  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText: {
      ASSIGN_OR_RETURN(out.prompt_ids, EncodeText("text", request.text(),
                                                  /*add_special_tokens=*/true, engine, limits));
      break;
    }
    case v1::GenerateRequest::kChat: {
      ASSIGN_OR_RETURN(out.prompt_ids, EncodeChat("chat", request.chat(), engine, limits));
      break;
    }
    case v1::GenerateRequest::kTokenIds: {
      const auto& ids = request.token_ids().ids();
      RETURN_IF_ERROR(CheckIds("token_ids.ids", ids, vocab));
      out.prompt_ids.assign(ids.begin(), ids.end());
      break;
    }
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return absl::InvalidArgumentError("prompt: one of text, chat or token_ids is required");
  }
  if (out.prompt_ids.empty()) {
    return absl::InvalidArgumentError("prompt: empty prompt (no tokens)");
  }
  const int64_t context = engine.info().config.max_position_embeddings;
  if (context > 0 && static_cast<int64_t>(out.prompt_ids.size()) >= context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt: ", out.prompt_ids.size(), " tokens, the model's context length is ", context));
  }

  ASSIGN_OR_RETURN(out.sampling, ToSampling(request));

  if (request.has_max_tokens()) {
    if (request.max_tokens() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_tokens: ", request.max_tokens(), " must be > 0"));
    }
    out.max_tokens = request.max_tokens();
  } else {
    out.max_tokens = limits.default_max_tokens;
  }

  if (request.stop_size() > limits.max_stop_strings) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop: ", request.stop_size(), " strings, at most ", limits.max_stop_strings));
  }
  for (int i = 0; i < request.stop_size(); ++i) {
    const std::string& s = request.stop(i);
    if (s.empty()) return absl::InvalidArgumentError(absl::StrCat("stop[", i, "]: empty string"));
    if (s.size() > static_cast<size_t>(limits.max_stop_string_bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stop[", i, "]: ", s.size(), " bytes, at most ", limits.max_stop_string_bytes));
    }
    if (!IsValidUtf8(s)) {
      return absl::InvalidArgumentError(absl::StrCat("stop[", i, "]: not valid UTF-8"));
    }
    out.stop_strings.push_back(s);
  }
  RETURN_IF_ERROR(CheckIds("stop_token_ids", request.stop_token_ids(), vocab));
  out.stop_token_ids.assign(request.stop_token_ids().begin(), request.stop_token_ids().end());
  out.ignore_eos = request.ignore_eos();
  return out;
}

absl::StatusOr<std::vector<int32_t>> TokenizeForRequest(const v1::TokenizeRequest& request,
                                                        const engine::Engine& engine,
                                                        const ConvertLimits& limits) {
  switch (request.input_case()) {
    case v1::TokenizeRequest::kText:
      return EncodeText("text", request.text(), !request.no_special_tokens(), engine, limits);
    case v1::TokenizeRequest::kChat:
      return EncodeChat("chat", request.chat(), engine, limits);
    case v1::TokenizeRequest::INPUT_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("input: one of text or chat is required");
}

absl::Status PromptToTokenIds(v1::GenerateRequest* request, const engine::Engine& engine,
                              const ConvertLimits& limits) {
  // Through TokenizeForRequest, so the ids are by construction the ones Tokenize gave the client
  // that signed them (special tokens added, as Tokenize's default).
  v1::TokenizeRequest tokenize;
  switch (request->prompt_case()) {
    case v1::GenerateRequest::kTokenIds:
      return absl::OkStatus();
    case v1::GenerateRequest::kText:
      tokenize.set_text(request->text());
      break;
    case v1::GenerateRequest::kChat:
      *tokenize.mutable_chat() = request->chat();
      break;
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return absl::InvalidArgumentError("prompt: one of text, chat or token_ids is required");
  }
  ASSIGN_OR_RETURN(const std::vector<int32_t> ids, TokenizeForRequest(tokenize, engine, limits));
  // Setting the oneof's token_ids clears text or chat.
  request->mutable_token_ids()->mutable_ids()->Assign(ids.begin(), ids.end());
  return absl::OkStatus();
}

crypto::Hash256 AnonymousRequestKey(const engine::ModelInfo& model,
                                    const engine::GenerateRequest& request) {
  crypto::Sha256 h;
  h.Update(std::string_view("atoma/anonymous-request\0", 24));
  h.Update(std::span<const uint8_t>(model.digest.data(), model.digest.size()));
  PutIds(h, request.prompt_ids);
  PutU64(h, DoubleBits(request.sampling.temperature));
  PutU64(h, static_cast<uint64_t>(request.sampling.top_k));
  PutU64(h, DoubleBits(request.sampling.top_p));
  PutU64(h, request.sampling.seed);
  PutU64(h, static_cast<uint64_t>(request.sampling.top_logprobs));
  PutU64(h, static_cast<uint64_t>(request.max_tokens));
  PutU64(h, request.stop_strings.size());
  for (const std::string& s : request.stop_strings) PutBytes(h, s);
  PutIds(h, request.stop_token_ids);
  PutU64(h, request.ignore_eos ? 1 : 0);
  return h.Final();
}

const char* ChatFormatName(engine::ChatFormat format) {
  switch (format) {
    case engine::ChatFormat::kChatML:
      return "chatml";
    case engine::ChatFormat::kLlama3:
      return "llama3";
    case engine::ChatFormat::kLlama2:
      return "llama2";
    case engine::ChatFormat::kNone:
      break;
  }
  return "";
}

void FillModelInfo(const engine::Engine& engine, v1::ModelInfo* out) {
  const engine::ModelInfo& info = engine.info();
  out->set_id(info.id);
  out->set_digest_hex(crypto::ToHex(info.digest));
  out->set_context_length(static_cast<int32_t>(info.config.max_position_embeddings));
  const engine::Tokenizer* tokenizer = engine.tokenizer();
  out->set_chat_format(tokenizer ? ChatFormatName(tokenizer->chat_format()) : "");
  out->set_vocab_size(static_cast<int32_t>(VocabSize(engine)));
  out->set_compute_path(info.path_description);
  if (info.fingerprint.ok()) out->set_fingerprint_hex(crypto::ToHex(*info.fingerprint));
}

v1::FinishReason ToProtoFinishReason(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case engine::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case engine::FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case engine::FinishReason::kNone:
    case engine::FinishReason::kError:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

}  // namespace atoma::api
