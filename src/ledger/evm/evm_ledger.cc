// The EVM backend of LedgerClient (include/atoma/ledger/evm_ledger.h; docs/ledger_evm.md, "The
// C++ backend"): views are eth_calls, mutations are journaled transactions (tx_sender.h), and
// settlement verifies each certificate locally exactly as the embedded backend does before the
// contract re-checks it.
#include "atoma/ledger/evm_ledger.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "artifact.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/consensus/committee.h"
#include "atoma/evm/abi.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/tx.h"
#include "batch_verify.h"
#include "codec.h"
#include "tx_journal.h"
#include "tx_sender.h"

namespace atoma::ledger {
namespace {

using evm::AbiValue;
using evm_backend::TxSender;

std::string Hex(const Address& a) { return crypto::AddressToString(a); }
std::string HashHex(const Hash256& h) { return evm::ToHex(h); }

absl::Status RequirePositive(const Amount& amount) {
  if (amount.IsZero()) return absl::InvalidArgumentError("amount must be positive");
  return absl::OkStatus();
}

// An address in an indexed topic: the low 20 bytes of the word (the rest must be zero).
absl::StatusOr<Address> TopicAddress(const Hash256& topic) {
  for (size_t i = 0; i < 12; ++i) {
    if (topic[i] != 0) return absl::DataLossError("address topic with dirty high bytes");
  }
  Address a{};
  std::copy(topic.begin() + 12, topic.end(), a.begin());
  return a;
}

absl::StatusOr<std::vector<AbiValue>> DecodeAs(std::string_view types,
                                               std::span<const uint8_t> data,
                                               std::string_view what) {
  absl::StatusOr<std::vector<evm::AbiType>> parsed = evm::ParseTypeList(types);
  if (!parsed.ok()) return absl::InternalError(parsed.status().message());
  absl::StatusOr<std::vector<AbiValue>> values = evm::AbiDecode(*parsed, data);
  if (!values.ok()) {
    return absl::DataLossError(absl::StrCat("the ledger contract returned malformed ",
                                            std::string(what), ": ", values.status().message()));
  }
  return values;
}

absl::StatusOr<std::vector<uint8_t>> Calldata(std::string_view signature,
                                              const std::vector<AbiValue>& args) {
  absl::StatusOr<std::vector<uint8_t>> data = evm::EncodeCall(signature, args);
  // Our own signatures and values: a failure is a bug here, not the caller's input.
  if (!data.ok()) return absl::InternalError(data.status().message());
  return data;
}

AbiValue EchelonsValue(const std::vector<EchelonRef>& echelons) {
  std::vector<AbiValue> items;
  for (const EchelonRef& e : echelons) {
    items.push_back(
        AbiValue::Tuple({AbiValue::Bytes32(e.model_digest), AbiValue::Bytes32(e.echelon_id)}));
  }
  return AbiValue::Array(std::move(items));
}

absl::StatusOr<Epoch> EpochFrom(const std::vector<AbiValue>& v) {
  Epoch epoch;
  ASSIGN_OR_RETURN(epoch.number, v[0].AsU64());
  ASSIGN_OR_RETURN(epoch.seed, v[1].AsBytes32());
  ASSIGN_OR_RETURN(epoch.started_unix_s, v[2].AsI64());
  return epoch;
}

// A log's position on the chain, for ordering.
using LogPosition = std::pair<uint64_t, uint64_t>;                     // (block, log index)
using EpochStartList = std::vector<std::pair<LogPosition, uint64_t>>;  // (position, number)

class EvmLedger final : public LedgerClient {
 public:
  EvmLedger(std::shared_ptr<evm::EthClient> eth, std::unique_ptr<TxSender> sender,
            const EvmLedgerOptions& options, std::optional<Address> default_signer)
      : eth_(std::move(eth)),
        sender_(std::move(sender)),
        contract_(options.contract),
        confirmations_(options.confirmations),
        default_signer_(default_signer),
        cosigner_(options.cosigner) {}

  // ---- Parameters ----

  absl::StatusOr<Params> GetParams() override {
    {
      absl::MutexLock lock(&mu_);
      if (params_.has_value()) return *params_;
    }
    // Fixed for the contract's life: read at the head, once.
    ASSIGN_OR_RETURN(
        std::vector<AbiValue> v,
        View("getParams()", {}, "uint64,uint64,uint64,uint256,uint64,uint64,uint64", "latest"));
    Params p;
    ASSIGN_OR_RETURN(p.unbonding_epochs, v[0].AsU64());
    ASSIGN_OR_RETURN(p.epoch_length_s, v[1].AsU64());
    p.fee_per_token = v[3].uint();
    ASSIGN_OR_RETURN(p.slash_bps, v[4].AsU64());
    ASSIGN_OR_RETURN(p.reporter_share_bps, v[5].AsU64());
    ASSIGN_OR_RETURN(p.domain.chain_id, v[6].AsU64());
    p.domain.ledger = contract_;
    absl::MutexLock lock(&mu_);
    params_ = p;
    return p;
  }

  // ---- Registry ----

  absl::Status RegisterNode(const Address& node, const std::string& endpoint,
                            const std::vector<EchelonRef>& echelons) override {
    RETURN_IF_ERROR(ValidateEndpoint(endpoint));
    RETURN_IF_ERROR(ValidateEchelons(echelons));
    return Send(node, "registerNode(string,(bytes32,bytes32)[])",
                {AbiValue::String(endpoint), EchelonsValue(echelons)}, Amount(),
                absl::StrCat("register node ", Hex(node)))
        .status();
  }

  absl::Status UpdateNode(const Address& node, const std::string& endpoint,
                          const std::vector<EchelonRef>& echelons) override {
    RETURN_IF_ERROR(ValidateEndpoint(endpoint));
    RETURN_IF_ERROR(ValidateEchelons(echelons));
    return Send(node, "updateNode(string,(bytes32,bytes32)[])",
                {AbiValue::String(endpoint), EchelonsValue(echelons)}, Amount(),
                absl::StrCat("update node ", Hex(node)))
        .status();
  }

  absl::StatusOr<NodeInfo> GetNode(const Address& node) override {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v, View("getNode(address)", {AbiValue::Address(node)},
                                                   "string,(bytes32,bytes32)[],uint64"));
    NodeInfo info;
    info.address = node;
    info.endpoint = v[0].string();
    for (const AbiValue& e : v[1].list()) {
      EchelonRef ref;
      ASSIGN_OR_RETURN(ref.model_digest, e[0].AsBytes32());
      ASSIGN_OR_RETURN(ref.echelon_id, e[1].AsBytes32());
      info.echelons.push_back(ref);
    }
    // The embedded backend lists them by echelon id.
    std::sort(info.echelons.begin(), info.echelons.end(),
              [](const EchelonRef& a, const EchelonRef& b) { return a.echelon_id < b.echelon_id; });
    ASSIGN_OR_RETURN(info.registered_epoch, v[2].AsU64());
    return info;
  }

