// Cross-validation on both ledger backends (consensus/xv.h, DESIGN §4.6 "Cross-validation mode"):
// settlement of 0x02 certificates (SettlementItem::xv), disputes of a cross_validation request
// (executor + validators against the dispute referees), and atoma-cli verify's check of a 0x02
// certificate. Real keys; every certificate and attestation is made by the consensus library
// against the ledger's own epoch seed and frozen snapshot.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
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
using consensus::CertificateCheck;
using consensus::ConsensusOutput;
using consensus::ConsensusRequest;
using consensus::XvCertificate;
using test::Backend;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// 9 nodes: executor, backup, k = 2 validators and all RefereeCount(1) = 3 dispute referees can be
// drawn, with two nodes to spare.
constexpr size_t kNodes = 9;
constexpr uint64_t kK = 2;

class XvLedgerTest : public ::testing::Test,
                     public test::LedgerFixture,
                     public ::testing::WithParamInterface<Backend> {
 protected:
  void SetUp() override {
    dir_ = test::FreshTestDir("atoma_xv_ledger_");
    test::LedgerSetup setup;
    setup.nodes = kNodes;
    setup.key_prefix = 'd';
    setup.options.fee_per_token = Amount(2);  // 4 prompt + 16 completion tokens: fee 40
    setup.options.slash_bps = 1'000;
    setup.escrow = 1'000;
    setup.open = test::OpenerFor(GetParam());
    Create(dir_ / "ledger.db", setup);
  }
  void TearDown() override {
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }

  Amount Reward(const Address& a) const { return ledger_->RewardBalance(a).value(); }
  Amount Bonded(const Address& a) const { return ledger_->GetStake(a).value().bonded; }
  Amount TotalRewards() const {
    Amount total;
    for (const auto& k : keys_) total = CheckedAdd(total, Reward(k.address())).value();
    return total;
  }
  SettlementResult SettleOne(const SettlementItem& item) {
    return ledger_->SettleCertificates(submitter_, {&item, 1}).value().at(0);
  }
  // What a verifier knows for this ledger's epoch and echelon.
  consensus::CertificateContext Context() const {
    consensus::CertificateContext ctx;
    ctx.domain = params_.domain;
    ctx.epoch = epoch_.number;
    ctx.epoch_seed = epoch_.seed;
    ctx.echelon_id = echelon_;
    const std::vector<Candidate> snapshot =
        ledger_->EchelonSnapshot(epoch_.number, echelon_).value();
    for (const Candidate& c : snapshot) ctx.registry.push_back({c.address, c.stake});
    return ctx;
  }
  Attestation Resign(Attestation a) const {
    a.signature = KeyOf(a.member).Sign(consensus::AttestationDigest(a));
    return a;
  }

  // Dispute evidence for `c`: the executor (draw 0) attests `executor`, validator i (draw order)
  // attests `validators[i]` (fewer: the rest stayed silent), dispute referee j attests
  // `referees[j]`. Every C is over the committee [executor].
  DisputeEvidence Evidence(const XvCase& c, const ConsensusOutput& executor,
                           const std::vector<ConsensusOutput>& validators,
                           const std::vector<ConsensusOutput>& referees) const {
    const consensus::XvDraws roles = XvRolesOf(c.request);
    DisputeEvidence ev;
    ev.request = c.request;
    ev.client_signature = ClientSign(c.request);
    ev.committee = {XvDrawsOf(c.request).committee[0]};
    ev.member_attestations.push_back(XvAttest(ev.committee[0], c.request, ev.committee, executor));
    for (size_t i = 0; i < validators.size(); ++i) {
      ev.member_attestations.push_back(
          XvAttest(roles.validators[i], c.request, ev.committee, validators[i]));
    }
    for (size_t j = 0; j < referees.size(); ++j) {
      ev.referee_attestations.push_back(
          XvAttest(roles.referees[j], c.request, ev.committee, referees[j]));
    }
    return ev;
  }

  std::filesystem::path dir_;
  Address submitter_ = test::Actor(0);
  const ConsensusOutput good_ = Output(100);
  const ConsensusOutput bad_ = Output(900);
};
INSTANTIATE_TEST_SUITE_P(Backends, XvLedgerTest, ::testing::ValuesIn(test::AllBackends()),
                         test::BackendParamName);

