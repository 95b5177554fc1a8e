// OpenAiServer: the OpenAI-compatible HTTP endpoint on a socket of our own (as metrics/server.cc),
// with a thread per connection.
#include "atoma/http/openai_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/common/tcp_listener.h"
#include "atoma/metrics/request_meter.h"
#include "atoma/v1/inference.pb.h"
#include "convert.h"
#include "nlohmann/json.hpp"

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
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

// The OpenAI parameter a validation message of api::ToEngineRequest or Engine::Submit is about
// ("sampling.top_p: ..." → "top_p", "chat.messages[1].role: ..." → "messages[1].role").
std::string ParamOf(absl::string_view message, bool chat) {
  const size_t colon = message.find(':');
  std::string field(colon == absl::string_view::npos ? "" : message.substr(0, colon));
  if (absl::StartsWith(field, "sampling.")) field = field.substr(9);
  if (absl::StartsWith(field, "chat.")) return field.substr(5);
  if (field == "text" || field == "prompt" || field == "prompt_ids" || field == "chat") {
    return chat ? "messages" : "prompt";
  }
  if (absl::StartsWith(field, "stop")) return "stop";
  if (field == "max_tokens" || field == "temperature" || field == "top_p" || field == "seed" ||
      field == "top_logprobs") {
    return field;
  }
  return "";
}

// Maps an engine or conversion status onto an HTTP error.
HttpError FromStatus(const absl::Status& s, bool chat) {
  const std::string message(s.message());
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return BadField(ParamOf(message, chat), message);
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

struct ParsedRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;  // report logprobs
  v1::GenerateRequest proto;
};

