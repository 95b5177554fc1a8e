// SHA-256 (OpenSSL) and the fixed-size digest type every hash in the protocol uses.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace atoma::crypto {

using Hash256 = std::array<uint8_t, 32>;

// Incremental hasher. Not thread-safe; cheap to create.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::span<const uint8_t> bytes);
  void Update(std::string_view bytes);
  // Finishes the hash; the object may not be updated afterwards.
  Hash256 Final();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

Hash256 Sha256Of(std::string_view bytes);
// Whether `a` equals `b` (API keys, the admin token), in time that depends on neither's contents:
// both are hashed and the digests compared without an early exit, so neither a secret's length
// nor a prefix shows in the timing.
bool ConstantTimeEqual(std::string_view a, std::string_view b);
std::string ToHex(std::span<const uint8_t> bytes);

}  // namespace atoma::crypto
