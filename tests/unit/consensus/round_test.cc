#include "atoma/consensus/round.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "testing/keys.h"

namespace atoma::consensus {
namespace {

constexpr int64_t kTimeout = 30'000;
constexpr int64_t kGrace = 5'000;
constexpr int64_t kRefereeTimeout = 60'000;

template <typename T>
std::vector<T> OfType(const std::vector<RoundAction>& actions) {
  std::vector<T> v;
  for (const RoundAction& a : actions) {
    if (const T* t = std::get_if<T>(&a)) v.push_back(*t);
  }
  return v;
}

// 16 staked nodes; a sampling request with n = 3, so 3 members, 3 backups and 7 referees.
class RoundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 16; ++i) {
      std::string hex(64, '0');
      hex[0] = 'b';
      hex[62] = static_cast<char>('0' + i / 10);
      hex[63] = static_cast<char>('0' + i % 10);
      keys_.push_back(crypto::PrivateKey::FromHex(hex).value());
      ctx_.registry.push_back({keys_.back().address(), Uint256(100 + 10 * i)});
    }
    ctx_.domain = {31337, {}};
    ctx_.domain.ledger[19] = 0x42;
    ctx_.epoch = 7;
    ctx_.epoch_seed[0] = 0x5e;
    ctx_.echelon_id[0] = 0xec;
    request_.prompt_token_ids = {1, 2, 3, 4};
    request_.max_tokens = 8;
    request_.security = {SecurityMode::kSampling, 3, 0, 0, {}};
    request_.max_fee = Uint256(500);
    request_.epoch = ctx_.epoch;
    request_.client = client_key_.address();
    rid_ = RequestId(request_);
    client_signature_ = client_key_.Sign(ClientRequestDigest(ctx_.domain, rid_));
    draws_ =
        SelectCommittee(ctx_.epoch_seed, rid_, ctx_.registry, 3, BackupCount(3), RefereeCount(3))
            .value();
    ASSERT_EQ(draws_.backups.size(), 3u);
    ASSERT_EQ(draws_.referees.size(), 7u);
    good_.token_ids = {10, 11, 12, 13, 14, 15, 16, 17};
    good_.finish_reason = FinishReason::kLength;
    bad_ = good_;
    bad_.token_ids[5] = 99;
  }

  RoundInputs Inputs() const {
    RoundInputs in;
    in.domain = ctx_.domain;
    in.epoch = ctx_.epoch;
    in.echelon_id = ctx_.echelon_id;
    in.request = request_;
    in.client_signature = client_signature_;
    in.draws = draws_;
    in.member_timeout_ms = kTimeout;
    in.reattest_timeout_ms = kGrace;
    in.referee_timeout_ms = kRefereeTimeout;
    return in;
  }

  const crypto::PrivateKey& Key(const Address& a) const { return test::KeyFor(keys_, a); }
  const crypto::PrivateKey* Outsider() const { return test::FirstNotDrawn(keys_, draws_); }

  // What `signer` attests after computing `output`, for `committee` (members and referees alike:
  // its own p is for its own address, C is over the committee).
  Attestation Attest(const Address& signer, const std::vector<Address>& committee,
                     const ConsensusOutput& output) const {
    Attestation a;
    a.domain = ctx_.domain;
    a.request_id = rid_;
    a.echelon_id = ctx_.echelon_id;
    a.commitment = Commitment(OutputProofs(rid_, output, committee));
    a.proof = OutputProof(rid_, output, signer);
    a.prompt_tokens = request_.prompt_token_ids.size();
    a.completion_tokens = output.token_ids.size();
    a.merkle_root = OutputMerkleRoot(output.token_ids);
    a.epoch = ctx_.epoch;
    a.member = signer;
    a.signature = Key(signer).Sign(AttestationDigest(a));
    return a;
  }
  Attestation Resign(Attestation a) const {
    a.signature = Key(a.member).Sign(AttestationDigest(a));
    return a;
  }

  Round Started(int64_t now = 0) {
    Round r = Round::Make(Inputs()).value();
    r.Start(now);
    return r;
  }

  // Feeds attestations for `committee` from the given members; returns the last call's actions.
  std::vector<RoundAction> AttestAll(Round& r, const std::vector<Address>& committee,
                                     const std::vector<ConsensusOutput>& outputs, int64_t now) {
    std::vector<RoundAction> last;
    for (size_t i = 0; i < committee.size(); ++i) {
      last = r.OnAttestation(Attest(committee[i], committee, outputs[i]), now);
    }
    return last;
  }

  CertificateContext ctx_;
  std::vector<crypto::PrivateKey> keys_;
  const crypto::PrivateKey client_key_ =
      crypto::PrivateKey::FromHex(std::string(62, '0') + "c1").value();
  ConsensusRequest request_;
  Hash256 rid_{};
  crypto::Signature client_signature_{};
  CommitteeDraws draws_;
  ConsensusOutput good_, bad_;
};

TEST_F(RoundTest, MakeRejectsInconsistentInputs) {
  RoundInputs in = Inputs();
  in.draws.committee.pop_back();
  EXPECT_FALSE(Round::Make(in).ok());
  in = Inputs();
  in.draws.backups.push_back(in.draws.referees.back());
  in.draws.referees.pop_back();
  EXPECT_FALSE(Round::Make(in).ok()) << "more backups than certificates accept";
  in = Inputs();
  in.draws.referees[0] = in.draws.committee[1];
  EXPECT_FALSE(Round::Make(in).ok()) << "a member is also a referee";
  in = Inputs();
  in.epoch = 8;
  EXPECT_FALSE(Round::Make(in).ok());
  in = Inputs();
  in.member_timeout_ms = 0;
  EXPECT_FALSE(Round::Make(in).ok());
}

TEST_F(RoundTest, HonestRoundDeliversAVerifiableCertificate) {
  Round r = Round::Make(Inputs()).value();
  EXPECT_EQ(r.state(), RoundState::kIdle);
  EXPECT_FALSE(r.NextDeadline().has_value());
  auto actions = r.Start(100);
  auto sends = OfType<SendExecute>(actions);
  ASSERT_EQ(sends.size(), 3u);
  ASSERT_EQ(actions.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sends[i].member, draws_.committee[i]);
    EXPECT_EQ(sends[i].slot, i);
    EXPECT_EQ(sends[i].committee, draws_.committee);
  }
  EXPECT_EQ(r.state(), RoundState::kCollecting);
  EXPECT_EQ(r.NextDeadline(), 100 + kTimeout);
  EXPECT_TRUE(r.Start(200).empty()) << "a second Start does nothing";

  EXPECT_TRUE(r.OnAttestation(Attest(draws_.committee[0], draws_.committee, good_), 500).empty());
  EXPECT_TRUE(r.OnAttestation(Attest(draws_.committee[2], draws_.committee, good_), 600).empty());
  actions = r.OnAttestation(Attest(draws_.committee[1], draws_.committee, good_), 700);
  ASSERT_EQ(actions.size(), 1u);
  auto certs = OfType<DeliverCertificate>(actions);
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kCertified);
  EXPECT_FALSE(r.NextDeadline().has_value());
  const Certificate& c = certs[0].certificate;
  EXPECT_EQ(c.client_signature, client_signature_) << "the client's authorization travels along";
  EXPECT_EQ(c.committee, draws_.committee);
  EXPECT_EQ(c.attestations[1].member, draws_.committee[1]) << "attestations in committee order";
  auto verdict = VerifyCertificate(c, good_, ctx_);
  EXPECT_TRUE(verdict.ok()) << verdict.reason;
  EXPECT_FALSE(VerifyCertificate(c, bad_, ctx_).ok());
  EXPECT_EQ(r.counters().accepted, 3u);
}

