#include "atoma/consensus/xv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "testing/keys.h"
#include "vectors.h"

namespace atoma::consensus {
namespace {

using testing::Fixed;
using testing::Hex;

XvSalt SaltOf(uint8_t fill, uint8_t first = 0) {
  XvSalt s;
  s.fill(fill);
  s[0] = first;
  return s;
}

// The coin computed without the code under test's encoder, tagged hash or Uint256: raw SHA-256
// over the spec's bytes, then the big-endian number reduced mod 10^6 byte by byte.
uint64_t IndependentCoin(const XvSalt& salt, const Hash256& attestation_digest) {
  crypto::Sha256 sha;
  sha.Update(std::string_view("atoma/xv"));
  const uint8_t zero = 0;
  sha.Update(std::span<const uint8_t>(&zero, 1));
  sha.Update(salt);
  sha.Update(attestation_digest);
  const Hash256 h = sha.Final();
  uint64_t r = 0;
  for (uint8_t b : h) r = (r * 256 + b) % 1'000'000;
  return r;
}

TEST(XvTest, SaltHashMatchesIndependentVector) {
  XvSalt salt;
  for (size_t i = 0; i < salt.size(); ++i) salt[i] = static_cast<uint8_t>(i);
  // Python: sha256(b"atoma/xv-salt\0" + bytes(range(32)))
  EXPECT_EQ(Hex(XvSaltHash(salt)),
            "6b5ea32ba13447d540bcb323da31a12cf336469d9997ca86590e17101af7e6c6");
  EXPECT_EQ(Hex(XvSaltHash(SaltOf(0xff, 0xff))),
            "0572f74c7c3a875936a49cf85d2e47a31a778266577027d91ac3cdfe1371c21b");
}

TEST(XvTest, CoinMatchesIndependentVector) {
  // The first attestation of tests/vectors/request.json, whose digest is known independently.
  const auto v = testing::LoadVectors("request.json").at("attestation_digests").at(0);
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
  ASSERT_EQ(Hex(AttestationDigest(a)), v.at("digest").get<std::string>());
  XvSalt salt;
  for (size_t i = 0; i < salt.size(); ++i) salt[i] = static_cast<uint8_t>(i);
  // Python: int.from_bytes(sha256(b"atoma/xv\0" + salt + digest).digest(), "big") % 10**6
  EXPECT_EQ(XvCoin(salt, a), 989261u);
  EXPECT_EQ(XvCoin(SaltOf(0xff, 0xff), a), 923531u);
  EXPECT_TRUE(XvCheckDrawn(salt, a, 989262));
  EXPECT_FALSE(XvCheckDrawn(salt, a, 989261));
}

// The fuzz target's seeds (tests/fuzz/corpus/xv) get past the decoder, so the fuzzer starts deep.
TEST(XvTest, FuzzSeedsDecode) {
  const char* root = std::getenv("ATOMA_SOURCE_DIR");
  const std::string dir = std::string(root ? root : ".") + "/tests/fuzz/corpus/xv/";
  size_t with_validators = 0;
  for (const char* name : {"seed_unrevealed", "seed_not_drawn", "seed_drawn"}) {
    std::ifstream in(dir + name, std::ios::binary);
    ASSERT_TRUE(in.good()) << dir << name;
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    auto c = DecodeXvCertificate(bytes);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(EncodeXvCertificate(*c), bytes) << name;
    with_validators += c->validators.size();
  }
  EXPECT_EQ(with_validators, 2u);
}

// A small network: 12 staked nodes and a cross-validation request with k = 2, so the draws are
// the executor, one backup, 2 validators and 3 dispute referees.
class XvCertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 12; ++i) {
      std::string hex(64, '0');
      hex[0] = 'd';
      hex[62] = static_cast<char>('0' + i / 10);
      hex[63] = static_cast<char>('0' + i % 10);
      keys_.push_back(crypto::PrivateKey::FromHex(hex).value());
      ctx_.registry.push_back({keys_.back().address(), Uint256(100 + 25 * i)});
    }
    ctx_.domain = {31337, {}};
    ctx_.domain.ledger[19] = 0x42;
    ctx_.epoch = 9;
    ctx_.epoch_seed[0] = 0x5e;
    ctx_.echelon_id[0] = 0xec;
    output_.token_ids = {5, 6, 7, 8, 9, 10};
    output_.finish_reason = FinishReason::kStop;
    other_ = output_;
    other_.token_ids[2] = 70;
    UseRequest(500'000, 2, SaltOf(0x11));
  }