// Reads the OpenAI body into a v1::GenerateRequest (validated further by api::ToEngineRequest).
// Unknown fields are ignored, as OpenAI clients send many we do not use (user, penalties...).
std::optional<HttpError> ParseBody(const json& body, bool chat, ParsedRequest* out) {
  if (!body.is_object()) return BadField("", "the request body must be a JSON object");
  out->chat = chat;
  v1::GenerateRequest& p = out->proto;
  const auto get = [&](const char* key) -> const json* {
    auto it = body.find(key);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
  const json* model = get("model");
  if (model == nullptr || !model->is_string() || model->get<std::string>().empty()) {
    return BadField("model", "model: a model id (string) is required");
  }
  p.set_model(model->get<std::string>());
  if (const json* sec = get("atoma_security")) {
    if (!sec->is_string() || sec->get<std::string>() != "none") {
      return BadField("atoma_security",
                      "atoma_security: only \"none\" is served over HTTP; verified requests "
                      "(sampling, cross_validation) need the gRPC API");
    }
  }
  if (const json* n = get("n")) {
    if (!n->is_number_integer() || n->get<int64_t>() != 1) {
      return BadField("n", "n: only 1 completion per request is supported");
    }
  }
  if (chat) {
    const json* messages = get("messages");
    if (messages == nullptr || !messages->is_array() || messages->empty()) {
      return BadField("messages", "messages: a non-empty array of messages is required");
    }
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      const std::string where = absl::StrCat("messages[", i, "]");
      if (!m.is_object()) return BadField(where, absl::StrCat(where, ": must be an object"));
      auto role = m.find("role");
      auto content = m.find("content");
      if (role == m.end() || !role->is_string()) {
        return BadField(where + ".role", absl::StrCat(where, ".role: a string is required"));
      }
      if (content == m.end() || !content->is_string()) {
        return BadField(where + ".content",
                        absl::StrCat(where,
                                     ".content: a string is required (content parts are "
                                     "not supported)"));
      }
      v1::ChatMessage* msg = p.mutable_chat()->add_messages();
      msg->set_role(role->get<std::string>());
      msg->set_content(content->get<std::string>());
    }
  } else {
    const json* prompt = get("prompt");
    if (prompt != nullptr && prompt->is_array() && prompt->size() == 1 &&
        (*prompt)[0].is_string()) {
      prompt = &(*prompt)[0];
    }
    if (prompt == nullptr || !prompt->is_string()) {
      return BadField("prompt", "prompt: a string is required");
    }
    p.set_text(prompt->get<std::string>());
  }
  const json* max_tokens = get("max_tokens");
  const char* max_tokens_name = "max_tokens";
  if (max_tokens == nullptr && chat) {
    max_tokens = get("max_completion_tokens");
    max_tokens_name = "max_completion_tokens";
  }
  if (max_tokens != nullptr) {
    if (!max_tokens->is_number_integer() || max_tokens->get<int64_t>() < 1 ||
        max_tokens->get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return BadField(max_tokens_name,
                      absl::StrCat(max_tokens_name, ": must be a positive integer"));
    }
    p.set_max_tokens(static_cast<int32_t>(max_tokens->get<int64_t>()));
  }
  // OpenAI's default temperature is 1 (sampling); 0 is greedy.
  double temperature = 1.0;
  if (const json* t = get("temperature")) {
    if (!t->is_number()) return BadField("temperature", "temperature: must be a number");
    temperature = t->get<double>();
    if (!std::isfinite(temperature) || temperature < 0 || temperature > 2) {
      return BadField("temperature", "temperature: must be between 0 and 2");
    }
  }
  p.mutable_sampling()->set_temperature(temperature);
  if (const json* t = get("top_p")) {
    if (!t->is_number()) return BadField("top_p", "top_p: must be a number");
    p.mutable_sampling()->set_top_p(t->get<double>());
  }
  if (const json* s = get("seed")) {
    if (!s->is_number_integer()) return BadField("seed", "seed: must be an integer");
    p.mutable_sampling()->set_seed(
        s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>()));
  }
  if (const json* stop = get("stop")) {
    if (stop->is_string()) {
      p.add_stop(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& s : *stop) {
        if (!s.is_string()) return BadField("stop", "stop: must be a string or strings");
        p.add_stop(s.get<std::string>());
      }
    } else {
      return BadField("stop", "stop: must be a string or an array of strings");
    }
  }
  int top_logprobs = 0;
  if (const json* lp = get("logprobs")) {
    if (chat) {
      if (!lp->is_boolean()) return BadField("logprobs", "logprobs: must be a boolean");
      out->logprobs = lp->get<bool>();
    } else {
      if (!lp->is_number_integer() || lp->get<int64_t>() < 0 || lp->get<int64_t>() > 5) {
        return BadField("logprobs", "logprobs: must be an integer from 0 to 5");
      }
      out->logprobs = true;
      top_logprobs = static_cast<int>(lp->get<int64_t>());
    }
  }
  if (chat) {
    if (const json* tl = get("top_logprobs")) {
      if (!tl->is_number_integer() || tl->get<int64_t>() < 0 || tl->get<int64_t>() > 20) {
        return BadField("top_logprobs", "top_logprobs: must be an integer from 0 to 20");
      }
      if (!out->logprobs && tl->get<int64_t>() > 0) {
        return BadField("top_logprobs", "top_logprobs: needs logprobs: true");
      }
      top_logprobs = static_cast<int>(tl->get<int64_t>());
    }
  }
  p.mutable_sampling()->set_top_logprobs(top_logprobs);
  if (const json* s = get("stream")) {
    if (!s->is_boolean()) return BadField("stream", "stream: must be a boolean");
    out->stream = s->get<bool>();
  }
  if (const json* so = get("stream_options")) {
    if (!so->is_object()) return BadField("stream_options", "stream_options: must be an object");
    auto it = so->find("include_usage");
    out->include_usage = it != so->end() && it->is_boolean() && it->get<bool>();
  }
  return std::nullopt;
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

