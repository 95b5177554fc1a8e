#include <string>

#include "atoma/engine/tokenizer.h"

namespace atoma::engine {
namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
// A UTF-8 character spans at most 4 tokens; past this many held ids a trailing U+FFFD is real
// (the model produced invalid bytes) and holding on would only grow the window.
constexpr size_t kMaxHeld = 8;
}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::Push(int32_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.Decode(ids_, skip_special_);
  bool incomplete = text.ends_with(kReplacement) && ids_.size() - read_ < kMaxHeld;
  if (text.size() <= prefix_.size() || incomplete) return "";
  // Normally the window's text extends the context's text. Where a decoder rewrites across the
  // boundary it may not; then emit from the first byte that differs.
  size_t common = 0;
  if (text.starts_with(prefix_)) {
    common = prefix_.size();
  } else {
    while (common < prefix_.size() && text[common] == prefix_[common]) ++common;
  }
  std::string piece = text.substr(common);
  // The ids just emitted become the context of the next window.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(read_));
  read_ = ids_.size();
  prefix_ = tokenizer_.Decode(ids_, skip_special_);
  return piece;
}

std::string StreamDecoder::Flush() {
  std::string text = tokenizer_.Decode(ids_, skip_special_);
  std::string rest =
      text.size() > prefix_.size() && text.starts_with(prefix_) ? text.substr(prefix_.size()) : "";
  ids_.clear();
  read_ = 0;
  prefix_.clear();
  return rest;
}

}  // namespace atoma::engine
