// The node's durable journal (DESIGN §6 "Nothing accepted is lost"): one SQLite file per node in
// its data_dir that records
//   * accepted requests and their progress (accepted → executing → attested → certified | failed),
//   * this node's own attestations, so that it never signs two different attestations for one
//     request, even across a crash and restart (equivocation is slashable, DESIGN §4.6),
//   * certificates awaiting settlement on the ledger (the SettlementOutbox drains them), sampling
//     (0x01) and cross-validation (0x02) alike.
// After a restart the node asks for UnfinishedRequests and the outbox for UnsettledCertificates.
//
// Durability: WAL mode with synchronous=FULL, so a call that returned OK survives power loss.
// Every mutation is one transaction.
//
// Error policy: a write whose outcome is unknown (I/O error, full disk, corrupt file) makes the
// journal fail-stop: that call and every later call return the same sticky error, because the
// node can no longer promise what it has journaled. SQLITE_BUSY (another process holding the
// file past the busy timeout) is UNAVAILABLE and not sticky: nothing was applied.
//
// Thread-safety: a Journal is safe to use from several threads (calls are serialized on its one
// connection). One node owns one journal file; two processes must not open the same data_dir.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/ledger/ledger.h"

namespace atoma::journal {

using Hash256 = crypto::Hash256;

// Progress of an accepted request. Transitions only go forward in this order; kCertified and
// kFailed are final. Skipping states is allowed (a node that is not a committee member goes from
// kAccepted to kCertified), going back is not.
enum class RequestState : int {
  kAccepted = 0,
  kExecuting = 1,
  kAttested = 2,
  kCertified = 3,
  kFailed = 4,
};
std::string_view RequestStateName(RequestState state);

struct RequestRecord {
  Hash256 request_id{};
  std::vector<uint8_t> request_bytes;  // canonical encoding (consensus::EncodeRequest)
  RequestState state = RequestState::kAccepted;
  std::string reason;            // why it failed (kFailed only)
  int64_t accepted_unix_ms = 0;  // when RecordAccepted first stored it
  int64_t updated_unix_ms = 0;   // last state change
};

enum class SettlementState : int {
  kPending = 0,   // waiting for the outbox
  kSettled = 1,   // the ledger settled it (or had settled it already: ALREADY_EXISTS)
  kRejected = 2,  // the ledger refused it for good; `reason` says why; never retried
};

struct SettlementRecord {
  ledger::SettlementItem item;
  Hash256 request_id{};
  SettlementState state = SettlementState::kPending;
  std::string reason;
  uint64_t attempts = 0;  // SettleCertificates calls that included it and did not decide it
  int64_t created_unix_ms = 0;
};

class Journal {
 public:
  virtual ~Journal() = default;

  // --- Requests ---
  // Stores a newly accepted request in state kAccepted. Idempotent for the same bytes (returns
  // OK and keeps the stored state); ALREADY_EXISTS when `request_id` is stored with other bytes.
  virtual absl::Status RecordAccepted(const Hash256& request_id,
                                      std::span<const uint8_t> request_bytes) = 0;
  // Moves a request forward. NOT_FOUND for an unknown request; FAILED_PRECONDITION for a move
  // backwards or out of a final state. Setting the current state again is OK (no change).
  // `reason` is stored for kFailed.
  virtual absl::Status SetState(const Hash256& request_id, RequestState state,
                                std::string_view reason = {}) = 0;
  virtual absl::StatusOr<RequestRecord> GetRequest(const Hash256& request_id) = 0;
  // Requests not yet certified or failed, oldest first: what to resume after a restart.
  virtual absl::StatusOr<std::vector<RequestRecord>> UnfinishedRequests() = 0;

  // --- Own attestations (equivocation guard) ---
  // Stores this node's attestation for its request, BEFORE it is sent anywhere. OK when none is
  // stored or the identical one is (a retry after a crash re-sends the same attestation).
  // OK and REPLACES the stored one when the two differ only in C and the signature
  // (consensus::SameOutputClaim): a re-attestation for a new committee after a backup replaced a
  // peer (a view update), which is not equivocation; OwnAttestation then returns the new one.
  // ALREADY_EXISTS when the stored one makes another claim (p_i, token counts, Merkle root,
  // echelon, epoch): the caller must not send the new one — send OwnAttestation's instead.
  virtual absl::Status RecordOwnAttestation(const consensus::Attestation& attestation) = 0;
  virtual absl::StatusOr<std::optional<consensus::Attestation>> OwnAttestation(
      const Hash256& request_id) = 0;

  // --- Certificates awaiting settlement ---
  // Queues a certificate (with the output it certifies) for settlement and marks its request
  // kCertified when the request is journaled. Idempotent per request id: a second certificate for
  // the same request is ignored (OK), so nothing is ever paid twice from this node.
  // A cross-validation item (`item.xv` set) is stored as its 0x02 encoding
  // (consensus::EncodeXvCertificate); INVALID_ARGUMENT when `item.certificate` is not
  // `item.xv->base` (nothing stored).
  virtual absl::Status AddCertificate(const ledger::SettlementItem& item) = 0;
  // Up to `limit` pending certificates, oldest first. Each stored certificate is read back by its
  // version byte: 0x01 a sampling certificate (`xv` empty), 0x02 a cross-validation one (`xv`
  // set, `certificate` its base). DATA_LOSS for stored bytes that do not decode.
  virtual absl::StatusOr<std::vector<SettlementRecord>> UnsettledCertificates(size_t limit) = 0;
  virtual absl::StatusOr<size_t> CountUnsettled() = 0;
  virtual absl::StatusOr<SettlementRecord> GetSettlement(const Hash256& request_id) = 0;
  // Final outcomes. NOT_FOUND for an unknown request id; FAILED_PRECONDITION when it is not
  // pending (a final outcome never changes).
  virtual absl::Status MarkSettled(const Hash256& request_id) = 0;
  virtual absl::Status MarkRejected(const Hash256& request_id, std::string_view reason) = 0;
  // Counts one undecided attempt (the ledger was unavailable or said "not yet").
  virtual absl::Status RecordAttempt(const Hash256& request_id) = 0;
};

struct JournalOptions {
  // How long a write waits for a lock held by another connection before UNAVAILABLE. The journal
  // has one owner, so waiting at all means something is wrong; 5 s as the ledger uses.
  int busy_timeout_ms = 5000;
  // Test seam. Default (empty): the system clock, milliseconds since the Unix epoch.
  std::function<int64_t()> unix_ms;
};

inline constexpr std::string_view kJournalFileName = "journal.db";

// Opens (creating if missing) `data_dir`/journal.db. The directory is created if missing.
// FAILED_PRECONDITION for a file of another schema version; DATA_LOSS for a corrupt one.
absl::StatusOr<std::unique_ptr<Journal>> OpenJournal(const std::filesystem::path& data_dir,
                                                     const JournalOptions& options = {});

}  // namespace atoma::journal
