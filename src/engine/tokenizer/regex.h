// A compiled PCRE2 pattern (UTF + UCP mode, JIT when available) used by pre-tokenizers and
// normalizers. Patterns are Hugging Face's (Oniguruma syntax), which PCRE2 accepts for everything
// tokenizer.json files use: \p{L}, \p{N}, (?i:...), look-ahead.
//
// Thread-safety: a Regex is immutable after Compile and may be used from many threads at once
// (each call allocates its own match data).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace atoma::engine::tok {

class Regex {
 public:
  // INVALID_ARGUMENT with PCRE2's message when `pattern` does not compile.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches [begin, end) in byte offsets, left to right. `text` must be valid
  // UTF-8. An empty match advances by one character and is not reported.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

 private:
  explicit Regex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*
};

}  // namespace atoma::engine::tok
