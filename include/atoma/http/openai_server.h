// OpenAiServer: an OpenAI-compatible HTTP/1.1 endpoint over the node's engines (GET /health,
// GET /v1/models, POST /v1/completions, POST /v1/chat/completions, streaming as server-sent
// events). Requests go through the same validation (api::ToEngineRequest) and the same engine
// queue (Engine::Submit) as the gRPC Generate path; the sampling key is api::AnonymousRequestKey,
// so an HTTP request and the equal gRPC request produce the same tokens.
//
// Verification per request (docs/http.md): the body field "atoma_security" is "none" (default),
// "sampling:N" or "cross_validation:P:K", and a verified request carries "atoma_client" {address,
// signature, nonce, max_fee, epoch; cross_validation: salt_hash}, the ClientAuthorization of the
// gRPC API (src/http/openai_body.h has the exact forms).
// The node tokenizes the prompt as Inference.Tokenize does, builds the canonical request with the
// gRPC path's api::ConsensusRequestFromProto (so a client signs the same request id over HTTP as
// over gRPC, see `atoma-cli authorize`) and runs the round through ConsensusNode::Submit
// (OpenAiOptions::submit_verified). The response (the chunk with the finish reason, when
// streaming) adds "atoma_request_id", "atoma_certificate" ("0x" hex of the certificate bytes) and
// "atoma_output" ({token_ids, finish_reason}: what the certificate commits to, the file
// `atoma-cli verify --output` reads).
// Cross-validation is served streaming only (400 otherwise): after the tokens, one chunk with empty
// "choices" carries "atoma_provisional" {request_id, attestation, output} (the executor's signed
// claim); the client checks it and POSTs {request_id, salt} to /v1/atoma/reveal_salt
// (OpenAiOptions::reveal_salt, ConsensusNode::RevealSalt) on another connection while the stream
// stays open; the stream then ends as a sampling one, with the cross-validation certificate.
//
// API keys (OpenAiOptions::api_keys, http.api_keys_file): when set, every request but GET /health
// needs "Authorization: Bearer <key>" naming one of them (compared in constant time); otherwise
// 401 "invalid_api_key".
//
// Each connection gets a thread of its own, up to OpenAiOptions::max_connections; past that the
// server answers 503 at once. HTTP/1.1 connections stay open for the next request (pipelined ones
// too) unless the client says "Connection: close"; HTTP/1.0 ones only with "Connection:
// keep-alive". A streamed response, an error answered before the body was read, and 10 s without
// a request close the connection; so does the 1000th request on it.
//
// Thread-safety: Start and the destructor are called from one thread; the server's own threads do
// the rest. The destructor stops accepting, cancels running generations (a consensus round goes on
// without its client: it was accepted, so it finishes and settles) and joins every thread.
//
// Errors: Start returns INVALID_ARGUMENT for a malformed listen address and UNAVAILABLE when the
// socket cannot be bound. Client errors are answered in OpenAI's JSON error shape ({"error":
// {message, type, param, code}}), never logged above debug level (refused verified requests:
// info). HTTP codes: 400 a malformed field (param names it); 401 a missing or wrong API key, or
// security none on a node with api.allow_anonymous false; 402 max_fee below the worst-case fee or
// escrow short; 403 a client signature that does not authorize the request; 404 unknown model or
// path; 409 a stale epoch (sign again for the current one) or a nonce / request already used; 413
// body too large; 429 engine queue full; 501 a verified request on a node without a ledger; 502 a
// round ended by a dispute; 503 draining, shutting down, too many connections or too few staked
// nodes for the committee; 500 anything else. /v1/atoma/reveal_salt: 404 no running round with that
// id, 403 a salt that does not hash to the request's salt_hash, 409 a round not waiting for a salt.
//
// LoadApiKeys: NOT_FOUND / PERMISSION_DENIED when the file cannot be opened, PERMISSION_DENIED
// when group or others may read it, INVALID_ARGUMENT when it holds no key.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/crypto/keys.h"
#include "atoma/engine/engine.h"
#include "atoma/metrics/metrics.h"

