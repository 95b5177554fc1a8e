// The ledger client: node registry, stake with unbonding, epochs and their seeds, stakes frozen
// per epoch (the input of committee selection, DESIGN §4.4), client escrow and node rewards,
// settlement of certificates, and slashing for equivocation and for disputes (DESIGN §4.6).
//
// One interface, several backends (DESIGN §5). This header declares the interface, its plain
// types, and the factory of the embedded backend (a SQLite file that every node of a local
// network opens; see docs/ledger.md for the schema).
//
// Caller identity: every mutating call names the acting address (the node or client whose
// balance moves). The ledger does NOT check signatures yet: the layers above (the admin API with
// the operator's key, the consensus layer with attestations) authenticate the actor before they
// call. The EVM backend will get the actor from the transaction signature instead.
//
// Error contract (absl::Status codes):
//   INVALID_ARGUMENT    malformed input: zero amount, bad endpoint, duplicate echelons, an amount
//                       that would overflow a uint256 balance.
//   NOT_FOUND           unknown node, epoch or echelon snapshot that does not exist.
//   ALREADY_EXISTS      registering an address that is already registered; evidence of an
//                       offence or a dispute that was settled already.
//   FAILED_PRECONDITION a rule of the ledger says no (insufficient stake, escrow or rewards,
//                       staking while unregistered, nothing withdrawable yet, an escrow
//                       withdrawal not requested or not unlocked yet); the message says
//                       which rule and the amounts involved.
//   UNAVAILABLE         the store is busy past the busy timeout (another process holds the write
//                       lock); the call had no effect and may be retried.
//   ABORTED             a storage error (I/O, full disk); the transaction was rolled back.
//   DATA_LOSS           the file is corrupt or holds values this code never writes.
//   PERMISSION_DENIED   evidence or a certificate whose signatures or committee do not check.
// Every mutating call is atomic: it either applies completely or not at all.
//
// Thread-safety: a LedgerClient is safe to use from several threads (calls are serialized on its
// one connection). Several LedgerClients — in one process or in several — may open the same file;
// each mutation is one write transaction, so they see each other's effects in commit order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/cosign.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"