  absl::StatusOr<std::vector<Address>> ListNodes() override {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v, View("listNodes()", {}, "address[]"));
    std::vector<Address> nodes;
    for (const AbiValue& a : v[0].list()) nodes.push_back(a.address());
    std::sort(nodes.begin(), nodes.end());
    return nodes;
  }

  // ---- Stake ----

  absl::Status Stake(const Address& node, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Send(node, "stake()", {}, amount,
                absl::StrCat("stake ", amount.ToDecimal(), " for ", Hex(node)))
        .status();
  }

  absl::Status Unstake(const Address& node, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Send(node, "unstake(uint256)", {AbiValue::Uint(amount)}, Amount(),
                absl::StrCat("unstake ", amount.ToDecimal(), " of ", Hex(node)))
        .status();
  }

  absl::StatusOr<StakeInfo> GetStake(const Address& node) override {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v, View("getStake(address)", {AbiValue::Address(node)},
                                                   "uint256,(uint256,uint64)[],uint256"));
    StakeInfo info;
    info.bonded = v[0].uint();
    for (const AbiValue& e : v[1].list()) {
      UnbondingEntry entry;
      entry.amount = e[0].uint();
      ASSIGN_OR_RETURN(entry.release_epoch, e[1].AsU64());
      info.unbonding.push_back(entry);
    }
    info.withdrawable = v[2].uint();
    return info;
  }

  absl::Status WithdrawStake(const Address& node, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Send(node, "withdrawStake(uint256)", {AbiValue::Uint(amount)}, Amount(),
                absl::StrCat("withdraw ", amount.ToDecimal(), " of stake of ", Hex(node)))
        .status();
  }

  // ---- Epochs ----

  absl::StatusOr<Epoch> CurrentEpoch() override {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v, View("currentEpoch()", {}, "uint64,bytes32,int64"));
    return EpochFrom(v);
  }

  absl::StatusOr<Epoch> GetEpoch(uint64_t number) override { return EpochAt(number, std::nullopt); }

  absl::StatusOr<Epoch> AdvanceEpoch() override {
    return Advance(Calldata("advanceEpoch()", {}), "advance the epoch");
  }

  absl::StatusOr<Epoch> AdvanceEpochFrom(uint64_t current) override {
    return Advance(Calldata("advanceEpochFrom(uint64)", {AbiValue::Uint(Amount(current))}),
                   absl::StrCat("advance the epoch from ", current));
  }

  absl::StatusOr<std::vector<Candidate>> EchelonSnapshot(uint64_t epoch,
                                                         const Hash256& echelon_id) override {
    return SnapshotAt(epoch, echelon_id, std::nullopt);
  }

  absl::StatusOr<std::vector<Hash256>> SnapshotEchelons(uint64_t epoch) override {
    ASSIGN_OR_RETURN(const std::string block, ViewBlock());
    // NOT_FOUND for an epoch that has not started, as the embedded backend says.
    RETURN_IF_ERROR(EpochAt(epoch, block).status());
    ASSIGN_OR_RETURN(
        std::vector<AbiValue> v,
        View("snapshotEchelons(uint64)", {AbiValue::Uint(Amount(epoch))}, "bytes32[]", block));
    std::vector<Hash256> out;
    for (const AbiValue& e : v[0].list()) {
      ASSIGN_OR_RETURN(out.emplace_back(), e.AsBytes32());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // ---- Escrow and rewards ----

  absl::Status DepositEscrow(const Address& client, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Send(client, "depositEscrow()", {}, amount,
                absl::StrCat("deposit ", amount.ToDecimal(), " escrow for ", Hex(client)))
        .status();
  }
  absl::StatusOr<Amount> EscrowBalance(const Address& client) override {
    return BalanceView("escrowBalance(address)", client, std::nullopt);
  }
  absl::StatusOr<EscrowInfo> EscrowStatus(const Address& client) override {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v,
                     View("escrowStatus(address)", {AbiValue::Address(client)},
                          "uint256,uint256,uint64,uint256"));
    EscrowInfo info;
    info.balance = v[0].uint();
    info.pending = v[1].uint();
    ASSIGN_OR_RETURN(info.unlock_epoch, v[2].AsU64());
    info.withdrawable = v[3].uint();
    return info;
  }
  absl::Status RequestEscrowWithdrawal(const Address& client, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Send(client, "requestEscrowWithdrawal(uint256)", {AbiValue::Uint(amount)}, Amount(),
                absl::StrCat("request a withdrawal of ", amount.ToDecimal(), " escrow of ",
                             Hex(client)))
        .status();
  }
  absl::Status WithdrawEscrow(const Address& client, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Send(client, "withdrawEscrow(uint256)", {AbiValue::Uint(amount)}, Amount(),
                absl::StrCat("withdraw ", amount.ToDecimal(), " escrow of ", Hex(client)))
        .status();
  }
  absl::StatusOr<Amount> RewardBalance(const Address& node) override {
    return BalanceView("rewardBalance(address)", node, std::nullopt);
  }
  absl::Status WithdrawRewards(const Address& node, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Send(node, "withdrawRewards(uint256)", {AbiValue::Uint(amount)}, Amount(),
                absl::StrCat("withdraw ", amount.ToDecimal(), " rewards of ", Hex(node)))
        .status();
  }

  // ---- Settlement ----

  absl::StatusOr<std::vector<SettlementResult>> SettleCertificates(
      const Address& submitter, std::span<const SettlementItem> items) override {
    if (items.size() > kMaxSettlementBatch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "at most ", kMaxSettlementBatch, " certificates per batch, got ", items.size()));
    }
    if (!sender_->HasKey(submitter)) return NoKey(submitter);
    // What this submitter left unfinished settles first, so the checks below see it.
    RETURN_IF_ERROR(sender_->FinishPending(submitter));
    std::vector<SettlementResult> results(items.size());
    ASSIGN_OR_RETURN(const Params params, GetParams());
    // Checks run against the chain head, where the transaction will run (the contract checks
    // again there; confirmations only delay what views report).
    const std::string head = "latest";

    // 1. The verification inputs: the epoch seed and frozen snapshot per (epoch, echelon).
    BatchVerifier verifier(params.domain, items, results);
    RETURN_IF_ERROR(verifier.Load(
        [&](uint64_t epoch) { return EpochAt(epoch, head); },
        [&](uint64_t epoch, const Hash256& echelon) { return SnapshotAt(epoch, echelon, head); }));

    // 2. Verify each item exactly as the embedded backend does.
    const std::vector<bool> verified = verifier.Verify();

    // 3. The ledger rules, in the embedded backend's order: settled before (the contract's
    //    (client, nonce) bit, or earlier in this batch), fee <= max_fee, escrow covering the
    //    running total of the batch.
    std::map<std::pair<Address, uint64_t>, Hash256> closed_in_batch;
    std::map<Address, Amount> escrow_left;
    std::vector<size_t> to_send;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!verified[i]) continue;
      const consensus::ConsensusRequest& request = items[i].certificate.request;
      SettlementResult& r = results[i];
      const auto nonce_key = std::make_pair(request.client, request.client_nonce);
      if (const auto it = closed_in_batch.find(nonce_key); it != closed_in_batch.end()) {
        r.status = it->second == r.request_id
                       ? absl::AlreadyExistsError(
                             absl::StrCat("request ", HashHex(r.request_id), " is already settled"))
                       : absl::AlreadyExistsError(
                             absl::StrCat("nonce ", request.client_nonce, " of client ",
                                          Hex(request.client), " was already settled by request ",
                                          HashHex(it->second), " (a client nonce settles once)"));
        continue;
      }
      ASSIGN_OR_RETURN(
          std::vector<AbiValue> settled,
          View("isSettled(address,uint64)",
               {AbiValue::Address(request.client), AbiValue::Uint(Amount(request.client_nonce))},
               "bool", head));
      if (settled[0].boolean()) {
        r.status = ClosedStatus(request, r.request_id, /*for_dispute=*/false);
        continue;
      }
      const uint64_t tokens = request.prompt_token_ids.size() + items[i].output.token_ids.size();
      absl::StatusOr<Amount> fee = CheckedMul(params.fee_per_token, tokens);
      if (!fee.ok() || *fee > request.max_fee) {
        r.status = absl::FailedPreconditionError(
            absl::StrCat("fee ", fee.ok() ? fee->ToDecimal() : std::string("above 2^256-1"), " (",
                         tokens, " tokens at ", params.fee_per_token.ToDecimal(),
                         ") exceeds max_fee ", request.max_fee.ToDecimal()));
        continue;
      }
      r.fee = *fee;
      auto escrow = escrow_left.find(request.client);
      if (escrow == escrow_left.end()) {
        ASSIGN_OR_RETURN(Amount balance, BalanceView("escrowBalance(address)", request.client,
                                                     std::optional<std::string>(head)));
        escrow = escrow_left.emplace(request.client, balance).first;
      }
      if (escrow->second < *fee) {
        r.status = absl::FailedPreconditionError(
            absl::StrCat("insufficient escrow balance of ", Hex(request.client), ": ",
                         escrow->second.ToDecimal(), " < fee ", fee->ToDecimal()));
        continue;
      }
      escrow->second = CheckedSub(escrow->second, *fee).value();  // checked just above
      closed_in_batch.emplace(nonce_key, r.request_id);
      to_send.push_back(i);
    }
    if (to_send.empty()) return results;

    // 4. The items whose members all co-signed go out as one settleCosigned transaction (when
    //    co-signing pays), the rest as one settle transaction; results come from their events.
    CosignPlan plan = PlanCosigned(params.domain, items, to_send);
    if (!plan.items.empty()) {
      std::map<Address, uint8_t> index;
      for (size_t m = 0; m < plan.table.size(); ++m) {
        index.emplace(plan.table[m].address, static_cast<uint8_t>(m));
      }
      std::vector<std::vector<uint8_t>> packed;
      packed.reserve(plan.items.size());
      for (size_t i : plan.items) {
        packed.push_back(evm_backend::EncodeCosignedItem(
            items[i], [&index](const Address& a) { return index.at(a); }));
      }
      const absl::Status sent =
          SendSettlement(submitter, "settleCosigned(bytes)",
                         evm_backend::EncodeCosignedBatch(plan.table, packed), plan.items, results);
      if (!sent.ok()) {
        // Transient: the call fails and the outbox retries the batch (what landed is
        // ALREADY_EXISTS then). A revert of the co-signed form that settle would not hit (a
        // contract and client that disagree on a chain) must not stop settlement: those items
        // go through settle below.
        if (absl::IsUnavailable(sent) || absl::IsDeadlineExceeded(sent) || absl::IsAborted(sent) ||
            absl::IsDataLoss(sent) || absl::IsInternal(sent)) {
          return sent;
        }
        GetLogger("ledger")->warn("settleCosigned refused ({}); settling those {} with settle",
                                  sent.ToString(), plan.items.size());
        plan.items.clear();
      }
    }
    std::vector<size_t> plain;
    for (size_t i : to_send) {
      if (!std::binary_search(plan.items.begin(), plan.items.end(), i)) plain.push_back(i);
    }
    if (!plain.empty()) {
      std::vector<std::vector<uint8_t>> packed;
      packed.reserve(plain.size());
      for (size_t i : plain) packed.push_back(evm_backend::EncodeSettleItem(items[i]));
      RETURN_IF_ERROR(SendSettlement(submitter, "settle(bytes)",
                                     evm_backend::EncodeSettleBatch(packed), plain, results));
    }
    return results;
  }

  absl::StatusOr<bool> IsNonceSettled(const Address& client, uint64_t nonce) override {
    ASSIGN_OR_RETURN(const std::string block, ViewBlock());
    ASSIGN_OR_RETURN(
        std::vector<AbiValue> settled,
        View("isSettled(address,uint64)",
             {AbiValue::Address(client), AbiValue::Uint(Amount(nonce))}, "bool", block));
    return settled[0].boolean();
  }

  absl::StatusOr<bool> IsSettled(const Hash256& request_id) override {
    ASSIGN_OR_RETURN(const uint64_t to, ViewBlockNumber());
    ASSIGN_OR_RETURN(const uint64_t from, DeployBlock());
    if (to < from) return false;
    for (std::string_view event : {evm_backend::kSettledEvent, evm_backend::kDisputeSettledEvent}) {
      evm::LogFilter filter;
      filter.addresses = {contract_};
      filter.topics = {evm::EventTopic(event), request_id};
      filter.from_block = from;
      filter.to_block = to;
      ASSIGN_OR_RETURN(std::vector<evm::Log> logs, eth_->GetLogs(filter));
      for (const evm::Log& log : logs) {
        if (!log.removed) return true;
      }
    }
    return false;
  }

  // Co-signing saves about this much per slot (64 calldata bytes and an ecrecover, less the
  // chain step) and costs about this much per distinct member (its table row, co-signature check
  // and snapshot lookup): fitted to bench/contract_gas.mjs's batches of 100
  // (docs/ledger_evm_gas.md; n = 1, 3, 5 agree within 2 %). Small batches deviate by tens of
  // thousands either way, so co-signing must promise at least kCosignMinSaving per batch (it also
  // costs a round trip to every member).
  static constexpr size_t kCosignSavingPerSlot = 4'200;
  static constexpr size_t kCosignCostPerMember = 5'800;
  static constexpr size_t kCosignMinSaving = 40'000;

  struct CosignPlan {
    std::vector<size_t> items;  // indices into the call's items, ascending
    std::vector<evm_backend::CosignedMember> table;
  };

  // Which of `candidates` (ascending) settle co-signed, and the member table. Asks every member
  // named by them; items naming a member that did not co-sign (unreachable, refused, a bad
  // signature) are dropped and the members whose lists changed are asked once more. Empty when
  // there is no cosigner, co-signing would not pay, more than 255 members are named, or the
  // second round failed too.
  CosignPlan PlanCosigned(const consensus::Domain& domain, std::span<const SettlementItem> items,
                          std::vector<size_t> candidates) {
    if (!cosigner_) return {};
    // Each candidate's slots (their attestation digests) once, for both rounds.
    std::map<size_t, std::vector<evm_backend::CosignSlot>> slots_of;
    for (size_t i : candidates) slots_of.emplace(i, evm_backend::CosignSlots(items[i]));
    std::map<std::pair<Address, Hash256>, crypto::Signature> cosigned;  // (member, digest)
    for (int round = 0; round < 2 && !candidates.empty(); ++round) {
      std::vector<Address> order;  // first appearance
      std::map<Address, std::vector<consensus::CosignEntry>> entries;
      size_t slots = 0;
      for (size_t i : candidates) {
        for (const evm_backend::CosignSlot& slot : slots_of.at(i)) {
          auto [it, inserted] = entries.try_emplace(slot.member);
          if (inserted) order.push_back(slot.member);
          it->second.push_back(slot.entry);
          ++slots;
        }
      }
      if (order.size() > 255 ||
          slots * kCosignSavingPerSlot < order.size() * kCosignCostPerMember + kCosignMinSaving) {
        return {};
      }
      std::vector<Hash256> digests;
      std::vector<Cosigner::Request> requests;
      std::vector<size_t> asked;  // requests[k] is for order[asked[k]]
      for (size_t m = 0; m < order.size(); ++m) {
        digests.push_back(consensus::CosignDigestOf(domain, entries[order[m]]));
        if (cosigned.contains({order[m], digests[m]})) continue;
        requests.push_back({order[m], std::move(entries[order[m]])});
        asked.push_back(m);
      }
      std::vector<absl::StatusOr<crypto::Signature>> answers = cosigner_->Cosign(requests);
      std::set<Address> failed;
      for (size_t k = 0; k < requests.size(); ++k) {
        const Cosigner::Request& r = requests[k];
        absl::Status status = k < answers.size()
                                  ? answers[k].status()
                                  : absl::InternalError("the cosigner gave no answer");
        if (status.ok()) {
          status = consensus::VerifyCosignature(domain, r.member, r.entries, *answers[k]);
        }
        if (status.ok()) {
          cosigned[{r.member, digests[asked[k]]}] = *answers[k];
        } else {
          GetLogger("ledger")->info("no co-signature from {} for {} slot(s): {}", Hex(r.member),
                                    r.entries.size(), status.ToString());
          failed.insert(r.member);
        }
      }
      if (failed.empty()) {
        CosignPlan plan;
        plan.items = std::move(candidates);
        for (size_t m = 0; m < order.size(); ++m) {
          plan.table.push_back({order[m], cosigned.at({order[m], digests[m]})});
        }
        return plan;
      }
      std::erase_if(candidates, [&](size_t i) {
        for (const evm_backend::CosignSlot& slot : slots_of.at(i)) {
          if (failed.contains(slot.member)) return true;
        }
        return false;
      });
    }
    return {};
  }

  // Sends one settle or settleCosigned transaction for `indices` (ascending, into `results`) and
  // fills their results from its Settled / SettlementRejected events.
  absl::Status SendSettlement(const Address& submitter, std::string_view method,
                              const std::vector<uint8_t>& batch, const std::vector<size_t>& indices,
                              std::vector<SettlementResult>& results) {
    const std::string name(method.substr(0, method.find('(')));
    ASSIGN_OR_RETURN(evm::Receipt receipt,
                     Send(submitter, method, {AbiValue::Bytes(batch)}, Amount(),
                          absl::StrCat(name, " ", indices.size(), " certificate(s)")));
    std::vector<bool> reported(indices.size(), false);
    const Hash256 settled_topic = evm::EventTopic(evm_backend::kSettledEvent);
    const Hash256 rejected_topic = evm::EventTopic(evm_backend::kSettlementRejectedEvent);
    for (const evm::Log& log : receipt.logs) {
      if (log.address != contract_ || log.topics.empty()) continue;
      const bool ok = log.topics[0] == settled_topic;
      if (!ok && log.topics[0] != rejected_topic) continue;
      ASSIGN_OR_RETURN(std::vector<AbiValue> v,
                       DecodeAs(ok ? "uint16,uint64,uint256" : "uint16,uint8", log.data,
                                ok ? "Settled event" : "SettlementRejected event"));
      ASSIGN_OR_RETURN(uint64_t index, v[0].AsU64());
      if (index >= indices.size() || reported[index] || log.topics.size() < 2) {
        return absl::DataLossError(absl::StrCat("the ledger contract reported item ", index,
                                                " of a batch of ", indices.size(),
                                                " twice or out of range"));
      }
      reported[index] = true;
      SettlementResult& r = results[indices[index]];
      if (ok) {
        if (log.topics[1] != r.request_id) {
          return absl::DataLossError(absl::StrCat("the ledger contract settled item ", index,
                                                  " as request ", HashHex(log.topics[1]),
                                                  ", expected ", HashHex(r.request_id)));
        }
        r.status = absl::OkStatus();
        r.fee = v[2].uint();
      } else {
        ASSIGN_OR_RETURN(uint64_t code, v[1].AsU64());
        evm_backend::RejectedItem rejected = evm_backend::MapRejectCode(static_cast<uint8_t>(code));
        r.status = rejected.status;
        if (rejected.check != consensus::CertificateCheck::kValid) r.check = rejected.check;
      }
    }
    size_t settled = 0;
    for (size_t j = 0; j < indices.size(); ++j) {
      SettlementResult& r = results[indices[j]];
      if (!reported[j]) {
        r.status = absl::InternalError(absl::StrCat(
            "the settle transaction ", HashHex(receipt.tx_hash), " reported nothing for item ", j));
      }
      settled += r.status.ok() ? 1 : 0;
    }
    GetLogger("ledger")->info("{}: settled {} of {} certificates submitted by {} (tx {}, gas {})",
                              name, settled, indices.size(), Hex(submitter),
                              HashHex(receipt.tx_hash), receipt.gas_used);
    return absl::OkStatus();
  }

  // ---- Slashing ----

  absl::StatusOr<SlashResult> ReportEquivocation(const Address& reporter,
                                                 const consensus::Attestation& a,
                                                 const consensus::Attestation& b) override {
    ASSIGN_OR_RETURN(evm::Receipt receipt,
                     Send(reporter, "reportEquivocation(bytes,bytes)",
                          {AbiValue::Bytes(evm_backend::AttestationBody(a)),
                           AbiValue::Bytes(evm_backend::AttestationBody(b))},
                          Amount(), absl::StrCat("report equivocation by ", Hex(a.member))));
    const Hash256 topic = evm::EventTopic(evm_backend::kSlashedEvent);
    for (const evm::Log& log : receipt.logs) {
      if (log.address != contract_ || log.topics.size() < 3 || log.topics[0] != topic) continue;
      ASSIGN_OR_RETURN(std::vector<AbiValue> v, DecodeAs("bytes32,uint8,address,uint256,uint256",
                                                         log.data, "Slashed event"));
      SlashResult result;
      ASSIGN_OR_RETURN(result.offender, TopicAddress(log.topics[1]));
      ASSIGN_OR_RETURN(result.evidence_hash, v[0].AsBytes32());
      result.slashed = v[3].uint();
      result.reporter_reward = v[4].uint();
      GetLogger("ledger")->warn("equivocation by {} on request {}: slashed {}, reporter {} gets {}",
                                Hex(result.offender), HashHex(a.request_id),
                                result.slashed.ToDecimal(), Hex(reporter),
                                result.reporter_reward.ToDecimal());
      return result;
    }
    return absl::DataLossError(absl::StrCat("reportEquivocation transaction ",
                                            HashHex(receipt.tx_hash), " emitted no Slashed event"));
  }

  absl::StatusOr<DisputeResult> SettleDispute(const Address& submitter,
                                              const DisputeEvidence& evidence) override {
    RETURN_IF_ERROR(CheckDisputeForm(evidence));
    ASSIGN_OR_RETURN(std::vector<uint8_t> packed, evm_backend::EncodeDisputeEvidence(evidence));
    DisputeResult result;
    result.request_id = consensus::RequestId(evidence.request);
    absl::StatusOr<evm::Receipt> sent =
        Send(submitter, "settleDispute(bytes)", {AbiValue::Bytes(packed)}, Amount(),
             absl::StrCat("settle the dispute of request ", HashHex(result.request_id)));
    if (absl::IsAlreadyExists(sent.status())) {
      // The contract knows one bit per (client, nonce); say what closed it, as the embedded
      // backend does.
      return ClosedStatus(evidence.request, result.request_id, /*for_dispute=*/true);
    }
    if (!sent.ok()) return sent.status();
    const evm::Receipt& receipt = *sent;
    const Hash256 topic = evm::EventTopic(evm_backend::kDisputeSettledEvent);
    for (const evm::Log& log : receipt.logs) {
      if (log.address != contract_ || log.topics.size() < 2 || log.topics[0] != topic) continue;
      if (log.topics[1] != result.request_id) {
        return absl::DataLossError("DisputeSettled event for another request");
      }
      ASSIGN_OR_RETURN(std::vector<AbiValue> v,
                       DecodeAs("bytes32,uint256,uint256,string,address[],address[]", log.data,
                                "DisputeSettled event"));
      ASSIGN_OR_RETURN(result.commitment, v[0].AsBytes32());
      result.slashed_total = v[1].uint();
      result.fee = v[2].uint();
      result.fee_note = v[3].string();
      for (const AbiValue& a : v[4].list()) result.slashed.push_back(a.address());
      for (const AbiValue& a : v[5].list()) result.rewarded.push_back(a.address());
      GetLogger("ledger")->warn(
          "dispute on request {} settled by {}: {} member(s) slashed {} in total, fee {}{}, {} "
          "rewarded",
          HashHex(result.request_id), Hex(submitter), result.slashed.size(),
          result.slashed_total.ToDecimal(), result.fee.ToDecimal(),
          result.fee_note.empty() ? "" : absl::StrCat(" (", result.fee_note, ")"),
          result.rewarded.size());
      return result;
    }
    return absl::DataLossError(absl::StrCat("settleDispute transaction ", HashHex(receipt.tx_hash),
                                            " emitted no DisputeSettled event"));
  }

  // ---- Listings from logs ----

  absl::StatusOr<std::vector<SlashRecord>> ListSlashings(size_t limit) override {
    ASSIGN_OR_RETURN(const uint64_t to, ViewBlockNumber());
    ASSIGN_OR_RETURN(const uint64_t from, DeployBlock());
    std::vector<SlashRecord> records;
    if (to < from) return records;
    ASSIGN_OR_RETURN(std::vector<evm::Log> logs, Logs(evm_backend::kSlashedEvent, from, to));
    ASSIGN_OR_RETURN(EpochStartList epochs, EpochStarts(from, to));
    for (const evm::Log& log : logs) {
      if (log.topics.size() < 3) return absl::DataLossError("Slashed event without its topics");
      ASSIGN_OR_RETURN(std::vector<AbiValue> v, DecodeAs("bytes32,uint8,address,uint256,uint256",
                                                         log.data, "Slashed event"));
      SlashRecord& r = records.emplace_back();
      ASSIGN_OR_RETURN(uint64_t kind, v[1].AsU64());
      r.kind = kind == 1 ? "equivocation" : kind == 2 ? "dispute" : absl::StrCat("kind ", kind);
      ASSIGN_OR_RETURN(r.evidence_hash, v[0].AsBytes32());
      ASSIGN_OR_RETURN(r.offender, TopicAddress(log.topics[1]));
      r.request_id = log.topics[2];
      r.reporter = v[2].address();
      r.slashed = v[3].uint();
      r.reporter_reward = v[4].uint();
      r.epoch = EpochAtLog(epochs, {log.block_number, log.log_index});
    }
    if (limit != 0 && records.size() > limit) {
      records.erase(records.begin(), records.end() - static_cast<ptrdiff_t>(limit));
    }
    return records;
  }

  // From the Settled events, plus each settle transaction's sender and calldata (the event
  // carries neither the submitter nor the request's epoch): one eth_getTransactionByHash per
  // settle transaction. Linear in the contract's history; fine for operator tools.
  absl::StatusOr<std::vector<SettlementRecord>> ListSettlements(size_t limit) override {
    ASSIGN_OR_RETURN(const uint64_t to, ViewBlockNumber());
    ASSIGN_OR_RETURN(const uint64_t from, DeployBlock());
    std::vector<SettlementRecord> records;
    if (to < from) return records;
    ASSIGN_OR_RETURN(std::vector<evm::Log> logs, Logs(evm_backend::kSettledEvent, from, to));
    ASSIGN_OR_RETURN(EpochStartList epochs, EpochStarts(from, to));
    std::map<Hash256, SettleTx> txs;
    for (const evm::Log& log : logs) {
      if (log.topics.size() < 3) return absl::DataLossError("Settled event without its topics");
      ASSIGN_OR_RETURN(std::vector<AbiValue> v,
                       DecodeAs("uint16,uint64,uint256", log.data, "Settled event"));
      ASSIGN_OR_RETURN(uint64_t index, v[0].AsU64());
      auto tx = txs.find(log.tx_hash);
      if (tx == txs.end()) {
        ASSIGN_OR_RETURN(SettleTx fetched, FetchSettleTx(log.tx_hash));
        tx = txs.emplace(log.tx_hash, std::move(fetched)).first;
      }
      if (index >= tx->second.requests.size()) {
        return absl::DataLossError(absl::StrCat("settle transaction ", HashHex(log.tx_hash),
                                                " has no readable item ", index));
      }
      SettlementRecord& r = records.emplace_back();
      r.request_id = log.topics[1];
      r.request_epoch = tx->second.requests[index].epoch;
      ASSIGN_OR_RETURN(r.client, TopicAddress(log.topics[2]));
      r.fee = v[2].uint();
      r.submitter = tx->second.from;
      r.settled_epoch = EpochAtLog(epochs, {log.block_number, log.log_index});
    }
    // The embedded backend's order: (settled epoch, request id).
    std::sort(
        records.begin(), records.end(), [](const SettlementRecord& a, const SettlementRecord& b) {
          return std::tie(a.settled_epoch, a.request_id) < std::tie(b.settled_epoch, b.request_id);
        });
    if (limit != 0 && records.size() > limit) {
      records.erase(records.begin(), records.end() - static_cast<ptrdiff_t>(limit));
    }
    return records;
  }

 private:
  // A settle transaction as ListSettlements needs it.
  struct SettleTx {
    Address from{};
    std::vector<consensus::ConsensusRequest> requests;  // its batch's, in item order
  };

  absl::StatusOr<SettleTx> FetchSettleTx(const Hash256& hash) {
    constexpr char m[] = "eth_getTransactionByHash";
    ASSIGN_OR_RETURN(nlohmann::json tx,
                     eth_->rpc().Call(m, nlohmann::json::array({HashHex(hash)})));
    if (!tx.is_object() || !tx.contains("from") || !tx["from"].is_string() ||
        !tx.contains("input") || !tx["input"].is_string()) {
      return absl::DataLossError(absl::StrCat(m, ": no transaction ", HashHex(hash)));
    }
    SettleTx out;
    absl::StatusOr<Address> sender = evm::ParseAddressHex(tx["from"].get<std::string>());
    absl::StatusOr<std::vector<uint8_t>> input = evm::FromHex(tx["input"].get<std::string>());
    if (!sender.ok() || !input.ok())
      return absl::DataLossError(absl::StrCat(m, ": malformed answer"));
    out.from = *sender;
    auto is_call = [&input](std::string_view method) {
      const std::array<uint8_t, 4> selector = evm::Selector(method);
      return input->size() >= 4 && std::equal(selector.begin(), selector.end(), input->begin());
    };
    const bool cosigned = is_call("settleCosigned(bytes)");
    if (!cosigned && !is_call("settle(bytes)")) {
      return absl::DataLossError(
          absl::StrCat("transaction ", HashHex(hash), " emitted Settled but is not a settle call"));
    }
    ASSIGN_OR_RETURN(std::vector<AbiValue> args,
                     DecodeAs("bytes", std::span(*input).subspan(4), "settle calldata"));
    absl::StatusOr<std::vector<consensus::ConsensusRequest>> requests =
        evm_backend::DecodeSettleBatchRequests(args[0].bytes(), cosigned);
    if (!requests.ok()) return absl::DataLossError(requests.status().message());
    out.requests = *std::move(requests);
    return out;
  }

  // ---- Reading ----

  // The block views read: latest - confirmations.
  absl::StatusOr<uint64_t> ViewBlockNumber() {
    ASSIGN_OR_RETURN(uint64_t latest, eth_->BlockNumber());
    return latest > confirmations_ ? latest - confirmations_ : 0;
  }
  absl::StatusOr<std::string> ViewBlock() {
    if (confirmations_ == 0) return std::string("latest");
    ASSIGN_OR_RETURN(uint64_t block, ViewBlockNumber());
    return evm::QuantityHex(block);
  }

  // eth_call of a view; `block` nullopt = ViewBlock(). Reverts mapped to their status codes.
  absl::StatusOr<std::vector<AbiValue>> View(std::string_view signature,
                                             const std::vector<AbiValue>& args,
                                             std::string_view returns,
                                             std::optional<std::string> block = std::nullopt) {
    if (!block.has_value()) {
      ASSIGN_OR_RETURN(block, ViewBlock());
    }
    evm::CallRequest call;
    call.to = contract_;
    ASSIGN_OR_RETURN(call.data, Calldata(signature, args));
    absl::StatusOr<std::vector<uint8_t>> out = eth_->Call(call, *block);
    if (!out.ok()) return evm_backend::MapCallError(out.status());
    return DecodeAs(returns, *out, signature);
  }

  absl::StatusOr<Amount> BalanceView(std::string_view signature, const Address& who,
                                     std::optional<std::string> block) {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v,
                     View(signature, {AbiValue::Address(who)}, "uint256", std::move(block)));
    return v[0].uint();
  }

  absl::StatusOr<Epoch> EpochAt(uint64_t number, std::optional<std::string> block) {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v,
                     View("getEpoch(uint64)", {AbiValue::Uint(Amount(number))},
                          "uint64,bytes32,int64", std::move(block)));
    return EpochFrom(v);
  }

  absl::StatusOr<std::vector<Candidate>> SnapshotAt(uint64_t epoch, const Hash256& echelon_id,
                                                    std::optional<std::string> block) {
    ASSIGN_OR_RETURN(std::vector<AbiValue> v,
                     View("echelonSnapshot(uint64,bytes32)",
                          {AbiValue::Uint(Amount(epoch)), AbiValue::Bytes32(echelon_id)},
                          "address[],uint256[]", std::move(block)));
    const std::vector<AbiValue>& nodes = v[0].list();
    const std::vector<AbiValue>& stakes = v[1].list();
    if (nodes.size() != stakes.size()) {
      return absl::DataLossError("echelonSnapshot returned lists of different lengths");
    }
    std::vector<Candidate> out;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (stakes[i].uint().IsZero()) continue;
      out.push_back({nodes[i].address(), stakes[i].uint()});
    }
    std::sort(out.begin(), out.end(),
              [](const Candidate& a, const Candidate& b) { return a.address < b.address; });
    return out;
  }

  // The block the contract was deployed in: the first block at which it has code (binary search
  // on eth_getCode; a node without that history gives 0, which is only slower).
  absl::StatusOr<uint64_t> DeployBlock() {
    {
      absl::MutexLock lock(&mu_);
      if (deploy_block_.has_value()) return *deploy_block_;
    }
    ASSIGN_OR_RETURN(uint64_t hi, eth_->BlockNumber());
    uint64_t lo = 0;
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      absl::StatusOr<std::vector<uint8_t>> code = eth_->GetCode(contract_, evm::QuantityHex(mid));
      if (!code.ok()) {
        if (absl::IsUnavailable(code.status())) return code.status();
        GetLogger("ledger")->info("evm ledger: no code history ({}); logs are read from block 0",
                                  code.status().ToString());
        lo = 0;
        break;
      }
      if (code->empty()) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    absl::MutexLock lock(&mu_);
    deploy_block_ = lo;
    return lo;
  }

  absl::StatusOr<std::vector<evm::Log>> Logs(std::string_view event, uint64_t from, uint64_t to) {
    return LogsWhere({evm::EventTopic(event)}, from, to);
  }

  // The contract's logs matching `topics` in [from, to], removed ones dropped, in chain order.
  absl::StatusOr<std::vector<evm::Log>> LogsWhere(std::vector<std::optional<Hash256>> topics,
                                                  uint64_t from, uint64_t to) {
    evm::LogFilter filter;
    filter.addresses = {contract_};
    filter.topics = std::move(topics);
    filter.from_block = from;
    filter.to_block = to;
    ASSIGN_OR_RETURN(std::vector<evm::Log> logs, eth_->GetLogs(filter));
    std::erase_if(logs, [](const evm::Log& l) { return l.removed; });
    std::sort(logs.begin(), logs.end(), [](const evm::Log& a, const evm::Log& b) {
      return std::make_pair(a.block_number, a.log_index) <
             std::make_pair(b.block_number, b.log_index);
    });
    return logs;
  }

  // (position, number) of every EpochAdvanced in [from, to], in chain order.
  absl::StatusOr<EpochStartList> EpochStarts(uint64_t from, uint64_t to) {
    ASSIGN_OR_RETURN(std::vector<evm::Log> logs, Logs(evm_backend::kEpochAdvancedEvent, from, to));
    EpochStartList out;
    for (const evm::Log& log : logs) {
      if (log.topics.size() < 2) return absl::DataLossError("EpochAdvanced without its number");
      ASSIGN_OR_RETURN(uint64_t number,
                       AbiValue::Uint(Uint256::FromBigEndian(log.topics[1])).AsU64());
      out.push_back({{log.block_number, log.log_index}, number});
    }
    return out;
  }

  // The epoch current at `at`: the last EpochAdvanced before it (epoch 0 before any).
  static uint64_t EpochAtLog(const EpochStartList& epochs, LogPosition at) {
    uint64_t epoch = 0;
    for (const auto& [position, number] : epochs) {
      if (position >= at) break;
      epoch = number;
    }
    return epoch;
  }

  // ALREADY_EXISTS for a request whose (client, nonce) is closed, naming what closed it in the
  // embedded backend's words (the contract keeps only the bit; the logs say the rest): a dispute
  // of this request, a certificate of it, or another request with the same nonce.
  absl::Status ClosedStatus(const consensus::ConsensusRequest& request, const Hash256& id,
                            bool for_dispute) {
    const std::string generic =
        absl::StrCat("nonce ", request.client_nonce, " of client ", Hex(request.client),
                     " was already settled (a client nonce settles once)");
    absl::StatusOr<uint64_t> to = eth_->BlockNumber();
    absl::StatusOr<uint64_t> from = DeployBlock();
    if (!to.ok() || !from.ok()) return absl::AlreadyExistsError(generic);
    auto any =
        [&](std::string_view event,
            std::vector<std::optional<Hash256>> topics) -> absl::StatusOr<std::vector<evm::Log>> {
      topics.insert(topics.begin(), evm::EventTopic(event));
      return LogsWhere(std::move(topics), *from, *to);
    };
    absl::StatusOr<std::vector<evm::Log>> disputed = any(evm_backend::kDisputeSettledEvent, {id});
    if (disputed.ok() && !disputed->empty()) {
      return absl::AlreadyExistsError(
          for_dispute ? absl::StrCat("a dispute for request ", HashHex(id), " was already settled")
                      : absl::StrCat("request ", HashHex(id), " was already settled by a dispute"));
    }
    absl::StatusOr<std::vector<evm::Log>> certified = any(evm_backend::kSettledEvent, {id});
    if (certified.ok() && !certified->empty()) {
      return absl::AlreadyExistsError(
          for_dispute
              ? absl::StrCat("request ", HashHex(id), " was already settled by a certificate")
              : absl::StrCat("request ", HashHex(id), " is already settled"));
    }
    // Another request of this client and nonce: a certificate's Settled names the client.
    Hash256 client_topic{};
    std::copy(request.client.begin(), request.client.end(), client_topic.begin() + 12);
    absl::StatusOr<std::vector<evm::Log>> by_client =
        any(evm_backend::kSettledEvent, {std::nullopt, client_topic});
    if (by_client.ok()) {
      for (const evm::Log& log : *by_client) {
        absl::StatusOr<std::vector<AbiValue>> v =
            DecodeAs("uint16,uint64,uint256", log.data, "Settled event");
        if (!v.ok() || log.topics.size() < 2) continue;
        absl::StatusOr<uint64_t> nonce = (*v)[1].AsU64();
        if (nonce.ok() && *nonce == request.client_nonce) {
          return absl::AlreadyExistsError(
              absl::StrCat("nonce ", request.client_nonce, " of client ", Hex(request.client),
                           " was already settled by request ", HashHex(log.topics[1]),
                           " (a client nonce settles once)"));
        }
      }
    }
    return absl::AlreadyExistsError(generic);
  }

  // ---- Writing ----

  absl::Status NoKey(const Address& actor) const {
    return absl::PermissionDeniedError(
        absl::StrCat("this ledger client holds no key for ", Hex(actor), " and cannot act as it"));
  }

  absl::StatusOr<evm::Receipt> Send(const Address& actor, std::string_view signature,
                                    const std::vector<AbiValue>& args, const Amount& value,
                                    const std::string& purpose) {
    if (!sender_->HasKey(actor)) return NoKey(actor);
    ASSIGN_OR_RETURN(std::vector<uint8_t> data, Calldata(signature, args));
    return sender_->Transact(actor, data, value, purpose);
  }

  absl::StatusOr<Epoch> Advance(absl::StatusOr<std::vector<uint8_t>> data,
                                const std::string& purpose) {
    if (!data.ok()) return data.status();
    if (!default_signer_.has_value()) {
      return absl::PermissionDeniedError(
          "this ledger client holds no key, so it cannot send advanceEpoch");
    }
    ASSIGN_OR_RETURN(evm::Receipt receipt,
                     sender_->Transact(*default_signer_, *data, Amount(), purpose));
    const Hash256 topic = evm::EventTopic(evm_backend::kEpochAdvancedEvent);
    for (const evm::Log& log : receipt.logs) {
      if (log.address != contract_ || log.topics.size() < 2 || log.topics[0] != topic) continue;
      ASSIGN_OR_RETURN(uint64_t number,
                       AbiValue::Uint(Uint256::FromBigEndian(log.topics[1])).AsU64());
      // Read at the transaction's block: the new epoch exists there whatever the confirmations.
      return EpochAt(number, evm::QuantityHex(receipt.block_number));
    }
    return absl::DataLossError(absl::StrCat("advanceEpoch transaction ", HashHex(receipt.tx_hash),
                                            " emitted no EpochAdvanced event"));
  }

  const std::shared_ptr<evm::EthClient> eth_;
  const std::unique_ptr<TxSender> sender_;
  const Address contract_;
  const uint64_t confirmations_;
  const std::optional<Address> default_signer_;  // sends advanceEpoch (anyone may)
  const std::shared_ptr<Cosigner> cosigner_;     // null: settle only
  absl::Mutex mu_;
  std::optional<Params> params_ ABSL_GUARDED_BY(mu_);
  std::optional<uint64_t> deploy_block_ ABSL_GUARDED_BY(mu_);
};

