#include "tx_journal.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/evm/hex.h"

namespace atoma::ledger::evm_backend {
namespace {

using storage::Db;
using storage::Stmt;

constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  chain_id INTEGER NOT NULL,
  contract BLOB NOT NULL,
  signer BLOB NOT NULL,
  nonce INTEGER NOT NULL,
  hash BLOB NOT NULL UNIQUE,
  raw BLOB NOT NULL,
  purpose TEXT NOT NULL,
  state INTEGER NOT NULL,
  block INTEGER NOT NULL DEFAULT -1,
  note TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS txs_pending ON txs (chain_id, contract, state, signer, nonce);
)sql";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<JournaledTx> RowToTx(const Stmt& row) {
  JournaledTx tx;
  RETURN_IF_ERROR(row.Blob(0, &tx.signer));
  tx.nonce = static_cast<uint64_t>(row.Int(1));
  RETURN_IF_ERROR(row.Blob(2, &tx.hash));
  tx.raw = row.Blob(3);
  tx.purpose = row.Text(4);
  return tx;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TxJournal>> TxJournal::Open(const std::filesystem::path& path,
                                                           uint64_t chain_id,
                                                           const crypto::Address& contract) {
  const std::filesystem::path file = path.empty() ? std::filesystem::path(":memory:") : path;
  ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(file, kBusyTimeoutMs, "evm tx journal"));
  std::unique_ptr<TxJournal> journal(new TxJournal(std::move(db), chain_id, contract));
  RETURN_IF_ERROR(journal->Init());
  return journal;
}

absl::Status TxJournal::Init() {
  absl::MutexLock lock(&mu_);
  // FULL synchronous: a journaled transaction must survive a power cut before it is broadcast.
  return storage::InitVersionedSchema(*db_, kSchema, kSchemaVersion, "evm tx journal");
}

absl::Status TxJournal::Record(const JournaledTx& tx) {
  absl::MutexLock lock(&mu_);
  const int64_t now = NowMs();
  Stmt put(*db_,
           "INSERT INTO txs (chain_id, contract, signer, nonce, hash, raw, purpose, state, "
           "created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8) "
           "ON CONFLICT(hash) DO NOTHING");
  return put.Bind(1, static_cast<int64_t>(chain_id_))
      .Bind(2, contract_)
      .Bind(3, tx.signer)
      .Bind(4, static_cast<int64_t>(tx.nonce))
      .Bind(5, tx.hash)
      .Bind(6, tx.raw)
      .BindText(7, tx.purpose)
      .Bind(8, now)
      .Run();
}

absl::Status TxJournal::SetState(const crypto::Hash256& hash, TxState state, int64_t block,
                                 std::string_view note) {
  absl::MutexLock lock(&mu_);
  Stmt update(*db_,
              "UPDATE txs SET state = ?1, block = ?2, note = ?3, updated_ms = ?4 WHERE hash = ?5");
  return update.Bind(1, static_cast<int64_t>(state))
      .Bind(2, block)
      .BindText(3, absl::string_view(note.data(), note.size()))
      .Bind(4, NowMs())
      .Bind(5, hash)
      .Run();
}

absl::Status TxJournal::MarkMined(const crypto::Hash256& hash, uint64_t block,
                                  std::string_view note) {
  RETURN_IF_ERROR(SetState(hash, TxState::kMined, static_cast<int64_t>(block), note));
  // The other pending transactions of its signer and nonce (a replaced one, or its replacement)
  // can never be mined now (index txs_pending).
  absl::MutexLock lock(&mu_);
  Stmt drop(*db_,
            "UPDATE txs SET state = 2, block = -1, note = 'nonce taken by ' || ?1, updated_ms = ?2 "
            "WHERE chain_id = ?3 AND contract = ?4 AND state = 0 "
            "AND signer = (SELECT signer FROM txs WHERE hash = ?5) "
            "AND nonce = (SELECT nonce FROM txs WHERE hash = ?5) AND hash <> ?5");
  return drop.BindText(1, evm::ToHex(hash))
      .Bind(2, NowMs())
      .Bind(3, static_cast<int64_t>(chain_id_))
      .Bind(4, contract_)
      .Bind(5, hash)
      .Run();
}

absl::Status TxJournal::MarkDropped(const crypto::Hash256& hash, std::string_view why) {
  return SetState(hash, TxState::kDropped, -1, why);
}

absl::StatusOr<std::vector<JournaledTx>> TxJournal::Pending() {
  absl::MutexLock lock(&mu_);
  Stmt select(*db_,
              "SELECT signer, nonce, hash, raw, purpose FROM txs WHERE chain_id = ?1 AND "
              "contract = ?2 AND state = 0 ORDER BY signer, nonce, id");
  select.Bind(1, static_cast<int64_t>(chain_id_)).Bind(2, contract_);
  return storage::CollectRows<JournaledTx>(select, RowToTx);
}

absl::StatusOr<TxState> TxJournal::StateOf(const crypto::Hash256& hash) {
  absl::MutexLock lock(&mu_);
  Stmt select(*db_, "SELECT state FROM txs WHERE hash = ?1");
  select.Bind(1, hash);
  ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return absl::NotFoundError("evm tx journal: transaction not recorded");
  const int64_t state = select.Int(0);
  if (state < 0 || state > 2) {
    return absl::DataLossError(absl::StrCat("evm tx journal: unknown state ", state));
  }
  return static_cast<TxState>(state);
}

absl::StatusOr<std::vector<JournaledTx>> TxJournal::All(const crypto::Address& signer) {
  absl::MutexLock lock(&mu_);
  Stmt select(*db_,
              "SELECT signer, nonce, hash, raw, purpose FROM txs WHERE chain_id = ?1 AND "
              "contract = ?2 AND signer = ?3 ORDER BY nonce, id");
  select.Bind(1, static_cast<int64_t>(chain_id_)).Bind(2, contract_).Bind(3, signer);
  return storage::CollectRows<JournaledTx>(select, RowToTx);
}

}  // namespace atoma::ledger::evm_backend
