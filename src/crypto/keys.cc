#include "atoma/crypto/keys.h"

#include <fcntl.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoma/common/status.h"
#include "atoma/crypto/keccak.h"

namespace atoma::crypto {
namespace {

// One libsecp256k1 context for the process. It is written only here, once (creation and
// side-channel blinding); afterwards the library only reads it, and its documentation allows
// concurrent use of a const context from any number of threads. Creating one per call would cost
// tens of microseconds and fresh randomness each time.
const secp256k1_context* Context() {
  static const secp256k1_context* const ctx = [] {
    secp256k1_context* c =
        secp256k1_context_create(SECP256K1_CONTEXT_SIGN | SECP256K1_CONTEXT_VERIFY);
    if (c == nullptr) std::abort();  // only on allocation failure
    uint8_t seed[32];
    // Blinding is a defence against timing side channels; without randomness we still sign
    // correctly, so a failure here is not fatal.
    if (getrandom(seed, sizeof(seed), 0) == static_cast<ssize_t>(sizeof(seed))) {
      [[maybe_unused]] const int randomized = secp256k1_context_randomize(c, seed);
    }
    explicit_bzero(seed, sizeof(seed));
    return c;
  }();
  return ctx;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view StripHexPrefix(std::string_view s) {
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  return s;
}

// The curve order n, big-endian, and n/2 (for the low-s rule).
constexpr std::array<uint8_t, 32> kHalfOrder = {
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};

std::string ErrnoText(int err) { return std::strerror(err); }

// Debian's abseil is built with its own absl::string_view, which does not convert from
// std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view TrimWhitespace(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> ParseHex(std::string_view hex) {
  hex = StripHexPrefix(hex);
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hex string has odd length ", hex.size()));
  }
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("non-hex character at position ", 2 * i + (hi < 0 ? 0 : 1)));
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string AddressToString(const Address& address) {
  const std::string lower = ToHex(address);
  const Hash256 h = Keccak256Of(lower);
  std::string out = "0x";
  out.reserve(42);
  for (size_t i = 0; i < lower.size(); ++i) {
    const char c = lower[i];
    // EIP-55: uppercase a letter when the matching nibble of Keccak-256(lowercase hex) is >= 8.
    const int nibble = (i % 2 == 0) ? (h[i / 2] >> 4) : (h[i / 2] & 15);
    out.push_back(c >= 'a' && nibble >= 8 ? static_cast<char>(c - 'a' + 'A') : c);
  }
  return out;
}

absl::StatusOr<Address> ParseAddress(std::string_view text) {
  if (text.size() != 42 || text[0] != '0' || text[1] != 'x') {
    return absl::InvalidArgumentError(
        absl::StrCat("address must be 0x followed by 40 hex digits, got \"", Sv(text), "\""));
  }
  auto bytes = ParseHex(text);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", Sv(text), "\": ", bytes.status().message()));
  }
  Address address;
  std::copy(bytes->begin(), bytes->end(), address.begin());
  const std::string_view digits = text.substr(2);
  const bool has_lower = std::any_of(digits.begin(), digits.end(), absl::ascii_islower);
  const bool has_upper = std::any_of(digits.begin(), digits.end(), absl::ascii_isupper);
  if (has_lower && has_upper && AddressToString(address) != text) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address \"", Sv(text), "\" has a wrong EIP-55 checksum (mistyped?); expected ",
        AddressToString(address)));
  }
  return address;
}

Address AddressOf(const PublicKey& public_key) {
  const Hash256 h = Keccak256Of(public_key);
  Address address;
  std::copy(h.end() - 20, h.end(), address.begin());
  return address;
}

absl::StatusOr<PrivateKey> PrivateKey::FromBytes(std::span<const uint8_t> secret) {
  if (secret.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("private key must be 32 bytes, got ", secret.size()));
  }
  PrivateKey key;
  std::copy(secret.begin(), secret.end(), key.secret_.begin());
  if (secp256k1_ec_seckey_verify(Context(), key.secret_.data()) != 1) {
    return absl::InvalidArgumentError("private key is zero or not below the secp256k1 order");
  }
  secp256k1_pubkey pub;
  if (secp256k1_ec_pubkey_create(Context(), &pub, key.secret_.data()) != 1) {
    return absl::InvalidArgumentError("cannot derive a public key from the private key");
  }
  uint8_t serialized[65];
  size_t len = sizeof(serialized);
  secp256k1_ec_pubkey_serialize(Context(), serialized, &len, &pub, SECP256K1_EC_UNCOMPRESSED);
  std::copy(serialized + 1, serialized + 65, key.public_key_.begin());
  key.address_ = AddressOf(key.public_key_);
  return key;
}

