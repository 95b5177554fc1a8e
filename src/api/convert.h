// Proto ⇄ engine conversion for the gRPC layer: validation of client requests (every error names
// the offending proto field), prompt tokenization and chat rendering, and result conversion. Plain
// functions over plain data; no gRPC calls here.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/engine/engine.h"
#include "atoma/v1/inference.pb.h"

namespace atoma::api {

struct ConvertLimits {
  int max_prompt_bytes = 256 << 10;  // text / chat content bytes, checked before tokenizing
  int default_max_tokens = 256;      // when the request leaves max_tokens unset
  int max_stop_strings = 16;
  int max_stop_string_bytes = 256;
};

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Validates `request` against `engine` (model limits, vocabulary) and builds the engine request,
// tokenizing text or rendering chat with the engine's tokenizer. `request_key` is left zero; the
// caller sets it. Errors: INVALID_ARGUMENT naming the field; FAILED_PRECONDITION for chat (or text)
// on a model without a chat format (or tokenizer); UNIMPLEMENTED for security levels other than
// none.
absl::StatusOr<engine::GenerateRequest> ToEngineRequest(const v1::GenerateRequest& request,
                                                        const engine::Engine& engine,
                                                        const ConvertLimits& limits);

// Token ids for a Tokenize call, the same ids Generate would use for the same input.
absl::StatusOr<std::vector<int32_t>> TokenizeForRequest(const v1::TokenizeRequest& request,
                                                        const engine::Engine& engine,
                                                        const ConvertLimits& limits);

// Replaces a text or chat prompt of `request` by its token ids, computed as TokenizeForRequest
// computes them for the same input (text with special tokens; chat rendered with the generation
// prompt). A client that signs a verified request over the ids Tokenize gave it and sends the text
// (the OpenAI HTTP API) thus names the same canonical request. Token ids are left as they are;
// no prompt → INVALID_ARGUMENT. Errors as ToEngineRequest's for the prompt.
absl::Status PromptToTokenIds(v1::GenerateRequest* request, const engine::Engine& engine,
                              const ConvertLimits& limits);

// Key of the sampling PRNG for an anonymous single-node request: SHA-256 over the model digest and
// everything in `request` that shapes the output, in a fixed canonical encoding (never protobuf
// bytes). Equal requests get equal keys, so a seeded request is reproducible.
crypto::Hash256 AnonymousRequestKey(const engine::ModelInfo& model,
                                    const engine::GenerateRequest& request);

void FillModelInfo(const engine::Engine& engine, v1::ModelInfo* out);
v1::FinishReason ToProtoFinishReason(engine::FinishReason reason);
const char* ChatFormatName(engine::ChatFormat format);

}  // namespace atoma::api
