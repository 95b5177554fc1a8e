// Fuzz target: the JSON bodies of POST /v1/completions, /v1/chat/completions and
// /v1/atoma/reveal_salt (anyone on the HTTP port sends them). The first input byte picks the
// endpoint (bit 1 set: reveal_salt, read by ParseRevealSaltBody; else odd: chat); the rest is
// parsed as JSON and read by ParseOpenAiBody, which must return a BodyError or a request, never
// crash or throw. A request it accepts as verified carries a 20-byte client address and a sampling
// level, or a cross-validation level with a 32-byte salt hash (and then says so); broken promises
// abort.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "nlohmann/json.hpp"
#include "openai_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = (data[0] & 1) != 0;
  const bool reveal = (data[0] & 2) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const nlohmann::json body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return 0;
  if (reveal) {
    atoma::http::RevealSaltBody parsed;
    (void)atoma::http::ParseRevealSaltBody(body, &parsed);
    return 0;
  }
  atoma::http::OpenAiRequest request;
  const auto error = atoma::http::ParseOpenAiBody(body, chat, &request);
  if (error.has_value()) return 0;
  if (request.chat != chat) std::abort();
  if (request.verified) {
    const auto& security = request.proto.security();
    if (request.cross_validation) {
      if (!security.has_cross_validation()) std::abort();
      if (security.cross_validation().salt_hash().size() != 32) std::abort();
    } else if (!security.has_sampling()) {
      std::abort();
    }
    if (request.proto.authorization().client_address().size() != 20) std::abort();
  } else if (request.cross_validation) {
    std::abort();
  }
  return 0;
}
