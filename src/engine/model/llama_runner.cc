// The Llama-family ModelRunner on libtorch (DESIGN §3).
//
// Three compute paths share the weights and the KV cache:
//   - Prefill (any device): libtorch ops over one sequence, chunked by prefill_chunk. On CPU with
//     a fixed decode kernel its projections also run through the fixed-order Gemm on the packed
//     weights (the HF-layout copies are freed after packing); attention stays libtorch.
//   - CPU decode: per-row C++ loops over raw float pointers (RMSNorm, RoPE, residuals), the
//     fixed-order row kernels of rowops.h (attention over the sequence's own KV cache, SiLU*mul;
//     AVX2 or portable, the same bits) and the projections through Gemm (gemm.h): the
//     fixed-order kernel, or at::linear for DecodeKernel::kTorch. Nothing in a row's
//     arithmetic depends on the other rows, so a sequence's logits are the same alone or in a
//     batch.
//   - Tensor decode (every CUDA run; on CPU with DecodeKernel::kPadded): libtorch ops with the
//     batch padded to max_batch rows, so cuBLAS sees the same shapes (and picks the same kernels)
//     whatever the load. The KV cache is one tensor of max_batch + 1 slots (the last a scratch
//     slot for pad rows) by max_seq_len positions, and attention runs over every slot and every
//     position at once, masked to each slot's own length: a fixed shape too, a handful of kernels
//     per layer instead of a handful per sequence and layer. DecodeKernel::kTorch on CUDA runs it
//     unpadded (fastest at low load, not batch-invariant; benchmarks only). On CPU it runs the
//     same code in fp32 or bf16, which is how the CUDA path's logic is tested without a GPU.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <numbers>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "atoma/common/status.h"
#include "atoma/engine/gemm.h"
#include "atoma/engine/model.h"
#include "atoma/engine/rowops.h"
#include "atoma/engine/safetensors.h"

namespace atoma::engine {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status TorchError(const std::string& where, const std::exception& e) {
  std::string what = e.what();
  // libtorch messages carry a long C++ backtrace after the first line.
  if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  return absl::InternalError(absl::StrCat(where, ": libtorch: ", what));
}

struct Layer {
  at::Tensor attn_norm;  // [hidden]
  at::Tensor w_qkv;      // [(H + 2 KVH) * hd, hidden]: q, k, v projections stacked
  at::Tensor b_qkv;      // [(H + 2 KVH) * hd] or undefined
  at::Tensor w_o;        // [hidden, H * hd]
  at::Tensor mlp_norm;   // [hidden]
  at::Tensor w_gate_up;  // [2 I, hidden]: gate then up
  at::Tensor w_down;     // [hidden, I]
  // The projections repacked for the fixed-order kernel (CPU, fixed paths only; empty
  // otherwise). On those paths prefill and decode both use these, and the w_* tensors above are
  // released after packing (undefined), so the node holds the weights once.
  PackedWeights p_qkv, p_o, p_gate_up, p_down;
};

struct Slot {
  bool used = false;
  int64_t max_len = 0;
  int64_t len = 0;
  // [layers, KVH, max_len, hd]; on the tensor path a view [layers, KVH, max_seq_len, hd] of the
  // shared cache (LlamaRunner::kv_k_, kv_v_).
  at::Tensor k;
  at::Tensor v;
};

class LlamaRunner final : public ModelRunner {
 public:
  // tensor_decode: decode through DecodeTensor (the CUDA path) instead of the CPU row loops;
  // gemm_path is then kTorch (nothing packed). pad_batch: DecodeTensor pads to max_batch rows.
  LlamaRunner(ModelConfig config, RunnerOptions options, at::Device device, at::ScalarType dtype,
              GemmPath gemm_path, bool tensor_decode, bool pad_batch, int threads)
      : cfg_(std::move(config)),
        opts_(std::move(options)),
        device_(device),
        dtype_(dtype),
        cuda_(device.is_cuda()),
        tensor_decode_(tensor_decode),
        pad_batch_(pad_batch),
        gemm_path_(gemm_path),
        threads_(threads),
        pool_(tensor_decode_ ? 1 : threads) {
    hd_ = cfg_.head_dim;
    q_dim_ = cfg_.num_heads * hd_;
    kv_dim_ = cfg_.num_kv_heads * hd_;
    qkv_dim_ = q_dim_ + 2 * kv_dim_;
    groups_ = cfg_.num_heads / cfg_.num_kv_heads;
    max_seq_len_ = std::min<int64_t>(opts_.max_seq_len, cfg_.max_position_embeddings);
    slots_.resize(opts_.max_batch);
  }

  absl::Status LoadWeights(const WeightStore& store);
  void BuildRope();
  // The tensor path's shared KV cache; RESOURCE_EXHAUSTED when it does not fit.
  absl::Status AllocateKvCache();

  const ModelConfig& config() const override { return cfg_; }

  std::string path_description() const override {
    if (tensor_decode_) {
      std::string d = absl::StrCat(cuda_ ? "cuda/" : "cpu/", c10::toString(dtype_),
                                   pad_batch_ ? "/torch-padded/max_batch=" : "/torch-unpadded",
                                   pad_batch_ ? absl::StrCat(opts_.max_batch) : "");
      if (!cuda_) absl::StrAppend(&d, "/threads=", threads_);
      return d;
    }
    return absl::StrCat("cpu/float32/", GemmPathName(gemm_path_), "/threads=", threads_);
  }

  absl::StatusOr<int> AddSequence(int max_len) override;
  void RemoveSequence(int seq) override {
    if (seq < 0 || seq >= static_cast<int>(slots_.size())) return;
    slots_[seq] = Slot{};
  }
  absl::Status Prefill(int seq, std::span<const int32_t> tokens,
                       std::vector<float>* last_logits) override;
  absl::Status Decode(std::span<const int> seqs, std::span<const int32_t> tokens,
                      std::vector<float>* logits) override;

