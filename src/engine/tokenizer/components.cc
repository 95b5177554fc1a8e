#include "components.h"

#include <algorithm>
#include <queue>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "unicode.h"

namespace atoma::engine::tok {
namespace {

using nlohmann::json;

std::string TypeOf(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
  return j["type"].get<std::string>();
}

bool GetBool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  return it->get<bool>();
}

// A pattern of Split / Replace: {"String": "..."} or {"Regex": "..."}.
struct Pattern {
  std::string literal;           // used when regex is null
  std::unique_ptr<Regex> regex;  // set for {"Regex": ...}

  // Match ranges, left to right, non-overlapping.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const {
    if (regex) return regex->FindAll(text);
    std::vector<std::pair<size_t, size_t>> out;
    if (literal.empty()) return out;
    size_t pos = 0;
    while ((pos = text.find(literal, pos)) != std::string_view::npos) {
      out.emplace_back(pos, pos + literal.size());
      pos += literal.size();
    }
    return out;
  }
};

absl::StatusOr<Pattern> ParsePattern(const json& j) {
  Pattern p;
  if (j.is_object() && j.contains("String")) {
    p.literal = j["String"].get<std::string>();
  } else if (j.is_object() && j.contains("Regex")) {
    auto re = Regex::Compile(j["Regex"].get<std::string>());
    if (!re.ok()) return re.status();
    p.regex = std::move(*re);
  } else {
    return absl::InvalidArgumentError("pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
  return p;
}

std::string ReplaceAll(std::string_view text, const Pattern& pattern, std::string_view content) {
  auto matches = pattern.FindAll(text);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (auto [b, e] : matches) {
    out.append(text.substr(prev, b - prev));
    out.append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

// ---- Normalizers ----

class NfcNormalizer : public Normalizer {
 public:
  std::string Normalize(std::string text) const override { return Nfc(text); }
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  std::string Normalize(std::string text) const override {
    // HF prepends only to non-empty text.
    if (text.empty()) return text;
    return prepend_ + text;
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern p, std::string content)
      : pattern_(std::move(p)), content_(std::move(content)) {}
  std::string Normalize(std::string text) const override {
    return ReplaceAll(text, pattern_, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> n) : parts_(std::move(n)) {}
  std::string Normalize(std::string text) const override {
    for (const auto& n : parts_) text = n->Normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// ---- Pre-tokenizers ----

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

absl::StatusOr<Behavior> ParseBehavior(const json& j) {
  std::string b = j.is_string() ? j.get<std::string>() : "Isolated";
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat("unknown split behavior '", b, "'"));
}

// Splits one piece given match ranges, exactly as NormalizedString::split in the Rust crate.
void SplitByMatches(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches,
                    Behavior behavior, bool invert, std::vector<Piece>* out) {
  const std::string& s = piece.text;
  struct Part {
    size_t b, e;
    bool is_match;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) parts.push_back({prev, b, false});
    parts.push_back({b, e, true});
    prev = e;
  }
  if (prev != s.size()) parts.push_back({prev, s.size(), false});
  if (invert) {
    for (auto& p : parts) p.is_match = !p.is_match;
  }
  std::vector<std::pair<size_t, size_t>> ranges;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const auto& p : parts) {
        if (!p.is_match) ranges.emplace_back(p.b, p.e);
      }
      break;
    case Behavior::kIsolated:
      for (const auto& p : parts) ranges.emplace_back(p.b, p.e);
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match && !previous_match && !ranges.empty()) {
          ranges.back().second = p.e;
        } else {
          ranges.emplace_back(p.b, p.e);
        }
        previous_match = p.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !ranges.empty()) {
          ranges.back().first = it->b;
        } else {
          ranges.emplace_back(it->b, it->e);
        }
        previous_match = it->is_match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const auto& p : parts) {
        if (p.is_match == previous_match && !ranges.empty()) {
          ranges.back().second = p.e;
        } else {
          ranges.emplace_back(p.b, p.e);
        }
        previous_match = p.is_match;
      }
      break;
    }
  }
  for (auto [b, e] : ranges) {
    if (b == e) continue;
    out->push_back(Piece{s.substr(b, e - b), piece.at_origin && b == 0});
  }
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern p, Behavior b, bool invert)
      : pattern_(std::move(p)), behavior_(b), invert_(invert) {}
  void Split(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces->size() * 4);
    for (const Piece& p : *pieces) {
      SplitByMatches(p, pattern_.FindAll(p.text), behavior_, invert_, &out);
    }
    *pieces = std::move(out);
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> re)
      : add_prefix_space_(add_prefix_space), regex_(std::move(re)) {}
  void Split(std::vector<Piece>* pieces) const override {
    std::vector<Piece> split;
    split.reserve(pieces->size());
    for (Piece& p : *pieces) {
      // As the Rust crate: every piece (not only the first of the text) gets the prefix space.
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
      if (regex_) {
        SplitByMatches(p, regex_->FindAll(p.text), Behavior::kIsolated, false, &split);
      } else if (!p.text.empty()) {
        split.push_back(std::move(p));
      }
    }
    const auto& table = ByteToCharUtf8();
    for (Piece& p : split) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char c : p.text) mapped.append(table[c]);
      p.text = std::move(mapped);
    }
    *pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // GPT-2's pattern when use_regex
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void Split(std::vector<Piece>* pieces) const override {
    std::vector<Piece> out;
    for (Piece& p : *pieces) {
      Pattern space;
      space.literal = " ";
      p.text = ReplaceAll(p.text, space, replacement_);
      bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && p.at_origin))) {
        p.text.insert(0, replacement_);
      }
      if (split_) {
        Pattern rep;
        rep.literal = replacement_;
        SplitByMatches(p, rep.FindAll(p.text), Behavior::kMergedWithNext, false, &out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
    }
    *pieces = std::move(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> p)
      : parts_(std::move(p)) {}
  void Split(std::vector<Piece>* pieces) const override {
    for (const auto& p : parts_) p->Split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<PrependScheme> ParseMetaspaceScheme(const json& j) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "always") return PrependScheme::kAlways;
    if (s == "first") return PrependScheme::kFirst;
    if (s == "never") return PrependScheme::kNever;
    return absl::InvalidArgumentError(absl::StrCat("unknown Metaspace prepend_scheme '", s, "'"));
  }
  // Legacy form: add_prefix_space (default true) means "always".
  return GetBool(j, "add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
}

