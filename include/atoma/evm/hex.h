// Hex text as Ethereum JSON-RPC writes it: "0x"-prefixed byte strings (DATA: two digits per byte)
// and "0x"-prefixed quantities (QUANTITY: the shortest hex of an integer, "0x0" for zero).
//
// Error contract: the parsers return INVALID_ARGUMENT for malformed text (no digits, odd length,
// a character that is not hex, a wrong byte count) and OUT_OF_RANGE for a quantity that does not
// fit the requested width. They never abort: their input is what a possibly hostile node sent.
//
// Thread-safety: plain functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"

namespace atoma::evm {

// "0x" + two lowercase hex digits per byte ("0x" for no bytes).
std::string ToHex(std::span<const uint8_t> bytes);

// Byte string from hex: an optional "0x"/"0X" prefix, then an even number of hex digits of either
// case ("0x" and "" are the empty string). INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<uint8_t>> FromHex(std::string_view text);

// Exactly 32 bytes (a hash, a topic, a bytes32 word) / exactly 20 bytes (an address, any case,
// no EIP-55 check: nodes answer in lower case). INVALID_ARGUMENT for any other length.
absl::StatusOr<crypto::Hash256> ParseHash256(std::string_view text);
absl::StatusOr<crypto::Address> ParseAddressHex(std::string_view text);
// "0x" + 40 lowercase hex digits (what JSON-RPC requests carry; use crypto::AddressToString for
// the checksummed form people read).
std::string AddressHex(const crypto::Address& address);

// JSON-RPC QUANTITY: "0x" + shortest lowercase hex, "0x0" for zero.
std::string QuantityHex(const Uint256& value);
std::string QuantityHex(uint64_t value);

// Parses a QUANTITY: "0x" (or "0X") then 1..n hex digits of either case. Leading zeros are
// tolerated ("0x00" is 0; some nodes pad) but "0x" alone, a missing prefix, signs and whitespace
// are INVALID_ARGUMENT. OUT_OF_RANGE above 2^256 - 1 (ParseQuantity) or 2^64 - 1
// (ParseQuantityU64).
absl::StatusOr<Uint256> ParseQuantity(std::string_view text);
absl::StatusOr<uint64_t> ParseQuantityU64(std::string_view text);

}  // namespace atoma::evm
