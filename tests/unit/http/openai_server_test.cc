// OpenAiServer over real sockets against the fake engine of the API tests, and verified requests
// against a fake ConsensusNode.
#include "atoma/http/openai_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "atoma/common/uint256.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/sha256.h"
#include "atoma/peer/consensus_node.h"
#include "consensus_fields.h"
#include "convert.h"
#include "fake_engine.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/temp_dir.h"
#include "testing/test_certs.h"

namespace atoma::http {
namespace {

using json = nlohmann::json;
using api::testing::FakeEngine;
using api::testing::FakeEngineOptions;

struct Response {
  int status = 0;
  std::string head;
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

// A client connection: sends raw bytes and reads responses one at a time (a body of
// Content-Length bytes, or up to the server's close when there is none: event streams).
class Client {
 public:
  // With `tls`, a TLS client of that context (verifying the server as 127.0.0.1); connected()
  // says whether the TCP connection and, with TLS, the handshake succeeded.
  explicit Client(int port, SSL_CTX* tls = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    // Below the server's 10 s idle close, so a server that wrongly keeps a connection open shows
    // as a timeout here, not as a close.
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (tls != nullptr) {
      ssl_ = SSL_new(tls);
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
      if (SSL_set_fd(ssl_, fd_) != 1 || SSL_connect(ssl_) != 1) {
        ERR_clear_error();
        SSL_free(ssl_);
        ssl_ = nullptr;
        ::close(fd_);
        fd_ = -1;
      }
    }
  }
  ~Client() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return fd_ >= 0; }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool Send(const std::string& raw) {
    size_t sent = 0;
    while (fd_ >= 0 && sent < raw.size()) {
      const ssize_t n =
          ssl_ != nullptr ? SSL_write(ssl_, raw.data() + sent, static_cast<int>(raw.size() - sent))
                          : ::send(fd_, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return fd_ >= 0;
  }

  Response Read() {
    Response out;
    size_t end;
    while ((end = data_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return out;
    }
    out.head = data_.substr(0, end);
    data_.erase(0, end + 4);
    if (out.head.size() > 12) out.status = std::stoi(out.head.substr(9, 3));
    const size_t cl = absl::AsciiStrToLower(out.head).find("content-length: ");
    if (cl == std::string::npos) {
      while (Fill()) {
      }
      out.body = std::move(data_);
      data_.clear();
      return out;
    }
    const size_t length = std::stoul(out.head.substr(cl + 16));
    while (data_.size() < length && Fill()) {
    }
    out.body = data_.substr(0, length);
    data_.erase(0, std::min(length, data_.size()));
    return out;
  }

  // True when the server closed the connection (an orderly end of stream, not a timeout) and sent
  // nothing more.
  bool ClosedByServer() {
    while (data_.empty() && Fill()) {
    }
    return data_.empty() && eof_;
  }

 private:
  bool Fill() {
    char buf[4096];
    const ssize_t n = fd_ < 0           ? -1
                      : ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof(buf))
                                        : ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      eof_ = n == 0;  // a timeout or an error is -1
      ERR_clear_error();
      return false;
    }
    data_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool eof_ = false;
  std::string data_;
};

// One request on a connection of its own. The response is read even when sending failed: a
// server that refuses an oversized body answers and closes before it has all of it.
Response Exchange(int port, const std::string& raw) {
  Client c(port);
  c.Send(raw);
  return c.Read();
}

// One request with an Authorization header (empty: none) and, for POST, a JSON body.
Response WithAuth(int port, const std::string& method, const std::string& path,
                  const std::string& authorization, const std::string& body = "") {
  std::string raw = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: x\r\n");
  if (!authorization.empty()) absl::StrAppend(&raw, "Authorization: ", authorization, "\r\n");
  if (method == "POST") {
    absl::StrAppend(&raw, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  absl::StrAppend(&raw, "\r\n", body);
  return Exchange(port, raw);
}

Response Post(int port, const std::string& path, const std::string& body) {
  return WithAuth(port, "POST", path, "", body);
}

Response Get(int port, const std::string& path) { return WithAuth(port, "GET", path, ""); }

// The data: payloads of a server-sent event stream.
std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  for (absl::string_view event : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    if (absl::StartsWith(event, "data: ")) out.emplace_back(event.substr(6));
  }
  return out;
}

class OpenAiServerTest : public ::testing::Test {
 protected:
  void StartWith(FakeEngineOptions engine_options, OpenAiOptions options = {}) {
    engine_ = std::make_unique<FakeEngine>(engine_options);
    auto server = OpenAiServer::Start("127.0.0.1:0", {engine_.get()}, std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->bound_port();
  }
  void SetUp() override { StartWith(FakeEngineOptions{}); }

  void ExpectError(const Response& r, int status, const std::string& param,
                   const std::string& code = "") {
    EXPECT_EQ(r.status, status) << r.body;
    const json j = r.Json();
    ASSERT_TRUE(j.contains("error")) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (param.empty()) {
      EXPECT_TRUE(j["error"]["param"].is_null()) << r.body;
    } else {
      EXPECT_EQ(j["error"]["param"], param) << r.body;
    }
    if (!code.empty()) {
      EXPECT_EQ(j["error"]["code"], code) << r.body;
    }
  }

  std::unique_ptr<FakeEngine> engine_;
  std::unique_ptr<OpenAiServer> server_;
  int port_ = 0;
};

TEST_F(OpenAiServerTest, HealthAndModels) {
  Response health = Get(port_, "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.Json(), json({{"status", "ok"}}));
  Response models = Get(port_, "/v1/models");
  ASSERT_EQ(models.status, 200);
  const json j = models.Json();
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "fake");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["owned_by"], "atoma");
}

// HTTP/1.1 keeps the connection for the next request, pipelined ones too; a stream, an error
// answered before the body was read, "Connection: close" and HTTP/1.0 close it.
TEST_F(OpenAiServerTest, KeepAliveAndWhatClosesTheConnection) {
  const std::string completion = R"({"model":"fake","prompt":"hi","max_tokens":3})";
  const std::string post = absl::StrCat(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ", completion.size(), "\r\n\r\n",
      completion);
  const std::string get = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  {
    Client c(port_);
    ASSERT_TRUE(c.Send(get));
    Response a = c.Read();
    EXPECT_EQ(a.status, 200);
    EXPECT_NE(a.head.find("Connection: keep-alive"), std::string::npos) << a.head;
    ASSERT_TRUE(c.Send(post));
    Response b = c.Read();
    EXPECT_EQ(b.status, 200) << b.body;
    EXPECT_EQ(b.Json()["usage"]["completion_tokens"], 3) << b.body;
    // Two requests in one write: both answered, in order.
    ASSERT_TRUE(c.Send(post + get));
    EXPECT_EQ(c.Read().Json()["usage"]["completion_tokens"], 3);
    EXPECT_EQ(c.Read().Json(), json({{"status", "ok"}}));
    // A streaming request ends the connection with its stream.
    const std::string streaming = R"({"model":"fake","prompt":"hi","max_tokens":2,"stream":true})";
    ASSERT_TRUE(c.Send(absl::StrCat("POST /v1/completions HTTP/1.1\r\nContent-Length: ",
                                    streaming.size(), "\r\n\r\n", streaming)));
    Response st = c.Read();
    EXPECT_EQ(st.status, 200);
    EXPECT_NE(st.head.find("Connection: close"), std::string::npos) << st.head;
    EXPECT_EQ(SseData(st.body).back(), "[DONE]");
  }
  {
    Client c(port_);  // the client says close
    ASSERT_TRUE(c.Send("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n" + get));
    Response a = c.Read();
    EXPECT_EQ(a.status, 200);
    EXPECT_NE(a.head.find("Connection: close"), std::string::npos) << a.head;
    EXPECT_TRUE(c.ClosedByServer()) << "the pipelined request after close was answered";
  }
  {
    Client c(port_);  // HTTP/1.0 closes unless asked
    ASSERT_TRUE(c.Send("GET /health HTTP/1.0\r\n\r\n"));
    EXPECT_EQ(c.Read().status, 200);
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    Client c(port_);  // HTTP/1.0 with keep-alive
    ASSERT_TRUE(c.Send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_EQ(c.Read().status, 200);
    ASSERT_TRUE(c.Send(get));
    EXPECT_EQ(c.Read().status, 200);
  }
  {
    Client c(port_);  // an error answered before its body was read: the body is not a request
    ASSERT_TRUE(c.Send(absl::StrCat("POST /v1/nowhere HTTP/1.1\r\nContent-Length: ", get.size(),
                                    "\r\n\r\n", get)));
    Response r = c.Read();
    EXPECT_EQ(r.status, 404);
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    Client c(port_);  // two Content-Lengths: refused, and the connection closes (no framing)
    ASSERT_TRUE(c.Send(absl::StrCat(
        "POST /v1/completions HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: ", get.size() + 4,
        "\r\n\r\nabcd", get)));
    Response r = c.Read();
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("conflicting Content-Length"), std::string::npos) << r.body;
    EXPECT_TRUE(c.ClosedByServer());
  }
  {
    Client c(port_);  // a 400 after the body was read keeps the connection
    const std::string bad = R"({"model":"fake","prompt":"hi","max_tokens":-1})";
    ASSERT_TRUE(c.Send(absl::StrCat("POST /v1/completions HTTP/1.1\r\nContent-Length: ", bad.size(),
                                    "\r\n\r\n", bad)));
    EXPECT_EQ(c.Read().status, 400);
    ASSERT_TRUE(c.Send(get));
    EXPECT_EQ(c.Read().status, 200);
  }
}

// HTTPS: a client that trusts the node's CA gets answers (keep-alive and streams too); a
// plaintext client and a client trusting another CA get nothing; Start refuses a certificate
// without its key, a key of another certificate, and garbage.
TEST_F(OpenAiServerTest, TlsServesHttpsOnly) {
  const std::filesystem::path dir = test::FreshTestDir("atoma_http_tls_");
  const test::TestCerts certs = test::MakeTestCerts(dir / "pki", "atoma-http-ca");
  const test::TestCerts other = test::MakeTestCerts(dir / "other", "other-ca");
  OpenAiOptions options;
  options.tls_cert_chain_pem = certs.cert;
  options.tls_private_key_pem = certs.key;
  StartWith(FakeEngineOptions{}, options);
  auto client_context = [](const std::string& ca_pem) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
    X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
    X509_free(ca);
    BIO_free(bio);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    return std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>(ctx, SSL_CTX_free);
  };
  auto trusted = client_context(certs.ca);
  {
    Client c(port_, trusted.get());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.Send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    Response health = c.Read();
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.Json(), json({{"status", "ok"}}));
    const std::string body = R"({"model":"fake","prompt":"hi","max_tokens":3,"stream":true})";
    ASSERT_TRUE(c.Send(absl::StrCat(
        "POST /v1/completions HTTP/1.1\r\nContent-Length: ", body.size(), "\r\n\r\n", body)));
    Response stream = c.Read();
    EXPECT_EQ(stream.status, 200);
    EXPECT_EQ(SseData(stream.body).back(), "[DONE]");
  }
  {
    Client plain(port_);
    ASSERT_TRUE(plain.connected());
    plain.Send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(plain.Read().status, 0) << "a plaintext request was answered";
  }
  auto untrusting = client_context(other.ca);
  {
    Client c(port_, untrusting.get());
    EXPECT_FALSE(c.connected()) << "the handshake succeeded against an untrusted CA";
  }
  // A new certificate (SIGHUP): connections from now on get it; one Start would refuse is refused
  // and the one in force stays.
  Client before_swap(port_, trusted.get());
  ASSERT_TRUE(before_swap.connected());
  EXPECT_EQ(server_->SetTls(certs.cert, other.key).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Client(port_, trusted.get()).connected());
  ASSERT_TRUE(server_->SetTls(other.cert, other.key).ok());
  EXPECT_TRUE(Client(port_, untrusting.get()).connected());
  EXPECT_FALSE(Client(port_, trusted.get()).connected());
  ASSERT_TRUE(before_swap.Send("GET /health HTTP/1.1\r\n\r\n"));  // an open one keeps its own
  EXPECT_EQ(before_swap.Read().status, 200);
  StartWith(FakeEngineOptions{});  // plaintext: no TLS to replace
  EXPECT_EQ(server_->SetTls(certs.cert, certs.key).code(), absl::StatusCode::kFailedPrecondition);
  for (const auto& [cert, key] : std::vector<std::pair<std::string, std::string>>{
           {certs.cert, ""}, {certs.cert, other.key}, {"not a certificate", certs.key}}) {
    OpenAiOptions bad;
    bad.tls_cert_chain_pem = cert;
    bad.tls_private_key_pem = key;
    auto refused = OpenAiServer::Start("127.0.0.1:0", {engine_.get()}, bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  }
}

TEST_F(OpenAiServerTest, CompletionNonStreaming) {
  Response r = Post(port_, "/v1/completions",
                    R"({"model":"fake","prompt":"hello","max_tokens":4,"seed":1,)"
                    R"("temperature":0,"logprobs":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.Json();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "fake");
  EXPECT_TRUE(j["id"].is_string());
  EXPECT_TRUE(j["created"].is_number_integer());
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], "bcde");  // FakeEngine::TokenAt(1, 0..3)
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["choices"][0]["logprobs"]["tokens"], json({"b", "c", "d", "e"}));
  EXPECT_EQ(j["choices"][0]["logprobs"]["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 6);  // BOS + 5 bytes
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  EXPECT_EQ(j["usage"]["total_tokens"], 10);
  // The engine got the converted request: tokens, sampling, a request key.
  auto last = engine_->last_request();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->prompt_ids.size(), 6u);
  EXPECT_EQ(last->max_tokens, 4);
  EXPECT_EQ(last->sampling.seed, 1u);
  EXPECT_EQ(last->sampling.top_logprobs, 2);
  EXPECT_NE(last->request_key, crypto::Hash256{});
}

TEST_F(OpenAiServerTest, SameRequestSameKey) {
  const std::string body = R"({"model":"fake","prompt":"abc","max_tokens":2,"seed":7})";
  ASSERT_EQ(Post(port_, "/v1/completions", body).status, 200);
  const crypto::Hash256 first = engine_->last_request()->request_key;
  ASSERT_EQ(Post(port_, "/v1/completions", body).status, 200);
  EXPECT_EQ(engine_->last_request()->request_key, first);
  ASSERT_EQ(
      Post(port_, "/v1/completions", R"({"model":"fake","prompt":"abd","max_tokens":2,"seed":7})")
          .status,
      200);
  EXPECT_NE(engine_->last_request()->request_key, first);
}

TEST_F(OpenAiServerTest, CompletionStreaming) {
  Response r = Post(port_, "/v1/completions",
                    R"({"model":"fake","prompt":"hi","max_tokens":3,"stream":true,)"
                    R"("stream_options":{"include_usage":true}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.head.find("text/event-stream"), std::string::npos);
  const std::vector<std::string> data = SseData(r.body);
  ASSERT_GE(data.size(), 3u);
  EXPECT_EQ(data.back(), "[DONE]");
  std::string text;
  std::string finish;
  bool usage = false;
  for (size_t i = 0; i + 1 < data.size(); ++i) {
    const json chunk = json::parse(data[i], nullptr, false);
    ASSERT_FALSE(chunk.is_discarded()) << data[i];
    EXPECT_EQ(chunk["object"], "text_completion");
    if (chunk.contains("usage")) {
      usage = true;
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 3);
      continue;
    }
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) {
      finish = chunk["choices"][0]["finish_reason"];
    }
  }
  EXPECT_EQ(text, "abc");  // TokenAt(0, 0..2)
  EXPECT_EQ(finish, "length");
  EXPECT_TRUE(usage);
}

TEST_F(OpenAiServerTest, ChatNonStreamingUsesTemplate) {
  Response r = Post(port_, "/v1/chat/completions",
                    R"({"model":"fake","messages":[{"role":"system","content":"be brief"},)"
                    R"({"role":"user","content":"hi"}],"max_tokens":2,"logprobs":true,)"
                    R"("top_logprobs":1})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.Json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "ab");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  ASSERT_EQ(j["choices"][0]["logprobs"]["content"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"][0]["token"], "a");
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 1u);
  const std::string rendered =
      "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(j["usage"]["prompt_tokens"], engine_->tokenizer()->Encode(rendered, false).size());
}

