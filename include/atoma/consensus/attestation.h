// Attestations and certificates (DESIGN §4.5): what a committee member signs about its output, how
// it is encoded on the wire and in files, and how a client checks a whole certificate with the
// output, the registry snapshot and nothing else.
//
// Signing digest (every field in this order; chain id and ledger address are the domain, so a
// signature for one network or ledger is worthless on another):
//   H("atoma/attestation", chain_id, ledger, request_id, echelon_id, C, p_i,
//     prompt_tokens, completion_tokens, merkle_root, epoch)
//
// Binary forms (strict decoders: bounded lengths, no trailing bytes, never crash):
//   attestation = 0x01 ‖ the digest's fields in order ‖ member (20) ‖ signature (65)   [298 bytes]
//   certificate = 0x01 ‖ enc(request) ‖ client_signature (65 raw bytes)
//                 ‖ committee (u32 count ‖ 20-byte addresses) ‖ C (32)
//                 ‖ u32 count ‖ each attestation without its leading version byte (297 bytes)
// The client signature authorizes the request (and its fee) in the client's name:
//   client_signature = sign(client key, ClientRequestDigest(domain, RequestId(request)))
//
// Pure functions over plain structs; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/encoding.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"

namespace atoma::consensus {

// Which network and ledger a signature belongs to.
struct Domain {
  uint64_t chain_id = 0;
  Address ledger{};  // the ledger contract's address (embedded ledger: its configured id)
  friend bool operator==(const Domain&, const Domain&) = default;
};

// What a client signs to authorize (and pay for) a request, DESIGN §4.3:
//   H("atoma/client-request", chain_id, ledger, request_id)
// The domain makes the authorization worthless on another network or ledger.
Hash256 ClientRequestDigest(const Domain& domain, const Hash256& request_id);

// OK when `client_signature` recovers to `request.client` over
// ClientRequestDigest(domain, RequestId(request)); PERMISSION_DENIED otherwise (the message says
// whether the signature is malformed or recovers to another address).
absl::Status VerifyClientSignature(const Domain& domain, const ConsensusRequest& request,
                                   const crypto::Signature& client_signature);

struct Attestation {
  Domain domain;
  Hash256 request_id{};
  Hash256 echelon_id{};
  Hash256 commitment{};  // C
  Hash256 proof{};       // p_i, this member's proof
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  Hash256 merkle_root{};
  uint64_t epoch = 0;
  Address member{};               // the signer the attestation claims
  crypto::Signature signature{};  // over AttestationDigest(*this)

  friend bool operator==(const Attestation&, const Attestation&) = default;
};

inline constexpr size_t kAttestationBodySize = 8 + 20 + 32 * 4 + 8 + 8 + 32 + 8 + 20 + 65;
inline constexpr size_t kAttestationEncodedSize = 1 + kAttestationBodySize;
inline constexpr uint8_t kEncodingVersion = 1;

Hash256 AttestationDigest(const Attestation& attestation);

// Everything a member needs to attest: computes every p_j, C, its own p_i, the token counts and
// the Merkle root, and signs. INVALID_ARGUMENT when `key`'s address is not in `committee`.
absl::StatusOr<Attestation> MakeAttestation(const Domain& domain, const Hash256& request_id,
                                            const Hash256& echelon_id, uint64_t epoch,
                                            std::span<const Address> committee,
                                            const ConsensusOutput& output, uint64_t prompt_tokens,
                                            const crypto::PrivateKey& key);

// A referee's attestation in a dispute (DESIGN §4.6): the referee executes the request itself and
// attests C over the disputed `committee` (so its vote is comparable with the members' C) and
// p = H(request_id, O, its own address), which is not one of the committee's p_j. INVALID_ARGUMENT
// when `key`'s address is in `committee` (a member cannot referee its own dispute).
absl::StatusOr<Attestation> MakeRefereeAttestation(const Domain& domain, const Hash256& request_id,
                                                   const Hash256& echelon_id, uint64_t epoch,
                                                   std::span<const Address> committee,
                                                   const ConsensusOutput& output,
                                                   uint64_t prompt_tokens,
                                                   const crypto::PrivateKey& key);

// True when `a` and `b` make the same claim about the output: every field is equal except the
// commitment C and the signature. C = H(p_0..p_{n-1}) depends on the committee, so a member that
// re-attests after a backup replaced a timed-out peer signs a new C with an unchanged p_i, token
// counts and Merkle root: a view update, not equivocation (DESIGN §4.6). Two validly signed
// attestations by one node for one request for which this is false (another p_i, token count,
// Merkle root, echelon or epoch) claim two different outputs: equivocation. Used by Round, the
// ledger's ReportEquivocation and the journal's own-attestation guard, so all three agree.
bool SameOutputClaim(const Attestation& a, const Attestation& b);

// OK when the attestation is for `domain` and `epoch` and its signature recovers to `member`.
// PERMISSION_DENIED otherwise (the message says which check failed).
absl::Status VerifyAttestation(const Attestation& attestation, const Domain& domain,
                               uint64_t epoch);

std::vector<uint8_t> EncodeAttestation(const Attestation& attestation);
// INVALID_ARGUMENT on a wrong version, a wrong size or trailing bytes. Does not verify the
// signature.
absl::StatusOr<Attestation> DecodeAttestation(std::span<const uint8_t> bytes);

struct Certificate {
  ConsensusRequest request;
  // The client's authorization of `request` (VerifyClientSignature): without it any node could
  // invent a request in a client's name and settle it against that client's escrow.
  crypto::Signature client_signature{};
  std::vector<Address> committee;         // committee order
  Hash256 commitment{};                   // C
  std::vector<Attestation> attestations;  // attestations[i] is committee[i]'s

