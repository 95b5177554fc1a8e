// Signed envelopes of atoma.v1.Peer messages (peer.proto): the body travels as the bytes that were
// signed, so the receiver checks the signature over exactly what it received before parsing it.
//   signature over H("atoma/peer", chain_id, ledger, body)
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"
#include "atoma/v1/peer.pb.h"

namespace atoma::peer {

crypto::Hash256 EnvelopeDigest(const consensus::Domain& domain, std::string_view body);

// Serializes `message` (method and sent_unix_ms must be set) and signs it.
v1::SignedMessage Seal(const v1::PeerMessage& message, const consensus::Domain& domain,
                       const crypto::PrivateKey& key);

struct Opened {
  crypto::Address sender{};
  v1::PeerMessage message;
};

// Checks sizes, the signature (it must recover to `sender`), the method, and that sent_unix_ms is
// within `replay_window_ms` of `now_unix_ms`. Errors: INVALID_ARGUMENT (malformed: sizes, an
// unparsable body) with reason "malformed", PERMISSION_DENIED "bad_signature",
// INVALID_ARGUMENT "wrong_method", DEADLINE_EXCEEDED "stale_message". `*reason` gets the short
// reason key used in PeerStats::rejected.
absl::StatusOr<Opened> Open(const v1::SignedMessage& signed_message,
                            const consensus::Domain& domain, std::string_view method,
                            int64_t now_unix_ms, int64_t replay_window_ms, std::string* reason);

// The untrusted parts of an ExecuteCall, decoded strictly: the canonical request (no trailing
// bytes), a 65-byte client signature, at most kMaxCommitteeSize 20-byte addresses.
// INVALID_ARGUMENT naming the field otherwise.
struct DecodedExecute {
  consensus::ConsensusRequest request;
  crypto::Signature client_signature{};
  std::vector<crypto::Address> committee;
};
absl::StatusOr<DecodedExecute> DecodeExecuteCall(const v1::ExecuteCall& call);

}  // namespace atoma::peer
