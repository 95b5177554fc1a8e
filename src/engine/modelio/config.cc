// ParseModelConfig: Hugging Face config.json for the Llama family (Llama 2/3.x, Mistral, Qwen2).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/engine/model.h"
#include "config_internal.h"
#include "nlohmann/json.hpp"

namespace atoma::engine {
namespace {

using nlohmann::json;

// Sizes above this are certainly corrupt, and staying below it keeps products of two sizes
// (e.g. vocab * hidden) far from int64 overflow in the code that allocates them.
constexpr int64_t kMaxDim = int64_t{1} << 30;

absl::Status Bad(absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: '", key, "' ", what));
}

std::string Shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 80) + "...";
  return s;
}

// The value at `key`, or nullptr when absent or null (HF writes null for "use the default").
const json* Find(const json& obj, absl::string_view key) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<int64_t> GetInt(const json& obj, absl::string_view key,
                               std::optional<int64_t> dflt) {
  const json* v = Find(obj, key);
  if (v == nullptr) {
    if (dflt) return *dflt;
    return Bad(key, "is missing");
  }
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Bad(key, absl::StrCat("is out of range: ", Shown(*v)));
    }
    return static_cast<int64_t>(u);
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  return Bad(key, absl::StrCat("must be an integer, got ", Shown(*v)));
}

absl::StatusOr<int64_t> GetSize(const json& obj, absl::string_view key,
                                std::optional<int64_t> dflt) {
  ASSIGN_OR_RETURN(int64_t v, GetInt(obj, key, dflt));
  if (v <= 0 || v > kMaxDim) {
    return Bad(key, absl::StrCat("must be a positive size no larger than ", kMaxDim, ", got ", v));
  }
  return v;
}

absl::StatusOr<double> GetPositiveDouble(const json& obj, absl::string_view key, double dflt) {
  const json* v = Find(obj, key);
  if (v == nullptr) return dflt;
  if (!v->is_number()) return Bad(key, absl::StrCat("must be a number, got ", Shown(*v)));
  double d = v->get<double>();
  if (!std::isfinite(d) || d <= 0) {
    return Bad(key, absl::StrCat("must be a positive number, got ", Shown(*v)));
  }
  return d;
}

absl::StatusOr<bool> GetBool(const json& obj, absl::string_view key, bool dflt) {
  const json* v = Find(obj, key);
  if (v == nullptr) return dflt;
  if (!v->is_boolean()) return Bad(key, absl::StrCat("must be true or false, got ", Shown(*v)));
  return v->get<bool>();
}

absl::StatusOr<std::string> GetArchitecture(const json& j) {
  static constexpr std::pair<const char*, const char*> kSupported[] = {
      {"LlamaForCausalLM", "llama"},
      {"MistralForCausalLM", "mistral"},
      {"Qwen2ForCausalLM", "qwen2"},
  };
  const json* archs = Find(j, "architectures");
  if (archs != nullptr) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      return Bad("architectures", absl::StrCat("must be a list of names, got ", Shown(*archs)));
    }
    const std::string& name = (*archs)[0].get_ref<const std::string&>();
    for (const auto& [arch, unused] : kSupported) {
      if (name == arch) return name;
    }
    return absl::UnimplementedError(absl::StrCat(
        "config.json: architecture '", name,
        "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM are)"));
  }
  // Some hand-written configs carry only model_type.
  const json* type = Find(j, "model_type");
  if (type == nullptr) return Bad("architectures", "is missing (and so is model_type)");
  if (!type->is_string()) return Bad("model_type", absl::StrCat("must be a string"));
  for (const auto& [arch, model_type] : kSupported) {
    if (type->get_ref<const std::string&>() == model_type) return std::string(arch);
  }
  return absl::UnimplementedError(absl::StrCat("config.json: model_type ", Shown(*type),
                                               " is not supported (llama, mistral, qwen2 are)"));
}