TEST_F(RoundTest, CertificateWithoutTheClientsAuthorizationDoesNotVerify) {
  RoundInputs in = Inputs();
  in.client_signature = {};
  Round r = Round::Make(in).value();
  r.Start(0);
  auto certs = OfType<DeliverCertificate>(AttestAll(r, draws_.committee, {good_, good_, good_}, 1));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(VerifyCertificate(certs[0].certificate, good_, ctx_).check,
            CertificateCheck::kBadClientSignature);
}

TEST_F(RoundTest, TimeoutReplacesMemberWithBackupAndCertifies) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  r.OnAttestation(Attest(m[0], m, good_), 1'000);
  r.OnAttestation(Attest(m[2], m, good_), 2'000);
  EXPECT_TRUE(r.OnTick(kTimeout - 1).empty()) << "not yet due";
  auto actions = r.OnTick(kTimeout);
  const std::vector<Address> view = {m[0], draws_.backups[0], m[2]};
  auto sends = OfType<SendExecute>(actions);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].member, draws_.backups[0]);
  EXPECT_EQ(sends[0].slot, 1u);
  EXPECT_EQ(sends[0].committee, view);
  auto updates = OfType<UpdateCommittee>(actions);
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[0].member, m[0]);
  EXPECT_EQ(updates[1].member, m[2]);
  EXPECT_EQ(updates[0].committee, view);
  EXPECT_EQ(r.committee(), view);
  EXPECT_EQ(r.NextDeadline(), kTimeout + kGrace);

  // The backup attests first: members 0 and 2 still hold C for the old committee, so the round
  // waits (grace) instead of starting a dispute.
  EXPECT_TRUE(r.OnAttestation(Attest(view[1], view, good_), kTimeout + 100).empty());
  EXPECT_EQ(r.state(), RoundState::kCollecting);
  // The replaced member's late attestation is ignored.
  EXPECT_TRUE(r.OnAttestation(Attest(m[1], m, good_), kTimeout + 150).empty());
  EXPECT_EQ(r.counters().late, 1u);
  EXPECT_TRUE(r.OnAttestation(Attest(m[0], view, good_), kTimeout + 200).empty());
  actions = r.OnAttestation(Attest(m[2], view, good_), kTimeout + 300);
  auto certs = OfType<DeliverCertificate>(actions);
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(certs[0].certificate.committee, view);
  auto verdict = VerifyCertificate(certs[0].certificate, good_, ctx_);
  EXPECT_TRUE(verdict.ok()) << verdict.reason;
  EXPECT_EQ(r.counters().equivocating, 0u) << "a new C with the same p_i is a view update";
}

TEST_F(RoundTest, BackupTimesOutTooAndTheNextBackupTakesOver) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  const auto& b = draws_.backups;
  r.OnTick(kTimeout);  // all three silent: each slot gets a backup
  EXPECT_EQ(r.committee(), b);
  for (size_t i = 0; i < 3; ++i) r.OnAttestation(Attest(b[i], b, good_), kTimeout + 10);
  // All three backups answered; members were all replaced, so the certificate is all backups.
  EXPECT_EQ(r.state(), RoundState::kCertified);

  // Now one slot whose backup is silent too.
  Round r2 = Started(0);
  r2.OnAttestation(Attest(m[0], m, good_), 10);
  r2.OnAttestation(Attest(m[1], m, good_), 10);
  auto a1 = r2.OnTick(kTimeout);
  ASSERT_EQ(OfType<SendExecute>(a1).size(), 1u);
  EXPECT_EQ(OfType<SendExecute>(a1)[0].member, b[0]);
  EXPECT_EQ(r2.NextDeadline(), kTimeout + kGrace);
  auto a2 = r2.OnTick(2 * kTimeout);
  auto sends = OfType<SendExecute>(a2);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].member, b[1]);
  EXPECT_EQ(sends[0].slot, 2u);
  const std::vector<Address> view = {m[0], m[1], b[1]};
  EXPECT_EQ(r2.committee(), view);
  // The first backup's late answer is ignored.
  EXPECT_TRUE(r2.OnAttestation(Attest(b[0], {m[0], m[1], b[0]}, good_), 2 * kTimeout + 1).empty());
  EXPECT_EQ(r2.counters().late, 1u);
  std::vector<RoundAction> last = AttestAll(r2, view, {good_, good_, good_}, 2 * kTimeout + 5);
  auto certs = OfType<DeliverCertificate>(last);
  ASSERT_EQ(certs.size(), 1u);
  auto verdict = VerifyCertificate(certs[0].certificate, good_, ctx_);
  EXPECT_TRUE(verdict.ok()) << verdict.reason;
}

TEST_F(RoundTest, RunningOutOfBackupsFailsWithRefund) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  r.OnAttestation(Attest(m[1], m, good_), 10);
  r.OnAttestation(Attest(m[2], m, good_), 10);
  for (int k = 1; k <= 3; ++k) {
    auto actions = r.OnTick(k * kTimeout);
    ASSERT_EQ(OfType<SendExecute>(actions).size(), 1u) << k;
    EXPECT_EQ(r.committee()[0], draws_.backups[static_cast<size_t>(k - 1)]);
  }
  auto actions = r.OnTick(4 * kTimeout);
  auto fails = OfType<Fail>(actions);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kNoBackups);
  EXPECT_TRUE(fails[0].refund);
  EXPECT_EQ(r.state(), RoundState::kFailed);
  EXPECT_FALSE(r.NextDeadline().has_value());
  EXPECT_TRUE(r.OnTick(5 * kTimeout).empty());
}