  // Makes `salt` the request's salt and recomputes everything that depends on the request.
  void UseRequest(uint64_t p_micro, uint64_t k, const XvSalt& salt) {
    salt_ = salt;
    request_ = {};
    request_.prompt_token_ids = {1, 2, 3};
    request_.max_tokens = 6;
    request_.security = {SecurityMode::kCrossValidation, 0, p_micro, k, XvSaltHash(salt)};
    request_.max_fee = Uint256(500);
    request_.epoch = ctx_.epoch;
    request_.client = client_key_.address();
    rid_ = RequestId(request_);
    draws_ =
        SelectCommittee(ctx_.epoch_seed, rid_, ctx_.registry, 1, BackupCount(1), XvRefereeDraws(k))
            .value();
    roles_ = SplitXvDraws(draws_, k);
  }

  // Tries salts until the coin for the executor's honest attestation is (not) drawn.
  void UseSaltThat(bool drawn, uint64_t p_micro = 500'000, uint64_t k = 2) {
    for (int i = 0; i < 256; ++i) {
      UseRequest(p_micro, k, SaltOf(0x22, static_cast<uint8_t>(i)));
      if (XvCheckDrawn(salt_, Executor(), p_micro) == drawn) return;
    }
    FAIL() << "no salt found";
  }

  const crypto::PrivateKey& Key(const Address& a) const { return test::KeyFor(keys_, a); }
  const crypto::PrivateKey* Outsider() const { return test::FirstNotDrawn(keys_, draws_); }

  // `signer`'s attestation of `output` with C over `committee` and p for its own address (the
  // executor and validators alike).
  Attestation Attest(const Address& signer, const std::vector<Address>& committee,
                     const ConsensusOutput& output) const {
    const bool member = std::find(committee.begin(), committee.end(), signer) != committee.end();
    auto a = member
                 ? MakeAttestation(ctx_.domain, rid_, ctx_.echelon_id, ctx_.epoch, committee,
                                   output, request_.prompt_token_ids.size(), Key(signer))
                 : MakeRefereeAttestation(ctx_.domain, rid_, ctx_.echelon_id, ctx_.epoch, committee,
                                          output, request_.prompt_token_ids.size(), Key(signer));
    return a.value();
  }
  Attestation Executor() const { return Attest(draws_.committee[0], draws_.committee, output_); }
  Attestation Resign(Attestation a) const {
    a.signature = Key(a.member).Sign(AttestationDigest(a));
    return a;
  }

  // The certificate of outcome (a), (b) or (d): salt when revealed, the validators when drawn.
  XvCertificate Build(bool reveal, bool with_validators) const {
    XvCertificate c;
    c.base.request = request_;
    c.base.client_signature = client_key_.Sign(ClientRequestDigest(ctx_.domain, rid_));
    c.base.committee = draws_.committee;
    c.base.attestations = {Executor()};
    c.base.commitment = c.base.attestations[0].commitment;
    if (reveal) c.salt = salt_;
    if (with_validators) {
      for (const Address& v : roles_.validators) {
        c.validators.push_back(Attest(v, draws_.committee, output_));
      }
    }
    return c;
  }

  CertificateVerdict Verify(const XvCertificate& c) const {
    return VerifyXvCertificate(c, output_, ctx_);
  }

  CertificateContext ctx_;
  std::vector<crypto::PrivateKey> keys_;
  const crypto::PrivateKey client_key_ =
      crypto::PrivateKey::FromHex(std::string(62, '0') + "c2").value();
  ConsensusRequest request_;
  XvSalt salt_{};
  Hash256 rid_{};
  CommitteeDraws draws_;
  XvDraws roles_;
  ConsensusOutput output_, other_;
};

