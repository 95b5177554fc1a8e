// Uint256: an unsigned 256-bit integer for money (stake, fees, escrow: DESIGN §5 says integer base
// units, never floats) and for the protocol's hash arithmetic (committee draws, DESIGN §4.4).
//
// Arithmetic that can leave the range is checked and returns a Status instead of wrapping, so a
// ledger bug or a hostile amount is an error, never a silently wrapped balance:
// CheckedAdd/CheckedMul -> OUT_OF_RANGE on overflow, CheckedSub -> OUT_OF_RANGE on underflow,
// DivMod -> INVALID_ARGUMENT on division by zero.
//
// Encodings: 32-byte big-endian (the protocol's canonical form and the EVM word), decimal strings
// (config, CLI, JSON where numbers exceed 2^53) and "0x" hex (JSON-RPC quantities).
//
// A plain value type: copyable, 32 bytes, no allocation except for string conversion. Thread-safe
// as any value is (const use from several threads is fine).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace atoma {

class Uint256 {
 public:
  // Zero.
  constexpr Uint256() = default;
  // Implicit from uint64_t so that `stake == 0` and `Uint256 x = 5;` read naturally; the
  // conversion cannot lose anything.
  constexpr Uint256(uint64_t value) : limbs_{value, 0, 0, 0} {}  // NOLINT(runtime/explicit)

  static constexpr Uint256 Max() {
    Uint256 r;
    r.limbs_ = {~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}};
    return r;
  }
  // From four 64-bit limbs, most significant first (handy for constants in tests).
  static constexpr Uint256 FromLimbs(uint64_t l3, uint64_t l2, uint64_t l1, uint64_t l0) {
    Uint256 r;
    r.limbs_ = {l0, l1, l2, l3};
    return r;
  }

  // 32 bytes, big-endian.
  static Uint256 FromBigEndian(std::span<const uint8_t, 32> bytes);
  // Any length up to 32 bytes, big-endian (shorter inputs are left-padded with zeros);
  // OUT_OF_RANGE for more than 32 bytes unless the extra leading bytes are zero.
  static absl::StatusOr<Uint256> FromBigEndianBytes(std::span<const uint8_t> bytes);
  std::array<uint8_t, 32> ToBigEndian() const;
  // Big-endian without leading zero bytes, but at least one byte (zero is "\0"): the form of
  // amounts in protos, where empty reads as missing.
  std::string ToMinimalBigEndian() const;

  // Decimal digits only (no sign, no whitespace, no separators, at least one digit; leading zeros
  // are allowed). INVALID_ARGUMENT for anything else, OUT_OF_RANGE above 2^256 - 1.
  static absl::StatusOr<Uint256> FromDecimal(std::string_view text);
  // Shortest decimal form ("0" for zero).
  std::string ToDecimal() const;
  // "0x" (or "0X") then 1..64 hex digits of either case, leading zeros allowed. INVALID_ARGUMENT
  // for anything else; OUT_OF_RANGE for more than 64 significant digits.
  static absl::StatusOr<Uint256> FromHex(std::string_view text);
  // "0x" + shortest lowercase hex ("0x0" for zero): the JSON-RPC quantity form.
  std::string ToHex() const;

  bool IsZero() const { return (limbs_[0] | limbs_[1] | limbs_[2] | limbs_[3]) == 0; }
  bool FitsUint64() const { return (limbs_[1] | limbs_[2] | limbs_[3]) == 0; }
  // The low 64 bits (the whole value when FitsUint64()).
  uint64_t Low64() const { return limbs_[0]; }
  // Number of significant bits (0 for zero).
  int BitLength() const;

  friend bool operator==(const Uint256& a, const Uint256& b) = default;
  friend std::strong_ordering operator<=>(const Uint256& a, const Uint256& b);

  // Shifts; shifting by 256 or more gives zero.
  Uint256 operator<<(unsigned shift) const;
  Uint256 operator>>(unsigned shift) const;

  // Limb access, least significant first (for hashing into containers and for encoders).
  const std::array<uint64_t, 4>& limbs() const { return limbs_; }

 private:
  std::array<uint64_t, 4> limbs_{};  // little-endian limbs: limbs_[0] is the least significant
};

// a + b; OUT_OF_RANGE when the sum exceeds 2^256 - 1.
absl::StatusOr<Uint256> CheckedAdd(const Uint256& a, const Uint256& b);
// a - b; OUT_OF_RANGE when b > a.
absl::StatusOr<Uint256> CheckedSub(const Uint256& a, const Uint256& b);
// a * m; OUT_OF_RANGE when the product exceeds 2^256 - 1.
absl::StatusOr<Uint256> CheckedMul(const Uint256& a, uint64_t m);

// Non-Status forms for hot paths and for callers that handle overflow themselves: return false
// (and leave *out unspecified) on overflow/underflow.
bool AddOverflows(const Uint256& a, const Uint256& b, Uint256* out);
bool SubUnderflows(const Uint256& a, const Uint256& b, Uint256* out);

struct DivModResult {
  Uint256 quotient;
  Uint256 remainder;
};
// Full 256-by-256 division. INVALID_ARGUMENT when `divisor` is zero.
absl::StatusOr<DivModResult> DivMod(const Uint256& dividend, const Uint256& divisor);
// dividend mod divisor; INVALID_ARGUMENT when `divisor` is zero.
absl::StatusOr<Uint256> Mod(const Uint256& dividend, const Uint256& divisor);

}  // namespace atoma
