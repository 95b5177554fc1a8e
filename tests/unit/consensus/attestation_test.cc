#include "atoma/consensus/attestation.h"

#include <gtest/gtest.h>

#include "testing/keys.h"
#include "vectors.h"

namespace atoma::consensus {
namespace {

using testing::Fixed;
using testing::Hex;

TEST(AttestationTest, DigestMatchesIndependentVectors) {
  const auto vectors = testing::LoadVectors("request.json").at("attestation_digests");
  ASSERT_GE(vectors.size(), 3u);
  for (const auto& v : vectors) {
    Attestation a;
    a.domain = {v.at("chain_id").get<uint64_t>(), Fixed<20>(v.at("ledger"))};
    a.request_id = Fixed<32>(v.at("request_id"));
    a.echelon_id = Fixed<32>(v.at("echelon_id"));
    a.commitment = Fixed<32>(v.at("commitment"));
    a.proof = Fixed<32>(v.at("proof"));
    a.prompt_tokens = v.at("prompt_tokens");
    a.completion_tokens = v.at("completion_tokens");
    a.merkle_root = Fixed<32>(v.at("merkle_root"));
    a.epoch = v.at("epoch");
    a.member[0] = 0xaa;  // not signed: must not change the digest
    EXPECT_EQ(Hex(AttestationDigest(a)), v.at("digest").get<std::string>());
  }
}

// A small network: 6 staked nodes, a request with a committee of 3, and the honest certificate.
class CertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 6; ++i) {
      std::string hex(64, '0');
      hex[63] = static_cast<char>('1' + i);
      hex[0] = 'a';
      keys_.push_back(crypto::PrivateKey::FromHex(hex).value());
      ctx_.registry.push_back({keys_.back().address(), Uint256(100 + 50 * i)});
    }
    ctx_.domain = {31337, Fixed<20>("5fbdb2315678afecb367f032d93f642f64180aa3")};
    ctx_.epoch = 12;
    ctx_.epoch_seed[3] = 0x77;
    ctx_.echelon_id[0] = 0xec;
    request_.prompt_token_ids = {1, 15043, 3186};
    request_.max_tokens = 40;
    request_.security = {SecurityMode::kSampling, 3, 0, 0, {}};
    request_.max_fee = Uint256(1000);
    request_.epoch = ctx_.epoch;
    request_.client = client_key_.address();
    output_.token_ids.resize(40);
    for (uint32_t i = 0; i < 40; ++i) output_.token_ids[i] = 100 + i * 3;
    output_.finish_reason = FinishReason::kLength;
    request_id_ = RequestId(request_);
    committee_ =
        SelectCommittee(ctx_.epoch_seed, request_id_, ctx_.registry, 3, 0, 0).value().committee;
    cert_ = Build(output_, ctx_.domain);
    outsider_ = NonMemberKey();
  }

  const crypto::PrivateKey& KeyOf(const Address& a) const { return test::KeyFor(keys_, a); }

  const crypto::PrivateKey* NonMemberKey() const {
    for (const auto& k : keys_) {
      if (std::find(committee_.begin(), committee_.end(), k.address()) == committee_.end()) {
        return &k;
      }
    }
    return nullptr;
  }

  // The client's authorization of `request` for `domain`.
  crypto::Signature ClientSign(const ConsensusRequest& request, const Domain& domain) const {
    return client_key_.Sign(ClientRequestDigest(domain, RequestId(request)));
  }

  // Attestations for `domain`; the client's authorization is always for the verifier's domain,
  // so that tests of the attestation checks get past the client check.
  Certificate Build(const ConsensusOutput& output, const Domain& domain) const {
    Certificate c;
    c.request = request_;
    c.client_signature = ClientSign(request_, ctx_.domain);
    c.committee = committee_;
    for (const Address& m : committee_) {
      c.attestations.push_back(MakeAttestation(domain, request_id_, ctx_.echelon_id, ctx_.epoch,
                                               committee_, output, request_.prompt_token_ids.size(),
                                               KeyOf(m))
                                   .value());
    }
    c.commitment = c.attestations[0].commitment;
    return c;
  }

  void Resign(Attestation& a) const { a.signature = KeyOf(a.member).Sign(AttestationDigest(a)); }

  const crypto::PrivateKey client_key_ =
      crypto::PrivateKey::FromHex(std::string(62, '0') + "c1").value();
  std::vector<crypto::PrivateKey> keys_;
  CertificateContext ctx_;
  ConsensusRequest request_;
  ConsensusOutput output_;
  Hash256 request_id_{};
  std::vector<Address> committee_;
  Certificate cert_;
  const crypto::PrivateKey* outsider_ = nullptr;
};

