// RpcClient and EthClient against a scripted HTTP server on loopback: retries (only for transport
// errors, 5xx and 429), JSON-RPC errors with revert data, malformed answers, size and time
// limits, a dead port, and the priority-fee fallback.
#include "atoma/evm/rpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "atoma/evm/abi.h"
#include "atoma/evm/hex.h"
#include "gtest/gtest.h"

namespace atoma::evm {
namespace {

using nlohmann::json;

// One HTTP/1.1 exchange per connection; `respond` gets the parsed request body and returns the
// status and body to send. Serves from its own thread until destroyed.
class ScriptedServer {
 public:
  using Respond = std::function<std::pair<int, std::string>(const json& request)>;

  explicit ScriptedServer(Respond respond) : respond_(std::move(respond)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    url_ = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port));
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  const std::string& url() const { return url_; }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string in;
      char buf[4096];
      size_t body_at = std::string::npos, length = 0;
      while (true) {
        const ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        if (body_at == std::string::npos && (body_at = in.find("\r\n\r\n")) != std::string::npos) {
          body_at += 4;
          const size_t h = in.find("Content-Length: ");
          length = h == std::string::npos ? 0 : std::stoul(in.substr(h + 16));
        }
        if (body_at != std::string::npos && in.size() >= body_at + length) break;
      }
      ++requests_;
      const json request = json::parse(in.substr(std::min(body_at, in.size())), nullptr, false);
      auto [status, body] = respond_(request);
      const std::string out =
          absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Type: application/json\r\n",
                       "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
      (void)!::send(c, out.data(), out.size(), MSG_NOSIGNAL);  // the client may be gone
      ::close(c);
    }
  }

  Respond respond_;
  int fd_ = -1;
  std::string url_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string Result(const json& request, json result) {
  return json{{"jsonrpc", "2.0"}, {"id", request["id"]}, {"result", std::move(result)}}.dump();
}
std::string Error(const json& request, json error) {
  return json{{"jsonrpc", "2.0"}, {"id", request["id"]}, {"error", std::move(error)}}.dump();
}

std::unique_ptr<RpcClient> Client(const std::string& url, int attempts = 3) {
  return RpcClient::MakeHttp({.url = url,
                              .timeout = absl::Seconds(5),
                              .connect_timeout = absl::Seconds(2),
                              .max_attempts = attempts,
                              .initial_backoff = absl::Milliseconds(1),
                              .max_backoff = absl::Milliseconds(5)})
      .value();
}

