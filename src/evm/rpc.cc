#include "atoma/evm/rpc.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <iterator>
#include <mutex>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "atoma/common/status.h"
#include "atoma/evm/abi.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/tx.h"

namespace atoma::evm {
namespace {

using nlohmann::json;

// absl (Debian's build) has its own string_view; std::string_view needs this to reach StrCat.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr absl::string_view kRpcErrorPayload = "type.atoma.dev/atoma.evm.RpcError";
// Node-supplied text in our messages is cut to this many characters (logs must stay bounded).
constexpr size_t kMaxNodeText = 512;

std::string Cut(absl::string_view text) {
  if (text.size() <= kMaxNodeText) return std::string(text);
  return absl::StrCat(text.substr(0, kMaxNodeText), "...");
}

// ---- the JSON-RPC error payload ----

std::optional<std::vector<uint8_t>> RevertBytesOf(const json& data) {
  const json* hex = &data;
  if (data.is_object() && data.contains("data")) hex = &data["data"];
  if (!hex->is_string()) return std::nullopt;
  auto bytes = FromHex(hex->get_ref<const std::string&>());
  if (!bytes.ok()) return std::nullopt;
  return *std::move(bytes);
}

bool LooksLikeRevert(int64_t code, absl::string_view message, const json& data) {
  return code == 3 || absl::StartsWith(message, "execution reverted") ||
         RevertBytesOf(data).has_value();
}

absl::StatusCode CodeFor(int64_t code, absl::string_view message, const json& data) {
  if (LooksLikeRevert(code, message, data)) return absl::StatusCode::kFailedPrecondition;
  switch (code) {
    case -32601:
      return absl::StatusCode::kUnimplemented;
    case -32602:
    case -32600:
      return absl::StatusCode::kInvalidArgument;
    case -32603:
      return absl::StatusCode::kInternal;
    case -32005:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kFailedPrecondition;
  }
}

absl::Status RpcErrorStatus(absl::string_view method, const json& error) {
  RpcError e;
  if (error.is_object()) {
    if (error.contains("code") && error["code"].is_number_integer()) {
      e.code = error["code"].get<int64_t>();
    }
    if (error.contains("message") && error["message"].is_string()) {
      e.message = Cut(error["message"].get_ref<const std::string&>());
    }
    if (error.contains("data")) e.data = error["data"];
  } else {
    e.message = Cut(error.dump());
  }
  std::string message = absl::StrCat(method, ": ", e.message, " (code ", e.code, ")");
  if (auto revert = RevertBytesOf(e.data)) {
    absl::StrAppend(&message, " [", DecodeRevertReason(*revert), "]");
  }
  absl::Status status(CodeFor(e.code, e.message, e.data), message);
  json payload = {{"code", e.code}, {"message", e.message}, {"data", e.data}};
  status.SetPayload(kRpcErrorPayload, absl::Cord(payload.dump()));
  return status;
}

// ---- curl ----

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Body {
  std::string data;
  size_t limit = 0;
  bool exceeded = false;
};

size_t WriteBody(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* body = static_cast<Body*>(user);
  const size_t n = size * nmemb;
  if (body->data.size() + n > body->limit) {
    body->exceeded = true;
    return 0;  // makes curl stop with CURLE_WRITE_ERROR
  }
  body->data.append(ptr, n);
  return n;
}

// Loopback never goes through a proxy (tests set no proxy, but a developer's shell might), on top
// of whatever NO_PROXY the environment lists.
std::string NoProxyList() {
  std::string list = "localhost,127.0.0.1,::1";
  for (const char* var : {"no_proxy", "NO_PROXY"}) {
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') {
      absl::StrAppend(&list, ",", v);
      break;
    }
  }
  return list;
}

class HttpRpcClient final : public RpcClient {
 public:
  explicit HttpRpcClient(RpcOptions options)
      : options_(std::move(options)), no_proxy_(NoProxyList()) {}

  const std::string& url() const override { return options_.url; }

