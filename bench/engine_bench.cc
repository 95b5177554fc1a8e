// atoma_engine_bench: what the engine achieves on this machine against what the memory allows.
//
//   atoma_engine_bench [--model DIR] [--threads N] [--cache DIR] [--steps N] [--prompt N]
//                      [--context N]  (prompt tokens of the decode points; default 32)
//                      [--device cpu|cuda|cuda:N] [--dtype auto|float32|bfloat16|float16]
//
// Without --model it synthesizes the bench-135m preset (SmolLM-135M shape) into the cache folder
// once. Prints: read bandwidth (measured in this run), the batch-1 decode limit it implies, prefill
// tokens/s and effective GFLOPS for a 512-token prompt, time to first token, decode tokens/s at
// concurrency 1/4/8/16 on the batch-invariant path and on the fastest non-invariant one, and
// whether the targets in DESIGN §3 are met. Bounded: a few decode steps per point.
//   CPU: the fixed-order kernel vs libtorch's GEMM (kTorch); float32.
//   CUDA: decode padded to max_batch rows (what a node runs) vs unpadded (kTorch); the dtype's
//   weight bytes set the limit, the bandwidth is a device-side reduction.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "atoma/common/logging.h"
#include "atoma/common/progress.h"
#include "atoma/engine/engine.h"
#include "atoma/engine/model.h"
#include "atoma/engine/synth.h"

namespace fs = std::filesystem;
using atoma::engine::DecodeKernel;
using atoma::engine::ModelConfig;
using atoma::engine::ModelRunner;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "atoma_engine_bench: %s\n", what.c_str());
  std::exit(1);
}

// Weights a decode step reads (every projection and the LM head), in parameters.
double DecodeWeightParams(const ModelConfig& c) {
  const double h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const double per_layer = h * (q + 2 * kv) + q * h + 3 * h * c.intermediate_size + 2 * h;
  return c.num_layers * per_layer + c.vocab_size * h + h;
}

// Bytes per parameter of the run dtype, read off the path description ("cpu/float32/...",
// "cuda/BFloat16/...").
double BytesPerParam(const std::string& path) {
  return path.find("BFloat16") != std::string::npos || path.find("Half") != std::string::npos ? 2.0
                                                                                              : 4.0;
}

std::vector<int32_t> Prompt(int len, int salt, int64_t vocab) {
  std::vector<int32_t> p(len);
  for (int i = 0; i < len; ++i) p[i] = static_cast<int32_t>((i * 7919 + salt * 131 + 3) % vocab);
  return p;
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + std::string(s.message()));
}

std::unique_ptr<ModelRunner> Load(const fs::path& dir, const std::string& device,
                                  const std::string& dtype, DecodeKernel kernel, int threads) {
  atoma::engine::RunnerOptions o;
  o.device = device;
  o.dtype = dtype;
  o.threads = threads;
  o.decode_kernel = kernel;
  o.max_seq_len = 2048;  // --context up to ~2000 (clamped to the model's positions)
  auto r = atoma::engine::LoadModel(dir, o);
  if (!r.ok()) Die("load: " + std::string(r.status().message()));
  return *std::move(r);
}

// `conc` sequences prefilled with `context`-token prompts and room for `steps` + 1 decode steps,
// with the token each decodes next; Decode'd once (warm-up). Remove them with Release().
struct Batch {
  std::vector<int> seqs;
  std::vector<int32_t> toks;
  std::vector<float> logits;

