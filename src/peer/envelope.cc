#include "envelope.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "atoma/consensus/encoding.h"

namespace atoma::peer {

crypto::Hash256 EnvelopeDigest(const consensus::Domain& domain, std::string_view body) {
  consensus::Encoder e;
  e.U64(domain.chain_id).Addr(domain.ledger).Bytes(body);
  return consensus::TaggedHash("atoma/peer", e);
}

v1::SignedMessage Seal(const v1::PeerMessage& message, const consensus::Domain& domain,
                       const crypto::PrivateKey& key) {
  v1::SignedMessage out;
  message.SerializeToString(out.mutable_body());
  const crypto::Signature sig = key.Sign(EnvelopeDigest(domain, out.body()));
  out.set_sender(key.address().data(), key.address().size());
  out.set_signature(sig.data(), sig.size());
  return out;
}

absl::StatusOr<Opened> Open(const v1::SignedMessage& signed_message,
                            const consensus::Domain& domain, std::string_view method,
                            int64_t now_unix_ms, int64_t replay_window_ms, std::string* reason) {
  Opened out;
  crypto::Signature sig{};
  if (signed_message.sender().size() != out.sender.size() ||
      signed_message.signature().size() != sig.size()) {
    *reason = "malformed";
    return absl::InvalidArgumentError("peer message: sender must be 20 bytes, signature 65");
  }
  std::memcpy(out.sender.data(), signed_message.sender().data(), out.sender.size());
  std::memcpy(sig.data(), signed_message.signature().data(), sig.size());
  if (!crypto::VerifySignature(EnvelopeDigest(domain, signed_message.body()), sig, out.sender)) {
    *reason = "bad_signature";
    return absl::PermissionDeniedError(
        "peer message: the signature does not recover to the sender (or is for another ledger)");
  }
  if (!out.message.ParseFromString(signed_message.body())) {
    *reason = "malformed";
    return absl::InvalidArgumentError("peer message: the body does not parse");
  }
  if (out.message.method() != method) {
    *reason = "wrong_method";
    return absl::InvalidArgumentError(absl::StrCat("peer message: signed for method '",
                                                   out.message.method(), "', not '",
                                                   std::string(method), "'"));
  }
  const int64_t sent =
      static_cast<int64_t>(std::min<uint64_t>(out.message.sent_unix_ms(), uint64_t{1} << 62));
  if (sent < now_unix_ms - replay_window_ms || sent > now_unix_ms + replay_window_ms) {
    *reason = "stale_message";
    return absl::DeadlineExceededError(
        absl::StrCat("peer message: sent at ", sent, " ms, outside the replay window of ",
                     replay_window_ms, " ms around this node's clock ", now_unix_ms));
  }
  return out;
}

absl::StatusOr<DecodedExecute> DecodeExecuteCall(const v1::ExecuteCall& call) {
  DecodedExecute out;
  consensus::Decoder d(
      std::span(reinterpret_cast<const uint8_t*>(call.request().data()), call.request().size()));
  auto request = consensus::DecodeRequest(d);
  if (!request.ok()) return request.status();
  if (absl::Status end = d.ExpectEnd("Execute.request"); !end.ok()) return end;
  out.request = *std::move(request);
  if (call.client_signature().size() != out.client_signature.size()) {
    return absl::InvalidArgumentError("Execute.client_signature: must be 65 bytes");
  }
  std::memcpy(out.client_signature.data(), call.client_signature().data(), 65);
  if (call.committee_size() > static_cast<int>(consensus::kMaxCommitteeSize)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Execute.committee: more than ", consensus::kMaxCommitteeSize, " members"));
  }
  for (const std::string& member : call.committee()) {
    crypto::Address a{};
    if (member.size() != a.size()) {
      return absl::InvalidArgumentError("Execute.committee: addresses must be 20 bytes");
    }
    std::memcpy(a.data(), member.data(), a.size());
    out.committee.push_back(a);
  }
  return out;
}

}  // namespace atoma::peer