TEST_F(XvCertificateTest, CoinIsDeterministicAndMatchesAnIndependentRecomputation) {
  const Attestation a = Executor();
  for (int i = 0; i < 64; ++i) {
    const XvSalt s = SaltOf(static_cast<uint8_t>(i * 7), static_cast<uint8_t>(i));
    const uint64_t coin = XvCoin(s, a);
    EXPECT_LT(coin, kXvCoinScale);
    EXPECT_EQ(coin, XvCoin(s, a));
    EXPECT_EQ(coin, IndependentCoin(s, AttestationDigest(a))) << i;
    EXPECT_FALSE(XvCheckDrawn(s, a, coin));
    EXPECT_TRUE(XvCheckDrawn(s, a, coin + 1));
  }
}

TEST_F(XvCertificateTest, CoinIsOverTheSignedClaimNotTheSignature) {
  const Attestation a = Executor();
  // Another valid-looking signature over the same digest (ECDSA lets the signer choose its nonce)
  // must not give the executor another coin to try.
  Attestation resigned = a;
  resigned.signature[7] ^= 0x5a;
  for (int i = 0; i < 16; ++i) {
    const XvSalt s = SaltOf(0x33, static_cast<uint8_t>(i));
    EXPECT_EQ(XvCoin(s, a), XvCoin(s, resigned));
  }
  // Any signed field changes it (for these salts, at least one differs).
  Attestation other_c = a;
  other_c.commitment[0] ^= 1;
  int differ = 0;
  for (int i = 0; i < 16; ++i) {
    const XvSalt s = SaltOf(0x33, static_cast<uint8_t>(i));
    differ += XvCoin(s, a) != XvCoin(s, other_c);
  }
  EXPECT_GT(differ, 0);
}

