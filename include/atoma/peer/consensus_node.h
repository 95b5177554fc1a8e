// The node's Sampling Consensus runtime (DESIGN §2, §4.5, §4.6): the atoma.v1.Peer service that
// makes this node a committee member or referee for other nodes' rounds, and the entry side that
// runs a round for a verified client request on top of consensus::Round.
//
// Entry side (Submit): checks the request (model served, committee size, epoch is the ledger's
// current one, client authorization, max_fee covers the worst case, escrow not pending withdrawal
// covers it on top of the client's other unsettled requests here), draws the committee
// from the epoch seed and the echelon's frozen stakes, journals the request, and drives a Round on
// its own thread: Execute calls to members (this node executes locally when it is one), their
// attestations into the Round, timeouts → backups, disagreement → referees → SettleDispute on the
// ledger, equivocation → ReportEquivocation, certificate → journal → settlement outbox. The client
// sees this node's own tokens when it is a member, else one member's relayed stream; then the
// outcome (certificate and output, or why the round failed). A client that goes away does not stop
// the round: the request was accepted, so it is finished and settled.
//
// Member side (the Peer service): every message is signed by a registered node and checked before
// use (peer.proto); the member recomputes the draws itself and serves only roles it was drawn for;
// an output is computed once per request id and reused when the committee changes (a backup
// replaced someone, so C changes) — the journal guard keeps its claims about the output identical;
// the output is released to a peer only against that peer's own attestation.
//
// Durability: accepted requests are journaled before any peer is called; ResumeJournaled re-runs
// the rounds of requests that were accepted but not finished before a crash or restart (members
// re-execute deterministically or answer from their cache), and certificates settle exactly once
// (journal + outbox + the ledger's ALREADY_EXISTS).
//
// Settlement: a submitter of a co-signed settlement batch asks each member named in it to co-sign
// its slots once (Peer.Cosign); a member co-signs only entries carrying its own signature.
//
// Thread-safety: all methods are thread-safe. The key, ledger, journal, outbox and engines must
// outlive the ConsensusNode; call Shutdown before destroying any of them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/keys.h"
#include "atoma/engine/engine.h"
#include "atoma/journal/journal.h"
#include "atoma/journal/outbox.h"
#include "atoma/ledger/ledger.h"

namespace grpc {
class Service;
}

namespace atoma::peer {

using crypto::Address;
using crypto::Hash256;

// A model this node serves in consensus, with the echelon it measured for it (DESIGN §4.2).
struct ServedModel {
  engine::Engine* engine = nullptr;
  Hash256 echelon_id{};
};

struct ConsensusOptions {
  // consensus::RoundInputs timeouts.
  int64_t member_timeout_ms = 30'000;
  int64_t reattest_timeout_ms = 5'000;
  int64_t referee_timeout_ms = 60'000;
  // Cross-validation: how long the client has to reveal its salt after the provisional result.
  int64_t salt_timeout_ms = 60'000;
  // Deadline of the short peer calls (Attest, GetAttestations, an Execute that only re-attests).
  int64_t peer_call_timeout_ms = 5'000;
  // Largest sampling n this node runs a round for (1..consensus::kMaxCommitteeSize).
  uint64_t max_committee_size = 16;
  // A signed peer message older or newer than this (by its sender's clock) is refused.
  int64_t replay_window_ms = 60'000;
  // Executed outputs kept for re-attestation and release (oldest finished ones are dropped).
  size_t output_cache_entries = 1024;
  // PEM root certificates of the network: non-empty → peers are called over TLS and must present
  // a certificate signed by these roots. Empty → plaintext.
  std::string peer_root_certs_pem;
  // Test seam: wall clock in ms since the Unix epoch. Default: the system clock.
  std::function<int64_t()> unix_ms;
};

struct Dependencies {
  const crypto::PrivateKey* key = nullptr;
  ledger::LedgerClient* ledger = nullptr;
  journal::Journal* journal = nullptr;
  journal::SettlementOutbox* outbox = nullptr;  // may be null (then nothing is settled by us)
  std::vector<ServedModel> models;
};

// How a round ended, as the client sees it.
struct RoundOutcome {
  // OK: certified. ABORTED: a dispute was resolved by the referees (detail says who was
  // slashed) or the referees found no majority. UNAVAILABLE: members timed out with no backups
  // left. INTERNAL: this node failed (journal, engine).
  absl::Status status;
  consensus::Certificate certificate;  // when OK (cross-validation: the executor's part)
  // Cross-validation, when OK: the whole certificate (salt, validators).
  std::optional<consensus::XvCertificate> xv_certificate;
  consensus::ConsensusOutput output;  // when OK (and when known otherwise)
  int prompt_tokens = 0;
  std::string detail;  // one line for logs and the client: committee, dispute, failure
};

// The client's view of one round.
class RoundHandle {
 public:
  virtual ~RoundHandle() = default;
  enum class Wait { kToken, kProvisional, kDone, kTimeout };
  // Next token event (engine::StreamEvent with final == false) in order; kProvisional once, for
  // cross-validation, after the tokens, when the executor has attested (see provisional());
  // kDone once the round has ended and every token was read; kTimeout when none of these
  // happened within `timeout`.
  virtual Wait Next(engine::StreamEvent* token, std::chrono::milliseconds timeout) = 0;
  // Cross-validation, after Next returned kProvisional: the executor's attestation and output.
  struct Provisional {
    consensus::Attestation attestation;
    consensus::ConsensusOutput output;
  };
  virtual std::optional<Provisional> provisional() const = 0;
  // Valid after Next returned kDone.
  virtual const RoundOutcome& outcome() const = 0;
  virtual const Hash256& request_id() const = 0;
  virtual const std::vector<Address>& initial_committee() const = 0;
};

// Counters for logs and metrics. Rejections are keyed by reason ("bad_signature",
// "unregistered_sender", "wrong_method", "stale_message", "stale_epoch", "not_drawn",
// "bad_client_signature", "malformed", "unknown_model", "not_own_attestation" (a Cosign entry this
// node never signed), and the Round's ignored-attestation
// causes "foreign", "invalid", "not_participant", "duplicate", "equivocating", "late").
struct PeerStats {
  uint64_t rounds_started = 0;
  uint64_t rounds_certified = 0;
  uint64_t rounds_disputed = 0;
  uint64_t rounds_failed = 0;
  uint64_t executions = 0;  // outputs this node computed (as member, referee or entry)
  uint64_t attestations_signed = 0;
  uint64_t attestations_accepted = 0;  // peers' attestations used by our rounds
  uint64_t equivocations_reported = 0;
  uint64_t slashings_submitted = 0;  // disputes settled on the ledger by us
  uint64_t peer_call_errors = 0;
  uint64_t cosignatures_signed = 0;  // settlement batch co-signatures given to submitters
  std::map<std::string, uint64_t> rejected;
};

class ConsensusNode {
 public:
  // INVALID_ARGUMENT for missing dependencies or options out of range; the ledger's error when
  // its parameters cannot be read.
  static absl::StatusOr<std::unique_ptr<ConsensusNode>> Make(Dependencies deps,
                                                             ConsensusOptions options);
  virtual ~ConsensusNode() = default;

