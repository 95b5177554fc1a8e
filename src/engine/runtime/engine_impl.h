// Internal to atoma_engine: the one constructor both Engine::Make overloads go through.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "atoma/engine/engine.h"

namespace atoma::engine::internal {

// Validates `options` against the runner, takes ownership of `runner` and `tokenizer` (which may
// be null), and starts the scheduler thread. `info.config` and `info.path_description` are filled
// from the runner; the other fields of `info` are kept as given.
absl::StatusOr<std::unique_ptr<Engine>> MakeEngine(const EngineOptions& options,
                                                   std::unique_ptr<ModelRunner> runner,
                                                   std::unique_ptr<Tokenizer> tokenizer,
                                                   ModelInfo info);

}  // namespace atoma::engine::internal