TEST_F(RoundTest, DisagreementResolvedForTheMajorityOfMembers) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  auto actions = AttestAll(r, m, {good_, good_, bad_}, 100);
  auto starts = OfType<StartReferees>(actions);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].referees, draws_.referees);
  EXPECT_EQ(starts[0].committee, m);
  EXPECT_EQ(r.state(), RoundState::kDisputing);
  EXPECT_EQ(r.NextDeadline(), 100 + kRefereeTimeout);
  const auto& ref = draws_.referees;
  // One dissenting referee, then the honest majority (4 of 7).
  EXPECT_TRUE(r.OnAttestation(Attest(ref[0], m, bad_), 200).empty());
  for (size_t i = 1; i < 4; ++i)
    EXPECT_TRUE(r.OnAttestation(Attest(ref[i], m, good_), 300).empty());
  actions = r.OnAttestation(Attest(ref[4], m, good_), 400);
  auto res = OfType<DisputeResolved>(actions);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kResolved);
  EXPECT_EQ(res[0].commitment, Commitment(OutputProofs(rid_, good_, m)));
  EXPECT_EQ(res[0].winners, (std::vector<Address>{m[0], m[1]}));
  EXPECT_EQ(res[0].losers, (std::vector<Address>{m[2]}));
  EXPECT_EQ(res[0].majority_referees, (std::vector<Address>{ref[1], ref[2], ref[3], ref[4]}));
  EXPECT_EQ(res[0].dissenting_referees, (std::vector<Address>{ref[0]}));
  EXPECT_FALSE(res[0].proofs_inconsistent);
  EXPECT_EQ(res[0].member_attestations.size(), 3u);
  EXPECT_EQ(res[0].referee_attestations.size(), 5u);
  // Referees still coming in after the resolution are late.
  EXPECT_TRUE(r.OnAttestation(Attest(ref[5], m, good_), 500).empty());
  EXPECT_EQ(r.counters().late, 1u);
}

TEST_F(RoundTest, DisagreementResolvedForTheMinorityOfMembers) {
  // Two members agree on a wrong output; the referees side with the single honest member.
  Round r = Started(0);
  const auto& m = draws_.committee;
  AttestAll(r, m, {bad_, good_, bad_}, 100);
  ASSERT_EQ(r.state(), RoundState::kDisputing);
  std::vector<RoundAction> actions;
  for (size_t i = 0; i < 4; ++i)
    actions = r.OnAttestation(Attest(draws_.referees[i], m, good_), 200);
  auto res = OfType<DisputeResolved>(actions);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].winners, (std::vector<Address>{m[1]}));
  EXPECT_EQ(res[0].losers, (std::vector<Address>{m[0], m[2]}));
  EXPECT_TRUE(res[0].dissenting_referees.empty());
}

TEST_F(RoundTest, NoMajorityFailsAsSoonAsNoneIsPossible) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  AttestAll(r, m, {good_, good_, bad_}, 100);
  ConsensusOutput third = good_;
  third.token_ids[0] = 77;
  const auto& ref = draws_.referees;
  // 3 / 3 / 1: after the 7th vote no C can have 4.
  std::vector<ConsensusOutput> votes = {good_, bad_, good_, bad_, good_, bad_};
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_TRUE(r.OnAttestation(Attest(ref[i], m, votes[i]), 200).empty()) << i;
  }
  auto actions = r.OnAttestation(Attest(ref[6], m, third), 300);
  auto fails = OfType<Fail>(actions);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kNoMajority);
  EXPECT_TRUE(fails[0].refund);
  EXPECT_EQ(r.state(), RoundState::kFailed);
}

TEST_F(RoundTest, NoMajorityWhenRefereesStaySilent) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  AttestAll(r, m, {good_, bad_, good_}, 100);
  for (size_t i = 0; i < 3; ++i) r.OnAttestation(Attest(draws_.referees[i], m, good_), 200);
  EXPECT_TRUE(r.OnTick(100 + kRefereeTimeout - 1).empty());
  auto fails = OfType<Fail>(r.OnTick(100 + kRefereeTimeout));
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kNoMajority);
}

TEST_F(RoundTest, DisagreementWithoutRefereesFails) {
  RoundInputs in = Inputs();
  in.draws.referees.clear();
  Round r = Round::Make(in).value();
  r.Start(0);
  auto fails = OfType<Fail>(AttestAll(r, draws_.committee, {good_, bad_, good_}, 100));
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kNoReferees);
}

TEST_F(RoundTest, LazyMemberCopyingCIsDisputedAndFlagged) {
  // Member 2 copies C from a peer and makes up p_2: all C's equal but H(p's) != C.
  Round r = Started(0);
  const auto& m = draws_.committee;
  r.OnAttestation(Attest(m[0], m, good_), 10);
  r.OnAttestation(Attest(m[1], m, good_), 10);
  Attestation lazy = Attest(m[2], m, good_);
  lazy.proof[0] ^= 1;
  auto actions = r.OnAttestation(Resign(lazy), 20);
  ASSERT_EQ(OfType<StartReferees>(actions).size(), 1u);
  for (size_t i = 0; i < 4; ++i)
    actions = r.OnAttestation(Attest(draws_.referees[i], m, good_), 30);
  auto res = OfType<DisputeResolved>(actions);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_TRUE(res[0].losers.empty());
  EXPECT_TRUE(res[0].proofs_inconsistent);
}

TEST_F(RoundTest, MembersThatNeverCatchUpAfterAReplacementAreDisputed) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  r.OnAttestation(Attest(m[0], m, good_), 10);
  r.OnAttestation(Attest(m[2], m, good_), 10);
  r.OnTick(kTimeout);
  const std::vector<Address> view = r.committee();
  EXPECT_TRUE(r.OnAttestation(Attest(view[1], view, good_), kTimeout + 1).empty());
  EXPECT_TRUE(r.OnTick(kTimeout + kGrace - 1).empty());
  auto actions = r.OnTick(kTimeout + kGrace);
  ASSERT_EQ(OfType<StartReferees>(actions).size(), 1u);
  EXPECT_EQ(OfType<StartReferees>(actions)[0].committee, view);
}

TEST_F(RoundTest, InvalidAttestationsAreCountedAndNeverUsed) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  Attestation a = Attest(m[0], m, good_);
  Attestation forged = a;
  forged.signature[5] ^= 1;
  EXPECT_TRUE(r.OnAttestation(forged, 1).empty());
  Attestation changed = a;
  changed.completion_tokens += 1;  // signed field altered
  EXPECT_TRUE(r.OnAttestation(changed, 1).empty());
  Attestation by_other = a;  // signed by member 1, claims member 0
  by_other.signature = Key(m[1]).Sign(AttestationDigest(a));
  EXPECT_TRUE(r.OnAttestation(by_other, 1).empty());
  Attestation wrong_domain = a;
  wrong_domain.domain.chain_id = 1;
  EXPECT_TRUE(r.OnAttestation(Resign(wrong_domain), 1).empty());
  Attestation wrong_epoch = a;
  wrong_epoch.epoch = 6;
  EXPECT_TRUE(r.OnAttestation(Resign(wrong_epoch), 1).empty());
  EXPECT_EQ(r.counters().invalid, 5u);
  EXPECT_EQ(r.counters().accepted, 0u);
  // None of them filled the slot: the honest round still needs all three and still certifies.
  r.OnAttestation(Attest(m[1], m, good_), 2);
  r.OnAttestation(Attest(m[2], m, good_), 2);
  EXPECT_EQ(r.state(), RoundState::kCollecting);
  auto certs = OfType<DeliverCertificate>(r.OnAttestation(a, 3));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_TRUE(VerifyCertificate(certs[0].certificate, good_, ctx_).ok());
}

