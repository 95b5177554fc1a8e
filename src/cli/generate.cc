// `atoma-cli generate` and `atoma-cli models`: gRPC clients of atoma.v1.Inference.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "atoma/v1/inference.grpc.pb.h"
#include "commands.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace atoma::cli {
namespace {

const char* FinishName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    default:
      return "ERROR";
  }
}

// Prints a failed call and makes atoma-cli exit with status 1 (main catches CLI::RuntimeError).
[[noreturn]] void Fail(const char* command, const grpc::Status& status) {
  std::fprintf(stderr, "atoma-cli %s: %s: %s\n", command, CodeName(status.error_code()),
               status.error_message().c_str());
  throw CLI::RuntimeError(1);
}

std::shared_ptr<grpc::Channel> Connect(const std::string& addr) {
  return grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

struct GenerateArgs {
  std::string addr = "127.0.0.1:50051";
  std::string model;
  std::string prompt;
  bool chat = false;
  std::string system;
  int max_tokens = 0;  // 0 = node default
  double temperature = 0.0;
  double top_p = 1.0;
  int top_k = 0;
  uint64_t seed = 0;
  int top_logprobs = 0;
  std::vector<std::string> stop;
  bool json = false;
  double timeout_s = 600;
};

void RunGenerate(const GenerateArgs& args) {
  v1::GenerateRequest request;
  request.set_model(args.model);
  if (args.chat || !args.system.empty()) {
    v1::ChatPrompt* chat = request.mutable_chat();
    if (!args.system.empty()) {
      v1::ChatMessage* m = chat->add_messages();
      m->set_role("system");
      m->set_content(args.system);
    }
    v1::ChatMessage* m = chat->add_messages();
    m->set_role("user");
    m->set_content(args.prompt);
  } else {
    request.set_text(args.prompt);
  }
  if (args.max_tokens != 0) request.set_max_tokens(args.max_tokens);
  v1::SamplingParams* sampling = request.mutable_sampling();
  sampling->set_temperature(args.temperature);
  sampling->set_top_k(args.top_k);
  if (args.top_p != 1.0) sampling->set_top_p(args.top_p);
  sampling->set_seed(args.seed);
  sampling->set_top_logprobs(args.top_logprobs);
  for (const std::string& s : args.stop) request.add_stop(s);

  auto stub = v1::Inference::NewStub(Connect(args.addr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(args.timeout_s * 1000)));
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse message;
  std::string text;
  v1::GenerateResult result;
  bool have_result = false;
  while (reader->Read(&message)) {
    if (message.has_chunk()) {
      text += message.chunk().text();
      if (!args.json) {
        std::fwrite(message.chunk().text().data(), 1, message.chunk().text().size(), stdout);
        std::fflush(stdout);
      }
    } else if (message.has_final()) {
      result = message.final();
      have_result = true;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!args.json && !text.empty() && text.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!status.ok()) Fail("generate", status);
  if (!have_result) {
    Fail("generate", grpc::Status(grpc::StatusCode::INTERNAL, "stream ended without a result"));
  }
  if (args.json) {
    // One JSON object: the completion text and the final message as protobuf JSON.
    std::string final_json = ToJson(result);
    std::string text_json;
    google::protobuf::util::JsonPrintOptions options;
    google::protobuf::Value value;
    value.set_string_value(text);
    if (!google::protobuf::util::MessageToJsonString(value, &text_json, options).ok()) {
      text_json = "\"\"";
    }
    std::printf("{\"text\": %s, \"result\": %s}\n", text_json.c_str(), final_json.c_str());
    std::fflush(stdout);
  }
  const v1::Usage& u = result.usage();
  std::fprintf(stderr,
               "[%s] prompt tokens: %d, completion tokens: %d, time to first token: %.1f ms, "
               "%.1f tokens/s, total %.1f ms\n",
               FinishName(result.finish_reason()), u.prompt_tokens(), u.completion_tokens(),
               u.time_to_first_token_ms(), u.tokens_per_second(), u.total_time_ms());
}

void RunModels(const std::string& addr, bool json) {
  auto stub = v1::Inference::NewStub(Connect(addr));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ListModelsResponse response;
  const grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) Fail("models", status);
  if (json) {
    std::printf("%s\n", ToJson(response).c_str());
    return;
  }
  for (const v1::ModelInfo& m : response.models()) {
    std::printf("%s\tcontext %d\tchat %s\tvocab %d\tdigest %s\t%s\n", m.id().c_str(),
                m.context_length(), m.chat_format().empty() ? "-" : m.chat_format().c_str(),
                m.vocab_size(), m.digest_hex().c_str(), m.compute_path().c_str());
  }
}

}  // namespace

void AddGenerateCommand(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Stream a generation from a running node (prints usage to stderr).");
  cmd->add_option("--addr", args->addr, "node gRPC address host:port")->capture_default_str();
  cmd->add_option("--model", args->model, "model id (see `atoma-cli models`)")->required();
  cmd->add_option("prompt", args->prompt, "prompt text")->required();
  cmd->add_flag("--chat", args->chat, "send the prompt as a user chat message");
  cmd->add_option("--system", args->system, "system message (implies --chat)");
  cmd->add_option("--max-tokens", args->max_tokens, "most tokens to generate (default: node's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", args->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "nucleus sampling, in (0, 1]")->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "0 = off")->capture_default_str();
  cmd->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  cmd->add_option("--top-logprobs", args->top_logprobs, "alternatives per token (0..20)");
  cmd->add_option("--stop", args->stop, "stop string (repeatable)");
  cmd->add_flag("--json", args->json, "print one JSON object (text and result) instead of text");
  cmd->add_option("--timeout", args->timeout_s, "call deadline in seconds")->capture_default_str();
  cmd->callback([args] { RunGenerate(*args); });

  auto models_addr = std::make_shared<std::string>("127.0.0.1:50051");
  auto models_json = std::make_shared<bool>(false);
  CLI::App* models = app.add_subcommand("models", "List the models a running node serves.");
  models->add_option("--addr", *models_addr, "node gRPC address host:port")->capture_default_str();
  models->add_flag("--json", *models_json, "print JSON");
  models->callback([models_addr, models_json] { RunModels(*models_addr, *models_json); });
}

}  // namespace atoma::cli
