#include "atoma/evm/hex.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::evm {
namespace {

// absl (Debian's build) has its own string_view; std::string_view needs this to reach StrCat.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool HasPrefix(std::string_view text) {
  return text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
}

// Hostile text may be huge; show only its start in messages.
std::string Shown(std::string_view text) {
  constexpr size_t kMax = 80;
  if (text.size() <= kMax) return std::string(text);
  return absl::StrCat(Sv(text.substr(0, kMax)), "... (", text.size(), " chars)");
}

template <size_t N>
absl::StatusOr<std::array<uint8_t, N>> FixedFromHex(std::string_view text, const char* what) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, FromHex(text));
  if (bytes.size() != N) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be ", N, " bytes, got ", bytes.size(), ": ", Shown(text)));
  }
  std::array<uint8_t, N> out;
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

}  // namespace

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 + 2 * bytes.size());
  out += "0x";
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> FromHex(std::string_view text) {
  std::string_view digits = HasPrefix(text) ? text.substr(2) : text;
  if (digits.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("odd number of hex digits: ", Shown(text)));
  }
  std::vector<uint8_t> out(digits.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexDigit(digits[2 * i]);
    const int lo = HexDigit(digits[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat("not hex: ", Shown(text)));
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

absl::StatusOr<crypto::Hash256> ParseHash256(std::string_view text) {
  return FixedFromHex<32>(text, "a 32-byte hash");
}

absl::StatusOr<crypto::Address> ParseAddressHex(std::string_view text) {
  return FixedFromHex<20>(text, "an address");
}

std::string AddressHex(const crypto::Address& address) { return ToHex(address); }

std::string QuantityHex(const Uint256& value) { return value.ToHex(); }

std::string QuantityHex(uint64_t value) {
  if (value == 0) return "0x0";
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[16];
  int n = 0;
  while (value != 0) {
    buf[n++] = kDigits[value & 0xf];
    value >>= 4;
  }
  std::string out = "0x";
  while (n > 0) out += buf[--n];
  return out;
}

absl::StatusOr<Uint256> ParseQuantity(std::string_view text) {
  if (!HasPrefix(text) || text.size() == 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("a quantity is \"0x\" then hex digits, got \"", Shown(text), "\""));
  }
  // Leading zeros are tolerated (some nodes pad); they do not count towards the 64 digits.
  std::string_view digits = text.substr(2);
  const size_t first = digits.find_first_not_of('0');
  digits = first == std::string_view::npos ? std::string_view("0") : digits.substr(first);
  for (char c : digits) {
    if (HexDigit(c) < 0) return absl::InvalidArgumentError(absl::StrCat("not hex: ", Shown(text)));
  }
  if (digits.size() > 64) {
    return absl::OutOfRangeError(absl::StrCat("quantity exceeds 256 bits: ", Shown(text)));
  }
  return Uint256::FromHex(absl::StrCat("0x", Sv(digits)));
}

absl::StatusOr<uint64_t> ParseQuantityU64(std::string_view text) {
  ASSIGN_OR_RETURN(Uint256 value, ParseQuantity(text));
  if (!value.FitsUint64()) {
    return absl::OutOfRangeError(absl::StrCat("quantity exceeds 64 bits: ", Shown(text)));
  }
  return value.Low64();
}

}  // namespace atoma::evm