// --- Settlement ---

TEST_P(XvLedgerTest, CoinNotDrawnPaysTheExecutorAlone) {
  const XvCase c = XvRequest(1, /*drawn=*/false);
  const SettlementItem item = XvHonest(c, /*reveal=*/true);
  ASSERT_TRUE(item.xv->validators.empty());
  const Address executor = item.certificate.committee[0];
  const SettlementResult r = SettleOne(item);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.request_id, consensus::RequestId(c.request));
  EXPECT_EQ(r.fee, Amount(40));
  EXPECT_EQ(Escrow(), Amount(960));
  EXPECT_EQ(Reward(executor), Amount(40));
  EXPECT_EQ(TotalRewards(), Amount(40));
  EXPECT_TRUE(ledger_->IsSettled(r.request_id).value());
  // No double settlement: the same table as sampling certificates.
  const SettlementResult again = SettleOne(item);
  EXPECT_EQ(again.status.code(), absl::StatusCode::kAlreadyExists) << again.status;
  EXPECT_EQ(Escrow(), Amount(960));
  const std::vector<SettlementRecord> records = ledger_->ListSettlements(0).value();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].fee, Amount(40));
}

TEST_P(XvLedgerTest, CoinDrawnPaysExecutorAndValidatorsInEqualShares) {
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const SettlementItem item = XvHonest(c, /*reveal=*/true);
  ASSERT_EQ(item.xv->validators.size(), kK);
  const consensus::XvDraws roles = XvRolesOf(c.request);
  const SettlementResult r = SettleOne(item);
  ASSERT_TRUE(r.status.ok()) << r.status;
  // 40 in 3 shares: 13 each, the remainder 1 to the executor.
  EXPECT_EQ(Reward(item.certificate.committee[0]), Amount(14));
  EXPECT_EQ(Reward(roles.validators[0]), Amount(13));
  EXPECT_EQ(Reward(roles.validators[1]), Amount(13));
  EXPECT_EQ(TotalRewards(), Amount(40));
  EXPECT_EQ(Escrow(), Amount(960));
  for (const Address& referee : roles.referees) EXPECT_TRUE(Reward(referee).IsZero());
}

TEST_P(XvLedgerTest, UnrevealedSaltPaysTheExecutorAlone) {
  // The coin would have drawn a check, but the client never revealed its salt.
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const SettlementItem item = XvHonest(c, /*reveal=*/false);
  ASSERT_TRUE(item.xv->unrevealed());
  const SettlementResult r = SettleOne(item);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Reward(item.certificate.committee[0]), Amount(40));
  EXPECT_EQ(TotalRewards(), Amount(40));
}