absl::StatusOr<PrivateKey> PrivateKey::FromHex(std::string_view hex) {
  const std::string_view digits = StripHexPrefix(hex);
  if (digits.size() != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("private key must be 64 hex digits, got ", digits.size(), " characters"));
  }
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ParseHex(digits));
  auto key = FromBytes(bytes);
  explicit_bzero(bytes.data(), bytes.size());
  return key;
}

absl::StatusOr<PrivateKey> PrivateKey::Generate() {
  std::array<uint8_t, 32> secret;
  // A uniformly random 256-bit value is outside [1, n-1] with probability ~2^-128; retry anyway.
  for (int attempt = 0; attempt < 16; ++attempt) {
    size_t got = 0;
    while (got < secret.size()) {
      const ssize_t n = getrandom(secret.data() + got, secret.size() - got, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::InternalError(absl::StrCat("getrandom failed: ", ErrnoText(errno)));
      }
      got += static_cast<size_t>(n);
    }
    auto key = FromBytes(secret);
    explicit_bzero(secret.data(), secret.size());
    if (key.ok()) return key;
  }
  return absl::InternalError("getrandom produced no valid secp256k1 key in 16 attempts");
}

PrivateKey::PrivateKey(PrivateKey&& other) noexcept
    : secret_(other.secret_), public_key_(other.public_key_), address_(other.address_) {
  explicit_bzero(other.secret_.data(), other.secret_.size());
}

PrivateKey& PrivateKey::operator=(PrivateKey&& other) noexcept {
  if (this != &other) {
    secret_ = other.secret_;
    public_key_ = other.public_key_;
    address_ = other.address_;
    explicit_bzero(other.secret_.data(), other.secret_.size());
  }
  return *this;
}

PrivateKey::~PrivateKey() { explicit_bzero(secret_.data(), secret_.size()); }

std::string PrivateKey::SecretHex() const { return ToHex(secret_); }

PrivateKey PrivateKey::Clone() const {
  PrivateKey copy;
  copy.secret_ = secret_;
  copy.public_key_ = public_key_;
  copy.address_ = address_;
  return copy;
}

Signature PrivateKey::Sign(const Hash256& digest) const {
  secp256k1_ecdsa_recoverable_signature sig;
  // Fails only for an invalid secret, which FromBytes already excluded.
  if (secp256k1_ecdsa_sign_recoverable(Context(), &sig, digest.data(), secret_.data(), nullptr,
                                       nullptr) != 1) {
    std::abort();
  }
  Signature out{};
  int recid = 0;
  secp256k1_ecdsa_recoverable_signature_serialize_compact(Context(), out.data(), &recid, &sig);
  out[64] = static_cast<uint8_t>(27 + recid);
  return out;
}

absl::StatusOr<Address> RecoverAddress(const Hash256& digest, const Signature& signature) {
  const uint8_t v = signature[64];
  if (v != 27 && v != 28) {
    return absl::InvalidArgumentError(absl::StrCat("signature v must be 27 or 28, got ", v));
  }
  const uint8_t* s = signature.data() + 32;
  if (std::lexicographical_compare(kHalfOrder.begin(), kHalfOrder.end(), s, s + 32)) {
    return absl::InvalidArgumentError("signature s is in the upper half of the curve order");
  }
  secp256k1_ecdsa_recoverable_signature sig;
  // Parsing rejects r or s not below the order; recovery below rejects zero r or s.
  if (secp256k1_ecdsa_recoverable_signature_parse_compact(Context(), &sig, signature.data(),
                                                          v - 27) != 1) {
    return absl::InvalidArgumentError("signature r or s is out of range");
  }
  secp256k1_pubkey pub;
  if (secp256k1_ecdsa_recover(Context(), &pub, &sig, digest.data()) != 1) {
    return absl::InvalidArgumentError("no public key recovers from this signature");
  }
  uint8_t serialized[65];
  size_t len = sizeof(serialized);
  secp256k1_ec_pubkey_serialize(Context(), serialized, &len, &pub, SECP256K1_EC_UNCOMPRESSED);
  PublicKey public_key;
  std::copy(serialized + 1, serialized + 65, public_key.begin());
  return AddressOf(public_key);
}

