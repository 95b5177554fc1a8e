// Node identity (DESIGN §4.1): a secp256k1 private key (libsecp256k1), its Ethereum address
// (last 20 bytes of Keccak-256 of the 64-byte uncompressed public key without the 0x04 prefix),
// and 65-byte recoverable ECDSA signatures r‖s‖v over 32-byte digests with v ∈ {27, 28}, the form
// Ethereum's ecrecover checks. So the key that signs attestations also signs ledger transactions.
//
// Key file format (ReadKeyFile / WriteKeyFile): a text file holding the private key as 64 hex
// digits, optionally prefixed by "0x", optionally followed by a newline (whitespace around the
// key is ignored; nothing else may be in the file). WriteKeyFile writes lowercase hex and a
// newline with mode 0600. ReadKeyFile refuses a file that group or others may access, like ssh
// does, because whoever reads the key can sign away the node's stake.
//
// Thread-safety: all functions are thread-safe; PrivateKey is immutable after construction and
// may be used from several threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/crypto/sha256.h"

namespace atoma::crypto {

using Address = std::array<uint8_t, 20>;
using PublicKey = std::array<uint8_t, 64>;  // uncompressed X‖Y, without the 0x04 prefix
using Signature = std::array<uint8_t, 65>;  // r‖s‖v, s in the lower half, v ∈ {27, 28}

// "0x" + EIP-55 mixed-case checksummed hex, e.g. 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf.
std::string AddressToString(const Address& address);
// Accepts "0x" + 40 hex digits. All-lowercase or all-uppercase hex is accepted as is; mixed case
// must be a valid EIP-55 checksum (INVALID_ARGUMENT otherwise, as a typo guard).
absl::StatusOr<Address> ParseAddress(std::string_view text);
// The address of an uncompressed public key.
Address AddressOf(const PublicKey& public_key);

// A secp256k1 private key. Move-only; the secret is wiped from memory on destruction.
class PrivateKey {
 public:
  // INVALID_ARGUMENT unless `secret` is 32 bytes holding a scalar in [1, n-1].
  static absl::StatusOr<PrivateKey> FromBytes(std::span<const uint8_t> secret);
  // 64 hex digits, optional "0x" prefix.
  static absl::StatusOr<PrivateKey> FromHex(std::string_view hex);
  // A new key from the operating system's CSPRNG (getrandom). INTERNAL if that fails.
  static absl::StatusOr<PrivateKey> Generate();

  PrivateKey(PrivateKey&& other) noexcept;
  PrivateKey& operator=(PrivateKey&& other) noexcept;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;
  ~PrivateKey();

  const PublicKey& public_key() const { return public_key_; }
  const Address& address() const { return address_; }
  // Lowercase hex of the secret, without "0x" (for key files only; never log it).
  std::string SecretHex() const;
  // An explicit copy (the type is move-only so copies of the secret are deliberate), e.g. for a
  // ledger client that signs with the node's key.
  PrivateKey Clone() const;

  // Deterministic (RFC 6979) recoverable signature over `digest`; s is normalized to the lower
  // half of the curve order, as EIP-2 requires.
  Signature Sign(const Hash256& digest) const;

 private:
  PrivateKey() = default;
  std::array<uint8_t, 32> secret_{};
  PublicKey public_key_{};
  Address address_{};
};

// Recovers the signer's address. INVALID_ARGUMENT when v is not 27 or 28, r or s is zero or out
// of range, s is in the upper half of the order (the malleable twin of a valid signature; we
// never produce those, so accepting them would give one attestation two encodings), or no public
// key recovers. A signature over another digest recovers some other address, not an error:
// compare the result with the expected signer (VerifySignature does).
absl::StatusOr<Address> RecoverAddress(const Hash256& digest, const Signature& signature);
// True when `signature` over `digest` recovers to `signer`.
bool VerifySignature(const Hash256& digest, const Signature& signature, const Address& signer);

// Reads a key file (format above). NOT_FOUND when missing; PERMISSION_DENIED when group or
// others may access it (the message says `chmod 600 FILE`); INVALID_ARGUMENT for bad contents.
absl::StatusOr<PrivateKey> ReadKeyFile(const std::filesystem::path& path);

// The bytes of a secret file (a key file, an API keys file): a regular file that neither group nor
// others may access (checked on the opened file), at most `max_bytes`. `what` names the file in
// every error ("key file", "API keys file"): NOT_FOUND (missing), PERMISSION_DENIED (unreadable,
// or its mode lets group/others in: the message says "chmod 600"), INVALID_ARGUMENT (not a
// regular file, larger than max_bytes), INTERNAL (a read error). The caller should wipe the text
// when it is done with a secret.
absl::StatusOr<std::string> ReadOwnerOnlyFile(const std::filesystem::path& path,
                                              std::string_view what, size_t max_bytes);

// Writes `key` to `path` with mode 0600. Without `overwrite`, creates the file exclusively
// (O_CREAT|O_EXCL, ALREADY_EXISTS if it exists). With `overwrite`, writes a temporary file in the
// same folder and renames it over `path`, so a crash never leaves a half-written key.
absl::Status WriteKeyFile(const std::filesystem::path& path, const PrivateKey& key, bool overwrite);

// Hex helpers shared by the key code and its tools. ParseHex accepts an optional "0x" prefix and
// either case; INVALID_ARGUMENT for odd length or non-hex characters.
absl::StatusOr<std::vector<uint8_t>> ParseHex(std::string_view hex);

}  // namespace atoma::crypto
