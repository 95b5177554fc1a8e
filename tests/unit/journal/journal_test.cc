// The journal: request states, own attestations and certificates survive closing and reopening
// the file; equivocation is refused across a restart.
#include "atoma/journal/journal.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/consensus/encoding.h"
#include "atoma/consensus/xv.h"
#include "gtest/gtest.h"
#include "testing/ledger_fixture.h"
#include "testing/temp_dir.h"

namespace atoma::journal {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::FreshTestDir("atoma_journal_");
    options_.unix_ms = [this] { return now_ms_; };
    Reopen();
  }
  void TearDown() override {
    journal_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    journal_.reset();
    journal_ = OpenJournal(dir_ / "data", options_).value();
  }
  static Hash256 IdOf(uint8_t b) {
    Hash256 h{};
    h[0] = b;
    return h;
  }

  std::filesystem::path dir_;
  int64_t now_ms_ = 1'000;
  JournalOptions options_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(JournalTest, RequestStatesPersistAcrossReopen) {
  const std::vector<uint8_t> bytes = {1, 2, 3};
  ASSERT_TRUE(journal_->RecordAccepted(IdOf(1), bytes).ok());
  now_ms_ = 2'000;
  ASSERT_TRUE(journal_->RecordAccepted(IdOf(2), std::vector<uint8_t>{4}).ok());
  ASSERT_TRUE(journal_->RecordAccepted(IdOf(3), std::vector<uint8_t>{5}).ok());
  now_ms_ = 3'000;
  ASSERT_TRUE(journal_->SetState(IdOf(1), RequestState::kExecuting).ok());
  ASSERT_TRUE(journal_->SetState(IdOf(1), RequestState::kAttested).ok());
  ASSERT_TRUE(journal_->SetState(IdOf(2), RequestState::kFailed, "committee timed out").ok());
  Reopen();

  RequestRecord r1 = journal_->GetRequest(IdOf(1)).value();
  EXPECT_EQ(r1.state, RequestState::kAttested);
  EXPECT_EQ(r1.request_bytes, bytes);
  EXPECT_EQ(r1.accepted_unix_ms, 1'000);
  EXPECT_EQ(r1.updated_unix_ms, 3'000);
  RequestRecord r2 = journal_->GetRequest(IdOf(2)).value();
  EXPECT_EQ(r2.state, RequestState::kFailed);
  EXPECT_EQ(r2.reason, "committee timed out");

  // Unfinished: 1 (attested) and 3 (accepted), oldest first; 2 failed.
  auto open = journal_->UnfinishedRequests().value();
  ASSERT_EQ(open.size(), 2u);
  EXPECT_EQ(open[0].request_id, IdOf(1));
  EXPECT_EQ(open[1].request_id, IdOf(3));

  // Forward only; final states are final; same state is a no-op.
  EXPECT_EQ(journal_->SetState(IdOf(1), RequestState::kExecuting).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(journal_->SetState(IdOf(1), RequestState::kAttested).ok());
  EXPECT_EQ(journal_->SetState(IdOf(2), RequestState::kCertified).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(journal_->SetState(IdOf(9), RequestState::kExecuting).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(journal_->GetRequest(IdOf(9)).status().code(), absl::StatusCode::kNotFound);
  // Skipping states forward is allowed.
  EXPECT_TRUE(journal_->SetState(IdOf(3), RequestState::kCertified).ok());
  EXPECT_EQ(journal_->UnfinishedRequests().value().size(), 1u);
}

TEST_F(JournalTest, RecordAcceptedIsIdempotentButNotOverwritten) {
  ASSERT_TRUE(journal_->RecordAccepted(IdOf(1), std::vector<uint8_t>{1, 2}).ok());
  ASSERT_TRUE(journal_->SetState(IdOf(1), RequestState::kExecuting).ok());
  Reopen();
  // A replay of the same request after a restart keeps its progress.
  EXPECT_TRUE(journal_->RecordAccepted(IdOf(1), std::vector<uint8_t>{1, 2}).ok());
  EXPECT_EQ(journal_->GetRequest(IdOf(1)).value().state, RequestState::kExecuting);
  EXPECT_EQ(journal_->RecordAccepted(IdOf(1), std::vector<uint8_t>{1, 3}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(journal_->GetRequest(IdOf(1)).value().request_bytes, (std::vector<uint8_t>{1, 2}));
  // An empty request body is stored as empty, not NULL.
  ASSERT_TRUE(journal_->RecordAccepted(IdOf(2), std::span<const uint8_t>()).ok());
  EXPECT_TRUE(journal_->GetRequest(IdOf(2)).value().request_bytes.empty());
}

class JournalLedgerTest : public JournalTest {
 protected:
  void SetUp() override {
    JournalTest::SetUp();
    std::filesystem::create_directories(dir_);
    fixture_.Create(dir_ / "ledger.db");
  }
  test::LedgerFixture fixture_;
};

TEST_F(JournalLedgerTest, OwnAttestationEquivocationGuardSurvivesReopen) {
  ASSERT_FALSE(HasFatalFailure());
  const auto r = fixture_.Request(1);
  const Hash256 id = consensus::RequestId(r);
  const ledger::Address me = fixture_.CommitteeOf(r)[0];
  const consensus::Attestation first = fixture_.Attest(me, r, fixture_.Output(100));
  const consensus::Attestation other = fixture_.Attest(me, r, fixture_.Output(200));
  ASSERT_NE(first, other);

  EXPECT_FALSE(journal_->OwnAttestation(id).value().has_value());
  ASSERT_TRUE(journal_->RecordOwnAttestation(first).ok());
  Reopen();
  // After a restart: the same attestation again is fine (a resend), a different one is refused.
  EXPECT_TRUE(journal_->RecordOwnAttestation(first).ok());
  absl::Status s = journal_->RecordOwnAttestation(other);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  Reopen();
  EXPECT_EQ(journal_->OwnAttestation(id).value(), first);
  // The stored one still verifies.
  EXPECT_TRUE(consensus::VerifyAttestation(*journal_->OwnAttestation(id).value(),
                                           fixture_.params_.domain, fixture_.epoch_.number)
                  .ok());
}

TEST_F(JournalLedgerTest, ViewUpdateReplacesTheOwnAttestation) {
  ASSERT_FALSE(HasFatalFailure());
  const auto r = fixture_.Request(1);
  const Hash256 id = consensus::RequestId(r);
  const std::vector<ledger::Address> committee = fixture_.CommitteeOf(r);
  const ledger::Address me = committee[0];
  const consensus::Attestation first = fixture_.Attest(me, r, fixture_.Output(100));
  ASSERT_TRUE(journal_->RecordOwnAttestation(first).ok());
  // A backup replaced member 2: this node re-attests the same output for the new committee.
  std::vector<ledger::Address> view = committee;
  for (const auto& k : fixture_.keys_) {
    if (std::find(committee.begin(), committee.end(), k.address()) == committee.end()) {
      view[2] = k.address();
      break;
    }
  }
  ASSERT_NE(view, committee);
  const consensus::Attestation update =
      consensus::MakeAttestation(fixture_.params_.domain, id, fixture_.echelon_,
                                 fixture_.epoch_.number, view, fixture_.Output(100),
                                 r.prompt_token_ids.size(), fixture_.KeyOf(me))
          .value();
  ASSERT_NE(update.commitment, first.commitment);
  ASSERT_TRUE(consensus::SameOutputClaim(first, update));
  now_ms_ = 2'000;
  absl::Status s = journal_->RecordOwnAttestation(update);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(journal_->OwnAttestation(id).value(), update);
  Reopen();
  EXPECT_EQ(journal_->OwnAttestation(id).value(), update) << "the newest view survives a restart";
  EXPECT_TRUE(journal_->RecordOwnAttestation(update).ok()) << "a resend of the new one";
  // The guard still holds against another claim, for the old view as for the new one.
  const consensus::Attestation other = fixture_.Attest(me, r, fixture_.Output(200));
  EXPECT_EQ(journal_->RecordOwnAttestation(other).code(), absl::StatusCode::kAlreadyExists);
  consensus::Attestation other_root = update;
  other_root.merkle_root[0] ^= 1;
  other_root.signature = fixture_.KeyOf(me).Sign(consensus::AttestationDigest(other_root));
  EXPECT_EQ(journal_->RecordOwnAttestation(other_root).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(journal_->OwnAttestation(id).value(), update);
  // Back to the first committee (e.g. a stale UpdateCommittee): same claim, so also a view update.
  EXPECT_TRUE(journal_->RecordOwnAttestation(first).ok());
  EXPECT_EQ(journal_->OwnAttestation(id).value(), first);
}

TEST_F(JournalLedgerTest, CertificatesQueueOnceAndFinalOutcomesPersist) {
  ASSERT_FALSE(HasFatalFailure());
  const auto r1 = fixture_.Request(1);
  const auto r2 = fixture_.Request(2);
  const Hash256 id1 = consensus::RequestId(r1);
  const Hash256 id2 = consensus::RequestId(r2);
  consensus::Encoder enc;
  consensus::EncodeRequest(r1, enc);
  ASSERT_TRUE(journal_->RecordAccepted(id1, enc.bytes()).ok());
  ASSERT_TRUE(journal_->SetState(id1, RequestState::kAttested).ok());

  const ledger::SettlementItem item1 = fixture_.Honest(r1, fixture_.Output());
  ASSERT_TRUE(journal_->AddCertificate(item1).ok());
  now_ms_ = 5'000;
  ASSERT_TRUE(journal_->AddCertificate(fixture_.Honest(r2, fixture_.Output(7))).ok());
  // A second certificate for request 1 (e.g. a re-delivered round result) is ignored.
  ASSERT_TRUE(journal_->AddCertificate(fixture_.Honest(r1, fixture_.Output(9))).ok());
  EXPECT_EQ(journal_->GetRequest(id1).value().state, RequestState::kCertified);
  Reopen();

  auto pending = journal_->UnsettledCertificates(10).value();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].request_id, id1);
  EXPECT_EQ(pending[0].item.certificate, item1.certificate);
  EXPECT_EQ(pending[0].item.output.token_ids, item1.output.token_ids);
  EXPECT_EQ(pending[0].item.output.finish_reason, item1.output.finish_reason);
  EXPECT_EQ(pending[0].created_unix_ms, 1'000);
  EXPECT_EQ(pending[1].request_id, id2);
  EXPECT_EQ(journal_->UnsettledCertificates(1).value().size(), 1u);
  EXPECT_EQ(journal_->CountUnsettled().value(), 2u);

  ASSERT_TRUE(journal_->RecordAttempt(id1).ok());
  ASSERT_TRUE(journal_->MarkSettled(id1).ok());
  ASSERT_TRUE(journal_->MarkRejected(id2, "PERMISSION_DENIED: bad signature").ok());
  EXPECT_EQ(journal_->MarkSettled(id2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(journal_->RecordAttempt(id1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(journal_->MarkSettled(IdOf(9)).code(), absl::StatusCode::kNotFound);
  Reopen();
  EXPECT_EQ(journal_->CountUnsettled().value(), 0u);
  SettlementRecord s1 = journal_->GetSettlement(id1).value();
  EXPECT_EQ(s1.state, SettlementState::kSettled);
  EXPECT_EQ(s1.attempts, 1u);
  SettlementRecord s2 = journal_->GetSettlement(id2).value();
  EXPECT_EQ(s2.state, SettlementState::kRejected);
  EXPECT_EQ(s2.reason, "PERMISSION_DENIED: bad signature");
}

TEST_F(JournalLedgerTest, CrossValidationCertificatesRoundTripByVersionByte) {
  ASSERT_FALSE(HasFatalFailure());
  // Every outcome of a cross-validation round, and a sampling certificate between them.
  const ledger::SettlementItem drawn = fixture_.XvHonest(fixture_.XvRequest(1, true), true);
  const ledger::SettlementItem not_drawn = fixture_.XvHonest(fixture_.XvRequest(2, false), true);
  const ledger::SettlementItem sampling = fixture_.Honest(fixture_.Request(3), fixture_.Output());
  const ledger::SettlementItem unrevealed = fixture_.XvHonest(fixture_.XvRequest(4, true), false);
  ASSERT_EQ(drawn.xv->validators.size(), 2u);
  ASSERT_TRUE(not_drawn.xv->validators.empty() && not_drawn.xv->salt.has_value());
  ASSERT_TRUE(unrevealed.xv->unrevealed());
  const std::vector<ledger::SettlementItem> items = {drawn, not_drawn, sampling, unrevealed};
  for (const ledger::SettlementItem& item : items) {
    ASSERT_TRUE(journal_->AddCertificate(item).ok());
  }
  // The two copies of one certificate must agree, else nothing is stored.
  ledger::SettlementItem split = fixture_.XvHonest(fixture_.XvRequest(5, true), true);
  split.certificate.commitment[0] ^= 1;
  EXPECT_EQ(journal_->AddCertificate(split).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(journal_->CountUnsettled().value(), items.size());
  Reopen();

  const std::vector<SettlementRecord> pending = journal_->UnsettledCertificates(10).value();
  ASSERT_EQ(pending.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(pending[i].request_id, consensus::RequestId(items[i].certificate.request)) << i;
    EXPECT_EQ(pending[i].item.certificate, items[i].certificate) << i;
    EXPECT_EQ(pending[i].item.xv, items[i].xv) << i;
    EXPECT_EQ(pending[i].item.output.token_ids, items[i].output.token_ids) << i;
  }
  EXPECT_FALSE(pending[2].item.xv.has_value()) << "a sampling certificate stays one";
  EXPECT_EQ(journal_->GetSettlement(pending[0].request_id).value().item.xv, drawn.xv);

  // On disk: the version byte of each encoding, and nothing else.
  journal_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "data" / std::string(kJournalFileName)).c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT certificate FROM settlements ORDER BY seq", -1, &stmt,
                               nullptr),
            SQLITE_OK);
  std::vector<std::vector<uint8_t>> stored;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* blob = static_cast<const uint8_t*>(sqlite3_column_blob(stmt, 0));
    stored.emplace_back(blob, blob + sqlite3_column_bytes(stmt, 0));
  }
  sqlite3_finalize(stmt);
  ASSERT_EQ(stored.size(), items.size());
  EXPECT_EQ(stored[0], consensus::EncodeXvCertificate(*drawn.xv));
  EXPECT_EQ(stored[1][0], consensus::kXvEncodingVersion);
  EXPECT_EQ(stored[2], consensus::EncodeCertificate(sampling.certificate));
  EXPECT_EQ(stored[3][0], consensus::kXvEncodingVersion);
  // A 0x02 row cut short no longer decodes: DATA_LOSS, not a sampling certificate.
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE settlements SET certificate = substr(certificate, 1, "
                         "length(certificate) - 1) WHERE seq = (SELECT MIN(seq) FROM settlements)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  Reopen();
  EXPECT_EQ(journal_->UnsettledCertificates(10).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(JournalTest, RefusesAnotherSchemaVersion) {
  journal_.reset();
  { auto j = OpenJournal(dir_ / "data", options_).value(); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "data" / std::string(kJournalFileName)).c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(OpenJournal(dir_ / "data", options_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JournalTest, CorruptFileIsDataLoss) {
  journal_.reset();
  std::filesystem::remove_all(dir_ / "data");
  std::filesystem::create_directories(dir_ / "data");
  {
    std::ofstream f(dir_ / "data" / std::string(kJournalFileName), std::ios::binary);
    f << std::string(8192, 'x');
  }
  EXPECT_EQ(OpenJournal(dir_ / "data", options_).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace atoma::journal
