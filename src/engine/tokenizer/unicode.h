// UTF-8 and Unicode helpers for the tokenizer: lossy UTF-8 decoding with the replacement policy of
// Rust's String::from_utf8_lossy and the WHATWG decoder (one U+FFFD per maximal invalid subpart),
// NFC normalization (tables generated from Unicode data by tools/tokenizer/gen_unicode_tables.py),
// and the GPT-2 byte <-> character map of byte-level BPE.
//
// Internal to atoma_tokenizer. All functions are pure and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace atoma::engine::tok {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Debian's abseil is built with its own absl::string_view (not an alias of std::string_view);
// this converts for absl containers and string functions.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Appends the UTF-8 encoding of `cp` (must be a Unicode scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// Decodes the code point at `*pos` of valid UTF-8 `s` and advances `*pos`.
char32_t NextCodePoint(std::string_view s, size_t* pos);

// Length in bytes of the UTF-8 sequence that starts with lead byte `b` (1 for invalid leads).
inline int Utf8SeqLen(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

// Returns the length of the longest prefix of `s` that is valid UTF-8.
size_t ValidUtf8Prefix(std::string_view s);
inline bool IsValidUtf8(std::string_view s) { return ValidUtf8Prefix(s) == s.size(); }

// `bytes` as valid UTF-8: each maximal invalid subpart becomes one U+FFFD.
std::string Utf8Lossy(std::string_view bytes);

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool IsWhitespace(char32_t cp);
// Python's str.isspace (White_Space plus the ASCII separators U+001C..U+001F), used to mirror
// Jinja's `trim`/`strip` in chat templates.
bool IsPythonSpace(char32_t cp);

// NFC (canonical composition) of valid UTF-8 text. Returns the input unchanged (no copy of the
// work) when no character can change, which is the common case.
std::string Nfc(std::string_view utf8);
// The Unicode version of the normalization tables.
std::string_view UnicodeDataVersion();

// GPT-2's byte-level alphabet: byte b is written as the character ByteToChar()[b] in vocabularies.
const std::array<char32_t, 256>& ByteToChar();
// The UTF-8 text of each byte's character (for fast appends).
const std::array<std::string, 256>& ByteToCharUtf8();
// Inverse of ByteToChar: returns -1 when `cp` is not in the alphabet.
int CharToByte(char32_t cp);

}  // namespace atoma::engine::tok
