#include "atoma/consensus/xv.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::consensus {
namespace {

CertificateVerdict Fail(CertificateCheck check, int member, std::string reason) {
  return CertificateVerdict{check, member, std::move(reason)};
}

// An attestation's body is its encoding without the leading version byte (attestation.h), as in
// the sampling certificate.
void AppendAttestationBody(const Attestation& a, Encoder& e) {
  const std::vector<uint8_t> full = EncodeAttestation(a);
  e.Raw(std::span<const uint8_t>(full).subspan(1));
}

absl::StatusOr<Attestation> ReadAttestationBody(Decoder& d, std::string_view what) {
  std::array<uint8_t, kAttestationEncodedSize> full{};
  full[0] = kEncodingVersion;
  RETURN_IF_ERROR(d.Raw(what, std::span<uint8_t>(full).subspan(1)));
  return DecodeAttestation(full);
}

}  // namespace

Hash256 XvSaltHash(const XvSalt& salt) { return TaggedHash("atoma/xv-salt", Encoder().Hash(salt)); }

uint64_t XvCoin(const XvSalt& salt, const Attestation& executor) {
  const Hash256 h = TaggedHash("atoma/xv", Encoder().Hash(salt).Hash(AttestationDigest(executor)));
  return Mod(Uint256::FromBigEndian(h), Uint256(kXvCoinScale)).value().Low64();
}

bool XvCheckDrawn(const XvSalt& salt, const Attestation& executor, uint64_t p_micro) {
  return XvCoin(salt, executor) < p_micro;
}

XvDraws SplitXvDraws(const CommitteeDraws& draws, uint64_t k) {
  const size_t v = static_cast<size_t>(std::min<uint64_t>(k, draws.referees.size()));
  XvDraws out;
  out.validators.assign(draws.referees.begin(), draws.referees.begin() + static_cast<ptrdiff_t>(v));
  out.referees.assign(draws.referees.begin() + static_cast<ptrdiff_t>(v), draws.referees.end());
  return out;
}

std::vector<uint8_t> EncodeXvCertificate(const XvCertificate& c) {
  Encoder e;
  e.Raw(std::vector<uint8_t>{kXvEncodingVersion});
  const std::vector<uint8_t> base = EncodeCertificate(c.base);
  e.Raw(std::span<const uint8_t>(base).subspan(1));
  e.U32(c.salt.has_value() ? 1 : 0);
  if (c.salt.has_value()) e.Hash(*c.salt);
  e.U32(static_cast<uint32_t>(c.validators.size()));
  for (const Attestation& a : c.validators) AppendAttestationBody(a, e);
  return e.Take();
}

absl::StatusOr<XvCertificate> DecodeXvCertificate(std::span<const uint8_t> bytes) {
  Decoder d(bytes);
  ASSIGN_OR_RETURN(uint8_t version, d.U8("cross-validation certificate"));
  if (version != kXvEncodingVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("cross-validation certificate: unknown encoding version ", version));
  }
  // The base has the sampling certificate's layout (attestation.cc); it is decoded field by field
  // here because DecodeCertificate insists on the end of input.
  XvCertificate c;
  ASSIGN_OR_RETURN(c.base.request, DecodeRequest(d));
  if (c.base.request.security.mode != SecurityMode::kCrossValidation) {
    return absl::InvalidArgumentError(
        "cross-validation certificate: the request's security is not cross_validation");
  }
  RETURN_IF_ERROR(d.Raw("client signature", c.base.client_signature));
  ASSIGN_OR_RETURN(uint32_t members, d.Count("committee", kMaxCommitteeSize));
  for (uint32_t i = 0; i < members; ++i) {
    ASSIGN_OR_RETURN(Address a, d.Addr("committee member"));
    c.base.committee.push_back(a);
  }
  ASSIGN_OR_RETURN(c.base.commitment, d.Hash("commitment"));
  ASSIGN_OR_RETURN(uint32_t attestations, d.Count("attestations", kMaxCommitteeSize));
  for (uint32_t i = 0; i < attestations; ++i) {
    ASSIGN_OR_RETURN(Attestation a, ReadAttestationBody(d, "attestation"));
    c.base.attestations.push_back(a);
  }
  ASSIGN_OR_RETURN(uint32_t salts, d.Count("salt", 1));
  if (salts == 1) {
    ASSIGN_OR_RETURN(c.salt, d.Hash("salt"));
  }
  ASSIGN_OR_RETURN(uint32_t validators, d.Count("validators", kMaxCommitteeSize));
  for (uint32_t i = 0; i < validators; ++i) {
    ASSIGN_OR_RETURN(Attestation a, ReadAttestationBody(d, "validator attestation"));
    c.validators.push_back(a);
  }
  RETURN_IF_ERROR(d.ExpectEnd("cross-validation certificate"));
  return c;
}

