#include "codec.h"

#include <array>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/consensus/encoding.h"
#include "atoma/consensus/request.h"
#include "atoma/evm/abi.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/rpc.h"

namespace atoma::ledger::evm_backend {
namespace {

// absl (Debian's build) has its own string_view; std::string_view needs this to reach StrCat.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

void PutU8(std::vector<uint8_t>& out, uint8_t v) { out.push_back(v); }
void PutU16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}
void PutU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}
template <size_t N>
void PutRaw(std::vector<uint8_t>& out, const std::array<uint8_t, N>& bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
void PutRaw(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// u32 length ‖ enc(request).
void PutRequest(std::vector<uint8_t>& out, const consensus::ConsensusRequest& request) {
  consensus::Encoder enc;
  consensus::EncodeRequest(request, enc);
  PutU32(out, static_cast<uint32_t>(enc.bytes().size()));
  PutRaw(out, enc.bytes());
}

// 32 p ‖ 65 signature: one slot of a settle item.
void PutSlot(std::vector<uint8_t>& out, const consensus::Attestation& a) {
  PutRaw(out, a.proof);
  PutRaw(out, a.signature);
}

}  // namespace

std::vector<uint8_t> AttestationBody(const consensus::Attestation& attestation) {
  std::vector<uint8_t> encoded = consensus::EncodeAttestation(attestation);
  encoded.erase(encoded.begin());  // the version byte
  return encoded;
}

namespace {

// An item of either batch form; `put_slot` writes one slot or validator entry.
template <typename PutSlotFn>
std::vector<uint8_t> EncodeItem(const SettlementItem& item, PutSlotFn put_slot) {
  const consensus::Certificate& cert = item.certificate;
  const consensus::Attestation& first = cert.attestations.front();
  std::vector<uint8_t> out;
  PutU8(out, item.xv.has_value() ? 2 : 1);
  PutRequest(out, cert.request);
  PutRaw(out, cert.client_signature);
  PutRaw(out, first.echelon_id);
  PutRaw(out, cert.commitment);
  PutU64(out, first.completion_tokens);
  PutRaw(out, first.merkle_root);
  for (const consensus::Attestation& a : cert.attestations) put_slot(out, a);
  if (item.xv.has_value()) {
    if (item.xv->salt.has_value()) {
      PutU8(out, 1);
      PutRaw(out, *item.xv->salt);
    } else {
      PutU8(out, 0);
    }
    PutU8(out, static_cast<uint8_t>(item.xv->validators.size()));
    for (const consensus::Attestation& v : item.xv->validators) put_slot(out, v);
  }
  return out;
}

}  // namespace

std::vector<uint8_t> EncodeSettleItem(const SettlementItem& item) {
  return EncodeItem(item, PutSlot);
}

std::vector<CosignSlot> CosignSlots(const SettlementItem& item) {
  std::vector<CosignSlot> out;
  auto add = [&out](const consensus::Attestation& a) {
    out.push_back({a.member, {consensus::AttestationDigest(a), a.signature}});
  };
  for (const consensus::Attestation& a : item.certificate.attestations) add(a);
  if (item.xv.has_value()) {
    for (const consensus::Attestation& v : item.xv->validators) add(v);
  }
  return out;
}

std::vector<uint8_t> EncodeCosignedItem(
    const SettlementItem& item, const std::function<uint8_t(const Address&)>& member_index) {
  return EncodeItem(item,
                    [&member_index](std::vector<uint8_t>& out, const consensus::Attestation& a) {
                      PutRaw(out, a.proof);
                      PutU8(out, member_index(a.member));
                    });
}

std::vector<uint8_t> EncodeCosignedBatch(std::span<const CosignedMember> table,
                                         std::span<const std::vector<uint8_t>> items) {
  std::vector<uint8_t> out;
  PutU16(out, static_cast<uint16_t>(items.size()));
  PutU8(out, static_cast<uint8_t>(table.size()));
  for (const CosignedMember& m : table) {
    PutRaw(out, m.address);
    PutRaw(out, m.cosignature);
  }
  for (const std::vector<uint8_t>& item : items) PutRaw(out, item);
  return out;
}

std::vector<uint8_t> EncodeSettleBatch(std::span<const std::vector<uint8_t>> items) {
  std::vector<uint8_t> out;
  PutU16(out, static_cast<uint16_t>(items.size()));
  for (const std::vector<uint8_t>& item : items) PutRaw(out, item);
  return out;
}

absl::StatusOr<std::vector<consensus::ConsensusRequest>> DecodeSettleBatchRequests(
    std::span<const uint8_t> batch, bool cosigned) {
  const size_t header = cosigned ? 3 : 2;
  if (batch.size() < header) return absl::InvalidArgumentError("settle batch without its count");
  const uint16_t count = static_cast<uint16_t>((batch[0] << 8) | batch[1]);
  const size_t table = cosigned ? batch[2] * size_t{20 + 65} : 0;
  if (batch.size() < header + table) {
    return absl::InvalidArgumentError("co-signed batch cut short in its member table");
  }
  consensus::Decoder items(batch.subspan(header + table));
  std::vector<consensus::ConsensusRequest> requests;
  const size_t kSlot = cosigned ? 32 + 1 : 32 + 65;
  constexpr size_t kShared = 65 + 32 + 32 + 8 + 32;  // client signature .. Merkle root
  auto skip = [&items](size_t n) -> absl::Status {
    if (items.remaining() < n) return absl::InvalidArgumentError("item cut short");
    std::vector<uint8_t> sink(n);
    return items.Raw("item bytes", sink);
  };
  for (uint16_t i = 0; i < count; ++i) {
    const absl::Status item = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(uint8_t kind, items.U8("kind"));
      ASSIGN_OR_RETURN(uint32_t length, items.U32("request length"));
      if (items.remaining() < length) return absl::InvalidArgumentError("request cut short");
      std::vector<uint8_t> bytes(length);
      RETURN_IF_ERROR(items.Raw("request", bytes));
      consensus::Decoder rd(bytes);
      ASSIGN_OR_RETURN(consensus::ConsensusRequest request, consensus::DecodeRequest(rd));
      RETURN_IF_ERROR(skip(kShared));
      if (kind == 1) {
        RETURN_IF_ERROR(skip(consensus::CommitteeSize(request.security) * kSlot));
      } else if (kind == 2) {
        RETURN_IF_ERROR(skip(kSlot));
        ASSIGN_OR_RETURN(uint8_t salt, items.U8("salt_present"));
        if (salt == 1) RETURN_IF_ERROR(skip(32));
        ASSIGN_OR_RETURN(uint8_t validators, items.U8("validator count"));
        RETURN_IF_ERROR(skip(validators * kSlot));
      } else {
        return absl::InvalidArgumentError("unknown item kind");
      }
      requests.push_back(std::move(request));
      return absl::OkStatus();
    }();
    if (!item.ok()) break;
  }
  return requests;
}

