// ParseModelConfig against config.json texts shaped like the real checkpoints we serve.
#include <string>

#include "atoma/engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atoma::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// meta-llama/Llama-3.2-1B-Instruct
constexpr char kLlama32[] = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 8192,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 16,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

// Qwen/Qwen2.5-0.5B-Instruct
constexpr char kQwen25[] = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 21,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

// mistralai/Mistral-7B-v0.1
constexpr char kMistral[] = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

// TinyLlama/TinyLlama-1.1B-Chat-v1.0
constexpr char kTinyLlama[] = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 22,
  "num_key_value_heads": 4,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.35.0",
  "use_cache": true,
  "vocab_size": 32000
})";

// HuggingFaceTB/SmolLM-135M
constexpr char kSmolLM[] = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 0,
  "eos_token_id": 0,
  "hidden_act": "silu",
  "hidden_size": 576,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 9,
  "num_hidden_layers": 30,
  "num_key_value_heads": 3,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "float32",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "vocab_size": 49152
})";

TEST(ParseModelConfigTest, Llama32) {
  auto c = ParseModelConfig(kLlama32);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->hidden_size, 2048);
  EXPECT_EQ(c->intermediate_size, 8192);
  EXPECT_EQ(c->num_layers, 16);
  EXPECT_EQ(c->num_heads, 32);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 128256);
  EXPECT_EQ(c->max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->type, "llama3");
  EXPECT_DOUBLE_EQ(c->rope_scaling->factor, 32.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->bos_token_id, 128000);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(128001, 128008, 128009));
}

TEST(ParseModelConfigTest, Qwen25HasAttentionBias) {
  auto c = ParseModelConfig(kQwen25);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(c->attention_bias);
  EXPECT_EQ(c->num_heads, 14);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);  // 896 / 14, no head_dim key
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_FALSE(c->rope_scaling.has_value());
  EXPECT_EQ(c->max_position_embeddings, 32768);  // use_sliding_window is false
  EXPECT_THAT(c->eos_token_ids, ElementsAre(151645));
}

TEST(ParseModelConfigTest, MistralCapsContextAtSlidingWindow) {
  auto c = ParseModelConfig(kMistral);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "MistralForCausalLM");
  EXPECT_FALSE(c->attention_bias);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->intermediate_size, 14336);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(2));
}

TEST(ParseModelConfigTest, TinyLlamaNullRopeScaling) {
  auto c = ParseModelConfig(kTinyLlama);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->rope_scaling.has_value());
  EXPECT_EQ(c->num_kv_heads, 4);
  EXPECT_EQ(c->num_layers, 22);
  EXPECT_EQ(c->max_position_embeddings, 2048);
}

TEST(ParseModelConfigTest, SmolLM) {
  auto c = ParseModelConfig(kSmolLM);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 576);
  EXPECT_EQ(c->num_heads, 9);
  EXPECT_EQ(c->num_kv_heads, 3);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->vocab_size, 49152);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, "float32");
  EXPECT_EQ(c->bos_token_id, 0);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(0));
}

// A minimal config exercising the defaults.
TEST(ParseModelConfigTest, Defaults) {
  auto c = ParseModelConfig(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,
      "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 4);  // defaults to num_attention_heads
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->torch_dtype, "float32");
  EXPECT_FALSE(c->bos_token_id.has_value());
  EXPECT_TRUE(c->eos_token_ids.empty());
}

std::string Patch(std::string base, const std::string& from, const std::string& to) {
  size_t at = base.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) base.replace(at, from.size(), to);
  return base;
}

