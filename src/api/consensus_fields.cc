#include "consensus_fields.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoma/common/status.h"
#include "atoma/common/uint256.h"

namespace atoma::api {
namespace {

constexpr uint64_t kMicro = 1'000'000;
// Above this a real-valued parameter means nothing (and its millionths still fit a uint64 with
// room to spare).
constexpr double kMaxRealParam = 1e12;

// Debian's abseil has its own absl::string_view, which does not convert from std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status FieldError(std::string_view field, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(field), ": ", Sv(message)));
}

double FromMicro(uint64_t micro) { return static_cast<double>(micro) / 1e6; }

// Token ids of a repeated int32 field: no negative ids, at most `max_count`.
absl::StatusOr<std::vector<uint32_t>> TokenIds(const google::protobuf::RepeatedField<int32_t>& ids,
                                               std::string_view field, uint32_t max_count) {
  if (static_cast<uint64_t>(ids.size()) > max_count) {
    return FieldError(field, absl::StrCat(ids.size(), " ids, at most ", max_count));
  }
  std::vector<uint32_t> out;
  out.reserve(ids.size());
  for (int i = 0; i < ids.size(); ++i) {
    if (ids.Get(i) < 0) {
      return FieldError(absl::StrCat(Sv(field), "[", i, "]"),
                        absl::StrCat("negative token id ", ids.Get(i)));
    }
    out.push_back(static_cast<uint32_t>(ids.Get(i)));
  }
  return out;
}

absl::StatusOr<consensus::Security> SecurityFromProto(const v1::GenerateRequest& proto) {
  consensus::Security s;
  switch (proto.security().level_case()) {
    case v1::Security::kSampling: {
      s.mode = consensus::SecurityMode::kSampling;
      s.n = proto.security().sampling().committee_size();
      if (s.n == 0 || s.n > consensus::kMaxCommitteeSize) {
        return FieldError(
            "security.sampling.committee_size",
            absl::StrCat("must be between 1 and ", consensus::kMaxCommitteeSize, ", got ", s.n));
      }
      return s;
    }
    case v1::Security::kCrossValidation: {
      const v1::Security::CrossValidation& xv = proto.security().cross_validation();
      s.mode = consensus::SecurityMode::kCrossValidation;
      ASSIGN_OR_RETURN(s.p_micro,
                       ToMicro(xv.probability(), "security.cross_validation.probability"));
      if (s.p_micro > kMicro) {
        return FieldError("security.cross_validation.probability",
                          absl::StrCat(xv.probability(), " is outside [0, 1]"));
      }
      s.k = xv.validators();
      if (s.k > consensus::kMaxCommitteeSize) {
        return FieldError("security.cross_validation.validators",
                          absl::StrCat("at most ", consensus::kMaxCommitteeSize, ", got ", s.k));
      }
      if (xv.salt_hash().size() != s.salt_hash.size()) {
        return FieldError("security.cross_validation.salt_hash",
                          absl::StrCat("must be 32 bytes, got ", xv.salt_hash().size()));
      }
      std::copy(xv.salt_hash().begin(), xv.salt_hash().end(), s.salt_hash.begin());
      return s;
    }
    case v1::Security::kNone:
    case v1::Security::LEVEL_NOT_SET:
      break;
  }
  return FieldError("security", "a verified request needs sampling or cross_validation");
}

}  // namespace

absl::StatusOr<uint64_t> ToMicro(double value, std::string_view field) {
  // Written so that NaN fails the first test (every comparison with NaN is false).
  if (!(value >= 0.0)) {
    return FieldError(field, absl::StrCat(value, " must be a number >= 0"));
  }
  if (value > kMaxRealParam) {
    return FieldError(field, absl::StrCat(value, " is above 10^12"));
  }
  return static_cast<uint64_t>(std::round(value * 1e6));
}

