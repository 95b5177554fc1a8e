// Cross-validation mode (DESIGN §4.6 "Cross-validation mode"): one executor, and with probability p
// a check by k validators, decided by a coin that the executor cannot know when it commits.
//
//   salt        32 bytes the client keeps; the request carries salt_hash = H("atoma/xv-salt", salt)
//   coin        uint256_be(H("atoma/xv", salt, AttestationDigest(executor's attestation))) mod 10^6
//   drawn       coin < p_micro            (p_micro = 0 never draws, 10^6 always does)
//   draws       SelectCommittee(S_e, request_id, registry, 1, BackupCount(1), XvRefereeDraws(k)):
//               draw 0 the executor, draw 1 its backup, then k validators, then RefereeCount(1)
//               dispute referees.
//
// The executor signs its attestation before the client reveals the salt, so it cannot see the
// coin when it commits. The coin hashes the attestation's signed digest rather than its encoding
// with the signature: a signer can make any number of valid signatures over one digest (ECDSA
// nonces are its own choice), and a coin over the signature would let an executor that learns
// the salt re-sign its attestation until the coin says "no check". Every signed field is fixed by
// the claim itself (a different one is equivocation), so the coin is fixed once the executor
// commits. docs/protocol.md ("Cross-validation") has the whole protocol and the reasons.
//
// Validators execute and attest like referees: C over the committee [executor], p for their own
// address (MakeRefereeAttestation).
//
// Binary form of an XvCertificate (strict decoder: bounded lengths, no trailing bytes):
//   0x02 ‖ the sampling certificate's encoding without its 0x01 version byte
//        ‖ salt: u32 count (0 = unrevealed, 1) ‖ 32 bytes each
//        ‖ validators: u32 count (at most kMaxCommitteeSize) ‖ each attestation's 297-byte body
//
// Pure functions over plain structs; thread-safe. Decoders return INVALID_ARGUMENT and never
// crash on any input; VerifyXvCertificate reports every failure as a CertificateVerdict.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"

namespace atoma::consensus {

using XvSalt = std::array<uint8_t, 32>;

inline constexpr uint8_t kXvEncodingVersion = 2;
// The coin is uniform over 0 .. kXvCoinScale - 1 (p is in millionths).
inline constexpr uint64_t kXvCoinScale = 1'000'000;

// Draws after the executor's backup: the k validators, then the dispute referees of a committee
// of one.
inline constexpr uint64_t XvRefereeDraws(uint64_t k) { return k + RefereeCount(1); }

// H("atoma/xv-salt", salt): what the request carries as security.salt_hash.
Hash256 XvSaltHash(const XvSalt& salt);
// The coin in 0 .. 10^6 - 1 (exposed for tests and tools).
uint64_t XvCoin(const XvSalt& salt, const Attestation& executor);
// True when the validators must check the executor: XvCoin(salt, executor) < p_micro.
bool XvCheckDrawn(const XvSalt& salt, const Attestation& executor, uint64_t p_micro);

// The roles of SelectCommittee(..., 1, BackupCount(1), XvRefereeDraws(k)) for a cross-validation
// request: `validators` are the first k referee draws (fewer when the echelon runs out),
// `referees` the rest.
struct XvDraws {
  std::vector<Address> validators;
  std::vector<Address> referees;
};
XvDraws SplitXvDraws(const CommitteeDraws& draws, uint64_t k);

struct XvCertificate {
  // A certificate of a committee of one: request (security cross_validation), client signature,
  // committee [executor], C and the executor's attestation.
  Certificate base;
  // Absent when the client never revealed it before the round's salt timeout ("unrevealed": the
  // executor is paid, the client chose not to check).
  std::optional<XvSalt> salt;
  // When the coin was drawn: the k validators' attestations in draw order. Empty otherwise.
  std::vector<Attestation> validators;

  bool unrevealed() const { return !salt.has_value(); }
  friend bool operator==(const XvCertificate&, const XvCertificate&) = default;
};

std::vector<uint8_t> EncodeXvCertificate(const XvCertificate& certificate);
// Structural decoding (INVALID_ARGUMENT): version 0x02, a request whose security is
// cross_validation, the sampling certificate's bounds, at most one salt, at most
// kMaxCommitteeSize validators, no trailing bytes. VerifyXvCertificate does the semantic checks.
absl::StatusOr<XvCertificate> DecodeXvCertificate(std::span<const uint8_t> bytes);

// Checks, in this order:
//   - the request's security is cross_validation (kMalformed);
//   - `base` with VerifyCertificate (committee of one: client signature, epoch, the executor is
//     draw 0 or its backup, its attestation, C and p against `output`, counts, Merkle root);
//   - unrevealed: no validators (kMalformed), and then valid;
//   - XvSaltHash(salt) == request.security.salt_hash (kBadSalt);
//   - coin not drawn: no validators (kMalformed);
//   - coin drawn: exactly k validators (fewer: kMissingValidators, also when the echelon cannot
//     supply k; more: kMalformed), validator i is the i-th validator draw (kWrongCommittee), and
//     each attestation has the context's domain, epoch and echelon, this request, a signature by
//     its member, the executor's C (kConflictingCommitments), its own p for `output`
//     (kLazyMember) and the output's counts and Merkle root (kWrongMetadata).
// For a validator's failure `member` is 1 + its index (the executor is 0).
CertificateVerdict VerifyXvCertificate(const XvCertificate& certificate,
                                       const ConsensusOutput& output,
                                       const CertificateContext& context);

}  // namespace atoma::consensus
