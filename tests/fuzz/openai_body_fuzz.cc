// Fuzz target: the JSON body of POST /v1/completions and /v1/chat/completions (anyone on the HTTP
// port sends it). The first input byte picks the endpoint (odd: chat); the rest is parsed as JSON
// and read by ParseOpenAiBody, which must return a BodyError or a request, never crash or throw.
// A request it accepts as verified carries a sampling security level and a 20-byte client
// address; broken promises abort.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "nlohmann/json.hpp"
#include "openai_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = (data[0] & 1) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const nlohmann::json body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return 0;
  atoma::http::OpenAiRequest request;
  const auto error = atoma::http::ParseOpenAiBody(body, chat, &request);
  if (error.has_value()) return 0;
  if (request.chat != chat) std::abort();
  if (request.verified) {
    if (!request.proto.security().has_sampling()) std::abort();
    if (request.proto.authorization().client_address().size() != 20) std::abort();
  }
  return 0;
}