TEST_F(XvCertificateTest, ProbabilityZeroNeverDrawsAndOneAlwaysDoes) {
  const Attestation a = Executor();
  int drawn_half = 0;
  for (int i = 0; i < 1000; ++i) {
    const XvSalt s = SaltOf(static_cast<uint8_t>(i), static_cast<uint8_t>(i >> 8));
    EXPECT_FALSE(XvCheckDrawn(s, a, 0));
    EXPECT_TRUE(XvCheckDrawn(s, a, 1'000'000));
    drawn_half += XvCheckDrawn(s, a, 500'000);
  }
  // Deterministic inputs, so not flaky; a broken reduction (e.g. always the low byte) fails it.
  EXPECT_GT(drawn_half, 400);
  EXPECT_LT(drawn_half, 600);
}

TEST_F(XvCertificateTest, DrawsSplitIntoValidatorsThenReferees) {
  EXPECT_EQ(XvRefereeDraws(0), 3u);
  EXPECT_EQ(XvRefereeDraws(2), 5u);
  ASSERT_EQ(draws_.committee.size(), 1u);
  ASSERT_EQ(draws_.backups.size(), 1u);
  ASSERT_EQ(draws_.referees.size(), 5u);
  EXPECT_EQ(roles_.validators, (std::vector<Address>{draws_.referees[0], draws_.referees[1]}));
  EXPECT_EQ(roles_.referees,
            (std::vector<Address>{draws_.referees[2], draws_.referees[3], draws_.referees[4]}));
  // A short list: validators first.
  CommitteeDraws few = draws_;
  few.referees.resize(1);
  const XvDraws split = SplitXvDraws(few, 2);
  EXPECT_EQ(split.validators.size(), 1u);
  EXPECT_TRUE(split.referees.empty());
  EXPECT_TRUE(SplitXvDraws(draws_, 0).validators.empty());
  EXPECT_EQ(SplitXvDraws(draws_, 0).referees.size(), 5u);
}

TEST_F(XvCertificateTest, EncodingRoundTripsEveryOutcome) {
  for (const auto& [reveal, validators] :
       std::vector<std::pair<bool, bool>>{{false, false}, {true, false}, {true, true}}) {
    const XvCertificate c = Build(reveal, validators);
    const std::vector<uint8_t> bytes = EncodeXvCertificate(c);
    ASSERT_FALSE(bytes.empty());
    EXPECT_EQ(bytes[0], kXvEncodingVersion);
    // The base is the sampling certificate's encoding after the version byte.
    const std::vector<uint8_t> base = EncodeCertificate(c.base);
    ASSERT_GT(bytes.size(), base.size());
    EXPECT_TRUE(std::equal(base.begin() + 1, base.end(), bytes.begin() + 1));
    const size_t tail = 4 + (reveal ? 32 : 0) + 4 + c.validators.size() * kAttestationBodySize;
    EXPECT_EQ(bytes.size(), base.size() + tail);
    auto back = DecodeXvCertificate(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, c);
    EXPECT_EQ(back->unrevealed(), !reveal);
  }
}

TEST_F(XvCertificateTest, DecoderIsStrict) {
  const XvCertificate c = Build(true, true);
  const std::vector<uint8_t> good = EncodeXvCertificate(c);
  // Trailing bytes.
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_EQ(DecodeXvCertificate(longer).status().code(), absl::StatusCode::kInvalidArgument);
  // Every truncation.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeXvCertificate(std::span<const uint8_t>(good).first(n)).ok()) << n;
  }
  // Wrong versions: a sampling certificate is not a cross-validation one, nor vice versa.
  std::vector<uint8_t> v1 = good;
  v1[0] = kEncodingVersion;
  EXPECT_FALSE(DecodeXvCertificate(v1).ok());
  EXPECT_FALSE(DecodeCertificate(good).ok());
  EXPECT_FALSE(DecodeXvCertificate(EncodeCertificate(c.base)).ok());
  v1[0] = 3;
  EXPECT_FALSE(DecodeXvCertificate(v1).ok());

  // Oversize lists. Offsets: the base ends at base.size() - 1 in `good`.
  const size_t base_end = EncodeCertificate(c.base).size();
  auto put_u32 = [](std::vector<uint8_t>& b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i)
      b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  std::vector<uint8_t> two_salts = good;
  put_u32(two_salts, base_end, 2);
  EXPECT_FALSE(DecodeXvCertificate(two_salts).ok()) << "at most one salt";
  const size_t validators_at = base_end + 4 + 32;
  std::vector<uint8_t> many = good;
  put_u32(many, validators_at, static_cast<uint32_t>(kMaxCommitteeSize + 1));
  auto s = DecodeXvCertificate(many);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("validators"), std::string::npos) << s.status();
  put_u32(many, validators_at, 0xffffffffu);
  EXPECT_FALSE(DecodeXvCertificate(many).ok());
  // A count that fits the bound but not the bytes.
  put_u32(many, validators_at, 3);
  EXPECT_FALSE(DecodeXvCertificate(many).ok());
  // 64 validators (the bound) decode structurally.
  XvCertificate full = c;
  full.validators.assign(kMaxCommitteeSize, c.validators[0]);
  auto full_back = DecodeXvCertificate(EncodeXvCertificate(full));
  ASSERT_TRUE(full_back.ok()) << full_back.status();
  EXPECT_EQ(full_back->validators.size(), kMaxCommitteeSize);
  full.validators.push_back(c.validators[0]);
  EXPECT_FALSE(DecodeXvCertificate(EncodeXvCertificate(full)).ok());
  // A committee list above the bound.
  XvCertificate big = c;
  big.base.committee.assign(kMaxCommitteeSize + 1, c.base.committee[0]);
  EXPECT_FALSE(DecodeXvCertificate(EncodeXvCertificate(big)).ok());
  // A sampling request inside a cross-validation certificate.
  XvCertificate sampling = c;
  sampling.base.request.security = {SecurityMode::kSampling, 1, 0, 0, {}};
  EXPECT_FALSE(DecodeXvCertificate(EncodeXvCertificate(sampling)).ok());
}

TEST_F(XvCertificateTest, TheBaseIsAValidSamplingCertificateOfOne) {
  // VerifyCertificate accepts a cross_validation request with its committee of one.
  const XvCertificate c = Build(false, false);
  const auto v = VerifyCertificate(c.base, output_, ctx_);
  EXPECT_TRUE(v.ok()) << v.reason;
}