absl::StatusOr<std::vector<uint8_t>> EncodeDisputeEvidence(const DisputeEvidence& ev) {
  if (ev.committee.size() > 255 || ev.member_attestations.size() > 255 ||
      ev.referee_attestations.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("dispute evidence too large for the contract: ", ev.committee.size(),
                     " members, ", ev.member_attestations.size(), " member and ",
                     ev.referee_attestations.size(), " referee attestations (at most 255 each)"));
  }
  std::vector<uint8_t> out;
  PutRequest(out, ev.request);
  PutRaw(out, ev.client_signature);
  PutU8(out, static_cast<uint8_t>(ev.committee.size()));
  for (const Address& member : ev.committee) PutRaw(out, member);
  PutU8(out, static_cast<uint8_t>(ev.member_attestations.size()));
  for (const consensus::Attestation& a : ev.member_attestations) PutRaw(out, AttestationBody(a));
  PutU8(out, static_cast<uint8_t>(ev.referee_attestations.size()));
  for (const consensus::Attestation& a : ev.referee_attestations) PutRaw(out, AttestationBody(a));
  if (ev.output.has_value()) {
    PutU8(out, 1);
    consensus::Encoder enc;
    consensus::EncodeOutput(*ev.output, enc);
    PutRaw(out, enc.bytes());
  } else {
    PutU8(out, 0);
  }
  return out;
}

