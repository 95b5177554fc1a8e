// SQLite implementation of the Journal (see include/atoma/journal/journal.h and docs/journal.md).
#include "atoma/journal/journal.h"

#include <chrono>
#include <system_error>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/consensus/encoding.h"
#include "atoma/consensus/xv.h"
#include "sqlite_db.h"

namespace atoma::journal {
namespace {

// 2: certificates carry the client signature (a version-1 file holds certificates this build
// cannot decode; a node's journal is recreated with its devnet).
constexpr int kSchemaVersion = 2;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
  request_id BLOB PRIMARY KEY,
  request_bytes BLOB NOT NULL,
  state INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  accepted_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS requests_open ON requests (state, accepted_ms);
CREATE TABLE IF NOT EXISTS own_attestations (
  request_id BLOB PRIMARY KEY,
  attestation BLOB NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS settlements (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id BLOB NOT NULL UNIQUE,
  certificate BLOB NOT NULL,
  output BLOB NOT NULL,
  state INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS settlements_pending ON settlements (state, seq);
)sql";

using storage::Db;
using storage::Stmt;

std::span<const uint8_t> Id(const Hash256& h) { return {h.data(), h.size()}; }

absl::StatusOr<Hash256> IdFrom(const std::vector<uint8_t>& blob) {
  Hash256 h{};
  if (blob.size() != h.size()) return absl::DataLossError("journal: request id is not 32 bytes");
  std::copy(blob.begin(), blob.end(), h.begin());
  return h;
}

std::vector<uint8_t> EncodeOutputBytes(const consensus::ConsensusOutput& output) {
  consensus::Encoder e;
  consensus::EncodeOutput(output, e);
  return e.Take();
}

absl::StatusOr<consensus::ConsensusOutput> DecodeOutputBytes(std::span<const uint8_t> bytes) {
  consensus::Decoder d(bytes);
  consensus::ConsensusOutput out;
  ASSIGN_OR_RETURN(uint32_t n, d.Count("output tokens", consensus::kMaxPromptTokens));
  out.token_ids.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(uint64_t t, d.U64("token id"));
    if (t > UINT32_MAX) return absl::InvalidArgumentError("token id above 2^32 - 1");
    out.token_ids.push_back(static_cast<uint32_t>(t));
  }
  ASSIGN_OR_RETURN(uint64_t reason, d.U64("finish reason"));
  if (reason > 1) return absl::InvalidArgumentError("unknown finish reason");
  out.finish_reason = static_cast<consensus::FinishReason>(reason);
  RETURN_IF_ERROR(d.ExpectEnd("output"));
  return out;
}

absl::Status AsDataLoss(const absl::Status& s, absl::string_view what) {
  if (s.ok()) return s;
  return absl::DataLossError(
      absl::StrCat("journal: stored ", what, " does not decode: ", s.message()));
}

class SqliteJournal final : public Journal {
 public:
  SqliteJournal(std::unique_ptr<Db> db, JournalOptions options)
      : db_(std::move(db)), options_(std::move(options)) {}

  absl::Status Init() {
    return storage::InitVersionedSchema(*db_, kSchema, kSchemaVersion, "journal");
  }

  absl::Status RecordAccepted(const Hash256& request_id,
                              std::span<const uint8_t> request_bytes) override {
    return Write([&]() -> absl::Status {
      Stmt get(*db_, "SELECT request_bytes FROM requests WHERE request_id = ?1");
      ASSIGN_OR_RETURN(bool row, get.Bind(1, Id(request_id)).Step());
      if (row) {
        const std::vector<uint8_t> stored = get.Blob(0);
        if (std::equal(stored.begin(), stored.end(), request_bytes.begin(), request_bytes.end())) {
          return absl::OkStatus();
        }
        return absl::AlreadyExistsError("journal: request id stored with other request bytes");
      }
      const int64_t now = Now();
      Stmt put(*db_,
               "INSERT INTO requests (request_id, request_bytes, state, accepted_ms, updated_ms) "
               "VALUES (?1, ?2, ?3, ?4, ?4)");
      return put.Bind(1, Id(request_id))
          .Bind(2, request_bytes)
          .Bind(3, int64_t{static_cast<int>(RequestState::kAccepted)})
          .Bind(4, now)
          .Run();
    });
  }

  absl::Status SetState(const Hash256& request_id, RequestState state,
                        std::string_view reason) override {
    return Write([&]() -> absl::Status { return SetStateLocked(request_id, state, reason); });
  }

