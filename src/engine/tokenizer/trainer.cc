// TrainByteLevelBpe: a deterministic byte-level BPE trainer (the algorithm of the Rust crate's
// BpeTrainer without min_frequency/limit_alphabet), used to give synthesized models a real
// tokenizer.
#include <algorithm>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "atoma/engine/tokenizer.h"
#include "nlohmann/json.hpp"
#include "regex.h"
#include "unicode.h"

namespace atoma::engine {
namespace {

constexpr std::string_view kPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kSpecials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
constexpr int kNumSpecials = 3;

uint64_t Key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Word {
  std::vector<int32_t> syms;
  int64_t count;
};

}  // namespace

absl::StatusOr<std::string> TrainByteLevelBpe(std::string_view corpus_in, int vocab_size) {
  if (vocab_size < 256 + kNumSpecials) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size ", vocab_size, " is below 259 (256 bytes + 3 special tokens)"));
  }
  std::string corpus = tok::Utf8Lossy(corpus_in);
  auto re = tok::Regex::Compile(kPattern);
  if (!re.ok()) return re.status();

  // Word counts, in sorted order so that everything below is deterministic.
  absl::btree_map<std::string, int64_t> counts;
  for (auto [b, e] : (*re)->FindAll(corpus)) ++counts[corpus.substr(b, e - b)];
  std::vector<Word> words;
  words.reserve(counts.size());
  for (const auto& [w, c] : counts) {
    Word word{{}, c};
    for (unsigned char ch : w) word.syms.push_back(ch);
    words.push_back(std::move(word));
  }

  // Token strings as raw bytes; ids 0..255 are the bytes.
  std::vector<std::string> tokens(256);
  for (int b = 0; b < 256; ++b) tokens[b] = std::string(1, static_cast<char>(b));
  absl::flat_hash_map<std::string, int32_t> token_ids;
  for (int b = 0; b < 256; ++b) token_ids[tokens[b]] = b;

  absl::flat_hash_map<uint64_t, int64_t> pair_count;
  absl::flat_hash_map<uint64_t, absl::flat_hash_set<int32_t>> pair_words;
  auto add_pairs = [&](int32_t w, int64_t sign) {
    const Word& word = words[w];
    for (size_t i = 0; i + 1 < word.syms.size(); ++i) {
      uint64_t k = Key(word.syms[i], word.syms[i + 1]);
      pair_count[k] += sign * word.count;
      if (sign > 0) pair_words[k].insert(w);
    }
  };
  for (int32_t w = 0; w < static_cast<int32_t>(words.size()); ++w) add_pairs(w, 1);

  // Max-heap on (count, then the smaller token strings first), refreshed lazily.
  struct Entry {
    int64_t count;
    int32_t a, b;
  };
  auto less = [&](const Entry& x, const Entry& y) {
    if (x.count != y.count) return x.count < y.count;
    if (tokens[x.a] != tokens[y.a]) return tokens[x.a] > tokens[y.a];
    return tokens[x.b] > tokens[y.b];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> heap(less);
  {
    std::vector<std::pair<uint64_t, int64_t>> initial(pair_count.begin(), pair_count.end());
    std::sort(initial.begin(), initial.end());
    for (auto [k, c] : initial) {
      heap.push({c, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xFFFFFFFF)});
    }
  }

  std::vector<std::pair<int32_t, int32_t>> merges;
  const size_t max_tokens = static_cast<size_t>(vocab_size - kNumSpecials);
  while (tokens.size() < max_tokens && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    uint64_t k = Key(top.a, top.b);
    int64_t now = pair_count.contains(k) ? pair_count[k] : 0;
    if (now <= 0) continue;
    if (now != top.count) {
      top.count = now;
      heap.push(top);
      continue;
    }
    std::string merged = tokens[top.a] + tokens[top.b];
    int32_t new_id;
    if (auto it = token_ids.find(merged); it != token_ids.end()) {
      new_id = it->second;  // the same string reached by another pair: one token, two merges
    } else {
      new_id = static_cast<int32_t>(tokens.size());
      tokens.push_back(merged);
      token_ids[merged] = new_id;
    }
    merges.emplace_back(top.a, top.b);

    std::vector<int32_t> affected(pair_words[k].begin(), pair_words[k].end());
    std::sort(affected.begin(), affected.end());
    absl::flat_hash_set<uint64_t> touched;
    for (int32_t w : affected) {
      add_pairs(w, -1);
      std::vector<int32_t>& s = words[w].syms;
      std::vector<int32_t> out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == top.a && s[i + 1] == top.b) {
          out.push_back(new_id);
          ++i;
        } else {
          out.push_back(s[i]);
        }
      }
      s = std::move(out);
      add_pairs(w, 1);
      for (size_t i = 0; i + 1 < s.size(); ++i) touched.insert(Key(s[i], s[i + 1]));
    }
    pair_count.erase(k);
    pair_words.erase(k);
    std::vector<uint64_t> sorted_touched(touched.begin(), touched.end());
    std::sort(sorted_touched.begin(), sorted_touched.end());
    for (uint64_t t : sorted_touched) {
      int64_t c = pair_count[t];
      if (c > 0) {
        heap.push({c, static_cast<int32_t>(t >> 32), static_cast<int32_t>(t & 0xFFFFFFFF)});
      }
    }
  }

  // tokenizer.json, tokens written in GPT-2's byte-level alphabet.
  auto mapped = [](const std::string& raw) {
    std::string s;
    for (unsigned char c : raw) s += tok::ByteToCharUtf8()[c];
    return s;
  };
  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  for (size_t id = 0; id < tokens.size(); ++id) vocab[mapped(tokens[id])] = id;
  ojson merge_list = ojson::array();
  for (auto [a, b] : merges) merge_list.push_back(mapped(tokens[a]) + " " + mapped(tokens[b]));
  ojson added = ojson::array();
  for (int i = 0; i < kNumSpecials; ++i) {
    added.push_back({{"id", tokens.size() + i},
                     {"content", kSpecials[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  ojson tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", std::string(kPattern)}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", true},
           {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", false},
        {"use_regex", false}}},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}},
  };
  return tj.dump(1);
}

std::string SynthTokenizerConfigJson() {
  nlohmann::ordered_json c = {
      {"add_bos_token", false},
      {"add_eos_token", false},
      {"bos_token", nullptr},
      {"eos_token", "<|im_end|>"},
      {"pad_token", "<|endoftext|>"},
      {"unk_token", nullptr},
      {"clean_up_tokenization_spaces", false},
      {"model_max_length", 8192},
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"chat_template",
       "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
       "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
       "{{ '<|im_start|>assistant\\n' }}{% endif %}"},
  };
  return c.dump(2);
}

}  // namespace atoma::engine