  int64_t kv_bytes_used() const override {
    int64_t total = 0;
    for (const auto& s : slots_) {
      if (s.used) total += s.len * KvBytesPerToken();
    }
    return total;
  }
  int64_t kv_bytes_capacity() const override {
    int64_t total = 0;
    for (const auto& s : slots_) {
      if (s.used) total += s.max_len * KvBytesPerToken();
    }
    return total;
  }

 private:
  int64_t KvBytesPerToken() const {
    return 2 * cfg_.num_layers * kv_dim_ * static_cast<int64_t>(c10::elementSize(dtype_));
  }
  absl::Status CheckTokens(std::span<const int32_t> tokens) const;
  absl::StatusOr<at::Tensor> LoadTensor(const WeightStore& store, const std::string& name,
                                        const std::vector<int64_t>& shape) const;

  // libtorch helpers (prefill, tensor decode).
  at::Tensor RmsNormT(const at::Tensor& x, const at::Tensor& w) const;
  // x: [T, heads, hd]; cos/sin: [T, hd/2] fp32.
  at::Tensor RopeT(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) const;
  void PrefillChunk(Slot& slot, const int32_t* ids, int64_t count, bool want_logits,
                    std::vector<float>* last_logits);
  // The row kernels' path (rowops.h): AVX2 with the AVX2 GEMM, else portable (same bits).
  GemmPath RowPath() const {
    return gemm_path_ == GemmPath::kAvx2 ? GemmPath::kAvx2 : GemmPath::kPortable;
  }
  // True on CPU with a fixed-order decode path: every projection runs on the packed weights.
  bool PackedPath() const { return !tensor_decode_ && gemm_path_ != GemmPath::kTorch; }
  // x [rows, in] times a projection: at::linear(x, w, b) on tensor decode/kTorch, else the
  // fixed-order Gemm on `packed` (x must be fp32 CPU). Throws std::runtime_error on a Gemm error.
  at::Tensor LinearT(const at::Tensor& x, const at::Tensor& w, const PackedWeights& packed,
                     const at::Tensor& b);

  void DecodeCpu(std::span<const int> seqs, std::span<const int32_t> tokens, float* logits);
  void DecodeTensor(std::span<const int> seqs, std::span<const int32_t> tokens, float* logits);
  // Through the packed weights on the fixed paths, through `w` on kTorch.
  absl::Status GemmOrDie(const float* x, int64_t rows, const at::Tensor& w,
                         const PackedWeights& packed, const at::Tensor& b, float* y);
  void RmsNormRows(const float* x, int64_t rows, const float* w, float* out) const;
  void RopeRow(float* v, int64_t heads, int64_t pos) const;
  void AttentionRows(std::span<const int> seqs, int64_t layer, const float* qkv, float* out);

  const ModelConfig cfg_;
  const RunnerOptions opts_;
  const at::Device device_;
  const at::ScalarType dtype_;
  const bool cuda_;
  const bool tensor_decode_;
  const bool pad_batch_;
  const GemmPath gemm_path_;
  const int threads_;
  WorkerPool pool_;

  int64_t hd_ = 0, q_dim_ = 0, kv_dim_ = 0, qkv_dim_ = 0, groups_ = 1, max_seq_len_ = 0;

  at::Tensor embed_;              // [V, hidden]
  at::Tensor final_norm_;         // [hidden]
  at::Tensor lm_head_;            // [V, hidden] (aliases embed_ when tied)
  PackedWeights lm_head_packed_;  // lm_head_ for the fixed-order decode kernel
  std::vector<Layer> layers_;
  at::Tensor rope_cos_, rope_sin_;          // [max_seq_len, hd/2] fp32 on CPU
  at::Tensor rope_cos_dev_, rope_sin_dev_;  // same on the run device
  std::vector<Slot> slots_;
  // Tensor path: [layers, max_batch + 1, KVH, max_seq_len, hd]; slot i's sequence lives at
  // [:, i], the last slot takes the pad rows' writes. Undefined on the CPU row path.
  at::Tensor kv_k_, kv_v_;

  // CPU decode scratch, reused between steps.
  std::vector<float> x_, h_, qkv_, attn_, tmp_, gu_, act_;
  std::vector<std::vector<float>> scores_;  // per worker, max_seq_len_
};

absl::StatusOr<at::Tensor> LlamaRunner::LoadTensor(const WeightStore& store,
                                                   const std::string& name,
                                                   const std::vector<int64_t>& shape) const {
  auto view = store.Get(name);
  if (!view.ok()) {
    return absl::NotFoundError(
        absl::StrCat("model is missing tensor '", name, "': ", view.status().message()));
  }
  if (view->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", view->file,
                                                   " has shape ", ShapeString(view->shape),
                                                   ", expected ", ShapeString(shape)));
  }
  at::ScalarType src;
  switch (view->dtype) {
    case DType::kF32:
      src = at::kFloat;
      break;
    case DType::kBF16:
      src = at::kBFloat16;
      break;
    case DType::kF16:
      src = at::kHalf;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", view->file,
                                                     " has dtype ", DTypeName(view->dtype),
                                                     "; expected F32, BF16 or F16"));
  }
  try {
    // Copy out of the mapping first: mapped bytes need not be aligned for the element type.
    at::Tensor host = at::empty(shape, at::TensorOptions().dtype(src));
    if (static_cast<size_t>(host.nbytes()) != view->bytes.size()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", view->file, " has ",
                                                     view->bytes.size(), " bytes, expected ",
                                                     host.nbytes()));
    }
    std::memcpy(host.data_ptr(), view->bytes.data(), view->bytes.size());
    return host.to(at::TensorOptions().dtype(dtype_).device(device_)).contiguous();
  } catch (const std::exception& e) {
    return TorchError(absl::StrCat("loading tensor '", name, "' from ", view->file), e);
  }
}

