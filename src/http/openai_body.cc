#include "openai_body.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"

namespace atoma::http {
namespace {

using json = nlohmann::json;

BodyError Bad(std::string param, std::string message) {
  return BodyError{std::move(param), std::move(message)};
}

// A whole string as an unsigned decimal.
bool ParseU64(std::string_view text, uint64_t* out) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return !text.empty() && ec == std::errc() && ptr == end;
}

// A uint64 given as a JSON integer or a decimal string (JavaScript numbers lose precision past
// 2^53, so clients may quote large nonces).
bool JsonU64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
    return true;
  }
  return v.is_string() && ParseU64(v.get<std::string>(), out);
}

// An array of token ids (non-negative int32), or nullopt.
std::optional<std::vector<int32_t>> TokenIds(const json& v) {
  if (!v.is_array()) return std::nullopt;
  std::vector<int32_t> ids;
  for (const json& id : v) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return std::nullopt;
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return ids;
}

// "0x"-prefixed (or bare) hex of exactly `size` bytes.
std::optional<std::string> HexBytes(const json& v, size_t size) {
  if (!v.is_string()) return std::nullopt;
  absl::StatusOr<std::vector<uint8_t>> bytes = crypto::ParseHex(v.get<std::string>());
  if (!bytes.ok() || bytes->size() != size) return std::nullopt;
  return std::string(bytes->begin(), bytes->end());
}

// atoma_security → proto.security; sets out->verified (and out->cross_validation).
std::optional<BodyError> ParseSecurity(const json& sec, OpenAiRequest* out) {
  if (!sec.is_string()) {
    return Bad("atoma_security",
               "atoma_security: must be a string: none, sampling:N or cross_validation:P:K");
  }
  const std::string text = sec.get<std::string>();
  if (text == "none") return std::nullopt;
  if (absl::StartsWith(text, "sampling:")) {
    uint64_t n = 0;
    if (!ParseU64(std::string_view(text).substr(9), &n) || n == 0 ||
        n > std::numeric_limits<uint32_t>::max()) {
      return Bad("atoma_security",
                 absl::StrCat("atoma_security: sampling:N needs N a committee size >= 1, got \"",
                              text.substr(0, 64), "\""));
    }
    out->verified = true;
    out->proto.mutable_security()->mutable_sampling()->set_committee_size(static_cast<uint32_t>(n));
    return std::nullopt;
  }
  if (absl::StartsWith(text, "cross_validation:")) {
    // P a probability in [0, 1] and K validators, as `atoma-cli generate --security` reads them;
    // the node rounds P to millionths (api::ConsensusRequestFromProto) and bounds K.
    const std::string_view rest = std::string_view(text).substr(17);
    const size_t colon = rest.find(':');
    double p = -1;
    uint64_t k = 0;
    bool ok = colon != std::string_view::npos;
    if (ok) {
      const std::string_view p_text = rest.substr(0, colon);
      const char* end = p_text.data() + p_text.size();
      const auto [ptr, ec] = std::from_chars(p_text.data(), end, p);
      ok = !p_text.empty() && ec == std::errc() && ptr == end && p >= 0.0 && p <= 1.0 &&
           ParseU64(rest.substr(colon + 1), &k) && k <= std::numeric_limits<uint32_t>::max();
    }
    if (!ok) {
      return Bad("atoma_security",
                 absl::StrCat("atoma_security: cross_validation:P:K needs P a probability in "
                              "[0, 1] and K a validator count, got \"",
                              text.substr(0, 64), "\""));
    }
    out->verified = true;
    out->cross_validation = true;
    auto* xv = out->proto.mutable_security()->mutable_cross_validation();
    xv->set_probability(p);
    xv->set_validators(static_cast<uint32_t>(k));
    return std::nullopt;
  }
  return Bad("atoma_security", absl::StrCat("atoma_security: \"", text.substr(0, 64),
                                            "\" is not none, sampling:N or cross_validation:P:K"));
}