TEST_F(RoundTest, ForeignAndOutsiderAttestationsAreIgnored) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  Attestation other = Attest(m[0], m, good_);
  other.request_id[0] ^= 1;
  EXPECT_TRUE(r.OnAttestation(Resign(other), 1).empty());
  Attestation echelon = Attest(m[0], m, good_);
  echelon.echelon_id[1] ^= 1;
  EXPECT_TRUE(r.OnAttestation(Resign(echelon), 1).empty());
  EXPECT_EQ(r.counters().foreign, 2u);
  // A valid attestation by a node that was not asked: an outsider, an idle backup, a referee
  // before any dispute.
  ASSERT_NE(Outsider(), nullptr);
  EXPECT_TRUE(r.OnAttestation(Attest(Outsider()->address(), m, good_), 1).empty());
  EXPECT_TRUE(r.OnAttestation(Attest(draws_.backups[0], m, good_), 1).empty());
  EXPECT_TRUE(r.OnAttestation(Attest(draws_.referees[0], m, good_), 1).empty());
  EXPECT_EQ(r.counters().not_participant, 3u);
  EXPECT_EQ(r.counters().accepted, 0u);
}

TEST_F(RoundTest, DuplicateAttestationIsIgnored) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  const Attestation a = Attest(m[0], m, good_);
  r.OnAttestation(a, 1);
  EXPECT_TRUE(r.OnAttestation(a, 2).empty());
  EXPECT_TRUE(r.OnAttestation(a, 3).empty());
  EXPECT_EQ(r.counters().duplicate, 2u);
  EXPECT_EQ(r.counters().accepted, 1u);
  EXPECT_EQ(r.counters().equivocating, 0u);
}

TEST_F(RoundTest, EquivocatingMemberIsReportedOnceAndReplaced) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  const Attestation first = Attest(m[1], m, good_);
  const Attestation second = Attest(m[1], m, bad_);
  r.OnAttestation(first, 1);
  auto actions = r.OnAttestation(second, 2);
  auto ev = OfType<ReportEquivocation>(actions);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].first, first);
  EXPECT_EQ(ev[0].second, second);
  // Both halves of the evidence verify on their own.
  EXPECT_TRUE(VerifyAttestation(ev[0].first, ctx_.domain, ctx_.epoch).ok());
  EXPECT_TRUE(VerifyAttestation(ev[0].second, ctx_.domain, ctx_.epoch).ok());
  auto sends = OfType<SendExecute>(actions);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].member, draws_.backups[0]);
  EXPECT_EQ(sends[0].slot, 1u);
  // A third version: counted, not reported again.
  Attestation third = Attest(m[1], m, good_);
  third.completion_tokens = 3;
  EXPECT_TRUE(OfType<ReportEquivocation>(r.OnAttestation(Resign(third), 3)).empty());
  EXPECT_EQ(r.counters().equivocating, 2u);
  // The round completes with the backup.
  const std::vector<Address> view = r.committee();
  auto certs = OfType<DeliverCertificate>(AttestAll(r, view, {good_, good_, good_}, 4));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_TRUE(VerifyCertificate(certs[0].certificate, good_, ctx_).ok());
}

TEST_F(RoundTest, ViewUpdateIsNotEquivocationButAnotherClaimWithTheSameCIs) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  const Attestation first = Attest(m[0], m, good_);
  r.OnAttestation(first, 1);
  // The same output attested for another committee (a view update): accepted, not reported.
  const std::vector<Address> view = {m[0], draws_.backups[0], m[2]};
  const Attestation update = Attest(m[0], view, good_);
  ASSERT_TRUE(SameOutputClaim(first, update));
  EXPECT_TRUE(OfType<ReportEquivocation>(r.OnAttestation(update, 2)).empty());
  EXPECT_EQ(r.counters().equivocating, 0u);
  EXPECT_EQ(r.counters().accepted, 2u);
  // Same C and p_i, another Merkle root: another claim about the output, reported.
  Attestation other_root = first;
  other_root.merkle_root[0] ^= 1;
  other_root = Resign(other_root);
  ASSERT_FALSE(SameOutputClaim(first, other_root));
  auto reports = OfType<ReportEquivocation>(r.OnAttestation(other_root, 3));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].first, first);
  EXPECT_EQ(reports[0].second, other_root);
  EXPECT_EQ(r.counters().equivocating, 1u);
}

TEST_F(RoundTest, EquivocatingRefereeLosesItsVote) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  AttestAll(r, m, {good_, good_, bad_}, 1);
  const auto& ref = draws_.referees;
  for (size_t i = 0; i < 3; ++i) r.OnAttestation(Attest(ref[i], m, good_), 2);
  auto actions = r.OnAttestation(Attest(ref[0], m, bad_), 3);
  ASSERT_EQ(OfType<ReportEquivocation>(actions).size(), 1u);
  // Without ref[0] the good C has 2 votes; one more is not a majority of 7 yet.
  EXPECT_TRUE(OfType<DisputeResolved>(r.OnAttestation(Attest(ref[3], m, good_), 4)).empty());
  auto res = OfType<DisputeResolved>(r.OnAttestation(Attest(ref[4], m, good_), 5));
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(std::count(res[0].majority_referees.begin(), res[0].majority_referees.end(), ref[0]),
            0);
}

TEST_F(RoundTest, LateAttestationAfterCompletionIsIgnored) {
  Round r = Started(0);
  const auto& m = draws_.committee;
  AttestAll(r, m, {good_, good_, good_}, 1);
  ASSERT_EQ(r.state(), RoundState::kCertified);
  EXPECT_TRUE(r.OnAttestation(Attest(m[0], m, bad_), 2).empty()) << "even an equivocation";
  EXPECT_TRUE(r.OnAttestation(Attest(draws_.backups[0], m, good_), 2).empty());
  EXPECT_TRUE(r.OnTick(10 * kTimeout).empty());
  EXPECT_EQ(r.counters().late, 2u);
  EXPECT_EQ(r.state(), RoundState::kCertified);
}

