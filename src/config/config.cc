#include "atoma/config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "atoma/common/status.h"

namespace atoma::config {
namespace {

// Debian's abseil has its own absl::string_view, which does not convert from std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status KeyError(std::string_view path, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(path), ": ", Sv(message)));
}

std::string Join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(Sv(path), ".", Sv(key));
}

// " (line N)" for a node that came from the file.
std::string LineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return absl::StrCat(" (line ", mark.line + 1, ")");
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// A YAML mapping being read: every key must be one of `known` and appear once. Values that are
// YAML null (`key:` with nothing after it) count as absent, so the default applies.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {}

  absl::Status CheckKeys(std::initializer_list<std::string_view> known) const {
    if (!node_.IsMap()) {
      return KeyError(path_.empty() ? "config" : path_,
                      absl::StrCat("expected a mapping of keys to values", LineOf(node_)));
    }
    std::set<std::string, std::less<>> seen;
    for (const auto& item : node_) {
      if (!item.first.IsScalar()) {
        return KeyError(path_.empty() ? "config" : path_,
                        absl::StrCat("keys must be plain names", LineOf(item.first)));
      }
      const std::string& key = item.first.Scalar();
      if (!seen.insert(key).second) {
        return KeyError(Join(path_, key), absl::StrCat("duplicate key", LineOf(item.first)));
      }
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string_view best;
      size_t best_distance = 3;  // suggest only close matches
      for (std::string_view k : known) {
        const size_t d = EditDistance(key, k);
        if (d < best_distance) {
          best = k;
          best_distance = d;
        }
      }
      std::vector<std::string> names(known.begin(), known.end());
      return KeyError(
          Join(path_, key),
          absl::StrCat("unknown key", LineOf(item.first),
                       best.empty() ? absl::StrCat("; known keys: ", absl::StrJoin(names, ", "))
                                    : absl::StrCat("; did you mean ", Sv(best), "?")));
    }
    return absl::OkStatus();
  }

  // The value of `key`, or an undefined node when absent or null.
  YAML::Node Get(std::string_view key) const {
    YAML::Node value = node_[std::string(key)];
    if (!value.IsDefined() || value.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    return value;
  }

  std::string PathOf(std::string_view key) const { return Join(path_, key); }

  absl::Status Int(std::string_view key, int* out) const {
    const YAML::Node value = Get(key);
    if (!value.IsDefined()) return absl::OkStatus();
    const std::string path = PathOf(key);
    if (!value.IsScalar())
      return KeyError(path, absl::StrCat("expected an integer", LineOf(value)));
    const std::string& text = value.Scalar();
    int64_t parsed = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc() && end == text.data() + text.size() &&
         (parsed < std::numeric_limits<int>::min() || parsed > std::numeric_limits<int>::max()))) {
      return KeyError(path, absl::StrCat("integer out of range, got ", text, LineOf(value)));
    }
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      return KeyError(path, absl::StrCat("expected an integer, got \"", text, "\"", LineOf(value)));
    }
    *out = static_cast<int>(parsed);
    return absl::OkStatus();
  }

  absl::Status UInt64(std::string_view key, uint64_t* out) const {
    const YAML::Node value = Get(key);
    if (!value.IsDefined()) return absl::OkStatus();
    const std::string path = PathOf(key);
    if (!value.IsScalar()) {
      return KeyError(path, absl::StrCat("expected a non-negative integer", LineOf(value)));
    }
    const std::string& text = value.Scalar();
    uint64_t parsed = 0;
    // from_chars on an unsigned type rejects a leading '-', so "-1" is a type error here.
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec == std::errc::result_out_of_range) {
      return KeyError(path, absl::StrCat("integer out of range, got ", text, LineOf(value)));
    }
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      return KeyError(
          path, absl::StrCat("expected a non-negative integer, got \"", text, "\"", LineOf(value)));
    }
    *out = parsed;
    return absl::OkStatus();
  }

  absl::Status Bool(std::string_view key, bool* out) const {
    const YAML::Node value = Get(key);
    if (!value.IsDefined()) return absl::OkStatus();
    const std::string path = PathOf(key);
    const std::string text = value.IsScalar() ? value.Scalar() : "";
    if (text == "true" || text == "True" || text == "TRUE" || text == "yes" || text == "on") {
      *out = true;
    } else if (text == "false" || text == "False" || text == "FALSE" || text == "no" ||
               text == "off") {
      *out = false;
    } else {
      return KeyError(path,
                      absl::StrCat("expected true or false, got \"", text, "\"", LineOf(value)));
    }
    return absl::OkStatus();
  }

  absl::Status String(std::string_view key, std::string* out) const {
    const YAML::Node value = Get(key);
    if (!value.IsDefined()) return absl::OkStatus();
    if (!value.IsScalar()) {
      return KeyError(PathOf(key), absl::StrCat("expected a string", LineOf(value)));
    }
    *out = value.Scalar();
    return absl::OkStatus();
  }

  // A path; relative ones resolve against `base_dir`. An empty string means "none".
  absl::Status Path(std::string_view key, const std::filesystem::path& base_dir,
                    std::filesystem::path* out) const {
    std::string text;
    const bool present = Get(key).IsDefined();
    RETURN_IF_ERROR(String(key, &text));
    if (!present) return absl::OkStatus();
    if (text.empty()) {
      *out = std::filesystem::path();
      return absl::OkStatus();
    }
    std::filesystem::path p(text);
    *out = (p.is_absolute() ? p : base_dir / p).lexically_normal();
    return absl::OkStatus();
  }

  MapReader Child(std::string_view key) const {
    const YAML::Node value = Get(key);
    return MapReader(value.IsDefined() ? value : YAML::Node(YAML::NodeType::Map), PathOf(key));
  }

 private:
  YAML::Node node_;
  std::string path_;
};