TEST_F(OpenAiServerTest, ChatStreaming) {
  Response r = Post(port_, "/v1/chat/completions",
                    R"({"model":"fake","messages":[{"role":"user","content":"hi"}],)"
                    R"("max_tokens":3,"stream":true,"stop":["zz"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<std::string> data = SseData(r.body);
  ASSERT_GE(data.size(), 3u);
  EXPECT_EQ(data.back(), "[DONE]");
  std::string text;
  std::string finish;
  for (size_t i = 0; i + 1 < data.size(); ++i) {
    const json chunk = json::parse(data[i], nullptr, false);
    ASSERT_FALSE(chunk.is_discarded()) << data[i];
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    const json& choice = chunk["choices"][0];
    if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
  }
  EXPECT_EQ(text, "abc");
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(engine_->last_request()->stop_strings, std::vector<std::string>{"zz"});
}

TEST_F(OpenAiServerTest, EosFinishesWithStop) {
  FakeEngineOptions options;
  options.eos_after_tokens = 2;
  StartWith(options);
  Response r = Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","max_tokens":9})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r.Json()["choices"][0]["text"], "ab");
}

TEST_F(OpenAiServerTest, BadRequests) {
  ExpectError(Post(port_, "/v1/completions", "{not json"), 400, "");
  ExpectError(Post(port_, "/v1/completions", R"(["a"])"), 400, "");
  ExpectError(Post(port_, "/v1/completions", R"({"prompt":"x"})"), 400, "model");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake"})"), 400, "prompt");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":""})"), 400, "prompt");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","max_tokens":"3"})"),
              400, "max_tokens");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","temperature":7})"),
              400, "temperature");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","top_p":0})"), 400,
              "top_p");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","stop":5})"), 400,
              "stop");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","n":2})"), 400, "n");
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","logprobs":9})"), 400,
              "logprobs");
  ExpectError(Post(port_, "/v1/completions",
                   R"({"model":"fake","prompt":"x","atoma_security":"sampling"})"),
              400, "atoma_security");
  ExpectError(Post(port_, "/v1/chat/completions", R"({"model":"fake","messages":[]})"), 400,
              "messages");
  ExpectError(Post(port_, "/v1/chat/completions",
                   R"({"model":"fake","messages":[{"role":"user","content":[]}]})"),
              400, "messages[0].content");
  ExpectError(Post(port_, "/v1/chat/completions",
                   R"({"model":"fake","messages":[{"role":"robot","content":"x"}]})"),
              400, "messages[0].role");
  EXPECT_EQ(engine_->submitted(), 0);
}

