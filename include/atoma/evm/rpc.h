// Ethereum JSON-RPC: a transport-level client (RpcClient: JSON-RPC 2.0 over HTTP(S) with libcurl)
// and typed eth_ calls on top of it (EthClient).
//
// Error contract of RpcClient::Call (and so of every EthClient call):
//   UNAVAILABLE       the node could not be reached or answered with HTTP 5xx/429, after the
//                     configured retries (the message names the URL and the curl error or the HTTP
//                     status). Also a timeout. The call may or may not have taken effect on the
//                     node (a sent transaction may be in its pool).
//   INTERNAL          another HTTP error status (4xx, 3xx): the URL is probably wrong.
//   RESOURCE_EXHAUSTED the answer exceeded max_response_bytes; JSON-RPC error -32005 (limit
//                     exceeded, e.g. too many logs).
//   DATA_LOSS         the answer is not JSON, or not a JSON-RPC 2.0 response to this request.
//   a JSON-RPC error  the node answered with an "error" object: the status carries it as a
//                     payload (RpcErrorOf below gives code, message and data; RevertData the
//                     revert bytes). Codes: reverts (JSON-RPC code 3, or a message starting with
//                     "execution reverted") -> FAILED_PRECONDITION; -32601 -> UNIMPLEMENTED;
//                     -32602/-32600 -> INVALID_ARGUMENT; -32603 -> INTERNAL; -32005 ->
//                     RESOURCE_EXHAUSTED; anything else (e.g. -32000 "nonce too low") ->
//                     FAILED_PRECONDITION. The message is "<method>: <node's message> (code N)",
//                     plus " [<DecodeRevertReason>]" when revert data came with it.
//                     JSON-RPC errors are never retried.
// EthClient adds DATA_LOSS for a result of the wrong shape (not a hex quantity, a receipt
// without its fields, ...): the node is broken or hostile.
//
// Retries: transport errors, timeouts, HTTP 5xx and 429 are retried up to max_attempts in all,
// with exponential backoff (initial_backoff doubling up to max_backoff). Retrying a send is safe
// for the chain (the same raw transaction is the same transaction; a node answers "already known"
// or "nonce too low") but the caller must be ready for that answer.
//
// Thread-safety: RpcClient and EthClient are safe to use from several threads at once (each call
// uses its own curl handle; nothing mutable is shared). Calls block the calling thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "nlohmann/json.hpp"

namespace atoma::evm {

struct RpcOptions {
  // http:// or https:// URL of the node, e.g. "http://127.0.0.1:8545".
  std::string url;
  // Whole-call limit for one attempt (connect + send + answer). 10 s: an eth_call or
  // eth_getLogs on a busy public node can take seconds; longer hides a dead node.
  absl::Duration timeout = absl::Seconds(10);
  // Connection limit for one attempt. A dead local port fails at once anyway; this bounds a
  // black-holed remote host.
  absl::Duration connect_timeout = absl::Seconds(3);
  // Attempts in all (1 = no retry) for transport errors, HTTP 5xx and 429.
  int max_attempts = 3;
  // Sleep before the 2nd attempt; doubles for each further one, capped at max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
  // Largest answer accepted (bytes). eth_getLogs over a long range can be big; 64 MiB bounds
  // what a hostile node can make us hold.
  size_t max_response_bytes = size_t{64} << 20;
};

// A JSON-RPC error the node answered with.
struct RpcError {
  int64_t code = 0;
  std::string message;
  nlohmann::json data;  // null when absent
};

// The JSON-RPC error a status from RpcClient::Call carries; nullopt for transport or other errors.
std::optional<RpcError> RpcErrorOf(const absl::Status& status);
// The revert data of a JSON-RPC error ("data" as hex, or {"data": hex}); nullopt when the status
// carries no JSON-RPC error or its data is not hex bytes. An empty vector for a reason-less revert
// whose node sent "0x".
std::optional<std::vector<uint8_t>> RevertData(const absl::Status& status);
// True when the status is a JSON-RPC error by which a node refuses an eth_getLogs query as too
// large (a block range or result count over its limit), as opposed to a bad filter or an outage.
bool IsLogRangeError(const absl::Status& status);
// True when the status is a JSON-RPC error that says the EVM reverted (code 3, a message starting
// with "execution reverted", or hex revert data).
bool IsRevert(const absl::Status& status);

// JSON-RPC 2.0 client. An interface so that tests can put a fault-injecting fake in front of a
// real node (wrap the real client and fail, delay or drop chosen calls).
class RpcClient {
 public:
  virtual ~RpcClient() = default;

  // Sends {"jsonrpc":"2.0","id":N,"method":method,"params":params} and returns "result".
  // `params` must be a JSON array (or null for no params). Errors: see the file comment.
  virtual absl::StatusOr<nlohmann::json> Call(std::string_view method, nlohmann::json params) = 0;
  // The endpoint, for messages.
  virtual const std::string& url() const = 0;

