// Internal to atoma_modelio: checks shared by ParseModelConfig and model synthesis, and the
// config.json writer synthesis uses.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "atoma/engine/model.h"

namespace atoma::engine::modelio {

// The invariants every config must hold (positive sizes, heads divide hidden, KV heads divide
// heads, supported rope scaling, token ids inside the vocabulary). INVALID_ARGUMENT names the
// config.json key.
absl::Status ValidateModelConfig(const ModelConfig& config);

// config.json text (Hugging Face key names, pretty-printed, keys sorted) that ParseModelConfig
// reads back to `config`.
std::string ModelConfigToJson(const ModelConfig& config);

}  // namespace atoma::engine::modelio