class SocketServer final : public OpenAiServer {
 public:
  SocketServer(std::vector<engine::Engine*> engines, OpenAiOptions options, int fd, int port)
      : engines_(std::move(engines)), options_(std::move(options)), fd_(fd), port_(port) {
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

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    bool done = false;
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
        SendError(conn, HttpError{503, "too many open connections; retry later", "",
                                  "service_unavailable", "server_error"});
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

  static bool SendAll(int conn, absl::string_view data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(conn, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  static bool SendResponse(int conn, int status, absl::string_view type, absl::string_view body,
                           absl::string_view extra_headers = "") {
    return SendAll(
        conn, absl::StrCat("HTTP/1.1 ", status, " ", Reason(status), "\r\nContent-Type: ", type,
                           "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                           "Connection: close\r\n\r\n", body));
  }
  static bool SendJson(int conn, int status, const json& body) {
    return SendResponse(conn, status, "application/json",
                        body.dump(-1, ' ', false, json::error_handler_t::replace));
  }
  static void SendError(int conn, const HttpError& e, absl::string_view extra_headers = "") {
    SendResponse(conn, e.status, "application/json",
                 ErrorBody(e).dump(-1, ' ', false, json::error_handler_t::replace), extra_headers);
  }

  // Reads one request (head up to 16 KiB, body by Content-Length up to max_body_bytes) and answers.
  void Handle(int conn) {
    SetTimeouts(conn, 10);
    std::string data;
    char buf[4096];
    size_t head_end = std::string::npos;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      if (data.size() > 16384) {
        return SendError(conn, HttpError{400, "request head over 16 KiB", "", "", ""});
      }
      const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return;
      data.append(buf, static_cast<size_t>(n));
    }
    const std::string head = data.substr(0, head_end);
    data.erase(0, head_end + 4);
    const size_t line_end = head.find("\r\n");
    const std::string request_line = head.substr(0, line_end);
    const size_t sp1 = request_line.find(' ');
    const size_t sp2 = request_line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) {
      return SendError(conn, HttpError{400, "malformed request line", "", "", ""});
    }
    const std::string method = request_line.substr(0, sp1);
    std::string path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (const size_t q = path.find('?'); q != std::string::npos) path.resize(q);
    while (path.size() > 1 && path.back() == '/') path.pop_back();

    int64_t content_length = 0;
    bool chunked = false;
    bool expect_continue = false;
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      const absl::string_view line = absl::string_view(head).substr(pos, end - pos);
      pos = end + 2;
      const size_t colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      const absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, colon));
      const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (absl::EqualsIgnoreCase(name, "content-length")) {
        if (!absl::SimpleAtoi(value, &content_length) || content_length < 0) {
          return SendError(conn, HttpError{400, "bad Content-Length", "", "", ""});
        }
      } else if (absl::EqualsIgnoreCase(name, "transfer-encoding") &&
                 !absl::EqualsIgnoreCase(value, "identity")) {
        chunked = true;
      } else if (absl::EqualsIgnoreCase(name, "expect") &&
                 absl::EqualsIgnoreCase(value, "100-continue")) {
        expect_continue = true;
      }
    }

    const bool is_chat = path == "/v1/chat/completions";
    const bool is_completion = path == "/v1/completions";
    const bool is_get = path == "/health" || path == "/v1/models";
    if (!is_chat && !is_completion && !is_get) {
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
      return;
    }
    while (static_cast<int64_t>(data.size()) < content_length) {
      const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return;
      data.append(buf, static_cast<size_t>(n));
    }
    data.resize(static_cast<size_t>(content_length));
    Generate(conn, data, is_chat);
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

  void Generate(int conn, const std::string& body_text, bool chat) {
    const auto accepted = metrics::RequestMeter::Clock::now();
    const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      return SendError(conn, BadField("", "the request body is not valid JSON"));
    }
    ParsedRequest request;
    if (std::optional<HttpError> e = ParseBody(body, chat, &request)) return SendError(conn, *e);
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
    absl::StatusOr<engine::GenerateRequest> native =
        api::ToEngineRequest(request.proto, *engine, limits_);
    if (!native.ok()) return SendError(conn, FromStatus(native.status(), chat));
    native->request_key = api::AnonymousRequestKey(engine->info(), *native);
    const int prompt_tokens = static_cast<int>(native->prompt_ids.size());
    metrics::RequestMeter meter(options_.metrics, engine->info().id, "none", accepted);
    absl::StatusOr<std::shared_ptr<engine::RequestHandle>> handle =
        engine->Submit(std::move(*native));
    if (!handle.ok()) {
      meter.Done(
          absl::IsResourceExhausted(handle.status()) || absl::IsInvalidArgument(handle.status())
              ? "refused"
              : "error",
          0);
      return SendError(conn, FromStatus(handle.status(), chat));
    }
    const std::string id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", NextId());
    const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    Responder r{conn,
                chat,
                request,
                engine->info().id,
                id,
                created,
                LogprobsBuilder(engine->tokenizer(), chat),
                meter};
    const char* outcome = request.stream ? Stream(r, **handle) : Complete(r, **handle);
    meter.Done(outcome, prompt_tokens);
  }

  struct Responder {
    int conn;
    bool chat;
    const ParsedRequest& request;
    std::string model;
    std::string id;
    int64_t created;
    LogprobsBuilder logprobs;
    metrics::RequestMeter& meter;
  };

  // Next event, cancelling when the server stops. False when stopped.
  bool NextEvent(engine::RequestHandle& handle, engine::StreamEvent* event) {
    while (!stop_) {
      if (handle.Next(event, std::chrono::milliseconds(100))) return true;
    }
    handle.Cancel();
    return false;
  }