  // The atoma.v1.Peer implementation, to register on the node's gRPC server.
  virtual grpc::Service* service() = 0;
  // The signing domain of the ledger (what clients sign for).
  virtual const consensus::Domain& domain() const = 0;

  // Entry side: runs a round for a verified request (sampling or cross-validation). Errors
  // (before anything is journaled): INVALID_ARGUMENT (security none, n or k too large), NOT_FOUND
  // (model digest not served), PERMISSION_DENIED (client signature), FAILED_PRECONDITION (epoch
  // not current, max_fee below the worst-case fee, escrow short — "escrow: ...": the balance
  // less its pending withdrawal (ledger::EscrowUncommitted) less the worst-case fees of the
  // client's requests this node accepted that have not settled yet does not cover this one's
  // worst case —, fewer staked nodes than n in the echelon), ALREADY_EXISTS (this request id was
  // accepted before; or its client nonce was settled, or is used by another request whose round
  // runs or whose certificate waits for settlement here), UNAVAILABLE (shutting down, or the ledger
  // is busy).
  virtual absl::StatusOr<std::shared_ptr<RoundHandle>> Submit(
      const consensus::ConsensusRequest& request, const crypto::Signature& client_signature) = 0;

  // Cross-validation: the client reveals its salt for a round run by this node. Returns whether
  // the coin drew a check. NOT_FOUND (no running round with this id), PERMISSION_DENIED (the salt
  // does not hash to the request's salt_hash), FAILED_PRECONDITION (the round is not waiting for
  // a salt).
  virtual absl::StatusOr<bool> RevealSalt(const Hash256& request_id,
                                          const consensus::XvSalt& salt) = 0;

  // After a restart: re-runs the rounds of journaled requests that are neither certified nor
  // failed (requests whose epoch is no longer current or previous are marked failed), and takes
  // back the nonce claims and escrow reservations of those rounds and of the journaled
  // certificates not settled yet, as Submit took them before the restart. Returns how many rounds
  // it started.
  virtual absl::StatusOr<int> ResumeJournaled() = 0;

  // Stops intake (Submit → UNAVAILABLE, Execute → UNAVAILABLE), lets running rounds finish until
  // `deadline`, then cancels their peer calls and joins every thread. Idempotent.
  virtual void Shutdown(std::chrono::milliseconds deadline) = 0;

  virtual PeerStats stats() const = 0;

  // Settlement co-signatures (docs/ledger_evm.md "Co-signed batches") for this node's settlement
  // batches: asks each member over Peer.Cosign (this node signs its own entries itself), up to 16
  // members at once, each call bounded by peer_call_timeout_ms. After Shutdown every request
  // answers UNAVAILABLE (the batch then settles with per-slot signatures). Lives as long as this
  // ConsensusNode.
  virtual ledger::Cosigner& cosigner() = 0;
};

}  // namespace atoma::peer