  // The HTTP(S) client. INVALID_ARGUMENT for a URL that is not http:// or https://, or options
  // out of range (max_attempts < 1, non-positive timeouts).
  static absl::StatusOr<std::unique_ptr<RpcClient>> MakeHttp(RpcOptions options);
};

// A block's header fields the ledger needs.
struct BlockHeader {
  uint64_t number = 0;
  crypto::Hash256 hash{};
  uint64_t timestamp = 0;           // Unix seconds
  std::optional<Uint256> base_fee;  // nullopt before London
};

struct Log {
  crypto::Address address{};
  std::vector<crypto::Hash256> topics;
  std::vector<uint8_t> data;
  uint64_t block_number = 0;
  crypto::Hash256 block_hash{};
  crypto::Hash256 tx_hash{};
  uint64_t log_index = 0;
  bool removed = false;  // true when a reorg dropped the block that held it
};

struct Receipt {
  crypto::Hash256 tx_hash{};
  uint64_t block_number = 0;
  crypto::Hash256 block_hash{};
  bool status = false;  // true: success; false: the transaction reverted (gas is still paid)
  uint64_t gas_used = 0;
  Uint256 effective_gas_price;
  crypto::Address from{};
  std::optional<crypto::Address> to;                // nullopt for a contract creation
  std::optional<crypto::Address> contract_address;  // set for a contract creation
  std::vector<Log> logs;
};

// eth_getLogs filter.
struct LogFilter {
  // Emitting contracts; empty = any.
  std::vector<crypto::Address> addresses = {};
  // Topic positions; nullopt at a position matches anything there (JSON null). Fewer positions
  // than a log has match any value in the missing ones.
  std::vector<std::optional<crypto::Hash256>> topics = {};
  uint64_t from_block = 0;
  std::optional<uint64_t> to_block = std::nullopt;  // nullopt: "latest"
};

// eth_call / eth_estimateGas arguments.
struct CallRequest {
  std::optional<crypto::Address> from = std::nullopt;
  std::optional<crypto::Address> to =
      std::nullopt;  // nullopt: a contract creation (data is init code)
  std::vector<uint8_t> data = {};
  std::optional<Uint256> value = std::nullopt;
  std::optional<uint64_t> gas = std::nullopt;
};

// Fees for an EIP-1559 transaction.
struct FeeSuggestion {
  Uint256 base_fee;                  // of the latest block
  Uint256 max_priority_fee_per_gas;  // eth_maxPriorityFeePerGas, or the fallback below
  Uint256 max_fee_per_gas;           // 2 * base_fee + max_priority_fee_per_gas
};

// Typed eth_ calls. Block tags are "latest", "pending", "earliest", "safe", "finalized" or a
// QuantityHex block number. Thread-safe (see the file comment).
class EthClient {
 public:
  explicit EthClient(std::shared_ptr<RpcClient> rpc) : rpc_(std::move(rpc)) {}

  RpcClient& rpc() const { return *rpc_; }

  absl::StatusOr<uint64_t> ChainId();
  absl::StatusOr<uint64_t> BlockNumber();
  // nullopt when the node does not have that block (yet).
  absl::StatusOr<std::optional<BlockHeader>> GetBlock(std::string_view block = "latest");
  absl::StatusOr<Uint256> GetBalance(const crypto::Address& address,
                                     std::string_view block = "latest");
  // `block` "pending" counts transactions in the node's pool (the next nonce to use); "latest"
  // counts mined ones only.
  absl::StatusOr<uint64_t> GetTransactionCount(const crypto::Address& address,
                                               std::string_view block = "pending");
  absl::StatusOr<std::vector<uint8_t>> GetCode(const crypto::Address& address,
                                               std::string_view block = "latest");

  // eth_call: the return data. A revert is FAILED_PRECONDITION whose message includes
  // DecodeRevertReason(revert data) and that carries the data (RevertData, RpcErrorOf).
  absl::StatusOr<std::vector<uint8_t>> Call(const CallRequest& request,
                                            std::string_view block = "latest");
  // eth_estimateGas (same revert contract as Call).
  absl::StatusOr<uint64_t> EstimateGas(const CallRequest& request);

  absl::StatusOr<Uint256> GasPrice();
  // eth_maxPriorityFeePerGas; when the node does not implement it (UNIMPLEMENTED, or a JSON-RPC
  // "method not found"), eth_gasPrice - base fee, and at least 1 wei.
  absl::StatusOr<Uint256> MaxPriorityFeePerGas();
  // Latest block's base fee (zero before London) and the priority fee above.
  absl::StatusOr<FeeSuggestion> SuggestFees();

  // eth_sendRawTransaction: the transaction hash the node reports (checked to equal TxHash(raw);
  // DATA_LOSS otherwise).
  absl::StatusOr<crypto::Hash256> SendRawTransaction(std::span<const uint8_t> raw);
  // nullopt while the transaction is not mined (or unknown).
  absl::StatusOr<std::optional<Receipt>> GetTransactionReceipt(const crypto::Hash256& tx_hash);
  // eth_getLogs, in block order. Public nodes cap a query's block range or result count and
  // answer with an error instead (Infura/Alchemy -32005 "query returned more than 10000
  // results", -32602/-32600 "block range too large", geth's "exceed maximum block range", ...):
  // on such an error (IsLogRangeError) the range is split in halves and each half queried,
  // recursively down to one block, so the result is the same as one unlimited query. Other errors
  // are returned as they are. The widest range that answered after such a split is remembered:
  // later queries are cut into ranges of that many blocks up front instead of being refused again.
  absl::StatusOr<std::vector<Log>> GetLogs(const LogFilter& filter);

 private:
  absl::StatusOr<std::vector<Log>> GetLogsOnce(const LogFilter& filter);
  // GetLogs's halving; `split`: `filter` is a part of a range the node refused.
  absl::StatusOr<std::vector<Log>> GetLogsSplitting(const LogFilter& filter, bool split);

  std::atomic<uint64_t> log_span_{0};  // blocks per eth_getLogs the node answers; 0: no limit seen

  std::shared_ptr<RpcClient> rpc_;
};

}  // namespace atoma::evm
