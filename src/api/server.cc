// The gRPC server: sync API, one handler thread per open call. Handler threads only convert protos,
// hand requests to an engine and wait on the request's handle; they never run model code.
#include "atoma/api/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/xv.h"
#include "atoma/crypto/sha256.h"
#include "atoma/metrics/metrics.h"
#include "atoma/metrics/request_meter.h"
#include "atoma/v1/admin.grpc.pb.h"
#include "atoma/v1/inference.pb.h"
#include "consensus_fields.h"
#include "convert.h"
#include "request_parse.h"
#include "status_map.h"

namespace atoma::api {
namespace {

using Clock = std::chrono::steady_clock;

// How long a handler waits on the engine before looking at its call again: bounds how late a
// client's cancellation reaches the engine (well under one decode step).
constexpr std::chrono::milliseconds kPollInterval{5};

constexpr char kInferenceService[] = "atoma.v1.Inference";

double MillisBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// What both services share. Thread-safe: immutable after construction except the atomics and the
// health pointer (set once before serving).
struct State {
  ServerOptions options;
  ConvertLimits limits;
  std::map<std::string, engine::Engine*> engines;  // by info().id
  NodeControl control;
  std::atomic<int> active_streams{0};
  std::atomic<bool> draining{false};  // Drain RPC or Shutdown
  grpc::HealthCheckServiceInterface* health = nullptr;
  // The admin token in force: options.admin_token at start, then Server::SetAdminToken.
  absl::Mutex admin_mu;
  std::string admin_token ABSL_GUARDED_BY(admin_mu);

  bool Draining() const { return draining.load() || (control.draining && control.draining()); }
  // Reflects a drain the node started on its own (not through the Admin RPC) in the health
  // service, so load balancers see it as soon as anyone asks.
  void SyncHealth() {
    if (Draining() && health != nullptr) {
      health->SetServingStatus(false);
      health->SetServingStatus(kInferenceService, false);
    }
  }
  engine::Engine* Find(const std::string& id) const {
    auto it = engines.find(id);
    return it == engines.end() ? nullptr : it->second;
  }
};

// Holds one of the max_concurrent_generations slots for the lifetime of a Generate call.
class StreamSlot {
 public:
  explicit StreamSlot(State& state) : state_(state) {
    acquired_ = state_.active_streams.fetch_add(1) < state_.options.max_concurrent_generations;
  }
  ~StreamSlot() { state_.active_streams.fetch_sub(1); }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;
  bool acquired() const { return acquired_; }

 private:
  State& state_;
  bool acquired_ = false;
};

using metrics::RequestMeter;

// The requests_total outcome of a generation's final status.
const char* OutcomeOf(const grpc::Status& status) {
  return metrics::OutcomeOf(static_cast<absl::StatusCode>(status.error_code()));
}

// Ends `meter` with `status`'s outcome and returns `status` (so a handler can `return
// Metered(meter, ...)`).
grpc::Status Metered(RequestMeter& meter, grpc::Status status, int prompt_tokens) {
  meter.Done(OutcomeOf(status), prompt_tokens);
  return status;
}

const char* SecurityLabel(const v1::GenerateRequest& request) {
  if (!request.has_security()) return "none";
  switch (request.security().level_case()) {
    case v1::Security::kSampling:
      return "sampling";
    case v1::Security::kCrossValidation:
      return "cross_validation";
    default:
      return "none";
  }
}

// atoma.v1.Inference. Registered by hand rather than through the generated Inference::Service so
// that Generate and Tokenize receive Parsed<T> requests: a string field that is not UTF-8 then
// reaches our handler and gets INVALID_ARGUMENT naming the field (see request_parse.h). The method
// paths are those of inference.proto; the unit tests call them through the generated stub.
class InferenceService final : public grpc::Service {
 public:
  explicit InferenceService(State& state) : state_(state), log_(GetLogger("api")) {
    using grpc::internal::RpcMethod;
    using grpc::internal::RpcServiceMethod;
    AddMethod(new RpcServiceMethod(
        "/atoma.v1.Inference/Generate", RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<InferenceService, Parsed<v1::GenerateRequest>,
                                                   v1::GenerateResponse>(
            [](InferenceService* self, grpc::ServerContext* context,
               const Parsed<v1::GenerateRequest>* request,
               grpc::ServerWriter<v1::GenerateResponse>* writer) {
              if (!request->status.ok()) return ToGrpcStatus(request->status);
              return self->Generate(context, &request->message, writer);
            },
            this)));
    AddMethod(new RpcServiceMethod(
        "/atoma.v1.Inference/ListModels", RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<InferenceService, v1::ListModelsRequest,
                                             v1::ListModelsResponse>(
            [](InferenceService* self, grpc::ServerContext* context,
               const v1::ListModelsRequest* request, v1::ListModelsResponse* response) {
              return self->ListModels(context, request, response);
            },
            this)));
    AddMethod(new RpcServiceMethod(
        "/atoma.v1.Inference/Tokenize", RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<InferenceService, Parsed<v1::TokenizeRequest>,
                                             v1::TokenizeResponse>(
            [](InferenceService* self, grpc::ServerContext* context,
               const Parsed<v1::TokenizeRequest>* request, v1::TokenizeResponse* response) {
              if (!request->status.ok()) return ToGrpcStatus(request->status);
              return self->Tokenize(context, &request->message, response);
            },
            this)));
    AddMethod(new RpcServiceMethod(
        "/atoma.v1.Inference/RevealSalt", RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<InferenceService, v1::RevealSaltRequest,
                                             v1::RevealSaltResponse>(
            [](InferenceService* self, grpc::ServerContext* context,
               const v1::RevealSaltRequest* request, v1::RevealSaltResponse* response) {
              return self->RevealSalt(context, request, response);
            },
            this)));
  }