// ---- Decoders ----

class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      size_t start = bytes.size();
      size_t pos = 0;
      bool ok = true;
      while (pos < t.size()) {
        int b = CharToByte(NextCodePoint(t, &pos));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      // A token with a character outside the byte alphabet (an added token such as "<think>" is
      // fine, but one with, say, a CJK character is not) is taken as its own UTF-8 bytes.
      if (!ok) {
        bytes.resize(start);
        bytes.append(t);
      }
    }
    tokens->assign(1, Utf8Lossy(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern p, std::string content)
      : pattern_(std::move(p)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) t = ReplaceAll(t, pattern_, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        // The Rust crate writes one U+FFFD per byte of an invalid run (not per maximal subpart).
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& t : *tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        auto hex = [](char c) {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          return -1;
        };
        int hi = hex(t[3]), lo = hex(t[4]);
        if (hi >= 0 && lo >= 0) byte = hi * 16 + lo;
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    tokens->assign(1, absl::StrJoin(*tokens, ""));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, int start, int stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::vector<char32_t> cps;
      size_t pos = 0;
      while (pos < t.size()) cps.push_back(NextCodePoint(t, &pos));
      size_t b = 0, e = cps.size();
      for (int i = 0; i < start_ && b < cps.size() && cps[b] == content_; ++i) ++b;
      for (int i = 0; i < stop_ && e > b && cps[e - 1] == content_; ++i) --e;
      std::string s;
      for (size_t i = b; i < e; ++i) AppendUtf8(cps[i], &s);
      t = std::move(s);
    }
  }

 private:
  char32_t content_;
  int start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, PrependScheme scheme)
      : replacement_(replacement), scheme_(scheme) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      std::string s;
      size_t pos = 0;
      while (pos < t.size()) {
        char32_t c = NextCodePoint(t, &pos);
        if (c == replacement_) {
          // As the Rust crate: in the first token every replacement character is dropped.
          if (i == 0 && scheme_ != PrependScheme::kNever) continue;
          s.push_back(' ');
        } else {
          AppendUtf8(c, &s);
        }
      }
      t = std::move(s);
    }
  }

 private:
  char32_t replacement_;
  PrependScheme scheme_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> d) : parts_(std::move(d)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& d : parts_) d->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