v1::GenerateRequest ToGenerateRequest(const consensus::ConsensusRequest& request,
                                      std::string_view model_id,
                                      const crypto::Signature& client_signature) {
  v1::GenerateRequest out;
  out.set_model(std::string(model_id));
  auto* ids = out.mutable_token_ids()->mutable_ids();
  ids->Reserve(static_cast<int>(request.prompt_token_ids.size()));
  for (uint32_t id : request.prompt_token_ids) ids->Add(static_cast<int32_t>(id));

  v1::SamplingParams* sampling = out.mutable_sampling();
  sampling->set_temperature(FromMicro(request.temperature_micro));
  // Unset top_p means 1.0 on the server; leaving it unset keeps the proto what a plain client
  // would send for the same request.
  if (request.top_p_micro != kMicro) sampling->set_top_p(FromMicro(request.top_p_micro));
  sampling->set_top_k(static_cast<int32_t>(request.top_k));
  sampling->set_seed(request.seed);

  out.set_max_tokens(static_cast<int32_t>(request.max_tokens));
  for (const std::string& s : request.stop_strings) out.add_stop(s);
  for (uint32_t id : request.stop_token_ids) out.add_stop_token_ids(static_cast<int32_t>(id));
  out.set_ignore_eos(request.ignore_eos);

  const consensus::Security& security = request.security;
  switch (security.mode) {
    case consensus::SecurityMode::kSampling:
      out.mutable_security()->mutable_sampling()->set_committee_size(
          static_cast<uint32_t>(security.n));
      break;
    case consensus::SecurityMode::kCrossValidation: {
      auto* xv = out.mutable_security()->mutable_cross_validation();
      xv->set_probability(FromMicro(security.p_micro));
      xv->set_validators(static_cast<uint32_t>(security.k));
      xv->set_salt_hash(std::string(security.salt_hash.begin(), security.salt_hash.end()));
      break;
    }
    case consensus::SecurityMode::kNone:
      out.mutable_security()->mutable_none();
      break;
  }

  v1::ClientAuthorization* auth = out.mutable_authorization();
  auth->set_client_address(std::string(request.client.begin(), request.client.end()));
  auth->set_signature(std::string(client_signature.begin(), client_signature.end()));
  auth->set_nonce(request.client_nonce);
  auth->set_max_fee(request.max_fee.ToMinimalBigEndian());
  auth->set_epoch(request.epoch);
  return out;
}

