// The composition root of atoma-node: NodeContext owns every long-lived component (config, key,
// engines, API server), Init builds them in dependency order, Shutdown takes them down in an
// explicit order, and RunNode is the whole program (main.cc only calls it).
//
// Start-up policy (STYLE "error policy"): a bad config, key or model stops the process with one
// clear line on stderr and exit code 2; nothing is retried.
//
// With a ledger (ledger.backend: embedded) Init also opens the ledger, the journal
// (data_dir/journal.db) and the settlement outbox, starts the consensus runtime, registers the
// node (endpoint and the echelon of each model with a fingerprint) after the server is bound,
// starts the epoch timer and resumes journaled rounds.
//
// Shutdown order: stop intake (the API refuses new generations) → let consensus rounds and every
// engine drain in parallel until shutdown.drain_deadline_ms, then cancel what is left → stop the
// server (streams end with their final message) → flush the settlement outbox (bounded) → stop
// the epoch timer → remove the ports file → exit 0.
//
// Thread-safety: Init and Shutdown run on one thread (main). NodeContext::draining may be read
// from any thread (the API's Admin service does).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/api/server.h"
#include "atoma/config/config.h"
#include "atoma/crypto/keys.h"
#include "atoma/engine/engine.h"
#include "atoma/http/openai_server.h"
#include "atoma/journal/journal.h"
#include "atoma/journal/outbox.h"
#include "atoma/ledger/ledger.h"
#include "atoma/metrics/metrics.h"
#include "atoma/peer/consensus_node.h"

namespace atoma::node {

// How the node builds its components. The defaults are the real ones; tests substitute fakes that
// record calls or inject failures.
struct Components {
  using EngineFactory =
      std::function<absl::StatusOr<std::unique_ptr<engine::Engine>>(const engine::EngineOptions&)>;
  using ServerFactory = std::function<absl::StatusOr<std::unique_ptr<api::Server>>(
      const api::ServerOptions&, std::vector<engine::Engine*>, api::NodeControl)>;

  EngineFactory make_engine;   // default: engine::Engine::Make
  ServerFactory start_server;  // default: api::Server::Start

  static Components Default();
};

// Everything the running node owns. Members are declared in construction order, so the implicit
// destruction order (reverse) never destroys an engine before the server that serves it.
struct NodeContext {
  NodeContext() = default;
  NodeContext(const NodeContext&) = delete;
  NodeContext& operator=(const NodeContext&) = delete;
  // Runs Shutdown if Init succeeded and Shutdown was not called.
  ~NodeContext();