absl::StatusOr<char32_t> SingleChar(const json& j, const char* what) {
  std::string s = j.get<std::string>();
  if (!IsValidUtf8(s) || s.empty())
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  size_t pos = 0;
  char32_t c = NextCodePoint(s, &pos);
  if (pos != s.size()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be one character"));
  }
  return c;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = TypeOf(j);
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(j.at("prepend").get<std::string>());
  }
  if (type == "Replace") {
    auto p = ParsePattern(j.at("pattern"));
    if (!p.ok()) return p.status();
    return std::make_unique<ReplaceNormalizer>(std::move(*p), j.at("content").get<std::string>());
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const json& n : j.at("normalizers")) {
      auto part = MakeNormalizer(n);
      if (!part.ok()) return part.status();
      if (*part) parts.push_back(std::move(*part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported normalizer '", type, "'"));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = TypeOf(j);
  if (type == "Split") {
    auto p = ParsePattern(j.at("pattern"));
    if (!p.ok()) return p.status();
    auto b = ParseBehavior(j.contains("behavior") ? j["behavior"] : json());
    if (!b.ok()) return b.status();
    return std::make_unique<SplitPreTokenizer>(std::move(*p), *b, GetBool(j, "invert", false));
  }
  if (type == "ByteLevel") {
    std::unique_ptr<Regex> re;
    if (GetBool(j, "use_regex", true)) {
      auto r = Regex::Compile(kGpt2Pattern);
      if (!r.ok()) return r.status();
      re = std::move(*r);
    }
    return std::make_unique<ByteLevelPreTokenizer>(GetBool(j, "add_prefix_space", true),
                                                   std::move(re));
  }
  if (type == "Metaspace") {
    auto rep = SingleChar(j.at("replacement"), "Metaspace replacement");
    if (!rep.ok()) return rep.status();
    auto scheme = ParseMetaspaceScheme(j);
    if (!scheme.ok()) return scheme.status();
    std::string r;
    AppendUtf8(*rep, &r);
    return std::make_unique<MetaspacePreTokenizer>(r, *scheme, GetBool(j, "split", true));
  }
  if (type == "Digits") {
    auto r = Regex::Compile(R"(\p{N})");
    if (!r.ok()) return r.status();
    Pattern p;
    p.regex = std::move(*r);
    return std::make_unique<SplitPreTokenizer>(
        std::move(p),
        GetBool(j, "individual_digits", false) ? Behavior::kIsolated : Behavior::kContiguous,
        false);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const json& p : j.at("pretokenizers")) {
      auto part = MakePreTokenizer(p);
      if (!part.ok()) return part.status();
      if (*part) parts.push_back(std::move(*part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported pre_tokenizer '", type, "'"));
}

absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = TypeOf(j);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    auto p = ParsePattern(j.at("pattern"));
    if (!p.ok()) return p.status();
    return std::make_unique<ReplaceDecoder>(std::move(*p), j.at("content").get<std::string>());
  }
  if (type == "Strip") {
    auto c = SingleChar(j.at("content"), "Strip content");
    if (!c.ok()) return c.status();
    int start = j.value("start", 0), stop = j.value("stop", 0);
    if (start < 0 || stop < 0 || start > 1024 || stop > 1024) {
      return absl::InvalidArgumentError("Strip start/stop out of range");
    }
    return std::make_unique<StripDecoder>(*c, start, stop);
  }
  if (type == "Metaspace") {
    auto rep = SingleChar(j.at("replacement"), "Metaspace replacement");
    if (!rep.ok()) return rep.status();
    auto scheme = ParseMetaspaceScheme(j);
    if (!scheme.ok()) return scheme.status();
    return std::make_unique<MetaspaceDecoder>(*rep, *scheme);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const json& d : j.at("decoders")) {
      auto part = MakeDecoder(d);
      if (!part.ok()) return part.status();
      if (*part) parts.push_back(std::move(*part));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported decoder '", type, "'"));
}

// ---- BPE ----

namespace {
constexpr int64_t kMaxVocab = 1 << 22;  // far above any real vocabulary; bounds hostile files
uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Make(const json& j) {
  std::string type = TypeOf(j);
  if (type.empty() && j.is_object() && j.contains("merges")) type = "BPE";  // older files
  if (type != "BPE") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported model type '", type, "' (only BPE is supported)"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (j.contains(key) && !j[key].is_null() && !j[key].get<std::string>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("BPE ", key, " is not supported"));
    }
  }
  if (j.contains("dropout") && !j["dropout"].is_null() && j["dropout"].get<double>() != 0.0) {
    return absl::InvalidArgumentError("BPE dropout is not supported (it is not deterministic)");
  }
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  const json& vocab = j.at("vocab");
  if (!vocab.is_object()) return absl::InvalidArgumentError("BPE vocab must be an object");
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= kMaxVocab) {
      return absl::InvalidArgumentError(absl::StrCat("vocab id ", id, " out of range"));
    }
    max_id = std::max(max_id, id);
  }
  if (max_id >= 2 * static_cast<int64_t>(vocab.size()) + 1024) {
    return absl::InvalidArgumentError("vocab ids are too sparse");
  }
  model->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  model->vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    auto id = static_cast<int32_t>(it.value().get<int64_t>());
    const std::string& token = it.key();
    if (!IsValidUtf8(token)) return absl::InvalidArgumentError("vocab token is not UTF-8");
    model->vocab_[token] = id;
    model->id_to_token_[id] = token;
    size_t pos = 0;
    if (!token.empty()) {
      char32_t c = NextCodePoint(token, &pos);
      if (pos == token.size()) model->char_ids_[c] = id;
    }
  }
  const json& merges = j.at("merges");
  if (!merges.is_array()) return absl::InvalidArgumentError("BPE merges must be a list");
  model->merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const json& m : merges) {
    std::string a, b;
    if (m.is_string()) {
      // Old format "a b": exactly one space (tokens with spaces need the pair format).
      std::string s = m.get<std::string>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("bad merge '", s, "'"));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError("a merge must be \"a b\" or [\"a\", \"b\"]");
    }
    auto ia = model->vocab_.find(a), ib = model->vocab_.find(b), im = model->vocab_.find(a + b);
    if (ia == model->vocab_.end() || ib == model->vocab_.end() || im == model->vocab_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("merge '", a, " ", b, "' uses a token missing from the vocab"));
    }
    // The first occurrence of a pair wins, as in the Rust crate's map construction.
    model->merges_.try_emplace(PairKey(ia->second, ib->second), rank, im->second);
    ++rank;
  }
  if (j.contains("unk_token") && j["unk_token"].is_string()) {
    auto it = model->vocab_.find(j["unk_token"].get<std::string>());
    if (it != model->vocab_.end()) model->unk_id_ = it->second;
  }
  model->fuse_unk_ = GetBool(j, "fuse_unk", false);
  model->byte_fallback_ = GetBool(j, "byte_fallback", false);
  model->ignore_merges_ = GetBool(j, "ignore_merges", false);
  for (int b = 0; b < 256; ++b) {
    static const char* kHex = "0123456789ABCDEF";
    std::string name = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    auto it = model->vocab_.find(name);
    model->byte_ids_[b] = it == model->vocab_.end() ? -1 : it->second;
  }
  return model;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(Av(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= size()) return nullptr;
  return &id_to_token_[id];
}