absl::Status LlamaRunner::LoadWeights(const WeightStore& store) {
  const int64_t hidden = cfg_.hidden_size, inter = cfg_.intermediate_size;
  const int64_t vocab = cfg_.vocab_size;
  ASSIGN_OR_RETURN(embed_, LoadTensor(store, "model.embed_tokens.weight", {vocab, hidden}));
  ASSIGN_OR_RETURN(final_norm_, LoadTensor(store, "model.norm.weight", {hidden}));
  if (cfg_.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    ASSIGN_OR_RETURN(lm_head_, LoadTensor(store, "lm_head.weight", {vocab, hidden}));
  }
  layers_.resize(cfg_.num_layers);
  try {
    for (int64_t i = 0; i < cfg_.num_layers; ++i) {
      const std::string p = absl::StrCat("model.layers.", i, ".");
      Layer& L = layers_[i];
      ASSIGN_OR_RETURN(L.attn_norm, LoadTensor(store, p + "input_layernorm.weight", {hidden}));
      ASSIGN_OR_RETURN(L.mlp_norm,
                       LoadTensor(store, p + "post_attention_layernorm.weight", {hidden}));
      ASSIGN_OR_RETURN(auto q, LoadTensor(store, p + "self_attn.q_proj.weight", {q_dim_, hidden}));
      ASSIGN_OR_RETURN(auto k, LoadTensor(store, p + "self_attn.k_proj.weight", {kv_dim_, hidden}));
      ASSIGN_OR_RETURN(auto v, LoadTensor(store, p + "self_attn.v_proj.weight", {kv_dim_, hidden}));
      L.w_qkv = at::cat({q, k, v}, 0).contiguous();
      if (cfg_.attention_bias) {
        ASSIGN_OR_RETURN(auto qb, LoadTensor(store, p + "self_attn.q_proj.bias", {q_dim_}));
        ASSIGN_OR_RETURN(auto kb, LoadTensor(store, p + "self_attn.k_proj.bias", {kv_dim_}));
        ASSIGN_OR_RETURN(auto vb, LoadTensor(store, p + "self_attn.v_proj.bias", {kv_dim_}));
        L.b_qkv = at::cat({qb, kb, vb}, 0).contiguous();
      }
      ASSIGN_OR_RETURN(L.w_o, LoadTensor(store, p + "self_attn.o_proj.weight", {hidden, q_dim_}));
      ASSIGN_OR_RETURN(auto g, LoadTensor(store, p + "mlp.gate_proj.weight", {inter, hidden}));
      ASSIGN_OR_RETURN(auto u, LoadTensor(store, p + "mlp.up_proj.weight", {inter, hidden}));
      L.w_gate_up = at::cat({g, u}, 0).contiguous();
      ASSIGN_OR_RETURN(L.w_down, LoadTensor(store, p + "mlp.down_proj.weight", {hidden, inter}));
    }
  } catch (const std::exception& e) {
    return TorchError("stacking projection weights", e);
  }
  if (PackedPath()) {
    auto pack = [](const at::Tensor& w) {
      return PackedWeights::Pack(w.data_ptr<float>(), w.size(0), w.size(1));
    };
    for (Layer& L : layers_) {
      L.p_qkv = pack(L.w_qkv);
      L.p_o = pack(L.w_o);
      L.p_gate_up = pack(L.w_gate_up);
      L.p_down = pack(L.w_down);
    }
    lm_head_packed_ = pack(lm_head_);
    // Nothing reads the HF-layout projections any more (prefill and decode both go through the
    // packed copies): free them. lm_head_ only drops our reference; when tied, embed_ keeps the
    // storage for the embedding lookup.
    for (Layer& L : layers_) {
      L.w_qkv = L.w_o = L.w_gate_up = L.w_down = at::Tensor();
    }
    lm_head_ = at::Tensor();
#if defined(__GLIBC__)
    // The freed tensors (a few MB each) mostly sit inside the heap rather than in their own
    // mappings (glibc raises its mmap threshold after the first frees), so without a trim the
    // process keeps ~250 MB of bench-135m's freed weights resident.
    malloc_trim(0);
#endif
  }
  return absl::OkStatus();
}

void LlamaRunner::BuildRope() {
  const int64_t half = hd_ / 2;
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0 / std::pow(cfg_.rope_theta, static_cast<double>(2 * i) / hd_);
  }
  if (cfg_.rope_scaling.has_value()) {
    // Llama 3.1 frequency adjustment (transformers' _compute_llama3_parameters).
    const RopeScaling& rs = *cfg_.rope_scaling;
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double low_wavelen = old_len / rs.low_freq_factor;
    const double high_wavelen = old_len / rs.high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else {
        const double smooth =
            (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        f = (1 - smooth) * f / rs.factor + smooth * f;
      }
    }
  }
  rope_cos_ = at::empty({max_seq_len_, half}, at::TensorOptions().dtype(at::kFloat));
  rope_sin_ = at::empty({max_seq_len_, half}, at::TensorOptions().dtype(at::kFloat));
  float* c = rope_cos_.data_ptr<float>();
  float* s = rope_sin_.data_ptr<float>();
  for (int64_t p = 0; p < max_seq_len_; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(p) * inv_freq[i];
      c[p * half + i] = static_cast<float>(std::cos(a));
      s[p * half + i] = static_cast<float>(std::sin(a));
    }
  }
  rope_cos_dev_ = rope_cos_.to(device_);
  rope_sin_dev_ = rope_sin_.to(device_);
}

