#include "atoma/consensus/attestation.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::consensus {
namespace {

// The signed fields, in digest order (shared by the digest and the binary form).
void EncodeSignedFields(const Attestation& a, Encoder& e) {
  e.U64(a.domain.chain_id)
      .Addr(a.domain.ledger)
      .Hash(a.request_id)
      .Hash(a.echelon_id)
      .Hash(a.commitment)
      .Hash(a.proof)
      .U64(a.prompt_tokens)
      .U64(a.completion_tokens)
      .Hash(a.merkle_root)
      .U64(a.epoch);
}

void EncodeBody(const Attestation& a, Encoder& e) {
  EncodeSignedFields(a, e);
  e.Addr(a.member).Raw(a.signature);
}

absl::StatusOr<Attestation> DecodeBody(Decoder& d) {
  Attestation a;
  ASSIGN_OR_RETURN(a.domain.chain_id, d.U64("chain id"));
  ASSIGN_OR_RETURN(a.domain.ledger, d.Addr("ledger address"));
  ASSIGN_OR_RETURN(a.request_id, d.Hash("request id"));
  ASSIGN_OR_RETURN(a.echelon_id, d.Hash("echelon id"));
  ASSIGN_OR_RETURN(a.commitment, d.Hash("commitment"));
  ASSIGN_OR_RETURN(a.proof, d.Hash("proof"));
  ASSIGN_OR_RETURN(a.prompt_tokens, d.U64("prompt tokens"));
  ASSIGN_OR_RETURN(a.completion_tokens, d.U64("completion tokens"));
  ASSIGN_OR_RETURN(a.merkle_root, d.Hash("merkle root"));
  ASSIGN_OR_RETURN(a.epoch, d.U64("epoch"));
  ASSIGN_OR_RETURN(a.member, d.Addr("member"));
  RETURN_IF_ERROR(d.Raw("signature", a.signature));
  return a;
}

absl::Status ExpectVersion(Decoder& d, std::string_view what) {
  ASSIGN_OR_RETURN(uint8_t version, d.U8(what));
  if (version != kEncodingVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), ": unknown encoding version ", version));
  }
  return absl::OkStatus();
}

CertificateVerdict Fail(CertificateCheck check, int member, std::string reason) {
  return CertificateVerdict{check, member, std::move(reason)};
}

// Fills and signs an attestation whose C and p the caller computed.
Attestation SignAttestation(const Domain& domain, const Hash256& request_id,
                            const Hash256& echelon_id, uint64_t epoch, const Hash256& commitment,
                            const Hash256& proof, const ConsensusOutput& output,
                            uint64_t prompt_tokens, const crypto::PrivateKey& key) {
  Attestation a;
  a.domain = domain;
  a.request_id = request_id;
  a.echelon_id = echelon_id;
  a.commitment = commitment;
  a.proof = proof;
  a.prompt_tokens = prompt_tokens;
  a.completion_tokens = output.token_ids.size();
  a.merkle_root = OutputMerkleRoot(output.token_ids);
  a.epoch = epoch;
  a.member = key.address();
  a.signature = key.Sign(AttestationDigest(a));
  return a;
}

}  // namespace

Hash256 ClientRequestDigest(const Domain& domain, const Hash256& request_id) {
  Encoder e;
  e.U64(domain.chain_id);
  e.Addr(domain.ledger);
  e.Hash(request_id);
  return TaggedHash("atoma/client-request", e);
}

absl::Status VerifyClientSignature(const Domain& domain, const ConsensusRequest& request,
                                   const crypto::Signature& client_signature) {
  auto signer =
      crypto::RecoverAddress(ClientRequestDigest(domain, RequestId(request)), client_signature);
  if (!signer.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("client signature is invalid: ", signer.status().message()));
  }
  if (*signer != request.client) {
    // Also what a signature for another domain or another request looks like: it recovers to
    // some unrelated address.
    return absl::PermissionDeniedError(
        absl::StrCat("client signature recovers to ", crypto::AddressToString(*signer),
                     ", not to the request's client ", crypto::AddressToString(request.client),
                     " (forged, or signed for another request or ledger)"));
  }
  return absl::OkStatus();
}

Hash256 AttestationDigest(const Attestation& attestation) {
  Encoder e;
  EncodeSignedFields(attestation, e);
  return TaggedHash("atoma/attestation", e);
}

absl::StatusOr<Attestation> MakeAttestation(const Domain& domain, const Hash256& request_id,
                                            const Hash256& echelon_id, uint64_t epoch,
                                            std::span<const Address> committee,
                                            const ConsensusOutput& output, uint64_t prompt_tokens,
                                            const crypto::PrivateKey& key) {
  const auto it = std::find(committee.begin(), committee.end(), key.address());
  if (it == committee.end()) {
    return absl::InvalidArgumentError("the signing key's address is not in the committee");
  }
  const std::vector<Hash256> proofs = OutputProofs(request_id, output, committee);
  return SignAttestation(domain, request_id, echelon_id, epoch, Commitment(proofs),
                         proofs[static_cast<size_t>(it - committee.begin())], output, prompt_tokens,
                         key);
}

