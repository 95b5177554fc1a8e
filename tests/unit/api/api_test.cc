// atoma_api_tests: the gRPC server in-process on port 0 over fake engines, called through the
// generated C++ stubs, as a client would.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "atoma/api/server.h"
#include "atoma/v1/admin.grpc.pb.h"
#include "atoma/v1/inference.grpc.pb.h"
#include "fake_engine.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace atoma::api {
namespace {

using std::chrono::milliseconds;
using testing::FakeEngine;
using testing::FakeEngineOptions;
using testing::FakeTokenizer;

struct StreamResult {
  std::vector<v1::GenerateResponse> chunks;  // chunk messages only
  std::optional<v1::GenerateResult> final;
  grpc::Status status;
  std::string text;
};

class ApiTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<FakeEngineOptions> engine_options, ServerOptions options = {}) {
    for (auto& o : engine_options) engines_.push_back(std::make_unique<FakeEngine>(o));
    std::vector<engine::Engine*> raw;
    for (auto& e : engines_) raw.push_back(e.get());
    options.listen_address = "127.0.0.1:0";
    NodeControl control;
    control.node_address = "0x00000000000000000000000000000000000000aa";
    control.version = "test-1";
    control.draining = [this] { return node_draining_.load(); };
    control.drain = [this] { node_draining_ = true; };
    auto server = Server::Start(options, raw, control);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    inference_ = v1::Inference::NewStub(channel_);
    admin_ = v1::Admin::NewStub(channel_);
  }
  void StartServer() { StartServer({FakeEngineOptions{}}); }

  void TearDown() override {
    if (server_) {
      server_->Shutdown(milliseconds(0));
      server_->Wait();
    }
  }

  static v1::GenerateRequest TextRequest(const std::string& text, int max_tokens) {
    v1::GenerateRequest r;
    r.set_model("fake");
    r.set_text(text);
    r.set_max_tokens(max_tokens);
    return r;
  }

  StreamResult Generate(const v1::GenerateRequest& request,
                        milliseconds deadline = milliseconds(10000)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    auto reader = inference_->Generate(&context, request);
    StreamResult result;
    v1::GenerateResponse message;
    while (reader->Read(&message)) {
      if (message.has_final()) {
        EXPECT_FALSE(result.final) << "two final messages";
        result.final = message.final();
      } else {
        EXPECT_FALSE(result.final) << "chunk after the final message";
        result.text += message.chunk().text();
        result.chunks.push_back(message);
      }
    }
    result.status = reader->Finish();
    return result;
  }

  FakeEngine& engine(int i = 0) { return *engines_[i]; }

  std::vector<std::unique_ptr<FakeEngine>> engines_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> inference_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::atomic<bool> node_draining_{false};
};

