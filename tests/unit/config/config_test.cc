#include "atoma/config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace atoma::config {
namespace {

namespace fs = std::filesystem;

constexpr char kMinimal[] = R"(
node:
  key_file: keys/node.key
models:
  - path: models/tiny
)";

NodeConfig ParseOk(const std::string& yaml) {
  auto config = ParseConfig(yaml, "/etc/atoma");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : NodeConfig{};
}

// The error message of parsing `yaml`; fails the test when it parses.
std::string ErrorOf(const std::string& yaml) {
  auto config = ParseConfig(yaml, "/etc/atoma", "node.yaml");
  EXPECT_FALSE(config.ok()) << yaml;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(Config, MinimalFileGetsDefaults) {
  const NodeConfig c = ParseOk(kMinimal);
  EXPECT_EQ(c.node.key_file, fs::path("/etc/atoma/keys/node.key"));
  EXPECT_EQ(c.node.data_dir, fs::path("/etc/atoma/data"));
  EXPECT_EQ(c.api.listen, "127.0.0.1:50051");
  EXPECT_TRUE(c.api.ports_file.empty());
  EXPECT_EQ(c.api.max_concurrent_generations, 64);
  EXPECT_EQ(c.api.max_receive_message_bytes, 4 << 20);
  EXPECT_EQ(c.api.max_prompt_bytes, 256 << 10);
  EXPECT_TRUE(c.api.allow_anonymous);
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, "text");
  EXPECT_EQ(c.engine.threads, 0);
  EXPECT_EQ(c.engine.device, "auto");
  EXPECT_EQ(c.engine.dtype, "auto");
  EXPECT_EQ(c.engine.decode_kernel, "auto");
  EXPECT_EQ(c.engine.max_batch, 16);
  EXPECT_EQ(c.engine.max_running, 16);
  EXPECT_EQ(c.engine.max_queue, 64);
  EXPECT_EQ(c.engine.max_seq_len, 2048);
  EXPECT_EQ(c.engine.max_prompt_tokens, 2048);
  EXPECT_EQ(c.engine.max_new_tokens, 2048);
  EXPECT_EQ(c.engine.prefill_chunk, 512);
  EXPECT_EQ(c.engine.sampling_threads, 0);
  EXPECT_EQ(c.engine.max_prefill_tokens_per_step, 512);
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].id, "tiny");  // the folder name
  EXPECT_EQ(c.models[0].path, fs::path("/etc/atoma/models/tiny"));
  EXPECT_EQ(c.shutdown.drain_deadline_ms, 30000);
  EXPECT_EQ(c.ledger.backend, "none");
  EXPECT_TRUE(c.ledger.path.empty());
  EXPECT_EQ(c.ledger.chain_id, 31337u);
  EXPECT_EQ(c.ledger.epoch_length_s, 3600u);
  EXPECT_TRUE(c.ledger.advance_epochs);
  EXPECT_EQ(c.consensus.advertise, "");
  EXPECT_TRUE(c.consensus.register_node);
  EXPECT_EQ(c.consensus.member_timeout_ms, 30000);
  EXPECT_EQ(c.consensus.reattest_timeout_ms, 5000);
  EXPECT_EQ(c.consensus.salt_timeout_ms, 60000);
  EXPECT_EQ(c.consensus.referee_timeout_ms, 60000);
  EXPECT_EQ(c.consensus.peer_call_timeout_ms, 5000);
  EXPECT_EQ(c.consensus.max_committee_size, 16);
  EXPECT_EQ(c.consensus.settlement_batch_size, 100);
  EXPECT_EQ(c.consensus.settlement_max_delay_ms, 2000);
}

