// The protocol's canonical encoding `enc` and tagged hash `H` (DESIGN §4):
//   H(tag, a, b, ...) = SHA-256(ASCII tag ‖ 0x00 ‖ enc(a) ‖ enc(b) ‖ ...)
//   enc: uint64 → 8 bytes big-endian; uint256 → 32 bytes big-endian; hash → 32 raw bytes;
//        address → 20 raw bytes; byte string → uint32 big-endian length ‖ bytes;
//        list → uint32 big-endian count ‖ enc(each element).
// Every hash and signed digest of the protocol is built with Encoder, never from protobuf bytes.
// Decoder reads the same encoding back strictly (used for attestation and certificate files and
// wire messages): every read is bounds-checked, lengths are capped by the caller, and nothing it
// is fed can make it crash.
//
// Both are plain single-threaded value types.
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

namespace atoma::consensus {

using crypto::Address;
using crypto::Hash256;

// Appends canonical encodings to a byte buffer. Methods return *this so a hash input reads as one
// expression in spec order.
class Encoder {
 public:
  Encoder& U64(uint64_t value);
  Encoder& U32(uint32_t value);  // only for counts and lengths
  Encoder& Uint(const Uint256& value);
  Encoder& Hash(const Hash256& hash);
  Encoder& Addr(const Address& address);
  // Length-prefixed; precondition: size < 2^32 (callers bound their inputs far below that).
  Encoder& Bytes(std::span<const uint8_t> bytes);
  Encoder& Bytes(std::string_view bytes);
  // Raw bytes with no length prefix (for fixed-size fields such as a 65-byte signature and for
  // tag prefixes).
  Encoder& Raw(std::span<const uint8_t> bytes);
  // A list of integers encoded as uint64 each.
  template <typename Int>
  Encoder& U64List(std::span<const Int> values) {
    U32(static_cast<uint32_t>(values.size()));
    for (Int v : values) U64(static_cast<uint64_t>(v));
    return *this;
  }
  Encoder& HashList(std::span<const Hash256> hashes);
  Encoder& AddrList(std::span<const Address> addresses);
  Encoder& BytesList(std::span<const std::string> items);

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> Take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

// SHA-256(tag ‖ 0x00 ‖ encoded). `tag` must not contain a NUL byte.
Hash256 TaggedHash(std::string_view tag, const Encoder& encoded);
Hash256 TaggedHash(std::string_view tag, std::span<const uint8_t> encoded);

// Reads the canonical encoding. Each method fails with INVALID_ARGUMENT (naming `what`) when the
// input is too short or a bound is exceeded; after a failure the decoder's position is
// unspecified and it should be discarded.
class Decoder {
 public:
  explicit Decoder(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  absl::StatusOr<uint64_t> U64(std::string_view what);
  absl::StatusOr<uint32_t> U32(std::string_view what);
  absl::StatusOr<uint8_t> U8(std::string_view what);
  absl::StatusOr<Uint256> Uint(std::string_view what);
  absl::StatusOr<Hash256> Hash(std::string_view what);
  absl::StatusOr<Address> Addr(std::string_view what);
  // A length-prefixed byte string of at most `max_size` bytes.
  absl::StatusOr<std::string> Bytes(std::string_view what, size_t max_size);
  // A list count, at most `max_count`.
  absl::StatusOr<uint32_t> Count(std::string_view what, uint32_t max_count);
  // Fills `out` with the next out.size() raw bytes.
  absl::Status Raw(std::string_view what, std::span<uint8_t> out);

  size_t remaining() const { return bytes_.size() - pos_; }
  // OK when every byte was consumed; INVALID_ARGUMENT ("trailing bytes") otherwise.
  absl::Status ExpectEnd(std::string_view what) const;

 private:
  absl::Status Need(size_t n, std::string_view what) const;
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

}  // namespace atoma::consensus