CertificateVerdict VerifyXvCertificate(const XvCertificate& cert, const ConsensusOutput& output,
                                       const CertificateContext& ctx) {
  const ConsensusRequest& request = cert.base.request;
  if (request.security.mode != SecurityMode::kCrossValidation) {
    return Fail(CertificateCheck::kMalformed, -1, "the request's security is not cross_validation");
  }
  // The executor's part is a certificate of a committee of one (CommitteeSize is 1 for
  // cross_validation), so the sampling verifier checks it completely.
  if (CertificateVerdict base = VerifyCertificate(cert.base, output, ctx); !base.ok()) return base;
  if (!cert.salt.has_value()) {
    // Unrevealed: no coin was ever computed, so there is nothing validators could have attested.
    if (!cert.validators.empty()) {
      return Fail(CertificateCheck::kMalformed, -1,
                  "an unrevealed certificate carries validator attestations");
    }
    return CertificateVerdict{};
  }
  if (XvSaltHash(*cert.salt) != request.security.salt_hash) {
    return Fail(CertificateCheck::kBadSalt, -1,
                "the salt does not hash to the request's salt_hash");
  }
  const Attestation& executor = cert.base.attestations[0];
  if (!XvCheckDrawn(*cert.salt, executor, request.security.p_micro)) {
    // Extra attestations are rejected rather than ignored so that one outcome has one encoding.
    if (!cert.validators.empty()) {
      return Fail(CertificateCheck::kMalformed, -1,
                  absl::StrCat("the coin drew no check, yet the certificate carries ",
                               cert.validators.size(), " validator attestations"));
    }
    return CertificateVerdict{};
  }
  const uint64_t k = request.security.k;
  const Hash256 request_id = RequestId(request);
  auto draws = SelectCommittee(ctx.epoch_seed, request_id, ctx.registry, 1, BackupCount(1),
                               XvRefereeDraws(k));
  if (!draws.ok()) {  // VerifyCertificate drew the same committee, so this cannot happen
    return Fail(CertificateCheck::kWrongCommittee, -1,
                absl::StrCat("cannot draw from the registry: ", draws.status().message()));
  }
  const XvDraws roles = SplitXvDraws(*draws, k);
  if (roles.validators.size() < k) {
    return Fail(CertificateCheck::kMissingValidators, -1,
                absl::StrCat("the coin drew a check by ", k, " validators; the echelon has only ",
                             roles.validators.size(), " to draw"));
  }
  if (cert.validators.size() < k) {
    return Fail(CertificateCheck::kMissingValidators, -1,
                absl::StrCat("the coin drew a check by ", k, " validators; the certificate has ",
                             cert.validators.size()));
  }
  if (cert.validators.size() > k) {
    return Fail(CertificateCheck::kMalformed, -1,
                absl::StrCat("the request wants ", k, " validators; the certificate has ",
                             cert.validators.size()));
  }
  const Hash256 merkle_root = OutputMerkleRoot(output.token_ids);
  for (size_t i = 0; i < k; ++i) {
    const Attestation& a = cert.validators[i];
    const int m = static_cast<int>(i + 1);
    // Draw order makes the encoding canonical and rules out duplicates: the draws are distinct.
    if (a.member != roles.validators[i]) {
      return Fail(
          CertificateCheck::kWrongCommittee, m,
          absl::StrCat("validator ", i, " is ", crypto::AddressToString(a.member),
                       ", not the validator draw ", crypto::AddressToString(roles.validators[i])));
    }
    if (a.domain != ctx.domain) {
      return Fail(CertificateCheck::kWrongDomain, m,
                  "validator attests for another chain or ledger");
    }
    if (a.epoch != ctx.epoch) {
      return Fail(CertificateCheck::kWrongEpoch, m,
                  absl::StrCat("validator attests for epoch ", a.epoch));
    }
    if (a.request_id != request_id) {
      return Fail(CertificateCheck::kWrongRequest, m, "validator attests another request");
    }
    if (a.echelon_id != ctx.echelon_id) {
      return Fail(CertificateCheck::kWrongEchelon, m, "validator names another echelon");
    }
    if (!crypto::VerifySignature(AttestationDigest(a), a.signature, a.member)) {
      return Fail(
          CertificateCheck::kBadSignature, m,
          absl::StrCat("signature does not recover to ", crypto::AddressToString(a.member)));
    }
    if (a.commitment != cert.base.commitment) {
      return Fail(CertificateCheck::kConflictingCommitments, m,
                  "validator attests another C than the executor");
    }
    // A validator that copied the executor's C without executing cannot produce its own p.
    if (a.proof != OutputProof(request_id, output, a.member)) {
      return Fail(CertificateCheck::kLazyMember, m,
                  "validator's proof does not match the output: it signed C without computing O");
    }
    if (a.prompt_tokens != request.prompt_token_ids.size() ||
        a.completion_tokens != output.token_ids.size() || a.merkle_root != merkle_root) {
      return Fail(CertificateCheck::kWrongMetadata, m,
                  "validator's token counts or Merkle root do not match the output");
    }
  }
  return CertificateVerdict{};
}

}  // namespace atoma::consensus
