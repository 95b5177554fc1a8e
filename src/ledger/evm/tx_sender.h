// Internal to the EVM ledger backend: sends the contract's transactions for the signers it holds.
//
// One mutating call (Transact): re-send the signer's unfinished journaled transactions first (and
// wait for them), simulate with eth_call (a revert is mapped to its status, nothing is sent),
// estimate gas (+20%), take the signer's next nonce (read from the chain once, then counted
// locally), sign an EIP-1559 transaction with the latest base fee and eth_maxPriorityFeePerGas,
// journal it, broadcast it, and poll its receipt until receipt_timeout. A receipt with status 0
// is replayed at its block to get the revert's status.
//
// Nonces: "nonce too low" or a conflicting transaction in the pool on broadcast: the signed
// transaction can never be mined, so it is marked dropped, the nonce is re-read and the intent is
// signed again (it was never accepted, so this is not a second transaction for it). "already
// known" means the node holds these very bytes: sent.
//
// Unfinished transactions (broadcast failed as UNAVAILABLE, receipt polling UNAVAILABLE or past
// the deadline, or pending in the journal at open) are kept per signer and re-sent — the same
// bytes — before that signer signs anything new, so a later call finishes them and nonces never
// skip. While a receipt is awaited the transaction is also re-sent every few seconds (a chain
// restart loses its pool).
//
// Stuck transactions: one that was not mined within receipt_timeout (its fees too low for the
// chain now, e.g. a base fee that rose above its max fee) is replaced by the signer's next call:
// the same nonce, call and gas limit, fees raised to at least 9/8 of the old ones (nodes replace a
// pooled transaction only for a 10 % higher fee) and to the chain's current suggestion, journaled
// before broadcast like any transaction. Both share one nonce, so at most one is ever mined; the
// other is marked dropped when the nonce is passed. Replacements need the signer's key (a
// journal-only signer's transactions are re-sent as they are).
//
// Thread-safety: thread-safe. A signer's nonce, its unfinished list and its sends are under that
// signer's mutex; receipt polling runs outside it, so one signer may have several transactions in
// flight.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"
#include "atoma/evm/rpc.h"
#include "tx_journal.h"

namespace atoma::ledger::evm_backend {

struct SenderOptions {
  uint64_t chain_id = 0;
  crypto::Address contract{};
  absl::Duration receipt_timeout = absl::Seconds(60);
  absl::Duration poll_interval = absl::Milliseconds(100);
  // A receipt counts once its block is this many blocks below the head (0: at once). Until then
  // it is read again at every poll, so a reorg that drops the transaction is noticed (and the
  // transaction re-sent).
  uint64_t confirmations = 0;
};

// Polls the receipt of the signed transaction `raw` (hash `hash`) until `timeout`, re-sending
// `raw` every few seconds while it is not mined (also after a reorg dropped it), and returns it
// once its block has `confirmations` blocks above it. DEADLINE_EXCEEDED (message names the hash
// and `purpose`), UNAVAILABLE when the chain stops answering, ABORTED when its nonce was taken by
// another transaction (it can never be mined).
absl::StatusOr<evm::Receipt> WaitForReceipt(evm::EthClient& eth, const crypto::Hash256& hash,
                                            std::span<const uint8_t> raw,
                                            const std::string& purpose, absl::Duration timeout,
                                            absl::Duration poll_interval,
                                            uint64_t confirmations = 0);

// gas * 1.2, saturating.
uint64_t WithGasMargin(uint64_t gas);

class TxSender {
 public:
  TxSender(std::shared_ptr<evm::EthClient> eth, std::unique_ptr<TxJournal> journal,
           SenderOptions options);

  // Before any concurrent use: the keys this sender signs with.
  void AddKey(crypto::PrivateKey key);
  bool HasKey(const crypto::Address& signer) const;
  std::vector<crypto::Address> Signers() const;

  // At open: re-sends every pending journaled transaction of this chain and contract whose
  // nonce the chain has not passed (those it has passed are marked mined or dropped from their
  // receipts) and waits for them. Errors are returned after every signer was tried; whatever is
  // still unfinished is re-sent by the signer's next Transact.
  absl::Status Recover();

  // Re-sends `actor`'s unfinished transactions and waits for them (OK when it has none). A
  // mutating call runs this before its own checks, so they see what the journal finished.
  absl::Status FinishPending(const crypto::Address& actor);

  // A mutating call of the contract as `actor` (see the file comment). The receipt has status 1.
  absl::StatusOr<evm::Receipt> Transact(const crypto::Address& actor,
                                        const std::vector<uint8_t>& data, const Uint256& value,
                                        const std::string& purpose);

  TxJournal& journal() { return *journal_; }
  evm::EthClient& eth() { return *eth_; }

 private:
  struct Signer {
    absl::Mutex mu;
    std::optional<crypto::PrivateKey> key;  // none: only journaled transactions to finish
    std::optional<uint64_t> next_nonce ABSL_GUARDED_BY(mu);
    std::vector<JournaledTx> unfinished ABSL_GUARDED_BY(mu);  // by nonce
  };

  Signer* Find(const crypto::Address& address) const;
  Signer& FindOrAdd(const crypto::Address& address);
  // Re-sends the signer's unfinished transactions and waits for them.
  absl::Status FinishUnfinished(Signer& signer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(signer.mu);
  void AddUnfinished(Signer& signer, const JournaledTx& tx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(signer.mu);
  // Marks a mined receipt in the journal (TxJournal::MarkMined also drops a replaced transaction
  // of the same nonce); errors are logged: the chain is the truth.
  void RecordMined(const evm::Receipt& receipt);
  // The higher-fee replacement of the stuck `tx` (see the file comment), journaled, not sent.
  absl::StatusOr<JournaledTx> Replacement(const Signer& signer, const JournaledTx& tx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(signer.mu);

  std::shared_ptr<evm::EthClient> eth_;
  std::unique_ptr<TxJournal> journal_;
  const SenderOptions options_;
  mutable absl::Mutex signers_mu_;
  std::map<crypto::Address, std::unique_ptr<Signer>> signers_ ABSL_GUARDED_BY(signers_mu_);
};

}  // namespace atoma::ledger::evm_backend
