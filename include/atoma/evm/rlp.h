// RLP (Ethereum's Recursive Length Prefix, Yellow Paper appendix B): the encoding of transactions
// (tx.h) and of the CREATE address preimage.
//
// Encoders take byte strings, unsigned integers (minimal big-endian: no leading zero bytes, and
// 0 is the empty string, as Ethereum encodes scalars) and lists of items that are ALREADY
// encoded (so a list is built bottom-up: RlpEncodeList({RlpEncodeUint(1), RlpEncodeBytes(x)})).
//
// The decoder is strict (canonical form only) because it reads bytes from the network:
// INVALID_ARGUMENT for a truncated item, a length that overruns its container, a non-minimal
// length (a long form for a payload under 56 bytes, a length with leading zero bytes), a single
// byte below 0x80 written as a one-byte string (0x81 0x05 instead of 0x05), trailing bytes after
// the top item, or lists nested deeper than kRlpMaxDepth. It never aborts, and the memory it
// uses is linear in the input size (every decoded item consumes at least one input byte).
//
// Thread-safety: plain functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"

namespace atoma::evm {

// Deepest list nesting RlpDecode accepts: the top-level list is depth 1, a list inside it depth
// 2, and so on. Transactions need 3 (an access list); 16 leaves room and bounds recursion.
inline constexpr int kRlpMaxDepth = 16;

std::vector<uint8_t> RlpEncodeBytes(std::span<const uint8_t> bytes);
std::vector<uint8_t> RlpEncodeString(std::string_view text);
// Minimal big-endian; zero encodes as the empty string (0x80).
std::vector<uint8_t> RlpEncodeUint(const Uint256& value);
std::vector<uint8_t> RlpEncodeUint(uint64_t value);
// A list whose items are the given encodings, concatenated in order.
std::vector<uint8_t> RlpEncodeList(const std::vector<std::vector<uint8_t>>& encoded_items);

// A decoded item: a byte string (is_list false, `bytes` set) or a list (is_list true, `items`
// set). A plain value tree.
struct RlpItem {
  bool is_list = false;
  std::vector<uint8_t> bytes;
  std::vector<RlpItem> items;

  // The byte string read as an RLP scalar: INVALID_ARGUMENT for a list or a leading zero byte
  // (not canonical), OUT_OF_RANGE for more than 32 (8 for AsU64) bytes.
  absl::StatusOr<Uint256> AsUint() const;
  absl::StatusOr<uint64_t> AsU64() const;

  friend bool operator==(const RlpItem&, const RlpItem&) = default;
};

// Decodes exactly one item spanning all of `encoded` (strict, see the file comment).
absl::StatusOr<RlpItem> RlpDecode(std::span<const uint8_t> encoded);

}  // namespace atoma::evm