TEST_F(OpenAiServerTest, ChatOnModelWithoutChatFormat) {
  FakeEngineOptions options;
  options.chat_format = engine::ChatFormat::kNone;
  StartWith(options);
  Response r = Post(port_, "/v1/chat/completions",
                    R"({"model":"fake","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 400) << r.body;
}

TEST_F(OpenAiServerTest, UnknownModelPathAndMethod) {
  ExpectError(Post(port_, "/v1/completions", R"({"model":"gpt-4","prompt":"x"})"), 404, "model",
              "model_not_found");
  EXPECT_EQ(
      Post(port_, "/v1/completions", R"({"model":"gpt-4","prompt":"x"})").Json()["error"]["type"],
      "invalid_request_error");
  ExpectError(Get(port_, "/v1/nothing"), 404, "", "unknown_url");
  Response r = Get(port_, "/v1/completions");
  ExpectError(r, 405, "", "method_not_allowed");
  EXPECT_NE(r.head.find("Allow: POST"), std::string::npos);
  ExpectError(Post(port_, "/v1/models", "{}"), 405, "");
}

TEST_F(OpenAiServerTest, BodyTooLarge) {
  OpenAiOptions options;
  options.max_body_bytes = 100;
  StartWith(FakeEngineOptions{}, options);
  const std::string body =
      absl::StrCat(R"({"model":"fake","prompt":")", std::string(200, 'x'), R"("})");
  ExpectError(Post(port_, "/v1/completions", body), 413, "", "request_too_large");
  // The default limit is 1 MiB: a body just under it is read (and then refused for the prompt
  // limit, not for its size).
  StartWith(FakeEngineOptions{});
  const std::string big =
      absl::StrCat(R"({"model":"fake","prompt":")", std::string(1000000, 'x'), R"("})");
  ExpectError(Post(port_, "/v1/completions", big), 400, "prompt");
  const std::string huge =
      absl::StrCat(R"({"model":"fake","prompt":")", std::string(1100000, 'x'), R"("})");
  EXPECT_EQ(Post(port_, "/v1/completions", huge).status, 413);
}

