// Requests, outputs and output commitments of Sampling Consensus (DESIGN §4.3, §4.5), as plain
// data with their canonical hashes:
//   request_id = H("atoma/request", enc(request))            (fields in the order of the struct)
//   p_j        = H("atoma/proof", request_id, enc(O), address_j)
//   C          = H("atoma/commit", p_0, ..., p_{n-1})         (n raw 32-byte hashes, no count)
//   Merkle root over the output tokens in 32-token chunks (RFC 6962 hashing).
// docs/protocol.md records every encoding choice the design left open.
//
// Pure functions over plain structs; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/consensus/encoding.h"

namespace atoma::consensus {

// Decoder bounds for requests read from untrusted bytes (certificates, peer messages). They are
// far above what the engine accepts, so they never reject a request the node itself made.
inline constexpr uint32_t kMaxPromptTokens = 1 << 20;
inline constexpr uint32_t kMaxStopStrings = 64;
inline constexpr size_t kMaxStopStringBytes = 1024;
inline constexpr uint32_t kMaxStopTokenIds = 1024;
inline constexpr uint32_t kMaxOutputTokens = 1 << 20;
inline constexpr uint64_t kMaxCommitteeSize = 64;

enum class SecurityMode : uint64_t { kNone = 0, kSampling = 1, kCrossValidation = 2 };

// Encoded as the mode (u64) followed only by the mode's own fields:
//   none: nothing; sampling: n; cross_validation: p_micro, k, salt_hash.
struct Security {
  SecurityMode mode = SecurityMode::kNone;
  uint64_t n = 0;        // sampling: committee size, 1..kMaxCommitteeSize
  uint64_t p_micro = 0;  // cross_validation: check probability p in millionths, 0..10^6
  uint64_t k = 0;        // cross_validation: validators drawn when the check fires
  Hash256 salt_hash{};   // cross_validation: H of the client's secret salt
};

// Everything that determines the output, plus the commercial fields. Real-valued sampling
// parameters travel as fixed-point integers in millionths (rounded to nearest by whoever turns
// the client's floats into this struct) so that the id is canonical and every member samples
// with exactly the same value.
struct ConsensusRequest {
  Hash256 model_digest{};
  std::vector<uint32_t> prompt_token_ids;
  // Sampling params, encoded in this order.
  uint64_t temperature_micro = 0;  // 0 = greedy
  uint64_t top_p_micro = 1'000'000;
  uint64_t top_k = 0;       // 0 = no top-k cut
  bool ignore_eos = false;  // encoded as u64 0/1
  uint64_t max_tokens = 0;
  std::vector<std::string> stop_strings;  // byte strings
  std::vector<uint32_t> stop_token_ids;
  uint64_t seed = 0;
  Security security;
  Uint256 max_fee;
  Address client{};
  uint64_t client_nonce = 0;
  uint64_t epoch = 0;

  friend bool operator==(const ConsensusRequest&, const ConsensusRequest&) = default;
};
inline bool operator==(const Security& a, const Security& b) {
  return a.mode == b.mode && a.n == b.n && a.p_micro == b.p_micro && a.k == b.k &&
         a.salt_hash == b.salt_hash;
}

void EncodeRequest(const ConsensusRequest& request, Encoder& out);
// Strict inverse of EncodeRequest (bounds above; unknown security mode, ignore_eos other than
// 0/1, token ids above 2^32 - 1, p_micro above 10^6 and n outside 1..kMaxCommitteeSize are
// INVALID_ARGUMENT). Does not require the end of input.
absl::StatusOr<ConsensusRequest> DecodeRequest(Decoder& in);
Hash256 RequestId(const ConsensusRequest& request);

// The echelon of nodes that compute bit-identical outputs for a model (DESIGN §4.2):
// H("atoma/echelon", model_digest, fingerprint), fingerprint = the canary fingerprint.
Hash256 EchelonId(const Hash256& model_digest, const Hash256& fingerprint);

// How many members execute and attest: sampling → n; none and cross_validation → 1 (the
// executor; cross-validation's extra validators are not part of the certificate's committee).
uint64_t CommitteeSize(const Security& security);

enum class FinishReason : uint64_t {
  kStop = 0,    // an EOS id, a stop token id or a stop string ended the output
  kLength = 1,  // max_tokens reached
};

// O: the canonical output. enc(O) = list of token ids (u64 each) ‖ finish reason (u64).
struct ConsensusOutput {
  std::vector<uint32_t> token_ids;
  FinishReason finish_reason = FinishReason::kStop;
};

void EncodeOutput(const ConsensusOutput& output, Encoder& out);
Hash256 OutputProof(const Hash256& request_id, const ConsensusOutput& output,
                    const Address& member);
// Proofs for every member, in committee order.
std::vector<Hash256> OutputProofs(const Hash256& request_id, const ConsensusOutput& output,
                                  std::span<const Address> committee);
Hash256 Commitment(std::span<const Hash256> proofs);

// RFC 6962 Merkle tree hash over the output's token ids cut into chunks of kMerkleChunkTokens
// (the last chunk may be shorter); a chunk's leaf data is its canonical list encoding
// (u32 count ‖ u64 ids). Leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right), split at
// the largest power of two below the leaf count. An empty output has no leaves and its root is
// SHA-256 of the empty string, as RFC 6962 defines.
inline constexpr size_t kMerkleChunkTokens = 32;
Hash256 OutputMerkleRoot(std::span<const uint32_t> token_ids);

}  // namespace atoma::consensus
