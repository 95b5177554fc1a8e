#include "chat.h"

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "unicode.h"

namespace atoma::engine::tok {
namespace {

bool Contains(std::string_view t, std::string_view x) {
  return t.find(x) != std::string_view::npos;
}

// Python's str.strip() with no argument (what Jinja's `trim` and `.strip()` do in HF).
std::string PyStrip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e) {
    size_t p = b;
    if (!IsPythonSpace(NextCodePoint(s, &p))) break;
    b = p;
  }
  while (e > b) {
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t p = start;
    if (!IsPythonSpace(NextCodePoint(s, &p))) break;
    e = start;
  }
  return std::string(s.substr(b, e - b));
}

// str.strip(chars) / lstrip / rstrip for a set of ASCII characters.
std::string_view StripChars(std::string_view s, std::string_view chars, bool left, bool right) {
  while (left && !s.empty() && chars.find(s.front()) != std::string_view::npos) s.remove_prefix(1);
  while (right && !s.empty() && chars.find(s.back()) != std::string_view::npos) s.remove_suffix(1);
  return s;
}

absl::Status CheckRoles(std::span<const ChatMessage> messages) {
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat("unknown chat role '", m.role, "'"));
    }
  }
  return absl::OkStatus();
}

std::string RenderChatMl(const ChatSpec& spec, std::span<const ChatMessage> messages,
                         bool add_generation_prompt) {
  std::string out;
  bool has_system = !messages.empty() && messages[0].role == "system";
  if (!has_system && !spec.default_system.empty()) {
    absl::StrAppend(&out, "<|im_start|>system\n", spec.default_system, "<|im_end|>\n");
  }
  if (!spec.qwen3_thinking) {
    for (const ChatMessage& m : messages) {
      absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
    }
  } else {
    // Qwen3's template: the index of the last user turn decides which assistant turns keep
    // their reasoning.
    int last_query = static_cast<int>(messages.size()) - 1;
    for (int i = static_cast<int>(messages.size()) - 1; i >= 0; --i) {
      const std::string& c = messages[i].content;
      if (messages[i].role == "user" &&
          !(absl::StartsWith(c, "<tool_response>") && absl::EndsWith(c, "</tool_response>"))) {
        last_query = i;
        break;
      }
    }
    for (size_t i = 0; i < messages.size(); ++i) {
      const ChatMessage& m = messages[i];
      if (m.role == "user" || (m.role == "system" && i != 0)) {
        absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
      } else if (m.role == "system") {
        absl::StrAppend(&out, "<|im_start|>system\n", m.content, "<|im_end|>\n");
      } else {  // assistant
        std::string content = m.content;
        std::string reasoning;
        size_t close = m.content.find("</think>");
        if (close != std::string::npos) {
          // content.split('</think>')[-1].lstrip('\n')
          size_t last_close = m.content.rfind("</think>");
          content = std::string(
              StripChars(std::string_view(m.content).substr(last_close + 8), "\n", true, false));
          // content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
          std::string_view before =
              StripChars(std::string_view(m.content).substr(0, close), "\n", false, true);
          size_t open = before.rfind("<think>");
          if (open != std::string_view::npos) before = before.substr(open + 7);
          reasoning = std::string(StripChars(before, "\n", true, false));
        }
        bool last = i + 1 == messages.size();
        if (static_cast<int>(i) > last_query && (last || !reasoning.empty())) {
          absl::StrAppend(&out, "<|im_start|>assistant\n<think>\n",
                          Av(StripChars(reasoning, "\n", true, true)), "\n</think>\n\n",
                          Av(StripChars(content, "\n", true, false)));
        } else {
          absl::StrAppend(&out, "<|im_start|>assistant\n", content);
        }
        out += "<|im_end|>\n";
      }
    }
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string RenderLlama3(const ChatSpec& spec, std::span<const ChatMessage> messages,
                         bool add_generation_prompt) {
  std::string out = spec.bos_token;
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&out, "<|start_header_id|>", m.role, "<|end_header_id|>\n\n",
                    PyStrip(m.content), "<|eot_id|>");
  }
  if (add_generation_prompt || spec.always_generation_prompt) {
    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  return out;
}

// Meta's Llama-2-chat template (also in HF's LlamaTokenizer as the default).
absl::StatusOr<std::string> RenderLlama2(const ChatSpec& spec,
                                         std::span<const ChatMessage> messages) {
  std::span<const ChatMessage> loop = messages;
  const std::string* system = nullptr;
  if (!messages.empty() && messages[0].role == "system") {
    system = &messages[0].content;
    loop = messages.subspan(1);
  }
  std::string out;
  for (size_t i = 0; i < loop.size(); ++i) {
    const ChatMessage& m = loop[i];
    if ((m.role == "user") != (i % 2 == 0)) {
      return absl::InvalidArgumentError(
          "Conversation roles must alternate user/assistant/user/assistant/...");
    }
    std::string content = m.content;
    if (i == 0 && system != nullptr) {
      content = absl::StrCat("<<SYS>>\n", *system, "\n<</SYS>>\n\n", m.content);
    }
    if (m.role == "user") {
      absl::StrAppend(&out, spec.bos_token, "[INST] ", PyStrip(content), " [/INST]");
    } else if (m.role == "assistant") {
      absl::StrAppend(&out, " ", PyStrip(content), " ", spec.eos_token);
    }
  }
  return out;
}

}  // namespace