absl::StatusOr<std::optional<RopeScaling>> GetRopeScaling(const json& j) {
  const json* rs = Find(j, "rope_scaling");
  if (rs == nullptr) return std::nullopt;
  if (!rs->is_object()) return Bad("rope_scaling", absl::StrCat("must be an object or null"));
  // Newer configs say rope_type, older ones type.
  const json* type = Find(*rs, "rope_type");
  std::string key = "rope_scaling.rope_type";
  if (type == nullptr) {
    type = Find(*rs, "type");
    key = "rope_scaling.type";
  }
  if (type == nullptr) return Bad("rope_scaling.rope_type", "is missing");
  if (!type->is_string()) return Bad(key, absl::StrCat("must be a string, got ", Shown(*type)));
  const std::string& name = type->get_ref<const std::string&>();
  // "default" is HF's name for plain RoPE, i.e. no scaling.
  if (name == "default") return std::nullopt;
  if (name != "llama3") {
    return absl::UnimplementedError(absl::StrCat("config.json: rope_scaling type '", name,
                                                 "' is not supported (only llama3 is)"));
  }
  RopeScaling s;
  s.type = name;
  const RopeScaling defaults;
  auto num = [&](absl::string_view k, double dflt) -> absl::StatusOr<double> {
    auto r = GetPositiveDouble(*rs, k, dflt);
    if (!r.ok()) return Bad(absl::StrCat("rope_scaling.", k), "must be a positive number");
    return r;
  };
  ASSIGN_OR_RETURN(s.factor, num("factor", defaults.factor));
  ASSIGN_OR_RETURN(s.low_freq_factor, num("low_freq_factor", defaults.low_freq_factor));
  ASSIGN_OR_RETURN(s.high_freq_factor, num("high_freq_factor", defaults.high_freq_factor));
  auto orig =
      GetSize(*rs, "original_max_position_embeddings", defaults.original_max_position_embeddings);
  if (!orig.ok()) {
    return Bad("rope_scaling.original_max_position_embeddings", "must be a positive integer");
  }
  s.original_max_position_embeddings = *orig;
  if (s.high_freq_factor <= s.low_freq_factor) {
    return Bad("rope_scaling.high_freq_factor", "must be larger than low_freq_factor");
  }
  return s;
}

absl::StatusOr<std::vector<int64_t>> GetTokenIds(const json& j, absl::string_view key) {
  const json* v = Find(j, key);
  std::vector<int64_t> ids;
  if (v == nullptr) return ids;
  auto one = [&](const json& e) -> absl::Status {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 ||
        e.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return Bad(key, absl::StrCat("must be a token id or a list of them, got ", Shown(*v)));
    }
    ids.push_back(e.get<int64_t>());
    return absl::OkStatus();
  };
  if (v->is_array()) {
    for (const json& e : *v) RETURN_IF_ERROR(one(e));
  } else {
    RETURN_IF_ERROR(one(*v));
  }
  return ids;
}

absl::StatusOr<ModelConfig> ParseObject(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");
  ModelConfig c;
  ASSIGN_OR_RETURN(c.architecture, GetArchitecture(j));
  ASSIGN_OR_RETURN(c.hidden_size, GetSize(j, "hidden_size", std::nullopt));
  ASSIGN_OR_RETURN(c.intermediate_size, GetSize(j, "intermediate_size", std::nullopt));
  ASSIGN_OR_RETURN(c.num_layers, GetSize(j, "num_hidden_layers", std::nullopt));
  ASSIGN_OR_RETURN(c.num_heads, GetSize(j, "num_attention_heads", std::nullopt));
  ASSIGN_OR_RETURN(c.num_kv_heads, GetSize(j, "num_key_value_heads", c.num_heads));
  ASSIGN_OR_RETURN(c.vocab_size, GetSize(j, "vocab_size", std::nullopt));
  // head_dim defaults to hidden / heads; checked for divisibility in ValidateModelConfig, so do
  // the division only when it is exact to keep the default meaningful in the error.
  ASSIGN_OR_RETURN(c.head_dim,
                   GetSize(j, "head_dim", std::max<int64_t>(1, c.hidden_size / c.num_heads)));
  ASSIGN_OR_RETURN(c.max_position_embeddings,
                   GetSize(j, "max_position_embeddings", ModelConfig{}.max_position_embeddings));
  ASSIGN_OR_RETURN(c.rms_norm_eps,
                   GetPositiveDouble(j, "rms_norm_eps", ModelConfig{}.rms_norm_eps));
  ASSIGN_OR_RETURN(c.rope_theta, GetPositiveDouble(j, "rope_theta", ModelConfig{}.rope_theta));
  ASSIGN_OR_RETURN(c.rope_scaling, GetRopeScaling(j));
  ASSIGN_OR_RETURN(c.tie_word_embeddings, GetBool(j, "tie_word_embeddings", false));
  if (c.architecture == "Qwen2ForCausalLM") {
    // Qwen2 always has q/k/v bias; its config has no key for it.
    c.attention_bias = true;
  } else if (c.architecture == "LlamaForCausalLM") {
    ASSIGN_OR_RETURN(c.attention_bias, GetBool(j, "attention_bias", false));
  }
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype".
  const json* dtype = Find(j, "torch_dtype");
  const char* dtype_key = "torch_dtype";
  if (dtype == nullptr) {
    dtype = Find(j, "dtype");
    dtype_key = "dtype";
  }
  if (dtype != nullptr) {
    if (!dtype->is_string()) return Bad(dtype_key, absl::StrCat("must be a string"));
    c.torch_dtype = dtype->get<std::string>();
  }
  // Sliding-window attention (Mistral v0.1; Qwen2 when use_sliding_window is true) equals the full
  // attention we compute for sequences no longer than the window, so cap the context there
  // instead of silently computing something else past it.
  const bool sliding = c.architecture == "MistralForCausalLM" ||
                       (c.architecture == "Qwen2ForCausalLM" &&
                        GetBool(j, "use_sliding_window", false).value_or(false));
  if (sliding && Find(j, "sliding_window") != nullptr) {
    ASSIGN_OR_RETURN(int64_t window, GetSize(j, "sliding_window", std::nullopt));
    c.max_position_embeddings = std::min(c.max_position_embeddings, window);
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> bos, GetTokenIds(j, "bos_token_id"));
  if (bos.size() > 1) return Bad("bos_token_id", "must be a single token id");
  if (!bos.empty()) c.bos_token_id = bos[0];
  ASSIGN_OR_RETURN(c.eos_token_ids, GetTokenIds(j, "eos_token_id"));
  RETURN_IF_ERROR(modelio::ValidateModelConfig(c));
  return c;
}

}  // namespace