namespace atoma::ledger {

using Address = crypto::Address;  // 20 bytes, Ethereum-style (DESIGN §4.1)
using Hash256 = crypto::Hash256;
// Integer base units of the network's token; never floats.
using Amount = ::atoma::Uint256;

// One echelon a node serves: the model (its digest, DESIGN §3) and the echelon id
// H("atoma/echelon", model_digest, fingerprint) the node measured for it (DESIGN §4.2).
struct EchelonRef {
  Hash256 model_digest{};
  Hash256 echelon_id{};
  bool operator==(const EchelonRef&) const = default;
};

struct NodeInfo {
  Address address{};
  std::string endpoint;  // gRPC "host:port" of the node's atoma.v1.Peer service
  std::vector<EchelonRef> echelons;
  uint64_t registered_epoch = 0;
};

// A stake that was unbonded by Unstake and becomes withdrawable at `release_epoch`.
struct UnbondingEntry {
  Amount amount;
  uint64_t release_epoch = 0;
};

struct StakeInfo {
  Amount bonded;                          // counts for the next epoch's snapshot
  std::vector<UnbondingEntry> unbonding;  // not yet released, oldest first
  Amount withdrawable;                    // released, awaiting WithdrawStake
};

// A client's escrow (EscrowStatus). Withdrawing takes two steps (RequestEscrowWithdrawal, then
// WithdrawEscrow once unlocked) so that escrow cannot leave before the requests it paid for
// settle: a pending withdrawal stays in `balance`, and settlement and disputes still debit it.
struct EscrowInfo {
  Amount balance;  // what settlement and disputes debit, the pending withdrawal included
  // Requested for withdrawal and not withdrawn yet (zero: none). Settlements after the request may
  // have left `balance` below it; at most `balance` of it is ever paid out.
  Amount pending;
  uint64_t unlock_epoch = 0;  // `pending` is withdrawable from this epoch on (0 when none)
  Amount withdrawable;        // min(pending, balance) once the current epoch >= unlock_epoch
  bool operator==(const EscrowInfo&) const = default;
};

// What a client's escrow can still pay for new requests: the balance less the part of it
// (min(pending, balance)) that is pending withdrawal. An entry node also subtracts the worst-case
// fees of its own accepted, unsettled requests of that client.
inline Amount EscrowUncommitted(const EscrowInfo& escrow) {
  return escrow.pending < escrow.balance ? CheckedSub(escrow.balance, escrow.pending).value()
                                         : Amount();
}

struct Epoch {
  uint64_t number = 0;
  Hash256 seed{};              // S_e of DESIGN §4.4
  int64_t started_unix_s = 0;  // wall clock of the AdvanceEpoch that opened it
};

// One candidate of committee selection: a node of the echelon with its stake frozen at the
// start of the epoch (never zero).
struct Candidate {
  Address address{};
  Amount stake;
  bool operator==(const Candidate&) const = default;
};

// Ledger-wide parameters. Fixed when the ledger is created; every node reads them from it.
struct Params {
  // How long unbonded stake stays locked (Unstake) AND how long a requested escrow withdrawal
  // stays locked (RequestEscrowWithdrawal): both wait for the settlement and disputes of work
  // done in the epoch the request was made in (see RequestEscrowWithdrawal).
  uint64_t unbonding_epochs = 0;
  uint64_t epoch_length_s = 0;
  // The signing domain of attestations settled here (chain id, ledger address; DESIGN §4.1).
  consensus::Domain domain;
  // Settlement fee per token (prompt + completion) in base units; see SettleCertificates.
  Amount fee_per_token;
  // Equivocation: fraction of the offender's stake slashed, and the reporter's share of the
  // slashed amount, both in basis points (1/10000). The rest of the slashed stake is burned.
  uint64_t slash_bps = 0;
  uint64_t reporter_share_bps = 0;
};

// One certificate to settle, with the output it certifies (the certificate carries only the
// commitment C; the ledger recomputes C from the output, DESIGN §4.5).
struct SettlementItem {
  consensus::Certificate certificate;
  consensus::ConsensusOutput output;
  // Set for a cross-validation certificate (consensus/xv.h; the 0x02 form): then `certificate`
  // must equal `xv->base` and the item is verified with consensus::VerifyXvCertificate. A request
  // whose security is cross_validation settles only this way. The default member initializer
  // keeps `SettlementItem{certificate, output}` free of missing-initializer warnings.
  std::optional<consensus::XvCertificate> xv = std::nullopt;
};

// The outcome of one SettlementItem. `status` is OK when it settled, else:
//   PERMISSION_DENIED   the certificate does not verify (`check`, `member` say why; for a
//                       cross-validation certificate `member` is 0 for the executor and 1 + i
//                       for validator i);
//   ALREADY_EXISTS      its request id was settled before (or earlier in the same batch);
//   FAILED_PRECONDITION fee above the request's max_fee, or the client's escrow is short;
//   NOT_FOUND           the request's epoch has not started;
//   INVALID_ARGUMENT    structurally unusable: no attestation to take the echelon from, `xv` set
//                       with a `certificate` other than `xv->base`, or a cross_validation request
//                       without `xv` (check kMalformed).
struct SettlementResult {
  Hash256 request_id{};
  absl::Status status;
  consensus::CertificateCheck check = consensus::CertificateCheck::kValid;
  int member = -1;
  Amount fee;  // debited from the client's escrow when settled
};

// What ReportEquivocation did.
struct SlashResult {
  Address offender{};
  Hash256 evidence_hash{};
  Amount slashed;          // taken from the offender's stake (bonded first, then unbonding)
  Amount reporter_reward;  // credited to the reporter's reward balance
};

// One settled certificate, as recorded by SettleCertificates.
struct SettlementRecord {
  Hash256 request_id{};
  uint64_t request_epoch = 0;
  Address client{};
  Amount fee;
  Address submitter{};
  uint64_t settled_epoch = 0;  // the ledger's current epoch when it settled
};

// Evidence of a resolved disagreement (DESIGN §4.6 "Disagreement"): the disputed committee's
// attestations and the referees'. What consensus::DisputeResolved carries, plus the request's
// client authorization.
//
// Cross-validation requests (consensus/xv.h): `committee` is [executor]; `member_attestations`
// is the executor's attestation, then those of the validators that attested (validator draws, no
// one twice; C over [executor], p for their own address); `referee_attestations` are from the
// dispute referees, the draws after the k validators (consensus::SplitXvDraws).
struct DisputeEvidence {
  consensus::ConsensusRequest request;
  crypto::Signature client_signature{};  // the client's authorization (as in certificates)
  std::vector<Address> committee;        // the disputed committee, committee order
  // committee[i]'s, committee order (cross-validation: then the validators', see above)
  std::vector<consensus::Attestation> member_attestations;
  std::vector<consensus::Attestation> referee_attestations;  // from drawn referees, any order
  // The majority's output, when the submitter has it: lets the ledger find lazy members (a p_i
  // that is not H(request_id, O, address_i) although C is the majority's; for a validator, p for
  // its own address) and charge the fee on the output's token counts.
  std::optional<consensus::ConsensusOutput> output;
};

// What SettleDispute did.
struct DisputeResult {
  Hash256 request_id{};
  Hash256 commitment{};  // the referees' strict-majority C
  // Members on the losing side (different C, or lazy); cross-validation: the executor, then
  // validators in draw order.
  std::vector<Address> slashed;
  Amount slashed_total;
  // Honest members (cross-validation: executor, then validators in draw order), then majority
  // referees in draw order: they share the pool.
  std::vector<Address> rewarded;
  Amount fee;            // charged to the client's escrow (zero when not chargeable)
  std::string fee_note;  // why no fee was charged, when it was not
};

// One slashing, by ReportEquivocation or SettleDispute.
struct SlashRecord {
  std::string kind;  // "equivocation" | "dispute"
  // Equivocation: H("atoma/equivocation", the two digests). Dispute: H("atoma/dispute",
  // request_id, the majority's C), the same for every member slashed by one dispute.
  Hash256 evidence_hash{};
  Address offender{};
  Hash256 request_id{};
  Address reporter{};  // who submitted the evidence
  Amount slashed;
  Amount reporter_reward;  // equivocation: the reporter's share; dispute: zero (the pool is
                           // shared by DisputeResult::rewarded)
  uint64_t epoch = 0;      // the ledger's current epoch when it was slashed
};

// Collects batch co-signatures (docs/ledger_evm.md "Co-signed batches"; the EVM backend uses them
// through EvmLedgerOptions::cosigner to settle with one signature per member and batch): the node
// asks each committee member named in a settlement batch to sign once for all of its slots (peer
// RPC Cosign). Implementations may block (network); they are called from the settling thread.
class Cosigner {
 public:
  virtual ~Cosigner() = default;
  struct Request {
    Address member{};
    // The member's slots in the batch, in the contract's chain order, each with the member's own
    // signature over the attestation digest (from the certificates).
    std::vector<consensus::CosignEntry> entries;
  };
  // One result per request, in order: the member's signature over
  // consensus::CosignDigestOf(domain, entries), or why there is none. The backend verifies every
  // co-signature itself before it uses one.
  virtual std::vector<absl::StatusOr<crypto::Signature>> Cosign(
      std::span<const Request> requests) = 0;
};

// A Cosigner bound after it is handed out (the node opens its ledger before the consensus runtime
// that reaches the members). Unbound, every request is UNAVAILABLE. Bind waits for calls in
// flight, so after Bind(nullptr) returns the old target may be destroyed.
class LateCosigner final : public Cosigner {
 public:
  void Bind(Cosigner* target) {
    std::unique_lock lock(mu_);
    target_ = target;
  }
  std::vector<absl::StatusOr<crypto::Signature>> Cosign(
      std::span<const Request> requests) override {
    std::shared_lock lock(mu_);
    if (target_ == nullptr) {
      return std::vector<absl::StatusOr<crypto::Signature>>(
          requests.size(), absl::UnavailableError("no co-signer is running"));
    }
    return target_->Cosign(requests);
  }

