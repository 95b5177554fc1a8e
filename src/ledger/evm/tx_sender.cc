#include "tx_sender.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/tx.h"
#include "codec.h"

namespace atoma::ledger::evm_backend {
namespace {

// While a receipt is awaited, the transaction is re-sent this often (a restarted chain has lost
// its pool; a node that never got it gets it).
constexpr absl::Duration kResendEvery = absl::Seconds(2);
// Re-signing after "nonce too low" (another user of the account took our nonce): a few times.
constexpr int kSignAttempts = 4;

std::string Hex(const crypto::Hash256& h) { return evm::ToHex(h); }
std::string Addr(const crypto::Address& a) { return crypto::AddressToString(a); }
std::string Msg(const absl::Status& s) { return std::string(s.message()); }

enum class SendOutcome {
  kSent,        // accepted now, or the node already holds these bytes
  kTransport,   // unreachable / timeout: may or may not be in the pool
  kNonceTaken,  // nonce too low, or another transaction holds the nonce in the pool
  kRejected,    // the node refused it for another reason (funds, gas, a revert on send)
};

SendOutcome Classify(const absl::Status& status) {
  if (status.ok()) return SendOutcome::kSent;
  const std::optional<evm::RpcError> error = evm::RpcErrorOf(status);
  if (!error.has_value()) {
    // UNAVAILABLE (transport, 5xx), DEADLINE, INTERNAL (HTTP 4xx), DATA_LOSS (garbled answer):
    // the node may have taken it.
    return SendOutcome::kTransport;
  }
  const std::string message = absl::AsciiStrToLower(error->message);
  if (absl::StrContains(message, "already known") ||
      absl::StrContains(message, "already imported") ||
      absl::StrContains(message, "known transaction") ||
      absl::StrContains(message, "alreadyknown")) {
    return SendOutcome::kSent;
  }
  if (absl::StrContains(message, "nonce too low") || absl::StrContains(message, "noncetoolow") ||
      absl::StrContains(message, "replacement transaction underpriced") ||
      absl::StrContains(message, "replacement underpriced")) {
    return SendOutcome::kNonceTaken;
  }
  return SendOutcome::kRejected;
}

}  // namespace

uint64_t WithGasMargin(uint64_t gas) {
  const uint64_t margin = gas / 5;
  return gas > UINT64_MAX - margin ? UINT64_MAX : gas + margin;
}

absl::StatusOr<evm::Receipt> WaitForReceipt(evm::EthClient& eth, const crypto::Hash256& hash,
                                            std::span<const uint8_t> raw,
                                            const std::string& purpose, absl::Duration timeout,
                                            absl::Duration poll_interval, uint64_t confirmations) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Time last_send = absl::Now();
  bool shallow = false;  // mined in shallow_block, not yet deep enough
  uint64_t shallow_block = 0;
  while (true) {
    absl::StatusOr<std::optional<evm::Receipt>> receipt = eth.GetTransactionReceipt(hash);
    if (!receipt.ok()) {
      return absl::Status(receipt.status().code(),
                          absl::StrCat("waiting for transaction ", Hex(hash), " (", purpose,
                                       "): ", Msg(receipt.status())));
    }
    shallow = false;
    if (receipt->has_value()) {
      if (confirmations == 0) return **receipt;
      absl::StatusOr<uint64_t> head = eth.BlockNumber();
      if (!head.ok()) {
        return absl::Status(head.status().code(),
                            absl::StrCat("waiting for transaction ", Hex(hash), " (", purpose,
                                         "): ", Msg(head.status())));
      }
      if (*head >= (*receipt)->block_number + confirmations) return **receipt;
      shallow = true;
      shallow_block = (*receipt)->block_number;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "transaction ", Hex(hash), " (", purpose, ") ",
          shallow ? absl::StrCat("mined in block ", shallow_block, " but not ", confirmations,
                                 " blocks deep")
                  : std::string("not mined"),
          " within ", absl::FormatDuration(timeout),
          "; it stays journaled and is re-sent by the signer's next call or the next open"));
    }
    if (!shallow && now - last_send >= kResendEvery) {
      last_send = now;
      const absl::StatusOr<crypto::Hash256> sent = eth.SendRawTransaction(raw);
      if (Classify(sent.status()) == SendOutcome::kNonceTaken) {
        // Mined meanwhile (then the receipt is there now: the loop checks its depth), or
        // replaced by another transaction.
        ASSIGN_OR_RETURN(std::optional<evm::Receipt> again, eth.GetTransactionReceipt(hash));
        if (again.has_value()) continue;
        return absl::AbortedError(absl::StrCat("transaction ", Hex(hash), " (", purpose,
                                               ") can never be mined: ", Msg(sent.status())));
      }
    }
    absl::SleepFor(std::min(poll_interval, deadline - now));
  }
}

