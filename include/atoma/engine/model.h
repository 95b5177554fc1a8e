// The model: Llama-family configuration, loading from a Hugging Face folder, and ModelRunner, the
// seam the scheduler drives (a fake runner can replace it in tests).
//
// Determinism contract (DESIGN §3): for a given sequence, the logits a runner returns depend only
// on that sequence's tokens, never on which other sequences share a Decode call, their order, or
// the thread count; Prefill depends only on the tokens passed, and a prompt prefilled in several
// calls whose lengths are multiples of RunnerOptions::prefill_chunk (the last excepted) gives the
// same bits as one call (the engine slices long prompts so).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/crypto/sha256.h"

namespace atoma::engine {

struct RopeScaling {
  // "llama3" is the one scaling we implement; anything else is rejected at load.
  std::string type;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless config.json sets head_dim
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v bias (Qwen2 always; Llama when attention_bias: true)
  std::string torch_dtype = "float32";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
};

// Parses config.json text. INVALID_ARGUMENT names the key that is missing or wrong; UNIMPLEMENTED
// names an unsupported architecture or rope scaling. The architecture comes from `architectures`,
// else from `model_type`; the dtype from `torch_dtype`, else `dtype`. `rope_scaling` may be null,
// `rope_type`/`type` "llama3", or "default" (Hugging Face's name for no scaling). Where a model
// uses sliding-window attention (Mistral; Qwen2 with use_sliding_window), max_position_embeddings
// is capped at the window: up to that length full attention computes the same thing, and we do not
// implement the window itself.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view config_json);

// SHA-256 over the model's files in a defined order (config.json, tokenizer.json,
// tokenizer_config.json if present, model.safetensors.index.json if present, then *.safetensors
// sorted by name), each framed as (uint32 BE name length, name, uint64 BE size, bytes). It names
// the model on the ledger, so it covers every byte the loader reads: the index decides which
// shard each tensor comes from, and the loader refuses an index that names a shard whose name
// does not end in ".safetensors" (a file the digest would not cover).
//
// `progress`, when set, is called on the calling thread with (bytes hashed, total bytes of the
// files): first (0, total), then after each 1 MiB read, last (total, total) on success. Hashing a
// multi-GB folder takes a while; `atoma-cli model digest` draws a progress bar with it.
using DigestProgressFn = std::function<void(uint64_t hashed, uint64_t total)>;
absl::StatusOr<crypto::Hash256> ComputeModelDigest(const std::filesystem::path& dir,
                                                   const DigestProgressFn& progress = nullptr);

enum class DecodeKernel {
  kAuto,      // AVX2/FMA when the CPU has it, else portable (both fixed-order, batch-invariant)
  kAvx2,      // fixed-order AVX2/FMA kernel; FAILED_PRECONDITION on a CPU without it
  kPortable,  // fixed-order scalar kernel, same order on every CPU
  kTorch,     // libtorch GEMM: fastest on some shapes, NOT batch-invariant (benchmarks only); on
              // CUDA the tensor decode path without padding
  kPadded,    // the tensor decode path with the batch padded to max_batch rows: what CUDA runs
              // (auto there); on CPU it runs that code in float32 or bfloat16 for tests
};

// "auto" | "avx2" | "portable" | "torch" | "padded".
const char* DecodeKernelName(DecodeKernel kernel);
// The inverse of DecodeKernelName; INVALID_ARGUMENT naming the choices for anything else.
absl::StatusOr<DecodeKernel> ParseDecodeKernel(std::string_view name);

struct RunnerOptions {
  std::string device = "auto";  // "cpu" | "cuda" | "cuda:N" | "auto" (cuda when available)
  // Run dtype: "float32" on CPU (bf16 matmul is ~30x slower there; "bfloat16" only with
  // DecodeKernel::kPadded, to test the CUDA path's code); "bfloat16"/"float16"/"float32" on CUDA
  // ("auto" = bfloat16 on CUDA, float32 on CPU).
  std::string dtype = "auto";
  // Intra-op threads, fixed for the process (at::set_num_threads at load, and the decode GEMM's
  // own pool); 0 = hardware concurrency. OpenBLAS keeps its own pool: start the process with
  // OPENBLAS_NUM_THREADS equal to this (and OMP_WAIT_POLICY=PASSIVE on small machines, so idle
  // OpenMP workers do not spin against OpenBLAS's) — prefill bits depend on it.
  int threads = 0;
  DecodeKernel decode_kernel = DecodeKernel::kAuto;
  int max_batch = 16;  // most sequences in one Decode call
  // KV capacity per sequence (clamped to max_position_embeddings). The CPU row path allocates a
  // sequence's cache when it is added; the tensor path (CUDA, kPadded) allocates one cache of
  // max_batch + 1 slots of max_seq_len positions at load (RESOURCE_EXHAUSTED if it does not fit).
  int max_seq_len = 2048;
  // Prefill splits prompts into chunks of this many tokens (a function of the prompt only).
  int prefill_chunk = 512;
};

// Executes the model for a set of sequences with their own KV caches. Owned and used by one thread
// (the scheduler); not thread-safe.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual const ModelConfig& config() const = 0;
  // Short description of the compute path, e.g. "cpu/float32/avx2-fixed/threads=2"; part of the
  // echelon fingerprint input.
  virtual std::string path_description() const = 0;