TEST_F(CertificateTest, HonestCertificatePasses) {
  const auto verdict = VerifyCertificate(cert_, output_, ctx_);
  EXPECT_TRUE(verdict.ok()) << verdict.reason;
  ASSERT_EQ(committee_.size(), 3u);
  ASSERT_NE(outsider_, nullptr);
  for (const auto& a : cert_.attestations) {
    EXPECT_TRUE(VerifyAttestation(a, ctx_.domain, ctx_.epoch).ok());
  }
}

TEST_F(CertificateTest, ForgedSignatureFails) {
  Certificate c = cert_;
  // An outsider signs member 1's attestation.
  c.attestations[1].signature = outsider_->Sign(AttestationDigest(c.attestations[1]));
  auto v = VerifyCertificate(c, output_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kBadSignature);
  EXPECT_EQ(v.member, 1);
  // A flipped bit in r.
  c = cert_;
  c.attestations[2].signature[5] ^= 1;
  v = VerifyCertificate(c, output_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kBadSignature);
  EXPECT_EQ(v.member, 2);
  // A changed signed field without re-signing.
  c = cert_;
  c.attestations[0].prompt_tokens += 1;
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kBadSignature);
}

TEST_F(CertificateTest, WrongCommitteeFails) {
  // An outsider replaces member 0 and signs honestly: not the drawn committee.
  Certificate c = cert_;
  c.committee[0] = outsider_->address();
  auto v = VerifyCertificate(c, output_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee);
  EXPECT_EQ(v.member, 0);
  // Same members in another order.
  c = cert_;
  std::swap(c.committee[0], c.committee[1]);
  std::swap(c.attestations[0], c.attestations[1]);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kWrongCommittee);
  // A registry snapshot in which member 0 has no stake cannot draw this committee.
  CertificateContext other = ctx_;
  for (auto& cand : other.registry) {
    if (cand.address == committee_[0]) cand.stake = Uint256();
  }
  EXPECT_EQ(VerifyCertificate(cert_, output_, other).check, CertificateCheck::kWrongCommittee);
  // Attestations in the wrong slots.
  c = cert_;
  std::swap(c.attestations[0], c.attestations[2]);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kWrongCommittee);
  // Fewer attestations than members.
  c = cert_;
  c.attestations.pop_back();
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kMalformed);
}

TEST_F(CertificateTest, LazyMemberIsCaught) {
  // Member 2 copies C from member 0 and, unable to compute its own p_2, reuses p_0.
  Certificate c = cert_;
  Attestation& lazy = c.attestations[2];
  lazy.proof = c.attestations[0].proof;
  Resign(lazy);
  ASSERT_TRUE(VerifyAttestation(lazy, ctx_.domain, ctx_.epoch).ok());  // signature is fine
  auto v = VerifyCertificate(c, output_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kLazyMember);
  EXPECT_EQ(v.member, 2);
  // Or invents one.
  lazy.proof[0] ^= 0xff;
  Resign(lazy);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kLazyMember);
}

