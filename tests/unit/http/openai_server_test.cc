// OpenAiServer over real sockets against the fake engine of the API tests.
#include "atoma/http/openai_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fake_engine.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

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

// Sends raw bytes, reads until the server closes (every response is Connection: close).
Response Exchange(int port, const std::string& raw) {
  Response out;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return out;
  }
  size_t sent = 0;
  while (sent < raw.size()) {
    const ssize_t n = ::send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string data;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) data.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string::npos) return out;
  out.head = data.substr(0, end);
  out.body = data.substr(end + 4);
  if (out.head.size() > 12) out.status = std::stoi(out.head.substr(9, 3));
  return out;
}

Response Post(int port, const std::string& path, const std::string& body) {
  return Exchange(port, absl::StrCat("POST ", path,
                                     " HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                     "application/json\r\nContent-Length: ",
                                     body.size(), "\r\n\r\n", body));
}

Response Get(int port, const std::string& path) {
  return Exchange(port, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n"));
}

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
      "Content-Length: ",
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

}  // namespace
}  // namespace atoma::http