  grpc::Status RevealSalt(grpc::ServerContext*, const v1::RevealSaltRequest* request,
                          v1::RevealSaltResponse* response) {
    peer::ConsensusNode* consensus = state_.options.consensus;
    if (consensus == nullptr) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "RevealSalt: this node runs without a ledger and runs no rounds");
    }
    crypto::Hash256 id{};
    consensus::XvSalt salt{};
    if (request->request_id().size() != id.size()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "request_id: must be 32 bytes");
    }
    if (request->salt().size() != salt.size()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "salt: must be 32 bytes");
    }
    std::memcpy(id.data(), request->request_id().data(), id.size());
    std::memcpy(salt.data(), request->salt().data(), salt.size());
    absl::StatusOr<bool> drawn = consensus->RevealSalt(id, salt);
    if (!drawn.ok()) return ToGrpcStatus(drawn.status());
    response->set_check_drawn(*drawn);
    return grpc::Status::OK;
  }

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
    const Clock::time_point accepted = Clock::now();
    state_.SyncHealth();
    if (state_.Draining()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "node is draining: it accepts no new generations; use another node");
    }
    if (request->model().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "model: required");
    }
    engine::Engine* engine = state_.Find(request->model());
    if (engine == nullptr) return UnknownModel(request->model());
    if (request->has_security() &&
        request->security().level_case() != v1::Security::LEVEL_NOT_SET &&
        request->security().level_case() != v1::Security::kNone) {
      RequestMeter meter(state_.options.metrics, engine->info().id, SecurityLabel(*request),
                         accepted);
      int prompt_tokens = 0;
      grpc::Status status =
          GenerateVerified(context, *request, *engine, accepted, writer, &meter, &prompt_tokens);
      return Metered(meter, std::move(status), prompt_tokens);
    }
    if (!state_.options.allow_anonymous) {
      // Client signatures arrive with consensus (reserved fields of GenerateRequest); until then
      // every request is anonymous, and such a node serves none.
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "security: this node does not serve anonymous (unsigned) requests");
    }

    absl::StatusOr<engine::GenerateRequest> native =
        ToEngineRequest(*request, *engine, state_.limits);
    if (!native.ok()) {
      log_->debug("Generate rejected: {}", native.status().ToString());
      return ToGrpcStatus(native.status());
    }
    native->request_key = AnonymousRequestKey(engine->info(), *native);
    const int prompt_tokens = static_cast<int>(native->prompt_ids.size());

    StreamSlot slot(state_);
    if (!slot.acquired()) return AtStreamLimit();
    RequestMeter meter(state_.options.metrics, engine->info().id, "none", accepted);
    absl::StatusOr<std::shared_ptr<engine::RequestHandle>> handle =
        engine->Submit(std::move(*native));
    if (!handle.ok()) {
      log_->debug("Generate: engine refused the request: {}", handle.status().ToString());
      return Metered(meter, ToGrpcStatus(handle.status()), 0);
    }
    return Metered(meter,
                   Stream(context, **handle, *engine, prompt_tokens, accepted, writer, &meter),
                   prompt_tokens);
  }

  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* response) {
    for (const auto& [id, engine] : state_.engines) FillModelInfo(*engine, response->add_models());
    return grpc::Status::OK;
  }

  grpc::Status Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) {
    if (request->model().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "model: required");
    }
    engine::Engine* engine = state_.Find(request->model());
    if (engine == nullptr) return UnknownModel(request->model());
    absl::StatusOr<std::vector<int32_t>> ids = TokenizeForRequest(*request, *engine, state_.limits);
    if (!ids.ok()) return ToGrpcStatus(ids.status());
    const engine::Tokenizer* tokenizer = engine->tokenizer();
    for (int32_t id : *ids) {
      response->add_ids(id);
      std::optional<std::string> token = tokenizer->IdToToken(id);
      // Vocabulary strings are bytes in some tokenizers (byte fallback pieces); a proto string
      // must be UTF-8, so such pieces are sent empty.
      response->add_tokens(token && IsValidUtf8(*token) ? *token : "");
    }
    return grpc::Status::OK;
  }

 private:
  grpc::Status AtStreamLimit() const {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("node is at its limit of ", state_.options.max_concurrent_generations,
                     " concurrent generations; retry later"));
  }

  grpc::Status UnknownModel(const std::string& id) {
    std::string served;
    for (const auto& [name, engine] : state_.engines) {
      absl::StrAppend(&served, served.empty() ? "" : ", ", name);
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("model: \"", IsValidUtf8(id) ? id.substr(0, 128) : "<bytes>",
                                     "\" is not served here (served: ", served, ")"));
  }

  // A verified request (sampling): the consensus runtime runs the round; the client gets this
  // node's own tokens (or a member's, relayed), then the certificate. A client that goes away
  // does not stop the round (the request was accepted and is finished and settled anyway).
  grpc::Status GenerateVerified(grpc::ServerContext* context, const v1::GenerateRequest& request,
                                const engine::Engine& engine, Clock::time_point accepted,
                                grpc::ServerWriter<v1::GenerateResponse>* writer,
                                RequestMeter* meter, int* prompt_tokens) {
    peer::ConsensusNode* consensus = state_.options.consensus;
    if (consensus == nullptr) {
      const char* level = request.security().level_case() == v1::Security::kSampling
                              ? "security.sampling"
                              : "security.cross_validation";
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          absl::StrCat(level,
                                       ": this node runs without a ledger (ledger.backend: none) "
                                       "and serves only security none"));
    }
    absl::StatusOr<ParsedConsensusRequest> parsed =
        ConsensusRequestFromProto(request, engine.info().digest);
    if (!parsed.ok()) return ToGrpcStatus(parsed.status());
    *prompt_tokens = static_cast<int>(parsed->request.prompt_token_ids.size());
    StreamSlot slot(state_);
    if (!slot.acquired()) return AtStreamLimit();
    absl::StatusOr<std::shared_ptr<peer::RoundHandle>> handle =
        consensus->Submit(parsed->request, parsed->client_signature);
    if (!handle.ok()) {
      log_->info("verified Generate refused: {}", handle.status().ToString());
      return ToGrpcStatus(handle.status());
    }
    std::optional<Clock::time_point> first_token;
    Clock::time_point last_token = accepted;
    int tokens = 0;
    engine::StreamEvent event;
    v1::GenerateResponse message;
    while (true) {
      if (context->IsCancelled()) {
        return grpc::Status(grpc::StatusCode::CANCELLED,
                            "cancelled by the client (the round goes on and settles)");
      }
      const peer::RoundHandle::Wait w = (*handle)->Next(&event, kPollInterval);
      if (w == peer::RoundHandle::Wait::kTimeout) continue;
      if (w == peer::RoundHandle::Wait::kProvisional) {
        const std::optional<peer::RoundHandle::Provisional> p = (*handle)->provisional();
        if (!p.has_value()) continue;
        message.Clear();
        v1::ProvisionalResult* out = message.mutable_provisional();
        const crypto::Hash256& id = (*handle)->request_id();
        out->set_request_id(id.data(), id.size());
        const std::vector<uint8_t> a = consensus::EncodeAttestation(p->attestation);
        out->set_attestation(a.data(), a.size());
        for (uint32_t t : p->output.token_ids) out->add_output_ids(static_cast<int32_t>(t));
        out->set_finish_reason(p->output.finish_reason == consensus::FinishReason::kLength
                                   ? v1::FINISH_REASON_LENGTH
                                   : v1::FINISH_REASON_STOP);
        if (!writer->Write(message)) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        }
        continue;
      }
      if (w == peer::RoundHandle::Wait::kToken) {
        const Clock::time_point now = Clock::now();
        if (!first_token) first_token = now;
        last_token = now;
        ++tokens;
        meter->Token(now);
        message.Clear();
        FillChunk(event, message.mutable_chunk());
        if (!writer->Write(message)) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        }
        continue;
      }
      const peer::RoundOutcome& outcome = (*handle)->outcome();
      if (!outcome.status.ok()) return ToGrpcStatus(outcome.status);
      const Clock::time_point done = Clock::now();
      message.Clear();
      v1::GenerateResult* result = message.mutable_final();
      result->set_finish_reason(outcome.output.finish_reason == consensus::FinishReason::kLength
                                    ? v1::FINISH_REASON_LENGTH
                                    : v1::FINISH_REASON_STOP);
      for (uint32_t id : outcome.output.token_ids) result->add_output_ids(static_cast<int32_t>(id));
      result->set_model(engine.info().id);
      v1::Usage* usage = result->mutable_usage();
      usage->set_prompt_tokens(static_cast<int>(parsed->request.prompt_token_ids.size()));
      usage->set_completion_tokens(static_cast<int>(outcome.output.token_ids.size()));
      usage->set_time_to_first_token_ms(first_token ? MillisBetween(accepted, *first_token) : 0);
      if (first_token && tokens >= 2 && last_token > *first_token) {
        usage->set_tokens_per_second((tokens - 1) /
                                     (MillisBetween(*first_token, last_token) / 1000.0));
      }
      usage->set_total_time_ms(MillisBetween(accepted, done));
      const std::vector<uint8_t> certificate =
          outcome.xv_certificate.has_value()
              ? consensus::EncodeXvCertificate(*outcome.xv_certificate)
              : consensus::EncodeCertificate(outcome.certificate);
      result->set_certificate(certificate.data(), certificate.size());
      const crypto::Hash256& id = (*handle)->request_id();
      result->set_request_id(id.data(), id.size());
      writer->Write(message);
      return grpc::Status::OK;
    }
  }

  static void FillChunk(const engine::StreamEvent& event, v1::TokenChunk* chunk) {
    // The engine promises UTF-8-safe pieces; check anyway, since a proto string that is not
    // UTF-8 would fail serialization and break the stream for the client.
    chunk->set_text(IsValidUtf8(event.text) ? event.text : "\xEF\xBF\xBD");
    chunk->add_token_ids(event.token_id);
    v1::GeneratedToken* token = chunk->add_tokens();
    token->set_token_id(event.token_id);
    token->set_logprob(event.logprob);
    for (const engine::TokenLogprob& alt : event.top_logprobs) {
      v1::TokenLogprob* out = token->add_top_logprobs();
      out->set_token_id(alt.token_id);
      out->set_logprob(alt.logprob);
    }
  }

  // Relays the handle's events to the client until the final one, the client goes away, or the
  // server shuts down.
  grpc::Status Stream(grpc::ServerContext* context, engine::RequestHandle& handle,
                      const engine::Engine& engine, int prompt_tokens, Clock::time_point accepted,
                      grpc::ServerWriter<v1::GenerateResponse>* writer, RequestMeter* meter) {
    std::optional<Clock::time_point> first_token;
    Clock::time_point last_token = accepted;
    int tokens = 0;
    engine::StreamEvent event;
    v1::GenerateResponse message;
    while (true) {
      if (context->IsCancelled()) {
        handle.Cancel();
        log_->debug("Generate cancelled by the client after {} tokens", tokens);
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
      }
      if (!handle.Next(&event, kPollInterval)) continue;
      if (!event.final) {
        const Clock::time_point now = Clock::now();
        if (!first_token) first_token = now;
        last_token = now;
        ++tokens;
        meter->Token(now);
        message.Clear();
        FillChunk(event, message.mutable_chunk());
        if (!writer->Write(message)) {
          handle.Cancel();
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        }
        continue;
      }
      if (event.finish_reason == engine::FinishReason::kError) {
        log_->warn("Generate on {} failed: {}", engine.info().id, event.status.ToString());
        absl::Status status =
            event.status.ok() ? absl::InternalError("generation failed") : event.status;
        return ToGrpcStatus(status);
      }
      if (!event.text.empty()) {
        // A cancelled request's final event carries the text the engine was holding back (a
        // possible stop-string prefix or an unfinished character): deliver it as a last chunk.
        message.Clear();
        message.mutable_chunk()->set_text(IsValidUtf8(event.text) ? event.text : "\xEF\xBF\xBD");
        if (!writer->Write(message))
          return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
      const Clock::time_point done = Clock::now();
      message.Clear();
      v1::GenerateResult* result = message.mutable_final();
      result->set_finish_reason(ToProtoFinishReason(event.finish_reason));
      result->mutable_output_ids()->Assign(event.output_ids.begin(), event.output_ids.end());
      result->set_model(engine.info().id);
      v1::Usage* usage = result->mutable_usage();
      usage->set_prompt_tokens(event.prompt_tokens > 0 ? event.prompt_tokens : prompt_tokens);
      usage->set_completion_tokens(event.completion_tokens);
      usage->set_time_to_first_token_ms(first_token ? MillisBetween(accepted, *first_token) : 0);
      if (first_token && tokens >= 2 && last_token > *first_token) {
        usage->set_tokens_per_second((tokens - 1) /
                                     (MillisBetween(*first_token, last_token) / 1000.0));
      }
      usage->set_total_time_ms(MillisBetween(accepted, done));
      // A failed write here means the client is gone; there is nothing left to stop.
      writer->Write(message);
      return grpc::Status::OK;
    }
  }

  State& state_;
  std::shared_ptr<spdlog::logger> log_;
};

