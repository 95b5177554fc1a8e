// The entry node's consensus round (DESIGN §2, §4.5, §4.6) as an explicit, event-driven state
// machine over plain data. It owns no thread, socket or clock: the caller feeds it events (start,
// a peer's attestation, a timer tick) with the current time `now`, and performs the actions it
// returns (send an Execute, ask for a re-attestation, start referees, deliver a certificate,
// report equivocation, settle a dispute, fail and refund). docs/protocol.md ("The round") has the
// state diagram.
//
// States: kIdle → kCollecting → (kCertified | kDisputing → (kResolved | kFailed) | kFailed).
// kCertified, kResolved and kFailed are terminal: later events only bump counters.
//
// Cross-validation requests (xv.h; committee of one, the executor) take two more states:
// kCollecting → kAwaitingSalt (the executor attested: DeliverProvisional) → on the client's salt,
// coin not drawn → kCertified (DeliverXvCertificate); drawn → kValidating (StartValidators) →
// kCertified when all k validators attest the executor's C, kDisputing when one attests another
// C, kFailed (kValidatorsMissing) when some stay silent and the rest agree. No salt before
// salt_timeout_ms → kCertified with an unrevealed certificate. An executor whose own p does not
// hash to its C goes straight to kDisputing.
//
// Views. C = H(p_0..p_{n-1}) depends on the committee's addresses, so when a member is replaced
// every other member must recompute C for the new committee (its p_i and output are unchanged).
// The machine therefore keeps, per slot, the occupant's latest attestation; a newer one with the
// same output claim (SameOutputClaim: all but C and the signature equal) is a view update, not
// equivocation.
// After a replacement it waits up to `reattest_timeout_ms` for members to catch up before it
// treats differing C's as a disagreement.
//
// Untrusted input: every attestation is checked (request id, echelon, VerifyAttestation, role)
// before use; failures are counted in RoundCounters and never change the round.
//
// Thread-compatible value type: one owner drives it (e.g. under the round's strand or mutex).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"