// atoma_client → proto.authorization.
// With cross-validation (`xv` not null) also atoma_client.salt_hash → xv->salt_hash: the client
// signs the request that carries it, so it sits with the rest of what the client authorizes.
std::optional<BodyError> ParseClient(const json& client, v1::ClientAuthorization* auth,
                                     v1::Security::CrossValidation* xv) {
  if (!client.is_object()) {
    return Bad("atoma_client",
               "atoma_client: must be an object {address, signature, nonce, max_fee, epoch}");
  }
  for (const auto& [key, value] : client.items()) {
    if (key == "salt_hash" && xv == nullptr) {
      return Bad("atoma_client.salt_hash",
                 "atoma_client.salt_hash: only cross_validation requests carry a salt hash");
    }
    if (key != "address" && key != "signature" && key != "nonce" && key != "max_fee" &&
        key != "epoch" && key != "salt_hash") {
      return Bad("atoma_client." + key.substr(0, 32),
                 absl::StrCat("atoma_client.", key.substr(0, 32),
                              ": unknown key (expected address, signature, nonce, max_fee, "
                              "epoch",
                              xv != nullptr ? ", salt_hash)" : ")"));
    }
  }
  const auto field = [&](const char* key) -> const json* {
    auto it = client.find(key);
    return it == client.end() || it->is_null() ? nullptr : &*it;
  };
  const json* address = field("address");
  std::optional<std::string> address_bytes;
  if (address == nullptr || !(address_bytes = HexBytes(*address, 20))) {
    return Bad("atoma_client.address",
               "atoma_client.address: the client's address, \"0x\" + 40 hex digits, is required");
  }
  auth->set_client_address(*address_bytes);
  const json* signature = field("signature");
  std::optional<std::string> signature_bytes;
  if (signature == nullptr || !(signature_bytes = HexBytes(*signature, 65))) {
    return Bad("atoma_client.signature",
               "atoma_client.signature: the client's signature of the request id, \"0x\" + 130 "
               "hex digits (65 bytes r, s, v), is required");
  }
  auth->set_signature(*signature_bytes);
  uint64_t nonce = 0;
  const json* nonce_json = field("nonce");
  if (nonce_json == nullptr || !JsonU64(*nonce_json, &nonce)) {
    return Bad("atoma_client.nonce",
               "atoma_client.nonce: a uint64 (integer or decimal string) is required");
  }
  auth->set_nonce(nonce);
  uint64_t epoch = 0;
  const json* epoch_json = field("epoch");
  if (epoch_json == nullptr || !JsonU64(*epoch_json, &epoch)) {
    return Bad("atoma_client.epoch",
               "atoma_client.epoch: the ledger epoch the request was signed for (integer or "
               "decimal string) is required");
  }
  auth->set_epoch(epoch);
  if (xv != nullptr) {
    const json* salt_hash = field("salt_hash");
    std::optional<std::string> hash_bytes;
    if (salt_hash == nullptr || !(hash_bytes = HexBytes(*salt_hash, 32))) {
      return Bad("atoma_client.salt_hash",
                 "atoma_client.salt_hash: cross_validation needs the SHA-256 of the client's "
                 "secret salt (consensus::XvSaltHash), \"0x\" + 64 hex digits");
    }
    xv->set_salt_hash(*hash_bytes);
  }
  const json* fee_json = field("max_fee");
  absl::StatusOr<Uint256> fee = absl::InvalidArgumentError("missing");
  if (fee_json != nullptr && fee_json->is_string()) {
    const std::string text = fee_json->get<std::string>();
    fee = absl::StartsWith(text, "0x") || absl::StartsWith(text, "0X") ? Uint256::FromHex(text)
                                                                       : Uint256::FromDecimal(text);
  } else if (uint64_t small = 0; fee_json != nullptr && JsonU64(*fee_json, &small)) {
    fee = Uint256(small);
  }
  if (!fee.ok()) {
    return Bad("atoma_client.max_fee",
               "atoma_client.max_fee: the most the client pays, in base units, is required (a "
               "decimal string, a \"0x\" hex string or an integer, at most 2^256 - 1)");
  }
  // As api::ToGenerateRequest writes it (the value, not the bytes, is signed).
  auth->set_max_fee(fee->ToMinimalBigEndian());
  return std::nullopt;
}

}  // namespace

