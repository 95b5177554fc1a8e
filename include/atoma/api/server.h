// The gRPC front door: atoma.v1.Inference, atoma.v1.Admin, grpc.health.v1 and server reflection on
// one listening address. A thin layer: it validates protos, converts them to engine structs, hands
// requests to the engines' queues and converts results back. gRPC status codes appear only here.
//
// Behaviour (proto/atoma/v1/inference.proto documents it for clients):
// - Generate validates the request (INVALID_ARGUMENT naming the field, NOT_FOUND for an unknown
//   model, FAILED_PRECONDITION for chat on a model without a chat format, UNIMPLEMENTED for
//   security levels other than none), tokenizes text or renders chat with the engine's tokenizer,
//   submits to the engine and streams its events. More than max_concurrent_generations open
//   streams, or a full engine queue, give RESOURCE_EXHAUSTED; a draining node gives UNAVAILABLE.
// - A client that cancels or passes its deadline has its engine request cancelled within a few
//   milliseconds (handlers poll the call between short waits on the request handle).
// - Handler threads (gRPC's sync thread pool, bounded) only wait on request handles; they never
//   run model code.
// - The standard grpc.health.v1 service reports SERVING until Admin.Drain, NodeControl::draining()
//   turning true, or Shutdown; then NOT_SERVING (overall and for "atoma.v1.Inference").
// - Server reflection is on (grpcurl and friends can list and call the services).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/engine/engine.h"
#include "atoma/peer/consensus_node.h"

namespace atoma::metrics {
class NodeMetrics;
}  // namespace atoma::metrics

namespace atoma::api {

struct ServerOptions {
  // host:port; port 0 picks a free port (see Server::port()).
  std::string listen_address = "127.0.0.1:50051";
  int max_receive_message_bytes = 4 << 20;  // bounds request size (prompts are small)
  int max_concurrent_generations = 64;      // more → RESOURCE_EXHAUSTED (across all models)
  int max_prompt_bytes = 256 << 10;         // text prompt size bound before tokenizing
  bool allow_anonymous = true;              // unsigned requests with security none
  // Verified requests (security sampling) and the atoma.v1.Peer service; null: the node has no
  // ledger and answers verified requests with UNIMPLEMENTED. Must outlive the Server.
  peer::ConsensusNode* consensus = nullptr;
  // Prometheus observations of every generation; null: none. Must outlive the Server.
  metrics::NodeMetrics* metrics = nullptr;
  // PEM certificate chain and private key: serve TLS instead of plaintext. Both or neither.
  std::string tls_cert_chain_pem{};
  std::string tls_private_key_pem{};
  // Admin.Drain stops the node serving: with a token set it needs the call metadata
  // "authorization: Bearer <admin_token>" (UNAUTHENTICATED otherwise); without one it is
  // accepted only from a loopback peer (PERMISSION_DENIED otherwise). Admin.Status, read-only,
  // stays open.
  std::string admin_token{};
};

// Whether a gRPC peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/path") is this
// machine: IPv4 127.0.0.0/8, IPv6 ::1 and ::ffff:127.x.y.z, and Unix sockets.
bool IsLoopbackPeer(std::string_view peer);

// What the Admin service reports and controls; implemented by the node.
struct NodeControl {
  std::string node_address;  // 0x-prefixed Ethereum address of the node key
  std::string version;
  std::function<bool()> draining;  // true once Drain was called or shutdown began
  std::function<void()> drain;     // stop accepting new generations
};

// Thread-safety: all methods thread-safe. Engines and NodeControl must outlive the Server.
class Server {
 public:
  virtual ~Server() = default;

  // Binds and starts serving. FAILED_PRECONDITION / UNAVAILABLE with the address when binding
  // fails. `engines` are served by their info().id.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       std::vector<engine::Engine*> engines,
                                                       NodeControl control);

  // The bound port (the real one when the options asked for port 0).
  virtual int port() const = 0;
  // Stops accepting calls; running streams get until `deadline` to finish, then are cancelled
  // (and so are their engine requests). Blocks until every call has ended. Idempotent. The node
  // normally drains the engines first, so streams end with their final message.
  virtual void Shutdown(std::chrono::milliseconds deadline) = 0;
  // Blocks until Shutdown completed.
  virtual void Wait() = 0;
  // Replaces the admin token (ServerOptions::admin_token) for the calls that follow; empty:
  // loopback peers only. The node re-reads api.admin_token_file on SIGHUP. Thread-safe.
  virtual void SetAdminToken(std::string token) = 0;
};

}  // namespace atoma::api
