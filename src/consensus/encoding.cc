#include "atoma/consensus/encoding.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace atoma::consensus {

Encoder& Encoder::U64(uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8)
    bytes_.push_back(static_cast<uint8_t>(value >> shift));
  return *this;
}

Encoder& Encoder::U32(uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    bytes_.push_back(static_cast<uint8_t>(value >> shift));
  return *this;
}

Encoder& Encoder::Uint(const Uint256& value) {
  const auto be = value.ToBigEndian();
  bytes_.insert(bytes_.end(), be.begin(), be.end());
  return *this;
}

Encoder& Encoder::Hash(const Hash256& hash) {
  bytes_.insert(bytes_.end(), hash.begin(), hash.end());
  return *this;
}

Encoder& Encoder::Addr(const Address& address) {
  bytes_.insert(bytes_.end(), address.begin(), address.end());
  return *this;
}

Encoder& Encoder::Bytes(std::span<const uint8_t> bytes) {
  U32(static_cast<uint32_t>(bytes.size()));
  return Raw(bytes);
}

Encoder& Encoder::Bytes(std::string_view bytes) {
  return Bytes(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

Encoder& Encoder::Raw(std::span<const uint8_t> bytes) {
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  return *this;
}

Encoder& Encoder::HashList(std::span<const Hash256> hashes) {
  U32(static_cast<uint32_t>(hashes.size()));
  for (const auto& h : hashes) Hash(h);
  return *this;
}

Encoder& Encoder::AddrList(std::span<const Address> addresses) {
  U32(static_cast<uint32_t>(addresses.size()));
  for (const auto& a : addresses) Addr(a);
  return *this;
}

Encoder& Encoder::BytesList(std::span<const std::string> items) {
  U32(static_cast<uint32_t>(items.size()));
  for (const auto& s : items) Bytes(s);
  return *this;
}

Hash256 TaggedHash(std::string_view tag, std::span<const uint8_t> encoded) {
  crypto::Sha256 sha;
  sha.Update(tag);
  const uint8_t zero = 0;
  sha.Update(std::span<const uint8_t>(&zero, 1));
  sha.Update(encoded);
  return sha.Final();
}

Hash256 TaggedHash(std::string_view tag, const Encoder& encoded) {
  return TaggedHash(tag, std::span<const uint8_t>(encoded.bytes()));
}

absl::Status Decoder::Need(size_t n, std::string_view what) const {
  if (remaining() < n) {
    return absl::InvalidArgumentError(absl::StrCat("truncated input reading ", std::string(what),
                                                   ": need ", n, " bytes, have ", remaining()));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Decoder::U64(std::string_view what) {
  if (auto s = Need(8, what); !s.ok()) return s;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | bytes_[pos_++];
  return v;
}

absl::StatusOr<uint32_t> Decoder::U32(std::string_view what) {
  if (auto s = Need(4, what); !s.ok()) return s;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | bytes_[pos_++];
  return v;
}

absl::StatusOr<uint8_t> Decoder::U8(std::string_view what) {
  if (auto s = Need(1, what); !s.ok()) return s;
  return bytes_[pos_++];
}

absl::StatusOr<Uint256> Decoder::Uint(std::string_view what) {
  if (auto s = Need(32, what); !s.ok()) return s;
  const Uint256 v = Uint256::FromBigEndian(bytes_.subspan(pos_).first<32>());
  pos_ += 32;
  return v;
}

absl::StatusOr<Hash256> Decoder::Hash(std::string_view what) {
  Hash256 h;
  if (auto s = Raw(what, h); !s.ok()) return s;
  return h;
}

absl::StatusOr<Address> Decoder::Addr(std::string_view what) {
  Address a;
  if (auto s = Raw(what, a); !s.ok()) return s;
  return a;
}

absl::StatusOr<std::string> Decoder::Bytes(std::string_view what, size_t max_size) {
  auto len = U32(what);
  if (!len.ok()) return len.status();
  if (*len > max_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " is ", *len, " bytes, more than the limit of ", max_size));
  }
  if (auto s = Need(*len, what); !s.ok()) return s;
  std::string out(reinterpret_cast<const char*>(bytes_.data() + pos_), *len);
  pos_ += *len;
  return out;
}

absl::StatusOr<uint32_t> Decoder::Count(std::string_view what, uint32_t max_count) {
  auto n = U32(what);
  if (!n.ok()) return n.status();
  if (*n > max_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(what), " has ", *n, " elements, more than the limit of ", max_count));
  }
  return *n;
}

absl::Status Decoder::Raw(std::string_view what, std::span<uint8_t> out) {
  if (auto s = Need(out.size(), what); !s.ok()) return s;
  std::copy_n(bytes_.begin() + pos_, out.size(), out.begin());
  pos_ += out.size();
  return absl::OkStatus();
}

absl::Status Decoder::ExpectEnd(std::string_view what) const {
  if (remaining() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), ": ", remaining(), " trailing bytes after the end"));
  }
  return absl::OkStatus();
}

}  // namespace atoma::consensus