TxSender::TxSender(std::shared_ptr<evm::EthClient> eth, std::unique_ptr<TxJournal> journal,
                   SenderOptions options)
    : eth_(std::move(eth)), journal_(std::move(journal)), options_(options) {}

void TxSender::AddKey(crypto::PrivateKey key) {
  const crypto::Address address = key.address();
  FindOrAdd(address).key.emplace(std::move(key));
}

bool TxSender::HasKey(const crypto::Address& signer) const {
  const Signer* s = Find(signer);
  return s != nullptr && s->key.has_value();
}

std::vector<crypto::Address> TxSender::Signers() const {
  absl::MutexLock lock(&signers_mu_);
  std::vector<crypto::Address> out;
  for (const auto& [address, signer] : signers_) {
    if (signer->key.has_value()) out.push_back(address);
  }
  return out;
}

TxSender::Signer* TxSender::Find(const crypto::Address& address) const {
  absl::MutexLock lock(&signers_mu_);
  const auto it = signers_.find(address);
  return it == signers_.end() ? nullptr : it->second.get();
}

TxSender::Signer& TxSender::FindOrAdd(const crypto::Address& address) {
  absl::MutexLock lock(&signers_mu_);
  std::unique_ptr<Signer>& slot = signers_[address];
  if (slot == nullptr) slot = std::make_unique<Signer>();
  return *slot;
}

void TxSender::AddUnfinished(Signer& signer, const JournaledTx& tx) {
  for (const JournaledTx& t : signer.unfinished) {
    if (t.hash == tx.hash) return;
  }
  signer.unfinished.push_back(tx);
  std::stable_sort(signer.unfinished.begin(), signer.unfinished.end(),
                   [](const JournaledTx& a, const JournaledTx& b) { return a.nonce < b.nonce; });
}

void TxSender::RecordMined(const evm::Receipt& receipt) {
  const absl::Status s = journal_->MarkMined(receipt.tx_hash, receipt.block_number,
                                             receipt.status ? "ok" : "reverted");
  if (!s.ok()) {
    GetLogger("ledger")->warn("evm ledger: cannot mark transaction {} mined in the journal: {}",
                              Hex(receipt.tx_hash), s.ToString());
  }
}