TEST(Config, EveryKeyParsed) {
  const NodeConfig c = ParseOk(R"(
node:
  key_file: /keys/k
  data_dir: ../state
api:
  listen: "[::1]:0"
  ports_file: run/ports.json
  max_concurrent_generations: 8
  max_receive_message_bytes: 65536
  max_prompt_bytes: 1000
  allow_anonymous: false
log:
  level: debug
  format: json
engine:
  threads: 2
  device: cuda:1
  dtype: bfloat16
  decode_kernel: portable
  max_batch: 32
  max_running: 24
  max_queue: 5
  max_seq_len: 4096
  max_prompt_tokens: 3000
  max_new_tokens: 1000
  prefill_chunk: 128
  sampling_threads: 3
  max_prefill_tokens_per_step: 100
models:
  - id: demo
    path: /models/a/
  - path: models/b/
shutdown:
  drain_deadline_ms: 0
ledger:
  backend: embedded
  path: ../var/ledger.db
  chain_id: 18446744073709551615
  epoch_length_s: 31536000
  advance_epochs: false
consensus:
  advertise: "node1.example:7000"
  register: false
  member_timeout_ms: 3000
  reattest_timeout_ms: 1000
  salt_timeout_ms: 2000
  referee_timeout_ms: 100
  peer_call_timeout_ms: 10
  max_committee_size: 64
  settlement_batch_size: 1024
  settlement_max_delay_ms: 200
)");
  EXPECT_EQ(c.node.key_file, fs::path("/keys/k"));
  EXPECT_EQ(c.node.data_dir, fs::path("/etc/state"));
  EXPECT_EQ(c.api.listen, "[::1]:0");
  EXPECT_EQ(c.api.ports_file, fs::path("/etc/atoma/run/ports.json"));
  EXPECT_EQ(c.api.max_concurrent_generations, 8);
  EXPECT_EQ(c.api.max_receive_message_bytes, 65536);
  EXPECT_EQ(c.api.max_prompt_bytes, 1000);
  EXPECT_FALSE(c.api.allow_anonymous);
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(c.engine.threads, 2);
  EXPECT_EQ(c.engine.device, "cuda:1");
  EXPECT_EQ(c.engine.dtype, "bfloat16");
  EXPECT_EQ(c.engine.decode_kernel, "portable");
  EXPECT_EQ(c.engine.max_batch, 32);
  EXPECT_EQ(c.engine.max_running, 24);
  EXPECT_EQ(c.engine.max_queue, 5);
  EXPECT_EQ(c.engine.max_seq_len, 4096);
  EXPECT_EQ(c.engine.max_prompt_tokens, 3000);
  EXPECT_EQ(c.engine.max_new_tokens, 1000);
  EXPECT_EQ(c.engine.prefill_chunk, 128);
  EXPECT_EQ(c.engine.sampling_threads, 3);
  EXPECT_EQ(c.engine.max_prefill_tokens_per_step, 100);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].id, "demo");
  EXPECT_EQ(c.models[0].path, fs::path("/models/a/"));
  EXPECT_EQ(c.models[1].id, "b");  // folder name despite the trailing slash
  EXPECT_EQ(c.shutdown.drain_deadline_ms, 0);
  EXPECT_EQ(c.ledger.backend, "embedded");
  EXPECT_EQ(c.ledger.path, fs::path("/etc/var/ledger.db"));  // relative to the config folder
  EXPECT_EQ(c.ledger.chain_id, 18446744073709551615u);
  EXPECT_EQ(c.ledger.epoch_length_s, 31536000u);
  EXPECT_FALSE(c.ledger.advance_epochs);
  EXPECT_EQ(c.consensus.advertise, "node1.example:7000");
  EXPECT_FALSE(c.consensus.register_node);
  EXPECT_EQ(c.consensus.member_timeout_ms, 3000);
  EXPECT_EQ(c.consensus.reattest_timeout_ms, 1000);
  EXPECT_EQ(c.consensus.salt_timeout_ms, 2000);
  EXPECT_EQ(c.consensus.referee_timeout_ms, 100);
  EXPECT_EQ(c.consensus.peer_call_timeout_ms, 10);
  EXPECT_EQ(c.consensus.max_committee_size, 64);
  EXPECT_EQ(c.consensus.settlement_batch_size, 1024);
  EXPECT_EQ(c.consensus.settlement_max_delay_ms, 200);
}