TEST_F(CertificateTest, WrongOutputFails) {
  ConsensusOutput other = output_;
  other.token_ids[17] += 1;
  EXPECT_EQ(VerifyCertificate(cert_, other, ctx_).check, CertificateCheck::kWrongOutput);
  other = output_;
  other.finish_reason = FinishReason::kStop;
  EXPECT_EQ(VerifyCertificate(cert_, other, ctx_).check, CertificateCheck::kWrongOutput);
  other = output_;
  other.token_ids.pop_back();
  EXPECT_EQ(VerifyCertificate(cert_, other, ctx_).check, CertificateCheck::kWrongOutput);
  // A whole committee that agreed on another output is consistent but not about this output.
  EXPECT_EQ(VerifyCertificate(Build(other, ctx_.domain), output_, ctx_).check,
            CertificateCheck::kWrongOutput);
}

TEST_F(CertificateTest, DisagreeingMemberFails) {
  ConsensusOutput other = output_;
  other.token_ids[0] = 7;
  Certificate c = cert_;
  c.attestations[1] = Build(other, ctx_.domain).attestations[1];
  auto v = VerifyCertificate(c, output_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kConflictingCommitments);
  EXPECT_EQ(v.member, 1);
}

TEST_F(CertificateTest, OtherDomainOrEpochFails) {
  Domain other = ctx_.domain;
  other.chain_id = 1;
  EXPECT_EQ(VerifyCertificate(Build(output_, other), output_, ctx_).check,
            CertificateCheck::kWrongDomain);
  other = ctx_.domain;
  other.ledger[0] ^= 1;
  EXPECT_EQ(VerifyCertificate(Build(output_, other), output_, ctx_).check,
            CertificateCheck::kWrongDomain);
  // A certificate replayed in another epoch.
  CertificateContext later = ctx_;
  later.epoch = ctx_.epoch + 1;
  EXPECT_EQ(VerifyCertificate(cert_, output_, later).check, CertificateCheck::kWrongEpoch);
  // An attestation from another epoch inside an otherwise current certificate.
  Certificate c = cert_;
  c.attestations[1].epoch = 11;
  Resign(c.attestations[1]);
  auto v = VerifyCertificate(c, output_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kWrongEpoch);
  EXPECT_EQ(v.member, 1);
  // Relabelling the domain without re-signing breaks the signature instead.
  c = cert_;
  c.attestations[0].domain.chain_id = 1;
  CertificateContext relabelled = ctx_;
  relabelled.domain.chain_id = 1;
  c.attestations[1].domain.chain_id = 1;
  c.attestations[2].domain.chain_id = 1;
  c.client_signature = ClientSign(request_, relabelled.domain);
  EXPECT_EQ(VerifyCertificate(c, output_, relabelled).check, CertificateCheck::kBadSignature);
}

TEST_F(CertificateTest, OtherRequestEchelonAndMetadataFail) {
  Certificate c = cert_;
  c.attestations[0].request_id[0] ^= 1;
  Resign(c.attestations[0]);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kWrongRequest);
  c = cert_;
  c.attestations[2].echelon_id[0] ^= 1;
  Resign(c.attestations[2]);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kWrongEchelon);
  c = cert_;
  c.attestations[1].completion_tokens = 3;
  Resign(c.attestations[1]);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kWrongMetadata);
  c = cert_;
  c.attestations[1].merkle_root[0] ^= 1;
  Resign(c.attestations[1]);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kWrongMetadata);
  // The request itself edited after the fact: the client never authorized it.
  c = cert_;
  c.request.max_fee = Uint256(2000);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kBadClientSignature);
  // Even with the client's signature for the edited request: another request id, another draw.
  c.client_signature = ClientSign(c.request, ctx_.domain);
  const auto v = VerifyCertificate(c, output_, ctx_);
  EXPECT_TRUE(v.check == CertificateCheck::kWrongCommittee ||
              v.check == CertificateCheck::kWrongRequest)
      << v.reason;
}