absl::StatusOr<ParsedConsensusRequest> ConsensusRequestFromProto(
    const v1::GenerateRequest& proto, const crypto::Hash256& model_digest) {
  ParsedConsensusRequest parsed;
  consensus::ConsensusRequest& r = parsed.request;
  r.model_digest = model_digest;

  ASSIGN_OR_RETURN(r.security, SecurityFromProto(proto));

  if (!proto.has_authorization()) {
    return FieldError("authorization", "required for a verified request (the client signs it)");
  }
  const v1::ClientAuthorization& auth = proto.authorization();
  if (auth.client_address().size() != r.client.size()) {
    return FieldError("authorization.client_address",
                      absl::StrCat("must be 20 bytes, got ", auth.client_address().size()));
  }
  std::copy(auth.client_address().begin(), auth.client_address().end(), r.client.begin());
  if (auth.signature().size() != parsed.client_signature.size()) {
    return FieldError("authorization.signature",
                      absl::StrCat("must be 65 bytes, got ", auth.signature().size()));
  }
  std::copy(auth.signature().begin(), auth.signature().end(), parsed.client_signature.begin());
  if (auth.max_fee().empty() || auth.max_fee().size() > 32) {
    return FieldError(
        "authorization.max_fee",
        absl::StrCat("must be 1 to 32 big-endian bytes, got ", auth.max_fee().size()));
  }
  const std::span<const uint8_t> fee_bytes(reinterpret_cast<const uint8_t*>(auth.max_fee().data()),
                                           auth.max_fee().size());
  ASSIGN_OR_RETURN(r.max_fee, Uint256::FromBigEndianBytes(fee_bytes));
  r.client_nonce = auth.nonce();
  r.epoch = auth.epoch();

  if (proto.prompt_case() != v1::GenerateRequest::kTokenIds) {
    return FieldError("token_ids",
                      "a verified request must give its prompt as token ids (see Tokenize): the "
                      "client signs the ids");
  }
  ASSIGN_OR_RETURN(r.prompt_token_ids,
                   TokenIds(proto.token_ids().ids(), "token_ids.ids", consensus::kMaxPromptTokens));
  if (r.prompt_token_ids.empty()) return FieldError("token_ids.ids", "empty prompt");

  const v1::SamplingParams& s = proto.sampling();
  ASSIGN_OR_RETURN(r.temperature_micro, ToMicro(s.temperature(), "sampling.temperature"));
  if (s.has_top_p()) {
    if (!(s.top_p() > 0.0 && s.top_p() <= 1.0)) {
      return FieldError("sampling.top_p", absl::StrCat(s.top_p(), " is outside (0, 1]"));
    }
    ASSIGN_OR_RETURN(r.top_p_micro, ToMicro(s.top_p(), "sampling.top_p"));
    if (r.top_p_micro == 0) {
      return FieldError("sampling.top_p", absl::StrCat(s.top_p(), " rounds to 0 millionths"));
    }
  }
  if (s.top_k() < 0) {
    return FieldError("sampling.top_k", absl::StrCat(s.top_k(), " must be >= 0 (0 = off)"));
  }
  r.top_k = static_cast<uint64_t>(s.top_k());
  r.seed = s.seed();
  r.ignore_eos = proto.ignore_eos();

  if (!proto.has_max_tokens() || proto.max_tokens() <= 0) {
    return FieldError("max_tokens",
                      proto.has_max_tokens()
                          ? absl::StrCat(proto.max_tokens(), " must be > 0")
                          : std::string("required for a verified request (it bounds the fee)"));
  }
  r.max_tokens = static_cast<uint64_t>(proto.max_tokens());

  if (static_cast<uint64_t>(proto.stop_size()) > consensus::kMaxStopStrings) {
    return FieldError(
        "stop", absl::StrCat(proto.stop_size(), " strings, at most ", consensus::kMaxStopStrings));
  }
  for (int i = 0; i < proto.stop_size(); ++i) {
    const std::string& stop = proto.stop(i);
    if (stop.empty()) return FieldError(absl::StrCat("stop[", i, "]"), "empty string");
    if (stop.size() > consensus::kMaxStopStringBytes) {
      return FieldError(
          absl::StrCat("stop[", i, "]"),
          absl::StrCat(stop.size(), " bytes, at most ", consensus::kMaxStopStringBytes));
    }
    r.stop_strings.push_back(stop);
  }
  ASSIGN_OR_RETURN(r.stop_token_ids,
                   TokenIds(proto.stop_token_ids(), "stop_token_ids", consensus::kMaxStopTokenIds));

  parsed.request_id = consensus::RequestId(r);
  return parsed;
}

absl::Status CheckClientAuthorization(const ParsedConsensusRequest& parsed,
                                      const consensus::Domain& domain) {
  const crypto::Hash256 digest = consensus::ClientRequestDigest(domain, parsed.request_id);
  absl::StatusOr<crypto::Address> signer = crypto::RecoverAddress(digest, parsed.client_signature);
  if (!signer.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("authorization.signature: malformed (", signer.status().message(), ")"));
  }
  if (*signer != parsed.request.client) {
    // Also what a signature for another ledger, another epoch or a differently rounded parameter
    // looks like: it recovers to some unrelated address.
    return absl::PermissionDeniedError(
        absl::StrCat("authorization.signature: recovers to ", crypto::AddressToString(*signer),
                     ", not to the client ", crypto::AddressToString(parsed.request.client),
                     " (signed for another request, ledger or model, or forged)"));
  }
  return absl::OkStatus();
}

}  // namespace atoma::api