bool VerifySignature(const Hash256& digest, const Signature& signature, const Address& signer) {
  auto recovered = RecoverAddress(digest, signature);
  return recovered.ok() && *recovered == signer;
}

absl::StatusOr<std::string> ReadOwnerOnlyFile(const std::filesystem::path& path,
                                              std::string_view what, size_t max_bytes) {
  const std::string name = absl::StrCat(std::string(what), " ", path.string());
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = absl::StrCat(name, ": ", ErrnoText(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
  }
  // Check the mode of the file we opened (fstat), not of whatever the path names a moment later.
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat(name, ": ", ErrnoText(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(name, " is not a regular file"));
  }
  if ((st.st_mode & 0077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return absl::PermissionDeniedError(absl::StrCat(name,
                                                    " is accessible by group or others (mode ",
                                                    mode, "); run: chmod 600 ", path.string()));
  }
  std::string text;
  char buf[4096];
  absl::Status status;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::InternalError(absl::StrCat(name, ": ", ErrnoText(errno)));
      break;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) {
      status =
          absl::InvalidArgumentError(absl::StrCat(name, " is larger than ", max_bytes, " bytes"));
      break;
    }
  }
  explicit_bzero(buf, sizeof(buf));
  ::close(fd);
  if (!status.ok()) {
    explicit_bzero(text.data(), text.size());
    return status;
  }
  return text;
}

absl::StatusOr<PrivateKey> ReadKeyFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> read = ReadOwnerOnlyFile(path, "key file", 4096);
  if (!read.ok()) {
    if (absl::IsNotFound(read.status())) {
      return absl::NotFoundError(
          absl::StrCat(read.status().message(), " (create one with: atoma-cli keygen --out FILE)"));
    }
    return read.status();
  }
  std::string text = *std::move(read);
  auto key = PrivateKey::FromHex(TrimWhitespace(text));
  explicit_bzero(text.data(), text.size());
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key file ", path.string(),
        " must hold a secp256k1 private key as 64 hex digits: ", key.status().message()));
  }
  return key;
}

namespace {

absl::Status WriteAll(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(absl::StrCat("writing ", path.string(), ": ", ErrnoText(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) {
    return absl::InternalError(absl::StrCat("fsync ", path.string(), ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

absl::Status CreateExclusive(const std::filesystem::path& path, std::string_view contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(
          path.string(), " already exists; refusing to overwrite a key (use --force)"));
    }
    return absl::PermissionDeniedError(
        absl::StrCat("creating ", path.string(), ": ", ErrnoText(err)));
  }
  // O_CREAT applies the umask to 0600; that can only remove bits, but make the mode explicit.
  absl::Status status = WriteAll(fd, contents, path);
  if (status.ok() && ::fchmod(fd, 0600) != 0) {
    status = absl::InternalError(absl::StrCat("chmod ", path.string(), ": ", ErrnoText(errno)));
  }
  ::close(fd);
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

}  // namespace

absl::Status WriteKeyFile(const std::filesystem::path& path, const PrivateKey& key,
                          bool overwrite) {
  std::string contents = key.SecretHex() + "\n";
  absl::Status status;
  if (!overwrite) {
    status = CreateExclusive(path, contents);
  } else {
    std::filesystem::path tmp = path;
    tmp += absl::StrCat(".tmp.", ::getpid());
    ::unlink(tmp.c_str());  // a leftover of a crashed run of this pid
    status = CreateExclusive(tmp, contents);
    if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
      status = absl::InternalError(
          absl::StrCat("renaming over ", path.string(), ": ", ErrnoText(errno)));
      ::unlink(tmp.c_str());
    }
  }
  explicit_bzero(contents.data(), contents.size());
  return status;
}

}  // namespace atoma::crypto