TEST_F(CertificateTest, ClientSignatureIsRequired) {
  ASSERT_TRUE(VerifyClientSignature(ctx_.domain, request_, cert_.client_signature).ok());
  auto expect_bad = [&](const Certificate& c, const char* what) {
    const auto v = VerifyCertificate(c, output_, ctx_);
    EXPECT_EQ(v.check, CertificateCheck::kBadClientSignature) << what << ": " << v.reason;
    EXPECT_EQ(v.member, -1) << what;
    EXPECT_EQ(VerifyClientSignature(ctx_.domain, c.request, c.client_signature).code(),
              absl::StatusCode::kPermissionDenied)
        << what;
  };
  // No signature at all (what certificates looked like before the field existed).
  Certificate c = cert_;
  c.client_signature = {};
  expect_bad(c, "missing");
  // Forged: a member (or anyone) signs in the client's name.
  c = cert_;
  c.client_signature = keys_[0].Sign(ClientRequestDigest(ctx_.domain, request_id_));
  expect_bad(c, "forged");
  // A flipped bit.
  c = cert_;
  c.client_signature[7] ^= 1;
  expect_bad(c, "flipped bit");
  // The client's real signature, but for another ledger or chain.
  Domain other = ctx_.domain;
  other.ledger[0] ^= 1;
  c = cert_;
  c.client_signature = ClientSign(request_, other);
  expect_bad(c, "other ledger");
  other = ctx_.domain;
  other.chain_id = 1;
  c.client_signature = ClientSign(request_, other);
  expect_bad(c, "other chain");
  // The client's real signature for another of its requests.
  ConsensusRequest another = request_;
  another.client_nonce += 1;
  c = cert_;
  c.client_signature = ClientSign(another, ctx_.domain);
  expect_bad(c, "other request");
  // A request re-addressed to another client, signed by the original client.
  c = cert_;
  c.request.client = keys_[0].address();
  expect_bad(c, "other client");
  // The client check comes before the committee checks: a certificate that is wrong in both
  // ways reports the client signature.
  c = cert_;
  c.client_signature = {};
  std::swap(c.committee[0], c.committee[1]);
  EXPECT_EQ(VerifyCertificate(c, output_, ctx_).check, CertificateCheck::kBadClientSignature);
}

TEST_F(CertificateTest, SameOutputClaimIgnoresOnlyTheCommitmentAndSignature) {
  const Attestation& a = cert_.attestations[0];
  // The same member re-attests the same output after member 2 was replaced by an outsider: a
  // new C, a new signature, nothing else changes (a view update).
  std::vector<Address> view = committee_;
  view[2] = outsider_->address();
  const Attestation update = MakeAttestation(ctx_.domain, request_id_, ctx_.echelon_id, ctx_.epoch,
                                             view, output_, 3, KeyOf(a.member))
                                 .value();
  ASSERT_NE(update.commitment, a.commitment);
  ASSERT_NE(update.signature, a.signature);
  EXPECT_TRUE(SameOutputClaim(a, update));
  EXPECT_TRUE(SameOutputClaim(update, a));
  EXPECT_TRUE(SameOutputClaim(a, a));
  // Any other field is part of the claim.
  auto differs = [&](auto mutate, const char* what) {
    Attestation b = update;
    mutate(b);
    Resign(b);
    EXPECT_FALSE(SameOutputClaim(a, b)) << what;
  };
  differs([](Attestation& b) { b.proof[0] ^= 1; }, "p_i");
  differs([](Attestation& b) { b.prompt_tokens += 1; }, "prompt tokens");
  differs([](Attestation& b) { b.completion_tokens += 1; }, "completion tokens");
  differs([](Attestation& b) { b.merkle_root[0] ^= 1; }, "merkle root");
  differs([](Attestation& b) { b.echelon_id[0] ^= 1; }, "echelon");
  differs([](Attestation& b) { b.epoch += 1; }, "epoch");
  differs([](Attestation& b) { b.request_id[0] ^= 1; }, "request");
  differs([](Attestation& b) { b.domain.chain_id += 1; }, "domain");
  Attestation other_member = a;
  other_member.member = outsider_->address();
  EXPECT_FALSE(SameOutputClaim(a, other_member));
  // Another output is another claim, whatever the committee.
  ConsensusOutput other = output_;
  other.token_ids[3] += 1;
  EXPECT_FALSE(SameOutputClaim(a, Build(other, ctx_.domain).attestations[0]));
}

