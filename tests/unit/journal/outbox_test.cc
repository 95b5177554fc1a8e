// The settlement outbox against a real embedded ledger with real keys and certificates: batches,
// exactly-once settlement, retries after UNAVAILABLE (including a lost response), a restart
// mid-way, and final rejections that are never retried.
#include "atoma/journal/outbox.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "atoma/journal/journal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/ledger_fixture.h"
#include "testing/temp_dir.h"

namespace atoma::journal {
namespace {

using ::testing::HasSubstr;

// Delegates to a real ledger and injects faults into SettleCertificates.
class FaultyLedger final : public ledger::LedgerClient {
 public:
  explicit FaultyLedger(ledger::LedgerClient& inner) : inner_(inner) {}

  // The next `n` calls fail with UNAVAILABLE before reaching the ledger.
  std::atomic<int> fail_before = 0;
  // The next `n` calls reach the ledger (and commit) but their response is lost: UNAVAILABLE.
  std::atomic<int> lose_response = 0;
  // When set, every item gets this status without reaching the ledger.
  std::optional<absl::Status> item_status;
  std::atomic<int> calls = 0;
  std::atomic<size_t> items_sent = 0;

  absl::StatusOr<std::vector<ledger::SettlementResult>> SettleCertificates(
      const ledger::Address& submitter, std::span<const ledger::SettlementItem> items) override {
    ++calls;
    items_sent += items.size();
    if (fail_before > 0) {
      --fail_before;
      return absl::UnavailableError("injected: ledger busy");
    }
    if (item_status) {
      std::vector<ledger::SettlementResult> out(items.size());
      for (auto& r : out) r.status = *item_status;
      return out;
    }
    auto result = inner_.SettleCertificates(submitter, items);
    if (lose_response > 0) {
      --lose_response;
      return absl::UnavailableError("injected: response lost after commit");
    }
    return result;
  }

  absl::StatusOr<ledger::Params> GetParams() override { return inner_.GetParams(); }
  absl::Status RegisterNode(const ledger::Address& n, const std::string& e,
                            const std::vector<ledger::EchelonRef>& x) override {
    return inner_.RegisterNode(n, e, x);
  }
  absl::Status UpdateNode(const ledger::Address& n, const std::string& e,
                          const std::vector<ledger::EchelonRef>& x) override {
    return inner_.UpdateNode(n, e, x);
  }
  absl::StatusOr<ledger::NodeInfo> GetNode(const ledger::Address& n) override {
    return inner_.GetNode(n);
  }
  absl::Status Stake(const ledger::Address& n, const ledger::Amount& a) override {
    return inner_.Stake(n, a);
  }
  absl::Status Unstake(const ledger::Address& n, const ledger::Amount& a) override {
    return inner_.Unstake(n, a);
  }
  absl::StatusOr<ledger::StakeInfo> GetStake(const ledger::Address& n) override {
    return inner_.GetStake(n);
  }
  absl::Status WithdrawStake(const ledger::Address& n, const ledger::Amount& a) override {
    return inner_.WithdrawStake(n, a);
  }
  absl::StatusOr<ledger::Epoch> CurrentEpoch() override { return inner_.CurrentEpoch(); }
  absl::StatusOr<ledger::Epoch> GetEpoch(uint64_t n) override { return inner_.GetEpoch(n); }
  absl::StatusOr<ledger::Epoch> AdvanceEpoch() override { return inner_.AdvanceEpoch(); }
  absl::StatusOr<ledger::Epoch> AdvanceEpochFrom(uint64_t c) override {
    return inner_.AdvanceEpochFrom(c);
  }
  absl::StatusOr<std::vector<ledger::Candidate>> EchelonSnapshot(uint64_t e,
                                                                 const Hash256& id) override {
    return inner_.EchelonSnapshot(e, id);
  }
  absl::Status DepositEscrow(const ledger::Address& c, const ledger::Amount& a) override {
    return inner_.DepositEscrow(c, a);
  }
  absl::StatusOr<ledger::Amount> EscrowBalance(const ledger::Address& c) override {
    return inner_.EscrowBalance(c);
  }
  absl::StatusOr<ledger::EscrowInfo> EscrowStatus(const ledger::Address& c) override {
    return inner_.EscrowStatus(c);
  }
  absl::Status RequestEscrowWithdrawal(const ledger::Address& c, const ledger::Amount& a) override {
    return inner_.RequestEscrowWithdrawal(c, a);
  }
  absl::Status WithdrawEscrow(const ledger::Address& c, const ledger::Amount& a) override {
    return inner_.WithdrawEscrow(c, a);
  }
  absl::StatusOr<ledger::Amount> RewardBalance(const ledger::Address& n) override {
    return inner_.RewardBalance(n);
  }
  absl::Status WithdrawRewards(const ledger::Address& n, const ledger::Amount& a) override {
    return inner_.WithdrawRewards(n, a);
  }
  absl::StatusOr<bool> IsSettled(const Hash256& id) override { return inner_.IsSettled(id); }
  absl::StatusOr<bool> IsNonceSettled(const ledger::Address& client, uint64_t nonce) override {
    return inner_.IsNonceSettled(client, nonce);
  }
  absl::StatusOr<ledger::SlashResult> ReportEquivocation(const ledger::Address& r,
                                                         const consensus::Attestation& a,
                                                         const consensus::Attestation& b) override {
    return inner_.ReportEquivocation(r, a, b);
  }
  absl::StatusOr<ledger::DisputeResult> SettleDispute(const ledger::Address& s,
                                                      const ledger::DisputeEvidence& e) override {
    return inner_.SettleDispute(s, e);
  }

