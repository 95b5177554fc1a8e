// The EVM backend of LedgerClient (DESIGN §5): the contract contracts/AtomaLedger.sol on any EVM
// chain, spoken to over JSON-RPC (atoma/evm). Its interface — functions, packed calldata of
// settle / settleDispute / reportEquivocation, events, revert reasons — is docs/ledger_evm.md;
// this client's behaviour is its section "The C++ backend".
//
// What differs from the embedded backend (semantics and status codes are the same, so one
// conformance suite runs on both):
//   * The actor of a mutating call (`node`, `client`, `submitter`, `reporter`) is the
//     transaction's sender. The client holds the keys it may act with (EvmLedgerOptions::signers)
//     and signs as the named actor; naming an actor it holds no key for is PERMISSION_DENIED
//     before anything is sent.
//   * Every mutating call is simulated (eth_call at the pending block, where it will run) before
//     it is sent: a revert "CODE: reason" becomes that status code with the reason (an unknown
//     prefix: FAILED_PRECONDITION with the raw reason) and nothing is sent. Then it is one
//     EIP-1559 transaction, journaled (SQLite) before broadcast, whose receipt is awaited.
//   * Views read the chain at `latest - confirmations`; the checks SettleCertificates makes before
//     it sends read the head (where its transaction runs; the contract checks again there).
//   * Listings: ListNodes and SnapshotEchelons are views; ListSlashings reads the Slashed and
//     EpochAdvanced logs; ListSettlements reads the Settled logs plus each settle transaction
//     (its sender is the submitter, its calldata holds the request's epoch): one
//     eth_getTransactionByHash per settle transaction, linear in the contract's history (fine for
//     operator tools; an explorer wants an indexer). A settle sent through another contract
//     (not a direct call) is DATA_LOSS there.
//   * Money is the chain's native coin in wei: Stake and DepositEscrow send `amount` with the
//     transaction, so the actor's account must hold it plus gas.
//
// Error contract, in addition to ledger.h's:
//   PERMISSION_DENIED   no key for the named actor (nothing was sent).
//   UNAVAILABLE         the chain could not be reached after the RPC retries. A transaction that
//                       was signed stays in the journal and is re-sent (the same bytes) by the
//                       next mutating call of the same signer or the next OpenEvmLedger; the
//                       contract's state decides (a settled certificate is never paid twice).
//   DEADLINE_EXCEEDED   a sent transaction was not mined within receipt_timeout; the message
//                       holds its hash; it stays journaled, and the signer's next call replaces
//                       it with a higher-fee transaction of the same nonce (at most one of the
//                       two is ever mined) and waits for that.
//   DATA_LOSS           the chain answered something the contract never produces (malformed
//                       return data or events).
//   INTERNAL            the RPC URL answered with an HTTP error (probably a wrong URL).
//   ABORTED             a sent transaction can never be mined (another transaction took its
//                       nonce), or it reverted on chain for a reason the replay does not show
//                       (out of gas); nothing of it applied.
// A transaction that reverts on chain although its simulation passed (the state moved in
// between) is re-run at its block and returns the revert's status as above.
//
// Thread-safety: an EvmLedger client is safe to use from several threads. Transactions of one
// signer are numbered under that signer's mutex (nonce counted locally, re-read from the chain on
// "nonce too low" / "already known"); views run concurrently. Several clients — in one process
// or several — may use the same contract; they must not share a signer unless they share a
// journal file (two journals numbering one account would collide on nonces; the loser re-syncs
// and re-signs, which costs time, not money).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "atoma/crypto/keys.h"
#include "atoma/evm/rpc.h"
#include "atoma/ledger/ledger.h"

