#include "atoma/evm/rlp.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::evm {
namespace {

// Minimal big-endian bytes of `n` (empty for 0).
std::vector<uint8_t> MinimalBigEndian(uint64_t n) {
  std::vector<uint8_t> out;
  while (n != 0) {
    out.push_back(static_cast<uint8_t>(n & 0xff));
    n >>= 8;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// The header for a payload of `length` bytes: short form (offset + length) below 56 bytes, long
// form (offset + 55 + byte count of length, then length) from 56 on.
void AppendHeader(std::vector<uint8_t>& out, size_t length, uint8_t offset) {
  if (length < 56) {
    out.push_back(static_cast<uint8_t>(offset + length));
    return;
  }
  const std::vector<uint8_t> len = MinimalBigEndian(length);
  out.push_back(static_cast<uint8_t>(offset + 55 + len.size()));
  out.insert(out.end(), len.begin(), len.end());
}

class Decoder {
 public:
  explicit Decoder(std::span<const uint8_t> in) : in_(in) {}

  // Decodes the item at in_[pos...end) and advances pos past it.
  absl::Status Item(size_t& pos, size_t end, int depth, RlpItem& out) {
    if (pos >= end) return Error("truncated: an item expected", pos);
    const uint8_t prefix = in_[pos];
    if (prefix < 0x80) {  // a single byte, its own encoding
      out.is_list = false;
      out.bytes.assign(1, prefix);
      ++pos;
      return absl::OkStatus();
    }
    const bool is_list = prefix >= 0xc0;
    const uint8_t base = is_list ? 0xc0 : 0x80;
    const size_t start = pos;
    size_t length = 0;
    ++pos;
    if (prefix - base < 56) {
      length = prefix - base;
    } else {
      const size_t len_bytes = prefix - base - 55;  // 1..8
      if (len_bytes > end - pos) return Error("truncated length", start);
      if (in_[pos] == 0) return Error("length with a leading zero byte", start);
      for (size_t i = 0; i < len_bytes; ++i) length = length << 8 | in_[pos + i];
      pos += len_bytes;
      if (length < 56) return Error("long form for a payload under 56 bytes", start);
    }
    if (length > end - pos) return Error("payload overruns its container", start);
    const size_t payload_end = pos + length;
    out.is_list = is_list;
    if (!is_list) {
      if (length == 1 && in_[pos] < 0x80) {
        return Error("single byte below 0x80 encoded as a string", start);
      }
      out.bytes.assign(in_.begin() + pos, in_.begin() + payload_end);
      pos = payload_end;
      return absl::OkStatus();
    }
    if (depth + 1 > kRlpMaxDepth) {
      return Error(absl::StrCat("lists nested deeper than ", kRlpMaxDepth), start);
    }
    while (pos < payload_end) {
      out.items.emplace_back();
      RETURN_IF_ERROR(Item(pos, payload_end, depth + 1, out.items.back()));
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status Error(absl::string_view what, size_t offset) {
    return absl::InvalidArgumentError(absl::StrCat("rlp: ", what, " at byte ", offset));
  }
  std::span<const uint8_t> in_;
};

}  // namespace

std::vector<uint8_t> RlpEncodeBytes(std::span<const uint8_t> bytes) {
  std::vector<uint8_t> out;
  if (bytes.size() == 1 && bytes[0] < 0x80) {
    out.push_back(bytes[0]);
    return out;
  }
  out.reserve(bytes.size() + 9);
  AppendHeader(out, bytes.size(), 0x80);
  out.insert(out.end(), bytes.begin(), bytes.end());
  return out;
}

std::vector<uint8_t> RlpEncodeString(std::string_view text) {
  return RlpEncodeBytes(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

std::vector<uint8_t> RlpEncodeUint(const Uint256& value) {
  const std::array<uint8_t, 32> be = value.ToBigEndian();
  size_t first = 0;
  while (first < be.size() && be[first] == 0) ++first;
  return RlpEncodeBytes(std::span<const uint8_t>(be).subspan(first));
}

std::vector<uint8_t> RlpEncodeUint(uint64_t value) {
  return RlpEncodeBytes(MinimalBigEndian(value));
}

std::vector<uint8_t> RlpEncodeList(const std::vector<std::vector<uint8_t>>& encoded_items) {
  size_t length = 0;
  for (const auto& item : encoded_items) length += item.size();
  std::vector<uint8_t> out;
  out.reserve(length + 9);
  AppendHeader(out, length, 0xc0);
  for (const auto& item : encoded_items) out.insert(out.end(), item.begin(), item.end());
  return out;
}

absl::StatusOr<Uint256> RlpItem::AsUint() const {
  if (is_list) return absl::InvalidArgumentError("rlp: a list where an integer was expected");
  if (!bytes.empty() && bytes[0] == 0) {
    return absl::InvalidArgumentError("rlp: integer with a leading zero byte");
  }
  if (bytes.size() > 32) return absl::OutOfRangeError("rlp: integer exceeds 256 bits");
  return Uint256::FromBigEndianBytes(bytes);
}

absl::StatusOr<uint64_t> RlpItem::AsU64() const {
  ASSIGN_OR_RETURN(Uint256 v, AsUint());
  if (!v.FitsUint64()) return absl::OutOfRangeError("rlp: integer exceeds 64 bits");
  return v.Low64();
}

absl::StatusOr<RlpItem> RlpDecode(std::span<const uint8_t> encoded) {
  Decoder decoder(encoded);
  RlpItem item;
  size_t pos = 0;
  RETURN_IF_ERROR(decoder.Item(pos, encoded.size(), 0, item));
  if (pos != encoded.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rlp: ", encoded.size() - pos, " trailing bytes after the item"));
  }
  return item;
}

}  // namespace atoma::evm