absl::StatusOr<int> LlamaRunner::AddSequence(int max_len) {
  if (max_len <= 0 || max_len > max_seq_len_) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence length ", max_len, " outside [1, ", max_seq_len_, "]"));
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].used) continue;
    try {
      const auto o = at::TensorOptions().dtype(dtype_).device(device_);
      Slot s;
      if (tensor_decode_) {
        // Cleared: attention reads every position of the slot (masked), and a NaN left by an
        // earlier sequence would survive a zero weight.
        s.k = kv_k_.select(1, static_cast<int64_t>(i));
        s.v = kv_v_.select(1, static_cast<int64_t>(i));
        s.k.zero_();
        s.v.zero_();
      } else {
        s.k = at::zeros({cfg_.num_layers, cfg_.num_kv_heads, max_len, hd_}, o);
        s.v = at::zeros({cfg_.num_layers, cfg_.num_kv_heads, max_len, hd_}, o);
      }
      s.max_len = max_len;
      s.used = true;
      slots_[i] = std::move(s);
    } catch (const std::exception& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate KV cache for ", max_len, " tokens: ", e.what()));
    }
    return static_cast<int>(i);
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("all ", slots_.size(), " sequence slots are in use"));
}

absl::Status LlamaRunner::AllocateKvCache() {
  if (!tensor_decode_) return absl::OkStatus();
  const std::vector<int64_t> shape = {cfg_.num_layers, opts_.max_batch + 1, cfg_.num_kv_heads,
                                      max_seq_len_, hd_};
  try {
    const auto o = at::TensorOptions().dtype(dtype_).device(device_);
    kv_k_ = at::zeros(shape, o);
    kv_v_ = at::zeros(shape, o);
  } catch (const std::exception& e) {
    const double gb =
        static_cast<double>(KvBytesPerToken()) * (opts_.max_batch + 1) * max_seq_len_ / 1e9;
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return absl::ResourceExhaustedError(absl::StrCat(
        "the KV cache (", max_seq_len_, " positions x ", opts_.max_batch + 1, " slots, ", gb,
        " GB) does not fit on ", device_.str(), ": ", what, "; lower max_seq_len or max_batch"));
  }
  return absl::OkStatus();
}

absl::Status LlamaRunner::CheckTokens(std::span<const int32_t> tokens) const {
  for (int32_t t : tokens) {
    if (t < 0 || t >= cfg_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " outside the vocabulary [0, ", cfg_.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

// ---- libtorch path: prefill and tensor decode ----

at::Tensor LlamaRunner::RmsNormT(const at::Tensor& x, const at::Tensor& w) const {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean({-1}, /*keepdim=*/true);
  at::Tensor normed = xf.mul(at::rsqrt(var.add(cfg_.rms_norm_eps)));
  return w.mul(normed.to(dtype_));
}

at::Tensor LlamaRunner::RopeT(const at::Tensor& x, const at::Tensor& cos,
                              const at::Tensor& sin) const {
  const int64_t half = hd_ / 2;
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor x1 = xf.narrow(-1, 0, half);
  at::Tensor x2 = xf.narrow(-1, half, half);
  at::Tensor c = cos.unsqueeze(1);  // [T, 1, half]
  at::Tensor s = sin.unsqueeze(1);
  return at::cat({x1.mul(c).sub(x2.mul(s)), x2.mul(c).add(x1.mul(s))}, -1).to(dtype_);
}

void LlamaRunner::PrefillChunk(Slot& slot, const int32_t* ids, int64_t count, bool want_logits,
                               std::vector<float>* last_logits) {
  const int64_t P = slot.len, T = count, total = P + T;
  const int64_t H = cfg_.num_heads, KVH = cfg_.num_kv_heads;
  std::vector<int64_t> ids64(ids, ids + count);
  at::Tensor idx =
      at::from_blob(ids64.data(), {T}, at::TensorOptions().dtype(at::kLong)).to(device_);
  at::Tensor x = embed_.index_select(0, idx);  // [T, hidden]
  at::Tensor cos = rope_cos_dev_.narrow(0, P, T);
  at::Tensor sin = rope_sin_dev_.narrow(0, P, T);
  // mask[t, j] is true where key j lies after query P + t.
  at::Tensor mask =
      at::ones({T, total}, at::TensorOptions().dtype(at::kBool).device(device_)).triu(P + 1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd_));
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const Layer& L = layers_[l];
    at::Tensor h = RmsNormT(x, L.attn_norm);
    at::Tensor qkv = LinearT(h, L.w_qkv, L.p_qkv, L.b_qkv);
    at::Tensor q = RopeT(qkv.narrow(1, 0, q_dim_).view({T, H, hd_}), cos, sin);
    at::Tensor k = RopeT(qkv.narrow(1, q_dim_, kv_dim_).view({T, KVH, hd_}), cos, sin);
    at::Tensor v = qkv.narrow(1, q_dim_ + kv_dim_, kv_dim_).view({T, KVH, hd_});
    at::Tensor kc = slot.k.select(0, l);  // [KVH, max_len, hd]
    at::Tensor vc = slot.v.select(0, l);
    kc.narrow(1, P, T).copy_(k.permute({1, 0, 2}));
    vc.narrow(1, P, T).copy_(v.permute({1, 0, 2}));
    at::Tensor keys = kc.narrow(1, 0, total);    // [KVH, total, hd]
    at::Tensor values = vc.narrow(1, 0, total);  // [KVH, total, hd]
    // Query head h uses KV head h / groups: view queries as [KVH, groups * T, hd].
    at::Tensor qg = q.permute({1, 0, 2}).contiguous().view({KVH, groups_ * T, hd_});
    at::Tensor scores = at::matmul(qg, keys.transpose(1, 2)).mul(scale);  // [KVH, g*T, total]
    scores = scores.view({KVH, groups_, T, total})
                 .masked_fill(mask, -std::numeric_limits<double>::infinity());
    at::Tensor probs = at::softmax(scores.to(at::kFloat), -1).to(dtype_);
    at::Tensor out = at::matmul(probs.view({KVH, groups_ * T, total}), values);  // [KVH, g*T, hd]
    out = out.view({H, T, hd_}).permute({1, 0, 2}).reshape({T, q_dim_});
    x = x.add(LinearT(out, L.w_o, L.p_o, at::Tensor()));
    h = RmsNormT(x, L.mlp_norm);
    at::Tensor gu = LinearT(h, L.w_gate_up, L.p_gate_up, at::Tensor());
    const int64_t I = cfg_.intermediate_size;
    at::Tensor act = at::silu(gu.narrow(1, 0, I)).mul(gu.narrow(1, I, I));
    x = x.add(LinearT(act, L.w_down, L.p_down, at::Tensor()));
  }
  slot.len = total;
  if (!want_logits) return;
  at::Tensor last = RmsNormT(x.narrow(0, T - 1, 1), final_norm_);
  at::Tensor logits = LinearT(last, lm_head_, lm_head_packed_, at::Tensor())
                          .to(at::kFloat)
                          .to(at::kCPU)
                          .contiguous();
  last_logits->assign(logits.data_ptr<float>(), logits.data_ptr<float>() + cfg_.vocab_size);
}

absl::Status LlamaRunner::Prefill(int seq, std::span<const int32_t> tokens,
                                  std::vector<float>* last_logits) {
  if (seq < 0 || seq >= static_cast<int>(slots_.size()) || !slots_[seq].used) {
    return absl::InvalidArgumentError(absl::StrCat("unknown sequence ", seq));
  }
  Slot& slot = slots_[seq];
  if (tokens.empty()) return absl::InvalidArgumentError("Prefill needs at least one token");
  if (slot.len + static_cast<int64_t>(tokens.size()) > slot.max_len) {
    return absl::ResourceExhaustedError(absl::StrCat("sequence ", seq, " holds ", slot.len,
                                                     " tokens; ", tokens.size(),
                                                     " more exceed its max_len ", slot.max_len));
  }
  RETURN_IF_ERROR(CheckTokens(tokens));
  const int64_t chunk = std::max(1, opts_.prefill_chunk);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t start_len = slot.len;
  try {
    for (int64_t b = 0; b < n; b += chunk) {
      const int64_t count = std::min(chunk, n - b);
      PrefillChunk(slot, tokens.data() + b, count, b + count == n, last_logits);
    }
  } catch (const std::exception& e) {
    slot.len = start_len;
    return TorchError("prefill", e);
  }
  return absl::OkStatus();
}

at::Tensor LlamaRunner::LinearT(const at::Tensor& x, const at::Tensor& w,
                                const PackedWeights& packed, const at::Tensor& b) {
  if (!PackedPath()) return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
  // CPU fixed path: the same fixed-order kernel as decode (one sequential chain over K per
  // element), so prefill bits do not depend on OpenBLAS or the thread count either.
  at::Tensor xc = x.contiguous();
  const int64_t rows = xc.size(0);
  at::Tensor y = at::empty({rows, packed.n()}, xc.options());
  absl::Status st =
      Gemm(gemm_path_, xc.data_ptr<float>(), rows, packed.k(), packed,
           b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), packed.n(), &pool_);
  // Prefill reports exceptions as a Status (Prefill's catch).
  if (!st.ok()) throw std::runtime_error(absl::StrCat("fixed-order gemm: ", st.message()));
  return y;
}