std::vector<int32_t> BpeModel::MergeWord(std::string_view word) const {
  // Initial symbols: one per character; unknown characters become byte tokens (byte_fallback),
  // the unknown token (consecutive ones fused with fuse_unk) or nothing.
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  std::optional<int32_t> pending_unk;
  size_t pos = 0;
  while (pos < word.size()) {
    size_t start = pos;
    char32_t c = NextCodePoint(word, &pos);
    auto it = char_ids_.find(c);
    if (it != char_ids_.end()) {
      if (pending_unk) ids.push_back(*pending_unk);
      pending_unk.reset();
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (size_t k = start; k < pos; ++k) {
        all = all && byte_ids_[static_cast<unsigned char>(word[k])] >= 0;
      }
      if (all) {
        // The Rust crate does not flush a pending unknown token here; byte tokens go first.
        for (size_t k = start; k < pos; ++k) {
          ids.push_back(byte_ids_[static_cast<unsigned char>(word[k])]);
        }
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) ids.push_back(*pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk) ids.push_back(*pending_unk);
  if (ids.size() < 2) return ids;

  // Merge by rank (then leftmost), with the Rust crate's heap and its staleness check.
  struct Merge {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator<(const Merge& o) const {  // std::priority_queue pops the largest
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int n = static_cast<int>(ids.size());
  std::vector<int32_t> prev(n), next(n);
  std::vector<char> alive(n, 1);
  std::priority_queue<Merge> heap;
  auto push = [&](int p) {
    auto it = merges_.find(PairKey(ids[p], ids[next[p]]));
    if (it != merges_.end()) heap.push({it->second.first, p, it->second.second});
  };
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Merge top = heap.top();
    heap.pop();
    int p = top.pos;
    if (!alive[p] || next[p] == -1) continue;
    int q = next[p];
    auto it = merges_.find(PairKey(ids[p], ids[q]));
    if (it == merges_.end() || it->second.second != top.new_id) continue;
    ids[p] = top.new_id;
    alive[q] = 0;
    next[p] = next[q];
    if (next[q] != -1) prev[next[q]] = p;
    if (prev[p] != -1) push(prev[p]);
    if (next[p] != -1) push(p);
  }
  std::vector<int32_t> out;
  for (int i = 0; i != -1; i = next[i]) out.push_back(ids[i]);
  return out;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(Av(word));
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  if (word.size() > kMaxCachedWordBytes) {
    std::vector<int32_t> ids = MergeWord(word);
    out->insert(out->end(), ids.begin(), ids.end());
    return;
  }
  Shard& shard = cache_[absl::Hash<absl::string_view>()(Av(word)) % kShards];
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.map.find(Av(word));
    if (it != shard.map.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = MergeWord(word);
  out->insert(out->end(), ids.begin(), ids.end());
  absl::MutexLock lock(&shard.mu);
  if (shard.map.size() >= kShardCap) shard.map.clear();
  shard.map.emplace(std::string(word), std::move(ids));
}

}  // namespace atoma::engine::tok