TEST_F(XvCertificateTest, AcceptsUnrevealedNotDrawnAndDrawnChecked) {
  // (d) unrevealed.
  auto v = Verify(Build(false, false));
  EXPECT_TRUE(v.ok()) << v.reason;
  // (a) revealed, coin not drawn.
  UseSaltThat(false);
  v = Verify(Build(true, false));
  EXPECT_TRUE(v.ok()) << v.reason;
  EXPECT_EQ(VerifyXvCertificate(Build(true, false), other_, ctx_).check,
            CertificateCheck::kWrongOutput);
  // (b) revealed, drawn, both validators agree.
  UseSaltThat(true);
  v = Verify(Build(true, true));
  EXPECT_TRUE(v.ok()) << v.reason;
  EXPECT_EQ(VerifyXvCertificate(Build(true, true), other_, ctx_).check,
            CertificateCheck::kWrongOutput);
  // p = 10^6 always draws, p = 0 never.
  UseRequest(1'000'000, 2, SaltOf(0x44));
  EXPECT_EQ(Verify(Build(true, false)).check, CertificateCheck::kMissingValidators);
  EXPECT_TRUE(Verify(Build(true, true)).ok());
  UseRequest(0, 2, SaltOf(0x44));
  EXPECT_TRUE(Verify(Build(true, false)).ok());
  EXPECT_EQ(Verify(Build(true, true)).check, CertificateCheck::kMalformed);
  // k = 0: a drawn check by nobody.
  UseRequest(1'000'000, 0, SaltOf(0x45));
  EXPECT_TRUE(Verify(Build(true, false)).ok());
}

TEST_F(XvCertificateTest, TheBackupMayBeTheExecutor) {
  // Find a salt that draws for the backup's attestation too (the coin is over its attestation).
  for (int i = 0; i < 256; ++i) {
    UseRequest(500'000, 2, SaltOf(0x66, static_cast<uint8_t>(i)));
    if (XvCheckDrawn(salt_, Attest(draws_.backups[0], draws_.backups, output_), 500'000)) break;
  }
  XvCertificate c = Build(true, false);
  c.base.committee = draws_.backups;
  c.base.attestations = {Attest(draws_.backups[0], draws_.backups, output_)};
  c.base.commitment = c.base.attestations[0].commitment;
  for (const Address& v : roles_.validators) {
    c.validators.push_back(Attest(v, draws_.backups, output_));
  }
  const auto v = Verify(c);
  EXPECT_TRUE(v.ok()) << v.reason;
}

TEST_F(XvCertificateTest, RejectsABadSalt) {
  UseSaltThat(false);
  XvCertificate c = Build(true, false);
  c.salt->at(5) ^= 1;
  const auto v = Verify(c);
  EXPECT_EQ(v.check, CertificateCheck::kBadSalt) << v.reason;
}

TEST_F(XvCertificateTest, RejectsMissingOrExtraValidators) {
  UseSaltThat(true);
  // Drawn, but no validators at all.
  auto v = Verify(Build(true, false));
  EXPECT_EQ(v.check, CertificateCheck::kMissingValidators) << v.reason;
  // One of the two missing.
  XvCertificate c = Build(true, true);
  c.validators.pop_back();
  EXPECT_EQ(Verify(c).check, CertificateCheck::kMissingValidators);
  // A third one (a dispute referee) on top.
  c = Build(true, true);
  c.validators.push_back(Attest(roles_.referees[0], draws_.committee, output_));
  EXPECT_EQ(Verify(c).check, CertificateCheck::kMalformed);
  // Not drawn, yet validators: rejected rather than ignored.
  UseSaltThat(false);
  EXPECT_EQ(Verify(Build(true, true)).check, CertificateCheck::kMalformed);
  // Unrevealed, yet validators.
  EXPECT_EQ(Verify(Build(false, true)).check, CertificateCheck::kMalformed);
}

TEST_F(XvCertificateTest, RejectsValidatorsThatWereNotDrawn) {
  UseSaltThat(true);
  XvCertificate c = Build(true, true);
  ASSERT_NE(Outsider(), nullptr);
  c.validators[1] = Attest(Outsider()->address(), draws_.committee, output_);
  auto v = Verify(c);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee) << v.reason;
  EXPECT_EQ(v.member, 2) << "validator index 1 is certificate member 2";
  c.validators[1] = Attest(roles_.referees[0], draws_.committee, output_);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongCommittee) << "a dispute referee";
  c.validators[1] = Attest(draws_.backups[0], draws_.committee, output_);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongCommittee) << "the backup";
  // The same validator twice.
  c = Build(true, true);
  c.validators[1] = c.validators[0];
  v = Verify(c);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee);
  EXPECT_EQ(v.member, 2);
  // Out of draw order.
  c = Build(true, true);
  std::swap(c.validators[0], c.validators[1]);
  v = Verify(c);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee);
  EXPECT_EQ(v.member, 1);
}