absl::StatusOr<Attestation> MakeRefereeAttestation(const Domain& domain, const Hash256& request_id,
                                                   const Hash256& echelon_id, uint64_t epoch,
                                                   std::span<const Address> committee,
                                                   const ConsensusOutput& output,
                                                   uint64_t prompt_tokens,
                                                   const crypto::PrivateKey& key) {
  if (std::find(committee.begin(), committee.end(), key.address()) != committee.end()) {
    return absl::InvalidArgumentError("a committee member cannot be a referee of its committee");
  }
  return SignAttestation(domain, request_id, echelon_id, epoch,
                         Commitment(OutputProofs(request_id, output, committee)),
                         OutputProof(request_id, output, key.address()), output, prompt_tokens,
                         key);
}

absl::Status CheckCommitteeView(const CommitteeDraws& draws, std::span<const Address> committee,
                                int* bad_slot) {
  if (bad_slot != nullptr) *bad_slot = -1;
  const size_t n = draws.committee.size();
  if (committee.size() != n) {
    return absl::PermissionDeniedError(
        absl::StrCat("the committee has ", committee.size(), " members; the draw has ", n));
  }
  for (size_t i = 0; i < n; ++i) {
    const Address& member = committee[i];
    const auto earlier = committee.begin() + static_cast<ptrdiff_t>(i);
    if (draws.committee[i] != member &&
        std::find(draws.backups.begin(), draws.backups.end(), member) == draws.backups.end()) {
      if (bad_slot != nullptr) *bad_slot = static_cast<int>(i);
      return absl::PermissionDeniedError(absl::StrCat(
          "member ", i, " is ", crypto::AddressToString(member), ": neither the draw (",
          crypto::AddressToString(draws.committee[i]), ") nor a backup"));
    }
    if (std::find(committee.begin(), earlier, member) != earlier) {
      if (bad_slot != nullptr) *bad_slot = static_cast<int>(i);
      return absl::PermissionDeniedError(absl::StrCat("member ", i, " is ",
                                                      crypto::AddressToString(member),
                                                      ", who already holds an earlier slot"));
    }
  }
  return absl::OkStatus();
}

bool SameOutputClaim(const Attestation& a, const Attestation& b) {
  // Blank the two fields a view update may change and compare the rest with operator==, so a
  // field added to Attestation later counts as part of the claim without touching this.
  Attestation x = a;
  Attestation y = b;
  x.commitment = y.commitment = Hash256{};
  x.signature = y.signature = crypto::Signature{};
  return x == y;
}

absl::Status VerifyAttestation(const Attestation& attestation, const Domain& domain,
                               uint64_t epoch) {
  if (attestation.domain != domain) {
    return absl::PermissionDeniedError("attestation is for another chain or ledger");
  }
  if (attestation.epoch != epoch) {
    return absl::PermissionDeniedError(
        absl::StrCat("attestation is for epoch ", attestation.epoch, ", not ", epoch));
  }
  auto signer = crypto::RecoverAddress(AttestationDigest(attestation), attestation.signature);
  if (!signer.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("attestation signature is invalid: ", signer.status().message()));
  }
  if (*signer != attestation.member) {
    return absl::PermissionDeniedError(absl::StrCat("attestation is signed by ",
                                                    crypto::AddressToString(*signer), ", not by ",
                                                    crypto::AddressToString(attestation.member)));
  }
  return absl::OkStatus();
}

std::vector<uint8_t> EncodeAttestation(const Attestation& attestation) {
  Encoder e;
  e.Raw(std::vector<uint8_t>{kEncodingVersion});
  EncodeBody(attestation, e);
  return e.Take();
}

absl::StatusOr<Attestation> DecodeAttestation(std::span<const uint8_t> bytes) {
  if (bytes.size() != kAttestationEncodedSize) {
    return absl::InvalidArgumentError(absl::StrCat("attestation must be ", kAttestationEncodedSize,
                                                   " bytes, got ", bytes.size()));
  }
  Decoder d(bytes);
  RETURN_IF_ERROR(ExpectVersion(d, "attestation"));
  ASSIGN_OR_RETURN(Attestation a, DecodeBody(d));
  RETURN_IF_ERROR(d.ExpectEnd("attestation"));
  return a;
}

std::vector<uint8_t> EncodeCertificate(const Certificate& c) {
  Encoder e;
  e.Raw(std::vector<uint8_t>{kEncodingVersion});
  EncodeRequest(c.request, e);
  e.Raw(c.client_signature);
  e.AddrList(c.committee).Hash(c.commitment).U32(static_cast<uint32_t>(c.attestations.size()));
  for (const Attestation& a : c.attestations) EncodeBody(a, e);
  return e.Take();
}