 private:
  ledger::LedgerClient& inner_;
};

// 4 prompt + 16 completion tokens at 1 per token.
const ledger::Amount kFee(20);
const ledger::Amount kFunded(100'000);

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::FreshTestDir("atoma_outbox_");
    fixture_.Create(dir_ / "ledger.db");
    if (HasFatalFailure()) return;
    faulty_ = std::make_unique<FaultyLedger>(*fixture_.ledger_);
    journal_options_.unix_ms = [this] { return absl::ToUnixMillis(Now()); };
    journal_ = OpenJournal(dir_ / "node", journal_options_).value();
    options_.batch_size = 4;
    options_.max_delay = absl::Seconds(1);
    options_.initial_backoff = absl::Milliseconds(100);
    options_.max_backoff = absl::Seconds(1);
    options_.max_attempts = 3;
    options_.start_thread = false;
    options_.submitter[0] = 0x5b;
    options_.now = [this] { return Now(); };
  }
  void TearDown() override {
    outbox_.reset();
    journal_.reset();
    faulty_.reset();
    fixture_.ledger_.reset();
    std::filesystem::remove_all(dir_);
  }

  absl::Time Now() {
    absl::MutexLock lock(&clock_mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&clock_mu_);
    now_ += d;
  }
  void StartOutbox() { outbox_ = SettlementOutbox::Start(*journal_, *faulty_, options_).value(); }
  // Adds honest certificates for nonces [first, first + n).
  std::vector<Hash256> Add(uint64_t first, uint64_t n) {
    std::vector<Hash256> ids;
    for (uint64_t i = first; i < first + n; ++i) {
      const auto r = fixture_.Request(i);
      EXPECT_TRUE(journal_->AddCertificate(fixture_.Honest(r, fixture_.Output())).ok());
      ids.push_back(consensus::RequestId(r));
    }
    return ids;
  }
  void ExpectSettledOnce(const std::vector<Hash256>& ids, size_t total_settled) {
    for (const Hash256& id : ids) {
      EXPECT_TRUE(fixture_.ledger_->IsSettled(id).value());
      EXPECT_EQ(journal_->GetSettlement(id).value().state, SettlementState::kSettled);
    }
    // Escrow is debited exactly once per settled request.
    const ledger::Amount paid = CheckedMul(kFee, total_settled).value();
    EXPECT_EQ(fixture_.Escrow(), CheckedSub(kFunded, paid).value());
  }