  absl::StatusOr<json> Call(std::string_view method, json params) override {
    if (params.is_null()) params = json::array();
    const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
    const json request = {
        {"jsonrpc", "2.0"}, {"id", id}, {"method", std::string(method)}, {"params", params}};
    const std::string body = request.dump();
    absl::Duration backoff = options_.initial_backoff;
    absl::Status last;
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      if (attempt > 1) {
        absl::SleepFor(backoff);
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      bool retryable = false;
      absl::StatusOr<json> result = Attempt(Sv(method), id, body, retryable);
      if (result.ok() || !retryable) return result;
      last = result.status();
    }
    return absl::UnavailableError(
        absl::StrCat(last.message(), " (after ", options_.max_attempts, " attempts)"));
  }

 private:
  absl::StatusOr<json> Attempt(absl::string_view method, uint64_t id, const std::string& body,
                               bool& retryable) {
    retryable = false;
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
    struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    Body answer;
    answer.limit = options_.max_response_bytes;
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_URL, options_.url.c_str());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
    // Signals for timeouts are not thread-safe; the threaded resolver makes this unnecessary.
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, no_proxy_.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(options_.max_response_bytes));
    const CURLcode rc = curl_easy_perform(curl);
    long http_status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);

    if (answer.exceeded || rc == CURLE_FILESIZE_EXCEEDED) {
      return absl::ResourceExhaustedError(absl::StrCat(method, " at ", options_.url,
                                                       ": answer larger than ",
                                                       options_.max_response_bytes, " bytes"));
    }
    if (rc != CURLE_OK) {
      retryable = true;
      return absl::UnavailableError(absl::StrCat(
          method, " at ", options_.url, ": ", error[0] != '\0' ? error : curl_easy_strerror(rc)));
    }
    if (http_status >= 500 || http_status == 429) {
      retryable = true;
      return absl::UnavailableError(absl::StrCat(method, " at ", options_.url, ": HTTP ",
                                                 http_status, " ", Cut(answer.data)));
    }
    json response = json::parse(answer.data, nullptr, /*allow_exceptions=*/false);
    if (http_status != 200) {
      // Some providers send a JSON-RPC error with a 4xx status; report it as what it is.
      if (response.is_object() && response.contains("error")) {
        return RpcErrorStatus(method, response["error"]);
      }
      return absl::InternalError(absl::StrCat(method, " at ", options_.url, ": HTTP ", http_status,
                                              " ", Cut(answer.data)));
    }
    if (response.is_discarded() || !response.is_object()) {
      return absl::DataLossError(absl::StrCat(method, " at ", options_.url,
                                              ": answer is not a JSON object: ", Cut(answer.data)));
    }
    if (!response.contains("id") || response["id"] != json(id)) {
      return absl::DataLossError(
          absl::StrCat(method, " at ", options_.url, ": answer for another request id"));
    }
    if (response.contains("error") && !response["error"].is_null()) {
      return RpcErrorStatus(method, response["error"]);
    }
    if (!response.contains("result")) {
      return absl::DataLossError(
          absl::StrCat(method, " at ", options_.url, ": answer has neither result nor error"));
    }
    return std::move(response["result"]);
  }

  const RpcOptions options_;
  const std::string no_proxy_;
  std::atomic<uint64_t> next_id_{1};
};

// ---- typed results ----

absl::Status Malformed(absl::string_view method, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(method, ": malformed answer: ", what));
}

// Field `key` of `obj` as a string; DATA_LOSS when missing or not a string.
absl::StatusOr<std::string_view> StrField(absl::string_view method, const json& obj,
                                          const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) {
    return Malformed(method, absl::StrCat("field ", key, " missing or not a string"));
  }
  return std::string_view(obj[key].get_ref<const std::string&>());
}

template <typename T, typename Parse>
absl::StatusOr<T> ParsedField(absl::string_view method, const json& obj, const char* key,
                              Parse parse) {
  ASSIGN_OR_RETURN(std::string_view text, StrField(method, obj, key));
  absl::StatusOr<T> v = parse(text);
  if (!v.ok()) return Malformed(method, absl::StrCat(key, ": ", v.status().message()));
  return v;
}