TEST_F(ApiTest, StreamsTokensThenFinalWithUsage) {
  StartServer();
  v1::GenerateRequest request = TextRequest("hello", 5);
  request.mutable_sampling()->set_seed(1);
  StreamResult r = Generate(request);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.chunks.size(), 5u);
  EXPECT_EQ(r.text, "bcdef");  // FakeEngine::TokenAt(seed 1, step 0..4)
  for (size_t i = 0; i < r.chunks.size(); ++i) {
    const v1::TokenChunk& chunk = r.chunks[i].chunk();
    ASSERT_EQ(chunk.token_ids_size(), 1);
    EXPECT_EQ(chunk.token_ids(0), FakeEngine::TokenAt(1, static_cast<int>(i)));
    ASSERT_EQ(chunk.tokens_size(), 1);
    EXPECT_DOUBLE_EQ(chunk.tokens(0).logprob(), -0.5);
    EXPECT_EQ(chunk.tokens(0).top_logprobs_size(), 0);
  }
  ASSERT_TRUE(r.final);
  EXPECT_EQ(r.final->finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(r.final->model(), "fake");
  EXPECT_EQ(r.final->output_ids_size(), 5);
  EXPECT_EQ(r.final->usage().prompt_tokens(), 6);  // BOS + 5 bytes
  EXPECT_EQ(r.final->usage().completion_tokens(), 5);
  EXPECT_GT(r.final->usage().time_to_first_token_ms(), 0.0);
  EXPECT_GT(r.final->usage().tokens_per_second(), 0.0);
  EXPECT_GE(r.final->usage().total_time_ms(), r.final->usage().time_to_first_token_ms());

  // What the engine received: BOS + bytes, greedy defaults, default-free max_tokens.
  auto sent = engine().last_request();
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->prompt_ids, (std::vector<int32_t>{FakeTokenizer::kBos, 'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(sent->max_tokens, 5);
  EXPECT_EQ(sent->sampling.seed, 1u);
  EXPECT_DOUBLE_EQ(sent->sampling.top_p, 1.0);
}

TEST_F(ApiTest, ConvertsSamplingStopsAndTopLogprobs) {
  StartServer();
  v1::GenerateRequest request = TextRequest("x", 3);
  request.clear_max_tokens();  // unset → node default
  auto* s = request.mutable_sampling();
  s->set_temperature(0.7);
  s->set_top_k(40);
  s->set_top_p(0.9);
  s->set_seed(42);
  s->set_top_logprobs(3);
  request.add_stop("\n\n");
  request.add_stop_token_ids(FakeEngine::TokenAt(42, 2));
  request.set_ignore_eos(true);
  StreamResult r = Generate(request);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  auto sent = engine().last_request();
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->max_tokens, 256);
  EXPECT_DOUBLE_EQ(sent->sampling.temperature, 0.7);
  EXPECT_EQ(sent->sampling.top_k, 40);
  EXPECT_DOUBLE_EQ(sent->sampling.top_p, 0.9);
  EXPECT_EQ(sent->sampling.top_logprobs, 3);
  EXPECT_EQ(sent->stop_strings, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(sent->stop_token_ids, std::vector<int32_t>{FakeEngine::TokenAt(42, 2)});
  EXPECT_TRUE(sent->ignore_eos);
  // The stop token id ends the stream after the third token.
  ASSERT_TRUE(r.final);
  EXPECT_EQ(r.final->finish_reason(), v1::FINISH_REASON_STOP);
  ASSERT_EQ(r.chunks.size(), 3u);
  ASSERT_EQ(r.chunks[0].chunk().tokens(0).top_logprobs_size(), 3);
  EXPECT_EQ(r.chunks[0].chunk().tokens(0).top_logprobs(2).token_id(),
            FakeEngine::TokenAt(42, 0) + 2);
  // A different request key per different request, the same for the same request.
  StreamResult again = Generate(request);
  ASSERT_TRUE(again.status.ok());
  auto sent_again = engine().last_request();
  EXPECT_EQ(sent_again->request_key, sent->request_key);
  request.mutable_sampling()->set_seed(43);
  Generate(request);
  EXPECT_NE(engine().last_request()->request_key, sent->request_key);
}

TEST_F(ApiTest, ChatIsRenderedWithTheChatFormatAndTokenIdsPassThrough) {
  StartServer();
  v1::GenerateRequest request;
  request.set_model("fake");
  request.set_max_tokens(2);
  auto* chat = request.mutable_chat();
  auto* m = chat->add_messages();
  m->set_role("system");
  m->set_content("be brief");
  m = chat->add_messages();
  m->set_role("user");
  m->set_content("hi");
  StreamResult r = Generate(request);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  FakeTokenizer tokenizer(engine::ChatFormat::kChatML);
  EXPECT_EQ(engine().last_request()->prompt_ids,
            tokenizer.Encode("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi"
                             "<|im_end|>\n<|im_start|>assistant\n",
                             false));

  v1::GenerateRequest ids;
  ids.set_model("fake");
  ids.set_max_tokens(1);
  for (int32_t id : {5, 258, 7}) ids.mutable_token_ids()->add_ids(id);
  r = Generate(ids);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(engine().last_request()->prompt_ids, (std::vector<int32_t>{5, 258, 7}));
  EXPECT_EQ(r.final->usage().prompt_tokens(), 3);
}

TEST_F(ApiTest, EosGivesStopAndUtf8TextAssemblesAcrossChunks) {
  FakeEngineOptions o;
  o.eos_after_tokens = 2;
  StartServer({o});
  StreamResult r = Generate(TextRequest("a", 10));
  ASSERT_TRUE(r.status.ok());
  ASSERT_TRUE(r.final);
  EXPECT_EQ(r.final->finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(r.final->usage().completion_tokens(), 3);
  EXPECT_EQ(r.final->output_ids(2), FakeTokenizer::kEos);
}

struct ErrorCase {
  std::string name;
  std::function<void(v1::GenerateRequest*)> edit;
  grpc::StatusCode code;
  std::string field;  // must appear in the message
};

TEST_F(ApiTest, InvalidRequestsGetTheRightCodeNamingTheField) {
  FakeEngineOptions plain;
  plain.id = "plain";
  plain.chat_format = engine::ChatFormat::kNone;
  StartServer({FakeEngineOptions{}, plain}, ServerOptions{.max_prompt_bytes = 64});
  const std::vector<ErrorCase> cases = {
      {"unknown model", [](auto* r) { r->set_model("nope"); }, grpc::StatusCode::NOT_FOUND, "nope"},
      {"no model", [](auto* r) { r->clear_model(); }, grpc::StatusCode::INVALID_ARGUMENT, "model"},
      {"zero max_tokens", [](auto* r) { r->set_max_tokens(0); }, grpc::StatusCode::INVALID_ARGUMENT,
       "max_tokens"},
      {"negative max_tokens", [](auto* r) { r->set_max_tokens(-3); },
       grpc::StatusCode::INVALID_ARGUMENT, "max_tokens"},
      {"top_p zero", [](auto* r) { r->mutable_sampling()->set_top_p(0.0); },
       grpc::StatusCode::INVALID_ARGUMENT, "sampling.top_p"},
      {"top_p above one", [](auto* r) { r->mutable_sampling()->set_top_p(1.5); },
       grpc::StatusCode::INVALID_ARGUMENT, "sampling.top_p"},
      {"negative temperature", [](auto* r) { r->mutable_sampling()->set_temperature(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "sampling.temperature"},
      {"negative top_k", [](auto* r) { r->mutable_sampling()->set_top_k(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "sampling.top_k"},
      {"too many logprobs", [](auto* r) { r->mutable_sampling()->set_top_logprobs(21); },
       grpc::StatusCode::INVALID_ARGUMENT, "sampling.top_logprobs"},
      {"empty text", [](auto* r) { r->set_text(""); }, grpc::StatusCode::INVALID_ARGUMENT, "text"},
      {"no prompt", [](auto* r) { r->clear_prompt(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "prompt"},
      {"text over the byte limit", [](auto* r) { r->set_text(std::string(65, 'x')); },
       grpc::StatusCode::INVALID_ARGUMENT, "text"},
      {"token ids over the context",
       [](auto* r) {
         for (int i = 0; i < 600; ++i) r->mutable_token_ids()->add_ids(1);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "prompt"},
      {"empty token ids", [](auto* r) { r->mutable_token_ids(); },
       grpc::StatusCode::INVALID_ARGUMENT, "prompt"},
      {"token id outside the vocabulary",
       [](auto* r) {
         r->mutable_token_ids()->add_ids(1);
         r->mutable_token_ids()->add_ids(99999);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "token_ids.ids[1]"},
      {"negative stop token id", [](auto* r) { r->add_stop_token_ids(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "stop_token_ids[0]"},
      {"empty stop string", [](auto* r) { r->add_stop(""); }, grpc::StatusCode::INVALID_ARGUMENT,
       "stop[0]"},
      {"invalid UTF-8 text", [](auto* r) { r->set_text("ab\xC3(cd"); },
       grpc::StatusCode::INVALID_ARGUMENT, "text"},
      {"overlong UTF-8 text", [](auto* r) { r->set_text("\xC0\xAF"); },
       grpc::StatusCode::INVALID_ARGUMENT, "text"},
      {"invalid UTF-8 chat content",
       [](auto* r) {
         auto* m = r->mutable_chat()->add_messages();
         m->set_role("user");
         m->set_content("\xFF");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "chat.messages[0].content"},
      {"invalid UTF-8 stop string",
       [](auto* r) {
         r->add_stop("ok");
         r->add_stop("\xED\xA0\x80");  // a surrogate
       },
       grpc::StatusCode::INVALID_ARGUMENT, "stop[1]"},
      {"unknown chat role",
       [](auto* r) {
         auto* m = r->mutable_chat()->add_messages();
         m->set_role("wizard");
         m->set_content("x");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "chat.messages[0].role"},
      {"empty chat", [](auto* r) { r->mutable_chat(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "chat.messages"},
      {"chat on a model without a chat format",
       [](auto* r) {
         r->set_model("plain");
         auto* m = r->mutable_chat()->add_messages();
         m->set_role("user");
         m->set_content("x");
       },
       grpc::StatusCode::FAILED_PRECONDITION, "chat"},
      {"sampling security", [](auto* r) { r->mutable_security()->mutable_sampling(); },
       grpc::StatusCode::UNIMPLEMENTED, "security.sampling"},
      {"cross-validation security",
       [](auto* r) { r->mutable_security()->mutable_cross_validation(); },
       grpc::StatusCode::UNIMPLEMENTED, "security.cross_validation"},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    v1::GenerateRequest request = TextRequest("hello", 4);
    c.edit(&request);
    StreamResult r = Generate(request);
    EXPECT_EQ(r.status.error_code(), c.code) << r.status.error_message();
    EXPECT_NE(r.status.error_message().find(c.field), std::string::npos)
        << "message: " << r.status.error_message();
    EXPECT_TRUE(r.chunks.empty());
  }
  EXPECT_EQ(engine(0).submitted(), 0);
  EXPECT_EQ(engine(1).submitted(), 0);
  // security none is served.
  v1::GenerateRequest ok = TextRequest("hello", 1);
  ok.mutable_security()->mutable_none();
  EXPECT_TRUE(Generate(ok).status.ok());
}

TEST_F(ApiTest, EngineErrorsMapToStatusCodes) {
  FakeEngineOptions full;
  full.id = "full";
  full.submit_status = absl::ResourceExhaustedError("engine queue is full (64 waiting)");
  FakeEngineOptions faulty;
  faulty.id = "faulty";
  faulty.fail_after_tokens = 2;
  StartServer({full, faulty});
  v1::GenerateRequest request = TextRequest("hello", 4);
  request.set_model("full");
  StreamResult r = Generate(request);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(r.status.error_message().find("queue is full"), std::string::npos);

  request.set_model("faulty");
  r = Generate(request);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(r.status.error_message().find("injected engine fault"), std::string::npos);
  EXPECT_EQ(r.chunks.size(), 2u);  // the tokens before the fault still arrived
  EXPECT_FALSE(r.final);
}

TEST_F(ApiTest, OverloadGivesResourceExhausted) {
  FakeEngineOptions slow;
  slow.step = milliseconds(20);
  StartServer({slow}, ServerOptions{.max_concurrent_generations = 2});
  // Two long generations hold both slots.
  std::vector<std::thread> holders;
  std::vector<StreamResult> held(2);
  for (int i = 0; i < 2; ++i) {
    holders.emplace_back([&, i] { held[i] = Generate(TextRequest("hold", 25)); });
  }
  // Wait until both are streaming.
  for (int i = 0; i < 500 && engine().stats().running < 2; ++i) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_EQ(engine().stats().running, 2);
  StreamResult third = Generate(TextRequest("third", 1));
  EXPECT_EQ(third.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(third.status.error_message().find("concurrent generations"), std::string::npos);
  for (auto& t : holders) t.join();
  for (auto& h : held) EXPECT_TRUE(h.status.ok()) << h.status.error_message();
  // Slots are given back.
  EXPECT_TRUE(Generate(TextRequest("after", 1)).status.ok());
}

TEST_F(ApiTest, ClientCancellationReachesTheEngineWithinOneStep) {
  FakeEngineOptions slow;
  // A long step, so "within one step" holds with a wide margin on a loaded machine.
  slow.step = milliseconds(200);
  StartServer({slow});
  grpc::ClientContext context;
  auto reader = inference_->Generate(&context, TextRequest("long", 1000));
  v1::GenerateResponse message;
  ASSERT_TRUE(reader->Read(&message));  // generation is running
  const auto cancelled_at = std::chrono::steady_clock::now();
  context.TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The handler polls every few ms; the engine must hear of it inside one 200 ms step.
  for (int i = 0; i < 400 && engine().cancels_seen() == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_EQ(engine().cancels_seen(), 1);
  const auto latency = *engine().last_cancel_time() - cancelled_at;
  EXPECT_LT(latency, milliseconds(200));
  // And the request left the engine at its next step.
  for (int i = 0; i < 1000 && engine().stats().running > 0; ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(engine().stats().running, 0);
  EXPECT_LE(engine().worst_cancel_latency(), milliseconds(250));
}

TEST_F(ApiTest, DeadlineCancelsTheGeneration) {
  FakeEngineOptions slow;
  slow.step = milliseconds(20);
  StartServer({slow});
  StreamResult r = Generate(TextRequest("long", 1000), milliseconds(150));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GT(r.chunks.size(), 0u);
  for (int i = 0; i < 200 && engine().cancels_seen() == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(engine().cancels_seen(), 1);
}

TEST_F(ApiTest, ShutdownWhileStreamsRun) {
  FakeEngineOptions slow;
  slow.step = milliseconds(10);
  StartServer({slow});
  // One stream that finishes within the shutdown deadline, one that cannot.
  StreamResult short_one, long_one;
  std::thread a([&] { short_one = Generate(TextRequest("short", 10)); });
  std::thread b([&] { long_one = Generate(TextRequest("long", 100000)); });
  for (int i = 0; i < 500 && engine().stats().running < 2; ++i) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_EQ(engine().stats().running, 2);
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown(milliseconds(300));
  server_->Wait();
  const auto took = std::chrono::steady_clock::now() - start;
  a.join();
  b.join();
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_TRUE(short_one.status.ok()) << short_one.status.error_message();
  ASSERT_TRUE(short_one.final);
  EXPECT_EQ(short_one.final->usage().completion_tokens(), 10);
  // The long one was cut at the deadline with a clean status, and the engine was told.
  EXPECT_FALSE(long_one.status.ok());
  EXPECT_GT(long_one.chunks.size(), 0u);
  for (int i = 0; i < 200 && engine().cancels_seen() == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(engine().cancels_seen(), 1);
  // New calls are refused.
  StreamResult after = Generate(TextRequest("x", 1), milliseconds(500));
  EXPECT_FALSE(after.status.ok());
  server_.reset();
}

// The node's shutdown order: the engines are drained first (cancelling what is left), then the
// server stops. Streams then end with their held-back text and a final CANCELLED message.
TEST_F(ApiTest, EngineShutdownEndsStreamsWithAFinalMessage) {
  FakeEngineOptions slow;
  slow.step = milliseconds(10);
  slow.held_text = "tail";
  StartServer({slow});
  StreamResult r;
  std::thread client([&] { r = Generate(TextRequest("long", 100000)); });
  for (int i = 0; i < 500 && engine().stats().tokens_generated < 3; ++i) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  engine().Shutdown(milliseconds(0));
  server_->Shutdown(milliseconds(2000));
  server_->Wait();
  client.join();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_TRUE(r.final);
  EXPECT_EQ(r.final->finish_reason(), v1::FINISH_REASON_CANCELLED);
  ASSERT_GE(r.chunks.size(), 4u);
  EXPECT_EQ(r.chunks.back().chunk().text(), "tail");
  EXPECT_EQ(r.chunks.back().chunk().token_ids_size(), 0);
  EXPECT_EQ(r.text.substr(r.text.size() - 4), "tail");
  EXPECT_EQ(r.final->usage().completion_tokens(), static_cast<int>(r.chunks.size()) - 1);
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(grpc::Channel* channel,
                                                            const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.status();
}

TEST_F(ApiTest, AdminStatusDrainAndHealth) {
  StartServer();
  using grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(Health(channel_.get(), ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(channel_.get(), "atoma.v1.Inference"), HealthCheckResponse::SERVING);

  ASSERT_TRUE(Generate(TextRequest("hi", 3)).status.ok());
  {
    grpc::ClientContext context;
    v1::StatusResponse status;
    ASSERT_TRUE(admin_->Status(&context, v1::StatusRequest(), &status).ok());
    EXPECT_EQ(status.node_address(), "0x00000000000000000000000000000000000000aa");
    EXPECT_EQ(status.version(), "test-1");
    ASSERT_EQ(status.models_size(), 1);
    EXPECT_EQ(status.models(0).info().id(), "fake");
    std::string digest_hex;
    for (int i = 0; i < 32; ++i) digest_hex += "ab";  // FakeEngine's digest: 32 bytes of 0xab
    EXPECT_EQ(status.models(0).info().digest_hex(), digest_hex);
    EXPECT_EQ(status.models(0).requests_finished(), 1);
    EXPECT_EQ(status.models(0).tokens_generated(), 3);
    EXPECT_FALSE(status.draining());
  }
  {
    grpc::ClientContext context;
    v1::DrainResponse drained;
    ASSERT_TRUE(admin_->Drain(&context, v1::DrainRequest(), &drained).ok());
    EXPECT_TRUE(drained.draining());
  }
  EXPECT_TRUE(node_draining_.load());  // the node was told
  EXPECT_EQ(Health(channel_.get(), ""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(channel_.get(), "atoma.v1.Inference"), HealthCheckResponse::NOT_SERVING);
  StreamResult refused = Generate(TextRequest("hi", 3));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(refused.status.error_message().find("draining"), std::string::npos);
  grpc::ClientContext context;
  v1::StatusResponse status;
  ASSERT_TRUE(admin_->Status(&context, v1::StatusRequest(), &status).ok());
  EXPECT_TRUE(status.draining());
}

// With an admin token, Drain needs it as a bearer token; Status stays open.
TEST_F(ApiTest, AdminDrainNeedsTheAdminToken) {
  ServerOptions options;
  options.admin_token = "0123456789abcdef-operator";
  StartServer({FakeEngineOptions{}}, options);
  auto drain = [&](const std::string& authorization) {
    grpc::ClientContext context;
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    v1::DrainResponse drained;
    return admin_->Drain(&context, v1::DrainRequest(), &drained);
  };
  for (const std::string& bad :
       {std::string(), std::string("Bearer wrong"), std::string("0123456789abcdef-operator"),
        std::string("Bearer 0123456789abcdef-operatoR"),
        std::string("Bearer 0123456789abcdef-operator ")}) {
    grpc::Status s = drain(bad);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "'" << bad << "'";
    EXPECT_FALSE(node_draining_.load()) << "'" << bad << "'";
  }
  {
    grpc::ClientContext context;
    v1::StatusResponse status;
    EXPECT_TRUE(admin_->Status(&context, v1::StatusRequest(), &status).ok());
    EXPECT_FALSE(status.draining());
  }
  EXPECT_TRUE(drain("Bearer 0123456789abcdef-operator").ok());
  EXPECT_TRUE(node_draining_.load());
}

TEST(AdminPeerTest, LoopbackPeers) {
  for (const char* yes : {"ipv4:127.0.0.1:5000", "ipv4:127.8.9.1:1", "ipv6:[::1]:80",
                          "ipv6:[::ffff:127.0.0.1]:80", "unix:/tmp/sock"}) {
    EXPECT_TRUE(IsLoopbackPeer(yes)) << yes;
  }
  for (const char* no : {"ipv4:10.0.0.1:5000", "ipv4:128.0.0.1:1", "ipv6:[2001:db8::1]:80",
                         "ipv6:[::ffff:10.0.0.1]:80", "ipv6:::1", "ipv6:[::1", "", "127.0.0.1:5",
                         "ipv4:1127.0.0.1:5"}) {
    EXPECT_FALSE(IsLoopbackPeer(no)) << no;
  }
}

TEST_F(ApiTest, DrainStartedByTheNodeShowsInHealthAndRefusesWork) {
  StartServer();
  node_draining_ = true;
  StreamResult refused = Generate(TextRequest("hi", 3));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Health(channel_.get(), ""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST_F(ApiTest, ListModelsAndTokenize) {
  FakeEngineOptions plain;
  plain.id = "plain";
  plain.chat_format = engine::ChatFormat::kNone;
  StartServer({FakeEngineOptions{}, plain});
  {
    grpc::ClientContext context;
    v1::ListModelsResponse models;
    ASSERT_TRUE(inference_->ListModels(&context, v1::ListModelsRequest(), &models).ok());
    ASSERT_EQ(models.models_size(), 2);
    EXPECT_EQ(models.models(0).id(), "fake");
    EXPECT_EQ(models.models(0).chat_format(), "chatml");
    EXPECT_EQ(models.models(0).context_length(), 512);
    EXPECT_EQ(models.models(0).vocab_size(), FakeTokenizer::kVocab);
    EXPECT_EQ(models.models(0).digest_hex().size(), 64u);
    std::string fingerprint_hex;
    for (int i = 0; i < 32; ++i) fingerprint_hex += "cd";
    EXPECT_EQ(models.models(0).fingerprint_hex(), fingerprint_hex);
    EXPECT_EQ(models.models(1).id(), "plain");
    EXPECT_EQ(models.models(1).chat_format(), "");
  }
  {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_model("fake");
    request.set_text("ab");
    v1::TokenizeResponse response;
    ASSERT_TRUE(inference_->Tokenize(&context, request, &response).ok());
    EXPECT_EQ(std::vector<int32_t>(response.ids().begin(), response.ids().end()),
              (std::vector<int32_t>{FakeTokenizer::kBos, 'a', 'b'}));
    ASSERT_EQ(response.tokens_size(), 3);
    EXPECT_EQ(response.tokens(0), "<s>");
    EXPECT_EQ(response.tokens(2), "b");
  }
  {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_model("fake");
    request.set_text("ab");
    request.set_no_special_tokens(true);
    v1::TokenizeResponse response;
    ASSERT_TRUE(inference_->Tokenize(&context, request, &response).ok());
    EXPECT_EQ(response.ids_size(), 2);
  }
  {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_model("plain");
    auto* m = request.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content("x");
    v1::TokenizeResponse response;
    EXPECT_EQ(inference_->Tokenize(&context, request, &response).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_model("fake");
    request.set_text("\xF5\x80\x80\x80");  // past U+10FFFF
    v1::TokenizeResponse response;
    grpc::Status status = inference_->Tokenize(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("text"), std::string::npos) << status.error_message();
  }
}

TEST_F(ApiTest, MalformedRequestBytesGetInvalidArgument) {
  StartServer();
  // Raw bytes that are no GenerateRequest: field 1 (model) claims 100 bytes, has 2.
  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  const std::string bytes = "\x0a\x64hi";
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&context, "/atoma.v1.Inference/Tokenize", request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("atoma.v1.TokenizeRequest"), std::string::npos)
      << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// Lists services through server reflection (grpc.reflection.v1alpha), as grpcurl does, with the
// reflection messages taken from the descriptor pool that grpc++_reflection registered.
TEST_F(ApiTest, ReflectionListsTheServices) {
  StartServer();
  namespace pb = google::protobuf;
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  const pb::Descriptor* request_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const pb::Descriptor* response_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  ASSERT_NE(request_type, nullptr);
  ASSERT_NE(response_type, nullptr);
  pb::DynamicMessageFactory factory(pool);
  std::unique_ptr<pb::Message> request(factory.GetPrototype(request_type)->New());
  request->GetReflection()->SetString(request.get(), request_type->FindFieldByName("list_services"),
                                      "*");
  std::string bytes;
  ASSERT_TRUE(request->SerializeToString(&bytes));

  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  void* tag;
  bool ok;
  auto next = [&] {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_TRUE(ok);
  };
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  next();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  next();
  call->WritesDone(reinterpret_cast<void*>(3));
  next();
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(4));
  next();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(in.Dump(&slices).ok());
  std::string received;
  for (auto& s : slices) received.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<pb::Message> response(factory.GetPrototype(response_type)->New());
  ASSERT_TRUE(response->ParseFromString(received));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  next();
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }

  const std::string text = response->DebugString();
  EXPECT_NE(text.find("\"atoma.v1.Inference\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"atoma.v1.Admin\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"grpc.health.v1.Health\""), std::string::npos) << text;
}

// InferenceService registers its methods by hand (server.cc); an RPC added to inference.proto must
// be registered there too.
TEST(InferenceProtoTest, EveryRpcIsRegisteredByTheServer) {
  const google::protobuf::ServiceDescriptor* service =
      v1::GenerateRequest::descriptor()->file()->FindServiceByName("Inference");
  ASSERT_NE(service, nullptr);
  std::vector<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) methods.push_back(service->method(i)->name());
  EXPECT_EQ(methods, (std::vector<std::string>{"Generate", "ListModels", "Tokenize", "RevealSalt"}))
      << "register the new RPC in InferenceService (src/api/server.cc) and update this list";
}

TEST_F(ApiTest, AnonymousRequestsRefusedWhenNotAllowed) {
  StartServer({FakeEngineOptions{}}, ServerOptions{.allow_anonymous = false});
  StreamResult r = Generate(TextRequest("hi", 2));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(r.status.error_message().find("anonymous"), std::string::npos);
  EXPECT_EQ(engine().submitted(), 0);
}

TEST_F(ApiTest, StartFailsClearlyOnABadAddress) {
  FakeEngine fake(FakeEngineOptions{});
  ServerOptions options;
  options.listen_address = "256.1.1.1:1";
  auto server = Server::Start(options, {&fake}, NodeControl{});
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("256.1.1.1:1"), std::string::npos);

  auto duplicate =
      Server::Start(ServerOptions{.listen_address = "127.0.0.1:0"}, {&fake, &fake}, NodeControl{});
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace atoma::api
