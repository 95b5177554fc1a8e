#include "unicode.h"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace atoma::engine::tok {
namespace {

struct CccEntry {
  char32_t cp;
  uint8_t ccc;
};
struct DecompEntry {
  char32_t cp;
  char32_t first;
  char32_t second;  // 0 for a singleton decomposition
};
struct CompEntry {
  char32_t first;
  char32_t second;
  char32_t composite;
};

#include "unicode_tables.inc"

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

int Ccc(char32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::lower_bound(std::begin(kCcc), std::end(kCcc), cp,
                             [](const CccEntry& e, char32_t c) { return e.cp < c; });
  return (it != std::end(kCcc) && it->cp == cp) ? it->ccc : 0;
}

const DecompEntry* FindDecomp(char32_t cp) {
  auto it = std::lower_bound(std::begin(kDecomp), std::end(kDecomp), cp,
                             [](const DecompEntry& e, char32_t c) { return e.cp < c; });
  return (it != std::end(kDecomp) && it->cp == cp) ? &*it : nullptr;
}

bool IsComposeSecond(char32_t cp) {
  return std::binary_search(std::begin(kComposeSecond), std::end(kComposeSecond), cp);
}

// True when `cp` may be changed by NFC in some context: it decomposes, has a non-zero combining
// class, or may combine with what precedes it.
bool MayChangeUnderNfc(char32_t cp) {
  if (cp < 0x300) return false;
  if (cp >= kSBase && cp < kSBase + kSCount) return false;  // precomposed Hangul is NFC already
  if (cp >= kVBase && cp < kVBase + kVCount) return true;
  if (cp > kTBase && cp < kTBase + kTCount) return true;
  return FindDecomp(cp) != nullptr || Ccc(cp) != 0 || IsComposeSecond(cp);
}

void Decompose(char32_t cp, std::vector<char32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    int s = static_cast<int>(cp - kSBase);
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  const DecompEntry* d = FindDecomp(cp);
  if (d == nullptr) {
    out->push_back(cp);
    return;
  }
  Decompose(d->first, out);
  if (d->second != 0) Decompose(d->second, out);
}

// Returns the primary composite of (a, b), or 0.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  auto it =
      std::lower_bound(std::begin(kComp), std::end(kComp), std::make_pair(a, b),
                       [](const CompEntry& e, const std::pair<char32_t, char32_t>& k) {
                         return e.first < k.first || (e.first == k.first && e.second < k.second);
                       });
  return (it != std::end(kComp) && it->first == a && it->second == b) ? it->composite : 0;
}

std::array<char32_t, 256> MakeByteToChar() {
  std::array<char32_t, 256> t{};
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
  }
  return t;
}

}  // namespace

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t NextCodePoint(std::string_view s, size_t* pos) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  size_t i = *pos;
  unsigned char c = b(i);
  if (c < 0x80) {
    *pos = i + 1;
    return c;
  }
  int len = Utf8SeqLen(c);
  char32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (b(i + k) & 0x3F);
  *pos = std::min(s.size(), i + len);
  return cp;
}

namespace {
// Length of the valid sequence at `i`, or -(length of the maximal invalid subpart) (at least 1).
int ScanSequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  int len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= s.size()) return -k;
    unsigned char d = b(i + k);
    if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return -k;
  }
  return len;
}
}  // namespace

size_t ValidUtf8Prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Fast path over ASCII.
    while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
    if (i == s.size()) break;
    int n = ScanSequence(s, i);
    if (n < 0) return i;
    i += n;
  }
  return s.size();
}

std::string Utf8Lossy(std::string_view bytes) {
  size_t valid = ValidUtf8Prefix(bytes);
  if (valid == bytes.size()) return std::string(bytes);
  std::string out(bytes.substr(0, valid));
  size_t i = valid;
  while (i < bytes.size()) {
    int n = ScanSequence(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      AppendUtf8(kReplacementChar, &out);
      i += -n;
    }
  }
  return out;
}

bool IsWhitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool IsPythonSpace(char32_t cp) { return IsWhitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

std::string Nfc(std::string_view utf8) {
  size_t pos = 0;
  bool needed = false;
  while (pos < utf8.size()) {
    if (static_cast<unsigned char>(utf8[pos]) < 0xCC) {  // all code points below U+0300
      pos += Utf8SeqLen(static_cast<unsigned char>(utf8[pos]));
      continue;
    }
    if (MayChangeUnderNfc(NextCodePoint(utf8, &pos))) {
      needed = true;
      break;
    }
  }
  if (!needed) return std::string(utf8);

  std::vector<char32_t> cps;
  cps.reserve(utf8.size());
  pos = 0;
  while (pos < utf8.size()) Decompose(NextCodePoint(utf8, &pos), &cps);
  // Canonical ordering: stable sort each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (Ccc(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && Ccc(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + static_cast<std::ptrdiff_t>(i),
                     cps.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return Ccc(a) < Ccc(b); });
    i = j;
  }
  // Canonical composition.
  std::vector<char32_t> out;
  out.reserve(cps.size());
  size_t starter = SIZE_MAX;  // index in `out` of the last starter
  int last_ccc = -1;          // ccc of the last character appended after the starter
  for (char32_t cp : cps) {
    int ccc = Ccc(cp);
    if (starter != SIZE_MAX) {
      bool blocked = last_ccc != -1 && (last_ccc == 0 || last_ccc >= ccc);
      if (!blocked) {
        char32_t c = Compose(out[starter], cp);
        if (c != 0) {
          out[starter] = c;
          continue;
        }
      }
    }
    out.push_back(cp);
    if (ccc == 0) {
      starter = out.size() - 1;
      last_ccc = -1;
    } else {
      last_ccc = ccc;
    }
  }
  std::string result;
  result.reserve(utf8.size());
  for (char32_t cp : out) AppendUtf8(cp, &result);
  return result;
}

std::string_view UnicodeDataVersion() { return kUnicodeVersion; }

const std::array<char32_t, 256>& ByteToChar() {
  static const std::array<char32_t, 256> table = MakeByteToChar();
  return table;
}

const std::array<std::string, 256>& ByteToCharUtf8() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) AppendUtf8(ByteToChar()[b], &t[b]);
    return t;
  }();
  return table;
}

int CharToByte(char32_t cp) {
  if (cp < 256) {
    bool printable = (cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE);
    return printable ? static_cast<int>(cp) : -1;
  }
  if (cp < 256 + 68) {
    // The non-printable bytes in order, mapped to 256, 257, ...
    static const std::array<int, 68> inverse = [] {
      std::array<int, 68> t{};
      for (int b = 0; b < 256; ++b) {
        if (ByteToChar()[b] >= 256) t[ByteToChar()[b] - 256] = b;
      }
      return t;
    }();
    return inverse[cp - 256];
  }
  return -1;
}

}  // namespace atoma::engine::tok