absl::StatusOr<uint64_t> U64Field(absl::string_view m, const json& o, const char* k) {
  return ParsedField<uint64_t>(m, o, k, ParseQuantityU64);
}
absl::StatusOr<Uint256> U256Field(absl::string_view m, const json& o, const char* k) {
  return ParsedField<Uint256>(m, o, k, ParseQuantity);
}
absl::StatusOr<crypto::Hash256> HashField(absl::string_view m, const json& o, const char* k) {
  return ParsedField<crypto::Hash256>(m, o, k, ParseHash256);
}
absl::StatusOr<crypto::Address> AddressField(absl::string_view m, const json& o, const char* k) {
  return ParsedField<crypto::Address>(m, o, k, ParseAddressHex);
}
absl::StatusOr<std::vector<uint8_t>> BytesField(absl::string_view m, const json& o, const char* k) {
  return ParsedField<std::vector<uint8_t>>(m, o, k, FromHex);
}
// An address field that may be null or absent.
absl::StatusOr<std::optional<crypto::Address>> OptAddressField(absl::string_view m, const json& o,
                                                               const char* k) {
  if (!o.is_object() || !o.contains(k) || o[k].is_null()) return std::nullopt;
  ASSIGN_OR_RETURN(crypto::Address a, AddressField(m, o, k));
  return a;
}

// The result itself (not a field) as a quantity / bytes.
template <typename T, typename Parse>
absl::StatusOr<T> ParsedResult(absl::string_view method, const json& result, Parse parse) {
  if (!result.is_string()) return Malformed(method, "result is not a string");
  absl::StatusOr<T> v = parse(result.get_ref<const std::string&>());
  if (!v.ok()) return Malformed(method, v.status().message());
  return v;
}

absl::StatusOr<Log> ParseLog(absl::string_view m, const json& o) {
  if (!o.is_object()) return Malformed(m, "a log is not an object");
  Log log;
  ASSIGN_OR_RETURN(log.address, AddressField(m, o, "address"));
  if (!o.contains("topics") || !o["topics"].is_array() || o["topics"].size() > 4) {
    return Malformed(m, "log topics");
  }
  for (const json& t : o["topics"]) {
    if (!t.is_string()) return Malformed(m, "log topic is not a string");
    auto h = ParseHash256(t.get_ref<const std::string&>());
    if (!h.ok()) return Malformed(m, absl::StrCat("log topic: ", h.status().message()));
    log.topics.push_back(*h);
  }
  ASSIGN_OR_RETURN(log.data, BytesField(m, o, "data"));
  ASSIGN_OR_RETURN(log.block_number, U64Field(m, o, "blockNumber"));
  ASSIGN_OR_RETURN(log.block_hash, HashField(m, o, "blockHash"));
  ASSIGN_OR_RETURN(log.tx_hash, HashField(m, o, "transactionHash"));
  ASSIGN_OR_RETURN(log.log_index, U64Field(m, o, "logIndex"));
  if (o.contains("removed") && o["removed"].is_boolean()) log.removed = o["removed"].get<bool>();
  return log;
}

json CallObject(const CallRequest& r) {
  json o = json::object();
  if (r.from) o["from"] = AddressHex(*r.from);
  if (r.to) o["to"] = AddressHex(*r.to);
  o["data"] = ToHex(r.data);
  if (r.value) o["value"] = QuantityHex(*r.value);
  if (r.gas) o["gas"] = QuantityHex(*r.gas);
  return o;
}

}  // namespace

std::optional<RpcError> RpcErrorOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRpcErrorPayload);
  if (!payload) return std::nullopt;
  json j = json::parse(std::string(*payload), nullptr, false);
  if (!j.is_object()) return std::nullopt;
  RpcError e;
  if (j.contains("code") && j["code"].is_number_integer()) e.code = j["code"].get<int64_t>();
  if (j.contains("message") && j["message"].is_string()) {
    e.message = j["message"].get<std::string>();
  }
  if (j.contains("data")) e.data = j["data"];
  return e;
}

std::optional<std::vector<uint8_t>> RevertData(const absl::Status& status) {
  std::optional<RpcError> e = RpcErrorOf(status);
  if (!e) return std::nullopt;
  return RevertBytesOf(e->data);
}

