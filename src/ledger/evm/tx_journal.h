// Internal to the EVM ledger backend: the transaction journal. Every signed raw transaction is
// recorded (signer, nonce, hash, raw bytes, purpose) BEFORE it is broadcast, and marked mined
// (or dropped) when its fate is known, so that a restart re-sends the very same bytes instead of
// signing a second, different transaction for the same intent.
//
// One SQLite file (storage/sqlite_db.h), WAL mode; rows are scoped by chain id and contract, so
// one file may serve several ledgers. Schema (docs/ledger_evm.md, "The C++ backend"):
//   txs(id, chain_id, contract, signer, nonce, hash UNIQUE, raw, purpose, state, block, note,
//       created_ms, updated_ms)   state: 0 pending, 1 mined, 2 dropped
//
// Errors: storage errors as storage::SqliteStatus classifies them (UNAVAILABLE busy, ABORTED I/O,
// DATA_LOSS corrupt); FAILED_PRECONDITION for a file of another schema version.
// Thread-safety: safe from several threads (one connection behind a mutex).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "sqlite_db.h"

namespace atoma::ledger::evm_backend {

struct JournaledTx {
  crypto::Address signer{};
  uint64_t nonce = 0;
  crypto::Hash256 hash{};
  std::vector<uint8_t> raw;
  std::string purpose;  // e.g. "settle 3 certificates", for logs and operators
  // In memory only (not stored): it was not mined within a receipt timeout, so the signer's next
  // call replaces it with a higher-fee transaction of the same nonce (TxSender).
  bool stuck = false;
};

enum class TxState : int64_t { kPending = 0, kMined = 1, kDropped = 2 };

class TxJournal {
 public:
  // Opens (creating) the journal at `path`; an empty path is an in-memory journal.
  static absl::StatusOr<std::unique_ptr<TxJournal>> Open(const std::filesystem::path& path,
                                                         uint64_t chain_id,
                                                         const crypto::Address& contract);

  // Records a signed transaction as pending. Recording the same hash twice is OK (a re-send).
  absl::Status Record(const JournaledTx& tx);
  // Marks the transaction mined in `block` (`note`: "ok" or "reverted"), and every other pending
  // transaction of its signer and nonce dropped ("nonce taken by <hash>"): a replaced one.
  absl::Status MarkMined(const crypto::Hash256& hash, uint64_t block, std::string_view note);
  // Marks it dropped: it can never be mined (its nonce was taken) or the node refused it.
  absl::Status MarkDropped(const crypto::Hash256& hash, std::string_view why);
  // Pending transactions of this chain and contract, by signer then nonce.
  absl::StatusOr<std::vector<JournaledTx>> Pending();
  // The state of a recorded transaction (NOT_FOUND when never recorded). For tests and tools.
  absl::StatusOr<TxState> StateOf(const crypto::Hash256& hash);
  // Every recorded transaction of `signer` for this chain and contract, any state, by nonce then
  // id. For tests and tools.
  absl::StatusOr<std::vector<JournaledTx>> All(const crypto::Address& signer);

 private:
  TxJournal(std::unique_ptr<storage::Db> db, uint64_t chain_id, const crypto::Address& contract)
      : db_(std::move(db)), chain_id_(chain_id), contract_(contract) {}
  absl::Status Init();
  absl::Status SetState(const crypto::Hash256& hash, TxState state, int64_t block,
                        std::string_view note);

  absl::Mutex mu_;
  std::unique_ptr<storage::Db> db_ ABSL_GUARDED_BY(mu_);
  const uint64_t chain_id_;
  const crypto::Address contract_;
};

}  // namespace atoma::ledger::evm_backend