 private:
  std::shared_mutex mu_;
  Cosigner* target_ = nullptr;
};

class LedgerClient {
 public:
  virtual ~LedgerClient() = default;

  virtual absl::StatusOr<Params> GetParams() = 0;

  // --- Registry ---
  // Registers `node` with its Peer endpoint and the echelons it serves (at most one per model,
  // at most kMaxEchelons). ALREADY_EXISTS if registered already (use UpdateNode).
  virtual absl::Status RegisterNode(const Address& node, const std::string& endpoint,
                                    const std::vector<EchelonRef>& echelons) = 0;
  // Replaces the endpoint and echelons of a registered node. Takes effect in the next epoch's
  // snapshot; the current epoch's committees do not change.
  virtual absl::Status UpdateNode(const Address& node, const std::string& endpoint,
                                  const std::vector<EchelonRef>& echelons) = 0;
  virtual absl::StatusOr<NodeInfo> GetNode(const Address& node) = 0;

  // --- Stake ---
  // Bonds `amount` more for a registered node. It counts from the next epoch on.
  virtual absl::Status Stake(const Address& node, const Amount& amount) = 0;
  // Unbonds `amount` of the bonded stake. It leaves the next epoch's snapshot at once and becomes
  // withdrawable `unbonding_epochs` epochs after the current one (it stays slashable until then).
  virtual absl::Status Unstake(const Address& node, const Amount& amount) = 0;
  virtual absl::StatusOr<StakeInfo> GetStake(const Address& node) = 0;
  // Pays out released unbonded stake. FAILED_PRECONDITION if more than is withdrawable.
  virtual absl::Status WithdrawStake(const Address& node, const Amount& amount) = 0;