  config::NodeConfig config;
  std::optional<crypto::PrivateKey> key;
  std::vector<std::unique_ptr<engine::Engine>> engines;
  // Consensus (ledger.backend != none): the ledger, this node's journal, the settlement outbox
  // and the runtime, in dependency order.
  // ledger.backend evm: settlement asks members for co-signatures through the runtime, bound once
  // it runs and unbound before it goes away.
  std::shared_ptr<ledger::LateCosigner> cosigner;
  std::unique_ptr<ledger::LedgerClient> ledger;
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<journal::SettlementOutbox> outbox;
  std::unique_ptr<peer::ConsensusNode> consensus;
  // metrics.listen: observations of the API, sampled engine and consensus counters, /metrics.
  std::unique_ptr<metrics::NodeMetrics> metrics;
  std::unique_ptr<api::Server> server;
  std::unique_ptr<metrics::MetricsServer> metrics_server;  // stops before anything it samples
  // http.listen: the OpenAI-compatible API; refuses new work once draining is set, stops after
  // the engines drained (its streams have had their final events by then).
  std::unique_ptr<http::OpenAiServer> http_server;
  int port = 0;  // the bound gRPC port
  // Set when shutdown begins or an operator calls Admin.Drain; new generations are refused.
  std::atomic<bool> draining{false};
  // "openblas=2 (openblas_set_num_threads), torch intra-op=2 (engine)" — what Init set and how.
  std::string thread_settings;
  bool running = false;  // Init succeeded and Shutdown has not run
  // The epoch timer (ledger.advance_epochs): opens the next epoch when the current one is older
  // than the ledger's epoch length.
  std::thread epoch_timer;
  std::mutex timer_mu;
  std::condition_variable timer_cv;
  bool timer_stop = false;
};

// Builds the node from a validated config: logging, thread counts, key (refusing a key file that
// group/others can access), data_dir, one engine per model, the API server, the ports file.
// On error, whatever was built is torn down again and the Status says which step and key failed.
absl::Status Init(const config::NodeConfig& config, const Components& components, NodeContext* ctx);

// The ordered shutdown described above. Idempotent.
void Shutdown(NodeContext& ctx);

// SIGHUP: re-reads the secrets a running node can swap (when set): http.api_keys_file, the HTTPS
// certificate and key (http.tls_cert_file / http.tls_key_file: new connections use them) and
// api.admin_token_file, so an operator rotates them without a restart. One that cannot be read
// or used keeps its old value, logs why and does not stop the others; the first such error is
// returned (for tests). The gRPC port's TLS certificate is not reloaded.
absl::Status ReloadSecrets(NodeContext& ctx);

// Sets the CPU thread counts from engine.threads (0 = hardware concurrency) before any model
// work: OpenBLAS through openblas_set_num_threads (looked up with dlsym, so the node does not link
// OpenBLAS itself), plus OMP_NUM_THREADS/OPENBLAS_NUM_THREADS for libraries that initialize
// later. Libtorch's intra-op count is set by the engine from RunnerOptions::threads.
//
// What we measured (Debian libtorch 1.13 + libopenblas0-pthread, 2 cores):
// - OpenBLAS starts its thread pool in a library constructor, before main: 2 threads exist at
//   main entry; with OPENBLAS_NUM_THREADS=1 in the environment, 1. So setting the variable in
//   main is too late for the pool, but openblas_set_num_threads works at any time (it lowers the
//   active count, leaving idle pool threads parked, and grows the pool when asked for more).
// - libgomp (libtorch's intra-op pool) reads OMP_WAIT_POLICY when it loads; with the default,
//   idle workers spin against OpenBLAS's threads: a 512x512 fp32 mm loop took 650-700 ms with
//   torch=2 threads against 230 ms with OMP_WAIT_POLICY=PASSIVE. Only a re-exec can change that,
//   which is what ReexecWithThreadEnvironment does.
// Returns a description for the start-up log.
std::string ApplyThreadSettings(int threads);

// SIGINT/SIGTERM/SIGHUP → a byte on a self-pipe (the handler does nothing else: write(2) is
// async-signal-safe). Wait() blocks until a signal or Trigger(). A second SIGINT/SIGTERM while
// the node shuts down exits the process at once (_exit(128 + signal)), so an operator can always
// stop it; SIGHUP (reload) never counts towards that.
// At most one instance exists at a time (signal handlers are process-wide).
class ShutdownSignal {
 public:
  static absl::StatusOr<std::unique_ptr<ShutdownSignal>> Install();
  ~ShutdownSignal();  // restores the previous handlers
  ShutdownSignal(const ShutdownSignal&) = delete;
  ShutdownSignal& operator=(const ShutdownSignal&) = delete;

  // Blocks until a signal or Trigger(); returns the signal number, or 0 for Trigger().
  int Wait();
  // Wakes Wait() without a signal (thread-safe).
  void Trigger();

 private:
  ShutdownSignal(int read_fd, int write_fd) : read_fd_(read_fd), write_fd_(write_fd) {}
  int read_fd_;
  int write_fd_;
};

// Before any torch or OpenBLAS work: when the environment lacks OMP_WAIT_POLICY, or
// OPENBLAS_NUM_THREADS differs from engine.threads (resolved), sets OMP_WAIT_POLICY=PASSIVE
// (unless the operator set a policy), OPENBLAS_NUM_THREADS and OMP_NUM_THREADS, and re-executes
// /proc/self/exe with the same argv, so the libraries read them at load. Happens at most once
// (ATOMA_NODE_REEXEC marks the second start). Returns only when no re-exec was needed or execv
// failed (then ApplyThreadSettings still fixes OpenBLAS's count at run time).
void ReexecWithThreadEnvironment(int threads, char** argv);

// Writes {"grpc": PORT} (plus "metrics": PORT when metrics_port > 0 and "http": PORT when
// http_port > 0) to `path` atomically (temporary file in the same folder, then rename).
absl::Status WritePortsFile(const std::filesystem::path& path, int grpc_port, int metrics_port = 0,
                            int http_port = 0);

// The atoma-node program: flags (--config, --listen, --log-level, --ports-file, --version),
// Init, wait for a signal, Shutdown. Returns the process exit code: 0 after a clean shutdown,
// 2 for start-up and usage errors (one line on stderr).
// `reexec` = false skips ReexecWithThreadEnvironment (tests call RunNode in-process).
int RunNode(int argc, char** argv, bool reexec = true);

}  // namespace atoma::node