absl::Status CheckRange(std::string_view path, int value, int lo, int hi) {
  if (value < lo || value > hi) {
    return KeyError(path, absl::StrCat("must be between ", lo, " and ", hi, ", got ", value));
  }
  return absl::OkStatus();
}

// For bounds that come from another key: "must be between 1 and engine.max_batch (16), got 32".
absl::Status CheckRangeTo(std::string_view path, int value, int lo, std::string_view hi_key,
                          int hi) {
  if (value < lo || value > hi) {
    return KeyError(path, absl::StrCat("must be between ", lo, " and ", Sv(hi_key), " (", hi,
                                       "), got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckOneOf(std::string_view path, const std::string& value,
                        std::initializer_list<std::string_view> allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return absl::OkStatus();
  std::vector<std::string> names(allowed.begin(), allowed.end());
  return KeyError(
      path, absl::StrCat("must be one of ", absl::StrJoin(names, "|"), ", got \"", value, "\""));
}

bool IsModelIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == ':' || c == '/';
}

std::string FolderName(const std::filesystem::path& p) {
  std::filesystem::path normal = p.lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();
  return normal.filename().string();
}

absl::StatusOr<NodeConfig> FromYaml(const YAML::Node& root, const std::filesystem::path& base) {
  NodeConfig c;
  // Defaults that depend on where the file is.
  c.node.data_dir = (base / "data").lexically_normal();

  const MapReader top(root.IsDefined() && !root.IsNull() ? root : YAML::Node(YAML::NodeType::Map),
                      "");
  RETURN_IF_ERROR(top.CheckKeys({"node", "api", "log", "engine", "models", "shutdown", "ledger",
                                 "consensus", "metrics", "http"}));

  const MapReader node = top.Child("node");
  RETURN_IF_ERROR(node.CheckKeys({"key_file", "data_dir"}));
  RETURN_IF_ERROR(node.Path("key_file", base, &c.node.key_file));
  RETURN_IF_ERROR(node.Path("data_dir", base, &c.node.data_dir));

  const MapReader api = top.Child("api");
  RETURN_IF_ERROR(api.CheckKeys({"listen", "ports_file", "max_concurrent_generations",
                                 "max_receive_message_bytes", "max_prompt_bytes", "allow_anonymous",
                                 "tls_cert_file", "tls_key_file", "admin_token_file"}));
  RETURN_IF_ERROR(api.String("listen", &c.api.listen));
  RETURN_IF_ERROR(api.Path("ports_file", base, &c.api.ports_file));
  RETURN_IF_ERROR(api.Int("max_concurrent_generations", &c.api.max_concurrent_generations));
  RETURN_IF_ERROR(api.Int("max_receive_message_bytes", &c.api.max_receive_message_bytes));
  RETURN_IF_ERROR(api.Int("max_prompt_bytes", &c.api.max_prompt_bytes));
  RETURN_IF_ERROR(api.Bool("allow_anonymous", &c.api.allow_anonymous));
  RETURN_IF_ERROR(api.Path("tls_cert_file", base, &c.api.tls_cert_file));
  RETURN_IF_ERROR(api.Path("tls_key_file", base, &c.api.tls_key_file));
  RETURN_IF_ERROR(api.Path("admin_token_file", base, &c.api.admin_token_file));

  const MapReader log = top.Child("log");
  RETURN_IF_ERROR(log.CheckKeys({"level", "format"}));
  RETURN_IF_ERROR(log.String("level", &c.log.level));
  RETURN_IF_ERROR(log.String("format", &c.log.format));

  const MapReader engine = top.Child("engine");
  RETURN_IF_ERROR(
      engine.CheckKeys({"threads", "device", "dtype", "decode_kernel", "max_batch", "max_running",
                        "max_queue", "max_seq_len", "max_prompt_tokens", "max_new_tokens",
                        "prefill_chunk", "max_prefill_tokens_per_step", "sampling_threads"}));
  EngineSection& e = c.engine;
  RETURN_IF_ERROR(engine.Int("threads", &e.threads));
  RETURN_IF_ERROR(engine.String("device", &e.device));
  RETURN_IF_ERROR(engine.String("dtype", &e.dtype));
  RETURN_IF_ERROR(engine.String("decode_kernel", &e.decode_kernel));
  RETURN_IF_ERROR(engine.Int("max_batch", &e.max_batch));
  RETURN_IF_ERROR(engine.Int("max_running", &e.max_running));
  RETURN_IF_ERROR(engine.Int("max_queue", &e.max_queue));
  RETURN_IF_ERROR(engine.Int("max_seq_len", &e.max_seq_len));
  RETURN_IF_ERROR(engine.Int("max_prompt_tokens", &e.max_prompt_tokens));
  RETURN_IF_ERROR(engine.Int("max_new_tokens", &e.max_new_tokens));
  RETURN_IF_ERROR(engine.Int("prefill_chunk", &e.prefill_chunk));
  RETURN_IF_ERROR(engine.Int("max_prefill_tokens_per_step", &e.max_prefill_tokens_per_step));
  RETURN_IF_ERROR(engine.Int("sampling_threads", &e.sampling_threads));

  const YAML::Node models = top.Get("models");
  if (models.IsDefined()) {
    if (!models.IsSequence()) {
      return KeyError("models", absl::StrCat("expected a list of {id, path}", LineOf(models)));
    }
    for (size_t i = 0; i < models.size(); ++i) {
      const MapReader m(models[i], absl::StrCat("models[", i, "]"));
      RETURN_IF_ERROR(m.CheckKeys({"id", "path"}));
      ModelEntry entry;
      RETURN_IF_ERROR(m.String("id", &entry.id));
      RETURN_IF_ERROR(m.Path("path", base, &entry.path));
      if (entry.path.empty()) return KeyError(m.PathOf("path"), "required");
      if (entry.id.empty()) entry.id = FolderName(entry.path);
      c.models.push_back(std::move(entry));
    }
  }

  const MapReader shutdown = top.Child("shutdown");
  RETURN_IF_ERROR(shutdown.CheckKeys({"drain_deadline_ms"}));
  RETURN_IF_ERROR(shutdown.Int("drain_deadline_ms", &c.shutdown.drain_deadline_ms));

  const MapReader ledger = top.Child("ledger");
  RETURN_IF_ERROR(
      ledger.CheckKeys({"backend", "path", "chain_id", "epoch_length_s", "advance_epochs",
                        "rpc_url", "contract", "confirmations", "receipt_timeout_ms"}));
  RETURN_IF_ERROR(ledger.String("backend", &c.ledger.backend));
  RETURN_IF_ERROR(ledger.Path("path", base, &c.ledger.path));
  RETURN_IF_ERROR(ledger.UInt64("chain_id", &c.ledger.chain_id));
  RETURN_IF_ERROR(ledger.UInt64("epoch_length_s", &c.ledger.epoch_length_s));
  RETURN_IF_ERROR(ledger.Bool("advance_epochs", &c.ledger.advance_epochs));
  RETURN_IF_ERROR(ledger.String("rpc_url", &c.ledger.rpc_url));
  RETURN_IF_ERROR(ledger.String("contract", &c.ledger.contract));
  RETURN_IF_ERROR(ledger.UInt64("confirmations", &c.ledger.confirmations));
  RETURN_IF_ERROR(ledger.Int("receipt_timeout_ms", &c.ledger.receipt_timeout_ms));

  const MapReader consensus = top.Child("consensus");
  RETURN_IF_ERROR(consensus.CheckKeys(
      {"advertise", "register", "member_timeout_ms", "reattest_timeout_ms", "salt_timeout_ms",
       "referee_timeout_ms", "peer_call_timeout_ms", "max_committee_size", "settlement_batch_size",
       "settlement_max_delay_ms", "peer_ca_file"}));
  ConsensusSection& k = c.consensus;
  RETURN_IF_ERROR(consensus.String("advertise", &k.advertise));
  RETURN_IF_ERROR(consensus.Bool("register", &k.register_node));
  RETURN_IF_ERROR(consensus.Int("member_timeout_ms", &k.member_timeout_ms));
  RETURN_IF_ERROR(consensus.Int("reattest_timeout_ms", &k.reattest_timeout_ms));
  RETURN_IF_ERROR(consensus.Int("salt_timeout_ms", &k.salt_timeout_ms));
  RETURN_IF_ERROR(consensus.Int("referee_timeout_ms", &k.referee_timeout_ms));
  RETURN_IF_ERROR(consensus.Int("peer_call_timeout_ms", &k.peer_call_timeout_ms));
  RETURN_IF_ERROR(consensus.Int("max_committee_size", &k.max_committee_size));
  RETURN_IF_ERROR(consensus.Int("settlement_batch_size", &k.settlement_batch_size));
  RETURN_IF_ERROR(consensus.Int("settlement_max_delay_ms", &k.settlement_max_delay_ms));
  RETURN_IF_ERROR(consensus.Path("peer_ca_file", base, &k.peer_ca_file));

  const MapReader metrics = top.Child("metrics");
  RETURN_IF_ERROR(metrics.CheckKeys({"listen"}));
  RETURN_IF_ERROR(metrics.String("listen", &c.metrics.listen));

  const MapReader http = top.Child("http");
  RETURN_IF_ERROR(http.CheckKeys({"listen", "api_keys_file", "tls_cert_file", "tls_key_file"}));
  RETURN_IF_ERROR(http.String("listen", &c.http.listen));
  RETURN_IF_ERROR(http.Path("api_keys_file", base, &c.http.api_keys_file));
  RETURN_IF_ERROR(http.Path("tls_cert_file", base, &c.http.tls_cert_file));
  RETURN_IF_ERROR(http.Path("tls_key_file", base, &c.http.tls_key_file));
  return c;
}

}  // namespace

absl::Status CheckListenAddress(std::string_view address, std::string_view key) {
  const auto bad = [&](std::string_view why) {
    return KeyError(key,
                    absl::StrCat("expected host:port, got \"", Sv(address), "\" (", Sv(why), ")"));
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("write IPv6 hosts in brackets, e.g. [::1]:50051");
  }
  if (host.empty()) return bad("empty host");
  int port_value = -1;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || port_value < 0 ||
      port_value > 65535) {
    return bad("port must be 0..65535");
  }
  return absl::OkStatus();
}