class AdminService final : public v1::Admin::Service {
 public:
  explicit AdminService(State& state) : state_(state) {}

  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*,
                      v1::StatusResponse* response) override {
    state_.SyncHealth();
    response->set_node_address(state_.control.node_address);
    response->set_version(state_.control.version);
    int waiting = 0;
    int running = 0;
    for (const auto& [id, engine] : state_.engines) {
      const engine::EngineStats stats = engine->stats();
      v1::ModelStatus* model = response->add_models();
      FillModelInfo(*engine, model->mutable_info());
      model->set_waiting(stats.waiting);
      model->set_running(stats.running);
      model->set_requests_finished(stats.requests_finished);
      model->set_tokens_generated(stats.tokens_generated);
      model->set_kv_bytes_used(stats.kv_bytes_used);
      model->set_kv_bytes_capacity(stats.kv_bytes_capacity);
      waiting += stats.waiting;
      running += stats.running;
    }
    response->set_waiting(waiting);
    response->set_running(running);
    response->set_active_streams(state_.active_streams.load());
    response->set_draining(state_.Draining());
    return grpc::Status::OK;
  }

  grpc::Status Drain(grpc::ServerContext* context, const v1::DrainRequest*,
                     v1::DrainResponse* response) override {
    if (grpc::Status allowed = MayDrain(*context); !allowed.ok()) {
      GetLogger("api")->warn("Admin.Drain refused from {}: {}", context->peer(),
                             allowed.error_message());
      return allowed;
    }
    if (!state_.draining.exchange(true)) {
      GetLogger("api")->info("drain requested: refusing new generations, {} streams running",
                             state_.active_streams.load());
    }
    if (state_.control.drain) state_.control.drain();
    state_.SyncHealth();
    response->set_draining(true);
    response->set_active_streams(state_.active_streams.load());
    return grpc::Status::OK;
  }

 private:
  grpc::Status MayDrain(const grpc::ServerContext& context) const {
    std::string token;
    {
      absl::MutexLock lock(&state_.admin_mu);
      token = state_.admin_token;
    }
    if (token.empty()) {
      if (IsLoopbackPeer(context.peer())) return grpc::Status::OK;
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "Admin.Drain is accepted from this machine only unless the node sets "
                          "api.admin_token_file");
    }
    const auto& md = context.client_metadata();
    if (auto it = md.find("authorization");
        it != md.end() &&
        crypto::ConstantTimeEqual(std::string_view(it->second.data(), it->second.size()),
                                  "Bearer " + token)) {
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "Admin.Drain needs metadata \"authorization: Bearer <token>\" with the "
                        "node's admin token (atoma-cli drain --admin-token-file)");
  }

  State& state_;
};