  absl::StatusOr<RequestRecord> GetRequest(const Hash256& request_id) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(sticky_);
    Stmt get(*db_,
             "SELECT request_id, request_bytes, state, reason, accepted_ms, updated_ms FROM "
             "requests WHERE request_id = ?1");
    ASSIGN_OR_RETURN(bool row, get.Bind(1, Id(request_id)).Step());
    if (!row) return absl::NotFoundError("journal: unknown request");
    return ReadRequest(get);
  }

  absl::StatusOr<std::vector<RequestRecord>> UnfinishedRequests() override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(sticky_);
    Stmt get(*db_,
             "SELECT request_id, request_bytes, state, reason, accepted_ms, updated_ms FROM "
             "requests WHERE state < ?1 ORDER BY accepted_ms, rowid");
    get.Bind(1, int64_t{static_cast<int>(RequestState::kCertified)});
    return storage::CollectRows<RequestRecord>(get, ReadRequest);
  }

  absl::Status RecordOwnAttestation(const consensus::Attestation& attestation) override {
    const std::vector<uint8_t> bytes = consensus::EncodeAttestation(attestation);
    return Write([&]() -> absl::Status {
      Stmt get(*db_, "SELECT attestation FROM own_attestations WHERE request_id = ?1");
      ASSIGN_OR_RETURN(bool row, get.Bind(1, Id(attestation.request_id)).Step());
      if (row) {
        const std::vector<uint8_t> stored_bytes = get.Blob(0);
        if (stored_bytes == bytes) return absl::OkStatus();
        auto stored = consensus::DecodeAttestation(stored_bytes);
        RETURN_IF_ERROR(AsDataLoss(stored.status(), "attestation"));
        if (!consensus::SameOutputClaim(*stored, attestation)) {
          return absl::AlreadyExistsError(
              "journal: this node already attested a different result for this request; "
              "sending a second attestation would be equivocation");
        }
        // Same output, another C: a re-attestation for a committee in which a backup replaced a
        // peer (a view update). The newest view is the one to re-send after a restart.
        Stmt replace(*db_,
                     "UPDATE own_attestations SET attestation = ?2, created_ms = ?3 WHERE "
                     "request_id = ?1");
        return replace.Bind(1, Id(attestation.request_id)).Bind(2, bytes).Bind(3, Now()).Run();
      }
      Stmt put(*db_,
               "INSERT INTO own_attestations (request_id, attestation, created_ms) VALUES (?1, "
               "?2, ?3)");
      return put.Bind(1, Id(attestation.request_id)).Bind(2, bytes).Bind(3, Now()).Run();
    });
  }

