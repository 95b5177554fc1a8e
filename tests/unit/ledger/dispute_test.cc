// Dispute slashing on both ledger backends (LedgerClient::SettleDispute, DESIGN §4.6
// "Disagreement"): real keys, member and referee attestations made by the consensus library
// against the ledger's own epoch seed and frozen snapshot, and exact balances afterwards.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/ledger/ledger.h"
#include "backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/ledger_fixture.h"
#include "testing/temp_dir.h"

namespace atoma::ledger {
namespace {

using consensus::Attestation;
using consensus::ConsensusOutput;
using consensus::ConsensusRequest;
using test::Backend;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// 13 nodes: a committee of 3, its 3 backups and all 7 referees (RefereeCount(3)) can be drawn.
constexpr size_t kNodes = 13;

class DisputeFixture : public ::testing::Test, public test::LedgerFixture {
 protected:
  virtual Backend backend() const { return Backend::kEmbedded; }
  void SetUp() override {
    dir_ = test::FreshTestDir("atoma_dispute_");
    test::LedgerSetup setup;
    setup.nodes = kNodes;
    setup.key_prefix = 'e';
    setup.options.fee_per_token = Amount(2);
    setup.options.slash_bps = 1'000;  // 10%
    setup.escrow = 1'000;
    setup.open = test::OpenerFor(backend());
    Create(dir_ / "ledger.db", setup);
    ASSERT_FALSE(HasFatalFailure());
    request_ = Request(1);
    draws_ = Draws(request_);
    ASSERT_EQ(draws_.committee.size(), 3u);
    ASSERT_EQ(draws_.backups.size(), 3u);
    ASSERT_EQ(draws_.referees.size(), 7u);
    committee_ = draws_.committee;
  }
  void TearDown() override {
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }

  consensus::CommitteeDraws Draws(const ConsensusRequest& r) const {
    std::vector<consensus::Candidate> registry;
    const std::vector<Candidate> snapshot =
        ledger_->EchelonSnapshot(epoch_.number, echelon_).value();
    for (const Candidate& c : snapshot) {
      registry.push_back({c.address, c.stake});
    }
    return consensus::SelectCommittee(epoch_.seed, consensus::RequestId(r), registry, kCommittee,
                                      consensus::BackupCount(kCommittee),
                                      consensus::RefereeCount(kCommittee))
        .value();
  }

  Attestation Member(const Address& member, const std::vector<Address>& committee,
                     const ConsensusOutput& output) const {
    return consensus::MakeAttestation(params_.domain, consensus::RequestId(request_), echelon_,
                                      epoch_.number, committee, output,
                                      request_.prompt_token_ids.size(), KeyOf(member))
        .value();
  }
  Attestation Referee(size_t k, const ConsensusOutput& output) const {
    return consensus::MakeRefereeAttestation(
               params_.domain, consensus::RequestId(request_), echelon_, epoch_.number, committee_,
               output, request_.prompt_token_ids.size(), KeyOf(draws_.referees[k]))
        .value();
  }
  Attestation Resign(Attestation a) const {
    a.signature = KeyOf(a.member).Sign(consensus::AttestationDigest(a));
    return a;
  }

  // Members attest `members[i]`; referee k attests `referees[k]` (fewer: the rest stay silent).
  DisputeEvidence Evidence(const std::vector<ConsensusOutput>& members,
                           const std::vector<ConsensusOutput>& referees) const {
    DisputeEvidence ev;
    ev.request = request_;
    ev.client_signature = ClientSign(request_);
    ev.committee = committee_;
    for (size_t i = 0; i < committee_.size(); ++i) {
      ev.member_attestations.push_back(Member(committee_[i], committee_, members[i]));
    }
    for (size_t k = 0; k < referees.size(); ++k) {
      ev.referee_attestations.push_back(Referee(k, referees[k]));
    }
    return ev;
  }

  Amount Reward(const Address& a) const { return ledger_->RewardBalance(a).value(); }
  Amount Bonded(const Address& a) const { return ledger_->GetStake(a).value().bonded; }
  Amount TotalRewards() const {
    Amount total;
    for (const auto& k : keys_) total = CheckedAdd(total, Reward(k.address())).value();
    return total;
  }

