// The node's configuration: the YAML file `atoma-node --config FILE` reads (every key is
// documented in config/node.yaml), plus the command-line overrides.
//
// Plain data and pure functions: parsing never touches the network or starts anything; it only
// reads the file it is given. Paths in the file are resolved against the file's folder, so a
// config works from any working directory. Keys the parser does not know are errors (a typo must
// not silently fall back to a default), and every error names the key path, e.g.
// `engine.max_batch: must be between 1 and 256, got 0`.
//
// Thread-safety: the functions are thread-safe; a NodeConfig is a value.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace atoma::config {

struct NodeSection {
  // Secp256k1 key file (see atoma/crypto/keys.h); required. Must be mode 0600.
  std::filesystem::path key_file;
  // Node state (ledger, outbox). Default: "data" next to the config file. Created at start-up.
  std::filesystem::path data_dir;
};

struct ApiSection {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free port
  // After binding, the node writes {"grpc": PORT} here (atomically); empty = none.
  std::filesystem::path ports_file;
  int max_concurrent_generations = 64;
  int max_receive_message_bytes = 4 << 20;
  int max_prompt_bytes = 256 << 10;
  bool allow_anonymous = true;
  // TLS for the gRPC port (clients and peers): PEM certificate chain and private key. Both or
  // neither; empty = plaintext (loopback and trusted networks only).
  std::filesystem::path tls_cert_file;
  std::filesystem::path tls_key_file;
  std::filesystem::path admin_token_file;  // empty: Admin.Drain from loopback peers only
};

struct LogSection {
  std::string level = "info";   // trace|debug|info|warn|error|off
  std::string format = "text";  // text|json
};

struct EngineSection {
  int threads = 0;                     // 0 = hardware concurrency
  std::string device = "auto";         // auto|cpu|cuda|cuda:N
  std::string dtype = "auto";          // auto|float32|bfloat16|float16
  std::string decode_kernel = "auto";  // auto|avx2|portable
  int max_batch = 16;
  int max_running = 16;
  int max_queue = 64;
  int max_seq_len = 2048;
  int max_prompt_tokens = 2048;
  int max_new_tokens = 2048;
  int prefill_chunk = 512;
  // Prompt tokens admitted per scheduler iteration (one request always is), so a burst of long
  // prompts delays running streams by about one budget of prefill per decode step.
  int max_prefill_tokens_per_step = 512;
  int sampling_threads = 0;  // 0 = hardware concurrency, at most 4; results do not depend on it
};

struct ModelEntry {
  std::string id;  // served name; default: the folder name
  std::filesystem::path path;
};

struct ShutdownSection {
  int drain_deadline_ms = 30000;  // running generations get this long to finish
};

// The stake/reward ledger this node settles on (docs/ledger.md).
struct LedgerSection {
  // none | embedded | evm. With none the node serves only security `none` (no committee can be
  // drawn without a registry); embedded is a SQLite file every node of a local network shares;
  // evm is the AtomaLedger contract on an EVM chain (docs/ledger_evm.md), reached over JSON-RPC
  // and signed with the node's key.
  std::string backend = "none";
  // embedded: the ledger file (relative paths resolve against the config file). Required when
  // backend is embedded; created (with chain_id and epoch_length_s) when missing.
  std::filesystem::path path;
  // embedded: used only when the file is created; evm: must equal the chain's eth_chainId.
  uint64_t chain_id = 31337;
  uint64_t epoch_length_s = 3600;  // used only when the file is created; 1..31536000
  // This node opens the next epoch when the current one is older than the ledger's
  // epoch_length_s. Several nodes may do it; the ledger accepts one advance per epoch.
  bool advance_epochs = true;
  // evm: the chain's JSON-RPC URL (http:// or https://) and the contract's address (0x + 40 hex,
  // from `atoma-cli ledger deploy`). Both required when backend is evm.
  std::string rpc_url;
  std::string contract;
  // evm: blocks a state must be buried under before the node reads it (views, logs); 0 trusts
  // the latest block (local chains). 0..1000.
  uint64_t confirmations = 0;
  // evm: how long a sent transaction may wait for its receipt. 1000..3600000.
  int receipt_timeout_ms = 120000;
};

