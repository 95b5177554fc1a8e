// Model synthesis: seeded random Llama-architecture folders for tests and benchmarks.
//
// Weights come from a counter-based generator (SplitMix64 over (seed, tensor name, element)), and
// every float is produced with integer arithmetic plus one rounding multiply, so the files are
// byte-identical on every machine and compiler, and any tensor can be generated in any chunk order
// (the writer streams them; bench-135m never sits in memory).
#include "atoma/engine/synth.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/engine/safetensors.h"
#include "atoma/engine/tokenizer.h"
#include "config_internal.h"
#include "file_util.h"
#include "nlohmann/json.hpp"

namespace atoma::engine {
namespace {

// ---- deterministic normal-ish numbers ----------------------------------------------------------

uint64_t Mix64(uint64_t z) {  // SplitMix64's finalizer
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001B3ull;
  }
  return h;
}

// Stream key of one tensor: the name (not its position) so that toggling an option (untied head,
// biases) leaves every other tensor's values unchanged.
uint64_t TensorKey(uint64_t seed, std::string_view name) {
  return Mix64(Mix64(seed ^ 0x6A09E667F3BCC908ull) ^ Fnv1a64(name));
}

// Irwin-Hall sum of four 16-bit uniforms: mean 131070, standard deviation sqrt(4*(2^32-1)/12).
constexpr double kSumMean = 131070.0;
constexpr double kSumStd = 37837.22678;  // sqrt((65536^2 - 1) / 3)

// Element `i` of a tensor's stream, roughly N(0, 1) (bounded by about ±3.5 sigma, which is fine
// for initial weights), scaled by `scale` = std / kSumStd. One multiply of an exactly
// representable integer: the same bits everywhere.
inline float NormalIsh(uint64_t key, uint64_t i, double scale) {
  uint64_t z = Mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull);
  int64_t s =
      static_cast<int64_t>((z & 0xFFFF) + ((z >> 16) & 0xFFFF) + ((z >> 32) & 0xFFFF) + (z >> 48)) -
      static_cast<int64_t>(kSumMean);
  return static_cast<float>(static_cast<double>(s) * scale);
}

enum class Init { kNormal, kOnesPlusNoise };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  Init init = Init::kNormal;
  uint64_t nbytes() const {
    uint64_t n = 4;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
  }
};

// Weight init scale: 0.02 like Hugging Face's initializer_range; with RMSNorm before every block
// this keeps the residual stream O(1) through 30 layers and the logits spread moderate.
constexpr double kWeightStd = 0.02;
constexpr double kNormNoiseStd = 0.02;

SafetensorsWriter::FillFn MakeFill(uint64_t seed, const TensorSpec& spec) {
  const uint64_t key = TensorKey(seed, spec.name);
  const Init init = spec.init;
  return [key, init](uint64_t byte_offset, std::span<uint8_t> out) {
    const double scale = (init == Init::kNormal ? kWeightStd : kNormNoiseStd) / kSumStd;
    const uint64_t first = byte_offset / 4;
    const size_t n = out.size() / 4;
    float chunk[1024];
    for (size_t done = 0; done < n;) {
      const size_t m = std::min<size_t>(n - done, 1024);
      for (size_t k = 0; k < m; ++k) {
        float v = NormalIsh(key, first + done + k, scale);
        if (init == Init::kOnesPlusNoise) v = 1.0f + v;  // float add, rounded once
        chunk[k] = v;
      }
      std::memcpy(out.data() + done * 4, chunk, m * 4);
      done += m;
    }
  };
}

std::vector<TensorSpec> TensorSpecs(const ModelConfig& c) {
  std::vector<TensorSpec> specs;
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  specs.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    specs.push_back({p + "input_layernorm.weight", {h}, Init::kOnesPlusNoise});
    specs.push_back({p + "self_attn.q_proj.weight", {q, h}});
    specs.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    specs.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (c.attention_bias) {
      specs.push_back({p + "self_attn.q_proj.bias", {q}});
      specs.push_back({p + "self_attn.k_proj.bias", {kv}});
      specs.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    specs.push_back({p + "self_attn.o_proj.weight", {h, q}});
    specs.push_back({p + "post_attention_layernorm.weight", {h}, Init::kOnesPlusNoise});
    specs.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, h}});
    specs.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, h}});
    specs.push_back({p + "mlp.down_proj.weight", {h, c.intermediate_size}});
  }
  specs.push_back({"model.norm.weight", {h}, Init::kOnesPlusNoise});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, h}});
  return specs;
}

