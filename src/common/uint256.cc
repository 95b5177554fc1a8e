#include "atoma/common/uint256.h"

#include <algorithm>

#include "absl/status/status.h"

namespace atoma {
namespace {

__extension__ typedef unsigned __int128 u128;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Divides in place by a small divisor and returns the remainder (schoolbook, limb by limb).
uint64_t DivSmallInPlace(std::array<uint64_t, 4>& limbs, uint64_t divisor) {
  u128 rem = 0;
  for (int i = 3; i >= 0; --i) {
    const u128 cur = (rem << 64) | limbs[i];
    limbs[i] = static_cast<uint64_t>(cur / divisor);
    rem = cur % divisor;
  }
  return static_cast<uint64_t>(rem);
}

}  // namespace

Uint256 Uint256::FromBigEndian(std::span<const uint8_t, 32> bytes) {
  Uint256 r;
  for (int limb = 0; limb < 4; ++limb) {
    uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v = (v << 8) | bytes[(3 - limb) * 8 + b];
    r.limbs_[limb] = v;
  }
  return r;
}

absl::StatusOr<Uint256> Uint256::FromBigEndianBytes(std::span<const uint8_t> bytes) {
  std::array<uint8_t, 32> padded{};
  size_t skip = 0;
  if (bytes.size() > 32) {
    skip = bytes.size() - 32;
    for (size_t i = 0; i < skip; ++i) {
      if (bytes[i] != 0) return absl::OutOfRangeError("integer does not fit in 256 bits");
    }
  }
  const size_t n = bytes.size() - skip;
  std::copy(bytes.begin() + skip, bytes.end(), padded.begin() + (32 - n));
  return FromBigEndian(padded);
}

std::string Uint256::ToMinimalBigEndian() const {
  const std::array<uint8_t, 32> be = ToBigEndian();
  size_t first = 0;
  while (first < 31 && be[first] == 0) ++first;
  return std::string(be.begin() + first, be.end());
}

std::array<uint8_t, 32> Uint256::ToBigEndian() const {
  std::array<uint8_t, 32> out{};
  for (int limb = 0; limb < 4; ++limb) {
    uint64_t v = limbs_[limb];
    for (int b = 7; b >= 0; --b) {
      out[(3 - limb) * 8 + b] = static_cast<uint8_t>(v);
      v >>= 8;
    }
  }
  return out;
}

absl::StatusOr<Uint256> Uint256::FromDecimal(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty decimal integer");
  Uint256 r;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError("decimal integer has a non-digit character");
    }
    // r = r * 10 + digit, with overflow detection on the top limb's carry.
    uint64_t carry = static_cast<uint64_t>(c - '0');
    for (auto& limb : r.limbs_) {
      const u128 cur = static_cast<u128>(limb) * 10 + carry;
      limb = static_cast<uint64_t>(cur);
      carry = static_cast<uint64_t>(cur >> 64);
    }
    if (carry != 0) return absl::OutOfRangeError("decimal integer exceeds 2^256 - 1");
  }
  return r;
}