TEST_F(RoundTest, CheckCommitteeViewAllowsBackupsInAnySlotAndNothingElse) {
  const auto& m = draws_.committee;
  const auto& b = draws_.backups;
  int slot = 99;
  EXPECT_TRUE(CheckCommitteeView(draws_, m, &slot).ok());
  EXPECT_EQ(slot, -1);
  EXPECT_TRUE(CheckCommitteeView(draws_, std::vector<Address>{b[2], m[1], b[0]}).ok());
  auto check = [&](const std::vector<Address>& view, int expected_slot, const char* what) {
    int bad = 99;
    const absl::Status s = CheckCommitteeView(draws_, view, &bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << what;
    EXPECT_EQ(bad, expected_slot) << what << ": " << s;
  };
  check({m[0], Outsider()->address(), m[2]}, 1, "outsider");
  check({m[0], m[1], draws_.referees[0]}, 2, "a referee is not a backup");
  check({b[0], m[1], b[0]}, 2, "one node in two slots");
  check({m[1], m[0], m[2]}, 0, "members swapped");
  check({m[0], m[1]}, -1, "too few");
  check({m[0], m[1], m[2], b[0]}, -1, "too many");
}

TEST_F(RoundTest, RefereeAttestationVotesWithTheMembersC) {
  const auto& m = draws_.committee;
  const Address& referee = draws_.referees[2];
  const Attestation a =
      MakeRefereeAttestation(ctx_.domain, rid_, ctx_.echelon_id, ctx_.epoch, m, good_,
                             request_.prompt_token_ids.size(), Key(referee))
          .value();
  EXPECT_EQ(a.member, referee);
  EXPECT_EQ(a.commitment, Commitment(OutputProofs(rid_, good_, m)));
  EXPECT_EQ(a.proof, OutputProof(rid_, good_, referee));
  EXPECT_TRUE(VerifyAttestation(a, ctx_.domain, ctx_.epoch).ok());
  // What the round's referees send (this file's hand-made Attest) is the same statement.
  EXPECT_EQ(a, Attest(referee, m, good_));
  // A member cannot referee its own committee.
  EXPECT_EQ(
      MakeRefereeAttestation(ctx_.domain, rid_, ctx_.echelon_id, ctx_.epoch, m, good_, 4, Key(m[1]))
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

// VerifyCertificate's rule for replacements, on certificates built by hand.
TEST_F(RoundTest, CertificateCommitteeMayHoldBackupsButNothingElse) {
  auto build = [&](const std::vector<Address>& committee) {
    Certificate c;
    c.request = request_;
    c.client_signature = client_signature_;
    c.committee = committee;
    c.commitment = Commitment(OutputProofs(rid_, good_, committee));
    for (const Address& a : committee) c.attestations.push_back(Attest(a, committee, good_));
    return c;
  };
  const auto& m = draws_.committee;
  const auto& b = draws_.backups;
  EXPECT_TRUE(VerifyCertificate(build({b[2], m[1], b[0]}), good_, ctx_).ok());
  auto v = VerifyCertificate(build({m[0], Outsider()->address(), m[2]}), good_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee);
  EXPECT_EQ(v.member, 1);
  v = VerifyCertificate(build({m[0], draws_.referees[0], m[2]}), good_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee) << "referees are not backups";
  v = VerifyCertificate(build({b[0], m[1], b[0]}), good_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee) << "one node in two slots";
  EXPECT_EQ(v.member, 2);
  v = VerifyCertificate(build({m[1], m[0], m[2]}), good_, ctx_);
  EXPECT_EQ(v.check, CertificateCheck::kWrongCommittee) << "members swapped";
}

// --- Cross-validation rounds (xv.h) ---

constexpr int64_t kSaltTimeout = 60'000;

// The same 16 nodes; a cross-validation request with k = 2: executor, 1 backup, 2 validators and
// 3 dispute referees.
class XvRoundTest : public RoundTest {
 protected:
  void SetUp() override {
    RoundTest::SetUp();
    UseSalt(SaltWith(0));
  }

  static XvSalt SaltWith(uint8_t first) {
    XvSalt s;
    s.fill(0x5a);
    s[0] = first;
    return s;
  }

  // Makes `salt` the request's salt (with `p_micro` and `k`) and recomputes what depends on it.
  void UseSalt(const XvSalt& salt, uint64_t p_micro = 500'000, uint64_t k = 2) {
    salt_ = salt;
    request_.security = {SecurityMode::kCrossValidation, 0, p_micro, k, XvSaltHash(salt)};
    rid_ = RequestId(request_);
    client_signature_ = client_key_.Sign(ClientRequestDigest(ctx_.domain, rid_));
    draws_ =
        SelectCommittee(ctx_.epoch_seed, rid_, ctx_.registry, 1, BackupCount(1), XvRefereeDraws(k))
            .value();
    roles_ = SplitXvDraws(draws_, k);
  }
  // Tries salts until the coin over `executor`'s honest attestation is (not) drawn.
  void UseSaltThat(bool drawn, size_t executor_draw = 0) {
    for (int i = 0; i < 256; ++i) {
      UseSalt(SaltWith(static_cast<uint8_t>(i)));
      const Address e = executor_draw == 0 ? draws_.committee[0] : draws_.backups[0];
      if (XvCheckDrawn(salt_, Attest(e, {e}, good_), 500'000) == drawn) return;
    }
    FAIL() << "no salt found";
  }

  RoundInputs XvInputs() const {
    RoundInputs in = Inputs();
    in.salt_timeout_ms = kSaltTimeout;
    return in;
  }
  Round XvStarted(int64_t now = 0) {
    Round r = Round::Make(XvInputs()).value();
    r.Start(now);
    return r;
  }
  // Start, and the executor attests `output` at `now`.
  Round Provisional(int64_t now, const ConsensusOutput& output) {
    Round r = XvStarted(0);
    const auto actions = r.OnAttestation(Attest(Executor(), {Executor()}, output), now);
    EXPECT_EQ(OfType<DeliverProvisional>(actions).size(), 1u);
    return r;
  }
  const Address& Executor() const { return draws_.committee[0]; }
  std::vector<Address> Exec() const { return {Executor()}; }

  XvSalt salt_{};
  XvDraws roles_;
};

TEST_F(XvRoundTest, MakeChecksTheValidatorDrawsAndTheSaltTimeout) {
  EXPECT_TRUE(Round::Make(XvInputs()).ok());
  RoundInputs in = XvInputs();
  in.draws.referees.resize(1);  // only 1 of the k = 2 validators could be drawn
  EXPECT_EQ(Round::Make(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = XvInputs();
  in.draws.referees.resize(2);  // the validators, no dispute referees: allowed
  EXPECT_TRUE(Round::Make(in).ok());
  in = XvInputs();
  in.salt_timeout_ms = 0;
  EXPECT_FALSE(Round::Make(in).ok());
  in = XvInputs();
  in.draws.committee.push_back(draws_.backups[0]);
  EXPECT_FALSE(Round::Make(in).ok()) << "a committee of one";
}

TEST_F(XvRoundTest, NotDrawnDeliversTheExecutorsResultWithTheSalt) {
  UseSaltThat(false);
  Round r = Round::Make(XvInputs()).value();
  auto actions = r.Start(100);
  auto sends = OfType<SendExecute>(actions);
  ASSERT_EQ(actions.size(), 1u);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].member, Executor());
  EXPECT_EQ(sends[0].committee, Exec());
  EXPECT_EQ(r.NextDeadline(), 100 + kTimeout);

  const Attestation exec = Attest(Executor(), Exec(), good_);
  actions = r.OnAttestation(exec, 500);
  ASSERT_EQ(actions.size(), 1u);
  auto prov = OfType<DeliverProvisional>(actions);
  ASSERT_EQ(prov.size(), 1u);
  EXPECT_EQ(prov[0].attestation, exec);
  EXPECT_EQ(r.state(), RoundState::kAwaitingSalt);
  EXPECT_STREQ(RoundStateName(r.state()), "awaiting salt");
  EXPECT_EQ(r.NextDeadline(), 500 + kSaltTimeout);
  EXPECT_TRUE(r.OnTick(500 + kSaltTimeout - 1).empty());

  actions = r.OnSaltRevealed(salt_, 900);
  ASSERT_EQ(actions.size(), 1u);
  auto certs = OfType<DeliverXvCertificate>(actions);
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kCertified);
  EXPECT_FALSE(r.NextDeadline().has_value());
  const XvCertificate& c = certs[0].certificate;
  EXPECT_EQ(c.salt, salt_);
  EXPECT_TRUE(c.validators.empty());
  EXPECT_EQ(c.base.committee, Exec());
  EXPECT_EQ(c.base.attestations, std::vector<Attestation>{exec});
  EXPECT_EQ(c.base.client_signature, client_signature_);
  auto v = VerifyXvCertificate(c, good_, ctx_);
  EXPECT_TRUE(v.ok()) << v.reason;
  EXPECT_FALSE(VerifyXvCertificate(c, bad_, ctx_).ok());
  EXPECT_EQ(r.counters().accepted, 1u);
}

TEST_F(XvRoundTest, DrawnAndAllValidatorsAgreeDeliversTheCheckedCertificate) {
  UseSaltThat(true);
  Round r = Provisional(10, good_);
  auto actions = r.OnSaltRevealed(salt_, 20);
  auto starts = OfType<StartValidators>(actions);
  ASSERT_EQ(actions.size(), 1u);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].validators, roles_.validators);
  EXPECT_EQ(starts[0].committee, Exec());
  EXPECT_EQ(r.state(), RoundState::kValidating);
  EXPECT_STREQ(RoundStateName(r.state()), "validating");
  EXPECT_EQ(r.NextDeadline(), 20 + kTimeout);
  // Validators answer out of draw order; the certificate lists them in draw order.
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.validators[1], Exec(), good_), 30).empty());
  actions = r.OnAttestation(Attest(roles_.validators[0], Exec(), good_), 40);
  auto certs = OfType<DeliverXvCertificate>(actions);
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kCertified);
  const XvCertificate& c = certs[0].certificate;
  ASSERT_EQ(c.validators.size(), 2u);
  EXPECT_EQ(c.validators[0].member, roles_.validators[0]);
  EXPECT_EQ(c.validators[1].member, roles_.validators[1]);
  auto v = VerifyXvCertificate(c, good_, ctx_);
  EXPECT_TRUE(v.ok()) << v.reason;
  EXPECT_EQ(r.counters().accepted, 3u);
  // The encoding round-trips what the round made.
  EXPECT_EQ(DecodeXvCertificate(EncodeXvCertificate(c)).value(), c);
}