// ---- CPU decode: per-row loops and the fixed-order GEMM ----

absl::Status LlamaRunner::GemmOrDie(const float* x, int64_t rows, const at::Tensor& w,
                                    const PackedWeights& packed, const at::Tensor& b, float* y) {
  const float* bias = b.defined() ? b.data_ptr<float>() : nullptr;
  if (gemm_path_ == GemmPath::kTorch) {
    const int64_t n = w.size(0), k = w.size(1);
    return Gemm(gemm_path_, x, rows, k, w.data_ptr<float>(), n, k, bias, y, n, &pool_);
  }
  // Fixed paths: `w` is released after packing (LoadWeights); only `packed` exists.
  return Gemm(gemm_path_, x, rows, packed.k(), packed, bias, y, packed.n(), &pool_);
}

void LlamaRunner::RmsNormRows(const float* x, int64_t rows, const float* w, float* out) const {
  const int64_t n = cfg_.hidden_size;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / n + cfg_.rms_norm_eps));
    float* o = out + r * n;
    for (int64_t i = 0; i < n; ++i) o[i] = w[i] * (xr[i] * inv);
  }
}

void LlamaRunner::RopeRow(float* v, int64_t heads, int64_t pos) const {
  const int64_t half = hd_ / 2;
  const float* c = rope_cos_.data_ptr<float>() + pos * half;
  const float* s = rope_sin_.data_ptr<float>() + pos * half;
  for (int64_t h = 0; h < heads; ++h) {
    float* x = v + h * hd_;
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = x[i], x2 = x[i + half];
      x[i] = x1 * c[i] - x2 * s[i];
      x[i + half] = x2 * c[i] + x1 * s[i];
    }
  }
}

void LlamaRunner::AttentionRows(std::span<const int> seqs, int64_t layer, const float* qkv,
                                float* out) {
  const int64_t H = cfg_.num_heads, KVH = cfg_.num_kv_heads;
  const int64_t rows = static_cast<int64_t>(seqs.size());
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd_)));
  const int64_t tasks = rows * H;
  pool_.Run([&](int worker, int workers) {
    float* sc = scores_[worker].data();
    for (int64_t t = tasks * worker / workers; t < tasks * (worker + 1) / workers; ++t) {
      const int64_t r = t / H, h = t % H, kvh = h / groups_;
      const Slot& slot = slots_[seqs[r]];
      const int64_t len = slot.len + 1;  // the new token's K/V are already written
      const float* q = qkv + r * qkv_dim_ + h * hd_;
      const int64_t base = ((layer * KVH + kvh) * slot.max_len) * hd_;
      AttendHead(RowPath(), q, slot.k.data_ptr<float>() + base, slot.v.data_ptr<float>() + base,
                 len, hd_, scale, sc, out + r * q_dim_ + h * hd_);
    }
  });
}

