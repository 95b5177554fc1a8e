// OpenAiServer: the OpenAI-compatible HTTP endpoint on a socket of our own (as metrics/server.cc),
// with a thread per connection. Bodies are read by ParseOpenAiBody (openai_body.h); verified
// requests go through the gRPC layer's converters and the node's ConsensusNode.
#include "atoma/http/openai_server.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/common/tcp_listener.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"
#include "atoma/metrics/request_meter.h"
#include "atoma/peer/consensus_node.h"
#include "atoma/v1/inference.pb.h"
#include "consensus_fields.h"
#include "convert.h"
#include "nlohmann/json.hpp"
#include "openai_body.h"

namespace atoma::http {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// An OpenAI-shaped error: HTTP status plus {"error": {message, type, param, code}}.
struct HttpError {
  int status = 400;
  std::string message;
  std::string param;  // empty = null
  std::string code;   // empty = null
  std::string type = "invalid_request_error";
};

HttpError BadField(std::string param, std::string message) {
  return HttpError{400, std::move(message), std::move(param), "", "invalid_request_error"};
}

json ErrorBody(const HttpError& e) {
  json error = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) error["param"] = e.param;
  if (!e.code.empty()) error["code"] = e.code;
  return json{{"error", std::move(error)}};
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 409:
      return "Conflict";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

// The OpenAI parameter a validation message of api::ToEngineRequest, Engine::Submit,
// api::ConsensusRequestFromProto or ConsensusNode::Submit is about ("sampling.top_p: ..." →
// "top_p", "chat.messages[1].role: ..." → "messages[1].role", "authorization.signature: ..." →
// "atoma_client.signature").
std::string ParamOf(absl::string_view message, bool chat) {
  const size_t colon = message.find(':');
  std::string field(colon == absl::string_view::npos ? "" : message.substr(0, colon));
  if (absl::StartsWith(field, "sampling.")) field = field.substr(9);
  if (absl::StartsWith(field, "chat.")) return field.substr(5);
  if (field == "text" || field == "prompt" || field == "prompt_ids" || field == "chat" ||
      absl::StartsWith(field, "token_ids")) {
    return chat ? "messages" : "prompt";
  }
  if (absl::StartsWith(field, "stop_token_ids")) return "stop_token_ids";
  if (absl::StartsWith(field, "stop")) return "stop";
  if (field == "max_tokens" || field == "temperature" || field == "top_p" || field == "seed" ||
      field == "top_logprobs" || field == "top_k") {
    return field;
  }
  if (absl::StartsWith(field, "security")) return "atoma_security";
  if (field == "authorization.client_address") return "atoma_client.address";
  if (field == "authorization.signature") return "atoma_client.signature";
  if (field == "authorization.max_fee" || field == "max_fee") return "atoma_client.max_fee";
  if (field == "authorization") return "atoma_client";
  if (field == "epoch") return "atoma_client.epoch";
  if (field == "client_nonce") return "atoma_client.nonce";
  return "";
}

// Maps an engine, conversion or consensus status onto an HTTP error. Verified requests
// (ConsensusNode::Submit and the round's outcome): PERMISSION_DENIED (the client signature does
// not authorize the request) → 403; a stale epoch or an already used nonce / request → 409;
// max_fee below the worst case or escrow short → 402; too few staked nodes for the committee →
// 503; a round ended by a dispute → 502. The messages start with the field they are about.
HttpError FromStatus(const absl::Status& s, bool chat) {
  const std::string message(s.message());
  switch (s.code()) {
    case absl::StatusCode::kFailedPrecondition:
      if (absl::StartsWith(message, "epoch:")) {
        return HttpError{409, message, "atoma_client.epoch", "stale_epoch",
                         "invalid_request_error"};
      }
      if (absl::StartsWith(message, "max_fee:")) {
        return HttpError{402, message, "atoma_client.max_fee", "max_fee_too_low",
                         "invalid_request_error"};
      }
      if (absl::StartsWith(message, "escrow:")) {
        return HttpError{402, message, "atoma_client.address", "insufficient_escrow",
                         "invalid_request_error"};
      }
      if (absl::StartsWith(message, "committee:") ||
          absl::StartsWith(message, "the echelon cannot serve")) {
        return HttpError{503, message, "", "committee_unavailable", "server_error"};
      }
      return BadField(ParamOf(message, chat), message);
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return BadField(ParamOf(message, chat), message);
    case absl::StatusCode::kPermissionDenied:
      return HttpError{403, message, "atoma_client.signature", "invalid_client_signature",
                       "permission_error"};
    case absl::StatusCode::kAlreadyExists:
      return HttpError{409, message, "atoma_client.nonce", "nonce_used", "invalid_request_error"};
    case absl::StatusCode::kNotFound:
      return HttpError{404, message, "model", "model_not_found", "invalid_request_error"};
    case absl::StatusCode::kAborted:
      return HttpError{502, message, "", "round_disputed", "server_error"};
    case absl::StatusCode::kUnimplemented:
      return HttpError{400, message, "", "", "invalid_request_error"};
    case absl::StatusCode::kResourceExhausted:
      return HttpError{429, message, "", "rate_limit_exceeded", "rate_limit_error"};
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
      return HttpError{503, message, "", "service_unavailable", "server_error"};
    default:
      return HttpError{500, message.empty() ? "internal error" : message, "", "", "server_error"};
  }
}

// ConsensusNode::RevealSalt's errors: NOT_FOUND no running round with the id, PERMISSION_DENIED
// a salt that does not hash to the request's salt_hash, FAILED_PRECONDITION a round not waiting
// for a salt.
HttpError RevealError(const absl::Status& s) {
  const std::string message(s.message());
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return HttpError{404, message, "request_id", "round_not_found", "invalid_request_error"};
    case absl::StatusCode::kPermissionDenied:
      return HttpError{403, message, "salt", "salt_mismatch", "permission_error"};
    case absl::StatusCode::kFailedPrecondition:
      return HttpError{409, message, "request_id", "not_awaiting_salt", "invalid_request_error"};
    case absl::StatusCode::kInvalidArgument:
      return BadField("", message);
    case absl::StatusCode::kUnavailable:
      return HttpError{503, message, "", "service_unavailable", "server_error"};
    default:
      return HttpError{500, message.empty() ? "internal error" : message, "", "", "server_error"};
  }
}