  // --- Epochs ---
  virtual absl::StatusOr<Epoch> CurrentEpoch() = 0;
  virtual absl::StatusOr<Epoch> GetEpoch(uint64_t number) = 0;
  // Closes the current epoch and opens the next one: new seed = H("atoma/epoch-seed",
  // previous seed, 32 bytes of fresh OS randomness); freezes every registered node's bonded stake
  // for each echelon it serves. Anyone may call it; the node calls it on a timer later.
  virtual absl::StatusOr<Epoch> AdvanceEpoch() = 0;
  // AdvanceEpoch only if the current epoch is still `current`; FAILED_PRECONDITION otherwise.
  // Several nodes on one ledger run epoch timers: this lets exactly one of them open the next
  // epoch instead of each advancing it once.
  virtual absl::StatusOr<Epoch> AdvanceEpochFrom(uint64_t current) = 0;
  // Candidates of committee selection in `epoch` for `echelon_id`: sorted by address bytes
  // ascending, zero stakes excluded. NOT_FOUND for an epoch that has not started.
  virtual absl::StatusOr<std::vector<Candidate>> EchelonSnapshot(uint64_t epoch,
                                                                 const Hash256& echelon_id) = 0;

  // --- Client escrow ---
  // Entry nodes serve a request after checking the escrow covers its worst-case fee, and settle
  // its certificate later (batched within consensus.settlement_max_delay_ms, resent from the
  // journal after a crash). So escrow leaves in two steps: a client first requests a withdrawal,
  // which stays in the balance (settlement can still debit it) and unlocks `unbonding_epochs`
  // epochs after the current one; entry nodes stop counting it for new requests at once.
  virtual absl::Status DepositEscrow(const Address& client, const Amount& amount) = 0;
  // The balance alone (EscrowStatus().balance).
  virtual absl::StatusOr<Amount> EscrowBalance(const Address& client) = 0;
  // Balance, pending withdrawal, its unlock epoch and what is withdrawable now (all zero for a
  // client that never deposited).
  virtual absl::StatusOr<EscrowInfo> EscrowStatus(const Address& client) = 0;
  // Records a pending withdrawal of `amount`, unlocked at current epoch + unbonding_epochs. A
  // second request REPLACES the first (amount and unlock epoch; the clock restarts), so a client
  // can also lower what it asked for. With the default of 2 epochs at least one whole epoch
  // (epoch_length_s, default 1 h) passes between the request and the unlock: far more than an
  // entry node needs to settle what it served before the request (settlement_max_delay_ms, 2 s by
  // default; a crashed node resends its journaled certificates when it starts again).
  // INVALID_ARGUMENT for a zero amount; FAILED_PRECONDITION when `amount` exceeds the balance.
  virtual absl::Status RequestEscrowWithdrawal(const Address& client, const Amount& amount) = 0;
  // Pays out `amount` of the pending withdrawal: at most min(pending, balance), and only from its
  // unlock epoch on; FAILED_PRECONDITION otherwise, saying how much is unlocked from which epoch.
  // The pending amount becomes min(pending, balance) - amount (what settlement took from it is
  // dropped), and the request is gone when that is zero.
  virtual absl::Status WithdrawEscrow(const Address& client, const Amount& amount) = 0;

