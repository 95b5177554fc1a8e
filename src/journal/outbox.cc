// The settlement outbox worker (see include/atoma/journal/outbox.h and docs/journal.md).
#include "atoma/journal/outbox.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"

namespace atoma::journal {
namespace {

// Per-item outcomes that may change if asked again later: the epoch is not open on the ledger
// yet, or a storage hiccup reported per item. Everything else the ledger says about an item is
// its final word.
bool Undecided(absl::StatusCode code) {
  return code == absl::StatusCode::kNotFound || code == absl::StatusCode::kUnavailable ||
         code == absl::StatusCode::kAborted;
}

class Outbox final : public SettlementOutbox {
 public:
  Outbox(Journal& journal, ledger::LedgerClient& ledger, OutboxOptions options)
      : journal_(journal), ledger_(ledger), options_(std::move(options)) {
    backoff_ = options_.initial_backoff;
  }

  ~Outbox() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      wake_.SignalAll();
    }
    if (thread_.joinable()) thread_.join();
  }

  void StartThread() {
    thread_ = std::thread([this] { Run(); });
  }

  void Notify() override {
    absl::MutexLock lock(&mu_);
    notified_ = true;
    wake_.Signal();
  }

  absl::Status Flush(absl::Time deadline) override {
    if (!thread_.joinable()) {
      return absl::FailedPreconditionError("outbox: Flush needs the worker thread");
    }
    {
      absl::MutexLock lock(&mu_);
      ++flushers_;
      notified_ = true;
      wake_.Signal();
    }
    absl::Status result = [&]() -> absl::Status {
      while (true) {
        ASSIGN_OR_RETURN(size_t left, journal_.CountUnsettled());
        if (left == 0) return absl::OkStatus();
        absl::MutexLock lock(&mu_);
        RETURN_IF_ERROR(fatal_);
        if (Now() >= deadline) {
          return absl::DeadlineExceededError(
              absl::StrCat("outbox: ", left, " certificates still unsettled at the deadline"));
        }
        progress_.WaitWithTimeout(&mu_, absl::Milliseconds(20));
      }
    }();
    absl::MutexLock lock(&mu_);
    --flushers_;
    return result;
  }

  absl::StatusOr<bool> Step(bool flushing) override {
    absl::MutexLock step_lock(&step_mu_);
    const absl::Time now = Now();
    {
      absl::MutexLock lock(&mu_);
      RETURN_IF_ERROR(fatal_);
      if (now < backoff_until_) return false;
    }
    absl::StatusOr<bool> r = StepLocked(now, flushing);
    absl::MutexLock lock(&mu_);
    if (!r.ok()) {
      fatal_ = r.status();
      log_->error("outbox stops: the journal failed: {}", r.status().ToString());
    }
    progress_.SignalAll();
    return r;
  }

