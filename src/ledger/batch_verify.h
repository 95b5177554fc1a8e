// What the embedded and EVM backends check the same way before anything is applied: the
// structure of settlement items and dispute evidence, and steps 1 and 2 of
// LedgerClient::SettleCertificates, so that both judge every certificate alike (ledger.h): load
// the epoch seed and frozen snapshot once per (request epoch, echelon), then check each item's
// form and verify it with consensus::VerifyCertificate / VerifyXvCertificate. The backends differ
// only in where the seed and snapshot come from (SQLite rows, contract views) and in what they do
// with verified items.
//
// Internal to the ledger libraries (not a public header). Not thread-safe; one per batch.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/ledger/ledger.h"

namespace atoma::ledger {

// The structural rules of one item, before anything is verified (INVALID_ARGUMENT): `xv` must
// carry `certificate` as its base, a cross_validation request settles only with `xv`, and the
// certificate needs an attestation to name its echelon.
absl::Status CheckItemForm(const SettlementItem& item);

// The structural rules of dispute evidence (INVALID_ARGUMENT), checked before any signature is
// recovered (they bound every loop of SettleDispute; the EVM backend also needs them before it
// packs the evidence, whose counts are u8 in the calldata): member attestations present, k within
// kMaxCommitteeSize, one member attestation per member (cross-validation: the executor's, then at
// most k validators'), at most kMaxCommitteeSize members and RefereeCount(kMaxCommitteeSize)
// referee attestations.
absl::Status CheckDisputeForm(const DisputeEvidence& evidence);

class BatchVerifier {
 public:
  // NOT_FOUND from EpochLoader means the epoch has not started: the items of that epoch fail with
  // it. Any other error fails the whole batch.
  using EpochLoader = std::function<absl::StatusOr<Epoch>(uint64_t epoch)>;
  using SnapshotLoader =
      std::function<absl::StatusOr<std::vector<Candidate>>(uint64_t epoch, const Hash256& echelon)>;

  // Sets every result's request id and notes the (epoch, echelon) pairs the items need.
  // `items` and `results` (same size) must outlive the verifier.
  BatchVerifier(const consensus::Domain& domain, std::span<const SettlementItem> items,
                std::span<SettlementResult> results);

  // Loads the seed and snapshot of every pair (a backend may call this inside a read
  // transaction and then verify without holding it).
  absl::Status Load(const EpochLoader& epoch, const SnapshotLoader& snapshot);

  // Verifies every item; returns which did. The others' results hold the status (INVALID_ARGUMENT
  // for form, NOT_FOUND for an epoch not started, PERMISSION_DENIED with the verdict's reason),
  // check and member.
  std::vector<bool> Verify() const;

 private:
  struct Context {
    absl::Status status;  // NOT_FOUND when the epoch has not started
    consensus::CertificateContext context;
  };
  std::span<const SettlementItem> items_;
  std::span<SettlementResult> results_;
  std::map<std::pair<uint64_t, Hash256>, Context> contexts_;
};

}  // namespace atoma::ledger