namespace atoma::ledger {

struct EvmLedgerOptions {
  // http(s) JSON-RPC endpoint of the chain, e.g. "http://127.0.0.1:8545".
  std::string rpc_url;
  // Must equal the chain's eth_chainId (FAILED_PRECONDITION otherwise): a key signing for the
  // wrong chain is an operator mistake caught before anything is sent.
  uint64_t chain_id = 0;
  // The AtomaLedger contract. It must hold code at `latest` (NOT_FOUND otherwise).
  Address contract{};
  // Views and logs are read at block `latest - confirmations` (0: latest). Transactions always
  // act on the chain head; their own results come from their receipts, taken once the receipt's
  // block is `confirmations` deep (a reorg that drops a transaction meanwhile is noticed and the
  // transaction re-sent).
  uint64_t confirmations = 0;
  // The actors this client can act as (msg.sender). Copied by OpenEvmLedger. AdvanceEpoch and
  // AdvanceEpochFrom, which name no actor (anyone may call them), are sent by the first one;
  // without signers they are PERMISSION_DENIED.
  std::vector<crypto::PrivateKey> signers;
  // The transaction journal (SQLite file, created if missing). Empty: in memory (a restart then
  // forgets unmined transactions; fine for tests and read-only clients).
  std::filesystem::path journal_path;
  // How long a sent transaction's receipt is polled for before DEADLINE_EXCEEDED.
  absl::Duration receipt_timeout = absl::Seconds(60);
  // Pause between receipt polls.
  absl::Duration poll_interval = absl::Milliseconds(100);
  // Timeouts and retries of each JSON-RPC call (its url is ignored: rpc_url is used).
  evm::RpcOptions rpc;
  // Test seam: when set, used instead of an HTTP client for rpc_url (e.g. a fault-injecting
  // wrapper around the real client).
  std::shared_ptr<evm::RpcClient> rpc_client;
  // Set: SettleCertificates sends settleCosigned when co-signing is worth it (about 4,200 gas saved
  // per slot against 5,800 paid per distinct member, and at least 40,000 per batch), for the
  // items whose members all co-signed; the rest (and everything when this is null) go through
  // settle with per-slot signatures.
  std::shared_ptr<Cosigner> cosigner;
};

// Opens a client of the AtomaLedger contract at options.contract: checks the chain id and the
// contract's code, opens the journal, then re-broadcasts the journaled transactions that were
// never mined (the same signed bytes; those whose nonce the chain has passed are marked mined or
// dropped from their receipts) and waits for their receipts up to receipt_timeout. Those still
// unfinished then (chain unreachable or slow) do not fail the open: they are logged and re-sent
// by their signer's next mutating call, before it signs anything new. Errors: INVALID_ARGUMENT
// for bad options (no URL, a bad URL, non-positive durations, two signers with one address),
// FAILED_PRECONDITION (chain id, or a journal of another schema), NOT_FOUND (no code),
// UNAVAILABLE (chain unreachable), ABORTED / DATA_LOSS (journal storage), and FAILED_PRECONDITION
// or DATA_LOSS when the address holds some other contract (getParams reverts or does not decode).
absl::StatusOr<std::unique_ptr<LedgerClient>> OpenEvmLedger(const EvmLedgerOptions& options);

// Parameters of a new deployment: EmbeddedLedgerOptions' counterparts, plus the least time
// between two advanceEpoch calls (0 for tests; a real network sets epoch_length_s so nobody can
// roll epochs to grind seeds). Ranges as the embedded ledger's (the constructor reverts
// INVALID_ARGUMENT otherwise).
struct EvmDeployParams {
  uint64_t unbonding_epochs = 2;
  uint64_t epoch_length_s = 3600;
  uint64_t min_epoch_spacing_s = 0;
  Amount fee_per_token = Amount(1);
  uint64_t slash_bps = 1000;
  uint64_t reporter_share_bps = 1000;
};

// How DeployEvmLedger talks to the chain.
struct EvmDeployOptions {
  absl::Duration receipt_timeout = absl::Seconds(60);
  absl::Duration poll_interval = absl::Milliseconds(100);
  evm::RpcOptions rpc;  // url ignored: rpc_url is used
};

// Deploys contracts/build/AtomaLedger.json's bytecode (embedded into the binary at build time)
// with `params` as constructor arguments, signed by `deployer` (which pays the gas); returns the
// contract's address once the receipt is in. FAILED_PRECONDITION when `chain_id` is not the
// chain's, a constructor revert's status code (INVALID_ARGUMENT for out-of-range params),
// UNAVAILABLE / DEADLINE_EXCEEDED as for OpenEvmLedger. Not journaled: a deploy that fails
// half-way is simply run again (a new contract at the next nonce).
absl::StatusOr<Address> DeployEvmLedger(const std::string& rpc_url, uint64_t chain_id,
                                        const crypto::PrivateKey& deployer,
                                        const EvmDeployParams& params,
                                        const EvmDeployOptions& options = {});

// True when this binary embeds the contract's bytecode (contracts/build/AtomaLedger.json existed
// when it was configured). DeployEvmLedger is FAILED_PRECONDITION otherwise.
bool HasEmbeddedEvmLedgerArtifact();

}  // namespace atoma::ledger