namespace atoma::consensus {
struct ConsensusRequest;
}
namespace atoma::peer {
class RoundHandle;
}

namespace atoma::http {

struct OpenAiOptions {
  int max_connections = 64;          // concurrent connections; more are answered 503
  int max_body_bytes = 1 << 20;      // request bodies (Content-Length); more → 413
  int max_prompt_bytes = 256 << 10;  // as api.max_prompt_bytes
  int default_max_tokens = 256;      // when the request leaves max_tokens unset
  // True while the node drains or shuts down: generations are refused with 503. May be empty.
  std::function<bool()> draining;
  // Prometheus observations of every generation (as the gRPC API's, security "none"); not
  // owned, must outlive the server. Null: not metered.
  metrics::NodeMetrics* metrics = nullptr;
  // Runs the round of an atoma_security sampling:N request: the node's ConsensusNode::Submit (its
  // error contract), a seam the tests replace. Must stay callable while the server lives. Empty
  // (ledger.backend none): such requests are answered 501.
  using SubmitVerified = std::function<absl::StatusOr<std::shared_ptr<peer::RoundHandle>>(
      const consensus::ConsensusRequest&, const crypto::Signature&)>;
  SubmitVerified submit_verified;
  // api.allow_anonymous: false refuses security-none requests with 401, as the gRPC API refuses
  // them with UNAUTHENTICATED.
  bool allow_anonymous = true;
  // Cross-validation: the client's salt for a round this node runs, the node's
  // ConsensusNode::RevealSalt (its error contract; returns whether a check was drawn). Empty:
  // /v1/atoma/reveal_salt answers 501. Must stay callable while the server lives.
  using RevealSalt = std::function<absl::StatusOr<bool>(const std::array<uint8_t, 32>& request_id,
                                                        const std::array<uint8_t, 32>& salt)>;
  RevealSalt reveal_salt;
  // Accepted bearer tokens (http.api_keys_file). Empty: no authentication.
  std::vector<std::string> api_keys;
  // PEM certificate chain (leaf first) and unencrypted PEM private key: serve HTTPS (TLS 1.2+)
  // instead of plaintext. Both or neither (INVALID_ARGUMENT from Start, which also names a
  // certificate or key it cannot use). With TLS the process ignores SIGPIPE (OpenSSL writes with
  // write(2)); a connection past max_connections is closed without the 503.
  std::string tls_cert_chain_pem{};
  std::string tls_private_key_pem{};
};

// Reads http.api_keys_file: one key per line (surrounding blanks trimmed; empty lines and lines
// starting with '#' skipped). The file must not be accessible by group or others (as the node's
// key file), since its keys let anyone spend the node's capacity.
absl::StatusOr<std::vector<std::string>> LoadApiKeys(const std::filesystem::path& path);

class OpenAiServer {
 public:
  virtual ~OpenAiServer() = default;

  // Binds `listen` (host:port; port 0 = a free port) and serves `engines` (not owned; they must
  // outlive the server).
  static absl::StatusOr<std::unique_ptr<OpenAiServer>> Start(const std::string& listen,
                                                             std::vector<engine::Engine*> engines,
                                                             OpenAiOptions options);

  virtual int bound_port() const = 0;

  // Replaces the accepted API keys (the node re-reads http.api_keys_file on SIGHUP); requests
  // already authorized go on. Empty: no authentication from now on. Thread-safe.
  virtual void SetApiKeys(std::vector<std::string> keys) = 0;

  // Replaces the TLS certificate chain and key (the node re-reads http.tls_cert_file and
  // http.tls_key_file on SIGHUP): connections accepted from now on use them, open ones keep
  // theirs. INVALID_ARGUMENT for a certificate or key Start would refuse (the old ones stay);
  // FAILED_PRECONDITION on a server started without TLS. Thread-safe.
  virtual absl::Status SetTls(const std::string& cert_chain_pem,
                              const std::string& private_key_pem) = 0;
};

}  // namespace atoma::http