// ---- tokenizer ---------------------------------------------------------------------------------

struct SynthTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  std::optional<int64_t> bos;
  std::vector<int64_t> eos;
};

// Trains the preset's tokenizer and reads its special ids back through the real Tokenizer, so
// config.json's bos/eos are by construction the ids the tokenizer uses.
absl::StatusOr<SynthTokenizer> MakeTokenizer(int64_t vocab_size) {
  SynthTokenizer t;
  ASSIGN_OR_RETURN(t.tokenizer_json,
                   TrainByteLevelBpe(BuiltinTrainingCorpus(), static_cast<int>(vocab_size)));
  t.tokenizer_config_json = SynthTokenizerConfigJson();
  ASSIGN_OR_RETURN(auto tok, Tokenizer::FromJson(t.tokenizer_json, t.tokenizer_config_json));
  if (tok->vocab_size() > vocab_size) {
    return absl::InternalError(absl::StrCat("synth tokenizer has ", tok->vocab_size(),
                                            " ids, more than the model's ", vocab_size));
  }
  if (auto bos = tok->bos_id()) t.bos = *bos;
  for (int32_t id : tok->eos_ids()) t.eos.push_back(id);
  return t;
}

// ---- presets -----------------------------------------------------------------------------------

absl::StatusOr<ModelConfig> PresetConfig(absl::string_view preset) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;  // SmolLM style; tests untie with the override
  c.torch_dtype = "float32";
  if (preset == "tiny") {
    c.hidden_size = 64;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.intermediate_size = 176;  // ~8/3 * hidden, rounded up to a multiple of 16 like "small"
    c.vocab_size = 512;
  } else if (preset == "small") {
    c.hidden_size = 256;
    c.num_layers = 4;
    c.num_heads = 8;
    c.num_kv_heads = 4;
    c.intermediate_size = 688;
    c.vocab_size = 2048;
  } else if (preset == "bench-135m") {
    c.hidden_size = 576;
    c.num_layers = 30;
    c.num_heads = 9;
    c.num_kv_heads = 3;
    c.intermediate_size = 1536;
    c.vocab_size = 49152;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown synth preset '", preset, "' (tiny, small, bench-135m)"));
  }
  c.head_dim = c.hidden_size / c.num_heads;
  return c;
}

absl::StatusOr<ModelConfig> ConfigWithoutTokens(const SynthOptions& o) {
  ASSIGN_OR_RETURN(ModelConfig c, PresetConfig(o.preset));
  if (o.attention_bias) c.attention_bias = *o.attention_bias;
  if (o.tie_word_embeddings) c.tie_word_embeddings = *o.tie_word_embeddings;
  if (o.num_kv_heads) c.num_kv_heads = *o.num_kv_heads;
  if (o.rope_scaling) c.rope_scaling = *o.rope_scaling;
  RETURN_IF_ERROR(modelio::ValidateModelConfig(c));
  return c;
}

// Deletes weight files a previous synthesis may have left (a sharded run after a single one, or
// fewer shards), so the folder holds exactly what this run wrote: WeightStore prefers an index,
// and the model digest covers every *.safetensors.
void RemoveStaleWeights(const std::filesystem::path& dir, const std::vector<std::string>& keep) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name == "model.safetensors" || name == "model.safetensors.index.json" ||
                      (name.starts_with("model-") && name.ends_with(".safetensors") &&
                       name.find("-of-") != std::string::npos);
    if (ours && std::find(keep.begin(), keep.end(), name) == keep.end()) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

}  // namespace

absl::StatusOr<ModelConfig> SynthConfig(const SynthOptions& options) {
  ASSIGN_OR_RETURN(ModelConfig c, ConfigWithoutTokens(options));
  ASSIGN_OR_RETURN(SynthTokenizer tok, MakeTokenizer(c.vocab_size));
  c.bos_token_id = tok.bos;
  c.eos_token_ids = tok.eos;
  RETURN_IF_ERROR(modelio::ValidateModelConfig(c));
  return c;
}