absl::Status Validate(const NodeConfig& c) {
  if (c.node.key_file.empty()) {
    return KeyError("node.key_file", "required (create a key with: atoma-cli keygen --out FILE)");
  }
  if (c.node.data_dir.empty()) return KeyError("node.data_dir", "must not be empty");

  RETURN_IF_ERROR(CheckListenAddress(c.api.listen, "api.listen"));
  RETURN_IF_ERROR(
      CheckRange("api.max_concurrent_generations", c.api.max_concurrent_generations, 1, 100000));
  RETURN_IF_ERROR(
      CheckRange("api.max_receive_message_bytes", c.api.max_receive_message_bytes, 1024, 1 << 30));
  RETURN_IF_ERROR(CheckRangeTo("api.max_prompt_bytes", c.api.max_prompt_bytes, 1,
                               "api.max_receive_message_bytes", c.api.max_receive_message_bytes));
  if (!c.metrics.listen.empty()) {
    RETURN_IF_ERROR(CheckListenAddress(c.metrics.listen, "metrics.listen"));
  }
  if (!c.http.listen.empty()) {
    RETURN_IF_ERROR(CheckListenAddress(c.http.listen, "http.listen"));
  }
  for (const auto& [section, tls] :
       {std::pair{"api.", std::pair{&c.api.tls_cert_file, &c.api.tls_key_file}},
        std::pair{"http.", std::pair{&c.http.tls_cert_file, &c.http.tls_key_file}}}) {
    if (tls.first->empty() != tls.second->empty()) {
      return KeyError(absl::StrCat(section, tls.first->empty() ? "tls_cert_file" : "tls_key_file"),
                      "required when the other TLS file is set (give both or neither)");
    }
  }

  RETURN_IF_ERROR(
      CheckOneOf("log.level", c.log.level, {"trace", "debug", "info", "warn", "error", "off"}));
  RETURN_IF_ERROR(CheckOneOf("log.format", c.log.format, {"text", "json"}));

  const EngineSection& e = c.engine;
  RETURN_IF_ERROR(CheckRange("engine.threads", e.threads, 0, 1024));
  const bool cuda_n = e.device.size() > 5 && e.device.starts_with("cuda:") &&
                      std::all_of(e.device.begin() + 5, e.device.end(),
                                  [](char ch) { return ch >= '0' && ch <= '9'; });
  if (!cuda_n) RETURN_IF_ERROR(CheckOneOf("engine.device", e.device, {"auto", "cpu", "cuda"}));
  RETURN_IF_ERROR(CheckOneOf("engine.dtype", e.dtype, {"auto", "float32", "bfloat16", "float16"}));
  RETURN_IF_ERROR(
      CheckOneOf("engine.decode_kernel", e.decode_kernel, {"auto", "avx2", "portable"}));
  RETURN_IF_ERROR(CheckRange("engine.max_batch", e.max_batch, 1, 256));
  RETURN_IF_ERROR(
      CheckRangeTo("engine.max_running", e.max_running, 1, "engine.max_batch", e.max_batch));
  RETURN_IF_ERROR(CheckRange("engine.max_queue", e.max_queue, 1, 100000));
  RETURN_IF_ERROR(CheckRange("engine.max_seq_len", e.max_seq_len, 16, 1 << 20));
  RETURN_IF_ERROR(CheckRangeTo("engine.max_prompt_tokens", e.max_prompt_tokens, 1,
                               "engine.max_seq_len", e.max_seq_len));
  RETURN_IF_ERROR(CheckRangeTo("engine.max_new_tokens", e.max_new_tokens, 1, "engine.max_seq_len",
                               e.max_seq_len));
  RETURN_IF_ERROR(CheckRange("engine.prefill_chunk", e.prefill_chunk, 1, 65536));
  RETURN_IF_ERROR(
      CheckRange("engine.max_prefill_tokens_per_step", e.max_prefill_tokens_per_step, 1, 1 << 20));
  RETURN_IF_ERROR(CheckRange("engine.sampling_threads", e.sampling_threads, 0, 64));

  if (c.models.empty()) return KeyError("models", "at least one model is required");
  std::set<std::string, std::less<>> ids;
  for (size_t i = 0; i < c.models.size(); ++i) {
    const ModelEntry& m = c.models[i];
    const std::string path = absl::StrCat("models[", i, "]");
    if (m.path.empty()) return KeyError(path + ".path", "required");
    if (m.id.empty() || m.id.size() > 128 ||
        !std::all_of(m.id.begin(), m.id.end(), IsModelIdChar)) {
      return KeyError(
          path + ".id",
          absl::StrCat("must be 1 to 128 characters of A-Z a-z 0-9 . _ - : /, got \"", m.id, "\""));
    }
    if (!ids.insert(m.id).second) {
      return KeyError(path + ".id", absl::StrCat("duplicate model id \"", m.id, "\""));
    }
  }
  RETURN_IF_ERROR(
      CheckRange("shutdown.drain_deadline_ms", c.shutdown.drain_deadline_ms, 0, 3600000));

  const LedgerSection& l = c.ledger;
  RETURN_IF_ERROR(CheckOneOf("ledger.backend", l.backend, {"none", "embedded", "evm"}));
  if (l.backend == "embedded" && l.path.empty()) {
    return KeyError("ledger.path", "required when ledger.backend is embedded");
  }
  if (l.backend == "evm") {
    if (!l.rpc_url.starts_with("http://") && !l.rpc_url.starts_with("https://")) {
      return KeyError("ledger.rpc_url",
                      absl::StrCat("required when ledger.backend is evm: an http:// or https:// "
                                   "URL, got \"",
                                   l.rpc_url, "\""));
    }
    const bool hex_address = l.contract.size() == 42 && l.contract.starts_with("0x") &&
                             std::all_of(l.contract.begin() + 2, l.contract.end(), [](char ch) {
                               return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
                             });
    if (!hex_address) {
      return KeyError("ledger.contract",
                      absl::StrCat("required when ledger.backend is evm: the contract's address "
                                   "(0x and 40 hex digits), got \"",
                                   l.contract, "\""));
    }
  }
  if (l.confirmations > 1000) {
    return KeyError("ledger.confirmations",
                    absl::StrCat("must be between 0 and 1000, got ", l.confirmations));
  }
  RETURN_IF_ERROR(CheckRange("ledger.receipt_timeout_ms", l.receipt_timeout_ms, 1000, 3600000));
  if (l.chain_id == 0) return KeyError("ledger.chain_id", "must be at least 1, got 0");
  if (l.epoch_length_s < 1 || l.epoch_length_s > 31536000) {
    return KeyError("ledger.epoch_length_s",
                    absl::StrCat("must be between 1 and 31536000, got ", l.epoch_length_s));
  }

  const ConsensusSection& k = c.consensus;
  if (!k.advertise.empty()) {
    RETURN_IF_ERROR(CheckListenAddress(k.advertise, "consensus.advertise"));
    // Peers dial this address, so it needs a real port, not "pick one".
    if (k.advertise.ends_with(":0")) {
      return KeyError("consensus.advertise",
                      absl::StrCat("port must be 1..65535, got \"", k.advertise, "\""));
    }
  }
  RETURN_IF_ERROR(CheckRange("consensus.member_timeout_ms", k.member_timeout_ms, 100, 3600000));
  RETURN_IF_ERROR(CheckRange("consensus.reattest_timeout_ms", k.reattest_timeout_ms, 10, 600000));
  RETURN_IF_ERROR(CheckRange("consensus.salt_timeout_ms", k.salt_timeout_ms, 100, 3600000));
  RETURN_IF_ERROR(CheckRange("consensus.referee_timeout_ms", k.referee_timeout_ms, 100, 3600000));
  RETURN_IF_ERROR(CheckRange("consensus.peer_call_timeout_ms", k.peer_call_timeout_ms, 10, 600000));
  RETURN_IF_ERROR(CheckRange("consensus.max_committee_size", k.max_committee_size, 1, 64));
  RETURN_IF_ERROR(CheckRange("consensus.settlement_batch_size", k.settlement_batch_size, 1, 1024));
  RETURN_IF_ERROR(
      CheckRange("consensus.settlement_max_delay_ms", k.settlement_max_delay_ms, 1, 3600000));
  return absl::OkStatus();
}