class ServerImpl final : public Server {
 public:
  explicit ServerImpl(std::unique_ptr<State> state)
      : state_(std::move(state)), inference_(*state_), admin_(*state_) {
    absl::MutexLock lock(&state_->admin_mu);
    state_->admin_token = state_->options.admin_token;
  }

  void SetAdminToken(std::string token) override {
    absl::MutexLock lock(&state_->admin_mu);
    state_->admin_token = std::move(token);
  }

  ~ServerImpl() override {
    Shutdown(std::chrono::milliseconds(0));
    Wait();
  }

  absl::Status Start() {
    // Both are process-wide switches that take effect for servers built afterwards.
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();

    grpc::ServerBuilder builder;
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!state_->options.tls_cert_chain_pem.empty()) {
      grpc::SslServerCredentialsOptions tls;
      tls.pem_key_cert_pairs.push_back(
          {state_->options.tls_private_key_pem, state_->options.tls_cert_chain_pem});
      credentials = grpc::SslServerCredentials(tls);
    }
    builder.AddListeningPort(state_->options.listen_address, credentials, &port_);
    builder.SetMaxReceiveMessageSize(state_->options.max_receive_message_bytes);
    // One thread per open call in the sync API: bound them so a flood of calls is refused by gRPC
    // (RESOURCE_EXHAUSTED) instead of exhausting the process. Streams are limited to
    // max_concurrent_generations below that; the rest is headroom for unary calls.
    grpc::ResourceQuota quota("atoma-api");
    quota.SetMaxThreads(state_->options.max_concurrent_generations + 32);
    builder.SetResourceQuota(quota);
    builder.RegisterService(&inference_);
    builder.RegisterService(&admin_);
    if (state_->options.consensus != nullptr) {
      builder.RegisterService(state_->options.consensus->service());
    }
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      server_.reset();
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", state_->options.listen_address, " (address in use or not valid?)"));
    }
    state_->health = server_->GetHealthCheckService();
    if (state_->health != nullptr) {
      state_->health->SetServingStatus(kInferenceService, true);
      state_->SyncHealth();
    }
    GetLogger("api")->info("gRPC API listening on {} (port {}), {} model(s)",
                           state_->options.listen_address, port_, state_->engines.size());
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void Shutdown(std::chrono::milliseconds deadline) override {
    std::lock_guard<std::mutex> lock(shutdown_mu_);
    if (shut_down_ || server_ == nullptr) return;
    shut_down_ = true;
    state_->draining.store(true);
    state_->SyncHealth();
    GetLogger("api")->info("gRPC API shutting down ({} streams open, {} ms to finish)",
                           state_->active_streams.load(), deadline.count());
    // Refuses new calls at once; open streams run until the deadline, then gRPC cancels them and
    // their handlers cancel the engine requests (IsCancelled) within one poll.
    server_->Shutdown(std::chrono::system_clock::now() + deadline);
  }

  void Wait() override {
    if (server_ != nullptr) server_->Wait();
  }

 private:
  std::unique_ptr<State> state_;
  InferenceService inference_;
  AdminService admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex shutdown_mu_;
  bool shut_down_ = false;
};

}  // namespace