namespace atoma::consensus {

// Caller's monotonic clock in milliseconds (only differences matter).
using RoundTime = int64_t;

struct RoundInputs {
  Domain domain;
  uint64_t epoch = 0;
  Hash256 echelon_id{};
  ConsensusRequest request;  // the round's committee size is CommitteeSize(request.security)
  // The client's authorization of `request` (see VerifyClientSignature), copied into the
  // certificate. The round does not check it: the entry node checks it when it accepts the
  // request, and a certificate without a valid one does not verify.
  crypto::Signature client_signature{};
  // From SelectCommittee(seed, RequestId(request), registry, n, BackupCount(n), RefereeCount(n)),
  // or for cross_validation SelectCommittee(..., 1, BackupCount(1), XvRefereeDraws(k)) (the first
  // k referee draws are the validators and must all be there; the rest are the dispute referees).
  // At most BackupCount(n) backups (more would make certificates that verifiers reject); the
  // referee list may be shorter than RefereeCount(n) in a small echelon and may be empty (a
  // disagreement then fails the round).
  CommitteeDraws draws;
  // A member (or a replacement) that has not attested this long after its Execute is replaced.
  // Cross-validation validators execute like members and get the same time (they are not
  // replaced: a validator silent this long after StartValidators no longer counts).
  int64_t member_timeout_ms = 30'000;
  // After a replacement, how long members that already attested get to re-attest for the new
  // committee before differing C's count as a disagreement.
  int64_t reattest_timeout_ms = 5'000;
  // Referees that have not attested this long after StartReferees no longer count.
  int64_t referee_timeout_ms = 60'000;
  // Cross-validation: how long after DeliverProvisional the client has to reveal its salt. After
  // that the executor's result is final, unchecked ("unrevealed"): the client chose not to check.
  int64_t salt_timeout_ms = 60'000;
};

enum class RoundState {
  kIdle,
  kCollecting,
  kDisputing,
  kCertified,
  kResolved,
  kFailed,
  kAwaitingSalt,  // cross-validation: the executor's result is out; waiting for the client's salt
  kValidating,    // cross-validation: the coin drew a check; waiting for the validators
};
const char* RoundStateName(RoundState state);

// --- Actions (what the caller must do) ---

// Ask `member` to execute the request and attest for `committee` (it takes slot `slot`).
struct SendExecute {
  Address member{};
  size_t slot = 0;
  std::vector<Address> committee;
};
// The committee changed: `member` must recompute C for `committee` and attest again.
struct UpdateCommittee {
  Address member{};
  std::vector<Address> committee;
};
// Disagreement: every referee executes and attests C for `committee` (its own p is for its own
// address, which is not in `committee`).
struct StartReferees {
  std::vector<Address> referees;
  std::vector<Address> committee;
};
// Two valid attestations by one node for this request with different output claims: slashable
// on their own (DESIGN §4.6). Reported once per node.
struct ReportEquivocation {
  Attestation first;
  Attestation second;
};
// All n members attested the same C and H(p_0..p_{n-1}) == C: stream it to the client, journal it,
// settle it. It passes VerifyCertificate with the output.
struct DeliverCertificate {
  Certificate certificate;
};
// Cross-validation: the executor attested; stream its result to the client marked provisional.
// The client checks it and reveals its salt (Round::OnSaltRevealed), which decides the coin.
struct DeliverProvisional {
  Attestation attestation;
};
// Cross-validation: the coin drew a check. Every validator executes and attests like a referee
// (C over `committee`, which is [executor]; p for its own address: MakeRefereeAttestation).
struct StartValidators {
  std::vector<Address> validators;
  std::vector<Address> committee;
};
// Cross-validation: the final result (coin not drawn, drawn and all k validators agreed, or salt
// never revealed). It passes VerifyXvCertificate with the output.
struct DeliverXvCertificate {
  XvCertificate certificate;
};
// Referees decided the true C by strict majority. In a cross-validation dispute the "members" are
// the executor and the validators that attested (in that order, validators in draw order).
struct DisputeResolved {
  Hash256 commitment{};                    // the majority's C
  std::vector<Address> winners;            // members that attested the majority's C
  std::vector<Address> losers;             // members that attested another C: slash
  std::vector<Address> majority_referees;  // share the slashed stake and the fee
  std::vector<Address> dissenting_referees;
  // Every member agreed with the majority's C but H(p's) != C: some member copied C. Which one
  // needs the output O (p_j = H(request_id, O, address_j)); the caller fetches O from a majority
  // referee and checks each p_j.
  bool proofs_inconsistent = false;
  std::vector<Attestation> member_attestations;   // evidence, committee order
  std::vector<Attestation> referee_attestations;  // evidence, majority and dissent
};
enum class FailReason {
  kNoBackups,   // a member timed out and no backup was left
  kNoReferees,  // a disagreement in an echelon with no referees left to draw
  kNoMajority,  // referees did not reach a strict majority: determinism fault of the echelon
  // Cross-validation: the coin drew a check and fewer than k validators attested in time while
  // those that did agreed with the executor. Nothing was proved either way, so the client is
  // refunded rather than charged for an unchecked result it asked to have checked.
  kValidatorsMissing,
};
const char* FailReasonName(FailReason reason);
// The round is over without a result; the client's fee is refunded.
struct Fail {
  FailReason reason = FailReason::kNoBackups;
  std::string detail;
  bool refund = true;
};

using RoundAction = std::variant<SendExecute, UpdateCommittee, StartReferees, ReportEquivocation,
                                 DeliverCertificate, DisputeResolved, Fail, DeliverProvisional,
                                 StartValidators, DeliverXvCertificate>;

// Ignored input, by cause (each attestation bumps exactly one counter, or `accepted`).
struct RoundCounters {
  uint64_t accepted = 0;         // used: filled or updated a member slot, or a referee vote
  uint64_t foreign = 0;          // about another request or echelon
  uint64_t invalid = 0;          // failed VerifyAttestation (signature, domain, epoch)
  uint64_t not_participant = 0;  // signer is not a current member or (during a dispute) referee
  uint64_t duplicate = 0;        // identical to one already received
  uint64_t equivocating = 0;     // differs from the signer's first in its output claim
  uint64_t ignored_update = 0;   // a second C from a referee or from a member during a dispute
  uint64_t late = 0;             // after the round ended, or from a replaced member
  // Salt reveals (OnSaltRevealed) that were not used, by cause.
  uint64_t salt_rejected = 0;    // does not hash to the request's salt_hash
  uint64_t salt_unexpected = 0;  // no salt awaited: not cross-validation, executor not yet
                                 // attested (the coin must not exist before it commits), or
                                 // the salt was already taken or the round is over
};

class Round {
 public:
  // INVALID_ARGUMENT when the inputs are inconsistent: committee size not CommitteeSize of the
  // request (or 0), more than BackupCount(n) backups, request epoch != epoch, a node in two roles,
  // a non-positive timeout, or (cross_validation) fewer than k validator draws.
  static absl::StatusOr<Round> Make(RoundInputs inputs);