TEST(Config, NullValueMeansDefault) {
  const NodeConfig c = ParseOk(std::string(kMinimal) + "api:\n  ports_file:\n  listen:\n");
  EXPECT_EQ(c.api.listen, "127.0.0.1:50051");
  EXPECT_TRUE(c.api.ports_file.empty());
}

TEST(Config, HttpSection) {
  EXPECT_TRUE(ParseOk(kMinimal).http.listen.empty());
  const NodeConfig c = ParseOk(std::string(kMinimal) + "http:\n  listen: 127.0.0.1:0\n");
  EXPECT_EQ(c.http.listen, "127.0.0.1:0");
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "http:\n  port: 1\n").find("http.port: unknown key"),
            std::string::npos);
  EXPECT_TRUE(c.http.api_keys_file.empty());
  // A relative api_keys_file is relative to the config file's folder, as the other paths.
  EXPECT_EQ(ParseOk(std::string(kMinimal) + "http:\n  api_keys_file: keys/http_keys\n")
                .http.api_keys_file,
            fs::path("/etc/atoma/keys/http_keys"));
  EXPECT_EQ(
      ParseOk(std::string(kMinimal) + "http:\n  api_keys_file: /run/keys\n").http.api_keys_file,
      fs::path("/run/keys"));
}

TEST(Config, UnknownKeysAreErrors) {
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "engine:\n  max_batc: 4\n"),
            "node.yaml: engine.max_batc: unknown key (line 7); did you mean max_batch?");
  const std::string top = ErrorOf(std::string(kMinimal) + "telemetry: true\n");
  EXPECT_EQ(top.rfind("node.yaml: telemetry: unknown key (line 6); known keys: node, api", 0), 0u)
      << top;
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "api:\n  port: 1\n").find("api.port: unknown key"),
            std::string::npos);
  EXPECT_NE(ErrorOf("node:\n  key_file: k\nmodels:\n  - path: m\n    revision: 3\n")
                .find("models[0].revision: unknown key"),
            std::string::npos);
}

TEST(Config, LedgerAndConsensusKeysAreChecked) {
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "ledger:\n  backnd: none\n"),
            "node.yaml: ledger.backnd: unknown key (line 7); did you mean backend?");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "consensus:\n  register_node: true\n")
                .rfind("node.yaml: consensus.register_node: unknown key (line 7); known keys: ", 0),
            0u);
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "ledger:\n  chain_id: -1\n"),
            "node.yaml: ledger.chain_id: expected a non-negative integer, got \"-1\" (line 7)");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "ledger:\n  chain_id: 18446744073709551616\n"),
            "node.yaml: ledger.chain_id: integer out of range, got 18446744073709551616 (line 7)");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "ledger:\n  epoch_length_s: [1]\n"),
            "node.yaml: ledger.epoch_length_s: expected a non-negative integer (line 7)");
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "consensus:\n  register: sometimes\n"),
            "node.yaml: consensus.register: expected true or false, got \"sometimes\" (line 7)");
  EXPECT_NE(
      ErrorOf(std::string(kMinimal) + "ledger: embedded\n").find("ledger: expected a mapping"),
      std::string::npos);
}