namespace modelio {

absl::Status ValidateModelConfig(const ModelConfig& c) {
  auto positive = [](absl::string_view key, int64_t v) -> absl::Status {
    if (v <= 0 || v > kMaxDim) return Bad(key, absl::StrCat("must be a positive size, got ", v));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(positive("hidden_size", c.hidden_size));
  RETURN_IF_ERROR(positive("intermediate_size", c.intermediate_size));
  RETURN_IF_ERROR(positive("num_hidden_layers", c.num_layers));
  RETURN_IF_ERROR(positive("num_attention_heads", c.num_heads));
  RETURN_IF_ERROR(positive("num_key_value_heads", c.num_kv_heads));
  RETURN_IF_ERROR(positive("head_dim", c.head_dim));
  RETURN_IF_ERROR(positive("vocab_size", c.vocab_size));
  RETURN_IF_ERROR(positive("max_position_embeddings", c.max_position_embeddings));
  if (c.hidden_size % c.num_heads != 0) {
    return Bad("num_attention_heads",
               absl::StrCat("(", c.num_heads, ") must divide hidden_size (", c.hidden_size, ")"));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return Bad(
        "num_key_value_heads",
        absl::StrCat("(", c.num_kv_heads, ") must divide num_attention_heads (", c.num_heads, ")"));
  }
  if (c.head_dim % 2 != 0) {
    return Bad("head_dim", absl::StrCat("must be even for rotary embeddings, got ", c.head_dim));
  }
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    return Bad("rms_norm_eps", "must be a positive number");
  }
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    return Bad("rope_theta", "must be a positive number");
  }
  if (c.rope_scaling && c.rope_scaling->type != "llama3") {
    return absl::UnimplementedError(absl::StrCat("config.json: rope_scaling type '",
                                                 c.rope_scaling->type,
                                                 "' is not supported (only llama3 is)"));
  }
  if (c.bos_token_id && (*c.bos_token_id < 0 || *c.bos_token_id >= c.vocab_size)) {
    return Bad("bos_token_id",
               absl::StrCat(*c.bos_token_id, " is outside the vocabulary (", c.vocab_size, ")"));
  }
  for (int64_t id : c.eos_token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return Bad("eos_token_id",
                 absl::StrCat(id, " is outside the vocabulary (", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

std::string ModelConfigToJson(const ModelConfig& c) {
  json j = json::object();
  j["architectures"] = json::array({c.architecture});
  static constexpr std::pair<const char*, const char*> kModelType[] = {
      {"LlamaForCausalLM", "llama"},
      {"MistralForCausalLM", "mistral"},
      {"Qwen2ForCausalLM", "qwen2"},
  };
  for (const auto& [arch, type] : kModelType) {
    if (c.architecture == arch) j["model_type"] = type;
  }
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = c.torch_dtype;
  if (c.rope_scaling) {
    j["rope_scaling"] = {
        {"rope_type", c.rope_scaling->type},
        {"factor", c.rope_scaling->factor},
        {"low_freq_factor", c.rope_scaling->low_freq_factor},
        {"high_freq_factor", c.rope_scaling->high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling->original_max_position_embeddings},
    };
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    j["eos_token_id"] = c.eos_token_ids;
  }
  return j.dump(2) + "\n";
}

}  // namespace modelio

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view config_json) {
  try {
    json j = json::parse(config_json.begin(), config_json.end(), nullptr,
                         /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError("config.json: not valid JSON");
    return ParseObject(j);
  } catch (const std::exception& e) {
    // get<>() on a checked value should not throw; this keeps a library surprise from crashing us.
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", e.what()));
  }
}

}  // namespace atoma::engine