std::string ChecksumAddresses(std::string_view text) {
  auto is_hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    // "0x" + exactly 40 hex digits, not inside a longer word (a 32-byte hash has 64).
    const bool starts =
        text.compare(i, 2, "0x") == 0 && (i == 0 || !(is_hex(text[i - 1]) || text[i - 1] == 'x'));
    if (starts) {
      size_t end = i + 2;
      while (end < text.size() && is_hex(text[end])) ++end;
      if (end - i - 2 == 40) {
        absl::StatusOr<crypto::Address> address =
            evm::ParseAddressHex(std::string(text.substr(i, 42)));
        if (address.ok()) {
          out += crypto::AddressToString(*address);
          i = end;
          continue;
        }
      }
      out.append(text.substr(i, end - i));
      i = end;
      continue;
    }
    out.push_back(text[i++]);
  }
  return out;
}

absl::Status StatusFromRevertReason(std::string_view reason) {
  const size_t colon = reason.find(": ");
  if (colon != std::string_view::npos) {
    const std::string_view name = reason.substr(0, colon);
    // Every code but OK: a reason naming OK would be a contract bug, treated as unknown.
    for (int c = 1; c <= static_cast<int>(absl::StatusCode::kUnauthenticated); ++c) {
      const auto code = static_cast<absl::StatusCode>(c);
      if (absl::StatusCodeToString(code) == Sv(name)) {
        return absl::Status(code, ChecksumAddresses(reason.substr(colon + 2)));
      }
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("contract reverted: ", ChecksumAddresses(reason)));
}

absl::Status MapCallError(const absl::Status& status) {
  if (status.ok() || !evm::IsRevert(status)) return status;
  const std::optional<std::vector<uint8_t>> data = evm::RevertData(status);
  if (data.has_value()) {
    if (std::optional<std::string> message = evm::RevertErrorMessage(*data)) {
      return StatusFromRevertReason(*message);
    }
    return absl::FailedPreconditionError(
        absl::StrCat("contract reverted: ", evm::DecodeRevertReason(*data)));
  }
  // A node that puts the reason only in the message: "execution reverted: CODE: reason".
  if (std::optional<evm::RpcError> error = evm::RpcErrorOf(status)) {
    constexpr std::string_view kPrefix = "execution reverted: ";
    std::string_view message = error->message;
    if (absl::StartsWith(Sv(message), Sv(kPrefix))) {
      return StatusFromRevertReason(message.substr(kPrefix.size()));
    }
    return absl::FailedPreconditionError(absl::StrCat("contract reverted: ", error->message));
  }
  return status;
}

RejectedItem MapRejectCode(uint8_t code) {
  using consensus::CertificateCheck;
  auto make = [code](absl::StatusCode status, CertificateCheck check, std::string_view what) {
    return RejectedItem{
        absl::Status(status, absl::StrCat("rejected on chain: code ", code, " (", Sv(what), ")")),
        check};
  };
  switch (code) {
    case 1:
      return make(absl::StatusCode::kInvalidArgument, CertificateCheck::kMalformed,
                  "malformed item");
    case 2:
      return make(absl::StatusCode::kNotFound, CertificateCheck::kValid,
                  "the request's epoch has not started");
    case 3:
      return make(absl::StatusCode::kPermissionDenied, CertificateCheck::kBadClientSignature,
                  "the client signature does not authorize the request");
    case 4:
      return make(absl::StatusCode::kPermissionDenied, CertificateCheck::kWrongCommittee,
                  "the signers are not a committee of the request");
    case 5:
      return make(absl::StatusCode::kPermissionDenied, CertificateCheck::kConflictingCommitments,
                  "C is not the commitment of the members' proofs");
    case 6:
      return make(absl::StatusCode::kAlreadyExists, CertificateCheck::kValid,
                  "the client's nonce was already settled");
    case 7:
      return make(absl::StatusCode::kFailedPrecondition, CertificateCheck::kValid,
                  "fee exceeds max_fee");
    case 8:
      return make(absl::StatusCode::kFailedPrecondition, CertificateCheck::kValid,
                  "insufficient escrow balance");
    case 9:
      return make(absl::StatusCode::kPermissionDenied, CertificateCheck::kBadSalt,
                  "the salt does not hash to the request's salt_hash");
    case 10:
      return make(absl::StatusCode::kPermissionDenied, CertificateCheck::kMissingValidators,
                  "validators missing or out of place");
    default:
      return make(absl::StatusCode::kInternal, CertificateCheck::kValid, "unknown code");
  }
}

}  // namespace atoma::ledger::evm_backend