TEST(Config, EvmLedgerKeys) {
  const NodeConfig c = ParseOk(std::string(kMinimal) +
                               "ledger:\n  backend: evm\n  rpc_url: http://127.0.0.1:8545\n"
                               "  contract: 0x5FbDB2315678afecb367f032d93F642f64180aa3\n"
                               "  chain_id: 31337\n  confirmations: 2\n"
                               "  receipt_timeout_ms: 5000\n");
  EXPECT_EQ(c.ledger.backend, "evm");
  EXPECT_EQ(c.ledger.rpc_url, "http://127.0.0.1:8545");
  EXPECT_EQ(c.ledger.contract, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
  EXPECT_EQ(c.ledger.confirmations, 2u);
  EXPECT_EQ(c.ledger.receipt_timeout_ms, 5000);
  // Defaults.
  const NodeConfig d = ParseOk(kMinimal);
  EXPECT_TRUE(d.ledger.rpc_url.empty());
  EXPECT_EQ(d.ledger.confirmations, 0u);
  EXPECT_EQ(d.ledger.receipt_timeout_ms, 120000);
  // Required with evm, and checked.
  EXPECT_NE(
      ErrorOf(std::string(kMinimal) + "ledger:\n  backend: evm\n"
                                      "  contract: 0x5FbDB2315678afecb367f032d93F642f64180aa3\n")
          .find("ledger.rpc_url: required when ledger.backend is evm"),
      std::string::npos);
  EXPECT_NE(
      ErrorOf(std::string(kMinimal) + "ledger:\n  backend: evm\n  rpc_url: ws://x:1\n"
                                      "  contract: 0x5FbDB2315678afecb367f032d93F642f64180aa3\n")
          .find("an http:// or https:// URL, got \"ws://x:1\""),
      std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) +
                    "ledger:\n  backend: evm\n  rpc_url: http://x:1\n  contract: 0x5FbDB23\n")
                .find("ledger.contract: required when ledger.backend is evm"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "ledger:\n  confirmations: 1001\n")
                .find("ledger.confirmations: must be between 0 and 1000"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "ledger:\n  receipt_timeout_ms: 10\n")
                .find("ledger.receipt_timeout_ms"),
            std::string::npos);
}

TEST(Config, DuplicateKeysAreErrors) {
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "engine:\n  max_batch: 4\n  max_batch: 8\n")
                .find("engine.max_batch: duplicate key"),
            std::string::npos);
}

TEST(Config, TypeErrorsNameTheKey) {
  EXPECT_EQ(ErrorOf(std::string(kMinimal) + "engine:\n  max_batch: lots\n"),
            "node.yaml: engine.max_batch: expected an integer, got \"lots\" (line 7)");
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "engine:\n  max_batch: 1.5\n")
                .find("engine.max_batch: expected an integer"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "engine:\n  max_batch: 99999999999\n")
                .find("engine.max_batch: integer out of range"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "engine:\n  max_batch: [1]\n")
                .find("engine.max_batch: expected an integer"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "api:\n  allow_anonymous: maybe\n")
                .find("api.allow_anonymous: expected true or false, got \"maybe\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "log:\n  level: {a: 1}\n")
                .find("log.level: expected a string"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kMinimal) + "engine: 5\n").find("engine: expected a mapping"),
            std::string::npos);
  EXPECT_NE(ErrorOf("node:\n  key_file: k\nmodels: m\n").find("models: expected a list"),
            std::string::npos);
  EXPECT_NE(ErrorOf("node:\n  key_file: k\nmodels:\n  - m\n").find("models[0]: expected a mapping"),
            std::string::npos);
  EXPECT_NE(ErrorOf("- a\n- b\n").find("config: expected a mapping"), std::string::npos);
}

TEST(Config, YamlSyntaxErrorsGiveLine) {
  const std::string error = ErrorOf("node:\n  key_file: [unclosed\nmodels: {}\n");
  EXPECT_EQ(error.rfind("node.yaml: invalid YAML at line ", 0), 0u) << error;
}

TEST(Config, EmptyFileNeedsKeyAndModel) {
  EXPECT_EQ(ErrorOf(""),
            "node.yaml: node.key_file: required (create a key with: atoma-cli keygen --out FILE)");
  EXPECT_EQ(ErrorOf("node:\n  key_file: k\n"), "node.yaml: models: at least one model is required");
  EXPECT_EQ(ErrorOf("node:\n  key_file: k\nmodels:\n  - id: x\n"),
            "node.yaml: models[0].path: required");
}