const char* FinishName(engine::FinishReason r) {
  return r == engine::FinishReason::kLength ? "length" : "stop";
}

// Accumulates per-token logprobs in the chat or the completions shape.
class LogprobsBuilder {
 public:
  LogprobsBuilder(const engine::Tokenizer* tokenizer, bool chat)
      : tokenizer_(tokenizer), chat_(chat) {}

  std::string TokenText(int32_t id) const {
    if (tokenizer_ == nullptr) return std::to_string(id);
    const int32_t ids[1] = {id};
    return tokenizer_->Decode(ids, /*skip_special_tokens=*/false);
  }
  static json Bytes(const std::string& s) {
    json out = json::array();
    for (unsigned char c : s) out.push_back(static_cast<int>(c));
    return out;
  }
  static json Number(double x) { return std::isfinite(x) ? json(x) : json(-9999.0); }

  // Adds one token event; returns that token's entry (for streaming chunks).
  json Add(const engine::StreamEvent& e, size_t text_offset) {
    const std::string token = TokenText(e.token_id);
    if (chat_) {
      json top = json::array();
      for (const engine::TokenLogprob& t : e.top_logprobs) {
        const std::string s = TokenText(t.token_id);
        top.push_back({{"token", s}, {"logprob", Number(t.logprob)}, {"bytes", Bytes(s)}});
      }
      json entry = {{"token", token},
                    {"logprob", Number(e.logprob)},
                    {"bytes", Bytes(token)},
                    {"top_logprobs", std::move(top)}};
      content_.push_back(entry);
      return json{{"content", json::array({entry})}};
    }
    json top = json::object();
    for (const engine::TokenLogprob& t : e.top_logprobs) {
      top[TokenText(t.token_id)] = Number(t.logprob);
    }
    tokens_.push_back(token);
    token_logprobs_.push_back(Number(e.logprob));
    top_logprobs_.push_back(top);
    offsets_.push_back(text_offset);
    return json{{"tokens", json::array({token})},
                {"token_logprobs", json::array({Number(e.logprob)})},
                {"top_logprobs", json::array({top})},
                {"text_offset", json::array({text_offset})}};
  }

  json Result() const {
    if (chat_) return json{{"content", content_}};
    return json{{"tokens", tokens_},
                {"token_logprobs", token_logprobs_},
                {"top_logprobs", top_logprobs_},
                {"text_offset", offsets_}};
  }

 private:
  const engine::Tokenizer* tokenizer_;
  bool chat_;
  json content_ = json::array();
  json tokens_ = json::array();
  json token_logprobs_ = json::array();
  json top_logprobs_ = json::array();
  json offsets_ = json::array();
};

// OpenSSL's oldest queued error of this thread as text (and the queue cleared).
std::string SslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error queued";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using TlsContext = std::unique_ptr<SSL_CTX, SslCtxFree>;

// A TLS 1.2+ server context from a PEM certificate chain (leaf first) and its PEM private key.
absl::StatusOr<TlsContext> MakeTlsContext(const std::string& chain_pem,
                                          const std::string& key_pem) {
  TlsContext ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("SSL_CTX_new: ", SslError()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
  Bio chain(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())), BIO_free);
  X509* leaf = chain ? PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr) : nullptr;
  if (leaf == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate: no PEM certificate (", SslError(), ")"));
  }
  const int used = SSL_CTX_use_certificate(ctx.get(), leaf);
  X509_free(leaf);
  if (used != 1) {
    return absl::InvalidArgumentError(absl::StrCat("TLS certificate: ", SslError()));
  }
  // The rest of the file is the chain up to (not necessarily including) the root.
  while (X509* extra = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx.get(), extra) != 1) {  // owns `extra` on success
      X509_free(extra);
      return absl::InvalidArgumentError(absl::StrCat("TLS certificate chain: ", SslError()));
    }
  }
  ERR_clear_error();  // the end of the PEM data queues a "no start line" error
  Bio key(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), BIO_free);
  EVP_PKEY* pkey = key ? PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr) : nullptr;
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS private key: no unencrypted PEM private key (", SslError(), ")"));
  }
  const int key_used = SSL_CTX_use_PrivateKey(ctx.get(), pkey);
  EVP_PKEY_free(pkey);
  if (key_used != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS private key: does not match the certificate (", SslError(), ")"));
  }
  return ctx;
}