TEST_F(XvCertificateTest, RejectsForgedOrDifferingValidators) {
  UseSaltThat(true);
  // Forged: the outsider signs validator 0's attestation.
  XvCertificate c = Build(true, true);
  c.validators[0].signature = Outsider()->Sign(AttestationDigest(c.validators[0]));
  auto v = Verify(c);
  EXPECT_EQ(v.check, CertificateCheck::kBadSignature);
  EXPECT_EQ(v.member, 1);
  // A signed field changed without re-signing.
  c = Build(true, true);
  c.validators[1].completion_tokens += 1;
  EXPECT_EQ(Verify(c).check, CertificateCheck::kBadSignature);
  // A validator that computed another output attests another C.
  c = Build(true, true);
  c.validators[1] = Attest(roles_.validators[1], draws_.committee, other_);
  v = Verify(c);
  EXPECT_EQ(v.check, CertificateCheck::kConflictingCommitments);
  EXPECT_EQ(v.member, 2);
  // A lazy validator: copies the executor's C, makes up its p.
  c = Build(true, true);
  c.validators[0].proof[3] ^= 1;
  c.validators[0] = Resign(c.validators[0]);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kLazyMember);
  // Wrong metadata.
  c = Build(true, true);
  c.validators[0].merkle_root[0] ^= 1;
  c.validators[0] = Resign(c.validators[0]);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongMetadata);
  // Another epoch, domain, request or echelon.
  c = Build(true, true);
  c.validators[0].epoch += 1;
  c.validators[0] = Resign(c.validators[0]);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongEpoch);
  c = Build(true, true);
  c.validators[0].domain.chain_id = 1;
  c.validators[0] = Resign(c.validators[0]);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongDomain);
  c = Build(true, true);
  c.validators[0].request_id[0] ^= 1;
  c.validators[0] = Resign(c.validators[0]);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongRequest);
  c = Build(true, true);
  c.validators[0].echelon_id[0] ^= 1;
  c.validators[0] = Resign(c.validators[0]);
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongEchelon);
}

TEST_F(XvCertificateTest, RejectsWhatTheBaseRejects) {
  UseSaltThat(true);
  XvCertificate c = Build(true, true);
  c.base.client_signature[4] ^= 1;
  EXPECT_EQ(Verify(c).check, CertificateCheck::kBadClientSignature);
  c = Build(true, true);
  c.base.committee = {Outsider()->address()};
  EXPECT_EQ(Verify(c).check, CertificateCheck::kWrongCommittee);
  // A sampling request is not a cross-validation certificate, even with a valid base.
  c = Build(false, false);
  c.base.request.security = {SecurityMode::kSampling, 1, 0, 0, {}};
  EXPECT_EQ(Verify(c).check, CertificateCheck::kMalformed);
}

TEST_F(XvCertificateTest, AnEchelonTooSmallForKValidatorsCannotCertifyADrawnCheck) {
  // 4 staked nodes: executor, backup, 2 more; k = 3 validators cannot all be drawn.
  ctx_.registry.resize(4);
  UseRequest(1'000'000, 3, SaltOf(0x77));
  ASSERT_EQ(roles_.validators.size(), 2u);
  XvCertificate c = Build(true, true);
  const auto v = Verify(c);
  EXPECT_EQ(v.check, CertificateCheck::kMissingValidators) << v.reason;
}

}  // namespace
}  // namespace atoma::consensus