// Every validation rule, by key.
TEST(Config, ValidationErrors) {
  const struct {
    const char* yaml;  // appended to kMinimal
    const char* error;
  } cases[] = {
      {"api:\n  listen: localhost\n",
       "api.listen: expected host:port, got \"localhost\" (no port)"},
      {"api:\n  listen: \":80\"\n", "api.listen: expected host:port, got \":80\" (empty host)"},
      {"api:\n  listen: h:70000\n",
       "api.listen: expected host:port, got \"h:70000\" (port must be 0..65535)"},
      {"api:\n  listen: h:x\n",
       "api.listen: expected host:port, got \"h:x\" (port must be 0..65535)"},
      {"api:\n  listen: \"::1:80\"\n",
       "api.listen: expected host:port, got \"::1:80\" (write IPv6 hosts in brackets, e.g. "
       "[::1]:50051)"},
      {"api:\n  max_concurrent_generations: 0\n",
       "api.max_concurrent_generations: must be between 1 and 100000, got 0"},
      {"api:\n  max_receive_message_bytes: 100\n",
       "api.max_receive_message_bytes: must be between 1024 and 1073741824, got 100"},
      {"api:\n  max_prompt_bytes: 5000000\n",
       "api.max_prompt_bytes: must be between 1 and api.max_receive_message_bytes (4194304), got "
       "5000000"},
      {"metrics:\n  listen: nowhere\n",
       "metrics.listen: expected host:port, got \"nowhere\" (no port)"},
      {"http:\n  listen: nowhere\n", "http.listen: expected host:port, got \"nowhere\" (no port)"},
      {"api:\n  tls_cert_file: node.pem\n",
       "api.tls_key_file: required when the other TLS file is set (give both or neither)"},
      {"api:\n  tls_key_file: node.key\n",
       "api.tls_cert_file: required when the other TLS file is set (give both or neither)"},
      {"http:\n  tls_cert_file: node.pem\n",
       "http.tls_key_file: required when the other TLS file is set (give both or neither)"},
      {"log:\n  level: verbose\n",
       "log.level: must be one of trace|debug|info|warn|error|off, got \"verbose\""},
      {"log:\n  format: xml\n", "log.format: must be one of text|json, got \"xml\""},
      {"engine:\n  threads: -1\n", "engine.threads: must be between 0 and 1024, got -1"},
      {"engine:\n  device: tpu\n", "engine.device: must be one of auto|cpu|cuda, got \"tpu\""},
      {"engine:\n  device: \"cuda:\"\n",
       "engine.device: must be one of auto|cpu|cuda, got \"cuda:\""},
      {"engine:\n  dtype: int8\n",
       "engine.dtype: must be one of auto|float32|bfloat16|float16, got \"int8\""},
      {"engine:\n  decode_kernel: torch\n",
       "engine.decode_kernel: must be one of auto|avx2|portable, got \"torch\""},
      {"engine:\n  max_batch: 0\n", "engine.max_batch: must be between 1 and 256, got 0"},
      {"engine:\n  max_batch: 257\n", "engine.max_batch: must be between 1 and 256, got 257"},
      {"engine:\n  max_batch: 8\n",
       "engine.max_running: must be between 1 and engine.max_batch (8), got 16"},
      {"engine:\n  max_running: 0\n",
       "engine.max_running: must be between 1 and engine.max_batch (16), got 0"},
      {"engine:\n  max_queue: 0\n", "engine.max_queue: must be between 1 and 100000, got 0"},
      {"engine:\n  max_seq_len: 8\n", "engine.max_seq_len: must be between 16 and 1048576, got 8"},
      {"engine:\n  max_prompt_tokens: 4096\n",
       "engine.max_prompt_tokens: must be between 1 and engine.max_seq_len (2048), got 4096"},
      {"engine:\n  max_new_tokens: 0\n",
       "engine.max_new_tokens: must be between 1 and engine.max_seq_len (2048), got 0"},
      {"engine:\n  prefill_chunk: 0\n", "engine.prefill_chunk: must be between 1 and 65536, got 0"},
      {"engine:\n  sampling_threads: 65\n",
       "engine.sampling_threads: must be between 0 and 64, got 65"},
      {"engine:\n  max_prefill_tokens_per_step: 0\n",
       "engine.max_prefill_tokens_per_step: must be between 1 and 1048576, got 0"},
      {"shutdown:\n  drain_deadline_ms: -5\n",
       "shutdown.drain_deadline_ms: must be between 0 and 3600000, got -5"},
      {"node:\n  data_dir: \"\"\n", "node.data_dir: must not be empty"},
      {"ledger:\n  backend: chain\n",
       "ledger.backend: must be one of none|embedded|evm, got \"chain\""},
      {"ledger:\n  backend: embedded\n", "ledger.path: required when ledger.backend is embedded"},
      {"ledger:\n  backend: embedded\n  path: \"\"\n",
       "ledger.path: required when ledger.backend is embedded"},
      {"ledger:\n  chain_id: 0\n", "ledger.chain_id: must be at least 1, got 0"},
      {"ledger:\n  epoch_length_s: 0\n",
       "ledger.epoch_length_s: must be between 1 and 31536000, got 0"},
      {"ledger:\n  epoch_length_s: 31536001\n",
       "ledger.epoch_length_s: must be between 1 and 31536000, got 31536001"},
      {"consensus:\n  advertise: nowhere\n",
       "consensus.advertise: expected host:port, got \"nowhere\" (no port)"},
      {"consensus:\n  advertise: \"10.0.0.1:0\"\n",
       "consensus.advertise: port must be 1..65535, got \"10.0.0.1:0\""},
      {"consensus:\n  member_timeout_ms: 99\n",
       "consensus.member_timeout_ms: must be between 100 and 3600000, got 99"},
      {"consensus:\n  member_timeout_ms: 3600001\n",
       "consensus.member_timeout_ms: must be between 100 and 3600000, got 3600001"},
      {"consensus:\n  reattest_timeout_ms: 9\n",
       "consensus.reattest_timeout_ms: must be between 10 and 600000, got 9"},
      {"consensus:\n  reattest_timeout_ms: 600001\n",
       "consensus.reattest_timeout_ms: must be between 10 and 600000, got 600001"},
      {"consensus:\n  referee_timeout_ms: 99\n",
       "consensus.referee_timeout_ms: must be between 100 and 3600000, got 99"},
      {"consensus:\n  peer_call_timeout_ms: 600001\n",
       "consensus.peer_call_timeout_ms: must be between 10 and 600000, got 600001"},
      {"consensus:\n  max_committee_size: 0\n",
       "consensus.max_committee_size: must be between 1 and 64, got 0"},
      {"consensus:\n  max_committee_size: 65\n",
       "consensus.max_committee_size: must be between 1 and 64, got 65"},
      {"consensus:\n  settlement_batch_size: 1025\n",
       "consensus.settlement_batch_size: must be between 1 and 1024, got 1025"},
      {"consensus:\n  settlement_max_delay_ms: 0\n",
       "consensus.settlement_max_delay_ms: must be between 1 and 3600000, got 0"},
  };
  for (const auto& c : cases) {
    // Later sections replace earlier ones' keys only when they are the same key, so re-emit the
    // minimal sections where a case has its own node: section.
    std::string yaml = std::string(c.yaml).starts_with("node:")
                           ? std::string(
                                 "node:\n  key_file: k\n  data_dir: \"\"\nmodels:\n  - "
                                 "path: m\n")
                           : std::string(kMinimal) + c.yaml;
    EXPECT_EQ(ErrorOf(yaml), std::string("node.yaml: ") + c.error) << c.yaml;
  }
}