class SocketServer final : public OpenAiServer {
 public:
  SocketServer(std::vector<engine::Engine*> engines, OpenAiOptions options, int fd, int port,
               TlsContext tls)
      : engines_(std::move(engines)),
        options_(std::move(options)),
        fd_(fd),
        port_(port),
        tls_on_(tls != nullptr),
        tls_(std::shared_ptr<SSL_CTX>(tls.release(), SslCtxFree())) {
    api_keys_ = std::make_shared<const std::vector<std::string>>(options_.api_keys);
    limits_.max_prompt_bytes = options_.max_prompt_bytes;
    limits_.default_max_tokens = options_.default_max_tokens;
    if (::pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
    thread_ = std::thread([this] { Serve(); });
  }

  ~SocketServer() override {
    stop_ = true;
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
    thread_.join();
    {
      // Wake connections blocked in recv/send; streaming loops see stop_ and cancel.
      std::unique_lock lock(mu_);
      for (Connection& c : connections_) {
        if (!c.done) ::shutdown(c.fd, SHUT_RDWR);
      }
    }
    std::list<Connection> left;
    {
      std::unique_lock lock(mu_);
      left.swap(connections_);
    }
    for (Connection& c : left) c.thread.join();
    ::close(fd_);
    for (int fd : wake_) {
      if (fd >= 0) ::close(fd);
    }
  }

  int bound_port() const override { return port_; }

  absl::Status SetTls(const std::string& cert_chain_pem,
                      const std::string& private_key_pem) override {
    if (!tls_on_) {
      return absl::FailedPreconditionError(
          "this server started without TLS; restart it to serve HTTPS");
    }
    ASSIGN_OR_RETURN(TlsContext fresh, MakeTlsContext(cert_chain_pem, private_key_pem));
    std::shared_ptr<SSL_CTX> ctx(fresh.release(), SslCtxFree());
    std::lock_guard lock(keys_mu_);
    tls_ = std::move(ctx);
    return absl::OkStatus();
  }

  void SetApiKeys(std::vector<std::string> keys) override {
    auto fresh = std::make_shared<const std::vector<std::string>>(std::move(keys));
    std::lock_guard lock(keys_mu_);
    api_keys_ = std::move(fresh);
  }

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    bool done = false;
  };

  static constexpr int kMaxRequestsPerConnection = 1000;

  // One client connection as the handlers see it: the socket, and whether the response to the
  // current request keeps the connection open for another (HTTP/1.1 keep-alive).
  struct Conn {
    int fd = -1;
    bool keep_alive = false;
    SSL* ssl = nullptr;  // with TLS: the session over fd (owned by Handle)
  };