void LlamaRunner::DecodeCpu(std::span<const int> seqs, std::span<const int32_t> tokens,
                            float* logits) {
  const int64_t B = static_cast<int64_t>(seqs.size());
  const int64_t hidden = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t KVH = cfg_.num_kv_heads;
  x_.resize(B * hidden);
  h_.resize(B * hidden);
  qkv_.resize(B * qkv_dim_);
  attn_.resize(B * q_dim_);
  tmp_.resize(B * hidden);
  gu_.resize(B * 2 * I);
  act_.resize(B * I);
  if (scores_.size() != static_cast<size_t>(pool_.threads())) {
    scores_.assign(pool_.threads(), std::vector<float>(max_seq_len_));
  }
  const float* emb = embed_.data_ptr<float>();
  for (int64_t r = 0; r < B; ++r) {
    std::memcpy(&x_[r * hidden], emb + static_cast<int64_t>(tokens[r]) * hidden,
                hidden * sizeof(float));
  }
  auto check = [](const absl::Status& s) {
    // Sizes were validated at load; a failure here is a bug, surfaced as an exception that
    // Decode turns into a Status.
    if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  };
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const Layer& L = layers_[l];
    RmsNormRows(x_.data(), B, L.attn_norm.data_ptr<float>(), h_.data());
    check(GemmOrDie(h_.data(), B, L.w_qkv, L.p_qkv, L.b_qkv, qkv_.data()));
    for (int64_t r = 0; r < B; ++r) {
      Slot& slot = slots_[seqs[r]];
      float* row = &qkv_[r * qkv_dim_];
      RopeRow(row, cfg_.num_heads, slot.len);
      RopeRow(row + q_dim_, KVH, slot.len);
      float* kc = slot.k.data_ptr<float>();
      float* vc = slot.v.data_ptr<float>();
      for (int64_t g = 0; g < KVH; ++g) {
        const int64_t off = (((l * KVH + g) * slot.max_len) + slot.len) * hd_;
        std::memcpy(kc + off, row + q_dim_ + g * hd_, hd_ * sizeof(float));
        std::memcpy(vc + off, row + q_dim_ + kv_dim_ + g * hd_, hd_ * sizeof(float));
      }
    }
    AttentionRows(seqs, l, qkv_.data(), attn_.data());
    check(GemmOrDie(attn_.data(), B, L.w_o, L.p_o, at::Tensor(), tmp_.data()));
    for (int64_t i = 0; i < B * hidden; ++i) x_[i] += tmp_[i];
    RmsNormRows(x_.data(), B, L.mlp_norm.data_ptr<float>(), h_.data());
    check(GemmOrDie(h_.data(), B, L.w_gate_up, L.p_gate_up, at::Tensor(), gu_.data()));
    for (int64_t r = 0; r < B; ++r) {
      SiluMul(RowPath(), &gu_[r * 2 * I], &gu_[r * 2 * I + I], &act_[r * I], I);
    }
    check(GemmOrDie(act_.data(), B, L.w_down, L.p_down, at::Tensor(), tmp_.data()));
    for (int64_t i = 0; i < B * hidden; ++i) x_[i] += tmp_[i];
  }
  RmsNormRows(x_.data(), B, final_norm_.data_ptr<float>(), h_.data());
  check(GemmOrDie(h_.data(), B, lm_head_, lm_head_packed_, at::Tensor(), logits));
}