TEST_P(XvLedgerTest, BadCrossValidationItemsAreRejectedAndPayNothing) {
  const XvCase drawn = XvRequest(1, /*drawn=*/true);
  const SettlementItem good = XvHonest(drawn, /*reveal=*/true);
  std::vector<SettlementItem> batch;
  std::vector<std::pair<absl::StatusCode, CertificateCheck>> want;
  auto add = [&](SettlementItem item, absl::StatusCode code, CertificateCheck check) {
    batch.push_back(std::move(item));
    want.emplace_back(code, check);
  };
  // `certificate` is not `xv->base`.
  SettlementItem split = good;
  split.certificate.commitment[0] ^= 1;
  add(split, absl::StatusCode::kInvalidArgument, CertificateCheck::kMalformed);
  // A cross_validation request offered as a plain certificate: its base alone would verify.
  SettlementItem plain = good;
  plain.xv.reset();
  ASSERT_TRUE(consensus::VerifyCertificate(plain.certificate, plain.output, Context()).ok());
  add(plain, absl::StatusCode::kInvalidArgument, CertificateCheck::kMalformed);
  // The coin drew a check and the validators are missing.
  SettlementItem missing = good;
  missing.xv->validators.clear();
  add(missing, absl::StatusCode::kPermissionDenied, CertificateCheck::kMissingValidators);
  // A salt that does not hash to the request's salt_hash.
  SettlementItem salted = good;
  (*salted.xv->salt)[5] ^= 1;
  add(salted, absl::StatusCode::kPermissionDenied, CertificateCheck::kBadSalt);
  // Validator 1 copied C without executing (its p is not its own for the output).
  SettlementItem lazy = good;
  lazy.xv->validators[1].proof[0] ^= 1;
  lazy.xv->validators[1] = Resign(lazy.xv->validators[1]);
  add(lazy, absl::StatusCode::kPermissionDenied, CertificateCheck::kLazyMember);
  // Validator 0 attests another output's C.
  SettlementItem conflicting = good;
  conflicting.xv->validators[0] = XvAttest(XvRolesOf(drawn.request).validators[0], drawn.request,
                                           good.certificate.committee, bad_);
  add(conflicting, absl::StatusCode::kPermissionDenied, CertificateCheck::kConflictingCommitments);
  // A sampling certificate dressed as a cross-validation one.
  SettlementItem sampling = Honest(Request(2), Output());
  sampling.xv = XvCertificate{sampling.certificate, std::nullopt, {}};
  add(sampling, absl::StatusCode::kPermissionDenied, CertificateCheck::kMalformed);
  // An honest one whose fee (40) is above its max_fee.
  add(XvHonest(XvRequest(3, /*drawn=*/false, kK, 500'000, /*max_fee=*/39), true),
      absl::StatusCode::kFailedPrecondition, CertificateCheck::kValid);

  const std::vector<SettlementResult> results =
      ledger_->SettleCertificates(submitter_, batch).value();
  ASSERT_EQ(results.size(), batch.size());
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].status.code(), want[i].first) << i << ": " << results[i].status;
    EXPECT_EQ(results[i].check, want[i].second) << i << ": " << results[i].status;
  }
  EXPECT_EQ(results[4].member, 2) << "validator 1 is member 2 (the executor is 0)";
  EXPECT_EQ(results[5].member, 1);
  EXPECT_EQ(Escrow(), Amount(1'000));
  EXPECT_TRUE(TotalRewards().IsZero());
  EXPECT_TRUE(ledger_->ListSettlements(0).value().empty());
  // The honest certificate still settles afterwards.
  EXPECT_TRUE(SettleOne(good).status.ok());
}

TEST_P(XvLedgerTest, MixedBatchOfSamplingAndCrossValidationSettles) {
  const SettlementItem sampling = Honest(Request(1), Output());
  const SettlementItem drawn = XvHonest(XvRequest(2, /*drawn=*/true), true);
  const SettlementItem not_drawn = XvHonest(XvRequest(3, /*drawn=*/false), true);
  const std::vector<SettlementItem> batch = {sampling, drawn, not_drawn};
  const std::vector<SettlementResult> results =
      ledger_->SettleCertificates(submitter_, batch).value();
  for (const SettlementResult& r : results) EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(Escrow(), Amount(880));
  EXPECT_EQ(TotalRewards(), Amount(120)) << "every unit that left escrow is paid out";
}

// --- Disputes ---

TEST_P(XvLedgerTest, ExecutorWithAnotherOutputIsSlashedAndValidatorsArePaid) {
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const consensus::XvDraws roles = XvRolesOf(c.request);
  // The executor claims `bad_`; both validators and 2 of 3 dispute referees attest `good_`.
  const DisputeEvidence ev = Evidence(c, bad_, {good_, good_}, {good_, good_});
  const Address executor = ev.committee[0];
  const Amount stake = Bonded(executor);
  const Amount slash = DivMod(stake, Amount(10)).value().quotient;
  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->commitment, ev.member_attestations[1].commitment);
  EXPECT_THAT(result->slashed, ElementsAre(executor));
  EXPECT_EQ(result->slashed_total, slash);
  EXPECT_THAT(result->rewarded, ElementsAre(roles.validators[0], roles.validators[1],
                                            roles.referees[0], roles.referees[1]));
  EXPECT_EQ(result->fee, Amount(40));
  EXPECT_EQ(Bonded(executor), CheckedSub(stake, slash).value());
  EXPECT_EQ(Escrow(), Amount(960));
  const Amount pool = CheckedAdd(slash, Amount(40)).value();
  const DivModResult share = DivMod(pool, Amount(4)).value();
  EXPECT_EQ(Reward(roles.validators[0]), CheckedAdd(share.quotient, share.remainder).value());
  EXPECT_EQ(Reward(roles.validators[1]), share.quotient);
  EXPECT_EQ(Reward(roles.referees[1]), share.quotient);
  EXPECT_TRUE(Reward(roles.referees[2]).IsZero()) << "a silent referee gets nothing";
  EXPECT_EQ(TotalRewards(), pool);
  EXPECT_TRUE(ledger_->IsSettled(consensus::RequestId(c.request)).value());
  const std::vector<SlashRecord> slashings = ledger_->ListSlashings(0).value();
  ASSERT_EQ(slashings.size(), 1u);
  EXPECT_EQ(slashings[0].kind, "dispute");
  EXPECT_EQ(slashings[0].offender, executor);
}