bool IsRevert(const absl::Status& status) {
  std::optional<RpcError> e = RpcErrorOf(status);
  return e && LooksLikeRevert(e->code, e->message, e->data);
}

absl::StatusOr<std::unique_ptr<RpcClient>> RpcClient::MakeHttp(RpcOptions options) {
  if (!absl::StartsWith(options.url, "http://") && !absl::StartsWith(options.url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("rpc url must start with http:// or https://, got \"", options.url, "\""));
  }
  if (options.max_attempts < 1 || options.timeout <= absl::ZeroDuration() ||
      options.connect_timeout <= absl::ZeroDuration() || options.max_response_bytes == 0 ||
      options.initial_backoff < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "rpc options: max_attempts >= 1, positive timeouts and response limit required");
  }
  GlobalInit();
  return std::unique_ptr<RpcClient>(new HttpRpcClient(std::move(options)));
}

// ---- EthClient ----

absl::StatusOr<uint64_t> EthClient::ChainId() {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_chainId", json::array()));
  return ParsedResult<uint64_t>("eth_chainId", r, ParseQuantityU64);
}

absl::StatusOr<uint64_t> EthClient::BlockNumber() {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_blockNumber", json::array()));
  return ParsedResult<uint64_t>("eth_blockNumber", r, ParseQuantityU64);
}

absl::StatusOr<std::optional<BlockHeader>> EthClient::GetBlock(std::string_view block) {
  constexpr char m[] = "eth_getBlockByNumber";
  ASSIGN_OR_RETURN(json r, rpc_->Call(m, json::array({std::string(block), false})));
  if (r.is_null()) return std::nullopt;
  BlockHeader h;
  ASSIGN_OR_RETURN(h.number, U64Field(m, r, "number"));
  ASSIGN_OR_RETURN(h.hash, HashField(m, r, "hash"));
  ASSIGN_OR_RETURN(h.timestamp, U64Field(m, r, "timestamp"));
  if (r.contains("baseFeePerGas") && !r["baseFeePerGas"].is_null()) {
    ASSIGN_OR_RETURN(h.base_fee, U256Field(m, r, "baseFeePerGas"));
  }
  return h;
}

absl::StatusOr<Uint256> EthClient::GetBalance(const crypto::Address& address,
                                              std::string_view block) {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_getBalance", json::array({AddressHex(address), block})));
  return ParsedResult<Uint256>("eth_getBalance", r, ParseQuantity);
}

absl::StatusOr<uint64_t> EthClient::GetTransactionCount(const crypto::Address& address,
                                                        std::string_view block) {
  ASSIGN_OR_RETURN(
      json r, rpc_->Call("eth_getTransactionCount", json::array({AddressHex(address), block})));
  return ParsedResult<uint64_t>("eth_getTransactionCount", r, ParseQuantityU64);
}

absl::StatusOr<std::vector<uint8_t>> EthClient::GetCode(const crypto::Address& address,
                                                        std::string_view block) {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_getCode", json::array({AddressHex(address), block})));
  return ParsedResult<std::vector<uint8_t>>("eth_getCode", r, FromHex);
}

absl::StatusOr<std::vector<uint8_t>> EthClient::Call(const CallRequest& request,
                                                     std::string_view block) {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_call", json::array({CallObject(request), block})));
  return ParsedResult<std::vector<uint8_t>>("eth_call", r, FromHex);
}

absl::StatusOr<uint64_t> EthClient::EstimateGas(const CallRequest& request) {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_estimateGas", json::array({CallObject(request)})));
  return ParsedResult<uint64_t>("eth_estimateGas", r, ParseQuantityU64);
}

absl::StatusOr<Uint256> EthClient::GasPrice() {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_gasPrice", json::array()));
  return ParsedResult<Uint256>("eth_gasPrice", r, ParseQuantity);
}