  // --- Node rewards (credited by settlement) ---
  virtual absl::StatusOr<Amount> RewardBalance(const Address& node) = 0;
  virtual absl::Status WithdrawRewards(const Address& node, const Amount& amount) = 0;

  // --- Settlement (DESIGN §4.5, §5) ---
  // Settles a batch of certificates submitted by `submitter` (anyone: a certificate proves
  // itself). Each item is judged on its own, so one bad certificate does not sink the others:
  //   * VerifyCertificate (which checks the client's signature first) against this ledger's
  //     domain, the epoch seed of the request's epoch,
  //     and the frozen snapshot of the attested echelon in that epoch; for an item with `xv`
  //     (which must carry `certificate` == `xv->base`) VerifyXvCertificate in the same context.
  //     A cross_validation request without `xv` is INVALID_ARGUMENT: its base alone proves only
  //     the executor's claim and says nothing of the coin or the validators;
  //   * its request id was never settled (nor earlier in this batch, nor by a dispute), and no
  //     other request of the same client and client nonce was: a (client, nonce) settles once
  //     (the EVM contract keeps one bit per pair, docs/ledger_evm.md), so clients never reuse a
  //     nonce;
  //   * fee = fee_per_token x (prompt + completion tokens) must not exceed the request's max_fee
  //     (rejected, never capped: the client authorized at most max_fee and the entry node knows
  //     the worst case, prompt + max_tokens, before it accepts the request);
  //   * the client's escrow covers the fee.
  // A settled item debits the client's escrow once and credits the committee's reward balances
  // in equal shares (integer division; the remainder goes to the first member). A
  // cross-validation certificate pays the executor and each validator whose attestation it
  // carries (none when the coin was not drawn or the salt never revealed) in equal shares, the
  // remainder to the executor.
  // Returns one result per item, in order. The whole batch is one write transaction (each item
  // in its own savepoint); a storage error (UNAVAILABLE, ABORTED) fails the call and applies
  // nothing. INVALID_ARGUMENT for more than kMaxSettlementBatch items.
  virtual absl::StatusOr<std::vector<SettlementResult>> SettleCertificates(
      const Address& submitter, std::span<const SettlementItem> items) = 0;
  // True once a certificate (SettleCertificates) or a dispute (SettleDispute) settled the id.
  virtual absl::StatusOr<bool> IsSettled(const Hash256& request_id) = 0;
  // True once any request of `client` with `nonce` settled (by certificate or dispute): no other
  // request with that pair can settle any more, so an entry node refuses it before it works.
  virtual absl::StatusOr<bool> IsNonceSettled(const Address& client, uint64_t nonce) = 0;

  // --- Slashing (DESIGN §4.6) ---
  // Equivocation: `a` and `b` are validly signed (this ledger's domain) by the same registered
  // node for the same request id, and they claim different outputs: they differ in something
  // other than the commitment C (p_i, token counts, Merkle root, echelon or epoch; see
  // consensus::SameOutputClaim). Two attestations that differ only in C are a view update (an
  // honest member re-attesting for a committee in which a backup replaced a peer), not
  // equivocation. Slashes slash_bps of the
  // node's stake (bonded plus still-locked unbonding entries), credits `reporter` with
  // reporter_share_bps of it and burns the rest. One offence (node, request id) is slashed once:
  // ALREADY_EXISTS for a second report, whatever pair of attestations it uses.
  // PERMISSION_DENIED: a signature does not recover to the member, or another domain.
  // INVALID_ARGUMENT: different members or request ids, the same signed content, or the same
  // output claim with another C ("not equivocation: a view update (same output, another
  // committee)").
  // NOT_FOUND: the offender is not registered.
  virtual absl::StatusOr<SlashResult> ReportEquivocation(const Address& reporter,
                                                         const consensus::Attestation& a,
                                                         const consensus::Attestation& b) = 0;