absl::Status ValidateDurations(absl::Duration receipt_timeout, absl::Duration poll_interval) {
  if (receipt_timeout <= absl::ZeroDuration() || poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("receipt_timeout and poll_interval must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<evm::RpcClient>> MakeRpc(const std::string& url,
                                                        evm::RpcOptions rpc) {
  if (url.empty()) return absl::InvalidArgumentError("evm ledger: no RPC URL");
  rpc.url = url;
  ASSIGN_OR_RETURN(std::unique_ptr<evm::RpcClient> client, evm::RpcClient::MakeHttp(rpc));
  return std::shared_ptr<evm::RpcClient>(std::move(client));
}

absl::Status CheckChainId(evm::EthClient& eth, uint64_t chain_id) {
  ASSIGN_OR_RETURN(uint64_t actual, eth.ChainId());
  if (actual != chain_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the chain at ", eth.rpc().url(), " has chain id ", actual, ", configured ", chain_id));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LedgerClient>> OpenEvmLedger(const EvmLedgerOptions& options) {
  RETURN_IF_ERROR(ValidateDurations(options.receipt_timeout, options.poll_interval));
  std::shared_ptr<evm::RpcClient> rpc = options.rpc_client;
  if (rpc == nullptr) {
    ASSIGN_OR_RETURN(rpc, MakeRpc(options.rpc_url, options.rpc));
  }
  std::set<Address> seen;
  for (const crypto::PrivateKey& key : options.signers) {
    if (!seen.insert(key.address()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("evm ledger: signer ", Hex(key.address()), " is listed twice"));
    }
  }
  auto eth = std::make_shared<evm::EthClient>(rpc);
  RETURN_IF_ERROR(CheckChainId(*eth, options.chain_id));
  ASSIGN_OR_RETURN(std::vector<uint8_t> code, eth->GetCode(options.contract, "latest"));
  if (code.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no contract at ", Hex(options.contract), " on the chain at ", rpc->url()));
  }
  ASSIGN_OR_RETURN(
      std::unique_ptr<evm_backend::TxJournal> journal,
      evm_backend::TxJournal::Open(options.journal_path, options.chain_id, options.contract));
  evm_backend::SenderOptions sender_options;
  sender_options.chain_id = options.chain_id;
  sender_options.contract = options.contract;
  sender_options.receipt_timeout = options.receipt_timeout;
  sender_options.poll_interval = options.poll_interval;
  sender_options.confirmations = options.confirmations;
  auto sender = std::make_unique<TxSender>(eth, std::move(journal), sender_options);
  for (const crypto::PrivateKey& key : options.signers) {
    sender->AddKey(key.Clone());
  }
  // Finish what a previous run left: the same bytes are re-sent, nothing is signed anew.
  if (absl::Status recovered = sender->Recover(); !recovered.ok()) {
    if (absl::IsAborted(recovered) || absl::IsDataLoss(recovered) ||
        absl::IsFailedPrecondition(recovered)) {
      return recovered;  // the journal itself is unusable
    }
    GetLogger("ledger")->warn(
        "evm ledger: journaled transactions still unfinished ({}); the next call of their "
        "signer finishes them",
        recovered.ToString());
  }
  std::optional<Address> default_signer;
  if (!options.signers.empty()) default_signer = options.signers.front().address();
  auto ledger = std::make_unique<EvmLedger>(eth, std::move(sender), options, default_signer);
  // The contract answers as ours (and the parameters are cached for settlement).
  ASSIGN_OR_RETURN(Params params, ledger->GetParams());
  if (params.domain.chain_id != options.chain_id) {
    return absl::FailedPreconditionError(absl::StrCat("the contract at ", Hex(options.contract),
                                                      " reports chain id ", params.domain.chain_id,
                                                      ", configured ", options.chain_id));
  }
  return std::unique_ptr<LedgerClient>(std::move(ledger));
}

bool HasEmbeddedEvmLedgerArtifact() { return !evm_backend::AtomaLedgerBytecodeHex().empty(); }

absl::StatusOr<Address> DeployEvmLedger(const std::string& rpc_url, uint64_t chain_id,
                                        const crypto::PrivateKey& deployer,
                                        const EvmDeployParams& params,
                                        const EvmDeployOptions& options) {
  if (!HasEmbeddedEvmLedgerArtifact()) {
    return absl::FailedPreconditionError(
        "this build embeds no contract bytecode: contracts/build/AtomaLedger.json was missing "
        "when it was configured (build the contract, then re-run cmake)");
  }
  RETURN_IF_ERROR(ValidateDurations(options.receipt_timeout, options.poll_interval));
  ASSIGN_OR_RETURN(std::vector<uint8_t> init_code,
                   evm::FromHex(evm_backend::AtomaLedgerBytecodeHex()));
  ASSIGN_OR_RETURN(std::vector<evm::AbiType> types,
                   evm::ParseTypeList("uint64,uint64,uint64,uint256,uint64,uint64"));
  ASSIGN_OR_RETURN(std::vector<uint8_t> args,
                   evm::AbiEncode(types, {AbiValue::Uint(Amount(params.unbonding_epochs)),
                                          AbiValue::Uint(Amount(params.epoch_length_s)),
                                          AbiValue::Uint(Amount(params.min_epoch_spacing_s)),
                                          AbiValue::Uint(params.fee_per_token),
                                          AbiValue::Uint(Amount(params.slash_bps)),
                                          AbiValue::Uint(Amount(params.reporter_share_bps))}));
  init_code.insert(init_code.end(), args.begin(), args.end());

  ASSIGN_OR_RETURN(std::shared_ptr<evm::RpcClient> rpc, MakeRpc(rpc_url, options.rpc));
  evm::EthClient eth(rpc);
  RETURN_IF_ERROR(CheckChainId(eth, chain_id));
  evm::CallRequest call;
  call.from = deployer.address();
  call.data = init_code;
  // The constructor's revert ("INVALID_ARGUMENT: ...") is the answer; nothing is sent.
  RETURN_IF_ERROR(evm_backend::MapCallError(eth.Call(call, "pending").status()));
  absl::StatusOr<uint64_t> gas = eth.EstimateGas(call);
  if (!gas.ok()) return evm_backend::MapCallError(gas.status());
  ASSIGN_OR_RETURN(evm::FeeSuggestion fees, eth.SuggestFees());
  evm::Eip1559Tx tx;
  tx.chain_id = chain_id;
  ASSIGN_OR_RETURN(tx.nonce, eth.GetTransactionCount(deployer.address(), "pending"));
  tx.max_priority_fee_per_gas = fees.max_priority_fee_per_gas;
  tx.max_fee_per_gas = fees.max_fee_per_gas;
  tx.gas_limit = evm_backend::WithGasMargin(*gas);
  tx.data = std::move(init_code);
  const std::vector<uint8_t> raw = evm::SignTx(tx, deployer);
  const Hash256 hash = evm::TxHash(raw);
  RETURN_IF_ERROR(evm_backend::MapCallError(eth.SendRawTransaction(raw).status()));
  ASSIGN_OR_RETURN(evm::Receipt receipt,
                   evm_backend::WaitForReceipt(eth, hash, raw, "deploy AtomaLedger",
                                               options.receipt_timeout, options.poll_interval));
  if (!receipt.status) {
    return absl::AbortedError(absl::StrCat("the deployment transaction ", HashHex(hash),
                                           " reverted in block ", receipt.block_number,
                                           " (gas used ", receipt.gas_used, ")"));
  }
  const Address address =
      receipt.contract_address.value_or(evm::ContractAddress(deployer.address(), tx.nonce));
  GetLogger("ledger")->info("deployed AtomaLedger at {} (chain {}, block {}, gas {})", Hex(address),
                            chain_id, receipt.block_number, receipt.gas_used);
  return address;
}

}  // namespace atoma::ledger