TEST_F(OpenAiServerTest, ExpectContinueGetsTheGoAhead) {
  // The client sends the body only after "100 Continue" (as curl does for large bodies).
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string body = R"({"model":"fake","prompt":"x","max_tokens":2})";
  const std::string head = absl::StrCat(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Connection: close\r\nContent-Length: ",
      body.size(), "\r\n\r\n");
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  char buf[256];
  const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_EQ(::send(fd, body.data(), body.size(), MSG_NOSIGNAL), static_cast<ssize_t>(body.size()));
  std::string rest;
  ssize_t m;
  while ((m = ::recv(fd, buf, sizeof(buf), 0)) > 0) rest.append(buf, static_cast<size_t>(m));
  ::close(fd);
  EXPECT_EQ(rest.rfind("HTTP/1.1 200 OK", 0), 0u) << rest;
}

TEST_F(OpenAiServerTest, ConnectionCapIs503) {
  FakeEngineOptions engine_options;
  engine_options.step = std::chrono::milliseconds(10);
  OpenAiOptions options;
  options.max_connections = 1;
  StartWith(engine_options, options);
  Response first;
  std::thread client([&, port = port_] {
    first = Post(port, "/v1/completions",
                 R"({"model":"fake","prompt":"x","max_tokens":300,"stream":true})");
  });
  while (engine_->submitted() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ExpectError(Get(port_, "/health"), 503, "", "service_unavailable");
  client.join();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(SseData(first.body).back(), "[DONE]");
}

TEST_F(OpenAiServerTest, ClientGoneCancelsTheGeneration) {
  FakeEngineOptions engine_options;
  engine_options.step = std::chrono::milliseconds(5);
  StartWith(engine_options);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string body = R"({"model":"fake","prompt":"x","max_tokens":400,"stream":true})";
  const std::string raw = absl::StrCat(
      "POST /v1/completions HTTP/1.1\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
  ASSERT_EQ(::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);  // the stream started
  ::close(fd);
  // The server notices at its next write and cancels; the engine sees the cancel.
  while (engine_->cancels_seen() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(engine_->cancels_seen(), 1);
}

TEST_F(OpenAiServerTest, QueueFullIs429) {
  FakeEngineOptions options;
  options.submit_status = absl::ResourceExhaustedError("engine queue is full");
  StartWith(options);
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x"})"), 429, "");
}

TEST_F(OpenAiServerTest, DrainingIs503) {
  OpenAiOptions options;
  options.draining = [] { return true; };
  StartWith(FakeEngineOptions{}, options);
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x"})"), 503, "");
  EXPECT_EQ(engine_->submitted(), 0);
  // Health and models still answer.
  EXPECT_EQ(Get(port_, "/health").status, 200);
}

TEST_F(OpenAiServerTest, EngineShutDownIs503) {
  engine_->Shutdown(std::chrono::milliseconds(0));
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x"})"), 503, "");
}

TEST_F(OpenAiServerTest, EngineFaultIs500) {
  FakeEngineOptions options;
  options.fail_after_tokens = 1;
  StartWith(options);
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x","max_tokens":5})"),
              500, "");
  // Streaming: the error arrives as an event after the tokens, and no [DONE].
  Response r = Post(port_, "/v1/completions",
                    R"({"model":"fake","prompt":"x","max_tokens":5,"stream":true})");
  ASSERT_EQ(r.status, 200);
  const std::vector<std::string> data = SseData(r.body);
  ASSERT_FALSE(data.empty());
  EXPECT_NE(data.back(), "[DONE]");
  EXPECT_TRUE(json::parse(data.back(), nullptr, false).contains("error")) << data.back();
}

