// Fuzz target: the request line and headers of the HTTP API (anyone who reaches http.listen sends
// them), read by ParseRequestHead. It must return a message or a head, never crash; an accepted
// head has a non-negative Content-Length, a lower-case Connection value, and fields that contain
// no CR LF (they came from one line each). Broken promises abort.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "openai_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  atoma::http::RequestHead parsed;
  if (atoma::http::ParseRequestHead(head, &parsed).has_value()) return 0;
  if (parsed.content_length < 0) std::abort();
  for (char c : parsed.connection) {
    if (c >= 'A' && c <= 'Z') std::abort();
  }
  for (const std::string* field :
       {&parsed.method, &parsed.path, &parsed.connection, &parsed.authorization}) {
    if (field->find("\r\n") != std::string::npos) std::abort();
  }
  if (parsed.path.size() > 1 && parsed.path.back() == '/') std::abort();
  if (parsed.path.find('?') != std::string::npos) std::abort();
  return 0;
}