std::optional<BodyError> ParseOpenAiBody(const json& body, bool chat, OpenAiRequest* out) {
  if (!body.is_object()) return Bad("", "the request body must be a JSON object");
  out->chat = chat;
  v1::GenerateRequest& p = out->proto;
  const auto get = [&](const char* key) -> const json* {
    auto it = body.find(key);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
  const json* model = get("model");
  if (model == nullptr || !model->is_string() || model->get<std::string>().empty()) {
    return Bad("model", "model: a model id (string) is required");
  }
  p.set_model(model->get<std::string>());
  if (const json* sec = get("atoma_security")) {
    if (std::optional<BodyError> e = ParseSecurity(*sec, out)) return e;
  }
  if (const json* client = get("atoma_client")) {
    if (!out->verified) {
      return Bad("atoma_client",
                 "atoma_client: only verified requests carry a client authorization; set "
                 "atoma_security to sampling:N or cross_validation:P:K");
    }
    if (std::optional<BodyError> e = ParseClient(
            *client, p.mutable_authorization(),
            out->cross_validation ? p.mutable_security()->mutable_cross_validation() : nullptr)) {
      return e;
    }
  } else if (out->verified) {
    return Bad("atoma_client",
               "atoma_client: a verified request needs the client's authorization {address, "
               "signature, nonce, max_fee, epoch} (see atoma-cli authorize)");
  }
  if (const json* n = get("n")) {
    if (!n->is_number_integer() || n->get<int64_t>() != 1) {
      return Bad("n", "n: only 1 completion per request is supported");
    }
  }
  if (chat) {
    const json* messages = get("messages");
    if (messages == nullptr || !messages->is_array() || messages->empty()) {
      return Bad("messages", "messages: a non-empty array of messages is required");
    }
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      const std::string where = absl::StrCat("messages[", i, "]");
      if (!m.is_object()) return Bad(where, absl::StrCat(where, ": must be an object"));
      auto role = m.find("role");
      auto content = m.find("content");
      if (role == m.end() || !role->is_string()) {
        return Bad(where + ".role", absl::StrCat(where, ".role: a string is required"));
      }
      if (content == m.end() || !content->is_string()) {
        return Bad(where + ".content",
                   absl::StrCat(where,
                                ".content: a string is required (content parts are not "
                                "supported)"));
      }
      v1::ChatMessage* msg = p.mutable_chat()->add_messages();
      msg->set_role(role->get<std::string>());
      msg->set_content(content->get<std::string>());
    }
  } else {
    const json* prompt = get("prompt");
    if (prompt != nullptr && prompt->is_array() && prompt->size() == 1 &&
        (*prompt)[0].is_string()) {
      prompt = &(*prompt)[0];
    }
    if (prompt != nullptr && prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number()) {
      // OpenAI's token-array prompt: the ids go to the model as they are.
      std::optional<std::vector<int32_t>> ids = TokenIds(*prompt);
      if (!ids) return Bad("prompt", "prompt: token ids must be integers from 0 to 2^31 - 1");
      p.mutable_token_ids()->mutable_ids()->Assign(ids->begin(), ids->end());
    } else if (prompt == nullptr || !prompt->is_string()) {
      return Bad("prompt", "prompt: a string (or an array of token ids) is required");
    } else {
      p.set_text(prompt->get<std::string>());
    }
  }
  const json* max_tokens = get("max_tokens");
  const char* max_tokens_name = "max_tokens";
  if (max_tokens == nullptr && chat) {
    max_tokens = get("max_completion_tokens");
    max_tokens_name = "max_completion_tokens";
  }
  if (max_tokens != nullptr) {
    if (!max_tokens->is_number_integer() || max_tokens->get<int64_t>() < 1 ||
        max_tokens->get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return Bad(max_tokens_name, absl::StrCat(max_tokens_name, ": must be a positive integer"));
    }
    p.set_max_tokens(static_cast<int32_t>(max_tokens->get<int64_t>()));
  }
  // OpenAI's default temperature is 1 (sampling); 0 is greedy.
  double temperature = 1.0;
  if (const json* t = get("temperature")) {
    if (!t->is_number()) return Bad("temperature", "temperature: must be a number");
    temperature = t->get<double>();
    if (!std::isfinite(temperature) || temperature < 0 || temperature > 2) {
      return Bad("temperature", "temperature: must be between 0 and 2");
    }
  }
  p.mutable_sampling()->set_temperature(temperature);
  if (const json* t = get("top_p")) {
    if (!t->is_number()) return Bad("top_p", "top_p: must be a number");
    p.mutable_sampling()->set_top_p(t->get<double>());
  }
  if (const json* k = get("top_k")) {
    // vLLM's -1 means off, as our 0 does.
    if (!k->is_number_integer() || k->get<int64_t>() < -1 ||
        k->get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return Bad("top_k", "top_k: must be an integer >= 0 (0 or -1 = off)");
    }
    p.mutable_sampling()->set_top_k(static_cast<int32_t>(std::max<int64_t>(k->get<int64_t>(), 0)));
  }
  if (const json* s = get("seed")) {
    if (!s->is_number_integer()) return Bad("seed", "seed: must be an integer");
    p.mutable_sampling()->set_seed(
        s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>()));
  }
  if (const json* stop = get("stop")) {
    if (stop->is_string()) {
      p.add_stop(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& s : *stop) {
        if (!s.is_string()) return Bad("stop", "stop: must be a string or strings");
        p.add_stop(s.get<std::string>());
      }
    } else {
      return Bad("stop", "stop: must be a string or an array of strings");
    }
  }
  if (const json* ids = get("stop_token_ids")) {
    std::optional<std::vector<int32_t>> parsed = TokenIds(*ids);
    if (!parsed) {
      return Bad("stop_token_ids", "stop_token_ids: must be an array of token ids (integers >= 0)");
    }
    p.mutable_stop_token_ids()->Assign(parsed->begin(), parsed->end());
  }
  if (const json* e = get("ignore_eos")) {
    if (!e->is_boolean()) return Bad("ignore_eos", "ignore_eos: must be a boolean");
    p.set_ignore_eos(e->get<bool>());
  }
  int top_logprobs = 0;
  if (const json* lp = get("logprobs")) {
    if (chat) {
      if (!lp->is_boolean()) return Bad("logprobs", "logprobs: must be a boolean");
      out->logprobs = lp->get<bool>();
    } else {
      if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > 5) {
        return Bad("logprobs", "logprobs: must be an integer from 0 to 5");
      }
      out->logprobs = true;
      top_logprobs = static_cast<int>(lp->get<int64_t>());
    }
  }
  if (chat) {
    if (const json* tl = get("top_logprobs")) {
      if (!tl->is_number_integer() || tl->get<int64_t>() < 0 || tl->get<int64_t>() > 20) {
        return Bad("top_logprobs", "top_logprobs: must be an integer from 0 to 20");
      }
      if (!out->logprobs && tl->get<int64_t>() > 0) {
        return Bad("top_logprobs", "top_logprobs: needs logprobs: true");
      }
      top_logprobs = static_cast<int>(tl->get<int64_t>());
    }
  }
  if (out->verified && top_logprobs > 0) {
    // A committee's stream carries each token's own logprob but no alternatives.
    return Bad(chat ? "top_logprobs" : "logprobs",
               absl::StrCat(chat ? "top_logprobs" : "logprobs",
                            ": verified requests report the chosen token's logprob only (0 "
                            "alternatives)"));
  }
  p.mutable_sampling()->set_top_logprobs(top_logprobs);
  if (const json* s = get("stream")) {
    if (!s->is_boolean()) return Bad("stream", "stream: must be a boolean");
    out->stream = s->get<bool>();
  }
  if (const json* so = get("stream_options")) {
    if (!so->is_object()) return Bad("stream_options", "stream_options: must be an object");
    auto it = so->find("include_usage");
    out->include_usage = it != so->end() && it->is_boolean() && it->get<bool>();
  }
  return std::nullopt;
}

