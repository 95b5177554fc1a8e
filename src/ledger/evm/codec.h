// Internal to the EVM ledger backend: the contract's packed calldata (settle, settleCosigned,
// settleDispute, reportEquivocation; docs/ledger_evm.md), the mapping of its revert reasons "CODE:
// reason" and SettlementRejected codes back to absl statuses, and the event signatures it emits.
//
// Pure functions over values; thread-safe. Encoders never fail on verified input; the few that can
// see unbounded input return INVALID_ARGUMENT.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/cosign.h"
#include "atoma/ledger/ledger.h"

namespace atoma::ledger::evm_backend {

// The 297-byte attestation body the contract reads: consensus::EncodeAttestation without its
// version byte.
std::vector<uint8_t> AttestationBody(const consensus::Attestation& attestation);

// One item of settle(bytes batch). Precondition: the item passed VerifyCertificate (or
// VerifyXvCertificate), so every attestation shares echelon, C, completion tokens and Merkle root
// with the first one, which is what the format packs once.
std::vector<uint8_t> EncodeSettleItem(const SettlementItem& item);
// u16 count ‖ items. Precondition: items.size() <= LedgerClient::kMaxSettlementBatch.
std::vector<uint8_t> EncodeSettleBatch(std::span<const std::vector<uint8_t>> items);

// settleCosigned (docs/ledger_evm.md "Co-signed batches").
// A slot or validator entry of an item in the contract's chain order (slots, then validators):
// the member it names and what that member co-signs for it.
struct CosignSlot {
  Address member{};
  consensus::CosignEntry entry;
};
std::vector<CosignSlot> CosignSlots(const SettlementItem& item);
// An item as EncodeSettleItem's, each slot and validator entry as p ‖ u8 member_index(member).
std::vector<uint8_t> EncodeCosignedItem(const SettlementItem& item,
                                        const std::function<uint8_t(const Address&)>& member_index);
// A member table row.
struct CosignedMember {
  Address address{};
  crypto::Signature cosignature{};
};
// u16 count ‖ u8 members ‖ (address ‖ co-signature) per member ‖ items. Preconditions: at most
// 255 members, items.size() <= LedgerClient::kMaxSettlementBatch.
std::vector<uint8_t> EncodeCosignedBatch(std::span<const CosignedMember> table,
                                         std::span<const std::vector<uint8_t>> items);

// The requests of a settle (or, `cosigned`, settleCosigned) batch, in item order (what
// ListSettlements reads back from settle transactions: the Settled event does not carry the
// request's epoch). Stops at the first item it cannot read and returns the requests before it;
// INVALID_ARGUMENT when not even the count (and member table) is there.
absl::StatusOr<std::vector<consensus::ConsensusRequest>> DecodeSettleBatchRequests(
    std::span<const uint8_t> batch, bool cosigned = false);

// settleDispute(bytes evidence). INVALID_ARGUMENT when a count does not fit its u8 (the contract
// could not be told; LedgerClient::SettleDispute bounds them far below anyway).
absl::StatusOr<std::vector<uint8_t>> EncodeDisputeEvidence(const DisputeEvidence& evidence);

// Rewrites every "0x" + 40 hex digits in `text` (the contract writes lowercase) to its EIP-55
// checksummed form, the way the embedded backend's messages name addresses.
std::string ChecksumAddresses(std::string_view text);

// "CODE: reason" → that status code with `reason` as the message; a reason without a known
// status-code prefix → FAILED_PRECONDITION with the whole reason. Addresses in the reason are
// checksummed (ChecksumAddresses).
absl::Status StatusFromRevertReason(std::string_view reason);
// The status of an eth_call / eth_estimateGas / receipt replay that failed: a revert becomes
// StatusFromRevertReason(its Error(string) message) (other revert data: FAILED_PRECONDITION with
// evm::DecodeRevertReason); any other error is returned unchanged.
absl::Status MapCallError(const absl::Status& status);

// What a SettlementRejected(index, requestId, code) means for the item (docs/ledger_evm.md's
// table): the status the embedded backend returns for the same rule, and the CertificateCheck.
// The message says "rejected on chain: code N (...)".
struct RejectedItem {
  absl::Status status;
  consensus::CertificateCheck check = consensus::CertificateCheck::kValid;
};
RejectedItem MapRejectCode(uint8_t code);

// Event signatures (topic 0 is evm::EventTopic of these).
inline constexpr std::string_view kSettledEvent = "Settled(uint16,bytes32,address,uint64,uint256)";
inline constexpr std::string_view kSettlementRejectedEvent =
    "SettlementRejected(uint16,bytes32,uint8)";
inline constexpr std::string_view kSlashedEvent =
    "Slashed(address,bytes32,bytes32,uint8,address,uint256,uint256)";
inline constexpr std::string_view kDisputeSettledEvent =
    "DisputeSettled(bytes32,bytes32,uint256,uint256,string,address[],address[])";
inline constexpr std::string_view kEpochAdvancedEvent = "EpochAdvanced(uint64,bytes32)";

}  // namespace atoma::ledger::evm_backend