TEST_F(XvRoundTest, ValidatorDisagreementGoesToTheDisputeReferees) {
  UseSaltThat(true);
  Round r = Provisional(10, good_);
  r.OnSaltRevealed(salt_, 20);
  // Validator 0 computed another output. Nothing happens until validator 1 answered too.
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.validators[0], Exec(), bad_), 30).empty());
  auto actions = r.OnAttestation(Attest(roles_.validators[1], Exec(), good_), 40);
  auto starts = OfType<StartReferees>(actions);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].referees, roles_.referees) << "the draws after the validators";
  EXPECT_EQ(starts[0].committee, Exec());
  EXPECT_EQ(r.state(), RoundState::kDisputing);
  EXPECT_EQ(r.NextDeadline(), 40 + kRefereeTimeout);
  // Validators are frozen during the dispute (this one's claim unchanged, with another C).
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.validators[0], draws_.backups, bad_), 45).empty());
  EXPECT_EQ(r.counters().ignored_update, 1u);
  // 2 of 3 referees side with the executor.
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.referees[0], Exec(), good_), 50).empty());
  actions = r.OnAttestation(Attest(roles_.referees[2], Exec(), good_), 60);
  auto res = OfType<DisputeResolved>(actions);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kResolved);
  EXPECT_EQ(res[0].commitment, Commitment(OutputProofs(rid_, good_, Exec())));
  EXPECT_EQ(res[0].winners, (std::vector<Address>{Executor(), roles_.validators[1]}));
  EXPECT_EQ(res[0].losers, (std::vector<Address>{roles_.validators[0]}));
  EXPECT_EQ(res[0].majority_referees,
            (std::vector<Address>{roles_.referees[0], roles_.referees[2]}));
  EXPECT_TRUE(res[0].dissenting_referees.empty());
  EXPECT_FALSE(res[0].proofs_inconsistent);
  ASSERT_EQ(res[0].member_attestations.size(), 3u) << "executor, then the validators";
  EXPECT_EQ(res[0].member_attestations[0].member, Executor());
  EXPECT_EQ(res[0].member_attestations[1].member, roles_.validators[0]);
  EXPECT_EQ(res[0].referee_attestations.size(), 2u);
}

TEST_F(XvRoundTest, ACheatingExecutorCaughtByTheCheckLosesTheDispute) {
  // The coin is over the executor's (false) attestation, so find a salt that draws for it.
  for (int i = 0; i < 256; ++i) {
    UseSalt(SaltWith(static_cast<uint8_t>(i)));
    if (XvCheckDrawn(salt_, Attest(Executor(), Exec(), bad_), 500'000)) break;
  }
  Round r = Provisional(10, bad_);
  ASSERT_EQ(OfType<StartValidators>(r.OnSaltRevealed(salt_, 20)).size(), 1u);
  r.OnAttestation(Attest(roles_.validators[0], Exec(), good_), 30);
  ASSERT_EQ(OfType<StartReferees>(r.OnAttestation(Attest(roles_.validators[1], Exec(), good_), 40))
                .size(),
            1u);
  std::vector<RoundAction> actions;
  for (size_t i = 0; i < 3; ++i) {
    actions = r.OnAttestation(Attest(roles_.referees[i], Exec(), good_), 50);
    if (!actions.empty()) break;
  }
  auto res = OfType<DisputeResolved>(actions);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].losers, Exec());
  EXPECT_EQ(res[0].winners, roles_.validators);
  EXPECT_EQ(res[0].majority_referees.size(), 2u);
}