// Sampling Consensus timing and limits (docs/protocol.md). Timeouts are generous by default
// because a committee member's output can be long; tests shorten them.
struct ConsensusSection {
  // host:port registered on the ledger for peers. Empty (default): api.listen with the bound
  // port; a wildcard host (0.0.0.0, [::]) becomes 127.0.0.1.
  std::string advertise;
  // YAML key `register`: register or update this node (endpoint, echelons) on the ledger at
  // start. Off for nodes whose registration is managed elsewhere.
  bool register_node = true;
  int member_timeout_ms = 30000;       // a silent member is replaced by a backup; 100..3600000
  int reattest_timeout_ms = 5000;      // backup / referee attestation wait; 10..600000
  int salt_timeout_ms = 60000;         // cross-validation: the client's salt reveal; 100..3600000
  int referee_timeout_ms = 60000;      // a dispute's referees must answer by then; 100..3600000
  int peer_call_timeout_ms = 5000;     // deadline of Attest / GetAttestations calls; 10..600000
  int max_committee_size = 16;         // larger sampling n → INVALID_ARGUMENT; 1..64
  int settlement_batch_size = 100;     // certificates per settlement transaction; 1..1024
  int settlement_max_delay_ms = 2000;  // a certificate waits at most this for a batch; 1..3600000
  // PEM root certificates that sign the network's node certificates. Set: peers are called over
  // TLS and must present a certificate from these roots. Empty: plaintext peer calls.
  std::filesystem::path peer_ca_file;
};

// Prometheus scrape endpoint (GET /metrics): time to first token, inter-token latency and request
// duration histograms, token and request counters, running/waiting requests, KV cache use,
// consensus rounds, attestations, rejections by reason, settlements and slashings.
struct MetricsSection {
  std::string listen;  // host:port; empty (default) = no metrics endpoint; port 0 = a free port
};

// OpenAI-compatible HTTP API (POST /v1/completions, /v1/chat/completions, GET /v1/models,
// /health) over the same engines and queue as gRPC; security level "none" only.
struct HttpSection {
  std::string listen;  // host:port; empty (default) = no HTTP API; port 0 = a free port
  // One API key per line (http::LoadApiKeys); empty (default) = no authentication. Relative to
  // the config file's folder.
  std::filesystem::path api_keys_file;
  std::filesystem::path tls_cert_file;  // HTTPS: PEM certificate chain; with tls_key_file
  std::filesystem::path tls_key_file;
};

struct NodeConfig {
  NodeSection node;
  ApiSection api;
  LogSection log;
  EngineSection engine;
  std::vector<ModelEntry> models;  // at least one
  ShutdownSection shutdown;
  LedgerSection ledger;
  ConsensusSection consensus;
  MetricsSection metrics;
  HttpSection http;
};

// Command-line flags that replace the file's values. A relative ports_file here is relative to
// the working directory (it came from the command line), not to the config file.
struct Overrides {
  std::optional<std::string> listen;
  std::optional<std::string> log_level;
  std::optional<std::filesystem::path> ports_file;
};

// Parses YAML text; relative paths resolve against `base_dir`. `source_name` names the text in
// parse errors (usually the file path). The result is validated.
absl::StatusOr<NodeConfig> ParseConfig(std::string_view yaml, const std::filesystem::path& base_dir,
                                       std::string_view source_name = "config");

// Reads and parses a file (NOT_FOUND when missing).
absl::StatusOr<NodeConfig> LoadConfigFile(const std::filesystem::path& file);

// Applies the overrides and validates the result again.
absl::Status ApplyOverrides(const Overrides& overrides, NodeConfig* config);

// Checks every value and the relations between them (max_running ≤ max_batch, ...).
// INVALID_ARGUMENT naming the key path.
absl::Status Validate(const NodeConfig& config);

// Splits "host:port" / "[v6]:port"; INVALID_ARGUMENT naming `key` when malformed.
absl::Status CheckListenAddress(std::string_view address, std::string_view key);

}  // namespace atoma::config