TEST_P(XvLedgerTest, ValidatorWithAnotherOutputIsSlashedAndTheExecutorPaid) {
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const consensus::XvDraws roles = XvRolesOf(c.request);
  DisputeEvidence ev = Evidence(c, good_, {good_, bad_}, {good_, good_, good_});
  ev.output = good_;
  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->slashed, ElementsAre(roles.validators[1]));
  EXPECT_THAT(result->rewarded, ElementsAre(ev.committee[0], roles.validators[0], roles.referees[0],
                                            roles.referees[1], roles.referees[2]));
  EXPECT_EQ(result->fee, Amount(40));
  EXPECT_EQ(TotalRewards(), CheckedAdd(result->slashed_total, Amount(40)).value());
}

TEST_P(XvLedgerTest, LazyExecutorOrValidatorIsFoundWithTheOutput) {
  // Validator 0 copied the majority's C and made up its p: without the output nothing can be
  // blamed; with it, its p is not H(request_id, O, validator 0).
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const consensus::XvDraws roles = XvRolesOf(c.request);
  DisputeEvidence ev = Evidence(c, good_, {good_, good_}, {good_, good_});
  ev.member_attestations[1].proof[0] ^= 0xff;
  ev.member_attestations[1] = Resign(ev.member_attestations[1]);
  auto status = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("nothing to slash"));
  ev.output = good_;
  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->slashed, ElementsAre(roles.validators[0]));
  EXPECT_THAT(result->rewarded, ElementsAre(ev.committee[0], roles.validators[1], roles.referees[0],
                                            roles.referees[1]));

  // The executor signs the majority's C over a made-up p (H(p) != C): lazy, with the output.
  const XvCase c2 = XvRequest(2, /*drawn=*/true);
  DisputeEvidence ev2 = Evidence(c2, good_, {}, {good_, good_, good_});
  ev2.member_attestations[0].proof[3] ^= 0x10;
  ev2.member_attestations[0] = Resign(ev2.member_attestations[0]);
  ev2.output = good_;
  result = ledger_->SettleDispute(submitter_, ev2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->slashed, ElementsAre(ev2.committee[0]));
  EXPECT_THAT(result->rewarded, ElementsAreArray(XvRolesOf(c2.request).referees));
}

TEST_P(XvLedgerTest, ValidatorsInAnyOrderOrSomeSilentAreJudgedInDrawOrder) {
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const consensus::XvDraws roles = XvRolesOf(c.request);
  DisputeEvidence ev = Evidence(c, bad_, {good_, good_}, {good_, good_});
  std::swap(ev.member_attestations[1], ev.member_attestations[2]);
  auto result = ledger_->SettleDispute(submitter_, ev);
  ASSERT_TRUE(result.ok()) << result.status();
  // Draw order, not the submitter's: validator 0 gets the remainder.
  EXPECT_THAT(result->rewarded, ElementsAre(roles.validators[0], roles.validators[1],
                                            roles.referees[0], roles.referees[1]));

  // Only validator 1 attested (validator 0 stayed silent).
  const XvCase c2 = XvRequest(2, /*drawn=*/true);
  const consensus::XvDraws roles2 = XvRolesOf(c2.request);
  DisputeEvidence ev2 = Evidence(c2, bad_, {}, {good_, good_});
  ev2.member_attestations.push_back(
      XvAttest(roles2.validators[1], c2.request, ev2.committee, good_));
  result = ledger_->SettleDispute(submitter_, ev2);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->rewarded,
              ElementsAre(roles2.validators[1], roles2.referees[0], roles2.referees[1]));
}