TEST(ParseModelConfigTest, AlternateSpellings) {
  // Older configs say "type" for the rope scaling kind; newer transformers write "dtype".
  auto c = ParseModelConfig(Patch(kLlama32, "\"rope_type\": \"llama3\"", "\"type\": \"llama3\""));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling->type, "llama3");
  c = ParseModelConfig(Patch(kSmolLM, "\"torch_dtype\"", "\"dtype\""));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->torch_dtype, "float32");
  // rope_type "default" is plain RoPE.
  c = ParseModelConfig(
      Patch(kSmolLM, "\"rope_scaling\": null", R"("rope_scaling": {"rope_type": "default"})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->rope_scaling.has_value());
  // model_type alone names the architecture.
  c = ParseModelConfig(Patch(kQwen25, "\"architectures\": [\"Qwen2ForCausalLM\"],", ""));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(c->attention_bias);
  // Llama with attention_bias: true.
  c = ParseModelConfig(Patch(kTinyLlama, "\"attention_bias\": false", "\"attention_bias\": true"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->attention_bias);
}

struct BadConfigCase {
  const char* label;
  const char* base;
  const char* from;
  const char* to;
  absl::StatusCode code;
  const char* must_mention;
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, RejectedNamingTheKey) {
  const BadConfigCase& p = GetParam();
  auto c = ParseModelConfig(Patch(p.base, p.from, p.to));
  ASSERT_FALSE(c.ok()) << p.label;
  EXPECT_EQ(c.status().code(), p.code) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(p.must_mention)) << c.status();
}

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
constexpr auto kUnimpl = absl::StatusCode::kUnimplemented;

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfigTest,
    ::testing::Values(
        BadConfigCase{"not_json", kSmolLM, "\"vocab_size\": 49152\n}", "\"vocab_size\": 49152",
                      kInvalid, "JSON"},
        BadConfigCase{"not_object", kSmolLM, kSmolLM, "[1, 2]", kInvalid, "object"},
        BadConfigCase{"missing_hidden", kSmolLM, "\"hidden_size\": 576,", "", kInvalid,
                      "'hidden_size' is missing"},
        BadConfigCase{"string_hidden", kSmolLM, "\"hidden_size\": 576", "\"hidden_size\": \"576\"",
                      kInvalid, "'hidden_size'"},
        BadConfigCase{"float_layers", kSmolLM, "\"num_hidden_layers\": 30",
                      "\"num_hidden_layers\": 30.5", kInvalid, "'num_hidden_layers'"},
        BadConfigCase{"zero_vocab", kSmolLM, "\"vocab_size\": 49152", "\"vocab_size\": 0", kInvalid,
                      "'vocab_size'"},
        BadConfigCase{"negative_intermediate", kSmolLM, "\"intermediate_size\": 1536",
                      "\"intermediate_size\": -1536", kInvalid, "'intermediate_size'"},
        BadConfigCase{"heads_do_not_divide_hidden", kSmolLM, "\"num_attention_heads\": 9",
                      "\"num_attention_heads\": 7", kInvalid, "'num_attention_heads'"},
        BadConfigCase{"kv_heads_do_not_divide_heads", kSmolLM, "\"num_key_value_heads\": 3",
                      "\"num_key_value_heads\": 2", kInvalid, "'num_key_value_heads'"},
        BadConfigCase{"unsupported_architecture", kSmolLM, "LlamaForCausalLM", "GemmaForCausalLM",
                      kUnimpl, "GemmaForCausalLM"},
        BadConfigCase{"architectures_not_list", kSmolLM, "[\"LlamaForCausalLM\"]", "7", kInvalid,
                      "'architectures'"},
        BadConfigCase{"rope_linear", kTinyLlama, "\"rope_scaling\": null",
                      R"("rope_scaling": {"type": "linear", "factor": 2.0})", kUnimpl, "linear"},
        BadConfigCase{"rope_yarn", kLlama32, "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"",
                      kUnimpl, "yarn"},
        BadConfigCase{"rope_dynamic", kTinyLlama, "\"rope_scaling\": null",
                      R"("rope_scaling": {"type": "dynamic", "factor": 2.0})", kUnimpl, "dynamic"},
        BadConfigCase{"rope_no_type", kTinyLlama, "\"rope_scaling\": null",
                      R"("rope_scaling": {"factor": 2.0})", kInvalid, "rope_scaling.rope_type"},
        BadConfigCase{"rope_not_object", kTinyLlama, "\"rope_scaling\": null",
                      "\"rope_scaling\": 2", kInvalid, "'rope_scaling'"},
        BadConfigCase{"rope_bad_factor", kLlama32, "\"factor\": 32.0", "\"factor\": -1", kInvalid,
                      "rope_scaling.factor"},
        BadConfigCase{"eos_string", kMistral, "\"eos_token_id\": 2", "\"eos_token_id\": \"</s>\"",
                      kInvalid, "'eos_token_id'"},
        BadConfigCase{"eos_outside_vocab", kMistral, "\"eos_token_id\": 2",
                      "\"eos_token_id\": 32000", kInvalid, "'eos_token_id'"},
        BadConfigCase{"bos_list", kMistral, "\"bos_token_id\": 1", "\"bos_token_id\": [1, 2]",
                      kInvalid, "'bos_token_id'"},
        BadConfigCase{"negative_eps", kMistral, "\"rms_norm_eps\": 1e-05",
                      "\"rms_norm_eps\": -1e-05", kInvalid, "'rms_norm_eps'"},
        BadConfigCase{"tie_not_bool", kMistral, "\"tie_word_embeddings\": false",
                      "\"tie_word_embeddings\": \"no\"", kInvalid, "'tie_word_embeddings'"},
        BadConfigCase{"odd_head_dim", kLlama32, "\"head_dim\": 64", "\"head_dim\": 63", kInvalid,
                      "'head_dim'"},
        BadConfigCase{"huge_size", kSmolLM, "\"vocab_size\": 49152",
                      "\"vocab_size\": 99999999999999999999", kInvalid, "'vocab_size'"}),
    [](const auto& param_info) { return std::string(param_info.param.label); });

}  // namespace
}  // namespace atoma::engine