std::optional<BodyError> ParseRevealSaltBody(const json& body, RevealSaltBody* out) {
  if (!body.is_object()) {
    return Bad("", "the request body must be a JSON object {request_id, salt}");
  }
  for (const auto& [key, value] : body.items()) {
    if (key != "request_id" && key != "salt") {
      return Bad(key.substr(0, 32),
                 absl::StrCat(key.substr(0, 32), ": unknown key (expected request_id, salt)"));
    }
  }
  const auto field = [&](const char* key, size_t size) -> std::optional<std::string> {
    auto it = body.find(key);
    return it == body.end() ? std::nullopt : HexBytes(*it, size);
  };
  std::optional<std::string> id = field("request_id", out->request_id.size());
  if (!id) {
    return Bad("request_id",
               "request_id: the round's request id (atoma_provisional.request_id), \"0x\" + 64 "
               "hex digits, is required");
  }
  std::optional<std::string> salt = field("salt", out->salt.size());
  if (!salt) {
    return Bad("salt",
               "salt: the client's 32-byte secret salt, \"0x\" + 64 hex digits, is required");
  }
  std::copy(id->begin(), id->end(), out->request_id.begin());
  std::copy(salt->begin(), salt->end(), out->salt.begin());
  return std::nullopt;
}

std::optional<std::string> ParseRequestHead(std::string_view head, RequestHead* out) {
  *out = RequestHead{};
  const size_t line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = request_line.find(' ', sp1 == std::string_view::npos ? 0 : sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
    return "malformed request line";
  }
  out->method = std::string(request_line.substr(0, sp1));
  out->path = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  out->http11 = request_line.substr(sp2 + 1) == "HTTP/1.1";
  if (const size_t q = out->path.find('?'); q != std::string::npos) out->path.resize(q);
  while (out->path.size() > 1 && out->path.back() == '/') out->path.pop_back();

  bool have_length = false;
  size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    const absl::string_view line(head.data() + pos, end - pos);
    pos = end + 2;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    const absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, colon));
    const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (absl::EqualsIgnoreCase(name, "content-length")) {
      int64_t length = 0;
      if (!absl::SimpleAtoi(value, &length) || length < 0) return "bad Content-Length";
      if (have_length && length != out->content_length) return "conflicting Content-Length headers";
      out->content_length = length;
      have_length = true;
    } else if (absl::EqualsIgnoreCase(name, "transfer-encoding") &&
               !absl::EqualsIgnoreCase(value, "identity")) {
      out->chunked = true;
    } else if (absl::EqualsIgnoreCase(name, "authorization")) {
      out->authorization = std::string(value);
    } else if (absl::EqualsIgnoreCase(name, "connection")) {
      out->connection = absl::AsciiStrToLower(value);
    } else if (absl::EqualsIgnoreCase(name, "expect") &&
               absl::EqualsIgnoreCase(value, "100-continue")) {
      out->expect_continue = true;
    }
  }
  return std::nullopt;
}

}  // namespace atoma::http