TEST_P(XvLedgerTest, MisplacedValidatorsAndRefereesAreRejected) {
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const consensus::XvDraws roles = XvRolesOf(c.request);
  const consensus::CommitteeDraws draws = XvDrawsOf(c.request);
  const DisputeEvidence good = Evidence(c, bad_, {good_, good_}, {good_, good_});
  auto status = [&](const DisputeEvidence& ev) {
    return ledger_->SettleDispute(submitter_, ev).status();
  };
  // A dispute referee (or the backup) posing as a validator.
  for (const Address& impostor : {roles.referees[2], draws.backups[0]}) {
    DisputeEvidence ev = good;
    ev.member_attestations[2] = XvAttest(impostor, c.request, ev.committee, good_);
    const absl::Status s = status(ev);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_THAT(s.message(), HasSubstr("not drawn as a validator"));
  }
  // One validator twice.
  DisputeEvidence ev = good;
  ev.member_attestations[2] = ev.member_attestations[1];
  EXPECT_THAT(status(ev).message(), HasSubstr("attests twice"));
  // More than the executor and k validators.
  ev = good;
  ev.member_attestations.push_back(ev.member_attestations[1]);
  EXPECT_EQ(status(ev).code(), absl::StatusCode::kInvalidArgument);
  // A validator voting as a referee: validators are not referees.
  ev = good;
  ev.referee_attestations.push_back(ev.member_attestations[1]);
  EXPECT_THAT(status(ev).message(), HasSubstr("not drawn as a referee"));
  // A validator in the executor's slot.
  ev = good;
  ev.committee = {roles.validators[0]};
  EXPECT_EQ(status(ev).code(), absl::StatusCode::kPermissionDenied);
  // A validator attestation altered after signing.
  ev = good;
  ev.member_attestations[1].commitment[0] ^= 1;
  EXPECT_THAT(status(ev).message(), HasSubstr("validator"));
  // k above the protocol's bound: refused before anything is drawn.
  ev = good;
  ev.request.security.k = consensus::kMaxCommitteeSize + 1;
  EXPECT_EQ(status(ev).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ledger_->ListSlashings(0).value().empty());
  EXPECT_EQ(Escrow(), Amount(1'000));
  EXPECT_TRUE(ledger_->SettleDispute(submitter_, good).ok());
}

TEST_P(XvLedgerTest, MajorityIsOfTheDisputeRefereesNotTheValidators) {
  // Both validators side against the executor, but only 1 of the 3 dispute referees answered:
  // validators' votes do not count towards the majority.
  const XvCase c = XvRequest(1, /*drawn=*/true);
  const absl::Status s =
      ledger_->SettleDispute(submitter_, Evidence(c, bad_, {good_, good_}, {good_})).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("of 3 referees"));
  EXPECT_FALSE(ledger_->IsSettled(consensus::RequestId(c.request)).value());
}

TEST_P(XvLedgerTest, SettlementAndDisputeCloseTheRequestForEachOther) {
  // An unrevealed certificate settled first (the known limit: the ledger cannot tell that the
  // client revealed), then the dispute of the same request.
  const XvCase c = XvRequest(1, /*drawn=*/true);
  ASSERT_TRUE(SettleOne(XvHonest(c, /*reveal=*/false)).status.ok());
  const absl::Status s =
      ledger_->SettleDispute(submitter_, Evidence(c, bad_, {good_, good_}, {good_, good_}))
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  // And the other way round.
  const XvCase c2 = XvRequest(2, /*drawn=*/true);
  ASSERT_TRUE(
      ledger_->SettleDispute(submitter_, Evidence(c2, bad_, {good_, good_}, {good_, good_})).ok());
  const SettlementResult r = SettleOne(XvHonest(c2, /*reveal=*/true));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kAlreadyExists) << r.status;
  EXPECT_THAT(r.status.message(), HasSubstr("dispute")) << r.status;
}

TEST_P(XvLedgerTest, SamplingDisputeIsUnchangedByTheValidatorRule) {
  // A sampling committee cannot bring extra member attestations as "validators".
  const ConsensusRequest r = Request(1);
  const SettlementItem honest = Honest(r, good_);
  DisputeEvidence ev;
  ev.request = r;
  ev.client_signature = ClientSign(r);
  ev.committee = honest.certificate.committee;
  ev.member_attestations = honest.certificate.attestations;
  ev.member_attestations.push_back(honest.certificate.attestations[0]);
  const absl::Status s = ledger_->SettleDispute(submitter_, ev).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("one per member"));
}