  // Disagreement (DESIGN §4.6): members attested different C's (or a member copied C), referees
  // executed, and a strict majority of the referees decided the true C. Anyone may submit the
  // evidence (`submitter`); it proves itself. Checks, in this order:
  //   * the request's epoch has started (NOT_FOUND);
  //   * the client signature authorizes the request (consensus::VerifyClientSignature;
  //     PERMISSION_DENIED);
  //   * draws = SelectCommittee(seed of the request's epoch, request id, frozen snapshot of the
  //     echelon the member attestations name, n = CommitteeSize, BackupCount(n), RefereeCount(n));
  //     `committee` is a valid view of them (consensus::CheckCommitteeView); PERMISSION_DENIED;
  //   * every member attestation verifies (this domain, the request's epoch), names the request
  //     and one echelon, and is signed by committee[i]; every referee attestation is by a drawn
  //     referee (none twice), verifies, and names the same request and echelon;
  //     PERMISSION_DENIED naming the member or referee;
  //   * a C with a strict majority of ALL drawn referees (2·votes > m, m = draws.referees.size(),
  //     silent referees count against); FAILED_PRECONDITION "no strict majority" otherwise;
  //   * with `output`: the commitment of the output for `committee` must be that C
  //     (INVALID_ARGUMENT otherwise); losers are the members with another C plus the members
  //     whose p_i is not the output's (lazy). Without `output`: the members with another C;
  //   * no loser: FAILED_PRECONDITION "nothing to slash"; a dispute already settled for the
  //     request id, a certificate already settled for it, or another request of the same client
  //     and nonce settled: ALREADY_EXISTS.
  // Effects, in one transaction: each loser loses slash_bps of its locked stake (as for
  // equivocation); fee = fee_per_token x (prompt + completion tokens), the counts from `output`
  // (prompt: the request's) when given, else from the first majority referee's attestation in
  // draw order; charged only when it is at most max_fee and the client's escrow covers it (else
  // the fee is zero and fee_note says why); the pool (slashed total + fee) is shared equally by
  // `rewarded` (the members with the majority's C that are not lazy, in committee order, then the
  // majority referees in draw order; integer division, the remainder to the first); the request
  // id counts as settled from then on (IsSettled; no certificate can settle it later); one
  // SlashRecord of kind "dispute" per loser. INVALID_ARGUMENT for malformed evidence (no member
  // attestations, a count that does not match the committee, more than kMaxCommitteeSize
  // members or RefereeCount(kMaxCommitteeSize) referee attestations).
  //
  // Cross-validation requests (security cross_validation, DESIGN §4.6): the draws are
  // SelectCommittee(seed, id, snapshot, 1, BackupCount(1), XvRefereeDraws(k)); `committee` is
  // [executor], a view of them; member attestations after the executor's are validators' (each by
  // one of the first k referee draws, SplitXvDraws(...).validators, none twice, verified as
  // above); the strict majority is over the remaining referee draws (SplitXvDraws(...).referees).
  // Losers: the executor or validators with another C, plus, with the output, an executor whose p
  // is not H(request_id, O, executor) or a validator whose p is not H(request_id, O, itself).
  // Fee, pool and records as for sampling; `rewarded` lists the winning executor and validators
  // (validators in draw order), then the majority referees. INVALID_ARGUMENT also for k above
  // kMaxCommitteeSize or more than 1 + k member attestations. Whether the coin was drawn is not
  // checked (the evidence has no salt): an executor whose C a strict majority of referees refutes
  // is slashed however the validators came to execute.
  virtual absl::StatusOr<DisputeResult> SettleDispute(const Address& submitter,
                                                      const DisputeEvidence& evidence) = 0;

