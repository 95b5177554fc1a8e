// Keccak-256: the original Keccak submission with the 0x01 padding that Ethereum uses
// (NOT NIST SHA3-256, which pads with 0x06 and gives different digests). It derives node
// addresses from public keys (DESIGN §4.1) and hashes what an EVM contract would hash.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "atoma/crypto/sha256.h"

namespace atoma::crypto {

// Incremental hasher. Not thread-safe; cheap to create (200 bytes of state, no allocation).
class Keccak256 {
 public:
  Keccak256() = default;

  void Update(std::span<const uint8_t> bytes);
  void Update(std::string_view bytes);
  // Finishes the hash. The object must not be updated or finished again afterwards.
  Hash256 Final();

 private:
  static constexpr size_t kRate = 136;  // bytes: 1600-bit state minus 2 x 256-bit capacity
  void AbsorbBlock(const uint8_t* block);

  std::array<uint64_t, 25> state_{};
  std::array<uint8_t, kRate> buffer_{};
  size_t buffered_ = 0;
};

Hash256 Keccak256Of(std::span<const uint8_t> bytes);
Hash256 Keccak256Of(std::string_view bytes);

}  // namespace atoma::crypto