absl::StatusOr<JournaledTx> TxSender::Replacement(const Signer& signer, const JournaledTx& tx) {
  absl::StatusOr<evm::SignedTx> old = evm::DecodeSignedTx(tx.raw);
  if (!old.ok()) {
    return absl::InternalError(absl::StrCat("journaled transaction ", Hex(tx.hash),
                                            " does not decode: ", Msg(old.status())));
  }
  ASSIGN_OR_RETURN(evm::FeeSuggestion fees, eth_->SuggestFees());
  // v + v/8 + 1: strictly above the 10 % (geth) and 12.5 % (some clients) replacement bumps.
  auto raised = [](const Uint256& v) -> absl::StatusOr<Uint256> {
    ASSIGN_OR_RETURN(Uint256 more, CheckedAdd(v, v >> 3));
    return CheckedAdd(more, Uint256(1));
  };
  evm::Eip1559Tx next = old->tx;
  ASSIGN_OR_RETURN(Uint256 tip, raised(old->tx.max_priority_fee_per_gas));
  ASSIGN_OR_RETURN(Uint256 max_fee, raised(old->tx.max_fee_per_gas));
  next.max_priority_fee_per_gas = std::max(tip, fees.max_priority_fee_per_gas);
  next.max_fee_per_gas = std::max({max_fee, fees.max_fee_per_gas, next.max_priority_fee_per_gas});
  JournaledTx replacement;
  replacement.signer = tx.signer;
  replacement.nonce = tx.nonce;
  replacement.raw = evm::SignTx(next, *signer.key);
  replacement.hash = evm::TxHash(replacement.raw);
  replacement.purpose = tx.purpose;
  RETURN_IF_ERROR(journal_->Record(replacement));
  GetLogger("ledger")->warn(
      "evm ledger: transaction {} ({}) of {} was not mined in time; replacing it with {} at max "
      "fee {} wei/gas (was {}), tip {} (was {})",
      Hex(tx.hash), tx.purpose, Addr(tx.signer), Hex(replacement.hash),
      next.max_fee_per_gas.ToDecimal(), old->tx.max_fee_per_gas.ToDecimal(),
      next.max_priority_fee_per_gas.ToDecimal(), old->tx.max_priority_fee_per_gas.ToDecimal());
  return replacement;
}

absl::Status TxSender::FinishUnfinished(Signer& signer) {
  if (signer.unfinished.empty()) return absl::OkStatus();
  auto log = GetLogger("ledger");
  // 1. Re-send, in nonce order; a stuck one is replaced by a higher-fee one first.
  std::vector<JournaledTx> waiting;
  for (JournaledTx tx : signer.unfinished) {
    if (tx.stuck && signer.key.has_value()) {
      // Mined meanwhile (or mined but not yet deep enough): nothing to replace.
      ASSIGN_OR_RETURN(std::optional<evm::Receipt> mined, eth_->GetTransactionReceipt(tx.hash));
      if (!mined.has_value()) {
        ASSIGN_OR_RETURN(tx, Replacement(signer, tx));
      }
    }
    const absl::StatusOr<crypto::Hash256> sent = eth_->SendRawTransaction(tx.raw);
    switch (Classify(sent.status())) {
      case SendOutcome::kSent:
        waiting.push_back(tx);
        break;
      case SendOutcome::kTransport:
        return absl::UnavailableError(absl::StrCat("cannot re-send journaled transaction ",
                                                   Hex(tx.hash), " (", tx.purpose, ") of ",
                                                   Addr(tx.signer), ": ", Msg(sent.status())));
      case SendOutcome::kNonceTaken: {
        // Its nonce is used: it was mined (then its receipt says so) or replaced.
        absl::StatusOr<std::optional<evm::Receipt>> receipt = eth_->GetTransactionReceipt(tx.hash);
        if (!receipt.ok()) return receipt.status();
        if (receipt->has_value()) {
          RecordMined(**receipt);
        } else {
          log->warn("evm ledger: journaled transaction {} ({}) of {} was replaced: {}",
                    Hex(tx.hash), tx.purpose, Addr(tx.signer), Msg(sent.status()));
          RETURN_IF_ERROR(journal_->MarkDropped(tx.hash, Msg(sent.status())));
          signer.next_nonce.reset();
        }
        break;
      }
      case SendOutcome::kRejected:
        log->warn("evm ledger: the node refuses journaled transaction {} ({}) of {}: {}",
                  Hex(tx.hash), tx.purpose, Addr(tx.signer), Msg(sent.status()));
        RETURN_IF_ERROR(journal_->MarkDropped(tx.hash, Msg(sent.status())));
        signer.next_nonce.reset();
        break;
    }
  }
  // 2. Wait for the ones in the pool. Anything not resolved stays unfinished.
  std::vector<JournaledTx> still;
  absl::Status first_error;
  for (const JournaledTx& tx : waiting) {
    if (!first_error.ok()) {
      still.push_back(tx);
      continue;
    }
    absl::StatusOr<evm::Receipt> receipt =
        WaitForReceipt(*eth_, tx.hash, tx.raw, tx.purpose, options_.receipt_timeout,
                       options_.poll_interval, options_.confirmations);
    if (receipt.ok()) {
      RecordMined(*receipt);
      log->info("evm ledger: journaled transaction {} ({}) of {} mined in block {}{}", Hex(tx.hash),
                tx.purpose, Addr(tx.signer), receipt->block_number,
                receipt->status ? "" : " (reverted)");
      continue;
    }
    if (absl::IsAborted(receipt.status())) {
      RETURN_IF_ERROR(journal_->MarkDropped(tx.hash, Msg(receipt.status())));
      signer.next_nonce.reset();
      continue;
    }
    first_error = receipt.status();
    still.push_back(tx);
    still.back().stuck = absl::IsDeadlineExceeded(receipt.status());
  }
  signer.unfinished = std::move(still);
  return first_error;
}