bool IsLoopbackPeer(std::string_view peer) {
  if (peer.starts_with("unix:")) return true;
  if (peer.starts_with("ipv4:")) return peer.substr(5).starts_with("127.");
  if (peer.starts_with("ipv6:")) {
    const std::string_view rest = peer.substr(5);  // "[host]:port"
    const size_t close = rest.find(']');
    if (!rest.starts_with("[") || close == std::string_view::npos) return false;
    const std::string_view host = rest.substr(1, close - 1);
    return host == "::1" || host.starts_with("::ffff:127.");
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      std::vector<engine::Engine*> engines,
                                                      NodeControl control) {
  auto state = std::make_unique<State>();
  state->options = options;
  state->limits.max_prompt_bytes = options.max_prompt_bytes;
  state->control = std::move(control);
  if (options.max_concurrent_generations <= 0) {
    return absl::InvalidArgumentError("api: max_concurrent_generations must be > 0");
  }
  for (engine::Engine* engine : engines) {
    if (engine == nullptr) return absl::InvalidArgumentError("api: null engine");
    const std::string& id = engine->info().id;
    if (!state->engines.emplace(id, engine).second) {
      return absl::InvalidArgumentError(absl::StrCat("api: two models served as \"", id, "\""));
    }
  }
  auto server = std::make_unique<ServerImpl>(std::move(state));
  RETURN_IF_ERROR(server->Start());
  return server;
}

}  // namespace atoma::api
