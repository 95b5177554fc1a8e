// Chat prompt rendering for the chat formats we recognise in tokenizer_config.json's
// `chat_template`. We do not run Jinja: we detect the family from the template text and render
// what that family's templates render, including the variations the real files have (a built-in
// default system prompt, Qwen3's <think> handling of the last assistant turn, Llama-3 templates
// that always end with the assistant header). Tests compare against the Jinja rendering of the
// real templates (tools/tokenizer/reference.mjs).
//
// Internal to atoma_tokenizer; pure functions.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "atoma/engine/tokenizer.h"

namespace atoma::engine::tok {

struct ChatSpec {
  ChatFormat format = ChatFormat::kNone;
  std::string bos_token;  // text of tokenizer_config's bos_token ("" if none)
  std::string eos_token;  // text of tokenizer_config's eos_token ("" if none)
  // ChatML: system prompt the template inserts when the conversation has none ("" = none).
  std::string default_system;
  // ChatML (Qwen3): assistant turns after the last user turn get a <think> block, and
  // "<think>..</think>" in assistant content is split off as reasoning.
  bool qwen3_thinking = false;
  // Llama-3 templates that do not test add_generation_prompt always end with the header.
  bool always_generation_prompt = false;
};

// Detects the chat family and its variations from the template source.
ChatSpec DetectChatSpec(std::string_view chat_template, std::string bos_token,
                        std::string eos_token);

absl::StatusOr<std::string> RenderChat(const ChatSpec& spec, std::span<const ChatMessage> messages,
                                       bool add_generation_prompt);

}  // namespace atoma::engine::tok