TEST_F(OpenAiServerTest, StartRejectsBadListen) {
  auto server = OpenAiServer::Start("nowhere", {engine_.get()}, {});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(OpenAiServerTest, StopsWithStreamsRunning) {
  FakeEngineOptions options;
  options.step = std::chrono::milliseconds(20);
  StartWith(options);
  // A long stream in another thread; destroying the server must cancel it and return.
  std::thread client([port = port_] {
    Post(port, "/v1/completions",
         R"({"model":"fake","prompt":"x","max_tokens":400,"stream":true})");
  });
  while (engine_->submitted() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server_.reset();
  client.join();
  EXPECT_GE(engine_->cancels_seen(), 1);
}

// ---------------------------------------------------------------------------------------------
// Verified requests (atoma_security sampling:N) against a fake consensus runtime.

// A round that yields its tokens at once, then its outcome.
class FakeRound final : public peer::RoundHandle {
 public:
  FakeRound(std::vector<engine::StreamEvent> tokens, peer::RoundOutcome outcome, crypto::Hash256 id)
      : tokens_(std::move(tokens)), outcome_(std::move(outcome)), id_(id) {}
  Wait Next(engine::StreamEvent* token, std::chrono::milliseconds) override {
    if (next_ < tokens_.size()) {
      *token = tokens_[next_++];
      return Wait::kToken;
    }
    return Wait::kDone;
  }
  std::optional<Provisional> provisional() const override { return std::nullopt; }
  const peer::RoundOutcome& outcome() const override { return outcome_; }
  const crypto::Hash256& request_id() const override { return id_; }
  const std::vector<crypto::Address>& initial_committee() const override { return committee_; }

 private:
  std::vector<engine::StreamEvent> tokens_;
  size_t next_ = 0;
  peer::RoundOutcome outcome_;
  crypto::Hash256 id_;
  std::vector<crypto::Address> committee_;
};

// ConsensusNode::Submit's stand-in (OpenAiOptions::submit_verified): records what it was asked
// to run; answers with `submit_status` or a round whose output is "ok" (token ids 'o', 'k') and
// whose outcome status is `round_status`.
class FakeConsensus {
 public:
  absl::StatusOr<std::shared_ptr<peer::RoundHandle>> Submit(
      const consensus::ConsensusRequest& request, const crypto::Signature& client_signature) {
    std::lock_guard lock(mu_);
    submitted_.push_back(request);
    if (!submit_status.ok()) return submit_status;
    peer::RoundOutcome outcome;
    outcome.status = round_status;
    outcome.output.token_ids = {'o', 'k'};
    outcome.output.finish_reason = consensus::FinishReason::kLength;
    outcome.certificate = Certificate(request, client_signature);
    std::vector<engine::StreamEvent> tokens;
    for (char c : std::string("ok")) {
      engine::StreamEvent e;
      e.token_id = c;
      e.text = std::string(1, c);
      e.logprob = -0.5;
      tokens.push_back(e);
    }
    return std::make_shared<FakeRound>(tokens, outcome, consensus::RequestId(request));
  }
  static consensus::Certificate Certificate(const consensus::ConsensusRequest& request,
                                            const crypto::Signature& client_signature) {
    consensus::Certificate c;
    c.request = request;
    c.client_signature = client_signature;
    c.committee = {crypto::Address{1}, crypto::Address{2}, crypto::Address{3}};
    c.commitment[0] = 0xcc;
    return c;
  }
  std::vector<consensus::ConsensusRequest> submitted() const {
    std::lock_guard lock(mu_);
    return submitted_;
  }

  absl::Status submit_status;
  absl::Status round_status;

 private:
  mutable std::mutex mu_;
  std::vector<consensus::ConsensusRequest> submitted_;
};

std::string Hex0x(std::span<const uint8_t> bytes) { return "0x" + crypto::ToHex(bytes); }

// A verified request body ("Hi", 6 tokens, seed 11) with a well-formed (not valid) atoma_client.
json VerifiedBody(const std::string& security, bool chat, bool stream) {
  json body = {{"model", "fake"},
               {"max_tokens", 6},
               {"seed", 11},
               {"stream", stream},
               {"atoma_security", security},
               {"atoma_client",
                {{"address", "0x" + std::string(40, 'a')},
                 {"signature", "0x" + std::string(130, '1')},
                 {"nonce", "77"},
                 {"max_fee", "1000"},
                 {"epoch", 4}}}};
  if (chat) {
    body["messages"] = {{{"role", "user"}, {"content", "Hi"}}};
  } else {
    body["prompt"] = "Hi";
  }
  return body;
}

class VerifiedHttpTest : public OpenAiServerTest {
 protected:
  void SetUp() override { StartVerified(); }
  // The server goes before the fake runtime it calls.
  void TearDown() override { server_.reset(); }
  void StartVerified(bool with_consensus = true) {
    OpenAiOptions options;
    if (with_consensus) {
      options.submit_verified = [this](const consensus::ConsensusRequest& request,
                                       const crypto::Signature& signature) {
        return consensus_.Submit(request, signature);
      };
    }
    StartWith(FakeEngineOptions{}, std::move(options));
  }

  static json Body(bool chat, bool stream) {
    json body = VerifiedBody("sampling:3", chat, stream);
    body["temperature"] = 0.5;
    return body;
  }

  // The canonical request the gRPC path builds for the same input: the prompt tokenized as
  // Inference.Tokenize does (the fake tokenizer: BOS then bytes; chat: ChatML), through
  // api::ToGenerateRequest and api::ConsensusRequestFromProto.
  consensus::ConsensusRequest GrpcEquivalent(bool chat) const {
    consensus::ConsensusRequest r;
    r.model_digest = engine_->info().digest;
    v1::TokenizeRequest tokenize;
    tokenize.set_model("fake");
    if (chat) {
      v1::ChatMessage* m = tokenize.mutable_chat()->add_messages();
      m->set_role("user");
      m->set_content("Hi");
    } else {
      tokenize.set_text("Hi");
    }
    auto ids = api::TokenizeForRequest(tokenize, *engine_, api::ConvertLimits{});
    EXPECT_TRUE(ids.ok()) << ids.status();
    for (int32_t id : *ids) r.prompt_token_ids.push_back(static_cast<uint32_t>(id));
    r.temperature_micro = 500'000;
    r.max_tokens = 6;
    r.seed = 11;
    r.security = {consensus::SecurityMode::kSampling, 3, 0, 0, {}};
    r.max_fee = Uint256(1000);
    r.client.fill(0xaa);
    r.client_nonce = 77;
    r.epoch = 4;
    crypto::Signature sig;
    sig.fill(0x11);
    auto parsed =
        api::ConsensusRequestFromProto(api::ToGenerateRequest(r, "fake", sig), r.model_digest);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed->request;
  }

  void ExpectVerification(const json& j, const consensus::ConsensusRequest& request) {
    crypto::Signature sig;
    sig.fill(0x11);
    EXPECT_EQ(j["atoma_request_id"], Hex0x(consensus::RequestId(request))) << j.dump();
    EXPECT_EQ(j["atoma_certificate"],
              Hex0x(consensus::EncodeCertificate(FakeConsensus::Certificate(request, sig))));
    // 'o', 'k'
    EXPECT_EQ(j["atoma_output"], (json{{"token_ids", {111, 107}}, {"finish_reason", "length"}}));
  }

  Response PostVerified(const json& body, bool chat = false) {
    return Post(port_, chat ? "/v1/chat/completions" : "/v1/completions", body.dump());
  }

  FakeConsensus consensus_;
};

TEST_F(VerifiedHttpTest, CompletionRunsARoundAndReturnsTheCertificate) {
  Response r = PostVerified(Body(false, false));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(consensus_.submitted().size(), 1u);
  const consensus::ConsensusRequest expected = GrpcEquivalent(false);
  EXPECT_EQ(consensus::RequestId(consensus_.submitted()[0]), consensus::RequestId(expected));
  const json j = r.Json();
  EXPECT_EQ(j["choices"][0]["text"], "ok");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], expected.prompt_token_ids.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  ExpectVerification(j, expected);
  EXPECT_EQ(engine_->submitted(), 0);  // the round, not the anonymous path, ran it
}

TEST_F(VerifiedHttpTest, ChatStreamingCarriesTheCertificateInTheFinishChunk) {
  json body = Body(true, true);
  body["stream_options"] = {{"include_usage", true}};
  Response r = PostVerified(body, /*chat=*/true);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::vector<std::string> data = SseData(r.body);
  ASSERT_GE(data.size(), 4u) << r.body;
  EXPECT_EQ(data.back(), "[DONE]");
  std::string text;
  json finish;
  for (size_t i = 0; i + 1 < data.size(); ++i) {
    const json chunk = json::parse(data[i]);
    if (chunk["choices"].empty()) continue;  // the usage chunk
    text += chunk["choices"][0]["delta"].value("content", "");
    if (!chunk["choices"][0]["finish_reason"].is_null()) {
      finish = chunk;
    } else {
      EXPECT_FALSE(chunk.contains("atoma_certificate"));
    }
  }
  EXPECT_EQ(text, "ok");
  ASSERT_FALSE(finish.is_null()) << r.body;
  ASSERT_EQ(consensus_.submitted().size(), 1u);
  EXPECT_EQ(consensus::RequestId(consensus_.submitted()[0]),
            consensus::RequestId(GrpcEquivalent(true)));
  ExpectVerification(finish, GrpcEquivalent(true));
}

TEST_F(VerifiedHttpTest, SubmitRefusalsMapToHttpCodes) {
  struct Case {
    absl::Status status;
    int http;
    std::string param;
    std::string code;
  };
  const std::vector<Case> cases = {
      {absl::PermissionDeniedError("authorization.signature: recovers to 0x1, not to the client"),
       403, "atoma_client.signature", "invalid_client_signature"},
      {absl::FailedPreconditionError("epoch: the request is for epoch 4 but the ledger's current "
                                     "epoch is 5"),
       409, "atoma_client.epoch", "stale_epoch"},
      {absl::AlreadyExistsError("client_nonce: nonce 77 of client 0xaa was already settled"), 409,
       "atoma_client.nonce", "nonce_used"},
      {absl::FailedPreconditionError("max_fee: 1000 is below the worst-case fee 2000"), 402,
       "atoma_client.max_fee", "max_fee_too_low"},
      {absl::FailedPreconditionError("escrow: the client's escrow 5 does not cover 2000"), 402,
       "atoma_client.address", "insufficient_escrow"},
      {absl::FailedPreconditionError("committee: 2 staked nodes, 3 needed"), 503, "",
       "committee_unavailable"},
      {absl::UnavailableError("the node is shutting down"), 503, "", "service_unavailable"},
      {absl::InternalError("journal write failed"), 500, "", ""},
  };
  for (const Case& c : cases) {
    consensus_.submit_status = c.status;
    ExpectError(PostVerified(Body(false, false)), c.http, c.param, c.code);
  }
}

TEST_F(VerifiedHttpTest, FailedRoundIsAnError) {
  consensus_.round_status = absl::AbortedError("dispute: member 2 slashed");
  ExpectError(PostVerified(Body(false, false)), 502, "", "round_disputed");
  // Streaming: the tokens, then the error as the last event, no [DONE].
  Response r = PostVerified(Body(false, true));
  ASSERT_EQ(r.status, 200);
  const std::vector<std::string> data = SseData(r.body);
  ASSERT_FALSE(data.empty());
  const json last = json::parse(data.back(), nullptr, false);
  ASSERT_TRUE(last.contains("error")) << r.body;
  EXPECT_EQ(last["error"]["code"], "round_disputed");
}

TEST_F(VerifiedHttpTest, CanonicalRequestErrorsNameTheBodyField) {
  json body = Body(false, false);
  body.erase("max_tokens");
  ExpectError(PostVerified(body), 400, "max_tokens");
  body = Body(false, false);
  body["top_p"] = 1e-9;  // rounds to 0 millionths
  ExpectError(PostVerified(body), 400, "top_p");
  body = Body(false, false);
  body["atoma_security"] = "sampling:65";  // past consensus::kMaxCommitteeSize
  ExpectError(PostVerified(body), 400, "atoma_security");
  body = Body(false, false);
  body["atoma_client"]["signature"] = "0x12";
  ExpectError(PostVerified(body), 400, "atoma_client.signature");
  body = Body(false, true);
  body["atoma_security"] = "cross_validation:0.5:2";  // without atoma_client.salt_hash
  ExpectError(PostVerified(body), 400, "atoma_client.salt_hash");
  EXPECT_TRUE(consensus_.submitted().empty());
}

TEST_F(VerifiedHttpTest, WithoutLedgerIs501) {
  StartVerified(/*with_consensus=*/false);
  Response r = PostVerified(Body(false, false));
  ExpectError(r, 501, "atoma_security", "verification_unavailable");
  EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("without a ledger"),
            std::string::npos);
}