  friend bool operator==(const Certificate&, const Certificate&) = default;
};

std::vector<uint8_t> EncodeCertificate(const Certificate& certificate);
// Structural decoding only (bounds: request limits of request.h, at most kMaxCommitteeSize
// members and attestations). VerifyCertificate does the semantic checks.
absl::StatusOr<Certificate> DecodeCertificate(std::span<const uint8_t> bytes);

// What a verifier knows without trusting the certificate's sender.
struct CertificateContext {
  Domain domain;
  uint64_t epoch = 0;
  Hash256 epoch_seed{};
  Hash256 echelon_id{};
  std::vector<Candidate> registry;  // the echelon's nodes and frozen stakes for `epoch`
};

enum class CertificateCheck {
  kValid,
  kMalformed,               // sizes do not match the request's committee size
  kWrongEpoch,              // request or attestation is for another epoch
  kWrongDomain,             // an attestation names another chain or ledger
  kWrongCommittee,          // committee is not the recomputed draw, or a signer is out of place
  kWrongRequest,            // an attestation is about another request
  kWrongEchelon,            // an attestation names another echelon
  kBadSignature,            // a signature does not recover to its member
  kConflictingCommitments,  // members attested different C, or C differs from the certificate's
  kWrongOutput,             // C is not the commitment to the given output
  kLazyMember,              // C matches the output but a member's p_i does not (copied C)
  kWrongMetadata,           // token counts or Merkle root do not match the output
  kBadClientSignature,      // the client signature does not authorize this request here
  // Cross-validation certificates (xv.h, VerifyXvCertificate):
  kBadSalt,            // the revealed salt does not hash to the request's salt_hash
  kMissingValidators,  // the coin drew a check and fewer than k validators attested
};

struct CertificateVerdict {
  CertificateCheck check = CertificateCheck::kValid;
  int member = -1;  // committee index the failure is about, -1 when none
  std::string reason;
  bool ok() const { return check == CertificateCheck::kValid; }
};

// Backups a round may draw on for a committee of n (DESIGN §4.6 "Timeout"): the draws after the
// first n. Fixed by the protocol, because the referees are the draws after the backups and a
// verifier must know where a replacement may come from.
inline constexpr uint64_t BackupCount(uint64_t n) { return n; }
// Referees drawn for a dispute (DESIGN §4.6 default m = 2n + 1); they follow the backups.
inline constexpr uint64_t RefereeCount(uint64_t n) { return 2 * n + 1; }

// The rule for which committees a round may end with (shared by VerifyCertificate and the ledger's
// dispute settlement): `committee` has exactly draws.committee.size() slots, slot i holds the
// i-th draw or one of draws.backups (a backup that replaced a member that timed out; which backup
// took which slot is not checked, because timeouts cannot be proved), and no node holds two
// slots. PERMISSION_DENIED naming the slot otherwise; `bad_slot` (when given) is set to that
// slot, or -1 for a size mismatch. `draws` must come from SelectCommittee with BackupCount(n)
// backups.
absl::Status CheckCommitteeView(const CommitteeDraws& draws, std::span<const Address> committee,
                                int* bad_slot = nullptr);

// Checks the client signature first (kBadClientSignature), then recomputes the committee from
// `context` (committee[i] must be the i-th draw, or one of the BackupCount(n) backups that
// replaced a member that timed out; no node twice), checks all n attestations (domain, epoch,
// request, echelon, signer, signature, one C, C == H(p's of `output`), each p_i, counts and Merkle
// root).
CertificateVerdict VerifyCertificate(const Certificate& certificate, const ConsensusOutput& output,
                                     const CertificateContext& context);

}  // namespace atoma::consensus
