// EIP-1559 (type 2) transactions: encoding, signing with a node key, hashing, and decoding with
// sender recovery; and the CREATE contract address.
//
// Wire form (EIP-2718/1559): 0x02 ‖ rlp([chain_id, nonce, max_priority_fee_per_gas,
// max_fee_per_gas, gas_limit, to, value, data, access_list, y_parity, r, s]). The signing digest
// is keccak256(0x02 ‖ rlp([the first nine fields])). Access lists are always empty here.
// Signatures come from crypto::PrivateKey::Sign (RFC 6979, low s; r‖s‖v with v ∈ {27, 28}), and
// y_parity = v - 27.
//
// Error contract: DecodeSignedTx returns INVALID_ARGUMENT for anything that is not a canonical,
// validly signed type-2 transaction with an empty access list (wrong type byte, RLP errors, wrong
// field count or kinds, non-canonical integers, a `to` that is neither empty nor 20 bytes,
// y_parity not 0/1, a signature that does not recover, high s). It never aborts.
//
// Thread-safety: plain functions over values; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"

namespace atoma::evm {

struct Eip1559Tx {
  uint64_t chain_id = 0;
  uint64_t nonce = 0;
  Uint256 max_priority_fee_per_gas = 0;
  Uint256 max_fee_per_gas = 0;
  uint64_t gas_limit = 0;
  std::optional<crypto::Address> to = std::nullopt;  // nullopt: contract creation (data: init code)
  Uint256 value = 0;
  std::vector<uint8_t> data = {};

  friend bool operator==(const Eip1559Tx&, const Eip1559Tx&) = default;
};

// 0x02 ‖ rlp(the nine unsigned fields): the signing payload.
std::vector<uint8_t> EncodeUnsignedTx(const Eip1559Tx& tx);
// keccak256(EncodeUnsignedTx(tx)): the digest the sender signs.
crypto::Hash256 TxSigningHash(const Eip1559Tx& tx);

// The signed raw transaction (what eth_sendRawTransaction takes), signed by `key`.
std::vector<uint8_t> SignTx(const Eip1559Tx& tx, const crypto::PrivateKey& key);

// keccak256(raw): the transaction hash nodes report for a raw typed transaction.
crypto::Hash256 TxHash(std::span<const uint8_t> raw);

struct SignedTx {
  Eip1559Tx tx;
  uint8_t y_parity = 0;
  Uint256 r;
  Uint256 s;
  crypto::Address from{};  // recovered sender
  crypto::Hash256 hash{};  // TxHash(raw)
};
// Decodes a raw signed type-2 transaction and recovers its sender (strict; see above).
absl::StatusOr<SignedTx> DecodeSignedTx(std::span<const uint8_t> raw);

// The address of the contract that `deployer` creates with CREATE (or a contract-creation
// transaction) at account nonce `nonce`: keccak256(rlp([deployer, nonce]))[12:].
crypto::Address ContractAddress(const crypto::Address& deployer, uint64_t nonce);

}  // namespace atoma::evm
