// Settlement and equivocation slashing on both ledger backends (backends.h), with real keys and
// certificates made by the consensus library against the ledger's own epoch seed and frozen
// snapshot.
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
#include "atoma/crypto/sha256.h"
#include "atoma/ledger/ledger.h"
#include "backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/ledger_fixture.h"
#include "testing/temp_dir.h"
#include "verify.h"

namespace atoma::ledger {
namespace {

using consensus::Attestation;
using consensus::Certificate;
using consensus::CertificateCheck;
using consensus::ConsensusOutput;
using consensus::ConsensusRequest;
using test::Backend;
using ::testing::HasSubstr;

constexpr size_t kNodes = 6;

// A ledger with 6 registered, staked nodes serving one echelon, advanced to epoch 1 (whose
// snapshot holds them), and a funded client (test::LedgerFixture), on the backend of the test.
class SettlementFixture : public ::testing::Test, public test::LedgerFixture {
 protected:
  virtual Backend backend() const { return Backend::kEmbedded; }
  void SetUp() override {
    dir_ = test::FreshTestDir("atoma_settle_");
    test::LedgerSetup setup;
    setup.nodes = kNodes;
    setup.key_prefix = 'b';
    setup.options.fee_per_token = Amount(2);
    setup.options.slash_bps = 1'000;
    setup.options.reporter_share_bps = 2'500;
    setup.escrow = 1'000;
    setup.open = test::OpenerFor(backend());
    Create(dir_ / "ledger.db", setup);
  }
  void TearDown() override {
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }

  Amount Reward(const Address& a) const { return ledger_->RewardBalance(a).value(); }