TEST_F(CertificateTest, VerifyAttestationChecks) {
  const Attestation& a = cert_.attestations[0];
  EXPECT_TRUE(VerifyAttestation(a, ctx_.domain, ctx_.epoch).ok());
  Domain other = ctx_.domain;
  other.chain_id = 5;
  EXPECT_EQ(VerifyAttestation(a, other, ctx_.epoch).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(VerifyAttestation(a, ctx_.domain, 13).code(), absl::StatusCode::kPermissionDenied);
  Attestation claimed = a;
  claimed.member = outsider_->address();
  EXPECT_EQ(VerifyAttestation(claimed, ctx_.domain, ctx_.epoch).code(),
            absl::StatusCode::kPermissionDenied);
  Attestation broken = a;
  broken.signature[64] = 30;  // bad v
  EXPECT_EQ(VerifyAttestation(broken, ctx_.domain, ctx_.epoch).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(MakeAttestation(ctx_.domain, request_id_, ctx_.echelon_id, ctx_.epoch, committee_,
                            output_, 3, *outsider_)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CertificateTest, AttestationEncodingRoundTripAndStrictness) {
  const Attestation& a = cert_.attestations[1];
  const std::vector<uint8_t> bytes = EncodeAttestation(a);
  ASSERT_EQ(bytes.size(), kAttestationEncodedSize);
  EXPECT_EQ(bytes.size(), 298u);
  EXPECT_EQ(DecodeAttestation(bytes).value(), a);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeAttestation(std::span(bytes).first(n)).ok()) << n;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(DecodeAttestation(longer).ok());
  std::vector<uint8_t> version = bytes;
  version[0] = 2;
  EXPECT_FALSE(DecodeAttestation(version).ok());
}

TEST_F(CertificateTest, CertificateEncodingRoundTripAndStrictness) {
  const std::vector<uint8_t> bytes = EncodeCertificate(cert_);
  auto decoded = DecodeCertificate(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, cert_);
  EXPECT_EQ(decoded->client_signature, cert_.client_signature);
  EXPECT_TRUE(VerifyCertificate(*decoded, output_, ctx_).ok());
  // The layout: the 65 signature bytes follow the request's encoding.
  Encoder request_bytes;
  EncodeRequest(cert_.request, request_bytes);
  const std::vector<uint8_t> req = request_bytes.Take();
  ASSERT_GT(bytes.size(), 1 + req.size() + 65);
  EXPECT_TRUE(std::equal(cert_.client_signature.begin(), cert_.client_signature.end(),
                         bytes.begin() + 1 + static_cast<ptrdiff_t>(req.size())));
  EXPECT_EQ(bytes.size(), 1 + req.size() + 65 + 4 + 20 * 3 + 32 + 4 + 297 * 3);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeCertificate(std::span(bytes).first(n)).ok()) << n;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(DecodeCertificate(longer).ok());
  std::vector<uint8_t> version = bytes;
  version[0] = 0;
  EXPECT_FALSE(DecodeCertificate(version).ok());
  // A committee count above the bound is rejected before anything is allocated.
  Certificate big = cert_;
  big.committee.assign(kMaxCommitteeSize + 1, Address{});
  EXPECT_FALSE(DecodeCertificate(EncodeCertificate(big)).ok());
}

}  // namespace
}  // namespace atoma::consensus
