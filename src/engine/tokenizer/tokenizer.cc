// Tokenizer::FromJson: the Hugging Face tokenizer.json pipeline (added tokens, normalizer,
// pre-tokenizer, BPE model, post-processor, decoder) plus tokenizer_config.json (BOS/EOS, chat
// format). Behaviour follows the Rust `tokenizers` crate and, for tokenizer_config.json, Python
// `transformers`.
#include "atoma/engine/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "atoma/common/status.h"
#include "chat.h"
#include "components.h"
#include "nlohmann/json.hpp"
#include "unicode.h"

namespace atoma::engine {
namespace {

using nlohmann::json;
using tok::Piece;

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// Leftmost-longest matcher over added-token strings (what the Rust crate's Aho-Corasick automaton
// with MatchKind::LeftmostLongest finds).
class TokenTrie {
 public:
  void Add(std::string_view s, int index) {
    if (s.empty()) return;
    int node = 0;
    for (unsigned char c : s) {
      auto it = nodes_[node].next.find(c);
      if (it == nodes_[node].next.end()) {
        nodes_.push_back({});
        it = nodes_[node].next.emplace(c, static_cast<int>(nodes_.size() - 1)).first;
      }
      node = it->second;
    }
    if (nodes_[node].index < 0) nodes_[node].index = index;
    first_bytes_[static_cast<unsigned char>(s[0])] = true;
  }
  bool empty() const { return nodes_.size() == 1; }
  // Finds the next match at or after `from`: returns (begin, end, index) or begin = npos.
  std::tuple<size_t, size_t, int> Find(std::string_view text, size_t from) const {
    for (size_t i = from; i < text.size(); ++i) {
      if (!first_bytes_[static_cast<unsigned char>(text[i])]) continue;
      int node = 0, best = -1;
      size_t best_end = 0;
      for (size_t k = i; k < text.size(); ++k) {
        auto it = nodes_[node].next.find(static_cast<unsigned char>(text[k]));
        if (it == nodes_[node].next.end()) break;
        node = it->second;
        if (nodes_[node].index >= 0) {
          best = nodes_[node].index;
          best_end = k + 1;
        }
      }
      if (best >= 0) return {i, best_end, best};
    }
    return {std::string_view::npos, 0, -1};
  }

 private:
  struct Node {
    std::map<unsigned char, int> next;
    int index = -1;
  };
  std::vector<Node> nodes_ = {Node{}};
  bool first_bytes_[256] = {};
};

bool IsWordChar(char32_t c) {
  // Rust's char::is_alphanumeric approximated for ASCII plus any non-ASCII letter/digit-ish
  // character (single_word is rare and only looks at the neighbouring character).
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return !tok::IsWhitespace(c) && !(c >= 0x2000 && c <= 0x206F) && !(c >= 0x3000 && c <= 0x303F);
}

char32_t LastChar(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return tok::NextCodePoint(s, &start);
}

// A segment of the input after added tokens are split out: either an added token or text.
struct Segment {
  int added = -1;  // index into added_, or -1 for text
  std::string text;
  size_t offset = 0;  // byte offset in the original text
};

// The post-processor's template for a single sequence: special-token ids and the sequence.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};

std::optional<std::string> TokenText(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

class HfTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Build(const json& tj, const json& config);

  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override;
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  std::optional<std::string> IdToToken(int32_t id) const override {
    if (id < 0 || id >= vocab_size_) return std::nullopt;
    if (auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      return added_[it->second].content;
    }
    const std::string* t = model_->IdToToken(id);
    if (t == nullptr || (t->empty() && !model_->TokenToId("").has_value())) return std::nullopt;
    return *t;
  }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    for (const AddedToken& a : added_) {
      if (a.content == token) return a.id;
    }
    return model_->TokenToId(token);
  }
  bool IsSpecial(int32_t id) const override {
    return id >= 0 && id < vocab_size_ && special_[static_cast<size_t>(id)];
  }
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::vector<int32_t> eos_ids() const override { return eos_ids_; }
  ChatFormat chat_format() const override { return chat_.format; }
  absl::StatusOr<std::string> ApplyChatTemplate(std::span<const ChatMessage> messages,
                                                bool add_generation_prompt) const override {
    return tok::RenderChat(chat_, messages, add_generation_prompt);
  }