void LlamaRunner::DecodeTensor(std::span<const int> seqs, std::span<const int32_t> tokens,
                               float* logits) {
  // Padded, every GEMM sees exactly max_batch rows whatever the load; pad rows read token 0 and
  // write their K/V into the scratch slot, at positions of their own, and their results are
  // dropped. Attention always covers every slot (queries placed by slot, zero where a slot has
  // no row this step) and every position, each slot masked to its own length: its shapes never
  // change, and a slot's result depends only on its own query, cache and length.
  const int64_t B = static_cast<int64_t>(seqs.size()), Bp = pad_batch_ ? opts_.max_batch : B;
  const int64_t NS = opts_.max_batch + 1, scratch = NS - 1, S = max_seq_len_;
  const int64_t H = cfg_.num_heads, KVH = cfg_.num_kv_heads, I = cfg_.intermediate_size;
  std::vector<int64_t> ids(Bp, 0), pos(Bp, 0), slot(Bp, scratch), kv_rows(Bp * KVH);
  std::vector<uint8_t> hidden(NS * S, 1);  // 1 where slot s's query must not see position j
  for (int64_t s = 0; s < NS; ++s) hidden[s * S] = 0;  // a slot without a row sees position 0
  for (int64_t r = 0; r < Bp; ++r) {
    if (r < B) {
      ids[r] = tokens[r];
      pos[r] = slots_[seqs[r]].len;
      slot[r] = seqs[r];
      std::fill_n(hidden.begin() + slot[r] * S, pos[r] + 1, uint8_t{0});
    } else {
      pos[r] = (r - B) % S;  // distinct scratch positions: no two rows write the same place
    }
    for (int64_t g = 0; g < KVH; ++g) kv_rows[r * KVH + g] = ((slot[r] * KVH) + g) * S + pos[r];
  }
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor idx = at::from_blob(ids.data(), {Bp}, long_opts).to(device_);
  at::Tensor pidx = at::from_blob(pos.data(), {Bp}, long_opts).to(device_);
  at::Tensor sidx = at::from_blob(slot.data(), {Bp}, long_opts).to(device_);
  at::Tensor kvidx = at::from_blob(kv_rows.data(), {Bp * KVH}, long_opts).to(device_);
  at::Tensor mask =
      at::from_blob(hidden.data(), {NS, 1, 1, S}, at::TensorOptions().dtype(at::kByte))
          .to(device_)
          .to(at::kBool);
  at::Tensor active = sidx.narrow(0, 0, B);
  at::Tensor cos = rope_cos_dev_.index_select(0, pidx);  // [Bp, half]
  at::Tensor sin = rope_sin_dev_.index_select(0, pidx);
  at::Tensor x = embed_.index_select(0, idx);
  const auto act_opts = at::TensorOptions().dtype(dtype_).device(device_);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd_));
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const Layer& L = layers_[l];
    at::Tensor h = RmsNormT(x, L.attn_norm);
    at::Tensor qkv = L.b_qkv.defined() ? at::linear(h, L.w_qkv, L.b_qkv) : at::linear(h, L.w_qkv);
    at::Tensor q = RopeT(qkv.narrow(1, 0, q_dim_).view({Bp, H, hd_}), cos, sin);
    at::Tensor k = RopeT(qkv.narrow(1, q_dim_, kv_dim_).view({Bp, KVH, hd_}), cos, sin);
    at::Tensor v = qkv.narrow(1, q_dim_ + kv_dim_, kv_dim_).view({Bp, KVH, hd_});
    at::Tensor kc = kv_k_.select(0, l), vc = kv_v_.select(0, l);  // [NS, KVH, S, hd]
    kc.view({NS * KVH * S, hd_}).index_copy_(0, kvidx, k.reshape({Bp * KVH, hd_}));
    vc.view({NS * KVH * S, hd_}).index_copy_(0, kvidx, v.reshape({Bp * KVH, hd_}));
    // Query head h uses KV head h / groups: queries viewed as [NS, KVH, groups, hd].
    at::Tensor qs = at::zeros({NS, H, hd_}, act_opts);
    qs.index_copy_(0, active, q.narrow(0, 0, B));
    at::Tensor sc = at::matmul(qs.view({NS, KVH, groups_, hd_}), kc.transpose(2, 3)).mul(scale);
    sc = sc.masked_fill(mask, -std::numeric_limits<double>::infinity());  // [NS, KVH, g, S]
    at::Tensor p = at::softmax(sc.to(at::kFloat), -1).to(dtype_);
    at::Tensor attn = at::matmul(p, vc).reshape({NS, q_dim_}).index_select(0, sidx);  // [Bp, .]
    x = x.add(at::linear(attn, L.w_o));
    h = RmsNormT(x, L.mlp_norm);
    at::Tensor gu = at::linear(h, L.w_gate_up);
    at::Tensor act = at::silu(gu.narrow(1, 0, I)).mul(gu.narrow(1, I, I));
    x = x.add(at::linear(act, L.w_down));
  }
  at::Tensor out = at::linear(RmsNormT(x, final_norm_), lm_head_)
                       .narrow(0, 0, B)
                       .to(at::kFloat)
                       .to(at::kCPU)
                       .contiguous();
  std::memcpy(logits, out.data_ptr<float>(), B * cfg_.vocab_size * sizeof(float));
}

absl::Status LlamaRunner::Decode(std::span<const int> seqs, std::span<const int32_t> tokens,
                                 std::vector<float>* logits) {
  if (seqs.size() != tokens.size()) {
    return absl::InvalidArgumentError("Decode: seqs and tokens differ in length");
  }
  if (seqs.empty() || static_cast<int64_t>(seqs.size()) > opts_.max_batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("Decode: batch of ", seqs.size(), " outside [1, ", opts_.max_batch, "]"));
  }
  std::vector<bool> seen(slots_.size(), false);
  for (int s : seqs) {
    if (s < 0 || s >= static_cast<int>(slots_.size()) || !slots_[s].used) {
      return absl::InvalidArgumentError(absl::StrCat("Decode: unknown sequence ", s));
    }
    if (seen[s]) return absl::InvalidArgumentError(absl::StrCat("Decode: sequence ", s, " twice"));
    seen[s] = true;
    if (slots_[s].len >= slots_[s].max_len) {
      return absl::ResourceExhaustedError(
          absl::StrCat("Decode: sequence ", s, " is full (", slots_[s].max_len, " tokens)"));
    }
  }
  RETURN_IF_ERROR(CheckTokens(tokens));
  logits->resize(seqs.size() * cfg_.vocab_size);
  try {
    if (tensor_decode_) {
      DecodeTensor(seqs, tokens, logits->data());
    } else {
      DecodeCpu(seqs, tokens, logits->data());
    }
  } catch (const std::exception& e) {
    return TorchError("decode", e);
  }
  for (int s : seqs) ++slots_[s].len;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

const char* DecodeKernelName(DecodeKernel kernel) {
  switch (kernel) {
    case DecodeKernel::kAuto:
      return "auto";
    case DecodeKernel::kAvx2:
      return "avx2";
    case DecodeKernel::kPortable:
      return "portable";
    case DecodeKernel::kTorch:
      return "torch";
    case DecodeKernel::kPadded:
      return "padded";
  }
  return "unknown";
}

absl::StatusOr<DecodeKernel> ParseDecodeKernel(std::string_view name) {
  for (DecodeKernel k : {DecodeKernel::kAuto, DecodeKernel::kAvx2, DecodeKernel::kPortable,
                         DecodeKernel::kTorch, DecodeKernel::kPadded}) {
    if (name == DecodeKernelName(k)) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown decode kernel '", std::string(name),
                                                 "' (auto, avx2, portable, torch or padded)"));
}