TEST_F(XvRoundTest, DisagreementWithoutDisputeRefereesFails) {
  UseSaltThat(true);
  RoundInputs in = XvInputs();
  in.draws.referees.resize(2);  // the validators only
  Round r = Round::Make(in).value();
  r.Start(0);
  r.OnAttestation(Attest(Executor(), Exec(), good_), 10);
  r.OnSaltRevealed(salt_, 20);
  r.OnAttestation(Attest(roles_.validators[0], Exec(), good_), 30);
  auto fails = OfType<Fail>(r.OnAttestation(Attest(roles_.validators[1], Exec(), bad_), 40));
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kNoReferees);
}

TEST_F(XvRoundTest, SelfInconsistentExecutorIsDisputedAtOnce) {
  // H(p_executor) != C: no provisional result, referees decide.
  Round r = XvStarted(0);
  Attestation lazy = Attest(Executor(), Exec(), good_);
  lazy.proof[0] ^= 1;
  auto actions = r.OnAttestation(Resign(lazy), 10);
  EXPECT_TRUE(OfType<DeliverProvisional>(actions).empty());
  auto starts = OfType<StartReferees>(actions);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].referees, roles_.referees);
  EXPECT_EQ(r.state(), RoundState::kDisputing);
  EXPECT_TRUE(r.OnSaltRevealed(salt_, 15).empty());
  EXPECT_EQ(r.counters().salt_unexpected, 1u);
  r.OnAttestation(Attest(roles_.referees[0], Exec(), good_), 20);
  auto res =
      OfType<DisputeResolved>(r.OnAttestation(Attest(roles_.referees[1], Exec(), good_), 30));
  ASSERT_EQ(res.size(), 1u);
  EXPECT_TRUE(res[0].losers.empty());
  EXPECT_TRUE(res[0].proofs_inconsistent);
}

TEST_F(XvRoundTest, UnrevealedSaltFinalizesTheExecutorsResultAfterTheTimeout) {
  Round r = Provisional(1'000, good_);
  EXPECT_TRUE(r.OnTick(1'000 + kSaltTimeout - 1).empty());
  auto certs = OfType<DeliverXvCertificate>(r.OnTick(1'000 + kSaltTimeout));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kCertified);
  const XvCertificate& c = certs[0].certificate;
  EXPECT_TRUE(c.unrevealed());
  EXPECT_TRUE(c.validators.empty());
  auto v = VerifyXvCertificate(c, good_, ctx_);
  EXPECT_TRUE(v.ok()) << v.reason;
  // The salt arriving after that changes nothing.
  EXPECT_TRUE(r.OnSaltRevealed(salt_, 1'000 + kSaltTimeout + 1).empty());
  EXPECT_EQ(r.counters().salt_unexpected, 1u);
}

TEST_F(XvRoundTest, WrongSaltIsIgnoredAndCounted) {
  UseSaltThat(false);
  Round r = Provisional(10, good_);
  XvSalt wrong = salt_;
  wrong[31] ^= 1;
  EXPECT_TRUE(r.OnSaltRevealed(wrong, 20).empty());
  EXPECT_TRUE(r.OnSaltRevealed(XvSalt{}, 21).empty());
  EXPECT_EQ(r.counters().salt_rejected, 2u);
  EXPECT_EQ(r.state(), RoundState::kAwaitingSalt);
  EXPECT_EQ(r.NextDeadline(), 10 + kSaltTimeout) << "a wrong salt does not move the deadline";
  auto certs = OfType<DeliverXvCertificate>(r.OnSaltRevealed(salt_, 30));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(certs[0].certificate.salt, salt_);
  EXPECT_TRUE(VerifyXvCertificate(certs[0].certificate, good_, ctx_).ok());
}

TEST_F(XvRoundTest, SaltBeforeTheExecutorAttestedIsIgnored) {
  UseSaltThat(false);
  Round r = Round::Make(XvInputs()).value();
  EXPECT_TRUE(r.OnSaltRevealed(salt_, 0).empty()) << "idle";
  r.Start(0);
  EXPECT_TRUE(r.OnSaltRevealed(salt_, 5).empty()) << "the executor has not committed yet";
  EXPECT_EQ(r.counters().salt_unexpected, 2u);
  EXPECT_EQ(r.state(), RoundState::kCollecting);
  // It was not remembered: the provisional result waits for a reveal after it.
  EXPECT_EQ(
      OfType<DeliverProvisional>(r.OnAttestation(Attest(Executor(), Exec(), good_), 10)).size(),
      1u);
  EXPECT_EQ(r.state(), RoundState::kAwaitingSalt);
  EXPECT_EQ(OfType<DeliverXvCertificate>(r.OnSaltRevealed(salt_, 20)).size(), 1u);
}

TEST_F(XvRoundTest, SaltInASamplingRoundIsIgnored) {
  RoundInputs in = Inputs();
  in.request.security = {SecurityMode::kSampling, 1, 0, 0, {}};
  in.draws = SelectCommittee(ctx_.epoch_seed, RequestId(in.request), ctx_.registry, 1,
                             BackupCount(1), RefereeCount(1))
                 .value();
  Round r = Round::Make(in).value();
  r.Start(0);
  r.OnAttestation(Attest(in.draws.committee[0], in.draws.committee, good_), 1);
  EXPECT_TRUE(r.OnSaltRevealed(salt_, 2).empty());
  EXPECT_EQ(r.counters().salt_unexpected, 1u);
}

TEST_F(XvRoundTest, ExecutorTimeoutHandsTheRequestToTheBackup) {
  UseSaltThat(true, /*executor_draw=*/1);
  Round r = XvStarted(0);
  EXPECT_TRUE(r.OnTick(kTimeout - 1).empty());
  auto actions = r.OnTick(kTimeout);
  const std::vector<Address> view = draws_.backups;
  auto sends = OfType<SendExecute>(actions);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].member, draws_.backups[0]);
  EXPECT_EQ(sends[0].slot, 0u);
  EXPECT_EQ(sends[0].committee, view);
  EXPECT_TRUE(OfType<UpdateCommittee>(actions).empty()) << "no one else to update";
  EXPECT_EQ(r.committee(), view);
  // The replaced executor's late answer is ignored.
  EXPECT_TRUE(r.OnAttestation(Attest(Executor(), Exec(), good_), kTimeout + 1).empty());
  EXPECT_EQ(r.counters().late, 1u);
  EXPECT_EQ(OfType<DeliverProvisional>(r.OnAttestation(Attest(view[0], view, good_), kTimeout + 2))
                .size(),
            1u);
  ASSERT_EQ(OfType<StartValidators>(r.OnSaltRevealed(salt_, kTimeout + 3)).size(), 1u);
  r.OnAttestation(Attest(roles_.validators[0], view, good_), kTimeout + 4);
  auto certs = OfType<DeliverXvCertificate>(
      r.OnAttestation(Attest(roles_.validators[1], view, good_), kTimeout + 5));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(certs[0].certificate.base.committee, view);
  auto v = VerifyXvCertificate(certs[0].certificate, good_, ctx_);
  EXPECT_TRUE(v.ok()) << v.reason;
}

TEST_F(XvRoundTest, ExecutorAndBackupSilentFails) {
  Round r = XvStarted(0);
  r.OnTick(kTimeout);
  auto fails = OfType<Fail>(r.OnTick(2 * kTimeout));
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kNoBackups);
}

TEST_F(XvRoundTest, SilentValidatorWithTheRestAgreeingFailsWithRefund) {
  UseSaltThat(true);
  Round r = Provisional(10, good_);
  r.OnSaltRevealed(salt_, 100);
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.validators[0], Exec(), good_), 200).empty());
  EXPECT_TRUE(r.OnTick(100 + kTimeout - 1).empty());
  auto actions = r.OnTick(100 + kTimeout);
  auto fails = OfType<Fail>(actions);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kValidatorsMissing);
  EXPECT_STREQ(FailReasonName(fails[0].reason), "validators missing");
  EXPECT_TRUE(fails[0].refund);
  EXPECT_EQ(r.state(), RoundState::kFailed);
  EXPECT_TRUE(
      r.OnAttestation(Attest(roles_.validators[1], Exec(), good_), 100 + kTimeout + 1).empty());
  EXPECT_EQ(r.counters().late, 1u);
}