  absl::StatusOr<std::optional<consensus::Attestation>> OwnAttestation(
      const Hash256& request_id) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(sticky_);
    Stmt get(*db_, "SELECT attestation FROM own_attestations WHERE request_id = ?1");
    ASSIGN_OR_RETURN(bool row, get.Bind(1, Id(request_id)).Step());
    if (!row) return std::optional<consensus::Attestation>();
    auto a = consensus::DecodeAttestation(get.Blob(0));
    RETURN_IF_ERROR(AsDataLoss(a.status(), "attestation"));
    return std::optional<consensus::Attestation>(*std::move(a));
  }

  absl::Status AddCertificate(const ledger::SettlementItem& item) override {
    if (item.xv.has_value() && item.xv->base != item.certificate) {
      // Only the 0x02 bytes are stored, so the two copies must be one certificate.
      return absl::InvalidArgumentError(
          "journal: cross-validation item whose certificate is not its base");
    }
    const Hash256 id = consensus::RequestId(item.certificate.request);
    const std::vector<uint8_t> cert = item.xv.has_value()
                                          ? consensus::EncodeXvCertificate(*item.xv)
                                          : consensus::EncodeCertificate(item.certificate);
    const std::vector<uint8_t> output = EncodeOutputBytes(item.output);
    return Write([&]() -> absl::Status {
      const int64_t now = Now();
      Stmt put(*db_,
               "INSERT OR IGNORE INTO settlements (request_id, certificate, output, state, "
               "created_ms, updated_ms) VALUES (?1, ?2, ?3, 0, ?4, ?4)");
      RETURN_IF_ERROR(put.Bind(1, Id(id)).Bind(2, cert).Bind(3, output).Bind(4, now).Run());
      Stmt known(*db_, "SELECT state FROM requests WHERE request_id = ?1");
      ASSIGN_OR_RETURN(bool row, known.Bind(1, Id(id)).Step());
      if (row && known.Int(0) != static_cast<int>(RequestState::kCertified)) {
        return SetStateLocked(id, RequestState::kCertified, {});
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<SettlementRecord>> UnsettledCertificates(size_t limit) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(sticky_);
    Stmt get(*db_, absl::StrCat(kSelectSettlement, " WHERE state = 0 ORDER BY seq LIMIT ?1"));
    get.Bind(1, static_cast<int64_t>(limit));
    std::vector<SettlementRecord> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, get.Step());
      if (!row) break;
      ASSIGN_OR_RETURN(SettlementRecord r, ReadSettlement(get));
      out.push_back(std::move(r));
    }
    return out;
  }

  absl::StatusOr<size_t> CountUnsettled() override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(sticky_);
    Stmt get(*db_, "SELECT COUNT(*) FROM settlements WHERE state = 0");
    ASSIGN_OR_RETURN(bool row, get.Step());
    (void)row;
    return static_cast<size_t>(get.Int(0));
  }

  absl::StatusOr<SettlementRecord> GetSettlement(const Hash256& request_id) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(sticky_);
    Stmt get(*db_, absl::StrCat(kSelectSettlement, " WHERE request_id = ?1"));
    ASSIGN_OR_RETURN(bool row, get.Bind(1, Id(request_id)).Step());
    if (!row) return absl::NotFoundError("journal: no certificate for this request");
    return ReadSettlement(get);
  }

  absl::Status MarkSettled(const Hash256& request_id) override {
    return Finish(request_id, SettlementState::kSettled, {});
  }
  absl::Status MarkRejected(const Hash256& request_id, std::string_view reason) override {
    return Finish(request_id, SettlementState::kRejected, reason);
  }

  absl::Status RecordAttempt(const Hash256& request_id) override {
    return Write([&]() -> absl::Status {
      Stmt up(*db_,
              "UPDATE settlements SET attempts = attempts + 1, updated_ms = ?2 WHERE request_id "
              "= ?1 AND state = 0");
      RETURN_IF_ERROR(up.Bind(1, Id(request_id)).Bind(2, Now()).Run());
      if (db_->Changes() == 0) {
        return absl::FailedPreconditionError("journal: no pending certificate for this request");
      }
      return absl::OkStatus();
    });
  }

 private:
  static constexpr const char* kSelectSettlement =
      "SELECT request_id, certificate, output, state, reason, attempts, created_ms FROM "
      "settlements";

  int64_t Now() const {
    if (options_.unix_ms) return options_.unix_ms();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  absl::Status Exec(const char* sql) { return db_->Exec(sql); }

  // Runs `body` in one write transaction under the mutex. Rule errors (the body's own statuses)
  // roll back and leave the journal usable; a storage error other than BUSY makes it fail-stop.
  template <typename Body>
  absl::Status Write(Body&& body) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(sticky_);
    absl::Status s = Exec("BEGIN IMMEDIATE");
    if (s.ok()) {
      s = body();
      if (s.ok()) {
        s = Exec("COMMIT");
        if (s.ok()) return s;
      }
      (void)Exec("ROLLBACK");
    }
    if (s.code() == absl::StatusCode::kAborted || s.code() == absl::StatusCode::kDataLoss) {
      sticky_ = s;
      GetLogger("journal")->error("journal is fail-stop after a storage error: {}", s.ToString());
    }
    return s;
  }

  absl::Status SetStateLocked(const Hash256& request_id, RequestState state,
                              std::string_view reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt get(*db_, "SELECT state FROM requests WHERE request_id = ?1");
    ASSIGN_OR_RETURN(bool row, get.Bind(1, Id(request_id)).Step());
    if (!row) return absl::NotFoundError("journal: unknown request");
    const auto current = static_cast<RequestState>(get.Int(0));
    if (current == state) return absl::OkStatus();
    const bool final_state =
        current == RequestState::kCertified || current == RequestState::kFailed;
    if (final_state || static_cast<int>(state) < static_cast<int>(current)) {
      return absl::FailedPreconditionError(
          absl::StrCat("journal: request is ", std::string(RequestStateName(current)),
                       ", cannot become ", std::string(RequestStateName(state))));
    }
    Stmt up(*db_,
            "UPDATE requests SET state = ?2, reason = ?3, updated_ms = ?4 WHERE request_id = ?1");
    return up.Bind(1, Id(request_id))
        .Bind(2, int64_t{static_cast<int>(state)})
        .BindText(3, reason)
        .Bind(4, Now())
        .Run();
  }

  absl::Status Finish(const Hash256& request_id, SettlementState state, std::string_view reason) {
    return Write([&]() -> absl::Status {
      Stmt get(*db_, "SELECT state FROM settlements WHERE request_id = ?1");
      ASSIGN_OR_RETURN(bool row, get.Bind(1, Id(request_id)).Step());
      if (!row) return absl::NotFoundError("journal: no certificate for this request");
      if (get.Int(0) != static_cast<int>(SettlementState::kPending)) {
        return absl::FailedPreconditionError("journal: settlement outcome is already final");
      }
      Stmt up(*db_,
              "UPDATE settlements SET state = ?2, reason = ?3, updated_ms = ?4 WHERE request_id "
              "= ?1");
      return up.Bind(1, Id(request_id))
          .Bind(2, int64_t{static_cast<int>(state)})
          .BindText(3, reason)
          .Bind(4, Now())
          .Run();
    });
  }

  static absl::StatusOr<RequestRecord> ReadRequest(const Stmt& s) {
    RequestRecord r;
    ASSIGN_OR_RETURN(r.request_id, IdFrom(s.Blob(0)));
    r.request_bytes = s.Blob(1);
    const int64_t state = s.Int(2);
    if (state < 0 || state > static_cast<int>(RequestState::kFailed)) {
      return absl::DataLossError("journal: unknown request state");
    }
    r.state = static_cast<RequestState>(state);
    r.reason = s.Text(3);
    r.accepted_unix_ms = s.Int(4);
    r.updated_unix_ms = s.Int(5);
    return r;
  }

  // The stored certificate by its version byte: 0x01 a sampling certificate, 0x02 a
  // cross-validation one (whose base is also `certificate`).
  static absl::Status DecodeStoredCertificate(std::span<const uint8_t> bytes,
                                              ledger::SettlementItem& item) {
    if (!bytes.empty() && bytes[0] == consensus::kXvEncodingVersion) {
      auto xv = consensus::DecodeXvCertificate(bytes);
      RETURN_IF_ERROR(AsDataLoss(xv.status(), "cross-validation certificate"));
      item.certificate = xv->base;
      item.xv = *std::move(xv);
      return absl::OkStatus();
    }
    auto cert = consensus::DecodeCertificate(bytes);
    RETURN_IF_ERROR(AsDataLoss(cert.status(), "certificate"));
    item.certificate = *std::move(cert);
    return absl::OkStatus();
  }

  static absl::StatusOr<SettlementRecord> ReadSettlement(const Stmt& s) {
    SettlementRecord r;
    ASSIGN_OR_RETURN(r.request_id, IdFrom(s.Blob(0)));
    RETURN_IF_ERROR(DecodeStoredCertificate(s.Blob(1), r.item));
    auto output = DecodeOutputBytes(s.Blob(2));
    RETURN_IF_ERROR(AsDataLoss(output.status(), "output"));
    r.item.output = *std::move(output);
    const int64_t state = s.Int(3);
    if (state < 0 || state > static_cast<int>(SettlementState::kRejected)) {
      return absl::DataLossError("journal: unknown settlement state");
    }
    r.state = static_cast<SettlementState>(state);
    r.reason = s.Text(4);
    r.attempts = static_cast<uint64_t>(s.Int(5));
    r.created_unix_ms = s.Int(6);
    return r;
  }

  absl::Mutex mu_;
  const std::unique_ptr<Db> db_;  // guarded by mu_ (every use holds it)
  const JournalOptions options_;
  absl::Status sticky_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::string_view RequestStateName(RequestState state) {
  switch (state) {
    case RequestState::kAccepted:
      return "accepted";
    case RequestState::kExecuting:
      return "executing";
    case RequestState::kAttested:
      return "attested";
    case RequestState::kCertified:
      return "certified";
    case RequestState::kFailed:
      return "failed";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Journal>> OpenJournal(const std::filesystem::path& data_dir,
                                                     const JournalOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("journal: cannot create ", data_dir.string(), ": ", ec.message()));
  }
  const std::filesystem::path path = data_dir / kJournalFileName;
  ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(path, options.busy_timeout_ms, "journal"));
  auto journal = std::make_unique<SqliteJournal>(std::move(db), options);
  RETURN_IF_ERROR(journal->Init());
  return journal;
}

}  // namespace atoma::journal