TEST(Config, ModelIdRules) {
  EXPECT_EQ(ErrorOf("node:\n  key_file: k\nmodels:\n  - path: a/x\n  - path: b/x\n"),
            "node.yaml: models[1].id: duplicate model id \"x\"");
  EXPECT_EQ(ErrorOf("node:\n  key_file: k\nmodels:\n  - path: a\n    id: \"my model\"\n"),
            "node.yaml: models[0].id: must be 1 to 128 characters of A-Z a-z 0-9 . _ - : /, got "
            "\"my model\"");
  const NodeConfig c =
      ParseOk("node:\n  key_file: k\nmodels:\n  - path: a/x\n  - path: b/x\n    id: org/x-2:v1\n");
  EXPECT_EQ(c.models[1].id, "org/x-2:v1");
}

TEST(Config, OverridesReplaceAndAreValidated) {
  NodeConfig c = ParseOk(kMinimal);
  Overrides o;
  o.listen = "0.0.0.0:0";
  o.log_level = "debug";
  o.ports_file = "relative/ports.json";
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  EXPECT_EQ(c.api.listen, "0.0.0.0:0");
  EXPECT_EQ(c.log.level, "debug");
  // Relative to the working directory, not the config folder.
  EXPECT_EQ(c.api.ports_file, fs::current_path() / "relative/ports.json");

  NodeConfig d = ParseOk(kMinimal);
  Overrides bad_listen;
  bad_listen.listen = "nowhere";
  EXPECT_EQ(ApplyOverrides(bad_listen, &d).message(),
            "--listen: expected host:port, got \"nowhere\" (no port)");
  EXPECT_EQ(d.api.listen, "127.0.0.1:50051");
  Overrides bad_level;
  bad_level.log_level = "loud";
  EXPECT_EQ(ApplyOverrides(bad_level, &d).message(),
            "--log-level: must be one of trace|debug|info|warn|error|off, got \"loud\"");
}