TEST_F(XvRoundTest, SilentValidatorWithTheOtherDisagreeingStartsTheDisputeAtTheDeadline) {
  UseSaltThat(true);
  Round r = Provisional(10, good_);
  r.OnSaltRevealed(salt_, 100);
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.validators[1], Exec(), bad_), 200).empty());
  EXPECT_EQ(r.state(), RoundState::kValidating);
  auto starts = OfType<StartReferees>(r.OnTick(100 + kTimeout));
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kDisputing);
}

TEST_F(XvRoundTest, EquivocatingValidatorIsReportedAndDoesNotCount) {
  UseSaltThat(true);
  Round r = Provisional(10, good_);
  r.OnSaltRevealed(salt_, 100);
  const Attestation first = Attest(roles_.validators[0], Exec(), good_);
  r.OnAttestation(first, 110);
  auto actions = r.OnAttestation(Attest(roles_.validators[0], Exec(), bad_), 120);
  auto reports = OfType<ReportEquivocation>(actions);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].first, first);
  EXPECT_EQ(r.counters().equivocating, 1u);
  // The other validator agrees, but only 1 of 2 checks counts: no certificate.
  auto fails = OfType<Fail>(r.OnAttestation(Attest(roles_.validators[1], Exec(), good_), 130));
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].reason, FailReason::kValidatorsMissing);
}

TEST_F(XvRoundTest, EquivocatingExecutorAfterTheProvisionalResultIsReportedAndKept) {
  UseSaltThat(false);
  Round r = Provisional(10, good_);
  const Attestation exec = Attest(Executor(), Exec(), good_);
  auto reports = OfType<ReportEquivocation>(r.OnAttestation(Attest(Executor(), Exec(), bad_), 20));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(r.state(), RoundState::kAwaitingSalt);
  auto certs = OfType<DeliverXvCertificate>(r.OnSaltRevealed(salt_, 30));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(certs[0].certificate.base.attestations[0], exec) << "the attestation the coin is over";
}

TEST_F(XvRoundTest, ProbabilityOneAndZero) {
  // p = 10^6: always checked; p = 0: never.
  UseSalt(SaltWith(9), 1'000'000);
  Round r = Provisional(10, good_);
  EXPECT_EQ(OfType<StartValidators>(r.OnSaltRevealed(salt_, 20)).size(), 1u);
  UseSalt(SaltWith(9), 0);
  Round r0 = Provisional(10, good_);
  auto certs = OfType<DeliverXvCertificate>(r0.OnSaltRevealed(salt_, 20));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_TRUE(VerifyXvCertificate(certs[0].certificate, good_, ctx_).ok());
  // k = 0 with p = 10^6: a check by no one is complete at once.
  UseSalt(SaltWith(9), 1'000'000, 0);
  Round rk = Provisional(10, good_);
  certs = OfType<DeliverXvCertificate>(rk.OnSaltRevealed(salt_, 20));
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_TRUE(certs[0].certificate.validators.empty());
  auto v = VerifyXvCertificate(certs[0].certificate, good_, ctx_);
  EXPECT_TRUE(v.ok()) << v.reason;
}

TEST_F(XvRoundTest, UnaskedAndRepeatedAttestationsAreCounted) {
  UseSaltThat(true);
  Round r = XvStarted(0);
  // Validators and dispute referees before they are asked; the idle backup.
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.validators[0], Exec(), good_), 1).empty());
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.referees[0], Exec(), good_), 1).empty());
  EXPECT_TRUE(r.OnAttestation(Attest(draws_.backups[0], Exec(), good_), 1).empty());
  EXPECT_EQ(r.counters().not_participant, 3u);
  const Attestation exec = Attest(Executor(), Exec(), good_);
  r.OnAttestation(exec, 2);
  EXPECT_TRUE(r.OnAttestation(exec, 3).empty());
  EXPECT_EQ(r.counters().duplicate, 1u);
  // The same claim with another C after the provisional result: not used (the client holds the
  // first one, and the coin is over it).
  EXPECT_TRUE(r.OnAttestation(Attest(Executor(), draws_.backups, good_), 3).empty());
  EXPECT_EQ(r.counters().ignored_update, 1u);
  r.OnSaltRevealed(salt_, 4);
  ASSERT_EQ(r.state(), RoundState::kValidating);
  // Dispute referees during the check are still not participants.
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.referees[1], Exec(), good_), 5).empty());
  EXPECT_EQ(r.counters().not_participant, 4u);
  r.OnAttestation(Attest(roles_.validators[0], Exec(), good_), 6);
  EXPECT_TRUE(r.OnAttestation(Attest(roles_.validators[0], Exec(), good_), 7).empty());
  EXPECT_EQ(r.counters().duplicate, 2u);
  EXPECT_EQ(r.counters().accepted, 2u);
  EXPECT_EQ(r.counters().salt_rejected + r.counters().salt_unexpected, 0u);
}

}  // namespace
}  // namespace atoma::consensus