  // kIdle → kCollecting: SendExecute to every member. Later calls return nothing.
  std::vector<RoundAction> Start(RoundTime now);
  // A peer's attestation (any sender, any content).
  std::vector<RoundAction> OnAttestation(const Attestation& attestation, RoundTime now);
  // Cross-validation: the client's salt (any sender, any content). Used only in kAwaitingSalt and
  // when it hashes to the request's salt_hash; otherwise counted and ignored.
  std::vector<RoundAction> OnSaltRevealed(const XvSalt& salt, RoundTime now);
  // Timer: replaces timed-out members, ends the re-attestation grace, expires referees, ends the
  // wait for the salt, expires validators.
  std::vector<RoundAction> OnTick(RoundTime now);

  // When the caller should call OnTick next; nullopt in kIdle and terminal states.
  std::optional<RoundTime> NextDeadline() const;

  RoundState state() const { return state_; }
  const RoundCounters& counters() const { return counters_; }
  const Hash256& request_id() const { return request_id_; }
  // The current committee (the draws with replacements applied), committee order.
  std::vector<Address> committee() const;

 private:
  struct Slot {
    Address member{};
    RoundTime deadline = 0;
    std::optional<Attestation> attestation;  // latest from `member`
  };
  struct RefereeVote {
    Address referee{};
    std::optional<Attestation> attestation;
    bool excluded = false;  // equivocated
  };

  explicit Round(RoundInputs inputs);

  bool IsTerminal() const;
  void CheckEquivocation(const Attestation& a, std::vector<RoundAction>& out, bool* equivocated,
                         bool* duplicate);
  // Replaces slot `i` with the next unused backup (false when none is left).
  bool Replace(size_t i, RoundTime now, std::vector<RoundAction>& out);
  void FailRound(FailReason reason, std::string detail, std::vector<RoundAction>& out);
  // Collecting: certificate, dispute or wait, once every slot has an attestation.
  void Decide(RoundTime now, std::vector<RoundAction>& out);
  void StartDispute(RoundTime now, std::vector<RoundAction>& out);
  // Disputing: resolution once a strict majority exists or can no longer exist.
  void Tally(RoundTime now, std::vector<RoundAction>& out);
  // Cross-validation, validating: certificate, dispute or failure once no validator is pending.
  void DecideValidation(RoundTime now, std::vector<RoundAction>& out);
  // Cross-validation: DeliverXvCertificate with salt_ and the validators' attestations.
  void DeliverXv(std::vector<RoundAction>& out);

  RoundInputs in_;
  Hash256 request_id_{};
  size_t n_ = 0;
  RoundState state_ = RoundState::kIdle;
  std::vector<Slot> slots_;
  size_t next_backup_ = 0;
  std::vector<Address> replaced_;  // former members (their attestations are late)
  std::optional<RoundTime> grace_until_;
  std::vector<RefereeVote> referees_;
  RoundTime referee_deadline_ = 0;
  // Cross-validation (xv_): the roles of the referee draws, the salt once revealed, validators
  // (a RefereeVote each; `excluded` when it equivocated) and the two deadlines.
  bool xv_ = false;
  XvDraws xv_draws_;
  std::optional<XvSalt> salt_;
  RoundTime salt_deadline_ = 0;
  std::vector<RefereeVote> validators_;
  RoundTime validator_deadline_ = 0;
  // First valid attestation per signer, for equivocation and duplicate checks.
  std::map<Address, Attestation> first_;
  std::map<Address, bool> reported_;  // equivocation reported
  RoundCounters counters_;
};

}  // namespace atoma::consensus