TEST(Config, LoadFileResolvesAgainstItsFolder) {
  const fs::path dir =
      fs::temp_directory_path() / ("atoma_config_test_" + std::to_string(getpid()));
  fs::create_directories(dir / "etc");
  std::ofstream(dir / "etc" / "node.yaml") << kMinimal;
  auto c = LoadConfigFile(dir / "etc" / "node.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->node.key_file, (dir / "etc" / "keys" / "node.key").lexically_normal());
  EXPECT_EQ(LoadConfigFile(dir / "missing.yaml").status().code(), absl::StatusCode::kNotFound);
  fs::remove_all(dir);
}

// The shipped example files parse, and document every key the parser knows.
TEST(Config, ShippedExamplesParseAndDocumentEveryKey) {
  const char* src = std::getenv("ATOMA_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "ATOMA_SOURCE_DIR must point at the repository";
  const fs::path config_dir = fs::path(src) / "config";
  for (const char* name : {"node.yaml", "node.minimal.yaml"}) {
    auto c = LoadConfigFile(config_dir / name);
    EXPECT_TRUE(c.ok()) << name << ": " << c.status();
  }
  std::ifstream in(config_dir / "node.yaml");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* key : {"key_file:",
                          "data_dir:",
                          "listen:",
                          "ports_file:",
                          "max_concurrent_generations:",
                          "max_receive_message_bytes:",
                          "max_prompt_bytes:",
                          "allow_anonymous:",
                          "level:",
                          "format:",
                          "threads:",
                          "device:",
                          "dtype:",
                          "decode_kernel:",
                          "max_batch:",
                          "max_running:",
                          "max_queue:",
                          "max_seq_len:",
                          "max_prompt_tokens:",
                          "max_new_tokens:",
                          "prefill_chunk:",
                          "sampling_threads:",
                          "max_prefill_tokens_per_step:",
                          "models:",
                          "id:",
                          "path:",
                          "drain_deadline_ms:",
                          "ledger:",
                          "backend:",
                          "chain_id:",
                          "epoch_length_s:",
                          "advance_epochs:",
                          "consensus:",
                          "advertise:",
                          "register:",
                          "member_timeout_ms:",
                          "reattest_timeout_ms:",
                          "referee_timeout_ms:",
                          "peer_call_timeout_ms:",
                          "max_committee_size:",
                          "settlement_batch_size:",
                          "settlement_max_delay_ms:",
                          "salt_timeout_ms:",
                          "peer_ca_file:",
                          "tls_cert_file:",
                          "tls_key_file:",
                          "metrics:",
                          "http:",
                          "api_keys_file:"}) {
    EXPECT_NE(text.find(key), std::string::npos) << "config/node.yaml does not show " << key;
  }
  // Every key's documented default matches the code: the file spells out the defaults, so the
  // parsed example must equal a minimal config apart from the values the demo sets on purpose.
  auto example = LoadConfigFile(config_dir / "node.yaml");
  ASSERT_TRUE(example.ok());
  const NodeConfig defaults = ParseOk(kMinimal);
  EXPECT_EQ(example->api.max_concurrent_generations, defaults.api.max_concurrent_generations);
  EXPECT_EQ(example->api.max_receive_message_bytes, defaults.api.max_receive_message_bytes);
  EXPECT_EQ(example->api.max_prompt_bytes, defaults.api.max_prompt_bytes);
  EXPECT_EQ(example->engine.max_batch, defaults.engine.max_batch);
  EXPECT_EQ(example->engine.max_queue, defaults.engine.max_queue);
  EXPECT_EQ(example->engine.max_seq_len, defaults.engine.max_seq_len);
  EXPECT_EQ(example->engine.prefill_chunk, defaults.engine.prefill_chunk);
  EXPECT_EQ(example->engine.max_prefill_tokens_per_step,
            defaults.engine.max_prefill_tokens_per_step);
  EXPECT_EQ(example->engine.sampling_threads, defaults.engine.sampling_threads);
  EXPECT_EQ(example->shutdown.drain_deadline_ms, defaults.shutdown.drain_deadline_ms);
  EXPECT_EQ(example->ledger.backend, defaults.ledger.backend);
  EXPECT_EQ(example->ledger.path, defaults.ledger.path);
  EXPECT_EQ(example->ledger.chain_id, defaults.ledger.chain_id);
  EXPECT_EQ(example->ledger.epoch_length_s, defaults.ledger.epoch_length_s);
  EXPECT_EQ(example->ledger.advance_epochs, defaults.ledger.advance_epochs);
  EXPECT_EQ(example->consensus.advertise, defaults.consensus.advertise);
  EXPECT_EQ(example->consensus.register_node, defaults.consensus.register_node);
  EXPECT_EQ(example->consensus.member_timeout_ms, defaults.consensus.member_timeout_ms);
  EXPECT_EQ(example->consensus.reattest_timeout_ms, defaults.consensus.reattest_timeout_ms);
  EXPECT_EQ(example->consensus.referee_timeout_ms, defaults.consensus.referee_timeout_ms);
  EXPECT_EQ(example->consensus.peer_call_timeout_ms, defaults.consensus.peer_call_timeout_ms);
  EXPECT_EQ(example->consensus.max_committee_size, defaults.consensus.max_committee_size);
  EXPECT_EQ(example->consensus.settlement_batch_size, defaults.consensus.settlement_batch_size);
  EXPECT_EQ(example->consensus.settlement_max_delay_ms, defaults.consensus.settlement_max_delay_ms);
  EXPECT_EQ(example->http.api_keys_file, defaults.http.api_keys_file);
}

}  // namespace
}  // namespace atoma::config
