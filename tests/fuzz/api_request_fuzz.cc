// Fuzz target: request bytes from a gRPC client as the Inference service receives them.
// ParseRequest (with its lenient re-parse that names non-UTF-8 string fields), then the
// validation and conversion to engine requests, over a fake engine. Checks the promises the engine
// relies on: whatever the bytes, an accepted request is well-formed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "atoma/v1/inference.pb.h"
#include "convert.h"
#include "fake_engine.h"
#include "request_parse.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using atoma::api::testing::FakeEngine;
  using atoma::api::testing::FakeEngineOptions;
  static FakeEngine* engine = new FakeEngine(FakeEngineOptions{});  // lives for the process
  const atoma::api::ConvertLimits limits{.max_prompt_bytes = 4096};
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  atoma::v1::GenerateRequest generate;
  const absl::Status parsed = atoma::api::ParseRequest(bytes, &generate);
  Check(parsed.ok() || parsed.code() == absl::StatusCode::kInvalidArgument);
  if (parsed.ok()) {
    auto request = atoma::api::ToEngineRequest(generate, *engine, limits);
    if (request.ok()) {
      Check(!request->prompt_ids.empty());
      for (int32_t id : request->prompt_ids)
        Check(id >= 0 && id < engine->tokenizer()->vocab_size());
      Check(request->max_tokens > 0);
      Check(request->sampling.top_p > 0 && request->sampling.top_p <= 1);
      Check(request->sampling.temperature >= 0);
      for (const auto& s : request->stop_strings) Check(!s.empty() && atoma::api::IsValidUtf8(s));
      atoma::api::AnonymousRequestKey(engine->info(), *request);
    } else {
      Check(!request.status().message().empty());
    }
  }

  atoma::v1::TokenizeRequest tokenize;
  if (atoma::api::ParseRequest(bytes, &tokenize).ok()) {
    auto ids = atoma::api::TokenizeForRequest(tokenize, *engine, limits);
    if (!ids.ok()) Check(!ids.status().message().empty());
  }
  return 0;
}