absl::StatusOr<Uint256> EthClient::MaxPriorityFeePerGas() {
  absl::StatusOr<json> r = rpc_->Call("eth_maxPriorityFeePerGas", json::array());
  if (r.ok()) return ParsedResult<Uint256>("eth_maxPriorityFeePerGas", *r, ParseQuantity);
  if (r.status().code() != absl::StatusCode::kUnimplemented) return r.status();
  // Pre-London-aware nodes: what the node would charge above the base fee.
  ASSIGN_OR_RETURN(Uint256 gas_price, GasPrice());
  ASSIGN_OR_RETURN(std::optional<BlockHeader> latest, GetBlock("latest"));
  Uint256 base = latest && latest->base_fee ? *latest->base_fee : Uint256(0);
  Uint256 tip;
  if (SubUnderflows(gas_price, base, &tip) || tip.IsZero()) tip = Uint256(1);
  return tip;
}

absl::StatusOr<FeeSuggestion> EthClient::SuggestFees() {
  FeeSuggestion fees;
  ASSIGN_OR_RETURN(std::optional<BlockHeader> latest, GetBlock("latest"));
  if (!latest) return Malformed("eth_getBlockByNumber", "no latest block");
  fees.base_fee = latest->base_fee.value_or(Uint256(0));
  ASSIGN_OR_RETURN(fees.max_priority_fee_per_gas, MaxPriorityFeePerGas());
  // Twice the base fee survives six full blocks of +12.5% before the transaction stalls.
  Uint256 doubled;
  if (AddOverflows(fees.base_fee, fees.base_fee, &doubled) ||
      AddOverflows(doubled, fees.max_priority_fee_per_gas, &fees.max_fee_per_gas)) {
    return Malformed("eth_getBlockByNumber", "base fee overflows");
  }
  return fees;
}

absl::StatusOr<crypto::Hash256> EthClient::SendRawTransaction(std::span<const uint8_t> raw) {
  ASSIGN_OR_RETURN(json r, rpc_->Call("eth_sendRawTransaction", json::array({ToHex(raw)})));
  ASSIGN_OR_RETURN(crypto::Hash256 hash,
                   ParsedResult<crypto::Hash256>("eth_sendRawTransaction", r, ParseHash256));
  if (hash != TxHash(raw)) {
    return Malformed("eth_sendRawTransaction", absl::StrCat("node reports hash ", ToHex(hash),
                                                            ", expected ", ToHex(TxHash(raw))));
  }
  return hash;
}

absl::StatusOr<std::optional<Receipt>> EthClient::GetTransactionReceipt(
    const crypto::Hash256& tx_hash) {
  constexpr char m[] = "eth_getTransactionReceipt";
  ASSIGN_OR_RETURN(json r, rpc_->Call(m, json::array({ToHex(tx_hash)})));
  if (r.is_null()) return std::nullopt;
  Receipt receipt;
  ASSIGN_OR_RETURN(receipt.tx_hash, HashField(m, r, "transactionHash"));
  if (receipt.tx_hash != tx_hash) return Malformed(m, "receipt of another transaction");
  ASSIGN_OR_RETURN(receipt.block_number, U64Field(m, r, "blockNumber"));
  ASSIGN_OR_RETURN(receipt.block_hash, HashField(m, r, "blockHash"));
  ASSIGN_OR_RETURN(uint64_t status, U64Field(m, r, "status"));
  if (status > 1) return Malformed(m, absl::StrCat("status ", status));
  receipt.status = status == 1;
  ASSIGN_OR_RETURN(receipt.gas_used, U64Field(m, r, "gasUsed"));
  if (r.contains("effectiveGasPrice") && !r["effectiveGasPrice"].is_null()) {
    ASSIGN_OR_RETURN(receipt.effective_gas_price, U256Field(m, r, "effectiveGasPrice"));
  }
  ASSIGN_OR_RETURN(receipt.from, AddressField(m, r, "from"));
  ASSIGN_OR_RETURN(receipt.to, OptAddressField(m, r, "to"));
  ASSIGN_OR_RETURN(receipt.contract_address, OptAddressField(m, r, "contractAddress"));
  if (!r.contains("logs") || !r["logs"].is_array()) return Malformed(m, "logs missing");
  for (const json& l : r["logs"]) {
    ASSIGN_OR_RETURN(Log log, ParseLog(m, l));
    receipt.logs.push_back(std::move(log));
  }
  return receipt;
}