absl::StatusOr<std::unique_ptr<ModelRunner>> LoadModel(const std::filesystem::path& dir,
                                                       const RunnerOptions& options) {
  ASSIGN_OR_RETURN(std::string config_text, ReadFile(dir / "config.json"));
  auto parsed = ParseModelConfig(config_text);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(), absl::StrCat((dir / "config.json").string(), ": ",
                                                             parsed.status().message()));
  }
  ModelConfig cfg = *std::move(parsed);
  if (cfg.num_heads <= 0 || cfg.num_kv_heads <= 0 || cfg.num_heads % cfg.num_kv_heads != 0 ||
      cfg.head_dim <= 0 || cfg.head_dim % 2 != 0 || cfg.hidden_size <= 0 ||
      cfg.intermediate_size <= 0 || cfg.num_layers <= 0 || cfg.vocab_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(dir.string(), ": inconsistent config (heads ",
                                                   cfg.num_heads, ", kv heads ", cfg.num_kv_heads,
                                                   ", head_dim ", cfg.head_dim, ")"));
  }
  if (cfg.rope_scaling.has_value() && cfg.rope_scaling->type != "llama3") {
    return absl::UnimplementedError(
        absl::StrCat("rope_scaling type '", cfg.rope_scaling->type, "' is not supported"));
  }
  if (options.max_batch <= 0 || options.max_seq_len <= 0) {
    return absl::InvalidArgumentError("max_batch and max_seq_len must be positive");
  }

  // Device and dtype.
  const bool has_cuda = at::hasCUDA();
  at::Device device(at::kCPU);
  try {
    if (options.device == "auto") {
      if (has_cuda) device = at::Device(at::kCUDA, 0);
    } else if (options.device != "cpu") {
      device = at::Device(options.device);
      if (!device.is_cuda()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported device '", options.device, "'"));
      }
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad device '", options.device, "'"));
  }
  if (device.is_cuda() && !has_cuda) {
    return absl::FailedPreconditionError(
        absl::StrCat("device '", options.device, "' requested but this libtorch has no CUDA"));
  }
  if (device.is_cuda() && device.has_index() &&
      static_cast<size_t>(device.index()) >= at::getNumGPUs()) {
    return absl::FailedPreconditionError(absl::StrCat("device '", options.device,
                                                      "' requested but this machine has ",
                                                      at::getNumGPUs(), " GPU(s)"));
  }
  // Decode route. On CPU: the fixed-order kernels (auto/avx2/portable), libtorch's GEMM in the
  // row loops (kTorch), or the tensor path padded like CUDA's (kPadded). On CUDA: the tensor path,
  // padded (auto/kPadded) or not (kTorch).
  const bool cuda = device.is_cuda();
  GemmPath path = GemmPath::kTorch;
  bool tensor_decode = cuda, pad_batch = true;
  switch (options.decode_kernel) {
    case DecodeKernel::kAuto:
      if (!cuda) path = CpuHasAvx2Fma() ? GemmPath::kAvx2 : GemmPath::kPortable;
      break;
    case DecodeKernel::kAvx2:
    case DecodeKernel::kPortable:
      if (cuda) {
        return absl::InvalidArgumentError(
            absl::StrCat("decode kernel '", DecodeKernelName(options.decode_kernel),
                         "' runs on the CPU only; on CUDA use auto (padded) or torch"));
      }
      if (options.decode_kernel == DecodeKernel::kPortable) {
        path = GemmPath::kPortable;
      } else if (!CpuHasAvx2Fma()) {
        return absl::FailedPreconditionError(
            "decode kernel avx2 requested; this CPU lacks AVX2/FMA");
      } else {
        path = GemmPath::kAvx2;
      }
      break;
    case DecodeKernel::kTorch:
      pad_batch = !cuda;  // unpadded tensor decode on CUDA; row loops with libtorch GEMM on CPU
      break;
    case DecodeKernel::kPadded:
      tensor_decode = true;
      break;
  }

  // dtype: fp32 everywhere; bf16/fp16 on CUDA; bf16 on CPU only on the tensor path (slow there,
  // but it runs the CUDA path's reduced-precision code where no GPU is at hand).
  at::ScalarType dtype = at::kFloat;
  if (options.dtype == "auto") {
    dtype = cuda ? at::kBFloat16 : at::kFloat;
  } else if (options.dtype == "float32") {
    dtype = at::kFloat;
  } else if (options.dtype == "bfloat16" && (cuda || tensor_decode)) {
    dtype = at::kBFloat16;
  } else if (options.dtype == "float16" && cuda) {
    dtype = at::kHalf;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "dtype '", options.dtype, "' is not supported on ", cuda ? "cuda" : "cpu",
        " (cpu runs float32, and bfloat16 with decode kernel padded; cuda runs bfloat16, float16 "
        "or float32)"));
  }

  int threads = options.threads;
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  // Intra-op threads are fixed for the process (OpenBLAS's own pool should match:
  // OPENBLAS_NUM_THREADS=threads). libtorch 1.13 starts with one thread.
  at::set_num_threads(threads);

  ASSIGN_OR_RETURN(auto store, WeightStore::Open(dir));
  auto runner = std::make_unique<LlamaRunner>(cfg, options, device, dtype, path, tensor_decode,
                                              pad_batch, threads);
  RETURN_IF_ERROR(runner->LoadWeights(*store));
  RETURN_IF_ERROR(runner->AllocateKvCache());
  try {
    runner->BuildRope();
  } catch (const std::exception& e) {
    return TorchError("building RoPE tables", e);
  }
  // No logging here: spdlog's fmt must not meet the fmt headers pip torch ships in its include
  // directory (this file sees both); the engine logs the loaded model (engine_load.cc).
  return std::unique_ptr<ModelRunner>(std::move(runner));
}

}  // namespace atoma::engine