absl::Status TxSender::FinishPending(const crypto::Address& actor) {
  Signer* signer = Find(actor);
  if (signer == nullptr) return absl::OkStatus();
  absl::MutexLock lock(&signer->mu);
  return FinishUnfinished(*signer);
}

absl::Status TxSender::Recover() {
  ASSIGN_OR_RETURN(std::vector<JournaledTx> pending, journal_->Pending());
  if (pending.empty()) return absl::OkStatus();
  auto log = GetLogger("ledger");
  log->info("evm ledger: {} journaled transaction(s) were not known to be mined; finishing them",
            pending.size());
  std::map<crypto::Address, std::vector<JournaledTx>> by_signer;
  for (JournaledTx& tx : pending) by_signer[tx.signer].push_back(std::move(tx));
  absl::Status first_error;
  for (auto& [address, txs] : by_signer) {
    absl::StatusOr<uint64_t> mined_nonce = eth_->GetTransactionCount(address, "latest");
    if (!mined_nonce.ok()) return mined_nonce.status();
    Signer& signer = FindOrAdd(address);
    absl::MutexLock lock(&signer.mu);
    for (const JournaledTx& tx : txs) {
      if (tx.nonce < *mined_nonce) {
        // The chain has passed its nonce: mined (receipt) or replaced.
        ASSIGN_OR_RETURN(std::optional<evm::Receipt> receipt, eth_->GetTransactionReceipt(tx.hash));
        if (receipt.has_value()) {
          RecordMined(*receipt);
        } else {
          RETURN_IF_ERROR(journal_->MarkDropped(tx.hash, "nonce passed by another transaction"));
        }
        continue;
      }
      AddUnfinished(signer, tx);
    }
    absl::Status s = FinishUnfinished(signer);
    if (!s.ok()) {
      log->warn("evm ledger: journaled transactions of {} not finished yet: {}", Addr(address),
                s.ToString());
      if (first_error.ok()) first_error = s;
    }
  }
  return first_error;
}

