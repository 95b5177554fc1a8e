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
  int max_prefill_tokens_per_step = 2048;
  int sampling_threads = 0;  // 0 = hardware concurrency, at most 4; results do not depend on it
};

struct ModelEntry {
  std::string id;  // served name; default: the folder name
  std::filesystem::path path;
};

struct ShutdownSection {
  int drain_deadline_ms = 30000;  // running generations get this long to finish
};

struct NodeConfig {
  NodeSection node;
  ApiSection api;
  LogSection log;
  EngineSection engine;
  std::vector<ModelEntry> models;  // at least one
  ShutdownSection shutdown;
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
