// Synthesized test models: a seeded random Llama-architecture folder (config.json,
// model.safetensors, tokenizer.json with a real byte-level BPE trained on built-in text,
// tokenizer_config.json with a ChatML chat format). The loader reads it with the same code that
// reads real checkpoints. No torch here.
//
// Weights are F32 from a counter-based generator (SplitMix64 over seed, tensor name and element
// index, integer arithmetic and one rounding multiply), so a given (preset, overrides, seed)
// produces byte-identical files on every machine. Projections and embeddings are normal-ish with
// std 0.02, RMSNorm weights 1 plus noise of std 0.02; this keeps the residual stream O(1) through
// 30 layers. A tensor's values depend only on the seed and its name, so an override (untied head,
// biases, shards) leaves the other tensors unchanged. config.json's bos/eos ids are read back from
// the trained tokenizer (no BOS; EOS <|im_end|>). The built-in corpus supports about 2.3k BPE ids,
// so bench-135m's tokenizer covers only the low ids of its 49152-entry vocabulary; the rest exist
// in the weights but have no text.
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
  // All presets: LlamaForCausalLM, tied embeddings, rope_theta 10000, rms_norm_eps 1e-5,
  // max_position_embeddings 2048.
  // "tiny" (hidden 64, 2 layers, 4 heads, 2 KV heads, intermediate 176, vocab 512 — unit tests),
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
  // >1 writes model-0000i-of-0000n.safetensors plus the index file (tensors in order, split by
  // bytes, no shard empty); at most the number of tensors.
  int shards = 1;
  // Called with progress in [0, 1] while writing, non-decreasing, first 0 and last 1 (may be
  // empty).
  std::function<void(double)> progress;
};

// The config a preset (with overrides) produces, exactly what SynthesizeModel writes to
// config.json. INVALID_ARGUMENT for an unknown preset or overrides that break the invariants
// (e.g. KV heads not dividing heads); UNIMPLEMENTED for a rope scaling other than llama3.
absl::StatusOr<ModelConfig> SynthConfig(const SynthOptions& options);

// Writes the folder (created if missing; each file is replaced atomically; weight files of an
// earlier synthesis that this one does not write — shards, index — are removed). Same options →
// byte-identical files. Streams the weights: memory stays small whatever the preset
// (bench-135m: 538 MB written in ~3.5 s on the 2-core dev machine).
absl::Status SynthesizeModel(const SynthOptions& options);

}  // namespace atoma::engine