TEST_F(OpenAiServerTest, AnonymousRefusedWhenNotAllowed) {
  OpenAiOptions options;
  options.allow_anonymous = false;
  StartWith(FakeEngineOptions{}, std::move(options));
  ExpectError(Post(port_, "/v1/completions", R"({"model":"fake","prompt":"x"})"), 401,
              "atoma_security", "anonymous_not_allowed");
  EXPECT_EQ(engine_->submitted(), 0);
}

// ---------------------------------------------------------------------------------------------
// Cross-validation (atoma_security cross_validation:P:K): provisional result, salt reveal over
// POST /v1/atoma/reveal_salt, final certificate.

// A cross-validation round: its tokens, then the provisional result (kProvisional once), then it
// waits for the salt (as the real round does until its salt timeout) and ends certified.
class FakeXvRound final : public peer::RoundHandle {
 public:
  FakeXvRound(consensus::ConsensusRequest request, crypto::Signature client_signature)
      : request_(std::move(request)), id_(consensus::RequestId(request_)) {
    output_.token_ids = {'o', 'k'};
    output_.finish_reason = consensus::FinishReason::kLength;
    attestation_.request_id = id_;
    attestation_.commitment[0] = 0xc1;
    attestation_.completion_tokens = 2;
    attestation_.member = crypto::Address{9};
    outcome_.status = absl::OkStatus();
    outcome_.output = output_;
    outcome_.certificate = FakeConsensus::Certificate(request_, client_signature);
    outcome_.certificate.committee = {attestation_.member};
    outcome_.certificate.attestations = {attestation_};
  }
  Wait Next(engine::StreamEvent* token, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    if (next_ < 2) {
      *token = engine::StreamEvent{};
      token->token_id = static_cast<int32_t>(output_.token_ids[next_]);
      token->text = std::string(1, static_cast<char>(output_.token_ids[next_]));
      ++next_;
      return Wait::kToken;
    }
    if (!provisional_sent_) {
      provisional_sent_ = true;
      cv_.notify_all();
      return Wait::kProvisional;
    }
    if (!cv_.wait_for(lock, timeout, [&] { return salt_.has_value(); })) return Wait::kTimeout;
    return Wait::kDone;
  }
  std::optional<Provisional> provisional() const override {
    std::lock_guard lock(mu_);
    if (!provisional_sent_) return std::nullopt;
    return Provisional{attestation_, output_};
  }
  const peer::RoundOutcome& outcome() const override { return outcome_; }
  const crypto::Hash256& request_id() const override { return id_; }
  const std::vector<crypto::Address>& initial_committee() const override {
    return outcome_.certificate.committee;
  }