  Batch(ModelRunner& runner, int conc, int context, int steps) {
    const int64_t vocab = runner.config().vocab_size;
    for (int i = 0; i < conc; ++i) {
      auto s = runner.AddSequence(context + steps + 4);
      if (!s.ok()) Die("AddSequence: " + std::string(s.status().message()));
      seqs.push_back(*s);
      Check(runner.Prefill(*s, Prompt(context, i, vocab), &logits), "prefill");
      toks.push_back(static_cast<int32_t>((i * 17) % vocab));
    }
    Check(runner.Decode(seqs, toks, &logits), "decode");  // warm-up
  }
  void Release(ModelRunner& runner) {
    for (int s : seqs) runner.RemoveSequence(s);
  }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Decode throughput at `conc` sequences with `context`-token prompts: ms per step (median of
// `steps`).
double DecodeMsPerStep(ModelRunner& runner, int conc, int steps, int context) {
  Batch batch(runner, conc, context, steps);
  const std::vector<int>& seqs = batch.seqs;
  const std::vector<int32_t>& toks = batch.toks;
  std::vector<float>& logits = batch.logits;
  std::vector<double> times;
  for (int s = 0; s < steps; ++s) {
    const double t0 = Now();
    Check(runner.Decode(seqs, toks, &logits), "decode");
    times.push_back(Now() - t0);
  }
  batch.Release(runner);
  return Median(std::move(times)) * 1e3;
}

// Aggregate throughput at 16 rows over batch-1, measured in alternating steps (one row, then the
// same row with 15 others) so both see the same memory bandwidth, which on a shared machine moves
// from second to second: the median over `rounds` pairs of 16 x t(1 row) / t(16 rows).
double InterleavedScale16(ModelRunner& runner, int rounds, int context) {
  Batch batch(runner, 16, context, 2 * rounds);
  const std::vector<int>& seqs = batch.seqs;
  const std::vector<int32_t>& toks = batch.toks;
  std::vector<float>& logits = batch.logits;
  const std::span<const int> one(seqs.data(), 1);
  const std::span<const int32_t> one_tok(toks.data(), 1);
  std::vector<double> ratios;
  for (int r = 0; r < rounds; ++r) {
    const double t0 = Now();
    Check(runner.Decode(one, one_tok, &logits), "decode");
    const double t1 = Now();
    Check(runner.Decode(seqs, toks, &logits), "decode");
    ratios.push_back(16.0 * (t1 - t0) / (Now() - t1));
  }
  batch.Release(runner);
  return Median(std::move(ratios));
}

// A stream decodes while a `long_prompt`-token prompt arrives: the longest gap between two of
// the stream's tokens from the long prompt's submission to its first token, and that first token's
// latency (ms). With max_prefill_tokens_per_step >= long_prompt the whole prompt is prefilled
// between two decode steps (the engine before sliced prefill); with one chunk, a slice.
struct Stall {
  double max_gap_ms = 0;
  double long_ttft_ms = 0;
};
Stall MeasureStall(const fs::path& model, const std::string& device, const std::string& dtype,
                   int threads, int long_prompt, int budget) {
  atoma::engine::EngineOptions o;
  o.model_dir = model;
  o.runner.device = device;
  o.runner.dtype = dtype;
  o.runner.threads = threads;
  o.runner.max_seq_len = long_prompt + 64;
  o.max_prompt_tokens = long_prompt;
  o.max_prefill_tokens_per_step = budget;
  o.compute_fingerprint = false;
  auto engine = atoma::engine::Engine::Make(o);
  if (!engine.ok()) Die("engine: " + std::string(engine.status().message()));
  const int64_t vocab = (*engine)->info().config.vocab_size;
  atoma::engine::GenerateRequest stream_req;
  stream_req.prompt_ids = Prompt(32, 5, vocab);
  stream_req.max_tokens = 2000;
  stream_req.ignore_eos = true;
  auto stream = (*engine)->Submit(stream_req);
  if (!stream.ok()) Die("submit: " + std::string(stream.status().message()));
  atoma::engine::StreamEvent ev;
  for (int i = 0; i < 3; ++i) {  // decoding steadily before the long prompt arrives
    if (!(*stream)->Next(&ev, std::chrono::milliseconds(60000)) || ev.final) Die("stream ended");
  }
  atoma::engine::GenerateRequest long_req;
  long_req.prompt_ids = Prompt(long_prompt, 6, vocab);
  long_req.max_tokens = 1;
  long_req.ignore_eos = true;
  const double t0 = Now();
  auto long_h = (*engine)->Submit(long_req);
  if (!long_h.ok()) Die("submit: " + std::string(long_h.status().message()));
  Stall st;
  double last = t0;
  for (;;) {
    if (!(*stream)->Next(&ev, std::chrono::milliseconds(60000)) || ev.final) Die("stream ended");
    const double now = Now();
    st.max_gap_ms = std::max(st.max_gap_ms, (now - last) * 1e3);
    last = now;
    atoma::engine::StreamEvent first;
    if ((*long_h)->Next(&first, std::chrono::milliseconds(0))) {
      st.long_ttft_ms = (Now() - t0) * 1e3;
      break;
    }
  }
  (*stream)->Cancel();
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  // Idle OpenMP workers (libtorch's intra-op pool) spin by default and fight OpenBLAS's threads
  // for the cores: on 2 cores that costs prefill 3x. libgomp reads the policy when it loads, so
  // set it and start again.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // on failure, carry on with the default policy
  }
  fs::path model;
  fs::path cache = fs::temp_directory_path() / "atoma-bench-135m";
  int threads = 2, steps = 6, prompt = 512, context = 32;
  std::string device = "cpu", dtype = "auto";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--model") {
      model = next();
    } else if (a == "--threads") {
      threads = std::atoi(next().c_str());
    } else if (a == "--cache") {
      cache = next();
    } else if (a == "--steps") {
      steps = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--prompt") {
      prompt = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--context") {
      context = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--device") {
      device = next();
    } else if (a == "--dtype") {
      dtype = next();
    } else {
      Die("usage: atoma_engine_bench [--model DIR] [--threads N] [--cache DIR] [--steps N] "
          "[--prompt N] [--context N] [--device cpu|cuda|cuda:N] "
          "[--dtype auto|float32|bfloat16|float16]");
    }
  }
  atoma::LogOptions lo;
  lo.level = "warn";
  Check(atoma::InitLogging(lo), "logging");
  if (model.empty()) {
    model = cache;
    if (!fs::exists(model / "config.json")) {
      std::printf("synthesizing bench-135m into %s ...\n", model.c_str());
      std::fflush(stdout);
      atoma::engine::SynthOptions so;
      so.preset = "bench-135m";
      so.out_dir = model;
      atoma::ProgressBar synth_bar("synth bench-135m");
      so.progress = [&synth_bar](double f) { synth_bar.Update(f); };
      Check(atoma::engine::SynthesizeModel(so), "synthesize");
    }
  }

  // One line on stderr (a terminal only) says which phase runs: bandwidth, loads, prefill and
  // eight decode points take a minute or more on a small machine. Cleared before each result.
  atoma::ProgressBar bar("engine bench");
  // bandwidth, load, prefill, 4 invariant decode, interleaved, load, 4 torch decode
  const int kPhases = 13;
  const bool cpu = device == "cpu";
  // The batch-invariant path and the fastest non-invariant one on this device.
  const DecodeKernel invariant = DecodeKernel::kAuto;  // fixed-order on CPU, padded on CUDA
  const char* invariant_name = cpu ? "fixed" : "padded";
  int phase = 0;
  auto next_phase = [&](const std::string& what) {
    bar.Update(static_cast<double>(phase++) / kPhases, what);
  };
  next_phase("read bandwidth");
  // A buffer far larger than the caches: 512 MiB of host memory, 1 GiB on a GPU.
  auto measured = atoma::engine::MeasureReadBandwidth(
      device, cpu ? int64_t{512} << 20 : int64_t{1} << 30, threads);
  if (!measured.ok()) Die("bandwidth: " + std::string(measured.status().message()));
  const double bw = *measured;
  next_phase(std::string("load (") + invariant_name + ")");
  auto runner = Load(model, device, dtype, invariant, threads);
  bar.Clear();
  const ModelConfig& cfg = runner->config();
  const double params = DecodeWeightParams(cfg);
  const double wbytes = params * BytesPerParam(runner->path_description());
  const double limit_ms = wbytes / bw * 1e3;
  std::printf("model            %s (%ld layers, hidden %ld, vocab %ld)\n", model.c_str(),
              static_cast<long>(cfg.num_layers), static_cast<long>(cfg.hidden_size),
              static_cast<long>(cfg.vocab_size));
  std::printf("path             %s\n", runner->path_description().c_str());
  if (cpu) {
    std::printf("read bandwidth   %.1f GB/s (%d threads, 512 MiB buffer)\n", bw / 1e9, threads);
  } else {
    std::printf("read bandwidth   %.1f GB/s (%s, sum over 1 GiB)\n", bw / 1e9, device.c_str());
  }
  std::printf("decode weights   %.1f MB per step -> batch-1 limit %.2f ms/step (%.1f tok/s)\n",
              wbytes / 1e6, limit_ms, 1e3 / limit_ms);

  // Prefill: time to first token for the full prompt; effective GFLOPS counts the projections
  // and attention.
  std::fflush(stdout);
  next_phase(std::to_string(prompt) + "-token prefill");
  std::vector<float> logits;
  {
    auto s = runner->AddSequence(prompt + 8);
    if (!s.ok()) Die(std::string(s.status().message()));
    Check(runner->Prefill(*s, Prompt(16, 99, cfg.vocab_size), &logits), "prefill warm-up");
    runner->RemoveSequence(*s);
  }
  double prefill_s = 1e9;
  for (int rep = 0; rep < 2; ++rep) {
    auto s = runner->AddSequence(prompt + 8);
    const double t0 = Now();
    Check(runner->Prefill(*s, Prompt(prompt, rep, cfg.vocab_size), &logits), "prefill");
    prefill_s = std::min(prefill_s, Now() - t0);
    runner->RemoveSequence(*s);
  }
  const double T = prompt;
  const double flops = 2.0 * (params - cfg.vocab_size * cfg.hidden_size) * T +
                       2.0 * cfg.vocab_size * cfg.hidden_size +
                       4.0 * cfg.num_layers * cfg.num_heads * cfg.head_dim * T * T / 2;
  const double gflops = flops / prefill_s / 1e9;
  bar.Clear();
  std::printf("prefill          %d tokens in %.1f ms = %.0f tok/s, %.1f GFLOPS effective\n", prompt,
              prefill_s * 1e3, T / prefill_s, gflops);
  std::printf("time to first    %.1f ms (%d-token prompt, prefill + LM head)\n", prefill_s * 1e3,
              prompt);

  const int concs[] = {1, 4, 8, 16};
  double inv_ms[4], torch_ms[4];
  std::fflush(stdout);
  for (int i = 0; i < 4; ++i) {
    next_phase(std::string("decode, ") + invariant_name + ", " + std::to_string(concs[i]) +
               " sequences");
    inv_ms[i] = DecodeMsPerStep(*runner, concs[i], steps, context);
  }
  next_phase("decode, 1 and 16 rows interleaved");
  const int rounds = std::max(8, steps);
  const double scale_interleaved = InterleavedScale16(*runner, rounds, context);
  runner.reset();
  next_phase(cpu ? "load (libtorch GEMM)" : "load (unpadded)");
  auto torch = Load(model, device, dtype, DecodeKernel::kTorch, threads);
  for (int i = 0; i < 4; ++i) {
    next_phase(std::string("decode, ") + (cpu ? "libtorch GEMM, " : "unpadded, ") +
               std::to_string(concs[i]) + " sequences");
    torch_ms[i] = DecodeMsPerStep(*torch, concs[i], steps, context);
  }
  torch.reset();
  bar.Clear();

  std::printf("\ndecode (median of %d steps, %d-token prompts)\n", steps, context);
  std::printf("%-6s %12s %12s %12s %12s %10s\n", "conc",
              (std::string(invariant_name) + " ms").c_str(),
              (std::string(invariant_name) + " tok/s").c_str(), "torch ms", "torch tok/s",
              (std::string("torch/") + invariant_name).c_str());
  for (int i = 0; i < 4; ++i) {
    std::printf("%-6d %12.2f %12.1f %12.2f %12.1f %10.2f\n", concs[i], inv_ms[i],
                concs[i] * 1e3 / inv_ms[i], torch_ms[i], concs[i] * 1e3 / torch_ms[i],
                (concs[i] * 1e3 / torch_ms[i]) / (concs[i] * 1e3 / inv_ms[i]));
  }
  // Streams during a long prompt: sliced prefill (one chunk per iteration, the default) vs the
  // whole prompt between two decode steps, in the same run.
  const int long_prompt = std::min<int>(2048, static_cast<int>(cfg.max_position_embeddings) - 64);
  std::fflush(stdout);
  const Stall whole = MeasureStall(model, device, dtype, threads, long_prompt, long_prompt);
  const Stall sliced = MeasureStall(model, device, dtype, threads, long_prompt, 512);
  std::printf(
      "\na stream while a %d-token prompt is prefilled (longest gap between its tokens;"
      " the long prompt's first token)\n",
      long_prompt);
  std::printf("  whole prompt between two steps  gap %8.1f ms  first token %8.1f ms\n",
              whole.max_gap_ms, whole.long_ttft_ms);
  std::printf("  512-token slices (default)      gap %8.1f ms  first token %8.1f ms  (gap %.2fx)\n",
              sliced.max_gap_ms, sliced.long_ttft_ms, sliced.max_gap_ms / whole.max_gap_ms);

  const double frac = limit_ms / inv_ms[0];
  const double scale = (16e3 / inv_ms[3]) / (1e3 / inv_ms[0]);
  std::printf(
      "\nconcurrency-16 aggregate vs batch-1: %.2fx from the table above, %.2fx in "
      "interleaved steps (median of %d pairs)\n",
      scale, scale_interleaved, rounds);
  std::printf("\ntargets\n");
  std::printf("  batch-1 decode at %.0f%% of the memory limit (target >= 80%%): %s\n", frac * 100,
              frac >= 0.8 ? "met" : "NOT met");
  std::printf("  concurrency-16 aggregate %.2fx batch-1, interleaved (target >= 5x): %s\n",
              scale_interleaved, scale_interleaved >= 5 ? "met" : "NOT met");
  std::printf("  prefill %.1f GFLOPS (target >= 100): %s\n", gflops,
              gflops >= 100 ? "met" : "NOT met");
  return 0;
}