ChatSpec DetectChatSpec(std::string_view t, std::string bos_token, std::string eos_token) {
  ChatSpec spec;
  spec.bos_token = std::move(bos_token);
  spec.eos_token = std::move(eos_token);
  if (Contains(t, "<|im_start|>")) {
    spec.format = ChatFormat::kChatML;
    spec.qwen3_thinking = Contains(t, "reasoning_content");
    // A built-in default system prompt is a literal '<|im_start|>system\n...<|im_end|>' string in
    // the template (Qwen2.5: "You are Qwen, created by Alibaba Cloud. ..."; SmolLM2 likewise).
    // In the template source the newline is the two characters '\' 'n'.
    static const std::regex kDefault(R"(<\|im_start\|>system\\n([^'"{}]+?)<\|im_end\|>)");
    std::match_results<std::string_view::const_iterator> m;
    if (std::regex_search(t.begin(), t.end(), m, kDefault)) {
      std::string s = m[1].str();
      std::string unescaped;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          char c = s[++i];
          unescaped += c == 'n' ? '\n' : c == 't' ? '\t' : c;
        } else {
          unescaped += s[i];
        }
      }
      spec.default_system = unescaped;
    }
  } else if (Contains(t, "<|start_header_id|>")) {
    spec.format = ChatFormat::kLlama3;
    spec.always_generation_prompt = !Contains(t, "add_generation_prompt");
  } else if (Contains(t, "[INST]")) {
    spec.format = ChatFormat::kLlama2;
  }
  return spec;
}

absl::StatusOr<std::string> RenderChat(const ChatSpec& spec, std::span<const ChatMessage> messages,
                                       bool add_generation_prompt) {
  if (spec.format == ChatFormat::kNone) {
    return absl::FailedPreconditionError("the model has no chat format");
  }
  if (absl::Status s = CheckRoles(messages); !s.ok()) return s;
  switch (spec.format) {
    case ChatFormat::kChatML:
      return RenderChatMl(spec, messages, add_generation_prompt);
    case ChatFormat::kLlama3:
      return RenderLlama3(spec, messages, add_generation_prompt);
    case ChatFormat::kLlama2:
      // The Llama-2 template has no generation prompt: "[/INST]" already hands the turn over.
      return RenderLlama2(spec, messages);
    case ChatFormat::kNone:
      break;
  }
  return absl::FailedPreconditionError("the model has no chat format");
}

}  // namespace atoma::engine::tok