absl::StatusOr<evm::Receipt> TxSender::Transact(const crypto::Address& actor,
                                                const std::vector<uint8_t>& data,
                                                const Uint256& value, const std::string& purpose) {
  Signer* signer = Find(actor);
  if (signer == nullptr || !signer->key.has_value()) {
    return absl::PermissionDeniedError(
        absl::StrCat("this ledger client holds no key for ", Addr(actor), " and cannot act as it"));
  }
  evm::CallRequest call;
  call.from = actor;
  call.to = options_.contract;
  call.data = data;
  if (!value.IsZero()) call.value = value;

  JournaledTx tx;
  uint64_t gas_limit = 0;
  {
    absl::MutexLock lock(&signer->mu);
    RETURN_IF_ERROR(FinishUnfinished(*signer));
    // Simulate: a revert is the answer, and nothing is sent.
    RETURN_IF_ERROR(MapCallError(eth_->Call(call, "pending").status()));
    absl::StatusOr<uint64_t> gas = eth_->EstimateGas(call);
    if (!gas.ok()) return MapCallError(gas.status());
    gas_limit = WithGasMargin(*gas);
    ASSIGN_OR_RETURN(evm::FeeSuggestion fees, eth_->SuggestFees());
    for (int attempt = 0;; ++attempt) {
      if (attempt == kSignAttempts) {
        return absl::AbortedError(absl::StrCat("could not get a nonce for ", Addr(actor),
                                               " accepted after ", kSignAttempts, " attempts"));
      }
      if (!signer->next_nonce.has_value()) {
        ASSIGN_OR_RETURN(signer->next_nonce, eth_->GetTransactionCount(actor, "pending"));
      }
      evm::Eip1559Tx unsigned_tx;
      unsigned_tx.chain_id = options_.chain_id;
      unsigned_tx.nonce = *signer->next_nonce;
      unsigned_tx.max_priority_fee_per_gas = fees.max_priority_fee_per_gas;
      unsigned_tx.max_fee_per_gas = fees.max_fee_per_gas;
      unsigned_tx.gas_limit = gas_limit;
      unsigned_tx.to = options_.contract;
      unsigned_tx.value = value;
      unsigned_tx.data = data;
      tx.signer = actor;
      tx.nonce = unsigned_tx.nonce;
      tx.raw = evm::SignTx(unsigned_tx, *signer->key);
      tx.hash = evm::TxHash(tx.raw);
      tx.purpose = purpose;
      // Journaled BEFORE it leaves the process: a crash after the broadcast re-sends these bytes.
      RETURN_IF_ERROR(journal_->Record(tx));
      const absl::StatusOr<crypto::Hash256> sent = eth_->SendRawTransaction(tx.raw);
      const SendOutcome outcome = Classify(sent.status());
      if (outcome == SendOutcome::kSent) {
        ++*signer->next_nonce;
        break;
      }
      if (outcome == SendOutcome::kTransport) {
        // It may be in the pool: its nonce is spoken for, and it is re-sent before anything new.
        ++*signer->next_nonce;
        AddUnfinished(*signer, tx);
        return absl::UnavailableError(absl::StrCat(
            "sending transaction ", Hex(tx.hash), " (", purpose, "): ", Msg(sent.status()),
            "; it is journaled and re-sent by the next call of ", Addr(actor),
            " or the next open"));
      }
      RETURN_IF_ERROR(journal_->MarkDropped(tx.hash, Msg(sent.status())));
      signer->next_nonce.reset();
      if (outcome == SendOutcome::kRejected) return MapCallError(sent.status());
      GetLogger("ledger")->info("evm ledger: nonce {} of {} is taken ({}); re-reading it", tx.nonce,
                                Addr(actor), Msg(sent.status()));
    }
  }

  absl::StatusOr<evm::Receipt> receipt =
      WaitForReceipt(*eth_, tx.hash, tx.raw, purpose, options_.receipt_timeout,
                     options_.poll_interval, options_.confirmations);
  if (!receipt.ok()) {
    absl::MutexLock lock(&signer->mu);
    if (absl::IsAborted(receipt.status())) {
      (void)journal_->MarkDropped(tx.hash, Msg(receipt.status()));
      signer->next_nonce.reset();
    } else {
      tx.stuck = absl::IsDeadlineExceeded(receipt.status());
      AddUnfinished(*signer, tx);
    }
    return receipt.status();
  }
  RecordMined(*receipt);
  if (receipt->status) return receipt;

  // Reverted on chain although the simulation passed: the state moved in between. The reason is
  // what the call says at that block (then just before it).
  for (const uint64_t block : {receipt->block_number, receipt->block_number - 1}) {
    const absl::Status replay = eth_->Call(call, evm::QuantityHex(block)).status();
    if (replay.ok()) continue;
    const absl::Status mapped = MapCallError(replay);
    return absl::Status(mapped.code(),
                        absl::StrCat(mapped.message(), " (transaction ", Hex(tx.hash),
                                     " reverted in block ", receipt->block_number, ")"));
  }
  return absl::AbortedError(absl::StrCat(
      "transaction ", Hex(tx.hash), " (", purpose, ") reverted in block ", receipt->block_number,
      receipt->gas_used >= gas_limit ? ": out of gas" : " for a reason the replay does not show"));
}

}  // namespace atoma::ledger::evm_backend