  std::filesystem::path dir_;
  absl::Mutex clock_mu_;
  absl::Time now_ ABSL_GUARDED_BY(clock_mu_) = absl::FromUnixSeconds(1'700'000'000);
  test::LedgerFixture fixture_;
  std::unique_ptr<FaultyLedger> faulty_;
  JournalOptions journal_options_;
  std::unique_ptr<Journal> journal_;
  OutboxOptions options_;
  std::unique_ptr<SettlementOutbox> outbox_;
};

TEST_F(OutboxTest, BatchesBySizeOrDelayAndSettlesExactlyOnce) {
  ASSERT_FALSE(HasFatalFailure());
  StartOutbox();
  const auto ids = Add(1, 6);
  // 6 pending, batch 4: a full batch goes at once, the partial rest waits for max_delay.
  EXPECT_TRUE(outbox_->Step().value());
  EXPECT_EQ(faulty_->items_sent, 4u);
  EXPECT_FALSE(outbox_->Step().value());
  Advance(absl::Milliseconds(999));
  EXPECT_FALSE(outbox_->Step().value());
  Advance(absl::Milliseconds(1));
  EXPECT_TRUE(outbox_->Step().value());
  EXPECT_EQ(faulty_->items_sent, 6u);
  EXPECT_FALSE(outbox_->Step(/*flushing=*/true).value());  // nothing left
  EXPECT_EQ(faulty_->calls, 2);
  ExpectSettledOnce(ids, 6);
  const OutboxStats stats = outbox_->stats();
  EXPECT_EQ(stats.calls, 2u);
  EXPECT_EQ(stats.settled, 6u);
  EXPECT_EQ(stats.already_settled, 0u);
  EXPECT_EQ(stats.rejected, 0u);
  // Flushing sends a partial batch at once.
  const auto more = Add(10, 1);
  EXPECT_FALSE(outbox_->Step().value());
  EXPECT_TRUE(outbox_->Step(/*flushing=*/true).value());
  EXPECT_TRUE(fixture_.ledger_->IsSettled(more[0]).value());
}

TEST_F(OutboxTest, RetriesWithBackoffAfterUnavailable) {
  ASSERT_FALSE(HasFatalFailure());
  StartOutbox();
  const auto ids = Add(1, 4);
  faulty_->fail_before = 2;
  EXPECT_TRUE(outbox_->Step().value());  // fails
  EXPECT_EQ(journal_->CountUnsettled().value(), 4u);
  EXPECT_FALSE(outbox_->Step().value());  // backing off 100 ms
  Advance(absl::Milliseconds(100));
  EXPECT_TRUE(outbox_->Step().value());  // fails again; backoff doubles
  Advance(absl::Milliseconds(100));
  EXPECT_FALSE(outbox_->Step().value());
  Advance(absl::Milliseconds(100));
  EXPECT_TRUE(outbox_->Step().value());  // succeeds
  EXPECT_EQ(faulty_->calls, 3);
  EXPECT_EQ(outbox_->stats().failed_calls, 2u);
  EXPECT_EQ(journal_->CountUnsettled().value(), 0u);
  ExpectSettledOnce(ids, 4);
}

TEST_F(OutboxTest, LostResponseIsRetriedAndCountedAsSettledNotPaidTwice) {
  ASSERT_FALSE(HasFatalFailure());
  StartOutbox();
  const auto ids = Add(1, 4);
  faulty_->lose_response = 1;  // the ledger commits, the node hears UNAVAILABLE
  EXPECT_TRUE(outbox_->Step().value());
  EXPECT_EQ(journal_->CountUnsettled().value(), 4u);
  Advance(absl::Milliseconds(100));
  EXPECT_TRUE(outbox_->Step().value());  // ALREADY_EXISTS for all four
  EXPECT_EQ(journal_->CountUnsettled().value(), 0u);
  EXPECT_EQ(outbox_->stats().already_settled, 4u);
  ExpectSettledOnce(ids, 4);
}

TEST_F(OutboxTest, RestartMidwayResumesAndLedgerShowsOneSettlementEach) {
  ASSERT_FALSE(HasFatalFailure());
  StartOutbox();
  const auto ids = Add(1, 6);
  EXPECT_TRUE(outbox_->Step().value());  // 4 settled, 2 pending
  // Crash-like restart: drop the outbox, the journal and the ledger connection, reopen all.
  outbox_.reset();
  journal_.reset();
  faulty_.reset();
  fixture_.ledger_.reset();
  fixture_.ledger_ = ledger::OpenEmbeddedLedger(dir_ / "ledger.db").value();
  faulty_ = std::make_unique<FaultyLedger>(*fixture_.ledger_);
  journal_ = OpenJournal(dir_ / "node", journal_options_).value();
  EXPECT_EQ(journal_->CountUnsettled().value(), 2u);
  // The round layer re-delivers certificates it had after restart: ignored, not queued again.
  Add(1, 2);
  EXPECT_EQ(journal_->CountUnsettled().value(), 2u);
  StartOutbox();
  Advance(absl::Seconds(1));
  EXPECT_TRUE(outbox_->Step().value());
  EXPECT_EQ(faulty_->items_sent, 2u);
  EXPECT_EQ(journal_->CountUnsettled().value(), 0u);
  ExpectSettledOnce(ids, 6);
}

TEST_F(OutboxTest, RejectedItemsAreFinalAndNeverRetried) {
  ASSERT_FALSE(HasFatalFailure());
  StartOutbox();
  // Fee 20 above max_fee 19: FAILED_PRECONDITION.
  const auto r1 = fixture_.Request(1, /*max_fee=*/19);
  ASSERT_TRUE(journal_->AddCertificate(fixture_.Honest(r1, fixture_.Output())).ok());
  // A forged signature: PERMISSION_DENIED.
  const auto r2 = fixture_.Request(2);
  ledger::SettlementItem forged = fixture_.Honest(r2, fixture_.Output());
  forged.certificate.attestations[1].signature[5] ^= 0x40;
  ASSERT_TRUE(journal_->AddCertificate(forged).ok());
  const auto good = Add(3, 1);

  Advance(absl::Seconds(1));
  EXPECT_TRUE(outbox_->Step().value());
  EXPECT_EQ(journal_->CountUnsettled().value(), 0u);
  const SettlementRecord s1 = journal_->GetSettlement(consensus::RequestId(r1)).value();
  EXPECT_EQ(s1.state, SettlementState::kRejected);
  EXPECT_THAT(s1.reason, HasSubstr("max_fee"));
  const SettlementRecord s2 = journal_->GetSettlement(consensus::RequestId(r2)).value();
  EXPECT_EQ(s2.state, SettlementState::kRejected);
  EXPECT_THAT(s2.reason, HasSubstr("PERMISSION_DENIED"));
  EXPECT_EQ(outbox_->stats().rejected, 2u);
  ExpectSettledOnce(good, 1);
  // Time passes, flushes happen: no further calls.
  for (int i = 0; i < 5; ++i) {
    Advance(absl::Seconds(10));
    EXPECT_FALSE(outbox_->Step(/*flushing=*/true).value());
  }
  EXPECT_EQ(faulty_->calls, 1);
}

TEST_F(OutboxTest, UndecidedItemsGiveUpAfterMaxAttempts) {
  ASSERT_FALSE(HasFatalFailure());
  StartOutbox();
  const auto ids = Add(1, 1);
  faulty_->item_status = absl::NotFoundError("epoch 1 has not started");
  for (int i = 0; i < 10; ++i) {
    Advance(absl::Seconds(2));
    (void)outbox_->Step(/*flushing=*/true).value();
  }
  EXPECT_EQ(faulty_->calls, 3);  // max_attempts
  const SettlementRecord s = journal_->GetSettlement(ids[0]).value();
  EXPECT_EQ(s.state, SettlementState::kRejected);
  EXPECT_THAT(s.reason, HasSubstr("gave up after 3 attempts"));
  EXPECT_FALSE(fixture_.ledger_->IsSettled(ids[0]).value());
}

TEST_F(OutboxTest, WorkerThreadFlushesOnShutdown) {
  ASSERT_FALSE(HasFatalFailure());
  options_.now = nullptr;  // real clock for the thread
  journal_.reset();
  journal_ = OpenJournal(dir_ / "node", JournalOptions{}).value();
  options_.start_thread = true;
  options_.max_delay = absl::Seconds(60);  // only a flush sends this partial batch soon
  options_.initial_backoff = absl::Milliseconds(5);
  StartOutbox();
  const auto ids = Add(1, 3);
  faulty_->fail_before = 1;
  outbox_->Notify();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(outbox_->Flush(absl::Now() + absl::Seconds(30)).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(faulty_->calls, 2);
  ExpectSettledOnce(ids, 3);

  // A ledger that never answers: Flush gives up at its deadline and loses nothing.
  faulty_->fail_before = 1'000'000;
  const auto stuck = Add(20, 2);
  const absl::Status s = outbox_->Flush(absl::Now() + absl::Milliseconds(200));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_THAT(s.message(), HasSubstr("2 certificates"));
  outbox_.reset();
  EXPECT_EQ(journal_->CountUnsettled().value(), 2u);
}

TEST_F(OutboxTest, CrossValidationCertificatesSettleThroughTheOutbox) {
  ASSERT_FALSE(HasFatalFailure());
  StartOutbox();
  // Read back from the journal by their version byte and settled as 0x02 certificates: the
  // executor and the validators are paid, and a drawn check without its validators is refused.
  const test::LedgerFixture::XvCase drawn = fixture_.XvRequest(1, true);
  const ledger::SettlementItem good = fixture_.XvHonest(drawn, true);
  const ledger::SettlementItem not_drawn = fixture_.XvHonest(fixture_.XvRequest(2, false), true);
  ledger::SettlementItem missing = fixture_.XvHonest(fixture_.XvRequest(3, true), true);
  missing.xv->validators.clear();
  for (const ledger::SettlementItem* item : {&good, &not_drawn, &std::as_const(missing)}) {
    ASSERT_TRUE(journal_->AddCertificate(*item).ok());
  }
  ASSERT_TRUE(outbox_->Step(/*flushing=*/true).value());
  ExpectSettledOnce({consensus::RequestId(good.certificate.request),
                     consensus::RequestId(not_drawn.certificate.request)},
                    2);
  const SettlementRecord refused =
      journal_->GetSettlement(consensus::RequestId(missing.certificate.request)).value();
  EXPECT_EQ(refused.state, SettlementState::kRejected);
  EXPECT_NE(refused.reason.find("PERMISSION_DENIED"), std::string::npos) << refused.reason;
  // 20 in 3 shares for the drawn one: 6 each, the remainder 2 to the executor; the whole 20 to
  // the other executor (the draws of two requests may overlap, so expectations add up).
  const consensus::XvDraws roles = fixture_.XvRolesOf(drawn.request);
  std::map<ledger::Address, uint64_t> expected;
  expected[good.certificate.committee[0]] += 8;
  expected[roles.validators[0]] += 6;
  expected[roles.validators[1]] += 6;
  expected[not_drawn.certificate.committee[0]] += 20;
  for (const auto& [who, amount] : expected) {
    EXPECT_EQ(fixture_.ledger_->RewardBalance(who).value(), ledger::Amount(amount))
        << crypto::AddressToString(who);
  }
  EXPECT_EQ(outbox_->stats().settled, 2u);
  EXPECT_EQ(outbox_->stats().rejected, 1u);
}

TEST_F(OutboxTest, RejectsBadOptions) {
  ASSERT_FALSE(HasFatalFailure());
  options_.batch_size = 0;
  EXPECT_EQ(SettlementOutbox::Start(*journal_, *faulty_, options_).status().code(),
            absl::StatusCode::kInvalidArgument);
  options_.batch_size = ledger::LedgerClient::kMaxSettlementBatch + 1;
  EXPECT_EQ(SettlementOutbox::Start(*journal_, *faulty_, options_).status().code(),
            absl::StatusCode::kInvalidArgument);
  options_.batch_size = 1;
  options_.max_attempts = 0;
  EXPECT_EQ(SettlementOutbox::Start(*journal_, *faulty_, options_).status().code(),
            absl::StatusCode::kInvalidArgument);
  options_.max_attempts = 1;
  EXPECT_EQ(outbox_ == nullptr, true);
  auto ok = SettlementOutbox::Start(*journal_, *faulty_, options_).value();
  EXPECT_EQ(ok->Flush(absl::Now()).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace atoma::journal