  // ConsensusNode::RevealSalt's contract for this round.
  absl::StatusOr<bool> Reveal(const consensus::XvSalt& salt) {
    std::lock_guard lock(mu_);
    if (consensus::XvSaltHash(salt) != request_.security.salt_hash) {
      return absl::PermissionDeniedError("salt: does not hash to the request's salt_hash");
    }
    if (!provisional_sent_ || salt_.has_value()) {
      return absl::FailedPreconditionError("the round is not waiting for a salt");
    }
    salt_ = salt;
    consensus::XvCertificate xv;
    xv.base = outcome_.certificate;
    xv.salt = salt;
    outcome_.xv_certificate = xv;
    cv_.notify_all();
    return true;
  }
  void AwaitProvisional() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return provisional_sent_; });
  }
  const consensus::Attestation& attestation() const { return attestation_; }

 private:
  const consensus::ConsensusRequest request_;
  const crypto::Hash256 id_;
  consensus::ConsensusOutput output_;
  consensus::Attestation attestation_;
  peer::RoundOutcome outcome_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t next_ = 0;
  bool provisional_sent_ = false;
  std::optional<consensus::XvSalt> salt_;
};

class XvHttpTest : public OpenAiServerTest {
 protected:
  void SetUp() override {
    salt_.fill(0x5a);
    OpenAiOptions options;
    options.submit_verified = [this](const consensus::ConsensusRequest& request,
                                     const crypto::Signature& signature)
        -> absl::StatusOr<std::shared_ptr<peer::RoundHandle>> {
      std::lock_guard lock(mu_);
      round_ = std::make_shared<FakeXvRound>(request, signature);
      submitted_cv_.notify_all();
      return round_;
    };
    options.reveal_salt = [this](const std::array<uint8_t, 32>& id,
                                 const std::array<uint8_t, 32>& salt) -> absl::StatusOr<bool> {
      std::shared_ptr<FakeXvRound> round = Round();
      if (round == nullptr || round->request_id() != id) {
        return absl::NotFoundError("request_id: no running round with this id");
      }
      return round->Reveal(salt);
    };
    StartWith(FakeEngineOptions{}, std::move(options));
  }
  void TearDown() override { server_.reset(); }

  std::shared_ptr<FakeXvRound> Round() {
    std::lock_guard lock(mu_);
    return round_;
  }
  std::shared_ptr<FakeXvRound> AwaitRound() {
    std::unique_lock lock(mu_);
    submitted_cv_.wait(lock, [&] { return round_ != nullptr; });
    return round_;
  }

  json Body(bool chat, bool stream) const {
    json body = VerifiedBody("cross_validation:1:1", chat, stream);
    body["atoma_client"]["salt_hash"] = Hex0x(consensus::XvSaltHash(salt_));
    return body;
  }
  Response Reveal(const crypto::Hash256& id, const consensus::XvSalt& salt) {
    return Post(port_, "/v1/atoma/reveal_salt",
                json{{"request_id", Hex0x(id)}, {"salt", Hex0x(salt)}}.dump());
  }

  consensus::XvSalt salt_{};
  std::mutex mu_;
  std::condition_variable submitted_cv_;
  std::shared_ptr<FakeXvRound> round_;
};

TEST_F(XvHttpTest, ProvisionalThenRevealThenCertificate) {
  for (const bool chat : {true, false}) {
    {
      std::lock_guard lock(mu_);
      round_.reset();
    }
    Response stream;
    std::thread client([&] {
      stream =
          Post(port_, chat ? "/v1/chat/completions" : "/v1/completions", Body(chat, true).dump());
    });
    std::shared_ptr<FakeXvRound> round = AwaitRound();
    round->AwaitProvisional();
    const crypto::Hash256 id = round->request_id();

    // Refusals while the round waits: another id (404), a salt that is not the committed one
    // (403); none of them ends the wait.
    crypto::Hash256 other = id;
    other[0] ^= 1;
    ExpectError(Reveal(other, salt_), 404, "request_id", "round_not_found");
    consensus::XvSalt wrong = salt_;
    wrong[5] ^= 1;
    ExpectError(Reveal(id, wrong), 403, "salt", "salt_mismatch");

    Response revealed = Reveal(id, salt_);
    ASSERT_EQ(revealed.status, 200) << revealed.body;
    EXPECT_EQ(revealed.Json(), json({{"checked", true}}));
    // Revealed once: the round no longer waits for a salt.
    ExpectError(Reveal(id, salt_), 409, "request_id", "not_awaiting_salt");
    client.join();

    ASSERT_EQ(stream.status, 200) << stream.body;
    const std::vector<std::string> data = SseData(stream.body);
    ASSERT_FALSE(data.empty());
    EXPECT_EQ(data.back(), "[DONE]");
    std::string text;
    int provisional_at = -1;
    int finish_at = -1;
    json provisional;
    json finish;
    for (size_t i = 0; i + 1 < data.size(); ++i) {
      const json chunk = json::parse(data[i]);
      EXPECT_EQ(chunk["object"], chat ? "chat.completion.chunk" : "text_completion");
      ASSERT_TRUE(chunk["choices"].is_array()) << data[i];
      if (chunk.contains("atoma_provisional")) {
        EXPECT_TRUE(chunk["choices"].empty()) << data[i];
        EXPECT_EQ(provisional_at, -1) << "a second provisional chunk";
        provisional_at = static_cast<int>(i);
        provisional = chunk["atoma_provisional"];
        continue;
      }
      const json& choice = chunk["choices"][0];
      text += chat ? choice["delta"].value("content", "") : choice["text"].get<std::string>();
      if (!choice["finish_reason"].is_null()) {
        finish_at = static_cast<int>(i);
        finish = chunk;
      }
    }
    EXPECT_EQ(text, "ok");
    ASSERT_GE(provisional_at, 0) << stream.body;
    ASSERT_GT(finish_at, provisional_at) << stream.body;
    EXPECT_EQ(provisional["request_id"], Hex0x(id));
    EXPECT_EQ(provisional["attestation"],
              Hex0x(consensus::EncodeAttestation(round->attestation())));
    EXPECT_EQ(provisional["output"],
              (json{{"token_ids", {111, 107}}, {"finish_reason", "length"}}));
    EXPECT_EQ(finish["atoma_request_id"], Hex0x(id));
    ASSERT_TRUE(round->outcome().xv_certificate.has_value());
    EXPECT_EQ(finish["atoma_certificate"],
              Hex0x(consensus::EncodeXvCertificate(*round->outcome().xv_certificate)));
    EXPECT_EQ(finish["atoma_certificate"].get<std::string>().substr(0, 4), "0x02");
    EXPECT_EQ(finish["atoma_output"], provisional["output"]);
  }
}