  // --- Read-only listings (operator tools, explorers) ---
  // Not every backend can enumerate cheaply (a contract needs an indexer), so these are not pure:
  // the default is UNIMPLEMENTED. The embedded backend implements them.
  // Every registered node, sorted by address bytes ascending.
  virtual absl::StatusOr<std::vector<Address>> ListNodes() {
    return absl::UnimplementedError("this ledger backend cannot list nodes");
  }
  // The echelons that have a frozen snapshot in `epoch` (sorted by id; empty when no staked node
  // served any). NOT_FOUND for an epoch that has not started.
  virtual absl::StatusOr<std::vector<Hash256>> SnapshotEchelons(uint64_t epoch) {
    (void)epoch;
    return absl::UnimplementedError("this ledger backend cannot list snapshot echelons");
  }
  // Settled certificates ordered by (settled epoch, request id); the last `limit` of them
  // (0 = all). Within one epoch the order is by id, not by time of settlement.
  virtual absl::StatusOr<std::vector<SettlementRecord>> ListSettlements(size_t limit) {
    (void)limit;
    return absl::UnimplementedError("this ledger backend cannot list settlements");
  }
  // Slashings (equivocations and disputes, SlashRecord::kind) in the order they were slashed;
  // the last `limit` of them (0 = all).
  virtual absl::StatusOr<std::vector<SlashRecord>> ListSlashings(size_t limit) {
    (void)limit;
    return absl::UnimplementedError("this ledger backend cannot list slashings");
  }

  static constexpr size_t kMaxEchelons = 64;
  static constexpr size_t kMaxEndpointLength = 255;
  static constexpr size_t kMaxSettlementBatch = 1024;
  static constexpr uint64_t kBasisPoints = 10'000;
};

// Fills `out` with cryptographically secure random bytes.
using RandomSource = std::function<absl::Status(std::span<uint8_t> out)>;

struct EmbeddedLedgerOptions {
  // Used only when the file is created; an existing ledger keeps its own (GetParams).
  // 2 epochs: a stake stays slashable for the whole epoch it was frozen in and one more, long
  // enough for disputes of requests that started just before the epoch ended. The same period
  // locks a requested escrow withdrawal, for the same requests' settlements and disputes.
  // 1..1'000'000 (INVALID_ARGUMENT otherwise).
  uint64_t unbonding_epochs = 2;
  // Stored for the node's epoch timer (not used by the ledger itself). 1 hour by default; > 0.
  uint64_t epoch_length_s = 3600;
  // How long a write waits for another connection's write lock before UNAVAILABLE. Writes are
  // short (one small transaction), so 5 s means something is wrong.
  int busy_timeout_ms = 5000;
  // Used only when the file is created (like unbonding_epochs).
  // 31337: the chain id of local development chains (Anvil), so devnet tools agree by default.
  uint64_t chain_id = 31337;
  // The ledger's address in the signing domain. Default (empty): the first 20 bytes of
  // SHA-256("atoma/embedded-ledger" 0x00 genesis seed), so every ledger file is its own domain and
  // an attestation made for one devnet is worthless on another.
  std::optional<Address> ledger_address;
  // 1 base unit per token: a devnet default that makes fees visible without a token economy.
  Amount fee_per_token = Amount(1);
  // 10% of the stake per equivocation: large against the fee of one request, small enough that
  // one buggy release does not wipe an operator out. <= 10000.
  uint64_t slash_bps = 1'000;
  // The reporter gets 10% of the slashed amount: enough to pay for watching, too little for a
  // node to gain by reporting its own equivocation through a second address. <= 10000.
  uint64_t reporter_share_bps = 1'000;
  // Test seam. Default (empty): OpenSSL RAND_bytes, which is seeded by getrandom(). May be called
  // from any thread that calls AdvanceEpoch.
  RandomSource random;
  // Test seam. Default (empty): the system clock, seconds since the Unix epoch.
  std::function<int64_t()> unix_seconds;
};

// Opens (creating if missing) the embedded ledger at `path`. Creating it opens epoch 0 with a
// random seed and an empty snapshot. FAILED_PRECONDITION for a file of another schema version.
absl::StatusOr<std::unique_ptr<LedgerClient>> OpenEmbeddedLedger(
    const std::filesystem::path& path, const EmbeddedLedgerOptions& options = {});

// Checks a gRPC "host:port" endpoint: host a DNS name, IPv4 or bracketed IPv6; port 1..65535.
absl::Status ValidateEndpoint(const std::string& endpoint);

// The registry's echelon rules (INVALID_ARGUMENT): at most LedgerClient::kMaxEchelons, one per
// model, no echelon id twice. Every backend checks them before it registers anything.
absl::Status ValidateEchelons(const std::vector<EchelonRef>& echelons);

}  // namespace atoma::ledger
