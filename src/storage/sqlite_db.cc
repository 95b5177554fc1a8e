#include "sqlite_db.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::storage {

absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view label, absl::string_view what) {
  const int primary = rc & 0xff;
  std::string message =
      absl::StrCat(label, ": ", what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    default:
      return absl::AbortedError(message);
  }
}

absl::StatusOr<std::unique_ptr<Db>> Db::Open(const std::filesystem::path& path, int busy_timeout_ms,
                                             std::string label) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the owner serializes access to the connection itself.
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteStatus(raw, rc, label, absl::StrCat("open ", path.string()));
    sqlite3_close_v2(raw);
    return status;
  }
  std::unique_ptr<Db> db(new Db(raw, std::move(label)));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return db;
}

// close_v2: a statement still alive (a bug) defers the close instead of leaking the handle.
Db::~Db() { sqlite3_close_v2(db_); }

absl::Status Db::Exec(absl::string_view sql) {
  std::string owned(sql);
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, label_, owned);
  return absl::OkStatus();
}

int64_t Db::Changes() const { return sqlite3_changes(db_); }

Stmt::Stmt(Db& db, absl::string_view sql) : db_(db.raw()), label_(&db.label()), sql_(sql) {
  const int rc =
      sqlite3_prepare_v2(db_, sql_.data(), static_cast<int>(sql_.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) status_ = SqliteStatus(db_, rc, *label_, absl::StrCat("prepare ", sql_));
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

void Stmt::Check(int rc, absl::string_view what) {
  if (rc != SQLITE_OK) status_ = SqliteStatus(db_, rc, *label_, what);
}

Stmt& Stmt::Bind(int index, std::span<const uint8_t> blob) {
  if (status_.ok()) {
    // A zero-length blob needs a non-null pointer, or SQLite stores NULL.
    static const uint8_t kEmpty = 0;
    Check(sqlite3_bind_blob(stmt_, index, blob.empty() ? &kEmpty : blob.data(),
                            static_cast<int>(blob.size()), SQLITE_TRANSIENT),
          "bind");
  }
  return *this;
}

Stmt& Stmt::Bind(int index, int64_t value) {
  if (status_.ok()) Check(sqlite3_bind_int64(stmt_, index, value), "bind");
  return *this;
}

Stmt& Stmt::BindText(int index, absl::string_view text) {
  if (status_.ok()) {
    // An empty view may have a null data pointer, which SQLite would store as NULL.
    Check(sqlite3_bind_text(stmt_, index, text.empty() ? "" : text.data(),
                            static_cast<int>(text.size()), SQLITE_TRANSIENT),
          "bind");
  }
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  if (!status_.ok()) return status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  status_ = SqliteStatus(db_, rc, *label_, sql_);
  return status_;
}

absl::Status Stmt::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  if (*row) return absl::InternalError(absl::StrCat(*label_, ": unexpected row: ", sql_));
  return absl::OkStatus();
}

int64_t Stmt::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Stmt::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  return text ? std::string(reinterpret_cast<const char*>(text), size) : std::string();
}

std::vector<uint8_t> Stmt::Blob(int column) const {
  const auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, column));
  const int size = sqlite3_column_bytes(stmt_, column);
  return data ? std::vector<uint8_t>(data, data + size) : std::vector<uint8_t>();
}

absl::Status Stmt::BlobInto(int column, std::span<uint8_t> out) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (sqlite3_column_type(stmt_, column) != SQLITE_BLOB || size < 0 ||
      static_cast<size_t>(size) != out.size()) {
    return absl::DataLossError(absl::StrCat(*label_, ": column ", column, " of `", sql_,
                                            "` is not a ", out.size(), "-byte blob"));
  }
  std::memcpy(out.data(), data, out.size());
  return absl::OkStatus();
}

absl::Status InitVersionedSchema(Db& db, absl::string_view schema_sql, int64_t version,
                                 absl::string_view label) {
  RETURN_IF_ERROR(db.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  const absl::Status s = [&]() -> absl::Status {
    RETURN_IF_ERROR(db.Exec(schema_sql));
    Stmt get(db, "SELECT value FROM meta WHERE key = 'schema_version'");
    ASSIGN_OR_RETURN(bool row, get.Step());
    if (!row) {
      Stmt put(db, "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)");
      return put.BindText(1, std::to_string(version)).Run();
    }
    if (get.Text(0) != std::to_string(version)) {
      return absl::FailedPreconditionError(
          absl::StrCat(label, ": schema version ", get.Text(0), ", this build reads ", version));
    }
    return absl::OkStatus();
  }();
  if (!s.ok()) {
    (void)db.Exec("ROLLBACK");
    return s;
  }
  return db.Exec("COMMIT");
}

}  // namespace atoma::storage