  OutboxStats stats() const override {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

 private:
  absl::Time Now() const { return options_.now ? options_.now() : absl::Now(); }

  absl::StatusOr<bool> StepLocked(absl::Time now, bool flushing)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(step_mu_) {
    ASSIGN_OR_RETURN(std::vector<SettlementRecord> pending,
                     journal_.UnsettledCertificates(options_.batch_size));
    if (pending.empty()) return false;
    const absl::Time oldest = absl::FromUnixMillis(pending.front().created_unix_ms);
    if (!flushing && pending.size() < options_.batch_size && now - oldest < options_.max_delay) {
      return false;
    }
    std::vector<ledger::SettlementItem> items;
    items.reserve(pending.size());
    for (const SettlementRecord& r : pending) items.push_back(r.item);

    absl::StatusOr<std::vector<ledger::SettlementResult>> results =
        ledger_.SettleCertificates(options_.submitter, items);
    {
      absl::MutexLock lock(&mu_);
      ++stats_.calls;
    }
    if (results.ok() && results->size() != items.size()) {
      results = absl::InternalError(absl::StrCat("ledger returned ", results->size(),
                                                 " results for ", items.size(), " items"));
    }
    if (!results.ok()) {
      // Nothing was applied (the ledger's contract for a failed call): keep everything pending.
      absl::MutexLock lock(&mu_);
      ++stats_.failed_calls;
      log_->warn("settlement of {} certificates failed, retrying in {}: {}", items.size(),
                 absl::FormatDuration(backoff_), results.status().ToString());
      BackOff(now);
      return true;
    }
    bool any_undecided = false;
    uint64_t settled = 0, already = 0, rejected = 0;
    for (size_t i = 0; i < pending.size(); ++i) {
      const Hash256& id = pending[i].request_id;
      const absl::Status& s = (*results)[i].status;
      if (s.ok() || s.code() == absl::StatusCode::kAlreadyExists) {
        RETURN_IF_ERROR(journal_.MarkSettled(id));
        ++settled;
        if (!s.ok()) ++already;
      } else if (Undecided(s.code()) && pending[i].attempts + 1 < options_.max_attempts) {
        RETURN_IF_ERROR(journal_.RecordAttempt(id));
        any_undecided = true;
      } else {
        const std::string reason = Undecided(s.code())
                                       ? absl::StrCat("gave up after ", pending[i].attempts + 1,
                                                      " attempts: ", s.ToString())
                                       : s.ToString();
        RETURN_IF_ERROR(journal_.MarkRejected(id, reason));
        log_->warn("certificate rejected by the ledger: {}", reason);
        ++rejected;
      }
    }
    absl::MutexLock lock(&mu_);
    stats_.settled += settled;
    stats_.already_settled += already;
    stats_.rejected += rejected;
    if (any_undecided) {
      BackOff(now);  // else the same undecided items would be resent at once, in a loop
    } else {
      backoff_ = options_.initial_backoff;
    }
    return true;
  }

  void BackOff(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    backoff_until_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  }

  void Run() {
    while (true) {
      bool flushing;
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
        flushing = flushers_ > 0;
        notified_ = false;
      }
      absl::StatusOr<bool> sent = Step(flushing);
      absl::MutexLock lock(&mu_);
      if (!sent.ok()) {
        // Fail-stop with the journal; wait for the owner to shut down.
        while (!stop_) wake_.Wait(&mu_);
        return;
      }
      if (*sent && Now() >= backoff_until_) continue;  // more may be due at once
      absl::Duration wait = options_.max_delay / 4;
      if (flushers_ > 0) wait = absl::Milliseconds(10);
      const absl::Time t = Now();
      if (backoff_until_ > t) wait = backoff_until_ - t;
      wait = std::clamp(wait, absl::Milliseconds(1), absl::Seconds(1));
      if (!stop_ && !notified_) wake_.WaitWithTimeout(&mu_, wait);
    }
  }

  Journal& journal_;
  ledger::LedgerClient& ledger_;
  const OutboxOptions options_;
  std::shared_ptr<spdlog::logger> log_ = GetLogger("outbox");

  absl::Mutex step_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one Step at a time
  mutable absl::Mutex mu_;
  absl::CondVar wake_;      // worker: stop, notify
  absl::CondVar progress_;  // Flush: a step finished
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
  int flushers_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time backoff_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  OutboxStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SettlementOutbox>> SettlementOutbox::Start(
    Journal& journal, ledger::LedgerClient& ledger, const OutboxOptions& options) {
  if (options.batch_size == 0 || options.batch_size > ledger::LedgerClient::kMaxSettlementBatch) {
    return absl::InvalidArgumentError(
        absl::StrCat("outbox: batch_size must be 1..", ledger::LedgerClient::kMaxSettlementBatch));
  }
  if (options.max_delay < absl::ZeroDuration() || options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        "outbox: need max_delay >= 0 and 0 < initial_backoff <= max_backoff");
  }
  if (options.max_attempts == 0) {
    return absl::InvalidArgumentError("outbox: max_attempts must be at least 1");
  }
  auto outbox = std::make_unique<Outbox>(journal, ledger, options);
  if (options.start_thread) outbox->StartThread();
  return outbox;
}

}  // namespace atoma::journal
