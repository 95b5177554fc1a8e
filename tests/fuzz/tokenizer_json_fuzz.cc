// Fuzz target: Tokenizer::FromJson on arbitrary bytes never crashes, and a tokenizer it accepts
// encodes and decodes arbitrary text without crashing. Input: tokenizer.json bytes, optionally
// followed by a NUL byte and tokenizer_config.json bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "atoma/engine/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view tj = in, config;
  if (size_t nul = in.find('\0'); nul != std::string_view::npos) {
    tj = in.substr(0, nul);
    config = in.substr(nul + 1);
  }
  auto tok = atoma::engine::Tokenizer::FromJson(tj, config);
  if (!tok.ok()) return 0;
  for (std::string_view text : {std::string_view("Hello, world! 123 日本語 😀 <s>\n\t "), in}) {
    std::vector<int32_t> ids = (*tok)->Encode(text, true);
    (*tok)->Decode(ids, false);
    (*tok)->Decode(ids, true);
    atoma::engine::StreamDecoder stream(**tok, false);
    for (int32_t id : ids) stream.Push(id);
    stream.Flush();
  }
  std::vector<int32_t> odd = {-1, 0, 1, 2, 255, 1 << 30};
  (*tok)->Decode(odd, false);
  std::vector<atoma::engine::ChatMessage> chat = {{"system", "s"}, {"user", "u"}};
  (void)(*tok)->ApplyChatTemplate(chat, true);
  return 0;
}
