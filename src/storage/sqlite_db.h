// Internal (not public API): thin RAII wrappers over the SQLite C API shared by the embedded
// ledger and the node journal: a connection, prepared statements, and the one mapping of SQLite
// result codes to absl::Status, so both stores classify storage errors the same way.
//
// Not thread-safe: each owner (EmbeddedLedger, the journal) serializes all use of one connection
// and of the statements prepared on it.
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace atoma::storage {

// SQLITE_BUSY/LOCKED -> UNAVAILABLE (retryable, nothing applied); CORRUPT/NOTADB -> DATA_LOSS;
// anything else -> ABORTED (owners treat it as an unknown storage failure). The message is
// "<label>: <what>: <sqlite message>"; `label` names the store, `what` the operation.
absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view label, absl::string_view what);

// One connection. Owns the sqlite3 handle and closes it on destruction.
class Db {
 public:
  // Opens (creating if needed) the database at `path`. `label` prefixes every error message
  // from this connection and its statements (e.g. "ledger store", "journal").
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::filesystem::path& path,
                                                  int busy_timeout_ms, std::string label);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements, discarding any result rows.
  absl::Status Exec(absl::string_view sql);
  // Rows changed by the most recent INSERT/UPDATE/DELETE on this connection.
  int64_t Changes() const;
  const std::string& label() const { return label_; }
  sqlite3* raw() const { return db_; }

 private:
  Db(sqlite3* db, std::string label) : db_(db), label_(std::move(label)) {}
  sqlite3* db_;
  const std::string label_;
};

// One prepared statement; finalized on destruction. Errors are sticky: after a failed prepare,
// bind or step, later binds are skipped and Step() returns the first error.
class Stmt {
 public:
  // Check status() after construction: a bad statement (a programming error) or a storage error
  // while preparing, classified by SqliteStatus.
  Stmt(Db& db, absl::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  const absl::Status& status() const { return status_; }

  // Parameters are 1-based, as in SQLite. Blobs and texts are copied (SQLITE_TRANSIENT). Empty
  // blobs and texts are stored as empty values, never as NULL.
  Stmt& Bind(int index, std::span<const uint8_t> blob);
  Stmt& Bind(int index, int64_t value);
  Stmt& BindText(int index, absl::string_view text);
#ifndef ABSL_USES_STD_STRING_VIEW
  // Where Abseil has its own string_view, std::string_view is a distinct type; accept both (and
  // the common sources, so that neither view conversion is ambiguous).
  Stmt& BindText(int index, std::string_view text) {
    return BindText(index, absl::string_view(text.data(), text.size()));
  }
  Stmt& BindText(int index, const std::string& text) {
    return BindText(index, absl::string_view(text));
  }
  Stmt& BindText(int index, const char* text) { return BindText(index, absl::string_view(text)); }
#endif

  // true: a row is available; false: done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows (a row is INTERNAL: the statement was misused).
  absl::Status Run();

  int64_t Int(int column) const;
  std::string Text(int column) const;
  // The column's bytes (empty for NULL).
  std::vector<uint8_t> Blob(int column) const;
  // DATA_LOSS unless the column is a blob of exactly N bytes.
  template <size_t N>
  absl::Status Blob(int column, std::array<uint8_t, N>* out) const {
    return BlobInto(column, std::span<uint8_t>(out->data(), N));
  }

 private:
  absl::Status BlobInto(int column, std::span<uint8_t> out) const;
  void Check(int rc, absl::string_view what);

  sqlite3* db_;
  const std::string* label_;  // owned by the Db, which outlives its statements
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status status_;
  std::string sql_;
};

// Opens a journal-style store: WAL with synchronous=FULL (a write survives a power cut once it
// returns), then, in one write transaction, runs `schema_sql` (CREATE ... IF NOT EXISTS, with a
// `meta(key, value)` table) and records `version` as meta.schema_version in a new file, or checks
// it in an existing one (FAILED_PRECONDITION naming `label` otherwise).
absl::Status InitVersionedSchema(Db& db, absl::string_view schema_sql, int64_t version,
                                 absl::string_view label);

// Steps `stmt` to completion and maps every row with `row` (a callable taking `const Stmt&` and
// returning absl::StatusOr<T>); the first error of either stops it.
template <typename T, typename RowFn>
absl::StatusOr<std::vector<T>> CollectRows(Stmt& stmt, RowFn row) {
  std::vector<T> out;
  while (true) {
    absl::StatusOr<bool> more = stmt.Step();
    if (!more.ok()) return more.status();
    if (!*more) return out;
    absl::StatusOr<T> value = row(static_cast<const Stmt&>(stmt));
    if (!value.ok()) return value.status();
    out.push_back(*std::move(value));
  }
}

}  // namespace atoma::storage