TEST(RpcClient, RejectsBadOptions) {
  EXPECT_EQ(RpcClient::MakeHttp({.url = "ftp://x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RpcClient::MakeHttp({.url = "127.0.0.1:8545"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RpcClient::MakeHttp({.url = "http://x", .max_attempts = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RpcClient, ReturnsResult) {
  ScriptedServer server([](const json& r) {
    EXPECT_EQ(r["jsonrpc"], "2.0");
    EXPECT_EQ(r["method"], "eth_chainId");
    EXPECT_TRUE(r["params"].is_array());
    return std::make_pair(200, Result(r, "0x7a69"));
  });
  auto rpc = Client(server.url());
  auto r = rpc->Call("eth_chainId", nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "0x7a69");
  EthClient eth(std::move(rpc));
  EXPECT_EQ(eth.ChainId().value(), 31337u);
}

TEST(RpcClient, RetriesServerErrorsThenGivesUp) {
  ScriptedServer server([](const json&) { return std::make_pair(503, std::string("busy")); });
  auto r = Client(server.url(), 3)->Call("eth_blockNumber", nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("HTTP 503"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find(server.url()), std::string::npos) << r.status();
  EXPECT_EQ(server.requests(), 3);
}

TEST(RpcClient, RetriesRateLimitThenSucceeds) {
  std::atomic<int> n{0};
  ScriptedServer server([&](const json& r) {
    return ++n == 1 ? std::make_pair(429, std::string("slow down"))
                    : std::make_pair(200, Result(r, "0x10"));
  });
  auto r = Client(server.url(), 3)->Call("eth_blockNumber", nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "0x10");
  EXPECT_EQ(server.requests(), 2);
}

TEST(RpcClient, JsonRpcErrorsAreNotRetriedAndCarryRevertData) {
  const std::vector<uint8_t> revert =
      EncodeCall("Error(string)", {AbiValue::String("FAILED_PRECONDITION: no")}).value();
  ScriptedServer server([&](const json& r) {
    return std::make_pair(200, Error(r, {{"code", 3},
                                         {"message", "execution reverted: FAILED_PRECONDITION: no"},
                                         {"data", ToHex(revert)}}));
  });
  auto r = Client(server.url(), 3)->Call("eth_call", json::array());
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(IsRevert(r.status()));
  auto data = RevertData(r.status());
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(*data, revert);
  auto e = RpcErrorOf(r.status());
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, 3);
  EXPECT_EQ(e->message, "execution reverted: FAILED_PRECONDITION: no");
  EXPECT_NE(r.status().message().find("[FAILED_PRECONDITION: no]"), std::string::npos)
      << r.status();
  // Other JSON-RPC codes.
  ScriptedServer other([&](const json& q) {
    const std::string m = q["method"];
    if (m == "a")
      return std::make_pair(200, Error(q, {{"code", -32601}, {"message", "no such method"}}));
    if (m == "b")
      return std::make_pair(200, Error(q, {{"code", -32602}, {"message", "bad params"}}));
    if (m == "c")
      return std::make_pair(200, Error(q, {{"code", -32000}, {"message", "nonce too low"}}));
    return std::make_pair(400, Error(q, {{"code", -32005}, {"message", "limit"}}));
  });
  auto rpc = Client(other.url());
  EXPECT_EQ(rpc->Call("a", nullptr).status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(rpc->Call("b", nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  auto c = rpc->Call("c", nullptr);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(IsRevert(c.status()));
  EXPECT_EQ(RpcErrorOf(c.status())->message, "nonce too low");
  EXPECT_FALSE(RevertData(c.status()).has_value());
  EXPECT_EQ(rpc->Call("d", nullptr).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(other.requests(), 4);
  EXPECT_FALSE(RpcErrorOf(absl::UnavailableError("x")).has_value());
}

TEST(RpcClient, MalformedAnswersAreDataLoss) {
  ScriptedServer server([](const json& r) {
    const std::string m = r["method"];
    if (m == "notjson") return std::make_pair(200, std::string("<html>"));
    if (m == "array") return std::make_pair(200, std::string("[1,2]"));
    if (m == "wrongid") {
      return std::make_pair(200,
                            json{{"jsonrpc", "2.0"}, {"id", 999999}, {"result", "0x1"}}.dump());
    }
    if (m == "noresult")
      return std::make_pair(200, json{{"jsonrpc", "2.0"}, {"id", r["id"]}}.dump());
    if (m == "eth_chainId") return std::make_pair(200, Result(r, 31337));  // a number, not hex
    if (m == "eth_getBalance") return std::make_pair(200, Result(r, "0xzz"));
    return std::make_pair(404, std::string("not found"));
  });
  auto rpc = std::shared_ptr<RpcClient>(Client(server.url()));
  for (const char* m : {"notjson", "array", "wrongid", "noresult"}) {
    EXPECT_EQ(rpc->Call(m, nullptr).status().code(), absl::StatusCode::kDataLoss) << m;
  }
  EXPECT_EQ(rpc->Call("other", nullptr).status().code(), absl::StatusCode::kInternal);
  EthClient eth(rpc);
  EXPECT_EQ(eth.ChainId().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(eth.GetBalance(crypto::Address{}).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(server.requests(), 7);
}

TEST(RpcClient, ResponseSizeLimit) {
  ScriptedServer server(
      [](const json& r) { return std::make_pair(200, Result(r, std::string(5000, 'a'))); });
  auto rpc = RpcClient::MakeHttp({.url = server.url(), .max_response_bytes = 1000}).value();
  EXPECT_EQ(rpc->Call("x", nullptr).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(server.requests(), 1);
}

TEST(RpcClient, TimeoutIsUnavailable) {
  ScriptedServer server([](const json& r) {
    absl::SleepFor(absl::Milliseconds(600));
    return std::make_pair(200, Result(r, "0x1"));
  });
  auto rpc = RpcClient::MakeHttp(
                 {.url = server.url(), .timeout = absl::Milliseconds(100), .max_attempts = 1})
                 .value();
  auto r = rpc->Call("x", nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(RpcClient, DeadPortIsUnavailableAfterRetries) {
  // A port that nothing listens on: bind one, note it, close it.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  const std::string url = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port));
  auto r = Client(url, 2)->Call("eth_chainId", nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find(url), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("after 2 attempts"), std::string::npos) << r.status();
}

TEST(EthClient, PriorityFeeFallsBackToGasPriceMinusBaseFee) {
  ScriptedServer server([](const json& r) {
    const std::string m = r["method"];
    if (m == "eth_maxPriorityFeePerGas") {
      return std::make_pair(200, Error(r, {{"code", -32601}, {"message", "method not found"}}));
    }
    if (m == "eth_gasPrice") return std::make_pair(200, Result(r, "0x64"));
    if (m == "eth_getBlockByNumber") {
      return std::make_pair(200, Result(r, {{"number", "0x5"},
                                            {"hash", "0x" + std::string(64, '1')},
                                            {"timestamp", "0x10"},
                                            {"baseFeePerGas", "0x3c"}}));
    }
    return std::make_pair(404, std::string());
  });
  EthClient eth(std::shared_ptr<RpcClient>(Client(server.url())));
  EXPECT_EQ(eth.MaxPriorityFeePerGas().value(), Uint256(40));
  auto fees = eth.SuggestFees();
  ASSERT_TRUE(fees.ok()) << fees.status();
  EXPECT_EQ(fees->base_fee, Uint256(60));
  EXPECT_EQ(fees->max_priority_fee_per_gas, Uint256(40));
  EXPECT_EQ(fees->max_fee_per_gas, Uint256(160));
  auto block = eth.GetBlock("latest").value();
  ASSERT_TRUE(block.has_value());
  EXPECT_EQ(block->number, 5u);
  EXPECT_EQ(block->timestamp, 16u);
}

// A node that refuses eth_getLogs over more than 100 blocks (as public nodes cap ranges) holds one
// log every 7th block of 0..1000: the client splits the range and returns them all, in order,
// also for "latest"; other errors are not split.
TEST(EthClient, GetLogsSplitsARangeTheNodeRefusesAsTooLarge) {
  std::atomic<int> refused{0};
  ScriptedServer server([&refused](const json& r) {
    const std::string m = r["method"];
    if (m == "eth_blockNumber") return std::make_pair(200, Result(r, "0x3e8"));  // 1000
    if (m != "eth_getLogs") return std::make_pair(404, std::string());
    const json& f = r["params"][0];
    if (f["topics"].size() == 1) {
      return std::make_pair(200, Error(r, {{"code", -32602}, {"message", "invalid topic"}}));
    }
    const uint64_t from = std::stoull(f["fromBlock"].get<std::string>(), nullptr, 16);
    const uint64_t to =
        f["toBlock"] == "latest" ? 1000 : std::stoull(f["toBlock"].get<std::string>(), nullptr, 16);
    if (to - from + 1 > 100) {
      ++refused;
      return std::make_pair(
          200, Error(r, {{"code", -32005}, {"message", "query returned more than 10000 results"}}));
    }
    json logs = json::array();
    for (uint64_t b = from; b <= to; ++b) {
      if (b % 7 != 0) continue;
      logs.push_back({{"address", "0x" + std::string(40, 'a')},
                      {"topics", json::array()},
                      {"data", "0x"},
                      {"blockNumber", absl::StrCat("0x", absl::Hex(b))},
                      {"blockHash", "0x" + std::string(64, '1')},
                      {"transactionHash", "0x" + std::string(64, '2')},
                      {"logIndex", "0x0"}});
    }
    return std::make_pair(200, Result(r, logs));
  });
  EthClient eth(std::shared_ptr<RpcClient>(Client(server.url())));
  int refused_first = 0;
  for (const std::optional<uint64_t> to :
       {std::optional<uint64_t>(1000), std::optional<uint64_t>()}) {
    LogFilter filter;
    filter.to_block = to;
    absl::StatusOr<std::vector<Log>> logs = eth.GetLogs(filter);
    ASSERT_TRUE(logs.ok()) << logs.status();
    ASSERT_EQ(logs->size(), 1000u / 7 + 1);
    for (size_t i = 0; i < logs->size(); ++i) EXPECT_EQ((*logs)[i].block_number, 7 * i);
    if (refused_first == 0) refused_first = refused.load();
  }
  EXPECT_GT(refused_first, 0);
  // The second query used the span learned by the first: the node refused nothing more.
  EXPECT_EQ(refused.load(), refused_first);
  // A small range is one query; a bad filter is an error, not split.
  const int before = server.requests();
  LogFilter small;
  small.from_block = 10;
  small.to_block = 50;
  EXPECT_EQ(eth.GetLogs(small).value().size(), 6u);  // 14, 21, 28, 35, 42, 49
  EXPECT_EQ(server.requests(), before + 1);
  LogFilter bad;
  bad.to_block = 1000;
  bad.topics = {std::nullopt};
  EXPECT_EQ(eth.GetLogs(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.requests(), before + 2);
  EXPECT_TRUE(IsLogRangeError(absl::InternalError("x")) == false);
}

}  // namespace
}  // namespace atoma::evm
