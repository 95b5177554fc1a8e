// The settlement outbox (DESIGN §2 "the ledger client has its own worker with a durable
// outbox"): a worker that drains the journal's unsettled certificates into
// LedgerClient::SettleCertificates in batches. Sampling and cross-validation certificates travel
// alike: the journal reads a 0x02 certificate back with `SettlementItem::xv` set, and the ledger
// verifies and pays it as one.
//
// Guarantees:
//   * Nothing lost: a certificate leaves the pending set only when the ledger decided it. A
//     failed call (UNAVAILABLE, ABORTED, anything else at call level) leaves the whole batch
//     pending and is retried with exponential backoff; a restart resumes from the journal.
//   * Nothing paid twice: the ledger refuses a second settlement of a request id, and the outbox
//     counts its ALREADY_EXISTS as settled (the first call may have committed before a crash).
//   * No endless retries: per-item refusals (PERMISSION_DENIED, FAILED_PRECONDITION,
//     INVALID_ARGUMENT) are final and stored as rejected with the ledger's reason. NOT_FOUND (the
//     epoch is not open on the ledger yet, possible on a lagging chain) and per-item
//     UNAVAILABLE/ABORTED are retried up to `max_attempts`, then rejected.
//
// Batching: a batch goes out when `batch_size` certificates are pending, when the oldest pending
// one has waited `max_delay`, or at once while a Flush runs.
//
// Thread-safety: all public methods may be called from any thread. The outbox does not own the
// journal or the ledger; both must outlive it. The destructor stops the worker (it does not
// flush: call Flush first on an orderly shutdown).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "atoma/journal/journal.h"
#include "atoma/ledger/ledger.h"

namespace atoma::journal {

struct OutboxOptions {
  // Who submits the settlements (the node's address; anyone may, a certificate proves itself).
  ledger::Address submitter{};
  // 64: one ledger transaction per 64 requests amortizes the per-call cost (on an EVM chain, the
  // per-transaction gas) while a batch stays far below kMaxSettlementBatch. 1..kMaxSettlementBatch.
  size_t batch_size = 64;
  // A partial batch goes out once its oldest item has waited this long. 2 s: fees reach members
  // promptly and the ledger sees at most a call every 2 s from a quiet node.
  absl::Duration max_delay = absl::Seconds(2);
  // Backoff after a failed call: initial, doubled per consecutive failure, capped.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);
  // Undecided attempts (NOT_FOUND, per-item UNAVAILABLE) before an item is rejected for good.
  uint64_t max_attempts = 20;
  // Start the worker thread. false: nothing runs by itself; tests drive Step() with a fake clock.
  bool start_thread = true;
  // Test seam. Default (empty): absl::Now().
  std::function<absl::Time()> now;
};

struct OutboxStats {
  uint64_t calls = 0;         // SettleCertificates calls made
  uint64_t failed_calls = 0;  // calls that failed as a whole
  uint64_t settled = 0;       // items marked settled (including ALREADY_EXISTS)
  uint64_t already_settled = 0;
  uint64_t rejected = 0;
};

class SettlementOutbox {
 public:
  // INVALID_ARGUMENT for options out of range.
  static absl::StatusOr<std::unique_ptr<SettlementOutbox>> Start(Journal& journal,
                                                                 ledger::LedgerClient& ledger,
                                                                 const OutboxOptions& options);
  virtual ~SettlementOutbox() = default;

  // Wakes the worker: a certificate was added to the journal.
  virtual void Notify() = 0;
  // Sends batches without waiting for max_delay until nothing is pending (OK) or `deadline`
  // passes (DEADLINE_EXCEEDED, with the count left). Backoff still applies between failed calls.
  // Needs the worker thread (start_thread); without it, FAILED_PRECONDITION.
  virtual absl::Status Flush(absl::Time deadline) = 0;
  // One round of the worker's loop at the current clock: sends one batch if one is due and the
  // backoff has passed. Returns whether a call was made. A journal error is returned (and makes
  // the worker stop: the journal is fail-stop). For tests with start_thread = false; with the
  // thread running it serializes with the worker.
  virtual absl::StatusOr<bool> Step(bool flushing = false) = 0;
  virtual OutboxStats stats() const = 0;
};

}  // namespace atoma::journal
