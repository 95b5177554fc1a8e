// The OpenAI request body → v1::GenerateRequest mapping of the HTTP API: the ONE place that reads
// a /v1/completions or /v1/chat/completions body. The server (openai_server.cc) and `atoma-cli
// authorize` (which signs the verified request a body stands for) both call it, so what a client
// signs and what the node rebuilds come from the same parse; both then build the canonical request
// with api::ConsensusRequestFromProto, as the gRPC path does.
//
// Fields read (others are ignored, as OpenAI clients send many we do not use):
//   model; prompt (string, [string] or [token ids]) or messages ([{role, content: string}]);
//   max_tokens (chat: or max_completion_tokens); temperature (0..2, default 1 as OpenAI's);
//   top_p; seed; stop (string or strings); logprobs; top_logprobs (chat); n (1 only); stream;
//   stream_options.include_usage; the extensions top_k (>= 0), stop_token_ids ([ids]) and
//   ignore_eos (bool), named as vLLM names them; and the verification fields:
//   atoma_security: "none" (default) | "sampling:N" (N >= 1; a committee of N nodes executes and
//     certifies the output) | "cross_validation:P:K" (P a probability in [0, 1], K validators:
//     one executor, then with probability P K validators re-execute; the client reveals its salt
//     after the provisional result, so the server serves it streaming only);
//   atoma_client (required when verified, refused without): {address: "0x" + 40 hex,
//     signature: "0x" + 130 hex (65 bytes r‖s‖v over ClientRequestDigest(domain, request id)),
//     nonce: uint64 as an integer or a decimal string, max_fee: uint256 as a decimal string,
//     "0x" hex string or integer, epoch: uint64 as an integer or a decimal string, and with
//     cross_validation only salt_hash: "0x" + 64 hex, consensus::XvSaltHash of the client's
//     secret salt}. No other keys (a misspelt key would otherwise leave a field at its default
//     and the signature would not match for no visible reason).
//
// Also the body of POST /v1/atoma/reveal_salt: {request_id: "0x" + 64 hex, salt: "0x" + 64 hex},
// and the request line and headers of every request (ParseRequestHead).
//
// Pure function over plain data; thread-safe.
//
// Errors: a BodyError with the OpenAI `param` the message is about (400 for every error here).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "atoma/v1/inference.pb.h"
#include "nlohmann/json.hpp"

namespace atoma::http {

struct OpenAiRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;  // report logprobs
  bool verified = false;  // sampling or cross_validation: proto carries security and authorization
  bool cross_validation = false;  // atoma_security cross_validation:P:K (salt_hash in proto)
  // model, prompt (text, chat or token_ids), sampling, max_tokens (set only when the body has
  // it), stop, stop_token_ids, ignore_eos; with `verified`, security and authorization.
  v1::GenerateRequest proto;
};

struct BodyError {
  std::string param;  // the OpenAI parameter, e.g. "atoma_client.nonce"; empty = the whole body
  std::string message;
};

// Reads a parsed JSON body of /v1/chat/completions (`chat`) or /v1/completions into `out`.
// Range checks that need the model (vocabulary, context, chat format) or the canonical request
// (committee size, max_tokens required for verified requests) are left to api::ToEngineRequest
// and api::ConsensusRequestFromProto.
std::optional<BodyError> ParseOpenAiBody(const nlohmann::json& body, bool chat, OpenAiRequest* out);

// POST /v1/atoma/reveal_salt: the client's salt for a cross-validation round (Inference.RevealSalt
// of the gRPC API).
struct RevealSaltBody {
  std::array<uint8_t, 32> request_id{};
  std::array<uint8_t, 32> salt{};
};

// Reads {request_id, salt} (both "0x" + 64 hex digits; no other keys) into `out`.
std::optional<BodyError> ParseRevealSaltBody(const nlohmann::json& body, RevealSaltBody* out);

// The request line and headers of one HTTP/1.x request: the bytes before the "\r\n\r\n".
struct RequestHead {
  std::string method;
  std::string path;     // without the query; trailing slashes dropped ("/" stays)
  bool http11 = false;  // the version is HTTP/1.1 (anything else gets HTTP/1.0 semantics)
  int64_t content_length = 0;
  bool chunked = false;  // a Transfer-Encoding other than identity
  bool expect_continue = false;
  std::string connection;  // the Connection header, lower case
  std::string authorization;
};

// Reads `head` into `out`; header names are case-insensitive, values trimmed, lines without a
// colon skipped. Returns the message of a 400 for a request line without method, target and
// version, a Content-Length that is not a non-negative integer, or two Content-Length headers
// that disagree (a request a proxy in front could frame differently: request smuggling).
std::optional<std::string> ParseRequestHead(std::string_view head, RequestHead* out);

}  // namespace atoma::http