TEST_F(XvHttpTest, NonStreamingIsRefused) {
  Response r = Post(port_, "/v1/completions", Body(false, false).dump());
  ExpectError(r, 400, "stream");
  EXPECT_NE(r.Json()["error"]["message"].get<std::string>().find("\"stream\": true"),
            std::string::npos)
      << r.body;
  EXPECT_EQ(Round(), nullptr);  // nothing submitted
}

TEST_F(XvHttpTest, RevealSaltBodyAndMethodErrors) {
  ExpectError(Post(port_, "/v1/atoma/reveal_salt", "{"), 400, "");
  ExpectError(Post(port_, "/v1/atoma/reveal_salt", R"({"request_id":"0x12","salt":"0x34"})"), 400,
              "request_id");
  ExpectError(Get(port_, "/v1/atoma/reveal_salt"), 405, "", "method_not_allowed");
  // No round runs: 404.
  ExpectError(Reveal(crypto::Hash256{}, salt_), 404, "request_id", "round_not_found");
}

TEST_F(VerifiedHttpTest, RevealSaltWithoutLedgerIs501) {
  StartVerified(/*with_consensus=*/false);
  ExpectError(
      Post(port_, "/v1/atoma/reveal_salt",
           json{{"request_id", "0x" + std::string(64, '1')}, {"salt", "0x" + std::string(64, '2')}}
               .dump()),
      501, "", "verification_unavailable");
}

// ---------------------------------------------------------------------------------------------
// API keys (http.api_keys_file).

TEST_F(OpenAiServerTest, ApiKeysGuardEveryPathButHealth) {
  OpenAiOptions options;
  options.api_keys = {"sk-first", "sk-second"};
  StartWith(FakeEngineOptions{}, std::move(options));
  const std::string body = R"({"model":"fake","prompt":"x","max_tokens":2})";
  // Missing and wrong keys: 401 in OpenAI's shape, nothing generated.
  Response missing = WithAuth(port_, "POST", "/v1/completions", "", body);
  ExpectError(missing, 401, "", "invalid_api_key");
  EXPECT_NE(missing.head.find("WWW-Authenticate: Bearer"), std::string::npos) << missing.head;
  for (const std::string& wrong : {std::string("Bearer sk-third"), std::string("Bearer sk-firs"),
                                   std::string("Bearer sk-first2"), std::string("Bearer "),
                                   std::string("sk-first"), std::string("Basic c2stZmlyc3Q6")}) {
    ExpectError(WithAuth(port_, "POST", "/v1/completions", wrong, body), 401, "",
                "invalid_api_key");
  }
  ExpectError(WithAuth(port_, "GET", "/v1/models", "Bearer nope"), 401, "", "invalid_api_key");
  ExpectError(WithAuth(port_, "POST", "/v1/atoma/reveal_salt", "", "{}"), 401, "",
              "invalid_api_key");
  ExpectError(WithAuth(port_, "GET", "/v1/unknown", ""), 401, "", "invalid_api_key");
  EXPECT_EQ(engine_->submitted(), 0);
  // Either key works, with the scheme in any case.
  EXPECT_EQ(WithAuth(port_, "POST", "/v1/completions", "Bearer sk-first", body).status, 200);
  EXPECT_EQ(WithAuth(port_, "POST", "/v1/completions", "bearer sk-second", body).status, 200);
  EXPECT_EQ(WithAuth(port_, "GET", "/v1/models", "Bearer sk-second").status, 200);
  EXPECT_EQ(engine_->submitted(), 2);
  // The health probe needs none.
  EXPECT_EQ(Get(port_, "/health").status, 200);
  // Rotated keys (SIGHUP): the new set is in force at once, the old keys are not.
  server_->SetApiKeys({"sk-rotated"});
  EXPECT_EQ(WithAuth(port_, "GET", "/v1/models", "Bearer sk-rotated").status, 200);
  ExpectError(WithAuth(port_, "GET", "/v1/models", "Bearer sk-first"), 401, "", "invalid_api_key");
  server_->SetApiKeys({});
  EXPECT_EQ(WithAuth(port_, "GET", "/v1/models", "").status, 200);
}

class ApiKeysFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::FreshTestDir("atoma_http_keys_"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path Write(const std::string& name, const std::string& text, mode_t mode) {
    const std::filesystem::path path = dir_ / name;
    std::filesystem::remove(path);
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ApiKeysFileTest, ReadsOneKeyPerLine) {
  auto keys = LoadApiKeys(Write("keys_ok", "# clients\nsk-one\n\n  sk-two  \r\n", 0600));
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(*keys, (std::vector<std::string>{"sk-one", "sk-two"}));
}

TEST_F(ApiKeysFileTest, RefusesFilesOthersMayRead) {
  const std::filesystem::path path = Write("keys_open", "sk-one\n", 0644);
  auto keys = LoadApiKeys(path);
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(keys.status().message().find("chmod 600"), std::string::npos) << keys.status();
  EXPECT_EQ(LoadApiKeys(Write("keys_group", "sk-one\n", 0640)).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ApiKeysFileTest, EmptyOrMissing) {
  EXPECT_EQ(LoadApiKeys(Write("keys_empty", "# none yet\n\n", 0600)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadApiKeys(dir_ / "no_such_keys").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace atoma::http