 private:
  std::vector<Segment> SplitAdded(std::string_view text, const TokenTrie& trie,
                                  size_t base_offset) const;
  void EncodeText(const Segment& seg, std::vector<int32_t>* out) const;

  std::unique_ptr<tok::Normalizer> normalizer_;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tok::BpeModel> model_;
  std::unique_ptr<tok::Decoder> decoder_;
  std::vector<TemplateItem> template_;  // empty: no post-processor template
  std::vector<AddedToken> added_;
  std::map<int32_t, size_t> added_by_id_;
  TokenTrie raw_trie_;         // added tokens matched on the raw text (normalized == false)
  TokenTrie normalized_trie_;  // the others, matched on normalized text
  std::vector<bool> special_;
  int32_t vocab_size_ = 0;
  std::optional<int32_t> bos_id_;
  std::vector<int32_t> eos_ids_;
  tok::ChatSpec chat_;
};

absl::StatusOr<std::unique_ptr<Tokenizer>> HfTokenizer::Build(const json& tj, const json& config) {
  if (!tj.is_object()) return absl::InvalidArgumentError("tokenizer.json must be an object");
  if (!tj.contains("model")) return absl::InvalidArgumentError("tokenizer.json has no model");
  auto t = std::make_unique<HfTokenizer>();
  ASSIGN_OR_RETURN(t->model_, tok::BpeModel::Make(tj["model"]));
  ASSIGN_OR_RETURN(t->normalizer_, tok::MakeNormalizer(tj.value("normalizer", json())));
  ASSIGN_OR_RETURN(t->pre_tokenizer_, tok::MakePreTokenizer(tj.value("pre_tokenizer", json())));
  ASSIGN_OR_RETURN(t->decoder_, tok::MakeDecoder(tj.value("decoder", json())));

  int64_t max_id = t->model_->size() - 1;
  if (tj.contains("added_tokens") && !tj["added_tokens"].is_null()) {
    for (const json& a : tj["added_tokens"]) {
      AddedToken tok;
      tok.id = a.at("id").get<int32_t>();
      tok.content = a.at("content").get<std::string>();
      if (tok.id < 0 || tok.id > t->model_->size() + 65536 || !tok::IsValidUtf8(tok.content)) {
        return absl::InvalidArgumentError(absl::StrCat("bad added token id ", tok.id));
      }
      tok.special = a.value("special", false);
      tok.lstrip = a.value("lstrip", false);
      tok.rstrip = a.value("rstrip", false);
      tok.single_word = a.value("single_word", false);
      tok.normalized = a.value("normalized", !tok.special);
      max_id = std::max<int64_t>(max_id, tok.id);
      t->added_by_id_[tok.id] = t->added_.size();
      t->added_.push_back(std::move(tok));
    }
  }
  t->vocab_size_ = static_cast<int32_t>(max_id + 1);
  t->special_.assign(static_cast<size_t>(t->vocab_size_), false);
  for (size_t i = 0; i < t->added_.size(); ++i) {
    AddedToken& a = t->added_[i];
    if (a.special) t->special_[a.id] = true;
    if (a.normalized && t->normalizer_) {
      t->normalized_trie_.Add(t->normalizer_->Normalize(a.content), static_cast<int>(i));
    } else if (a.normalized) {
      t->normalized_trie_.Add(a.content, static_cast<int>(i));
    } else {
      t->raw_trie_.Add(a.content, static_cast<int>(i));
    }
  }

  // Post-processor: TemplateProcessing (possibly inside a Sequence); ByteLevel changes no ids.
  std::function<absl::Status(const json&)> parse_post = [&](const json& p) -> absl::Status {
    if (p.is_null()) return absl::OkStatus();
    std::string type = p.value("type", "");
    if (type == "ByteLevel") return absl::OkStatus();
    if (type == "Sequence") {
      for (const json& q : p.at("processors")) RETURN_IF_ERROR(parse_post(q));
      return absl::OkStatus();
    }
    if (type != "TemplateProcessing") {
      return absl::InvalidArgumentError(absl::StrCat("unsupported post_processor '", type, "'"));
    }
    const json& specials = p.at("special_tokens");
    for (const json& item : p.at("single")) {
      TemplateItem ti;
      if (item.contains("Sequence")) {
        ti.is_sequence = true;
      } else if (item.contains("SpecialToken")) {
        std::string id = item["SpecialToken"].at("id").get<std::string>();
        if (!specials.contains(id)) {
          return absl::InvalidArgumentError(absl::StrCat("template token '", id, "' undefined"));
        }
        for (const json& x : specials[id].at("ids")) {
          int32_t v = x.get<int32_t>();
          if (v < 0 || v >= t->vocab_size_) {
            return absl::InvalidArgumentError("template token id out of range");
          }
          ti.ids.push_back(v);
        }
      } else {
        return absl::InvalidArgumentError("bad TemplateProcessing item");
      }
      t->template_.push_back(std::move(ti));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(parse_post(tj.value("post_processor", json())));

  // tokenizer_config.json.
  auto bos = TokenText(config, "bos_token");
  auto eos = TokenText(config, "eos_token");
  if (bos) t->bos_id_ = t->TokenToId(*bos);
  if (eos) {
    if (auto id = t->TokenToId(*eos)) t->eos_ids_.push_back(*id);
  }
  // transformers' LlamaTokenizerFast rebuilds the post-processor from add_bos_token (default
  // true) and add_eos_token (default false) instead of using tokenizer.json's.
  std::string cls = config.value("tokenizer_class", "");
  if ((cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast") &&
      (config.contains("add_bos_token") || config.contains("add_eos_token"))) {
    bool add_bos = config.value("add_bos_token", true);
    bool add_eos = config.value("add_eos_token", false);
    t->template_.clear();
    if (add_bos && t->bos_id_) t->template_.push_back({false, {*t->bos_id_}});
    t->template_.push_back({true, {}});
    if (add_eos && !t->eos_ids_.empty()) t->template_.push_back({false, {t->eos_ids_[0]}});
  }
  std::string chat_template;
  if (auto it = config.find("chat_template"); it != config.end()) {
    if (it->is_string()) {
      chat_template = it->get<std::string>();
    } else if (it->is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const json& e : *it) {
        if (e.is_object() && e.value("name", "") == "default") {
          chat_template = e.value("template", "");
        }
      }
    }
  }
  t->chat_ = tok::DetectChatSpec(chat_template, bos.value_or(""), eos.value_or(""));
  const char* end_of_turn = t->chat_.format == ChatFormat::kChatML   ? "<|im_end|>"
                            : t->chat_.format == ChatFormat::kLlama3 ? "<|eot_id|>"
                                                                     : nullptr;
  if (end_of_turn != nullptr) {
    if (auto id = t->TokenToId(end_of_turn);
        id && std::find(t->eos_ids_.begin(), t->eos_ids_.end(), *id) == t->eos_ids_.end()) {
      t->eos_ids_.push_back(*id);
    }
  }
  return t;
}

std::vector<Segment> HfTokenizer::SplitAdded(std::string_view text, const TokenTrie& trie,
                                             size_t base_offset) const {
  std::vector<Segment> out;
  size_t start = 0;  // end of the previous emitted split
  size_t from = 0;   // where the next search starts
  while (!trie.empty()) {
    auto [b, e, index] = trie.Find(text, from);
    if (b == std::string_view::npos) break;
    from = e;
    const AddedToken& a = added_[index];
    size_t mb = b, me = e;
    if (a.single_word) {
      bool start_ok = mb == 0 || !IsWordChar(LastChar(text.substr(0, mb)));
      size_t p = me;
      bool stop_ok = me == text.size() || !IsWordChar(tok::NextCodePoint(text, &p));
      if (!start_ok || !stop_ok) continue;
    }
    if (a.lstrip) {
      size_t nb = mb;
      while (nb > start) {
        size_t s = nb - 1;
        while (s > 0 && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
        size_t p = s;
        if (!tok::IsWhitespace(tok::NextCodePoint(text, &p))) break;
        nb = s;
      }
      mb = nb;
    }
    if (a.rstrip) {
      while (me < text.size()) {
        size_t p = me;
        if (!tok::IsWhitespace(tok::NextCodePoint(text, &p))) break;
        me = p;
      }
    }
    if (start < mb)
      out.push_back({-1, std::string(text.substr(start, mb - start)), base_offset + start});
    out.push_back({index, {}, base_offset + mb});
    start = me;
  }
  if (start < text.size() || text.empty()) {
    out.push_back({-1, std::string(text.substr(start)), base_offset + start});
  }
  return out;
}

void HfTokenizer::EncodeText(const Segment& seg, std::vector<int32_t>* out) const {
  std::string normalized = normalizer_ ? normalizer_->Normalize(seg.text) : seg.text;
  std::vector<Segment> parts;
  if (normalized_trie_.empty()) {
    parts.push_back({-1, std::move(normalized), seg.offset});
  } else {
    parts = SplitAdded(normalized, normalized_trie_, seg.offset);
  }
  for (Segment& part : parts) {
    if (part.added >= 0) {
      out->push_back(added_[part.added].id);
      continue;
    }
    if (part.text.empty()) continue;
    std::vector<Piece> pieces;
    pieces.push_back(Piece{std::move(part.text), part.offset == 0});
    if (pre_tokenizer_) pre_tokenizer_->Split(&pieces);
    for (const Piece& p : pieces) model_->Tokenize(p.text, out);
  }
}

std::vector<int32_t> HfTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  // Rust strings are valid UTF-8 by construction; we replace invalid bytes by U+FFFD first.
  std::string valid = tok::Utf8Lossy(text);
  std::vector<int32_t> ids;
  ids.reserve(valid.size() / 3 + 4);
  for (const Segment& seg : SplitAdded(valid, raw_trie_, 0)) {
    if (seg.added >= 0) {
      ids.push_back(added_[seg.added].id);
    } else {
      EncodeText(seg, &ids);
    }
  }
  if (!add_special_tokens || template_.empty()) return ids;
  std::vector<int32_t> out;
  out.reserve(ids.size() + 4);
  for (const TemplateItem& item : template_) {
    if (item.is_sequence) {
      out.insert(out.end(), ids.begin(), ids.end());
    } else {
      out.insert(out.end(), item.ids.begin(), item.ids.end());
    }
  }
  return out;
}

std::string HfTokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special_tokens && IsSpecial(id)) continue;
    std::optional<std::string> t = IdToToken(id);
    if (t) tokens.push_back(std::move(*t));  // unknown ids are skipped, as HF does
  }
  if (!decoder_) return tok::Utf8Lossy(absl::StrJoin(tokens, " "));
  decoder_->DecodeChain(&tokens);
  return tok::Utf8Lossy(absl::StrJoin(tokens, ""));
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", p.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  try {
    json tj = json::parse(tokenizer_json);
    json config =
        tokenizer_config_json.empty() ? json::object() : json::parse(tokenizer_config_json);
    if (!config.is_object()) {
      return absl::InvalidArgumentError("tokenizer_config.json must be an object");
    }
    return HfTokenizer::Build(tj, config);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad tokenizer JSON: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFolder(const std::filesystem::path& dir) {
  ASSIGN_OR_RETURN(std::string tj, ReadFile(dir / "tokenizer.json"));
  std::string config;
  std::error_code ec;
  if (std::filesystem::exists(dir / "tokenizer_config.json", ec)) {
    ASSIGN_OR_RETURN(config, ReadFile(dir / "tokenizer_config.json"));
  }
  auto t = FromJson(tj, config);
  if (!t.ok()) {
    return absl::Status(t.status().code(), absl::StrCat(dir.string(), ": ", t.status().message()));
  }
  return t;
}

}  // namespace atoma::engine
