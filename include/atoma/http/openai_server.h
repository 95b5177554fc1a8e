// OpenAiServer: an OpenAI-compatible HTTP/1.1 endpoint over the node's engines (GET /health,
// GET /v1/models, POST /v1/completions, POST /v1/chat/completions, streaming as server-sent
// events). Requests go through the same validation (api::ToEngineRequest) and the same engine
// queue (Engine::Submit) as the gRPC Generate path; the sampling key is api::AnonymousRequestKey,
// so an HTTP request and the equal gRPC request produce the same tokens. Only the security level
// "none" is served (the body field "atoma_security"; other values are refused with 400).
//
// Each connection carries one request (the response says Connection: close) and gets a thread of
// its own, up to OpenAiOptions::max_connections; past that the server answers 503 at once.
//
// Thread-safety: Start and the destructor are called from one thread; the server's own threads do
// the rest. The destructor stops accepting, cancels running generations and joins every thread.
//
// Errors: Start returns INVALID_ARGUMENT for a malformed listen address and UNAVAILABLE when the
// socket cannot be bound. Client errors are answered in OpenAI's JSON error shape, never logged
// above debug level.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/engine/engine.h"
#include "atoma/metrics/metrics.h"

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
};

class OpenAiServer {
 public:
  virtual ~OpenAiServer() = default;

  // Binds `listen` (host:port; port 0 = a free port) and serves `engines` (not owned; they must
  // outlive the server).
  static absl::StatusOr<std::unique_ptr<OpenAiServer>> Start(const std::string& listen,
                                                             std::vector<engine::Engine*> engines,
                                                             OpenAiOptions options);

  virtual int bound_port() const = 0;
};

}  // namespace atoma::http