absl::StatusOr<Certificate> DecodeCertificate(std::span<const uint8_t> bytes) {
  Decoder d(bytes);
  RETURN_IF_ERROR(ExpectVersion(d, "certificate"));
  Certificate c;
  ASSIGN_OR_RETURN(c.request, DecodeRequest(d));
  RETURN_IF_ERROR(d.Raw("client signature", c.client_signature));
  ASSIGN_OR_RETURN(uint32_t members, d.Count("committee", kMaxCommitteeSize));
  for (uint32_t i = 0; i < members; ++i) {
    ASSIGN_OR_RETURN(Address a, d.Addr("committee member"));
    c.committee.push_back(a);
  }
  ASSIGN_OR_RETURN(c.commitment, d.Hash("commitment"));
  ASSIGN_OR_RETURN(uint32_t count, d.Count("attestations", kMaxCommitteeSize));
  for (uint32_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(Attestation a, DecodeBody(d));
    c.attestations.push_back(a);
  }
  RETURN_IF_ERROR(d.ExpectEnd("certificate"));
  return c;
}

CertificateVerdict VerifyCertificate(const Certificate& cert, const ConsensusOutput& output,
                                     const CertificateContext& ctx) {
  // First: without the client's authorization nothing else about the certificate matters (it
  // could be a request invented in the client's name).
  if (absl::Status s = VerifyClientSignature(ctx.domain, cert.request, cert.client_signature);
      !s.ok()) {
    return Fail(CertificateCheck::kBadClientSignature, -1, std::string(s.message()));
  }
  if (cert.request.epoch != ctx.epoch) {
    return Fail(CertificateCheck::kWrongEpoch, -1,
                absl::StrCat("request is for epoch ", cert.request.epoch, ", not ", ctx.epoch));
  }
  const uint64_t n = CommitteeSize(cert.request.security);
  if (n == 0 || cert.committee.size() != n || cert.attestations.size() != n) {
    return Fail(
        CertificateCheck::kMalformed, -1,
        absl::StrCat("request wants ", n, " members; certificate has ", cert.committee.size(),
                     " members and ", cert.attestations.size(), " attestations"));
  }
  const Hash256 request_id = RequestId(cert.request);
  auto draws = SelectCommittee(ctx.epoch_seed, request_id, ctx.registry, n, BackupCount(n), 0);
  if (!draws.ok()) {
    return Fail(
        CertificateCheck::kWrongCommittee, -1,
        absl::StrCat("cannot draw a committee from the registry: ", draws.status().message()));
  }
  // The committee list itself records which slots backups took (CheckCommitteeView).
  int bad_slot = -1;
  if (absl::Status view = CheckCommitteeView(*draws, cert.committee, &bad_slot); !view.ok()) {
    return Fail(CertificateCheck::kWrongCommittee, bad_slot, std::string(view.message()));
  }
  for (size_t i = 0; i < n; ++i) {
    const Attestation& a = cert.attestations[i];
    const int m = static_cast<int>(i);
    if (a.domain != ctx.domain) {
      return Fail(CertificateCheck::kWrongDomain, m, "attestation is for another chain or ledger");
    }
    if (a.epoch != ctx.epoch) {
      return Fail(CertificateCheck::kWrongEpoch, m,
                  absl::StrCat("attestation is for epoch ", a.epoch));
    }
    if (a.request_id != request_id) {
      return Fail(CertificateCheck::kWrongRequest, m, "attestation is about another request");
    }
    if (a.echelon_id != ctx.echelon_id) {
      return Fail(CertificateCheck::kWrongEchelon, m, "attestation names another echelon");
    }
    if (a.member != cert.committee[i]) {
      return Fail(CertificateCheck::kWrongCommittee, m,
                  "attestation's member is not the committee member at its position");
    }
    if (!crypto::VerifySignature(AttestationDigest(a), a.signature, a.member)) {
      return Fail(
          CertificateCheck::kBadSignature, m,
          absl::StrCat("signature does not recover to ", crypto::AddressToString(a.member)));
    }
    if (a.commitment != cert.commitment) {
      return Fail(CertificateCheck::kConflictingCommitments, m,
                  "attestation commits to a different C than the certificate");
    }
  }
  const std::vector<Hash256> expected = OutputProofs(request_id, output, cert.committee);
  if (Commitment(expected) != cert.commitment) {
    return Fail(CertificateCheck::kWrongOutput, -1, "C is not the commitment to this output");
  }
  const Hash256 merkle_root = OutputMerkleRoot(output.token_ids);
  for (size_t i = 0; i < n; ++i) {
    const Attestation& a = cert.attestations[i];
    const int m = static_cast<int>(i);
    if (a.proof != expected[i]) {
      return Fail(CertificateCheck::kLazyMember, m,
                  "member's proof p_i does not match the output: it signed C without computing O");
    }
    if (a.prompt_tokens != cert.request.prompt_token_ids.size() ||
        a.completion_tokens != output.token_ids.size() || a.merkle_root != merkle_root) {
      return Fail(CertificateCheck::kWrongMetadata, m,
                  "token counts or Merkle root do not match the output");
    }
  }
  return CertificateVerdict{};
}

}  // namespace atoma::consensus