  std::filesystem::path dir_;
  Address submitter_ = test::Actor(0);
  ConsensusRequest request_;
  consensus::CommitteeDraws draws_;
  std::vector<Address> committee_;
  const ConsensusOutput good_ = Output(100);
  const ConsensusOutput bad_ = Output(900);
};

// Run on both backends.
class DisputeTest : public DisputeFixture, public ::testing::WithParamInterface<Backend> {
 protected:
  Backend backend() const override { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Backends, DisputeTest, ::testing::ValuesIn(test::AllBackends()),
                         test::BackendParamName);

// Embedded only: each test says why.
class DisputeEmbeddedTest : public DisputeFixture {};

TEST_P(DisputeTest, DifferentOutputMemberIsSlashedAndTheOthersArePaid) {
  // Member 2 claims another output; referees 0..3 side with members 0 and 1, referee 4 with
  // member 2, referees 5 and 6 stay silent: 4 of 7 is a strict majority.
  const DisputeEvidence ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_, bad_});
  const Address loser = committee_[2];
  const Amount stake = Bonded(loser);
  const Amount slash = DivMod(stake, Amount(10)).value().quotient;

  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->request_id, consensus::RequestId(request_));
  EXPECT_EQ(result->commitment, ev.member_attestations[0].commitment);
  EXPECT_THAT(result->slashed, ElementsAreArray({loser}));
  EXPECT_EQ(result->slashed_total, slash);
  const std::vector<Address> rewarded = {committee_[0],      committee_[1],
                                         draws_.referees[0], draws_.referees[1],
                                         draws_.referees[2], draws_.referees[3]};
  EXPECT_EQ(result->rewarded, rewarded);
  // No output given: the fee is on the first majority referee's counts, 4 + 16 tokens at 2.
  EXPECT_EQ(result->fee, Amount(40));
  EXPECT_TRUE(result->fee_note.empty()) << result->fee_note;

  EXPECT_EQ(Bonded(loser), CheckedSub(stake, slash).value());
  EXPECT_EQ(Escrow(), Amount(960));
  // The pool (slash + fee) in 6 equal shares, the remainder to member 0.
  const Amount pool = CheckedAdd(slash, Amount(40)).value();
  const DivModResult share = DivMod(pool, Amount(6)).value();
  EXPECT_EQ(Reward(committee_[0]), CheckedAdd(share.quotient, share.remainder).value());
  for (size_t i = 1; i < rewarded.size(); ++i) {
    EXPECT_EQ(Reward(rewarded[i]), share.quotient) << i;
  }
  EXPECT_TRUE(Reward(loser).IsZero());
  EXPECT_TRUE(Reward(draws_.referees[4]).IsZero()) << "a dissenting referee gets nothing";
  EXPECT_TRUE(Reward(draws_.referees[5]).IsZero()) << "a silent referee gets nothing";
  EXPECT_TRUE(Reward(submitter_).IsZero());
  EXPECT_EQ(TotalRewards(), pool) << "every unit slashed or charged is paid out";

  EXPECT_TRUE(ledger_->IsSettled(result->request_id).value());
  const std::vector<SlashRecord> slashings = ledger_->ListSlashings(0).value();
  ASSERT_EQ(slashings.size(), 1u);
  EXPECT_EQ(slashings[0].kind, "dispute");
  EXPECT_EQ(slashings[0].offender, loser);
  EXPECT_EQ(slashings[0].request_id, result->request_id);
  EXPECT_EQ(slashings[0].reporter, submitter_);
  EXPECT_EQ(slashings[0].slashed, slash);
  EXPECT_TRUE(slashings[0].reporter_reward.IsZero());
  EXPECT_EQ(slashings[0].epoch, epoch_.number);
}

TEST_P(DisputeTest, MajorityOfMembersMayLose) {
  // Two members agree on a wrong output; the referees side with the single honest member. The
  // output is given, so the fee is on its token counts.
  DisputeEvidence ev = Evidence({bad_, good_, bad_}, {good_, good_, good_, good_, good_});
  ev.output = good_;
  const Amount s0 = DivMod(Bonded(committee_[0]), Amount(10)).value().quotient;
  const Amount s2 = DivMod(Bonded(committee_[2]), Amount(10)).value().quotient;
  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->slashed, ElementsAreArray({committee_[0], committee_[2]}));
  EXPECT_EQ(result->slashed_total, CheckedAdd(s0, s2).value());
  ASSERT_EQ(result->rewarded.size(), 6u);
  EXPECT_EQ(result->rewarded[0], committee_[1]);
  EXPECT_EQ(result->fee, Amount(40));
  EXPECT_EQ(TotalRewards(), CheckedAdd(result->slashed_total, Amount(40)).value());
  const std::vector<SlashRecord> slashings = ledger_->ListSlashings(0).value();
  ASSERT_EQ(slashings.size(), 2u);
  EXPECT_EQ(slashings[0].offender, committee_[0]);
  EXPECT_EQ(slashings[1].offender, committee_[2]);
  EXPECT_EQ(slashings[0].evidence_hash, slashings[1].evidence_hash) << "one dispute";
}

