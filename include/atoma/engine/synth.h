// Synthesized test models: a seeded random Llama-architecture folder (config.json,
// model.safetensors, tokenizer.json with a real byte-level BPE trained on built-in text,
// tokenizer_config.json with a ChatML chat format). The loader reads it with the same code that
// reads real checkpoints. No torch here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "atoma/engine/model.h"

namespace atoma::engine {

struct SynthOptions {
  // "tiny" (hidden 64, 2 layers, 4 heads, 2 KV heads, vocab 512 — for unit tests),
  // "small" (hidden 256, 4 layers, 8 heads, 4 KV heads, intermediate 688, vocab 2048),
  // "bench-135m" (SmolLM-135M shape: hidden 576, 30 layers, 9 heads, 3 KV heads,
  //               intermediate 1536, vocab 49152, tied embeddings).
  std::string preset = "tiny";
  uint64_t seed = 0;
  std::filesystem::path out_dir;
  // Overrides for tests: Qwen2-style q/k/v bias, untied embeddings, no GQA, rope scaling, shards.
  std::optional<bool> attention_bias;
  std::optional<bool> tie_word_embeddings;
  std::optional<int64_t> num_kv_heads;
  std::optional<RopeScaling> rope_scaling;
  int shards = 1;  // >1 writes model-0000i-of-0000n.safetensors plus the index file
  // Called with progress in [0, 1] while writing (may be empty).
  std::function<void(double)> progress;
};

// The config a preset (with overrides) produces.
absl::StatusOr<ModelConfig> SynthConfig(const SynthOptions& options);

// Writes the folder (created if missing; existing model files are replaced atomically).
// Same options → byte-identical files.
absl::Status SynthesizeModel(const SynthOptions& options);

}  // namespace atoma::engine