absl::StatusOr<NodeConfig> ParseConfig(std::string_view yaml, const std::filesystem::path& base_dir,
                                       std::string_view source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& ex) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(source_name), ": invalid YAML at line ",
                                                   ex.mark.line + 1, ", column ",
                                                   ex.mark.column + 1, ": ", ex.msg));
  }
  absl::StatusOr<NodeConfig> config;
  // Lookups on a malformed tree can still throw (e.g. indexing a scalar); keep them in here.
  try {
    config = FromYaml(root, base_dir);
  } catch (const YAML::Exception& ex) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(source_name), ": ", ex.what()));
  }
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(source_name), ": ", config.status().message()));
  }
  absl::Status valid = Validate(*config);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(source_name), ": ", valid.message()));
  }
  return config;
}

absl::StatusOr<NodeConfig> LoadConfigFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      return absl::NotFoundError(absl::StrCat("config file ", file.string(), " not found"));
    }
    return absl::PermissionDeniedError(absl::StrCat("cannot read config file ", file.string()));
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::filesystem::path base = std::filesystem::absolute(file).parent_path();
  return ParseConfig(text.str(), base, file.string());
}

absl::Status ApplyOverrides(const Overrides& overrides, NodeConfig* config) {
  // Check the flags under their own names first, so an error points at the command line.
  if (overrides.listen) {
    RETURN_IF_ERROR(CheckListenAddress(*overrides.listen, "--listen"));
    config->api.listen = *overrides.listen;
  }
  if (overrides.log_level) {
    RETURN_IF_ERROR(CheckOneOf("--log-level", *overrides.log_level,
                               {"trace", "debug", "info", "warn", "error", "off"}));
    config->log.level = *overrides.log_level;
  }
  if (overrides.ports_file) {
    config->api.ports_file = overrides.ports_file->empty()
                                 ? std::filesystem::path()
                                 : std::filesystem::absolute(*overrides.ports_file);
  }
  return Validate(*config);
}

}  // namespace atoma::config
