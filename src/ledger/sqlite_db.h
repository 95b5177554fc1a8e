// Thin RAII wrappers over the SQLite C API for the embedded ledger: a connection, prepared
// statements, and the mapping of SQLite result codes to absl::Status.
//
// Not thread-safe: the owner (EmbeddedLedger) serializes all use of one connection.
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace atoma::ledger::internal {

// SQLITE_BUSY/LOCKED -> UNAVAILABLE (retryable, nothing applied); CORRUPT/NOTADB -> DATA_LOSS;
// anything else -> ABORTED. `what` names the operation for the message.
absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what);

class Db {
 public:
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::filesystem::path& path,
                                                  int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements without results.
  absl::Status Exec(absl::string_view sql);
  sqlite3* raw() const { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

class Stmt {
 public:
  // Check status() after construction (a bad statement is a programming error, reported as
  // INTERNAL, or a storage error while preparing).
  Stmt(Db& db, absl::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  const absl::Status& status() const { return status_; }

  // Parameters are 1-based, as in SQLite. Blobs and texts are copied (SQLITE_TRANSIENT).
  Stmt& Bind(int index, std::span<const uint8_t> blob);
  Stmt& Bind(int index, int64_t value);
  Stmt& BindText(int index, absl::string_view text);

  // true: a row is available; false: done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows.
  absl::Status Run();

  int64_t Int(int column) const;
  std::string Text(int column) const;
  // DATA_LOSS unless the column is a blob of exactly N bytes.
  template <size_t N>
  absl::Status Blob(int column, std::array<uint8_t, N>* out) const {
    return BlobInto(column, std::span<uint8_t>(out->data(), N));
  }

 private:
  absl::Status BlobInto(int column, std::span<uint8_t> out) const;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status status_;
  std::string sql_;
};

}  // namespace atoma::ledger::internal