  void Serve() {
    while (!stop_) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      const int ready = ::poll(fds, wake_[0] >= 0 ? 2 : 1, 1000);
      Reap();
      if (ready <= 0) continue;
      if (stop_) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      std::unique_lock lock(mu_);
      if (static_cast<int>(connections_.size()) >= options_.max_connections) {
        lock.unlock();
        SetTimeouts(conn, 2);
        if (!tls_on_) {  // a TLS client could not read a plaintext answer: just close
          Conn refused{conn, false};
          SendError(refused, HttpError{503, "too many open connections; retry later", "",
                                       "service_unavailable", "server_error"});
        }
        ::close(conn);
        continue;
      }
      connections_.emplace_back();
      auto it = std::prev(connections_.end());
      it->fd = conn;
      it->thread = std::thread([this, it] {
        Handle(it->fd);
        // Closed under the lock, so the destructor never shuts down a descriptor reused since.
        std::lock_guard done_lock(mu_);
        ::close(it->fd);
        it->done = true;
      });
    }
  }

  // Joins the threads of finished connections.
  void Reap() {
    std::list<Connection> finished;
    {
      std::lock_guard lock(mu_);
      for (auto it = connections_.begin(); it != connections_.end();) {
        if (it->done) {
          auto next = std::next(it);
          finished.splice(finished.end(), connections_, it);
          it = next;
        } else {
          ++it;
        }
      }
    }
    for (Connection& c : finished) c.thread.join();
  }

  static void SetTimeouts(int conn, int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }

  static bool SendAll(const Conn& conn, absl::string_view data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const size_t chunk = std::min<size_t>(data.size() - sent, INT_MAX);
      const ssize_t n = conn.ssl != nullptr
                            ? SSL_write(conn.ssl, data.data() + sent, static_cast<int>(chunk))
                            : ::send(conn.fd, data.data() + sent, chunk, MSG_NOSIGNAL);
      if (n <= 0) {
        if (conn.ssl != nullptr) ERR_clear_error();
        return false;
      }
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads what has arrived, up to `size` bytes: > 0 bytes read; <= 0 the peer closed, the receive
  // timeout passed, or a TLS error.
  static ssize_t Recv(const Conn& conn, char* buf, size_t size) {
    if (conn.ssl == nullptr) return ::recv(conn.fd, buf, size, 0);
    const int n = SSL_read(conn.ssl, buf, static_cast<int>(std::min<size_t>(size, INT_MAX)));
    if (n <= 0) ERR_clear_error();  // this thread's queue: nothing else reads it
    return n;
  }

  static bool SendResponse(const Conn& conn, int status, absl::string_view type,
                           absl::string_view body, absl::string_view extra_headers = "") {
    return SendAll(
        conn, absl::StrCat(
                  "HTTP/1.1 ", status, " ", Reason(status), "\r\nContent-Type: ", type,
                  "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                  conn.keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n",
                  body));
  }
  static bool SendJson(const Conn& conn, int status, const json& body) {
    return SendResponse(conn, status, "application/json",
                        body.dump(-1, ' ', false, json::error_handler_t::replace));
  }
  static void SendError(const Conn& conn, const HttpError& e,
                        absl::string_view extra_headers = "") {
    SendResponse(conn, e.status, "application/json",
                 ErrorBody(e).dump(-1, ' ', false, json::error_handler_t::replace), extra_headers);
  }

  // Serves one connection's requests in turn while both sides keep it open (HTTP/1.1 without
  // "Connection: close", or HTTP/1.0 with "Connection: keep-alive"; a response with a
  // Content-Length; at most kMaxRequestsPerConnection). Streams end the connection. Bytes after a
  // request's body (a pipelined request) carry over to the next one. An idle connection closes
  // after the 10 s receive timeout.
  void Handle(int fd) {
    SetTimeouts(fd, 10);
    Conn conn{fd, false};
    std::unique_ptr<SSL, decltype(&SSL_free)> ssl(nullptr, SSL_free);
    if (tls_on_) {
      // The context in force now; a session keeps its context alive (SSL_new takes a reference)
      // when SetTls replaces it.
      std::shared_ptr<SSL_CTX> ctx;
      {
        std::lock_guard lock(keys_mu_);
        ctx = tls_;
      }
      ssl.reset(SSL_new(ctx.get()));
      if (ssl == nullptr || SSL_set_fd(ssl.get(), fd) != 1 || SSL_accept(ssl.get()) != 1) {
        GetLogger("http")->debug("TLS handshake failed: {}", SslError());
        return;
      }
      conn.ssl = ssl.get();
    }
    std::string data;
    for (int served = 0; served < kMaxRequestsPerConnection && !stop_; ++served) {
      HandleOne(conn, data, served + 1 == kMaxRequestsPerConnection);
      if (!conn.keep_alive) break;
    }
    if (conn.ssl != nullptr && SSL_shutdown(conn.ssl) < 0) ERR_clear_error();  // close_notify
  }

  // Reads one request (head up to 16 KiB, body by Content-Length up to max_body_bytes) after what
  // `data` already holds and answers it; leaves conn.keep_alive true when another may follow.
  void HandleOne(Conn& conn, std::string& data, bool last) {
    conn.keep_alive = false;  // until the head says otherwise: errors before that close
    char buf[4096];
    size_t head_end = std::string::npos;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      if (data.size() > 16384) {
        return SendError(conn, HttpError{400, "request head over 16 KiB", "", "", ""});
      }
      const ssize_t n = Recv(conn, buf, sizeof(buf));
      if (n <= 0) return;
      data.append(buf, static_cast<size_t>(n));
    }
    RequestHead parsed;
    const std::optional<std::string> malformed =
        ParseRequestHead(std::string_view(data).substr(0, head_end), &parsed);
    data.erase(0, head_end + 4);
    if (malformed.has_value()) return SendError(conn, HttpError{400, *malformed, "", "", ""});
    const std::string& method = parsed.method;
    const std::string& path = parsed.path;
    const int64_t content_length = parsed.content_length;
    const bool chunked = parsed.chunked;
    const bool expect_continue = parsed.expect_continue;
    const std::string& authorization = parsed.authorization;

    // Another request may follow this one if the client wants it; an answer sent before the body
    // is read (the errors below) closes, since the unread body would be taken for a request.
    const bool client_keeps =
        !last && !stop_ &&
        (parsed.http11 ? parsed.connection.find("close") == std::string::npos
                       : parsed.connection.find("keep-alive") != std::string::npos);
    conn.keep_alive = client_keeps && content_length == 0 && !chunked;

    // Every path but the health probe needs a key when keys are configured (unknown paths too,
    // so a caller without one learns nothing about the API).
    if (path != "/health" && !Authorized(authorization)) {
      return SendError(conn,
                       HttpError{401,
                                 authorization.empty()
                                     ? "missing API key: send the header Authorization: Bearer "
                                       "<key> (the OpenAI clients' apiKey)"
                                     : "incorrect API key provided",
                                 "", "invalid_api_key", "invalid_request_error"},
                       "WWW-Authenticate: Bearer\r\n");
    }
    const bool is_chat = path == "/v1/chat/completions";
    const bool is_completion = path == "/v1/completions";
    const bool is_reveal = path == "/v1/atoma/reveal_salt";
    const bool is_get = path == "/health" || path == "/v1/models";
    if (!is_chat && !is_completion && !is_reveal && !is_get) {
      return SendError(conn, HttpError{404, absl::StrCat("unknown path ", path.substr(0, 128)), "",
                                       "unknown_url", "invalid_request_error"});
    }
    if ((is_get && method != "GET") || (!is_get && method != "POST")) {
      return SendError(conn,
                       HttpError{405,
                                 absl::StrCat(method.substr(0, 16), " is not allowed on ", path,
                                              "; use ", is_get ? "GET" : "POST"),
                                 "", "method_not_allowed", "invalid_request_error"},
                       is_get ? "Allow: GET\r\n" : "Allow: POST\r\n");
    }
    if (path == "/health") return (void)SendJson(conn, 200, json{{"status", "ok"}});
    if (path == "/v1/models") return (void)SendJson(conn, 200, Models());

    if (chunked) {
      return SendError(conn, HttpError{400,
                                       "chunked request bodies are not supported; send "
                                       "Content-Length",
                                       "", "", ""});
    }
    if (content_length > options_.max_body_bytes) {
      return SendError(
          conn, HttpError{413,
                          absl::StrCat("request body of ", content_length,
                                       " bytes is over the limit of ", options_.max_body_bytes),
                          "", "request_too_large", "invalid_request_error"});
    }
    // curl asks before sending larger bodies and otherwise waits a second for the go-ahead.
    if (expect_continue && data.empty() && content_length > 0 &&
        !SendAll(conn, "HTTP/1.1 100 Continue\r\n\r\n")) {
      conn.keep_alive = false;
      return;
    }
    while (static_cast<int64_t>(data.size()) < content_length) {
      const ssize_t n = Recv(conn, buf, sizeof(buf));
      if (n <= 0) {
        conn.keep_alive = false;
        return;
      }
      data.append(buf, static_cast<size_t>(n));
    }
    const std::string body = data.substr(0, static_cast<size_t>(content_length));
    data.erase(0, static_cast<size_t>(content_length));
    conn.keep_alive = client_keeps;
    if (is_reveal) return RevealSalt(conn, body);
    Generate(conn, body, is_chat);
  }

  // True when no keys are configured, or `authorization` is "Bearer <one of the keys>". Every key
  // is compared, so the time does not tell which one (or whether any) matched.
  bool Authorized(absl::string_view authorization) const {
    std::shared_ptr<const std::vector<std::string>> keys;
    {
      std::lock_guard lock(keys_mu_);
      keys = api_keys_;
    }
    if (keys->empty()) return true;
    absl::string_view token;
    if (authorization.size() > 7 && absl::EqualsIgnoreCase(authorization.substr(0, 7), "bearer ")) {
      token = absl::StripAsciiWhitespace(authorization.substr(7));
    }
    bool ok = false;
    for (const std::string& key : *keys) {
      ok |= crypto::ConstantTimeEqual(std::string_view(token.data(), token.size()), key);
    }
    return ok && !token.empty();
  }

  // POST /v1/atoma/reveal_salt {request_id, salt}: the client's salt for a cross-validation round
  // this node runs; answers {"checked": whether the coin drew validators}.
  void RevealSalt(Conn& conn, const std::string& body_text) {
    const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      return SendError(conn, BadField("", "the request body is not valid JSON"));
    }
    RevealSaltBody parsed;
    if (std::optional<BodyError> e = ParseRevealSaltBody(body, &parsed)) {
      return SendError(conn, BadField(e->param, e->message));
    }
    if (!options_.reveal_salt) {
      return SendError(conn, HttpError{501,
                                       "reveal_salt: this node runs without a ledger "
                                       "(ledger.backend: none) and runs no rounds",
                                       "", "verification_unavailable", "invalid_request_error"});
    }
    absl::StatusOr<bool> checked = options_.reveal_salt(parsed.request_id, parsed.salt);
    if (!checked.ok()) {
      GetLogger("http")->info("salt reveal refused: {}", checked.status().ToString());
      return SendError(conn, RevealError(checked.status()));
    }
    SendJson(conn, 200, json{{"checked", *checked}});
  }

  json Models() const {
    json data = json::array();
    for (const engine::Engine* e : engines_) {
      data.push_back(
          {{"id", e->info().id}, {"object", "model"}, {"created", 0}, {"owned_by", "atoma"}});
    }
    return json{{"object", "list"}, {"data", std::move(data)}};
  }

  engine::Engine* Find(const std::string& id) const {
    for (engine::Engine* e : engines_) {
      if (e->info().id == id) return e;
    }
    return nullptr;
  }

  void Generate(Conn& conn, const std::string& body_text, bool chat) {
    const auto accepted = metrics::RequestMeter::Clock::now();
    const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      return SendError(conn, BadField("", "the request body is not valid JSON"));
    }
    OpenAiRequest request;
    if (std::optional<BodyError> e = ParseOpenAiBody(body, chat, &request)) {
      return SendError(conn, BadField(e->param, e->message));
    }
    engine::Engine* engine = Find(request.proto.model());
    if (engine == nullptr) {
      return SendError(conn,
                       HttpError{404,
                                 absl::StrCat("The model `", request.proto.model().substr(0, 128),
                                              "` does not exist or is not served here"),
                                 "model", "model_not_found", "invalid_request_error"});
    }
    if (options_.draining && options_.draining()) {
      return SendError(conn, HttpError{503, "node is draining: it accepts no new generations", "",
                                       "service_unavailable", "server_error"});
    }
    if (request.cross_validation && !request.stream) {
      return SendError(
          conn, BadField("stream",
                         "stream: cross_validation needs \"stream\": true: the client reveals its "
                         "salt (POST /v1/atoma/reveal_salt) after the provisional result the "
                         "stream carries, so one request and response cannot hold the round"));
    }
    if (request.verified) return GenerateVerified(conn, request, *engine, accepted);
    if (!options_.allow_anonymous) {
      return SendError(
          conn, HttpError{401,
                          "atoma_security: this node does not serve anonymous (unsigned) "
                          "requests; send atoma_security sampling:N with atoma_client",
                          "atoma_security", "anonymous_not_allowed", "authentication_error"});
    }
    absl::StatusOr<engine::GenerateRequest> native =
        api::ToEngineRequest(request.proto, *engine, limits_);
    if (!native.ok()) return SendError(conn, FromStatus(native.status(), chat));
    native->request_key = api::AnonymousRequestKey(engine->info(), *native);
    const int prompt_tokens = static_cast<int>(native->prompt_ids.size());
    metrics::RequestMeter meter(options_.metrics, engine->info().id, "none", accepted);
    absl::StatusOr<std::shared_ptr<engine::RequestHandle>> handle =
        engine->Submit(std::move(*native));
    if (!handle.ok()) {
      meter.Done(metrics::OutcomeOf(handle.status().code()), 0);
      return SendError(conn, FromStatus(handle.status(), chat));
    }
    EngineSource source(**handle);
    Respond(conn, request, *engine, source, meter, prompt_tokens);
  }

  // atoma_security sampling:N: the prompt is tokenized as Tokenize does, the canonical request is
  // built by api::ConsensusRequestFromProto (the gRPC path's converter) and the round runs through
  // ConsensusNode::Submit, as gRPC's GenerateVerified does; metered as "sampling" like it.
  void GenerateVerified(Conn& conn, OpenAiRequest& request, engine::Engine& engine,
                        metrics::RequestMeter::Clock::time_point accepted) {
    metrics::RequestMeter meter(options_.metrics, engine.info().id,
                                request.cross_validation ? "cross_validation" : "sampling",
                                accepted);
    const auto refuse = [&](const absl::Status& status, int prompt_tokens) {
      meter.Done(metrics::OutcomeOf(status.code()), prompt_tokens);
      SendError(conn, FromStatus(status, request.chat));
    };
    if (!options_.submit_verified) {
      // The text of the gRPC API's UNIMPLEMENTED answer.
      meter.Done("error", 0);
      return SendError(
          conn, HttpError{501,
                          "atoma_security: this node runs without a ledger "
                          "(ledger.backend: none) and serves only security none",
                          "atoma_security", "verification_unavailable", "invalid_request_error"});
    }
    if (absl::Status s = api::PromptToTokenIds(&request.proto, engine, limits_); !s.ok()) {
      return refuse(s, 0);
    }
    absl::StatusOr<api::ParsedConsensusRequest> parsed =
        api::ConsensusRequestFromProto(request.proto, engine.info().digest);
    if (!parsed.ok()) return refuse(parsed.status(), 0);
    const int prompt_tokens = static_cast<int>(parsed->request.prompt_token_ids.size());
    absl::StatusOr<std::shared_ptr<peer::RoundHandle>> round =
        options_.submit_verified(parsed->request, parsed->client_signature);
    if (!round.ok()) {
      GetLogger("http")->info("verified request refused: {}", round.status().ToString());
      return refuse(round.status(), 0);
    }
    RoundSource source(*round, prompt_tokens);
    Respond(conn, request, engine, source, meter, prompt_tokens);
  }

  // Where a response's tokens come from: the engine (security none) or a consensus round.
  class Source {
   public:
    virtual ~Source() = default;
    // A token event (final == false), or the final event (finish_reason, status, token
    // counts) once; false when nothing came within `timeout`.
    virtual bool Next(engine::StreamEvent* event, std::chrono::milliseconds timeout) = 0;
    // The client went away or the server stops.
    virtual void Abandon() = 0;
    // Adds what the response carries besides OpenAI's fields (after a successful final event).
    virtual void AddExtras(json*) const {}
    // Cross-validation: the provisional result once it came (after Next returned false), as the
    // value of the chunk field atoma_provisional.
    virtual std::optional<json> TakeProvisional() { return std::nullopt; }
  };

  class EngineSource final : public Source {
   public:
    explicit EngineSource(engine::RequestHandle& handle) : handle_(handle) {}
    bool Next(engine::StreamEvent* event, std::chrono::milliseconds timeout) override {
      return handle_.Next(event, timeout);
    }
    void Abandon() override { handle_.Cancel(); }

   private:
    engine::RequestHandle& handle_;
  };

  // A round's tokens, then its outcome as a final event; the response then carries the
  // certificate (atoma_certificate), the request id (atoma_request_id) and the output the
  // certificate commits to (atoma_output, the file `atoma-cli verify --output` reads).
  class RoundSource final : public Source {
   public:
    RoundSource(std::shared_ptr<peer::RoundHandle> round, int prompt_tokens)
        : round_(std::move(round)), prompt_tokens_(prompt_tokens) {}
    bool Next(engine::StreamEvent* event, std::chrono::milliseconds timeout) override {
      if (done_) return false;
      const peer::RoundHandle::Wait w = round_->Next(event, timeout);
      if (w == peer::RoundHandle::Wait::kToken) return true;
      if (w == peer::RoundHandle::Wait::kProvisional) {
        if (const std::optional<peer::RoundHandle::Provisional> p = round_->provisional()) {
          provisional_ = json{
              {"request_id", "0x" + crypto::ToHex(round_->request_id())},
              {"attestation", "0x" + crypto::ToHex(consensus::EncodeAttestation(p->attestation))},
              {"output", OutputJson(p->output)}};
        }
        return false;
      }
      if (w != peer::RoundHandle::Wait::kDone) return false;
      done_ = true;
      const peer::RoundOutcome& outcome = round_->outcome();
      *event = engine::StreamEvent{};
      event->final = true;
      event->prompt_tokens = prompt_tokens_;
      if (!outcome.status.ok()) {
        event->finish_reason = engine::FinishReason::kError;
        event->status = outcome.status;
        return true;
      }
      event->finish_reason = outcome.output.finish_reason == consensus::FinishReason::kLength
                                 ? engine::FinishReason::kLength
                                 : engine::FinishReason::kStop;
      event->completion_tokens = static_cast<int>(outcome.output.token_ids.size());
      return true;
    }
    // The round goes on and settles without the client: the request was accepted.
    void Abandon() override {}
    void AddExtras(json* out) const override {
      const peer::RoundOutcome& outcome = round_->outcome();
      const std::vector<uint8_t> certificate =
          outcome.xv_certificate.has_value()
              ? consensus::EncodeXvCertificate(*outcome.xv_certificate)
              : consensus::EncodeCertificate(outcome.certificate);
      (*out)["atoma_request_id"] = "0x" + crypto::ToHex(round_->request_id());
      (*out)["atoma_certificate"] = "0x" + crypto::ToHex(certificate);
      (*out)["atoma_output"] = OutputJson(outcome.output);
    }
    std::optional<json> TakeProvisional() override { return std::exchange(provisional_, {}); }

   private:
    // {token_ids, finish_reason}: the form `atoma-cli verify --output` reads.
    static json OutputJson(const consensus::ConsensusOutput& output) {
      return json{{"token_ids", output.token_ids},
                  {"finish_reason",
                   output.finish_reason == consensus::FinishReason::kLength ? "length" : "stop"}};
    }

    std::shared_ptr<peer::RoundHandle> round_;
    const int prompt_tokens_;
    bool done_ = false;
    std::optional<json> provisional_;
  };

  // Streams or answers `source` and ends `meter`.
  void Respond(Conn& conn, const OpenAiRequest& request, const engine::Engine& engine,
               Source& source, metrics::RequestMeter& meter, int prompt_tokens) {
    const bool chat = request.chat;
    const std::string id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", NextId());
    const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    Responder r{conn,
                chat,
                request,
                engine.info().id,
                id,
                created,
                LogprobsBuilder(engine.tokenizer(), chat),
                meter,
                source};
    const char* outcome = request.stream ? Stream(r) : Complete(r);
    meter.Done(outcome, prompt_tokens);
  }

  struct Responder {
    Conn& conn;
    bool chat;
    const OpenAiRequest& request;
    std::string model;
    std::string id;
    int64_t created;
    LogprobsBuilder logprobs;
    metrics::RequestMeter& meter;
    Source& source;
  };

  // Next event, abandoning the source when the server stops. False when stopped.
  bool NextEvent(Source& source, engine::StreamEvent* event) {
    while (!stop_) {
      if (source.Next(event, std::chrono::milliseconds(100))) return true;
    }
    source.Abandon();
    return false;
  }

  static json Usage(const engine::StreamEvent& final) {
    return json{{"prompt_tokens", final.prompt_tokens},
                {"completion_tokens", final.completion_tokens},
                {"total_tokens", final.prompt_tokens + final.completion_tokens}};
  }

  // The error a final event that did not finish well stands for.
  static HttpError FinalError(const engine::StreamEvent& event, bool chat) {
    if (event.finish_reason == engine::FinishReason::kCancelled) {
      return HttpError{503, "generation cancelled: the node is shutting down", "",
                       "service_unavailable", "server_error"};
    }
    return FromStatus(event.status.ok() ? absl::InternalError("generation failed") : event.status,
                      chat);
  }
  static const char* FinalOutcome(const engine::StreamEvent& event) {
    if (event.finish_reason == engine::FinishReason::kCancelled) return "cancelled";
    return event.status.ok() ? "error" : metrics::OutcomeOf(event.status.code());
  }
  static bool FinishedWell(const engine::StreamEvent& event) {
    return event.finish_reason != engine::FinishReason::kError &&
           event.finish_reason != engine::FinishReason::kCancelled;
  }

  // Both return the requests_total outcome of the generation.
  const char* Complete(Responder& r) {
    std::string text;
    engine::StreamEvent event;
    while (true) {
      if (!NextEvent(r.source, &event)) {
        SendError(r.conn, HttpError{503, "server shutting down", "", "service_unavailable",
                                    "server_error"});
        return "cancelled";
      }
      if (event.final) break;
      r.meter.Token(metrics::RequestMeter::Clock::now());
      if (r.request.logprobs) r.logprobs.Add(event, text.size());
      text += event.text;
    }
    if (!FinishedWell(event)) {
      SendError(r.conn, FinalError(event, r.chat));
      return FinalOutcome(event);
    }
    json choice = {{"index", 0},
                   {"finish_reason", FinishName(event.finish_reason)},
                   {"logprobs", r.request.logprobs ? r.logprobs.Result() : json(nullptr)}};
    if (r.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    json response = {{"id", r.id},
                     {"object", r.chat ? "chat.completion" : "text_completion"},
                     {"created", r.created},
                     {"model", r.model},
                     {"choices", json::array({std::move(choice)})},
                     {"usage", Usage(event)}};
    r.source.AddExtras(&response);
    SendJson(r.conn, 200, response);
    return "ok";
  }

  json Chunk(Responder& r, json choice) const {
    return json{{"id", r.id},
                {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", r.created},
                {"model", r.model},
                {"choices", json::array({std::move(choice)})}};
  }

  static bool SendEvent(const Conn& conn, const json& data) {
    return SendAll(
        conn,
        absl::StrCat("data: ", data.dump(-1, ' ', false, json::error_handler_t::replace), "\n\n"));
  }

  // Server-sent events, the body delimited by the connection's close (no Content-Length).
  const char* Stream(Responder& r) {
    r.conn.keep_alive = false;  // the body ends with the connection
    if (!SendAll(r.conn,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 "Cache-Control: no-cache\r\nConnection: close\r\n\r\n")) {
      r.source.Abandon();
      return "cancelled";
    }
    if (r.chat && !SendEvent(r.conn, Chunk(r, {{"index", 0},
                                               {"delta", {{"role", "assistant"}, {"content", ""}}},
                                               {"logprobs", nullptr},
                                               {"finish_reason", nullptr}}))) {
      r.source.Abandon();
      return "cancelled";
    }
    size_t offset = 0;
    engine::StreamEvent event;
    while (true) {
      if (stop_) {
        r.source.Abandon();
        return "cancelled";
      }
      if (!r.source.Next(&event, std::chrono::milliseconds(100))) {
        // Cross-validation: the executor's claim, in a chunk without choices (as the usage
        // chunk) so OpenAI clients pass it through; the client reveals its salt on another
        // connection while this one waits for the round.
        if (std::optional<json> provisional = r.source.TakeProvisional()) {
          json chunk = Chunk(r, nullptr);
          chunk["choices"] = json::array();
          chunk["atoma_provisional"] = std::move(*provisional);
          if (!SendEvent(r.conn, chunk)) {
            r.source.Abandon();
            return "cancelled";
          }
        }
        continue;
      }
      if (event.final) break;
      r.meter.Token(metrics::RequestMeter::Clock::now());
      json lp = r.request.logprobs ? r.logprobs.Add(event, offset) : json(nullptr);
      offset += event.text.size();
      if (event.text.empty() && !r.request.logprobs) continue;
      json choice = {{"index", 0}, {"logprobs", std::move(lp)}, {"finish_reason", nullptr}};
      if (r.chat) {
        choice["delta"] = {{"content", event.text}};
      } else {
        choice["text"] = event.text;
      }
      if (!SendEvent(r.conn, Chunk(r, std::move(choice)))) {
        r.source.Abandon();  // the client went away
        return "cancelled";
      }
    }
    if (!FinishedWell(event)) {
      SendEvent(r.conn, ErrorBody(FinalError(event, r.chat)));
      return FinalOutcome(event);
    }
    json last = {
        {"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishName(event.finish_reason)}};
    if (r.chat) {
      last["delta"] = json::object();
    } else {
      last["text"] = "";
    }
    // The chunk with the finish reason carries the verification (certificate, request id).
    json last_chunk = Chunk(r, std::move(last));
    r.source.AddExtras(&last_chunk);
    // The generation itself ended well; a client that leaves before the last events does not
    // change that.
    if (!SendEvent(r.conn, last_chunk)) return "ok";
    if (r.request.include_usage) {
      json usage = Chunk(r, nullptr);
      usage["choices"] = json::array();
      usage["usage"] = Usage(event);
      if (!SendEvent(r.conn, usage)) return "ok";
    }
    SendAll(r.conn, "data: [DONE]\n\n");
    return "ok";
  }

  std::string NextId() {
    const uint64_t n = ++counter_;
    return absl::StrCat(
        absl::Hex(static_cast<uint64_t>(port_) << 48 ^ static_cast<uint64_t>(start_time_)), "-", n);
  }

  std::vector<engine::Engine*> engines_;
  OpenAiOptions options_;
  api::ConvertLimits limits_;
  const int fd_;
  const int port_;
  const int64_t start_time_ = std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  std::atomic<uint64_t> counter_{0};
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::list<Connection> connections_;  // guarded by mu_
  const bool tls_on_;                  // HTTPS (fixed at start)
  std::shared_ptr<SSL_CTX> tls_;       // guarded by keys_mu_; null without TLS
  mutable std::mutex keys_mu_;
  std::shared_ptr<const std::vector<std::string>> api_keys_;  // guarded by keys_mu_; never null
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> LoadApiKeys(const std::filesystem::path& path) {
  const std::string name = path.string();
  ASSIGN_OR_RETURN(const std::string text,
                   crypto::ReadOwnerOnlyFile(path, "API keys file", size_t{1} << 20));
  std::vector<std::string> keys;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    keys.emplace_back(line);
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("API keys file ", name,
                     " holds no key (one per line); unset http.api_keys_file for no "
                     "authentication"));
  }
  return keys;
}

absl::StatusOr<std::unique_ptr<OpenAiServer>> OpenAiServer::Start(
    const std::string& listen, std::vector<engine::Engine*> engines, OpenAiOptions options) {
  TlsContext tls;
  if (!options.tls_cert_chain_pem.empty() || !options.tls_private_key_pem.empty()) {
    if (options.tls_cert_chain_pem.empty() || options.tls_private_key_pem.empty()) {
      return absl::InvalidArgumentError("TLS needs both a certificate chain and a private key");
    }
    ASSIGN_OR_RETURN(tls, MakeTlsContext(options.tls_cert_chain_pem, options.tls_private_key_pem));
    // OpenSSL writes with write(2): a client gone mid-response must not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
  }
  ASSIGN_OR_RETURN(TcpListener listener, ListenTcp(listen, 64, "http"));
  GetLogger("http")->info("OpenAI-compatible API on {}://{}:{}/v1", tls ? "https" : "http",
                          listener.host, listener.port);
  return std::unique_ptr<OpenAiServer>(new SocketServer(
      std::move(engines), std::move(options), listener.fd, listener.port, std::move(tls)));
}

}  // namespace atoma::http