  std::filesystem::path dir_;
  Address submitter_ = test::Actor(0);
};

// Run on both backends.
class SettlementTest : public SettlementFixture, public ::testing::WithParamInterface<Backend> {
 protected:
  Backend backend() const override { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Backends, SettlementTest, ::testing::ValuesIn(test::AllBackends()),
                         test::BackendParamName);

// Embedded only: each test says why.
class SettlementEmbeddedTest : public SettlementFixture {};

TEST_P(SettlementTest, ParamsAreStoredAndDomainIsPerLedger) {
  EXPECT_EQ(params_.domain.chain_id, 31337u);
  EXPECT_NE(params_.domain.ledger, Address{});
  EXPECT_EQ(params_.fee_per_token, Amount(2));
  EXPECT_EQ(params_.slash_bps, 1'000u);
  EXPECT_EQ(params_.reporter_share_bps, 2'500u);
  // Another ledger (file, contract) gets another domain by default.
  auto other = OpenAnother(dir_ / "other.db").value();
  EXPECT_NE(other->GetParams().value().domain.ledger, params_.domain.ledger);
}

// Embedded only: reopens the file with other options.
TEST_F(SettlementEmbeddedTest, ReopeningKeepsTheStoredParameters) {
  // Reopening keeps the stored parameters whatever the options say.
  EmbeddedLedgerOptions changed;
  changed.chain_id = 1;
  changed.fee_per_token = Amount(99);
  auto reopened = OpenEmbeddedLedger(dir_ / "ledger.db", changed).value();
  EXPECT_EQ(reopened->GetParams().value().domain, params_.domain);
  EXPECT_EQ(reopened->GetParams().value().fee_per_token, Amount(2));
}

// Embedded only: a schema migration.
TEST_F(SettlementEmbeddedTest, MigratesASchemaVersion1File) {
  // Turn the file back into what schema version 1 wrote, keeping the registry and balances.
  ledger_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "ledger.db").string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE settlements; DROP TABLE slashes; DROP TABLE disputes; "
                         "DROP TABLE closed_nonces; DROP TABLE escrow_withdrawals; "
                         "DELETE FROM meta WHERE key IN "
                         "('chain_id', 'ledger_address', 'fee_per_token', 'slash_bps', "
                         "'reporter_share_bps'); UPDATE meta SET value = '1' WHERE key = "
                         "'schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  EmbeddedLedgerOptions options;
  options.fee_per_token = Amount(2);
  options.ledger_address = params_.domain.ledger;
  ledger_ = OpenEmbeddedLedger(dir_ / "ledger.db", options).value();
  EXPECT_EQ(ledger_->GetParams().value().domain, params_.domain);
  EXPECT_EQ(Escrow(), Amount(1'000));
  const SettlementItem item = Honest(Request(1), Output());
  auto results = ledger_->SettleCertificates(submitter_, {&item, 1}).value();
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_EQ(Escrow(), Amount(960));
}

TEST_P(SettlementTest, HonestCertificateSettlesOnce) {
  const ConsensusRequest r = Request(1);
  const SettlementItem item = Honest(r, Output());
  const std::vector<Address>& members = item.certificate.committee;
  // 4 prompt + 16 completion tokens at 2 per token = 40; 40 / 3 = 13 each, remainder 1 to the
  // first member.
  auto results = ledger_->SettleCertificates(submitter_, {&item, 1}).value();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_EQ(results[0].request_id, consensus::RequestId(r));
  EXPECT_EQ(results[0].fee, Amount(40));
  EXPECT_EQ(Escrow(), Amount(960));
  EXPECT_EQ(Reward(members[0]), Amount(14));
  EXPECT_EQ(Reward(members[1]), Amount(13));
  EXPECT_EQ(Reward(members[2]), Amount(13));
  EXPECT_TRUE(ledger_->IsSettled(consensus::RequestId(r)).value());

  results = ledger_->SettleCertificates(submitter_, {&item, 1}).value();
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kAlreadyExists) << results[0].status;
  EXPECT_EQ(Escrow(), Amount(960));
  EXPECT_EQ(Reward(members[0]), Amount(14));

  // Twice in one batch: the second copy is a double settlement.
  const SettlementItem again = Honest(Request(2), Output());
  const std::vector<SettlementItem> batch = {again, again};
  results = ledger_->SettleCertificates(submitter_, batch).value();
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_EQ(results[1].status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Escrow(), Amount(920));
}

TEST_P(SettlementTest, RewardsAreWithdrawable) {
  // What settlement credited can be withdrawn, and no more (LedgerEmbeddedTest.RewardsWithdrawal
  // credits through the file instead).
  const SettlementItem item = Honest(Request(1), Output());
  ASSERT_TRUE(ledger_->SettleCertificates(submitter_, {&item, 1}).value()[0].status.ok());
  const Address member = item.certificate.committee[1];
  ASSERT_EQ(Reward(member), Amount(13));
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger_->WithdrawRewards(submitter_, Amount(1))));
  ASSERT_TRUE(ledger_->WithdrawRewards(member, Amount(5)).ok());
  const absl::Status over = ledger_->WithdrawRewards(member, Amount(9));
  EXPECT_TRUE(absl::IsFailedPrecondition(over)) << over;
  EXPECT_EQ(Reward(member), Amount(8));
  ASSERT_TRUE(ledger_->WithdrawRewards(member, Amount(8)).ok());
  EXPECT_TRUE(Reward(member).IsZero());
}

TEST_P(SettlementTest, SettlementSurvivesReopen) {
  const SettlementItem item = Honest(Request(1), Output());
  ASSERT_TRUE(ledger_->SettleCertificates(submitter_, {&item, 1}).value()[0].status.ok());
  ledger_ = Reopen().value();
  EXPECT_EQ(ledger_->SettleCertificates(submitter_, {&item, 1}).value()[0].status.code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Escrow(), Amount(960));
}

TEST_P(SettlementTest, AClientNonceSettlesOnce) {
  // The EVM ledger keeps one bit per (client, nonce), so both backends close the nonce, not only
  // the request id: another request with the same nonce (here another max_fee) cannot settle.
  const SettlementItem first = Honest(Request(7), Output());
  const SettlementItem second = Honest(Request(7, 2'000), Output());
  ASSERT_NE(consensus::RequestId(first.certificate.request),
            consensus::RequestId(second.certificate.request));
  EXPECT_FALSE(ledger_->IsNonceSettled(client_, 7).value());
  auto results = ledger_->SettleCertificates(submitter_, {&first, 1}).value();
  ASSERT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_TRUE(ledger_->IsNonceSettled(client_, 7).value());
  EXPECT_FALSE(ledger_->IsNonceSettled(client_, 8).value());
  EXPECT_FALSE(ledger_->IsNonceSettled(submitter_, 7).value());
  results = ledger_->SettleCertificates(submitter_, {&second, 1}).value();
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(results[0].status.message()), HasSubstr("nonce 7"));
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(second.certificate.request)).value());
  EXPECT_EQ(Escrow(), Amount(960));
  // In one batch as well: the first of two requests with one nonce settles.
  const std::vector<SettlementItem> batch = {Honest(Request(8), Output()),
                                             Honest(Request(8, 3'000), Output())};
  results = ledger_->SettleCertificates(submitter_, batch).value();
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_EQ(results[1].status.code(), absl::StatusCode::kAlreadyExists);
}

// Embedded only: a schema migration.
TEST_F(SettlementEmbeddedTest, MigratesASchemaVersion3File) {
  const SettlementItem item = Honest(Request(1), Output());
  ASSERT_TRUE(ledger_->SettleCertificates(submitter_, {&item, 1}).value()[0].status.ok());
  ledger_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "ledger.db").string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE closed_nonces; DROP TABLE escrow_withdrawals; "
                         "UPDATE meta SET value = '3' WHERE key = "
                         "'schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ledger_ = OpenEmbeddedLedger(dir_ / "ledger.db").value();
  // Settled before the migration: closed by its id.
  EXPECT_EQ(ledger_->SettleCertificates(submitter_, {&item, 1}).value()[0].status.code(),
            absl::StatusCode::kAlreadyExists);
  // Settled after it: closed by its nonce too.
  const SettlementItem later = Honest(Request(2), Output());
  const SettlementItem same_nonce = Honest(Request(2, 2'000), Output());
  ASSERT_TRUE(ledger_->SettleCertificates(submitter_, {&later, 1}).value()[0].status.ok());
  EXPECT_EQ(ledger_->SettleCertificates(submitter_, {&same_nonce, 1}).value()[0].status.code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_P(SettlementTest, FeeAboveMaxFeeIsRejected) {
  // 20 tokens at 2 = 40 > 39.
  const SettlementItem item = Honest(Request(1, 39), Output());
  auto results = ledger_->SettleCertificates(submitter_, {&item, 1}).value();
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(results[0].status.message(), HasSubstr("exceeds max_fee 39"));
  EXPECT_EQ(Escrow(), Amount(1'000));
  EXPECT_FALSE(ledger_->IsSettled(results[0].request_id).value());
  // Exactly max_fee is fine.
  const SettlementItem exact = Honest(Request(2, 40), Output());
  EXPECT_TRUE(ledger_->SettleCertificates(submitter_, {&exact, 1}).value()[0].status.ok());
}

TEST_P(SettlementTest, InsufficientEscrowIsRejected) {
  ASSERT_TRUE(test::WithdrawEscrowNow(*ledger_, client_, Amount(970)).ok());  // 30 left, fee is 40
  const SettlementItem item = Honest(Request(1), Output());
  auto results = ledger_->SettleCertificates(submitter_, {&item, 1}).value();
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(results[0].status.message(), HasSubstr("insufficient escrow"));
  EXPECT_EQ(Escrow(), Amount(30));
  for (const Address& m : item.certificate.committee) EXPECT_TRUE(Reward(m).IsZero());
  // Not settled, so it can settle once the client tops up.
  ASSERT_TRUE(ledger_->DepositEscrow(client_, Amount(10)).ok());
  EXPECT_TRUE(ledger_->SettleCertificates(submitter_, {&item, 1}).value()[0].status.ok());
  EXPECT_TRUE(Escrow().IsZero());
}

TEST_P(SettlementTest, SettlementDebitsAPendingWithdrawalWhichIsCappedAtTheBalance) {
  // The client asks for its whole escrow back; a request it made before settles afterwards.
  ASSERT_TRUE(ledger_->RequestEscrowWithdrawal(client_, Amount(1'000)).ok());
  const SettlementItem item = Honest(Request(1), Output());
  auto results = ledger_->SettleCertificates(submitter_, {&item, 1}).value();
  ASSERT_TRUE(results[0].status.ok()) << results[0].status;
  EscrowInfo escrow = ledger_->EscrowStatus(client_).value();
  EXPECT_EQ(escrow.balance, Amount(960));
  EXPECT_EQ(escrow.pending, Amount(1'000));
  EXPECT_EQ(escrow.unlock_epoch, epoch_.number + params_.unbonding_epochs);
  EXPECT_TRUE(escrow.withdrawable.IsZero());
  EXPECT_TRUE(EscrowUncommitted(escrow).IsZero());
  for (uint64_t i = 0; i < params_.unbonding_epochs; ++i) {
    ASSERT_TRUE(ledger_->AdvanceEpoch().ok());
  }
  // Unlocked, capped at what settlement left.
  EXPECT_EQ(ledger_->EscrowStatus(client_).value().withdrawable, Amount(960));
  const absl::Status over = ledger_->WithdrawEscrow(client_, Amount(1'000));
  EXPECT_TRUE(absl::IsFailedPrecondition(over)) << over;
  EXPECT_THAT(over.message(), HasSubstr("has 960 unlocked"));
  // Until it is paid out, an unlocked withdrawal is still escrow: a late certificate debits it.
  const SettlementItem late = Honest(Request(2), Output());
  results = ledger_->SettleCertificates(submitter_, {&late, 1}).value();
  ASSERT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_EQ(ledger_->EscrowStatus(client_).value().withdrawable, Amount(920));
  ASSERT_TRUE(ledger_->WithdrawEscrow(client_, Amount(920)).ok());
  // What settlement took from the pending amount is dropped with the payout.
  EXPECT_EQ(ledger_->EscrowStatus(client_).value(), EscrowInfo{});
  Amount paid;
  for (size_t i = 0; i < kNodes; ++i) paid = CheckedAdd(paid, Reward(keys_[i].address())).value();
  EXPECT_EQ(paid, Amount(80));
}

TEST_P(SettlementTest, ForgedAndWrongCommitteeCertificatesAreRejectedWithReason) {
  const ConsensusRequest r = Request(1);
  const SettlementItem honest = Honest(r, Output());

  // A non-member signs in a member's place (a forged attestation).
  SettlementItem forged = honest;
  const crypto::PrivateKey* outsider = nullptr;
  for (const auto& k : keys_) {
    if (std::find(honest.certificate.committee.begin(), honest.certificate.committee.end(),
                  k.address()) == honest.certificate.committee.end()) {
      outsider = &k;
      break;
    }
  }
  ASSERT_NE(outsider, nullptr);
  Attestation& a1 = forged.certificate.attestations[1];
  a1.signature = outsider->Sign(consensus::AttestationDigest(a1));

  // A committee that is not the draw: a node outside the echelon's snapshot (so neither a draw
  // nor a backup) replaces member 2 and attests honestly.
  const crypto::PrivateKey stranger =
      crypto::PrivateKey::FromHex(std::string(63, '0') + "9").value();
  SettlementItem wrong_committee = honest;
  wrong_committee.certificate.committee[2] = stranger.address();
  wrong_committee.certificate.attestations.clear();
  for (const Address& m : wrong_committee.certificate.committee) {
    wrong_committee.certificate.attestations.push_back(
        consensus::MakeAttestation(params_.domain, consensus::RequestId(r), echelon_, epoch_.number,
                                   wrong_committee.certificate.committee, wrong_committee.output,
                                   r.prompt_token_ids.size(),
                                   m == stranger.address() ? stranger : KeyOf(m))
            .value());
  }
  wrong_committee.certificate.commitment = wrong_committee.certificate.attestations[0].commitment;

  // Signed for another ledger (domain).
  SettlementItem other_domain = honest;
  consensus::Domain foreign = params_.domain;
  foreign.ledger[0] ^= 1;
  for (Attestation& a : other_domain.certificate.attestations) {
    a.domain = foreign;
    a.signature = KeyOf(a.member).Sign(consensus::AttestationDigest(a));
  }

  // The output handed in is not the one attested.
  SettlementItem wrong_output = honest;
  wrong_output.output = Output(200);

  const std::vector<SettlementItem> batch = {forged, wrong_committee, other_domain, wrong_output};
  auto results = ledger_->SettleCertificates(submitter_, batch).value();
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].check, CertificateCheck::kBadSignature);
  EXPECT_EQ(results[0].member, 1);
  EXPECT_EQ(results[1].check, CertificateCheck::kWrongCommittee);
  EXPECT_EQ(results[2].check, CertificateCheck::kWrongDomain);
  EXPECT_EQ(results[3].check, CertificateCheck::kWrongOutput);
  for (const SettlementResult& res : results) {
    EXPECT_EQ(res.status.code(), absl::StatusCode::kPermissionDenied) << res.status;
    EXPECT_THAT(res.status.message(), HasSubstr("does not verify"));
  }
  EXPECT_EQ(Escrow(), Amount(1'000));
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(r)).value());
}

TEST_P(SettlementTest, CertificateWithoutTheClientsAuthorizationIsRejected) {
  // Any node could otherwise invent a request in the client's name and be paid from its escrow.
  const ConsensusRequest r = Request(1);
  const SettlementItem honest = Honest(r, Output());
  SettlementItem unsigned_item = honest;
  unsigned_item.certificate.client_signature = {};
  // A committee member signs in the client's name.
  SettlementItem forged = honest;
  forged.certificate.client_signature =
      keys_[0].Sign(consensus::ClientRequestDigest(params_.domain, consensus::RequestId(r)));
  // The client's real signature, for another ledger.
  consensus::Domain foreign = params_.domain;
  foreign.ledger[3] ^= 1;
  SettlementItem other_domain = honest;
  other_domain.certificate.client_signature =
      client_key_.Sign(consensus::ClientRequestDigest(foreign, consensus::RequestId(r)));
  // The client's real signature, for another of its requests.
  SettlementItem other_request = honest;
  other_request.certificate.client_signature = ClientSign(Request(2));
  const std::vector<SettlementItem> batch = {unsigned_item, forged, other_domain, other_request};
  auto results = ledger_->SettleCertificates(submitter_, batch).value();
  ASSERT_EQ(results.size(), 4u);
  for (const SettlementResult& res : results) {
    EXPECT_EQ(res.status.code(), absl::StatusCode::kPermissionDenied) << res.status;
    EXPECT_EQ(res.check, CertificateCheck::kBadClientSignature) << res.status;
    EXPECT_EQ(res.member, -1);
    EXPECT_THAT(res.status.message(), HasSubstr("client signature"));
  }
  EXPECT_EQ(Escrow(), Amount(1'000));
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(r)).value());
  // The authorized certificate still settles.
  EXPECT_TRUE(ledger_->SettleCertificates(submitter_, {&honest, 1}).value()[0].status.ok());
  EXPECT_EQ(Escrow(), Amount(960));
}

TEST_P(SettlementTest, UnknownEpochAndEchelonAreRejected) {
  ConsensusRequest future = Request(1);
  future.epoch = epoch_.number + 5;
  SettlementItem item;
  item.certificate.request = future;
  item.output = Output();
  Attestation a;
  a.echelon_id = echelon_;
  item.certificate.attestations = {a};
  item.certificate.committee = {a.member};
  // Another echelon: the snapshot is empty, so no committee can be drawn from it.
  SettlementItem other_echelon = Honest(Request(2), Output());
  for (Attestation& att : other_echelon.certificate.attestations) {
    att.echelon_id[0] ^= 1;
    att.signature = KeyOf(att.member).Sign(consensus::AttestationDigest(att));
  }
  SettlementItem empty;
  const std::vector<SettlementItem> batch = {item, other_echelon, empty};
  auto results = ledger_->SettleCertificates(submitter_, batch).value();
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kNotFound) << results[0].status;
  EXPECT_EQ(results[1].status.code(), absl::StatusCode::kPermissionDenied) << results[1].status;
  EXPECT_EQ(results[1].check, CertificateCheck::kWrongCommittee);
  EXPECT_EQ(results[2].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Escrow(), Amount(1'000));
}

TEST_P(SettlementTest, MixedBatchSettlesOnlyTheGood) {
  const SettlementItem good1 = Honest(Request(1), Output());
  SettlementItem bad = Honest(Request(2), Output());
  bad.certificate.attestations[0].commitment[0] ^= 1;  // tampered after signing
  const SettlementItem too_dear = Honest(Request(3, 10), Output());
  const SettlementItem good2 = Honest(Request(4), Output(300));
  const std::vector<SettlementItem> batch = {good1, bad, too_dear, good2};
  auto results = ledger_->SettleCertificates(submitter_, batch).value();
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_EQ(results[1].status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(results[2].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(results[3].status.ok()) << results[3].status;
  EXPECT_EQ(Escrow(), Amount(1'000 - 40 - 40));
  // Rewards add up to exactly what left escrow.
  Amount total;
  for (const auto& k : keys_) total = CheckedAdd(total, Reward(k.address())).value();
  EXPECT_EQ(total, Amount(80));
  EXPECT_FALSE(ledger_->IsSettled(results[1].request_id).value());
  EXPECT_FALSE(ledger_->IsSettled(results[2].request_id).value());
}

TEST_P(SettlementTest, OversizedBatchIsRejected) {
  std::vector<SettlementItem> batch(LedgerClient::kMaxSettlementBatch + 1);
  EXPECT_EQ(ledger_->SettleCertificates(submitter_, batch).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Equivocation ---

class EquivocationTest : public SettlementTest {
 protected:
  // Member 0's attestation of `output` for request `r`.
  Attestation Attest(const ConsensusRequest& r, const ConsensusOutput& output) const {
    const std::vector<Address> committee = CommitteeOf(r);
    return consensus::MakeAttestation(params_.domain, consensus::RequestId(r), echelon_,
                                      epoch_.number, committee, output, r.prompt_token_ids.size(),
                                      KeyOf(committee[0]))
        .value();
  }
  Address reporter_ = test::Actor(7);
};
INSTANTIATE_TEST_SUITE_P(Backends, EquivocationTest, ::testing::ValuesIn(test::AllBackends()),
                         test::BackendParamName);

TEST_P(EquivocationTest, SlashesOnceAndPaysTheReporter) {
  const ConsensusRequest r = Request(1);
  const Attestation a = Attest(r, Output(100));
  const Attestation b = Attest(r, Output(500));
  const Address offender = a.member;
  // Unbond part of the stake: still locked, so still slashable.
  const Amount before = ledger_->GetStake(offender).value().bonded;
  ASSERT_TRUE(ledger_->Unstake(offender, Amount(1'000)).ok());
  const Amount locked = before;  // bonded + unbonding

  auto slash = ledger_->ReportEquivocation(reporter_, a, b);
  ASSERT_TRUE(slash.ok()) << slash.status();
  EXPECT_EQ(slash->offender, offender);
  // 10% of the locked stake, a quarter of it to the reporter.
  const Amount expected = DivMod(locked, Amount(10)).value().quotient;
  EXPECT_EQ(slash->slashed, expected);
  EXPECT_EQ(slash->reporter_reward, DivMod(expected, Amount(4)).value().quotient);
  EXPECT_EQ(Reward(reporter_), slash->reporter_reward);
  const StakeInfo after = ledger_->GetStake(offender).value();
  Amount remaining = after.bonded;
  for (const UnbondingEntry& e : after.unbonding)
    remaining = CheckedAdd(remaining, e.amount).value();
  EXPECT_EQ(CheckedAdd(remaining, expected).value(), locked);
  // Taken from bonded first; the unbonding entry is untouched.
  ASSERT_EQ(after.unbonding.size(), 1u);
  EXPECT_EQ(after.unbonding[0].amount, Amount(1'000));

  // The same evidence again, swapped, or a third variant for the same request: slashed already.
  EXPECT_EQ(ledger_->ReportEquivocation(reporter_, a, b).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger_->ReportEquivocation(reporter_, b, a).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger_->ReportEquivocation(reporter_, a, Attest(r, Output(900))).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ledger_->GetStake(offender).value().bonded, after.bonded);
  EXPECT_EQ(Reward(reporter_), slash->reporter_reward);

  // Another request is another offence.
  const ConsensusRequest r2 = Request(2);
  const Attestation c = Attest(r2, Output(100));
  const Attestation d = Attest(r2, Output(101));
  if (c.member == offender) {
    EXPECT_TRUE(ledger_->ReportEquivocation(reporter_, c, d).ok());
    EXPECT_LT(ledger_->GetStake(offender).value().bonded, after.bonded);
  }
}

TEST_P(EquivocationTest, SlashReachesUnbondingStakeWhenBondedRunsShort) {
  const ConsensusRequest r = Request(1);
  const Attestation a = Attest(r, Output(100));
  const Attestation b = Attest(r, Output(500));
  const Amount bonded = ledger_->GetStake(a.member).value().bonded;
  // Keep 1 bonded, the rest unbonding: the 10% must come mostly from the unbonding entry.
  ASSERT_TRUE(ledger_->Unstake(a.member, CheckedSub(bonded, Amount(1)).value()).ok());
  auto slash = ledger_->ReportEquivocation(reporter_, a, b);
  ASSERT_TRUE(slash.ok()) << slash.status();
  EXPECT_EQ(slash->slashed, DivMod(bonded, Amount(10)).value().quotient);
  const StakeInfo after = ledger_->GetStake(a.member).value();
  EXPECT_TRUE(after.bonded.IsZero());
  ASSERT_EQ(after.unbonding.size(), 1u);
  EXPECT_EQ(CheckedAdd(after.unbonding[0].amount, slash->slashed).value(),
            CheckedSub(bonded, Amount(0)).value());
}

TEST_P(EquivocationTest, NonEquivocatingPairsAreRejected) {
  const ConsensusRequest r = Request(1);
  const Attestation a = Attest(r, Output(100));
  const Amount stake = ledger_->GetStake(a.member).value().bonded;

  // The same attestation twice.
  EXPECT_EQ(ledger_->ReportEquivocation(reporter_, a, a).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Same content, another (forged) signature bytes: still one statement, and a bad signature.
  // Two different requests.
  const Attestation other_request = Attest(Request(2), Output(500));
  if (other_request.member == a.member) {
    EXPECT_EQ(ledger_->ReportEquivocation(reporter_, a, other_request).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  // Two members of one committee that disagree: a dispute, not equivocation.
  const std::vector<Address> committee = CommitteeOf(r);
  const Attestation by_other =
      consensus::MakeAttestation(params_.domain, consensus::RequestId(r), echelon_, epoch_.number,
                                 committee, Output(500), r.prompt_token_ids.size(),
                                 KeyOf(committee[1]))
          .value();
  EXPECT_EQ(ledger_->ReportEquivocation(reporter_, a, by_other).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A "conflicting" attestation the member never signed (signed by someone else).
  Attestation forged = Attest(r, Output(500));
  forged.signature = KeyOf(committee[1]).Sign(consensus::AttestationDigest(forged));
  auto status = ledger_->ReportEquivocation(reporter_, a, forged).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  // Validly signed, but for another ledger's domain.
  Attestation foreign = Attest(r, Output(500));
  foreign.domain.chain_id += 1;
  foreign.signature = KeyOf(a.member).Sign(consensus::AttestationDigest(foreign));
  EXPECT_EQ(ledger_->ReportEquivocation(reporter_, a, foreign).status().code(),
            absl::StatusCode::kPermissionDenied);

  EXPECT_EQ(ledger_->GetStake(a.member).value().bonded, stake);
  EXPECT_TRUE(Reward(reporter_).IsZero());
}

TEST_P(EquivocationTest, ViewUpdateIsNotEquivocation) {
  // Member 0 attests, then a backup replaces member 2 and member 0 re-attests the same output
  // for the new committee: another C, same claim. Honest; must not be slashed.
  const ConsensusRequest r = Request(1);
  const std::vector<Address> committee = CommitteeOf(r);
  const Attestation a = Attest(r, Output(100));
  std::vector<Address> view = committee;
  for (const auto& k : keys_) {
    if (std::find(committee.begin(), committee.end(), k.address()) == committee.end()) {
      view[2] = k.address();
      break;
    }
  }
  ASSERT_NE(view, committee);
  const Attestation update =
      consensus::MakeAttestation(params_.domain, consensus::RequestId(r), echelon_, epoch_.number,
                                 view, Output(100), r.prompt_token_ids.size(), KeyOf(a.member))
          .value();
  ASSERT_NE(update.commitment, a.commitment);
  const Amount stake = ledger_->GetStake(a.member).value().bonded;
  for (const auto& [x, y] : {std::pair{a, update}, std::pair{update, a}}) {
    const absl::Status status = ledger_->ReportEquivocation(reporter_, x, y).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(),
                HasSubstr("not equivocation: a view update (same output, another committee)"));
  }
  EXPECT_EQ(ledger_->GetStake(a.member).value().bonded, stake);
  EXPECT_TRUE(Reward(reporter_).IsZero());
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());

  // Same C, another claim (a different echelon, validly signed): equivocation.
  Attestation other_echelon = a;
  other_echelon.echelon_id[0] ^= 1;
  other_echelon.signature = KeyOf(a.member).Sign(consensus::AttestationDigest(other_echelon));
  auto slash = ledger_->ReportEquivocation(reporter_, a, other_echelon);
  ASSERT_TRUE(slash.ok()) << slash.status();
  EXPECT_LT(ledger_->GetStake(a.member).value().bonded, stake);
  // Another epoch is another claim too (for another request, as this one is slashed already).
  const ConsensusRequest r2 = Request(2);
  const Attestation c = Attest(r2, Output(100));
  Attestation other_epoch = c;
  other_epoch.epoch += 1;
  other_epoch.signature = KeyOf(c.member).Sign(consensus::AttestationDigest(other_epoch));
  EXPECT_TRUE(ledger_->ReportEquivocation(reporter_, c, other_epoch).ok());
}

TEST_P(EquivocationTest, UnregisteredSignerIsNotFound) {
  const crypto::PrivateKey stranger =
      crypto::PrivateKey::FromHex(std::string(63, '0') + "9").value();
  const ConsensusRequest r = Request(1);
  const std::vector<Address> committee = {stranger.address()};
  ConsensusRequest solo = r;
  solo.security = {consensus::SecurityMode::kNone, 0, 0, 0, {}};
  auto make = [&](uint32_t first) {
    return consensus::MakeAttestation(params_.domain, consensus::RequestId(solo), echelon_,
                                      epoch_.number, committee, Output(first), 4, stranger)
        .value();
  };
  EXPECT_EQ(ledger_->ReportEquivocation(reporter_, make(1), make(2)).status().code(),
            absl::StatusCode::kNotFound);
}

// --- Read-only listings (ListNodes, SnapshotEchelons, ListSettlements, ListSlashings) ---

TEST_P(SettlementTest, ListsNodesAndSnapshotEchelons) {
  std::vector<Address> expected;
  for (const auto& k : keys_) expected.push_back(k.address());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(ledger_->ListNodes().value(), expected);
  EXPECT_THAT(ledger_->SnapshotEchelons(epoch_.number).value(), ::testing::ElementsAre(echelon_));
  // Epoch 0 was opened before any stake: no snapshot.
  EXPECT_TRUE(ledger_->SnapshotEchelons(0).value().empty());
  EXPECT_EQ(ledger_->SnapshotEchelons(epoch_.number + 1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(SettlementTest, ListsSettlementsWithLimit) {
  EXPECT_TRUE(ledger_->ListSettlements(0).value().empty());
  std::vector<SettlementItem> items = {Honest(Request(1), Output()), Honest(Request(2), Output())};
  auto results = ledger_->SettleCertificates(client_, items);
  ASSERT_TRUE(results.ok()) << results.status();
  for (const auto& r : *results) ASSERT_TRUE(r.status.ok()) << r.status;

  const std::vector<SettlementRecord> all = ledger_->ListSettlements(0).value();
  ASSERT_EQ(all.size(), 2u);
  std::vector<Hash256> ids = {(*results)[0].request_id, (*results)[1].request_id};
  std::sort(ids.begin(), ids.end());  // same settled epoch: ordered by request id
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(all[i].request_id, ids[i]);
    EXPECT_EQ(all[i].request_epoch, epoch_.number);
    EXPECT_EQ(all[i].settled_epoch, epoch_.number);
    EXPECT_EQ(all[i].client, client_);
    EXPECT_EQ(all[i].submitter, client_);
    EXPECT_EQ(all[i].fee, (*results)[0].fee);
  }
  const std::vector<SettlementRecord> last = ledger_->ListSettlements(1).value();
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].request_id, ids[1]);
}

TEST_P(EquivocationTest, ListsSlashings) {
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
  const ConsensusRequest r = Request(1);
  auto slash = ledger_->ReportEquivocation(reporter_, Attest(r, Output(100)), Attest(r, Output(7)));
  ASSERT_TRUE(slash.ok()) << slash.status();
  const std::vector<SlashRecord> all = ledger_->ListSlashings(0).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].offender, slash->offender);
  EXPECT_EQ(all[0].evidence_hash, slash->evidence_hash);
  EXPECT_EQ(all[0].request_id, consensus::RequestId(r));
  EXPECT_EQ(all[0].reporter, reporter_);
  EXPECT_EQ(all[0].slashed, slash->slashed);
  EXPECT_EQ(all[0].reporter_reward, slash->reporter_reward);
  EXPECT_EQ(all[0].epoch, epoch_.number);
  EXPECT_EQ(ledger_->ListSlashings(5).value().size(), 1u);
}

// --- atoma-cli verify's check (cli::VerifyWithLedger) against this ledger ---

TEST_P(SettlementTest, CliVerifyAcceptsHonestCertificateWithAndWithoutOutput) {
  const SettlementItem item = Honest(Request(1), Output());
  // Through the file encoding, as the CLI reads it.
  const Certificate cert =
      consensus::DecodeCertificate(consensus::EncodeCertificate(item.certificate)).value();
  auto full = cli::VerifyWithLedger(*ledger_, cert, &item.output);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_THAT(*full, HasSubstr("verified: 3/3 members, committee matches epoch 1 seed"));
  EXPECT_THAT(*full, HasSubstr("(client signature verified)"));
  auto partial = cli::VerifyWithLedger(*ledger_, cert, nullptr);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_THAT(*partial, HasSubstr("verified without output: 3/3 members"));
  EXPECT_THAT(*partial, HasSubstr("not checked: the output"));
  EXPECT_THAT(*partial, HasSubstr("authorized by client " + crypto::AddressToString(client_)));
}

TEST_P(SettlementTest, CliVerifyRejectsBadCertificatesWithReason) {
  const SettlementItem item = Honest(Request(1), Output());
  auto denied = [&](const Certificate& c, const ConsensusOutput* o) {
    auto v = cli::VerifyWithLedger(*ledger_, c, o);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kPermissionDenied) << v.status();
    return std::string(v.status().message());
  };
  // Another output than the certified one: only the full check can see it.
  const ConsensusOutput other = Output(500);
  EXPECT_THAT(denied(item.certificate, &other), HasSubstr("not verified"));

  // Members swapped: not the draw of the epoch seed, with or without the output.
  Certificate swapped = item.certificate;
  std::swap(swapped.committee[0], swapped.committee[1]);
  std::swap(swapped.attestations[0], swapped.attestations[1]);
  EXPECT_THAT(denied(swapped, nullptr), HasSubstr("wrong committee"));
  EXPECT_THAT(denied(swapped, &item.output), HasSubstr("not verified"));

  // A forged signature.
  Certificate forged = item.certificate;
  forged.attestations[2].signature[5] ^= 0x01;
  EXPECT_THAT(denied(forged, nullptr), HasSubstr("member 2"));

  // A request for an epoch that has not started.
  Certificate future = item.certificate;
  future.request.epoch = 7;
  EXPECT_THAT(denied(future, nullptr), HasSubstr("epoch 7 has not started"));

  // The certificate claims another C than its members attested.
  Certificate conflicting = item.certificate;
  conflicting.commitment[0] ^= 0x01;
  EXPECT_THAT(denied(conflicting, nullptr), HasSubstr("conflicting commitment"));

  // Not authorized by the client: with and without the output.
  Certificate unauthorized = item.certificate;
  unauthorized.client_signature = keys_[1].Sign(consensus::ClientRequestDigest(
      params_.domain, consensus::RequestId(item.certificate.request)));
  EXPECT_THAT(denied(unauthorized, nullptr), HasSubstr("not verified: client: client signature"));
  EXPECT_THAT(denied(unauthorized, &item.output),
              HasSubstr("not verified: client: client signature"));

  Certificate empty = item.certificate;
  empty.attestations.clear();
  EXPECT_THAT(denied(empty, nullptr), HasSubstr("no attestations"));
}

}  // namespace
}  // namespace atoma::ledger