std::string Uint256::ToDecimal() const {
  if (IsZero()) return "0";
  std::array<uint64_t, 4> work = limbs_;
  std::string digits;
  constexpr uint64_t kChunk = 10'000'000'000'000'000'000ull;  // 10^19, the largest power in 64 bits
  while ((work[0] | work[1] | work[2] | work[3]) != 0) {
    uint64_t rem = DivSmallInPlace(work, kChunk);
    const bool last = (work[0] | work[1] | work[2] | work[3]) == 0;
    for (int i = 0; i < 19 && (!last || rem != 0); ++i) {
      digits.push_back(static_cast<char>('0' + rem % 10));
      rem /= 10;
    }
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

absl::StatusOr<Uint256> Uint256::FromHex(std::string_view text) {
  if (text.size() < 3 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X')) {
    return absl::InvalidArgumentError("hex integer must be 0x followed by at least one digit");
  }
  text.remove_prefix(2);
  Uint256 r;
  int significant = 0;
  for (char c : text) {
    const int d = HexDigit(c);
    if (d < 0) return absl::InvalidArgumentError("hex integer has a non-hex character");
    if (significant == 0 && d == 0) continue;
    if (++significant > 64) return absl::OutOfRangeError("hex integer exceeds 2^256 - 1");
    r = r << 4;
    r.limbs_[0] |= static_cast<uint64_t>(d);
  }
  return r;
}

std::string Uint256::ToHex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  const int nibbles = std::max(1, (BitLength() + 3) / 4);
  for (int i = nibbles - 1; i >= 0; --i) {
    out.push_back(kDigits[(limbs_[i / 16] >> ((i % 16) * 4)) & 0xf]);
  }
  return out;
}

int Uint256::BitLength() const {
  for (int i = 3; i >= 0; --i) {
    if (limbs_[i] != 0) return i * 64 + (64 - __builtin_clzll(limbs_[i]));
  }
  return 0;
}

std::strong_ordering operator<=>(const Uint256& a, const Uint256& b) {
  for (int i = 3; i >= 0; --i) {
    if (a.limbs_[i] != b.limbs_[i]) return a.limbs_[i] <=> b.limbs_[i];
  }
  return std::strong_ordering::equal;
}

Uint256 Uint256::operator<<(unsigned shift) const {
  if (shift >= 256) return Uint256();
  Uint256 r;
  const unsigned limb_shift = shift / 64, bit_shift = shift % 64;
  for (int i = 3; i >= static_cast<int>(limb_shift); --i) {
    uint64_t v = limbs_[i - limb_shift] << bit_shift;
    if (bit_shift != 0 && i - static_cast<int>(limb_shift) - 1 >= 0) {
      v |= limbs_[i - limb_shift - 1] >> (64 - bit_shift);
    }
    r.limbs_[i] = v;
  }
  return r;
}

Uint256 Uint256::operator>>(unsigned shift) const {
  if (shift >= 256) return Uint256();
  Uint256 r;
  const unsigned limb_shift = shift / 64, bit_shift = shift % 64;
  for (unsigned i = 0; i + limb_shift < 4; ++i) {
    uint64_t v = limbs_[i + limb_shift] >> bit_shift;
    if (bit_shift != 0 && i + limb_shift + 1 < 4)
      v |= limbs_[i + limb_shift + 1] << (64 - bit_shift);
    r.limbs_[i] = v;
  }
  return r;
}

bool AddOverflows(const Uint256& a, const Uint256& b, Uint256* out) {
  std::array<uint64_t, 4> r{};
  uint64_t carry = 0;
  for (int i = 0; i < 4; ++i) {
    const u128 s = static_cast<u128>(a.limbs()[i]) + b.limbs()[i] + carry;
    r[i] = static_cast<uint64_t>(s);
    carry = static_cast<uint64_t>(s >> 64);
  }
  *out = Uint256::FromLimbs(r[3], r[2], r[1], r[0]);
  return carry != 0;
}

bool SubUnderflows(const Uint256& a, const Uint256& b, Uint256* out) {
  std::array<uint64_t, 4> r{};
  uint64_t borrow = 0;
  for (int i = 0; i < 4; ++i) {
    const uint64_t x = a.limbs()[i], y = b.limbs()[i];
    const uint64_t d = x - y - borrow;
    borrow = (x < y || (x == y && borrow != 0)) ? 1 : 0;
    r[i] = d;
  }
  *out = Uint256::FromLimbs(r[3], r[2], r[1], r[0]);
  return borrow != 0;
}

absl::StatusOr<Uint256> CheckedAdd(const Uint256& a, const Uint256& b) {
  Uint256 r;
  if (AddOverflows(a, b, &r)) return absl::OutOfRangeError("uint256 addition overflows");
  return r;
}

absl::StatusOr<Uint256> CheckedSub(const Uint256& a, const Uint256& b) {
  Uint256 r;
  if (SubUnderflows(a, b, &r)) return absl::OutOfRangeError("uint256 subtraction underflows");
  return r;
}

absl::StatusOr<Uint256> CheckedMul(const Uint256& a, uint64_t m) {
  std::array<uint64_t, 4> r{};
  uint64_t carry = 0;
  for (int i = 0; i < 4; ++i) {
    const u128 p = static_cast<u128>(a.limbs()[i]) * m + carry;
    r[i] = static_cast<uint64_t>(p);
    carry = static_cast<uint64_t>(p >> 64);
  }
  if (carry != 0) return absl::OutOfRangeError("uint256 multiplication overflows");
  return Uint256::FromLimbs(r[3], r[2], r[1], r[0]);
}

absl::StatusOr<DivModResult> DivMod(const Uint256& dividend, const Uint256& divisor) {
  if (divisor.IsZero()) return absl::InvalidArgumentError("uint256 division by zero");
  if (dividend < divisor) return DivModResult{Uint256(), dividend};
  if (divisor.FitsUint64()) {
    std::array<uint64_t, 4> q = dividend.limbs();
    const uint64_t rem = DivSmallInPlace(q, divisor.Low64());
    return DivModResult{Uint256::FromLimbs(q[3], q[2], q[1], q[0]), Uint256(rem)};
  }
  // Shift-subtract long division over the bits where the quotient can be non-zero; at most 256
  // steps, and only wide divisors reach here.
  const int shift = dividend.BitLength() - divisor.BitLength();
  Uint256 rem = dividend, quotient;
  Uint256 d = divisor << static_cast<unsigned>(shift);
  for (int i = shift; i >= 0; --i) {
    Uint256 diff;
    if (!SubUnderflows(rem, d, &diff)) {
      rem = diff;
      quotient = CheckedAdd(quotient, Uint256(1) << static_cast<unsigned>(i)).value();
    }
    d = d >> 1;
  }
  return DivModResult{quotient, rem};
}

absl::StatusOr<Uint256> Mod(const Uint256& dividend, const Uint256& divisor) {
  auto r = DivMod(dividend, divisor);
  if (!r.ok()) return r.status();
  return r->remainder;
}

}  // namespace atoma