  // Reserves KV space for a new sequence of at most `max_len` tokens; returns its handle.
  // RESOURCE_EXHAUSTED when no slot or memory is left; INVALID_ARGUMENT when max_len exceeds
  // the runner's max_seq_len.
  virtual absl::StatusOr<int> AddSequence(int max_len) = 0;
  // Frees a sequence's slot. Unknown handles are ignored.
  virtual void RemoveSequence(int seq) = 0;

  // Appends `tokens` to the sequence and writes the logits (vocab_size fp32) of the last position.
  virtual absl::Status Prefill(int seq, std::span<const int32_t> tokens,
                               std::vector<float>* last_logits) = 0;
  // One decode step: appends tokens[i] to seqs[i]; writes logits row-major [seqs.size(), vocab].
  virtual absl::Status Decode(std::span<const int> seqs, std::span<const int32_t> tokens,
                              std::vector<float>* logits) = 0;

  // Bytes of KV cache in use / reserved in total, for stats.
  virtual int64_t kv_bytes_used() const = 0;
  virtual int64_t kv_bytes_capacity() const = 0;
};

// Loads config.json and *.safetensors (single or sharded via model.safetensors.index.json,
// memory-mapped, F32/BF16/F16 converted to the run dtype) from `dir`. Errors name the file and
// tensor: missing or misshaped tensors, truncated files, headers whose offsets lie.
absl::StatusOr<std::unique_ptr<ModelRunner>> LoadModel(const std::filesystem::path& dir,
                                                       const RunnerOptions& options);

// Read bandwidth of `device` ("cpu", "cuda", "cuda:N") in bytes/s: the best of five timed sums
// over `bytes` (at least 1 MiB) of float32 after one warm-up. On the CPU `threads` workers each
// sum their share in 16 lanes (WorkerPool); on a GPU a libtorch sum, waited for on the host. For
// the engine benchmark's decode limit. FAILED_PRECONDITION for CUDA without CUDA;
// INVALID_ARGUMENT for a device libtorch does not know.
absl::StatusOr<double> MeasureReadBandwidth(const std::string& device, int64_t bytes, int threads);

// Canary fingerprint (DESIGN §4.2): SHA-256 over the fp32 logits of a fixed prompt (prefill and 8
// greedy decode steps), with the decode run alone and again inside a full batch of other
// sequences; FAILED_PRECONDITION if the two runs differ in any bit (the node is not
// batch-invariant and must not join an echelon).
absl::StatusOr<crypto::Hash256> ComputeCanaryFingerprint(ModelRunner& runner);

}  // namespace atoma::engine
