// ModelRunner: logits against the independent NumPy reference (tools/reference/llama_reference.py),
// batch invariance at the runner level, reproducibility across loads, the canary fingerprint, and
// loader errors. Models are synthesized (SynthesizeModel), never downloaded.
#include "atoma/engine/model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "atoma/engine/safetensors.h"
#include "atoma/engine/synth.h"
#include "testing/cuda.h"

#ifndef ATOMA_SOURCE_DIR_DEFAULT
#define ATOMA_SOURCE_DIR_DEFAULT "."
#endif

namespace atoma::engine {
namespace {

namespace fs = std::filesystem;

fs::path TestRoot() {
  static const fs::path root = [] {
    fs::path p = fs::temp_directory_path() / ("atoma_model_test_" + std::to_string(getpid()));
    fs::create_directories(p);
    return p;
  }();
  return root;
}

class CleanupEnv : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(TestRoot(), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new CleanupEnv);

fs::path Synth(const std::string& name, SynthOptions o) {
  o.out_dir = TestRoot() / name;
  if (fs::exists(o.out_dir / "config.json")) return o.out_dir;
  const absl::Status s = SynthesizeModel(o);
  EXPECT_TRUE(s.ok()) << s;
  return o.out_dir;
}

// The tiny model (seed 7) the determinism, fingerprint and argument tests share.
fs::path DeterminismModel() {
  SynthOptions so;
  so.preset = "tiny";
  so.seed = 7;
  return Synth("determinism", so);
}

std::unique_ptr<ModelRunner> Load(const fs::path& dir, RunnerOptions o) {
  o.device = "cpu";
  o.threads = 2;
  auto r = LoadModel(dir, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

int32_t Argmax(const float* v, int64_t n) {
  return static_cast<int32_t>(std::max_element(v, v + n) - v);
}

std::vector<int32_t> Prompt(int len, int salt, int64_t vocab) {
  std::vector<int32_t> p(len);
  for (int i = 0; i < len; ++i) p[i] = static_cast<int32_t>((i * 37 + salt * 101 + 5) % vocab);
  return p;
}

// Runs the NumPy reference over `tokens`; returns [tokens.size() - prompt_len + 1, vocab] doubles.
std::vector<double> Reference(const fs::path& dir, const std::vector<int32_t>& tokens,
                              int prompt_len, int64_t vocab) {
  const char* env = std::getenv("ATOMA_SOURCE_DIR");
  const fs::path script =
      fs::path(env ? env : ATOMA_SOURCE_DIR_DEFAULT) / "tools/reference/llama_reference.py";
  const fs::path tok_file = dir / "ref_tokens.json", out_file = dir / "ref_logits.f64";
  {
    std::ofstream t(tok_file);
    t << "[";
    for (size_t i = 0; i < tokens.size(); ++i) t << (i ? "," : "") << tokens[i];
    t << "]";
  }
  // Debian's python3 has NumPy; elsewhere (a GPU machine's venv) ATOMA_PYTHON names one that has.
  const char* python = std::getenv("ATOMA_PYTHON");
  const std::string cmd = std::string(python ? python : "/usr/bin/python3") + " '" +
                          script.string() + "' --model '" + dir.string() + "' --tokens '" +
                          tok_file.string() + "' --prompt-len " + std::to_string(prompt_len) +
                          " --out '" + out_file.string() + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  const size_t rows = tokens.size() - prompt_len + 1;
  std::vector<double> out(rows * vocab);
  std::ifstream in(out_file, std::ios::binary);
  in.read(reinterpret_cast<char*>(out.data()), out.size() * sizeof(double));
  EXPECT_EQ(static_cast<size_t>(in.gcount()), out.size() * sizeof(double)) << "reference output";
  return out;
}

// max |a - ref| / max |ref| over one row of logits.
double RelError(const float* a, const double* ref, int64_t n) {
  double diff = 0, mag = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(a[i] - ref[i]));
    mag = std::max(mag, std::abs(ref[i]));
  }
  return diff / mag;
}

struct Variant {
  std::string name;
  SynthOptions synth;
  int prefill_chunk = 512;
};

std::vector<Variant> Variants() {
  std::vector<Variant> v;
  v.push_back({"gqa", {}, 512});
  v.push_back({"gqa_chunked", {}, 4});  // prefill in chunks of 4: attention over earlier chunks
  Variant no_gqa{"no_gqa", {}, 512};
  no_gqa.synth.num_kv_heads = 4;
  v.push_back(no_gqa);
  Variant bias{"qkv_bias", {}, 512};
  bias.synth.attention_bias = true;
  v.push_back(bias);
  Variant untied{"untied_sharded", {}, 512};
  untied.synth.tie_word_embeddings = false;
  untied.synth.shards = 2;
  v.push_back(untied);
  Variant rope{"llama3_rope", {}, 512};
  // original_max_position_embeddings 32 puts the head_dim-16 frequencies in all three bands.
  rope.synth.rope_scaling = RopeScaling{"llama3", 8.0, 1.0, 4.0, 32};
  v.push_back(rope);
  for (size_t i = 0; i < v.size(); ++i) {
    v[i].synth.preset = "tiny";
    v[i].synth.seed = 100 + i;
  }
  return v;
}

// Prefill and 16 greedy decode steps of one sequence, loaded with `o`, against the float64 NumPy
// forward; returns the worst relative error over the 17 rows of logits (each checked <= tol).
// `ref_tokens`/`ref` cache the reference: greedy tokens may differ between paths on near-ties, so
// a run whose tokens differ gets its own.
double CheckAgainstReference(const fs::path& dir, const RunnerOptions& o, double tol,
                             const std::string& label, std::vector<int32_t>* ref_tokens,
                             std::vector<double>* ref) {
  constexpr int kPrompt = 11, kSteps = 16;
  auto loaded = LoadModel(dir, o);
  EXPECT_TRUE(loaded.ok()) << label << ": " << loaded.status();
  if (!loaded.ok()) return 1;
  ModelRunner& runner = **loaded;
  const int64_t vocab = runner.config().vocab_size;
  auto seq = runner.AddSequence(kPrompt + kSteps);
  EXPECT_TRUE(seq.ok()) << seq.status();
  if (!seq.ok()) return 1;
  const auto prompt = Prompt(kPrompt, 1, vocab);
  std::vector<float> logits;
  const absl::Status prefilled = runner.Prefill(*seq, prompt, &logits);
  EXPECT_TRUE(prefilled.ok()) << label << ": " << prefilled;
  if (!prefilled.ok()) return 1;
  std::vector<std::vector<float>> rows = {logits};
  for (int s = 0; s < kSteps; ++s) {
    const int32_t next = Argmax(rows.back().data(), vocab);
    const int seqs[] = {*seq};
    const int32_t toks[] = {next};
    const absl::Status decoded = runner.Decode(seqs, toks, &logits);
    EXPECT_TRUE(decoded.ok()) << label << ": " << decoded;
    if (!decoded.ok()) return 1;
    rows.push_back(logits);
  }
  std::vector<int32_t> all = prompt;
  for (int s = 0; s < kSteps; ++s) all.push_back(Argmax(rows[s].data(), vocab));
  if (all != *ref_tokens) {
    *ref_tokens = all;
    *ref = Reference(dir, all, kPrompt, vocab);
  }
  double worst = 0;
  for (int s = 0; s <= kSteps; ++s) {
    const double err = RelError(rows[s].data(), ref->data() + s * vocab, vocab);
    worst = std::max(worst, err);
    EXPECT_LE(err, tol) << label << " " << runner.path_description()
                        << (s == 0 ? " prefill" : " decode step ") << (s ? s : 0);
  }
  std::printf("[ reference] %-28s %-44s worst relative error %.2e\n", label.c_str(),
              runner.path_description().c_str(), worst);
  return worst;
}

// Every CPU path in float32, each model variant.
TEST(ModelReferenceTest, LogitsMatchNumpyReference) {
  for (const Variant& v : Variants()) {
    const fs::path dir = Synth(v.name, v.synth);
    std::vector<int32_t> tokens;
    std::vector<double> ref;
    for (DecodeKernel kernel : {DecodeKernel::kAuto, DecodeKernel::kPortable, DecodeKernel::kTorch,
                                DecodeKernel::kPadded}) {
      RunnerOptions o;
      o.device = "cpu";
      o.threads = 2;
      o.decode_kernel = kernel;
      o.prefill_chunk = v.prefill_chunk;
      CheckAgainstReference(dir, o, 1e-4, v.name, &tokens, &ref);
    }
  }
}

// The CUDA path's reduced-precision code (weights converted to bfloat16 at load, norms, RoPE and
// softmax in float32, everything else bfloat16), run on the CPU. bfloat16 keeps 8 bits of
// mantissa: each rounding is up to 2^-9 relative, and the logits are a long chain of them, so the
// bound is 3e-2; a float32 run by mistake would show an error below 1e-5, which is refused too.
TEST(ModelReferenceTest, Bfloat16TensorPathNearReference) {
  for (const Variant& v : Variants()) {
    if (v.name != "gqa" && v.name != "qkv_bias" && v.name != "gqa_chunked") continue;
    const fs::path dir = Synth(v.name, v.synth);
    std::vector<int32_t> tokens;
    std::vector<double> ref;
    RunnerOptions o;
    o.device = "cpu";
    o.threads = 2;
    o.decode_kernel = DecodeKernel::kPadded;
    o.dtype = "bfloat16";
    o.prefill_chunk = v.prefill_chunk;
    const double worst = CheckAgainstReference(dir, o, 3e-2, v.name + " bf16", &tokens, &ref);
    EXPECT_GT(worst, 1e-5) << v.name << ": the bfloat16 run looks like float32";
  }
}

struct Trace {
  std::vector<float> prefill;
  std::vector<std::vector<float>> steps;
};

constexpr int kTargetPrompt = 9, kTargetSteps = 20;

// The target sequence alone.
Trace RunAlone(ModelRunner& runner) {
  const int64_t vocab = runner.config().vocab_size;
  Trace t;
  auto seq = runner.AddSequence(kTargetPrompt + kTargetSteps);
  EXPECT_TRUE(seq.ok());
  EXPECT_TRUE(runner.Prefill(*seq, Prompt(kTargetPrompt, 0, vocab), &t.prefill).ok());
  int32_t next = Argmax(t.prefill.data(), vocab);
  std::vector<float> logits;
  for (int s = 0; s < kTargetSteps; ++s) {
    const int seqs[] = {*seq};
    const int32_t toks[] = {next};
    EXPECT_TRUE(runner.Decode(seqs, toks, &logits).ok());
    t.steps.push_back(logits);
    next = Argmax(logits.data(), vocab);
  }
  runner.RemoveSequence(*seq);
  return t;
}

// The target among 1..15 others of different prompt lengths that join at different steps (one
// leaves midway), at a position in the batch that moves every step.
Trace RunCrowded(ModelRunner& runner) {
  const int64_t vocab = runner.config().vocab_size;
  Trace t;
  struct Member {
    int seq;
    int32_t next;
  };
  std::vector<Member> members;
  auto target = runner.AddSequence(kTargetPrompt + kTargetSteps);
  EXPECT_TRUE(target.ok());
  EXPECT_TRUE(runner.Prefill(*target, Prompt(kTargetPrompt, 0, vocab), &t.prefill).ok());
  members.push_back({*target, Argmax(t.prefill.data(), vocab)});
  std::vector<float> logits;
  int joined = 0;
  for (int s = 0; s < kTargetSteps; ++s) {
    // One or two newcomers per step until the batch is full (16).
    for (int j = 0; j < 1 + (s % 2) && members.size() < 16; ++j, ++joined) {
      const int len = 2 + 3 * joined % 17;
      auto seq = runner.AddSequence(len + kTargetSteps + 1);
      EXPECT_TRUE(seq.ok()) << seq.status();
      std::vector<float> first;
      EXPECT_TRUE(runner.Prefill(*seq, Prompt(len, joined + 1, vocab), &first).ok());
      members.push_back({*seq, Argmax(first.data(), vocab)});
    }
    if (s == 10) {  // a finished sequence leaves (not the target)
      runner.RemoveSequence(members[2].seq);
      members.erase(members.begin() + 2);
    }
    // Rotate the batch so the target's row changes.
    std::rotate(members.begin(), members.begin() + (s * 5 % members.size()), members.end());
    std::vector<int> seqs;
    std::vector<int32_t> toks;
    for (const auto& m : members) {
      seqs.push_back(m.seq);
      toks.push_back(m.next);
    }
    EXPECT_TRUE(runner.Decode(seqs, toks, &logits).ok());
    for (size_t i = 0; i < members.size(); ++i) {
      members[i].next = Argmax(logits.data() + i * vocab, vocab);
      if (members[i].seq == *target) {
        t.steps.emplace_back(logits.begin() + i * vocab, logits.begin() + (i + 1) * vocab);
      }
    }
  }
  for (const auto& m : members) runner.RemoveSequence(m.seq);
  return t;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Two loads with `o`: the target alone on each must give the same bits (reproducibility), and
// alone vs among up to 15 others on the second (batch invariance).
void CheckAloneVsCrowdedAndAcrossLoads(const fs::path& dir, const RunnerOptions& o) {
  auto la = LoadModel(dir, o);
  auto lb = LoadModel(dir, o);
  ASSERT_TRUE(la.ok()) << la.status();
  ASSERT_TRUE(lb.ok()) << lb.status();
  ModelRunner& a = **la;
  ModelRunner& b = **lb;
  const Trace alone = RunAlone(a);
  const Trace alone_again = RunAlone(b);
  const Trace crowded = RunCrowded(b);
  ASSERT_EQ(alone.steps.size(), static_cast<size_t>(kTargetSteps));
  ASSERT_EQ(crowded.steps.size(), static_cast<size_t>(kTargetSteps));
  EXPECT_TRUE(SameBits(alone.prefill, alone_again.prefill))
      << a.path_description() << ": prefill differs across loads";
  EXPECT_TRUE(SameBits(alone.prefill, crowded.prefill)) << a.path_description();
  for (int s = 0; s < kTargetSteps; ++s) {
    EXPECT_TRUE(SameBits(alone.steps[s], alone_again.steps[s]))
        << a.path_description() << " step " << s << " differs across loads";
    EXPECT_TRUE(SameBits(alone.steps[s], crowded.steps[s]))
        << a.path_description() << " step " << s << " differs alone vs in a batch";
  }
  EXPECT_EQ(b.kv_bytes_used(), 0);
}

TEST(ModelDeterminismTest, AloneVsCrowdedAndAcrossLoads) {
  const fs::path dir = DeterminismModel();
  for (DecodeKernel kernel : {DecodeKernel::kAuto, DecodeKernel::kPortable}) {
    RunnerOptions o;
    o.device = "cpu";
    o.threads = 2;
    o.decode_kernel = kernel;
    CheckAloneVsCrowdedAndAcrossLoads(dir, o);
  }
}

// Prints how many of the target's decode steps differ in any bit alone vs in a batch, for a path
// allowed to differ (or not guaranteed here).
void ReportAloneVsCrowded(ModelRunner& runner, const std::string& label) {
  const Trace alone = RunAlone(runner), crowded = RunCrowded(runner);
  ASSERT_EQ(crowded.steps.size(), static_cast<size_t>(kTargetSteps));
  int differing = 0;
  for (int s = 0; s < kTargetSteps; ++s) differing += !SameBits(alone.steps[s], crowded.steps[s]);
  std::printf("[ premise  ] %s decode: %d/%d steps differ alone vs in a batch\n", label.c_str(),
              differing, kTargetSteps);
}

// kTorch is allowed to change bits with the batch; report whether it does here.
TEST(ModelDeterminismTest, TorchKernelReported) {
  const fs::path dir = DeterminismModel();
  RunnerOptions o;
  o.decode_kernel = DecodeKernel::kTorch;
  auto r = Load(dir, o);
  ASSERT_NE(r, nullptr);
  ReportAloneVsCrowded(*r, "kTorch");
}

// The tensor decode path (CUDA's, padded to max_batch) run on the CPU: OpenBLAS sees the same
// GEMM shapes whatever the load, as cuBLAS does on a GPU. Whether that keeps a row's bits on this
// machine is reported; the guarantee on CUDA is checked by ModelCudaTest.
TEST(ModelDeterminismTest, PaddedTensorPathOnCpuReported) {
  const fs::path dir = DeterminismModel();
  for (const char* dtype : {"float32", "bfloat16"}) {
    RunnerOptions o;
    o.device = "cpu";
    o.threads = 2;
    o.decode_kernel = DecodeKernel::kPadded;
    o.dtype = dtype;
    auto r = LoadModel(dir, o);
    ASSERT_TRUE(r.ok()) << r.status();
    ReportAloneVsCrowded(**r, (*r)->path_description());
  }
}

// On the fixed paths prefill's projections run through the fixed-order Gemm (threads split
// output panels, never K), so a prompt's logits must not depend on the thread count. 64 rows
// (two prefill chunks of 40 and 24) make every projection large enough to use the pool.
TEST(ModelDeterminismTest, PrefillSameBitsWithOneAndTwoThreads) {
  const fs::path dir = DeterminismModel();
  for (DecodeKernel kernel : {DecodeKernel::kAuto, DecodeKernel::kPortable}) {
    std::vector<float> by_threads[2];
    std::string path;
    for (int threads : {1, 2}) {
      RunnerOptions o;
      o.device = "cpu";
      o.threads = threads;
      o.decode_kernel = kernel;
      o.prefill_chunk = 40;
      auto r = LoadModel(dir, o);
      ASSERT_TRUE(r.ok()) << r.status();
      path = (*r)->path_description();
      auto seq = (*r)->AddSequence(80);
      ASSERT_TRUE(seq.ok()) << seq.status();
      const absl::Status st =
          (*r)->Prefill(*seq, Prompt(64, 3, (*r)->config().vocab_size), &by_threads[threads - 1]);
      ASSERT_TRUE(st.ok()) << st;
    }
    ASSERT_FALSE(by_threads[0].empty());
    EXPECT_TRUE(SameBits(by_threads[0], by_threads[1])) << path << ": 1 vs 2 threads";
  }
}

// The scheduler prefills a long prompt in several calls whose lengths are multiples of
// prefill_chunk (the last excepted): the runner must compute the same bits as in one call, on
// every path, for the last prompt position and the decode step after it.
TEST(ModelDeterminismTest, PrefillInChunkAlignedSlicesSameBitsAsOneCall) {
  const fs::path dir = DeterminismModel();
  for (DecodeKernel kernel : {DecodeKernel::kAuto, DecodeKernel::kTorch, DecodeKernel::kPadded}) {
    RunnerOptions o;
    o.device = "cpu";
    o.threads = 2;
    o.decode_kernel = kernel;
    o.prefill_chunk = 16;
    auto r = LoadModel(dir, o);
    ASSERT_TRUE(r.ok()) << r.status();
    ModelRunner& runner = **r;
    const auto prompt = Prompt(61, 5, runner.config().vocab_size);
    std::vector<std::vector<float>> last, next;
    for (const std::vector<int>& slices :
         std::vector<std::vector<int>>{{61}, {32, 16, 13}, {16, 45}, {48, 13}}) {
      auto seq = runner.AddSequence(64);
      ASSERT_TRUE(seq.ok()) << seq.status();
      std::vector<float> logits;
      size_t at = 0;
      for (int n : slices) {
        ASSERT_TRUE(runner.Prefill(*seq, std::span(prompt).subspan(at, n), &logits).ok());
        at += n;
      }
      last.push_back(logits);
      const int seqs[] = {*seq};
      const int32_t toks[] = {Argmax(logits.data(), runner.config().vocab_size)};
      ASSERT_TRUE(runner.Decode(seqs, toks, &logits).ok());
      next.push_back(logits);
      runner.RemoveSequence(*seq);
    }
    for (size_t i = 1; i < last.size(); ++i) {
      EXPECT_TRUE(SameBits(last[0], last[i])) << runner.path_description() << " slicing " << i;
      EXPECT_TRUE(SameBits(next[0], next[i])) << runner.path_description() << " slicing " << i;
    }
  }
}

TEST(ModelFingerprintTest, StableAcrossLoadsAndNamesThePath) {
  const fs::path dir = DeterminismModel();
  auto a = Load(dir, {});
  auto b = Load(dir, {});
  ASSERT_TRUE(a && b);
  auto fa = ComputeCanaryFingerprint(*a);
  auto fb = ComputeCanaryFingerprint(*b);
  ASSERT_TRUE(fa.ok()) << fa.status();
  ASSERT_TRUE(fb.ok()) << fb.status();
  EXPECT_EQ(*fa, *fb);
  EXPECT_EQ(a->kv_bytes_capacity(), 0) << "the canary must free its sequences";
  RunnerOptions portable;
  portable.decode_kernel = DecodeKernel::kPortable;
  auto p = Load(dir, portable);
  ASSERT_NE(p, nullptr);
  auto fp = ComputeCanaryFingerprint(*p);
  ASSERT_TRUE(fp.ok()) << fp.status();
  if (a->path_description() != p->path_description()) {
    EXPECT_NE(*fa, *fp);
  }
  std::printf("[ canary   ] %s %s\n", a->path_description().c_str(), crypto::ToHex(*fa).c_str());
}

TEST(ModelRunnerTest, ArgumentErrors) {
  auto r = Load(DeterminismModel(), {});
  ASSERT_NE(r, nullptr);
  const int64_t vocab = r->config().vocab_size;
  EXPECT_EQ(r->AddSequence(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->AddSequence(1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  auto seq = r->AddSequence(4);
  ASSERT_TRUE(seq.ok());
  std::vector<float> logits;
  const std::vector<int32_t> bad = {static_cast<int32_t>(vocab)};
  EXPECT_EQ(r->Prefill(*seq, bad, &logits).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->Prefill(*seq + 1, {{1}}, &logits).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->Prefill(*seq, Prompt(5, 0, vocab), &logits).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(r->Prefill(*seq, Prompt(3, 0, vocab), &logits).ok());
  EXPECT_EQ(r->kv_bytes_used() * 4, r->kv_bytes_capacity() * 3);
  const int seqs[] = {*seq, *seq};
  const int32_t toks[] = {1, 2};
  EXPECT_EQ(r->Decode(seqs, toks, &logits).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(r->Decode(std::span(seqs, 1), std::span(toks, 1), &logits).ok());
  EXPECT_EQ(r->Decode(std::span(seqs, 1), std::span(toks, 1), &logits).code(),
            absl::StatusCode::kResourceExhausted);  // full at 4 tokens
  r->RemoveSequence(*seq);
  r->RemoveSequence(12345);  // ignored
  // Slots run out at max_batch.
  std::vector<int> held;
  for (int i = 0; i < 16; ++i) {
    auto s = r->AddSequence(2);
    ASSERT_TRUE(s.ok()) << i;
    held.push_back(*s);
  }
  EXPECT_EQ(r->AddSequence(2).status().code(), absl::StatusCode::kResourceExhausted);
}

// Device, dtype and decode-kernel combinations the loader refuses, each with a message that names
// what to use instead; and the kernel names round-trip.
TEST(ModelRunnerTest, DeviceDtypeKernelChoices) {
  const fs::path dir = DeterminismModel();
  auto load = [&](const std::string& device, const std::string& dtype, DecodeKernel kernel) {
    RunnerOptions o;
    o.device = device;
    o.dtype = dtype;
    o.decode_kernel = kernel;
    o.threads = 1;
    return LoadModel(dir, o);
  };
  // bfloat16 on the CPU only on the tensor path; float16 never on the CPU.
  auto bf16_fixed = load("cpu", "bfloat16", DecodeKernel::kAuto);
  EXPECT_EQ(bf16_fixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bf16_fixed.status().message().find("padded"), std::string::npos) << bf16_fixed.status();
  EXPECT_EQ(load("cpu", "float16", DecodeKernel::kPadded).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto bf16_padded = load("cpu", "bfloat16", DecodeKernel::kPadded);
  ASSERT_TRUE(bf16_padded.ok()) << bf16_padded.status();
  EXPECT_EQ((*bf16_padded)->path_description(), "cpu/BFloat16/torch-padded/max_batch=16/threads=1");
  EXPECT_EQ(load("tpu", "auto", DecodeKernel::kAuto).status().code(),
            absl::StatusCode::kInvalidArgument);
  // No CUDA here, or a GPU machine without 64 GPUs.
  EXPECT_EQ(load("cuda:63", "auto", DecodeKernel::kAuto).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto cuda_fixed = load("cuda", "auto", DecodeKernel::kPortable);
  EXPECT_TRUE(cuda_fixed.status().code() == absl::StatusCode::kInvalidArgument ||
              cuda_fixed.status().code() == absl::StatusCode::kFailedPrecondition)
      << cuda_fixed.status();
  for (DecodeKernel k : {DecodeKernel::kAuto, DecodeKernel::kAvx2, DecodeKernel::kPortable,
                         DecodeKernel::kTorch, DecodeKernel::kPadded}) {
    auto parsed = ParseDecodeKernel(DecodeKernelName(k));
    ASSERT_TRUE(parsed.ok()) << DecodeKernelName(k);
    EXPECT_EQ(*parsed, k);
  }
  EXPECT_EQ(ParseDecodeKernel("fast").status().code(), absl::StatusCode::kInvalidArgument);
}

// Rewrites `src`'s weights into `dst` with one tensor dropped or replaced.
void RewriteWeights(const fs::path& src, const fs::path& dst, const std::string& drop,
                    const std::string& reshape) {
  fs::create_directories(dst);
  fs::copy_file(src / "config.json", dst / "config.json", fs::copy_options::overwrite_existing);
  auto store = WeightStore::Open(src);
  ASSERT_TRUE(store.ok()) << store.status();
  SafetensorsWriter w;
  for (const std::string& name : (*store)->Names()) {
    if (name == drop) continue;
    auto view = (*store)->Get(name);
    ASSERT_TRUE(view.ok());
    if (name == reshape) {
      std::vector<int64_t> shape = view->shape;
      shape[0] += 1;
      std::vector<uint8_t> bytes(view->bytes.begin(), view->bytes.end());
      bytes.resize(bytes.size() + bytes.size() / view->shape[0], 0);
      ASSERT_TRUE(w.Add(name, view->dtype, shape, bytes).ok());
    } else {
      ASSERT_TRUE(w.Add(name, view->dtype, view->shape, view->bytes).ok());
    }
  }
  ASSERT_TRUE(w.Write(dst / "model.safetensors").ok());
}

TEST(ModelLoaderTest, MissingAndMisshapedTensorsNamed) {
  const fs::path src = DeterminismModel();
  const std::string missing = "model.layers.1.mlp.up_proj.weight";
  const std::string misshaped = "model.layers.0.self_attn.k_proj.weight";
  RewriteWeights(src, TestRoot() / "missing", missing, "");
  RewriteWeights(src, TestRoot() / "misshaped", "", misshaped);
  RunnerOptions o;
  o.device = "cpu";
  auto r1 = LoadModel(TestRoot() / "missing", o);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.status().message().find(missing), std::string::npos) << r1.status();
  auto r2 = LoadModel(TestRoot() / "misshaped", o);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r2.status().message().find(misshaped), std::string::npos) << r2.status();
  EXPECT_NE(r2.status().message().find("model.safetensors"), std::string::npos) << r2.status();
  auto r3 = LoadModel(TestRoot() / "does-not-exist", o);
  EXPECT_FALSE(r3.ok());
  o.dtype = "bfloat16";
  EXPECT_EQ(LoadModel(src, o).status().code(), absl::StatusCode::kInvalidArgument);
}

// The benchmark's device bandwidth probe: a positive figure on the CPU, clear errors otherwise.
TEST(ModelBandwidthTest, MeasuresCpuAndRefusesBadDevices) {
  auto cpu = MeasureReadBandwidth("cpu", int64_t{64} << 20, 2);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_GT(*cpu, 1e8);  // any machine that runs this reads faster than 100 MB/s
  EXPECT_EQ(MeasureReadBandwidth("cpu", 1000, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MeasureReadBandwidth("quantum:0", int64_t{1} << 20, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto cuda = MeasureReadBandwidth("cuda", int64_t{64} << 20, 1);
  if (test::CudaRuns(cuda.status())) {
    EXPECT_GT(*cuda, 1e9);  // any GPU reads faster than 1 GB/s
  }
}

// ---- CUDA (skipped where the linked libtorch has no CUDA or no GPU is visible) ----

// Whether `dir` loads on "cuda". Without CUDA the loader must say so with FAILED_PRECONDITION
// (any other failure is a test failure), and with ATOMA_REQUIRE_CUDA set (scripts/gpu-kit.sh on a
// GPU machine) a missing GPU fails the test instead of skipping it.
bool CudaAvailable(const fs::path& dir) {
  RunnerOptions o;
  o.device = "cuda";
  return test::CudaRuns(LoadModel(dir, o).status());
}

// Every dtype against the NumPy reference: float32 as tight as the CPU (cuBLAS does not use TF32
// for float32 unless asked), float16 (10-bit mantissa) 1e-2, bfloat16 3e-2 as on the CPU.
TEST(ModelCudaTest, LogitsNearReference) {
  const Variant v = Variants()[3];  // qkv_bias: every projection kind
  const fs::path dir = Synth(v.name, v.synth);
  if (!CudaAvailable(dir)) GTEST_SKIP() << "no CUDA in this libtorch or no GPU visible";
  std::vector<int32_t> tokens;
  std::vector<double> ref;
  for (const auto& [dtype, tol] : std::vector<std::pair<std::string, double>>{
           {"float32", 1e-4}, {"float16", 1e-2}, {"bfloat16", 3e-2}}) {
    RunnerOptions o;
    o.device = "cuda";
    o.dtype = dtype;
    CheckAgainstReference(dir, o, tol, "cuda " + dtype, &tokens, &ref);
  }
}

// The determinism contract on the GPU: padded decode gives a sequence the same bits alone and
// among 1..15 others, across loads, in each dtype.
TEST(ModelCudaTest, PaddedDecodeBatchInvariantAndReproducible) {
  const fs::path dir = DeterminismModel();
  if (!CudaAvailable(dir)) GTEST_SKIP() << "no CUDA in this libtorch or no GPU visible";
  for (const char* dtype : {"bfloat16", "float16", "float32"}) {
    RunnerOptions o;
    o.device = "cuda";
    o.dtype = dtype;
    CheckAloneVsCrowdedAndAcrossLoads(dir, o);
  }
}

// The canary on the GPU: computable (alone == crowded inside it), stable across loads, and named
// by its own path.
TEST(ModelCudaTest, CanaryStableAcrossLoads) {
  const fs::path dir = DeterminismModel();
  if (!CudaAvailable(dir)) GTEST_SKIP() << "no CUDA in this libtorch or no GPU visible";
  RunnerOptions o;
  o.device = "cuda";
  auto a = LoadModel(dir, o);
  auto b = LoadModel(dir, o);
  ASSERT_TRUE(a.ok() && b.ok());
  auto fa = ComputeCanaryFingerprint(**a);
  auto fb = ComputeCanaryFingerprint(**b);
  ASSERT_TRUE(fa.ok()) << fa.status();
  ASSERT_TRUE(fb.ok()) << fb.status();
  EXPECT_EQ(*fa, *fb);
  EXPECT_TRUE((*a)->path_description().starts_with("cuda/BFloat16/torch-padded/"))
      << (*a)->path_description();
  std::printf("[ canary   ] %s %s\n", (*a)->path_description().c_str(), crypto::ToHex(*fa).c_str());
}

// Unpadded (kTorch on CUDA) is allowed to change bits with the batch; report whether it does.
TEST(ModelCudaTest, UnpaddedDecodeReported) {
  const fs::path dir = DeterminismModel();
  if (!CudaAvailable(dir)) GTEST_SKIP() << "no CUDA in this libtorch or no GPU visible";
  RunnerOptions o;
  o.device = "cuda";
  o.decode_kernel = DecodeKernel::kTorch;
  auto r = LoadModel(dir, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ReportAloneVsCrowded(**r, (*r)->path_description());
}

}  // namespace
}  // namespace atoma::engine
