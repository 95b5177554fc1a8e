// Proto ⇄ canonical request mapping of verified requests (DESIGN §4.3): the ONE place that turns
// a v1::GenerateRequest into a consensus::ConsensusRequest and back. The client (atoma-cli) signs
// the id of the struct it built and sends ToGenerateRequest of it; the server rebuilds the struct
// with ConsensusRequestFromProto. Both sides use these functions, so a client and a node always
// agree on the request id, and with it on the committee and on what the client signed.
//
// Real-valued parameters (temperature, top_p, cross-validation probability) travel in the proto
// as doubles and in the canonical request as millionths rounded to nearest (ToMicro). A value the
// client built from millionths survives the double round trip exactly (micro / 1e6 * 1e6 rounds
// back to micro for every value this API accepts).
//
// Pure functions over plain data; thread-safe. No gRPC calls, no engine.
//
// Error contract: INVALID_ARGUMENT naming the proto field (e.g. "sampling.top_p: ...") for a
// malformed request; PERMISSION_DENIED for a client signature that does not authorize it.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/v1/inference.pb.h"

namespace atoma::api {

// value × 10^6 rounded to nearest (halves away from zero); INVALID_ARGUMENT naming `field` for
// NaN, a negative value, or a value above 10^12 (infinity included).
absl::StatusOr<uint64_t> ToMicro(double value, std::string_view field);

// Client side. Fills: model = model_id; prompt = token_ids; sampling (temperature = micro / 1e6,
// top_p set only when != 10^6, top_k, seed); max_tokens; stop; stop_token_ids; ignore_eos;
// security (sampling: committee_size = n; cross_validation: probability = p_micro / 1e6,
// validators = k, salt_hash); authorization (address, signature, nonce, max_fee as minimal
// big-endian bytes (one zero byte for zero), epoch).
// Preconditions (the proto's int32 fields): token ids, top_k and max_tokens at most 2^31 - 1;
// security not none (a `none` request has no canonical form on the wire: it leaves security and
// authorization unset).
v1::GenerateRequest ToGenerateRequest(const consensus::ConsensusRequest& request,
                                      std::string_view model_id,
                                      const crypto::Signature& client_signature);

struct ParsedConsensusRequest {
  consensus::ConsensusRequest request;
  crypto::Signature client_signature{};
  crypto::Hash256 request_id{};  // RequestId(request)
};

// Server side. `model_digest` is the serving model's digest (proto.model is resolved by the
// caller). INVALID_ARGUMENT naming the field: security not sampling / cross_validation,
// authorization missing, client_address not 20 bytes, signature not 65 bytes, max_fee empty or
// over 32 bytes, prompt not token_ids or empty or a negative id, max_tokens unset or <= 0,
// temperature / top_p / probability out of range (top_p in (0, 1] and not rounding to 0;
// probability in [0, 1]), top_k negative, committee size 0 or > consensus::kMaxCommitteeSize,
// validators > kMaxCommitteeSize, salt_hash not 32 bytes, a stop string empty, stop_token_ids
// negative, or lists past the canonical decoder's bounds (kMaxPromptTokens, kMaxStopStrings,
// kMaxStopStringBytes, kMaxStopTokenIds). Does not check the signature (CheckClientAuthorization)
// nor the model's own limits (vocabulary, context length: the engine request does).
absl::StatusOr<ParsedConsensusRequest> ConsensusRequestFromProto(
    const v1::GenerateRequest& proto, const crypto::Hash256& model_digest);

// PERMISSION_DENIED unless client_signature recovers to request.client over
// consensus::ClientRequestDigest(domain, request_id).
absl::Status CheckClientAuthorization(const ParsedConsensusRequest& parsed,
                                      const consensus::Domain& domain);

}  // namespace atoma::api