absl::Status SynthesizeModel(const SynthOptions& options) {
  auto log = GetLogger("engine");
  if (options.out_dir.empty()) return absl::InvalidArgumentError("synth: out_dir is empty");
  ASSIGN_OR_RETURN(ModelConfig config, ConfigWithoutTokens(options));
  ASSIGN_OR_RETURN(SynthTokenizer tok, MakeTokenizer(config.vocab_size));
  config.bos_token_id = tok.bos;
  config.eos_token_ids = tok.eos;
  RETURN_IF_ERROR(modelio::ValidateModelConfig(config));

  const std::vector<TensorSpec> specs = TensorSpecs(config);
  const int n = options.shards;
  if (n < 1 || static_cast<size_t>(n) > specs.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("synth: shards must be in [1, ", specs.size(), "], got ", n));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("creating ", options.out_dir.string(), ": ", ec.message()));
  }

  // Assign tensors to shards in order, splitting by bytes, while keeping every shard non-empty.
  uint64_t total_bytes = 0;
  for (const auto& s : specs) total_bytes += s.nbytes();
  std::vector<SafetensorsWriter> writers(static_cast<size_t>(n));
  std::vector<std::string> file_names;
  for (int k = 0; k < n; ++k) {
    file_names.push_back(n == 1 ? std::string("model.safetensors")
                                : absl::StrFormat("model-%05d-of-%05d.safetensors", k + 1, n));
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  {
    uint64_t before = 0;
    int prev = -1;
    const int64_t count = static_cast<int64_t>(specs.size());
    for (int64_t i = 0; i < count; ++i) {
      const TensorSpec& s = specs[static_cast<size_t>(i)];
      int want = static_cast<int>(std::min<uint64_t>(n - 1, before * n / total_bytes));
      int lo = std::max<int>(prev, n - static_cast<int>(count - i));
      int k = std::clamp(want, lo, prev + 1);
      RETURN_IF_ERROR(writers[static_cast<size_t>(k)].AddGenerated(s.name, DType::kF32, s.shape,
                                                                   MakeFill(options.seed, s)));
      weight_map[s.name] = file_names[static_cast<size_t>(k)];
      before += s.nbytes();
      prev = k;
    }
  }

  uint64_t file_total = 0;
  for (auto& w : writers) {
    w.SetMetadata("format", "pt");
    file_total += w.FileSize();
  }
  uint64_t file_done = 0;
  if (options.progress) options.progress(0.0);
  for (int k = 0; k < n; ++k) {
    SafetensorsWriter& w = writers[static_cast<size_t>(k)];
    if (options.progress) {
      w.SetProgress([&](uint64_t written, uint64_t) {
        options.progress(static_cast<double>(file_done + written) /
                         static_cast<double>(file_total));
      });
    }
    RETURN_IF_ERROR(w.Write(options.out_dir / file_names[static_cast<size_t>(k)]));
    file_done += w.FileSize();
  }
  if (n > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total_bytes}}},
                                    {"weight_map", weight_map}};
    RETURN_IF_ERROR(modelio::WriteFileAtomically(options.out_dir / "model.safetensors.index.json",
                                                 index.dump(2) + "\n"));
  }
  std::vector<std::string> keep = file_names;
  if (n > 1) keep.push_back("model.safetensors.index.json");
  RemoveStaleWeights(options.out_dir, keep);

  RETURN_IF_ERROR(
      modelio::WriteFileAtomically(options.out_dir / "tokenizer.json", tok.tokenizer_json));
  RETURN_IF_ERROR(modelio::WriteFileAtomically(options.out_dir / "tokenizer_config.json",
                                               tok.tokenizer_config_json));
  RETURN_IF_ERROR(modelio::WriteFileAtomically(options.out_dir / "config.json",
                                               modelio::ModelConfigToJson(config)));
  if (options.progress) options.progress(1.0);
  log->info("synthesized {} model (seed {}) in {}: {} tensors, {} bytes of weights in {} file(s)",
            options.preset, options.seed, options.out_dir.string(), specs.size(), total_bytes, n);
  return absl::OkStatus();
}

}  // namespace atoma::engine