TEST_P(DisputeTest, LazyMemberIsFoundWithTheOutput) {
  // Member 1 copied C and made up p_1: every C is the majority's, so without the output there is
  // nothing the ledger can blame; with it, member 1's p_1 is not H(request_id, O, address_1).
  DisputeEvidence ev = Evidence({good_, good_, good_}, {good_, good_, good_, good_});
  Attestation& lazy = ev.member_attestations[1];
  lazy.proof[0] ^= 0xff;
  lazy = Resign(lazy);
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("nothing to slash"));
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(request_)).value());

  ev.output = good_;
  const Amount stake = Bonded(committee_[1]);
  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->slashed, ElementsAreArray({committee_[1]}));
  EXPECT_EQ(result->slashed_total, DivMod(stake, Amount(10)).value().quotient);
  const std::vector<Address> rewarded = {committee_[0],      committee_[2],
                                         draws_.referees[0], draws_.referees[1],
                                         draws_.referees[2], draws_.referees[3]};
  EXPECT_EQ(result->rewarded, rewarded);
  EXPECT_EQ(result->fee, Amount(40));
  EXPECT_EQ(Escrow(), Amount(960));
  EXPECT_EQ(TotalRewards(), CheckedAdd(result->slashed_total, Amount(40)).value());
}

TEST_P(DisputeTest, OutputMustBeTheMajoritysAndCommitteeMayHoldABackup) {
  // A backup replaced member 1 (the round's view); everyone attests for that committee.
  committee_[1] = draws_.backups[2];
  DisputeEvidence ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  ev.output = bad_;
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("not the referees' majority C"));
  ev.output = good_;
  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->slashed, ElementsAreArray({committee_[2]}));
  EXPECT_EQ(result->rewarded[1], draws_.backups[2]);
}

TEST_P(DisputeTest, NoStrictMajorityFailsAndChangesNothing) {
  // 3 / 3 / 1 silent of 7: 3 votes is not more than half.
  const DisputeEvidence ev =
      Evidence({good_, good_, bad_}, {good_, bad_, good_, bad_, good_, bad_});
  const Amount stake = Bonded(committee_[2]);
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("no strict majority"));
  // Silent referees count against: 3 of 7 agreeing and nobody else answering is no majority.
  status = ledger_->SettleDispute(submitter_, Evidence({good_, good_, bad_}, {good_, good_, good_}))
               .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(Bonded(committee_[2]), stake);
  EXPECT_EQ(Escrow(), Amount(1'000));
  EXPECT_TRUE(TotalRewards().IsZero());
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(request_)).value());
}

TEST_P(DisputeTest, ForgedRefereeSignatureIsRejected) {
  DisputeEvidence ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  // Referee 3's vote signed by member 0 (who would gain from it).
  Attestation& forged = ev.referee_attestations[3];
  forged.signature = KeyOf(committee_[0]).Sign(consensus::AttestationDigest(forged));
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("referee " + crypto::AddressToString(forged.member)))
      << status;
  // A vote altered after signing.
  ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  ev.referee_attestations[0].commitment[0] ^= 1;
  EXPECT_EQ(ledger_->SettleDispute(submitter_, ev).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
}

TEST_P(DisputeTest, RefereeNotDrawnOrCountedTwiceIsRejected) {
  DisputeEvidence base = Evidence({good_, good_, bad_}, {good_, good_, good_});
  // A backup (drawn, but not as a referee) votes with the majority, honestly signed.
  DisputeEvidence ev = base;
  ev.referee_attestations.push_back(
      consensus::MakeRefereeAttestation(params_.domain, consensus::RequestId(request_), echelon_,
                                        epoch_.number, committee_, good_, 4,
                                        KeyOf(draws_.backups[0]))
          .value());
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("not drawn as a referee"));
  // A member votes as a referee for itself.
  ev = base;
  ev.referee_attestations.push_back(ev.member_attestations[0]);
  status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  // One referee's vote twice (to make 4 of 7 out of 3).
  ev = base;
  ev.referee_attestations.push_back(ev.referee_attestations[0]);
  status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("attests twice"));
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
}