bool IsLogRangeError(const absl::Status& status) {
  const std::optional<RpcError> error = RpcErrorOf(status);
  if (!error.has_value()) return false;
  std::string message = error->message;
  std::transform(message.begin(), message.end(), message.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* hint : {"block range", "range too large", "range is too large", "more than",
                           "too many", "limit exceeded", "exceed maximum", "exceeds the limit",
                           "response size", "query timeout", "10000 results"}) {
    if (message.find(hint) != std::string::npos) return true;
  }
  return error->code == -32005;  // "limit exceeded" (EIP-1474)
}

absl::StatusOr<std::vector<Log>> EthClient::GetLogs(const LogFilter& filter) {
  const uint64_t span = log_span_.load();
  if (span == 0) return GetLogsSplitting(filter, false);
  LogFilter range = filter;
  if (!range.to_block.has_value()) {
    ASSIGN_OR_RETURN(range.to_block, BlockNumber());
  }
  std::vector<Log> out;
  for (uint64_t from = range.from_block; from <= *range.to_block; from += span) {
    LogFilter part = range;
    part.from_block = from;
    part.to_block = std::min(*range.to_block, from + span - 1);
    ASSIGN_OR_RETURN(std::vector<Log> logs, GetLogsSplitting(part, false));
    out.insert(out.end(), std::make_move_iterator(logs.begin()),
               std::make_move_iterator(logs.end()));
    if (*part.to_block == *range.to_block) break;  // no overflow past the last block
  }
  return out;
}

absl::StatusOr<std::vector<Log>> EthClient::GetLogsSplitting(const LogFilter& filter, bool split) {
  absl::StatusOr<std::vector<Log>> logs = GetLogsOnce(filter);
  if (logs.ok() && split) {
    const uint64_t blocks = *filter.to_block - filter.from_block + 1;
    uint64_t known = log_span_.load();
    while (blocks > known && !log_span_.compare_exchange_weak(known, blocks)) {
    }
  }
  if (logs.ok() || !IsLogRangeError(logs.status())) return logs;
  LogFilter range = filter;
  if (!range.to_block.has_value()) {
    ASSIGN_OR_RETURN(range.to_block, BlockNumber());
  }
  if (*range.to_block <= range.from_block) return logs;  // one block: nothing left to split
  const uint64_t mid = range.from_block + (*range.to_block - range.from_block) / 2;
  LogFilter low = range, high = range;
  low.to_block = mid;
  high.from_block = mid + 1;
  ASSIGN_OR_RETURN(std::vector<Log> out, GetLogsSplitting(low, true));
  ASSIGN_OR_RETURN(std::vector<Log> rest, GetLogsSplitting(high, true));
  out.insert(out.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  return out;
}

absl::StatusOr<std::vector<Log>> EthClient::GetLogsOnce(const LogFilter& filter) {
  constexpr char m[] = "eth_getLogs";
  json f = json::object();
  if (!filter.addresses.empty()) {
    json addresses = json::array();
    for (const auto& a : filter.addresses) addresses.push_back(AddressHex(a));
    f["address"] = std::move(addresses);
  }
  json topics = json::array();
  for (const auto& t : filter.topics) topics.push_back(t ? json(ToHex(*t)) : json(nullptr));
  f["topics"] = std::move(topics);
  f["fromBlock"] = QuantityHex(filter.from_block);
  f["toBlock"] = filter.to_block ? QuantityHex(*filter.to_block) : std::string("latest");
  ASSIGN_OR_RETURN(json r, rpc_->Call(m, json::array({std::move(f)})));
  if (!r.is_array()) return Malformed(m, "result is not an array");
  std::vector<Log> logs;
  logs.reserve(r.size());
  for (const json& l : r) {
    ASSIGN_OR_RETURN(Log log, ParseLog(m, l));
    logs.push_back(std::move(log));
  }
  return logs;
}

}  // namespace atoma::evm