  static json Usage(const engine::StreamEvent& final) {
    return json{{"prompt_tokens", final.prompt_tokens},
                {"completion_tokens", final.completion_tokens},
                {"total_tokens", final.prompt_tokens + final.completion_tokens}};
  }

  // Both return the requests_total outcome of the generation.
  const char* Complete(Responder& r, engine::RequestHandle& handle) {
    std::string text;
    engine::StreamEvent event;
    while (true) {
      if (!NextEvent(handle, &event)) {
        SendError(r.conn, HttpError{503, "server shutting down", "", "service_unavailable",
                                    "server_error"});
        return "cancelled";
      }
      if (event.final) break;
      r.meter.Token(metrics::RequestMeter::Clock::now());
      if (r.request.logprobs) r.logprobs.Add(event, text.size());
      text += event.text;
    }
    if (event.finish_reason == engine::FinishReason::kError) {
      SendError(r.conn, FromStatus(event.status.ok() ? absl::InternalError("generation failed")
                                                     : event.status,
                                   r.chat));
      return "error";
    }
    if (event.finish_reason == engine::FinishReason::kCancelled) {
      SendError(r.conn, HttpError{503, "generation cancelled: the node is shutting down", "",
                                  "service_unavailable", "server_error"});
      return "cancelled";
    }
    json choice = {{"index", 0},
                   {"finish_reason", FinishName(event.finish_reason)},
                   {"logprobs", r.request.logprobs ? r.logprobs.Result() : json(nullptr)}};
    if (r.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    } else {
      choice["text"] = text;
    }
    SendJson(r.conn, 200,
             json{{"id", r.id},
                  {"object", r.chat ? "chat.completion" : "text_completion"},
                  {"created", r.created},
                  {"model", r.model},
                  {"choices", json::array({std::move(choice)})},
                  {"usage", Usage(event)}});
    return "ok";
  }

  json Chunk(Responder& r, json choice) const {
    return json{{"id", r.id},
                {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", r.created},
                {"model", r.model},
                {"choices", json::array({std::move(choice)})}};
  }

  static bool SendEvent(int conn, const json& data) {
    return SendAll(
        conn,
        absl::StrCat("data: ", data.dump(-1, ' ', false, json::error_handler_t::replace), "\n\n"));
  }

  // Server-sent events, the body delimited by the connection's close (no Content-Length).
  const char* Stream(Responder& r, engine::RequestHandle& handle) {
    if (!SendAll(r.conn,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 "Cache-Control: no-cache\r\nConnection: close\r\n\r\n")) {
      handle.Cancel();
      return "cancelled";
    }
    if (r.chat && !SendEvent(r.conn, Chunk(r, {{"index", 0},
                                               {"delta", {{"role", "assistant"}, {"content", ""}}},
                                               {"logprobs", nullptr},
                                               {"finish_reason", nullptr}}))) {
      handle.Cancel();
      return "cancelled";
    }
    size_t offset = 0;
    engine::StreamEvent event;
    while (true) {
      if (!NextEvent(handle, &event)) return "cancelled";
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
        handle.Cancel();  // the client went away
        return "cancelled";
      }
    }
    if (event.finish_reason == engine::FinishReason::kError ||
        event.finish_reason == engine::FinishReason::kCancelled) {
      const HttpError e =
          event.finish_reason == engine::FinishReason::kCancelled
              ? HttpError{503, "generation cancelled: the node is shutting down", "",
                          "service_unavailable", "server_error"}
              : FromStatus(
                    event.status.ok() ? absl::InternalError("generation failed") : event.status,
                    r.chat);
      SendEvent(r.conn, ErrorBody(e));
      return event.finish_reason == engine::FinishReason::kCancelled ? "cancelled" : "error";
    }
    json last = {
        {"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishName(event.finish_reason)}};
    if (r.chat) {
      last["delta"] = json::object();
    } else {
      last["text"] = "";
    }
    // The generation itself ended well; a client that leaves before the last events does not
    // change that.
    if (!SendEvent(r.conn, Chunk(r, std::move(last)))) return "ok";
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
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<OpenAiServer>> OpenAiServer::Start(
    const std::string& listen, std::vector<engine::Engine*> engines, OpenAiOptions options) {
  ASSIGN_OR_RETURN(TcpListener listener, ListenTcp(listen, 64, "http"));
  GetLogger("http")->info("OpenAI-compatible API on http://{}:{}/v1", listener.host, listener.port);
  return std::unique_ptr<OpenAiServer>(
      new SocketServer(std::move(engines), std::move(options), listener.fd, listener.port));
}

}  // namespace atoma::http