TEST_P(DisputeTest, BadClientCommitteeMembersOrEpochAreRejected) {
  const DisputeEvidence good = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  auto code = [&](const DisputeEvidence& ev) {
    return ledger_->SettleDispute(submitter_, ev).status().code();
  };
  // Without the client's authorization anyone could charge a client for a made-up dispute.
  DisputeEvidence ev = good;
  ev.client_signature =
      KeyOf(committee_[0])
          .Sign(consensus::ClientRequestDigest(params_.domain, consensus::RequestId(request_)));
  EXPECT_EQ(code(ev), absl::StatusCode::kPermissionDenied);
  // Not the drawn committee: members swapped, or a referee in a member's slot.
  ev = good;
  std::swap(ev.committee[0], ev.committee[1]);
  std::swap(ev.member_attestations[0], ev.member_attestations[1]);
  EXPECT_EQ(code(ev), absl::StatusCode::kPermissionDenied);
  ev = good;
  ev.committee[2] = draws_.referees[6];
  EXPECT_EQ(code(ev), absl::StatusCode::kPermissionDenied);
  // A member attestation by someone else than the member of its slot.
  ev = good;
  ev.member_attestations[2] = Member(committee_[1], committee_, bad_);
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("member 2"));
  // A member attestation signed for another epoch.
  ev = good;
  ev.member_attestations[2].epoch += 1;
  ev.member_attestations[2] = Resign(ev.member_attestations[2]);
  EXPECT_EQ(code(ev), absl::StatusCode::kPermissionDenied);
  // Malformed: one attestation short.
  ev = good;
  ev.member_attestations.pop_back();
  EXPECT_EQ(code(ev), absl::StatusCode::kInvalidArgument);
  // A request for an epoch that has not started.
  ev = good;
  ev.request.epoch = epoch_.number + 3;
  EXPECT_EQ(code(ev), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
  EXPECT_EQ(Escrow(), Amount(1'000));
  // The unaltered evidence settles.
  EXPECT_TRUE(ledger_->SettleDispute(submitter_, good).ok());
}

TEST_P(DisputeTest, DuplicateDisputeIsRejected) {
  const DisputeEvidence ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  ASSERT_TRUE(ledger_->SettleDispute(submitter_, ev).ok());
  const Amount stake = Bonded(committee_[2]);
  const Amount rewards = TotalRewards();
  // The same evidence, or another majority's worth of it: one dispute per request.
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(status.message(), HasSubstr("dispute")) << status;
  const DisputeEvidence more =
      Evidence({good_, good_, bad_}, {good_, good_, good_, good_, good_, good_});
  EXPECT_EQ(ledger_->SettleDispute(submitter_, more).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Bonded(committee_[2]), stake);
  EXPECT_EQ(TotalRewards(), rewards);
  EXPECT_EQ(Escrow(), Amount(960));
  EXPECT_EQ(ledger_->ListSlashings(0).value().size(), 1u);
}

TEST_P(DisputeTest, DisputeAfterSettlementIsRejected) {
  // The certificate of the honest committee settled first (members 0..2 all signed `good_`).
  const SettlementItem item = Honest(request_, good_);
  ASSERT_EQ(item.certificate.committee, committee_);
  ASSERT_TRUE(ledger_->SettleCertificates(submitter_, {&item, 1}).value()[0].status.ok());
  const DisputeEvidence ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(status.message(), HasSubstr("settled by a certificate")) << status;
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
  EXPECT_EQ(Escrow(), Amount(960));
}

TEST_P(DisputeTest, DisputeOfANonceAnotherRequestSettledIsRejected) {
  // Another request of the same client and nonce (another max_fee) settled by its certificate.
  const SettlementItem other = Honest(Request(request_.client_nonce, 2'000), good_);
  ASSERT_TRUE(ledger_->SettleCertificates(submitter_, {&other, 1}).value()[0].status.ok());
  const DisputeEvidence ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(status.message(), HasSubstr("a client nonce settles once")) << status;
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
}

TEST_P(DisputeTest, SettlementAfterDisputeIsRejected) {
  ASSERT_TRUE(
      ledger_
          ->SettleDispute(submitter_, Evidence({good_, good_, bad_}, {good_, good_, good_, good_}))
          .ok());
  // A certificate for the same request (e.g. the members re-signed one C) cannot be paid again.
  const SettlementItem item = Honest(request_, good_);
  auto results = ledger_->SettleCertificates(submitter_, {&item, 1}).value();
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kAlreadyExists) << results[0].status;
  EXPECT_THAT(results[0].status.message(), HasSubstr("settled by a dispute")) << results[0].status;
  EXPECT_EQ(Escrow(), Amount(960));
}

TEST_P(DisputeTest, ShortEscrowOrFeeAboveMaxFeeStillSlashesWithoutFee) {
  ASSERT_TRUE(
      test::WithdrawEscrowNow(*ledger_, client_, Amount(970)).ok());  // 30 left, the fee is 40
  const Amount stake = Bonded(committee_[2]);
  const Amount slash = DivMod(stake, Amount(10)).value().quotient;
  auto result = ledger_->SettleDispute(
      submitter_, Evidence({good_, good_, bad_}, {good_, good_, good_, good_}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->fee.IsZero());
  EXPECT_THAT(result->fee_note, HasSubstr("escrow"));
  EXPECT_THAT(result->fee_note, HasSubstr("30 < fee 40"));
  EXPECT_EQ(result->slashed_total, slash);
  EXPECT_EQ(Bonded(committee_[2]), CheckedSub(stake, slash).value());
  EXPECT_EQ(Escrow(), Amount(30));
  EXPECT_EQ(TotalRewards(), slash) << "the pool is the slashed stake alone";
  EXPECT_TRUE(ledger_->IsSettled(result->request_id).value());

  // Another request whose max_fee is below the fee: slashed, no fee.
  ASSERT_TRUE(ledger_->DepositEscrow(client_, Amount(1'000)).ok());
  request_ = Request(2, 39);
  draws_ = Draws(request_);
  committee_ = draws_.committee;
  result = ledger_->SettleDispute(submitter_,
                                  Evidence({good_, bad_, good_}, {good_, good_, good_, good_}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->fee.IsZero());
  EXPECT_THAT(result->fee_note, HasSubstr("exceeds max_fee 39"));
  EXPECT_EQ(Escrow(), Amount(1'030));
}

TEST_P(DisputeTest, EquivocationAndDisputeOnOneRequestAreTwoOffences) {
  // Member 2 signed two outputs (equivocation) and lost the dispute: slashed for each.
  const Attestation other = Member(committee_[2], committee_, Output(555));
  const DisputeEvidence ev = Evidence({good_, good_, bad_}, {good_, good_, good_, good_});
  ASSERT_TRUE(ledger_->ReportEquivocation(submitter_, ev.member_attestations[2], other).ok());
  ASSERT_TRUE(ledger_->SettleDispute(submitter_, ev).ok());
  const std::vector<SlashRecord> slashings = ledger_->ListSlashings(0).value();
  ASSERT_EQ(slashings.size(), 2u);
  EXPECT_EQ(slashings[0].kind, "equivocation");
  EXPECT_EQ(slashings[1].kind, "dispute");
  EXPECT_EQ(slashings[0].offender, slashings[1].offender);
}

// Embedded only: a schema migration.
TEST_F(DisputeEmbeddedTest, MigratesASchemaVersion2File) {
  // An equivocation slashed under schema 3, then the file turned back into schema 2's layout.
  const Attestation a = Member(committee_[0], committee_, good_);
  ASSERT_TRUE(
      ledger_->ReportEquivocation(submitter_, a, Member(committee_[0], committee_, bad_)).ok());
  ledger_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "ledger.db").string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE disputes; DROP TABLE closed_nonces; "
                         "DROP TABLE escrow_withdrawals; "
                         "DROP INDEX slashes_by_evidence; "
                         "CREATE TABLE slashes_v2(evidence_hash BLOB PRIMARY KEY, offender BLOB "
                         "NOT NULL, request_id BLOB NOT NULL, reporter BLOB NOT NULL, slashed "
                         "BLOB NOT NULL, reporter_reward BLOB NOT NULL, epoch INTEGER NOT NULL, "
                         "UNIQUE(offender, request_id)); "
                         "INSERT INTO slashes_v2 SELECT evidence_hash, offender, request_id, "
                         "reporter, slashed, reporter_reward, epoch FROM slashes; "
                         "DROP TABLE slashes; ALTER TABLE slashes_v2 RENAME TO slashes; "
                         "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ledger_ = OpenEmbeddedLedger(dir_ / "ledger.db").value();
  std::vector<SlashRecord> slashings = ledger_->ListSlashings(0).value();
  ASSERT_EQ(slashings.size(), 1u);
  EXPECT_EQ(slashings[0].kind, "equivocation");
  EXPECT_EQ(slashings[0].offender, committee_[0]);
  // The migrated file settles disputes.
  ASSERT_TRUE(
      ledger_
          ->SettleDispute(submitter_, Evidence({good_, good_, bad_}, {good_, good_, good_, good_}))
          .ok());
  EXPECT_EQ(ledger_->ListSlashings(0).value().size(), 2u);
  // A file of a future version is refused.
  ledger_.reset();
  ASSERT_EQ(sqlite3_open((dir_ / "ledger.db").string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '6' WHERE key = 'schema_version'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(OpenEmbeddedLedger(dir_ / "ledger.db").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace atoma::ledger