// --- atoma-cli verify's check of a 0x02 certificate (cli::VerifyXvWithLedger) ---

TEST_P(XvLedgerTest, CliVerifyNamesEachOutcome) {
  struct Case {
    bool drawn;
    bool reveal;
    std::string verdict;
  };
  const std::vector<Case> cases = {
      {true, true, "executor + 2 validators (coin drawn)"},
      {false, true, "executor only (coin not drawn)"},
      {true, false, "executor only (salt never revealed)"},
  };
  uint64_t nonce = 1;
  for (const Case& k : cases) {
    const SettlementItem item = XvHonest(XvRequest(nonce++, k.drawn), k.reveal);
    // Through the file encoding, as the CLI reads it.
    const XvCertificate cert =
        consensus::DecodeXvCertificate(consensus::EncodeXvCertificate(*item.xv)).value();
    auto full = cli::VerifyXvWithLedger(*ledger_, cert, &item.output);
    ASSERT_TRUE(full.ok()) << full.status();
    EXPECT_THAT(*full, StartsWith("verified: " + k.verdict + "; output matches commitment C"));
    EXPECT_THAT(*full, HasSubstr("(client signature verified)"));
    EXPECT_THAT(*full, HasSubstr("executor " + crypto::AddressToString(cert.base.committee[0])));
    auto partial = cli::VerifyXvWithLedger(*ledger_, cert, nullptr);
    ASSERT_TRUE(partial.ok()) << partial.status();
    EXPECT_THAT(*partial, StartsWith("verified without output: " + k.verdict));
    EXPECT_THAT(*partial, HasSubstr("not checked: the output"));
  }
}

TEST_P(XvLedgerTest, CliVerifyRejectsBadCrossValidationCertificates) {
  const SettlementItem item = XvHonest(XvRequest(1, /*drawn=*/true), true);
  const XvCertificate& good = *item.xv;
  auto denied = [&](const XvCertificate& c, const ConsensusOutput* o) {
    auto v = cli::VerifyXvWithLedger(*ledger_, c, o);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kPermissionDenied) << v.status();
    return std::string(v.status().message());
  };
  // Another output: only the full check sees it.
  EXPECT_THAT(denied(good, &bad_), HasSubstr("not verified: C is not the commitment"));
  XvCertificate salted = good;
  (*salted.salt)[0] ^= 1;
  EXPECT_THAT(denied(salted, nullptr), HasSubstr("bad salt"));
  EXPECT_THAT(denied(salted, &item.output), HasSubstr("bad salt"));
  XvCertificate missing = good;
  missing.validators.pop_back();
  EXPECT_THAT(denied(missing, nullptr), HasSubstr("missing validators"));
  EXPECT_THAT(denied(missing, &item.output), HasSubstr("missing validators"));
  XvCertificate swapped = good;
  std::swap(swapped.validators[0], swapped.validators[1]);
  EXPECT_THAT(denied(swapped, nullptr), HasSubstr("validator 0: wrong committee"));
  XvCertificate lazy = good;
  lazy.validators[1].proof[0] ^= 1;
  lazy.validators[1] = Resign(lazy.validators[1]);
  EXPECT_TRUE(cli::VerifyXvWithLedger(*ledger_, lazy, nullptr).ok())
      << "a copied C needs the output to be seen";
  EXPECT_THAT(denied(lazy, &item.output), HasSubstr("validator 1: "));
  XvCertificate forged = good;
  forged.base.attestations[0].signature[7] ^= 1;
  EXPECT_THAT(denied(forged, nullptr), HasSubstr("not verified: executor: "));
  XvCertificate unauthorized = good;
  unauthorized.base.client_signature = keys_[1].Sign(
      consensus::ClientRequestDigest(params_.domain, consensus::RequestId(good.base.request)));
  EXPECT_THAT(denied(unauthorized, nullptr), HasSubstr("not verified: client: "));
  XvCertificate extra = XvHonest(XvRequest(2, /*drawn=*/false), true).xv.value();
  extra.validators = good.validators;
  EXPECT_THAT(denied(extra, nullptr), HasSubstr("coin drew no check"));
}

}  // namespace
}  // namespace atoma::ledger
