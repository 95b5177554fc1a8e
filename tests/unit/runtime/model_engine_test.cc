// The Engine over the real model: a synthesized `tiny` Llama folder loaded through
// Engine::Make(options). Determinism (DESIGN §3) is the point: a request's tokens and fp32 logits
// are bit-identical alone, among 1..15 other requests of different lengths and arrival times, and
// across two independently loaded engines; sampled outputs with a fixed seed are reproducible.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "atoma/engine/engine.h"
#include "atoma/engine/model.h"
#include "atoma/engine/synth.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/cuda.h"

namespace atoma::engine {
namespace {

using std::chrono::milliseconds;

struct Output {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;
  std::vector<double> logprobs;
  std::string text;
  FinishReason finish = FinishReason::kNone;
  absl::Status status;
};

Output Collect(RequestHandle& h) {
  Output o;
  for (;;) {
    StreamEvent ev;
    if (!h.Next(&ev, milliseconds(60000))) {
      ADD_FAILURE() << "timed out";
      return o;
    }
    o.text += ev.text;
    if (ev.final) {
      EXPECT_EQ(ev.output_ids, o.ids);
      o.finish = ev.finish_reason;
      o.status = ev.status;
      return o;
    }
    o.ids.push_back(ev.token_id);
    o.logits.push_back(std::move(ev.logits));
    o.logprobs.push_back(ev.logprob);
  }
}

// Bitwise comparison of logits (EXPECT_EQ on floats would accept -0 == +0 and reject NaN == NaN).
bool SameBits(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return false;
    if (!a[i].empty() && std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

class ModelEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("atoma_rt_tiny_" + std::to_string(::getpid())));
    SynthOptions so;
    so.preset = "tiny";
    so.seed = 11;
    so.out_dir = *dir_ / "tiny";
    synth_status_ = new absl::Status(SynthesizeModel(so));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    std::filesystem::remove_all(*dir_, ec);
    delete dir_;
    delete synth_status_;
  }
  void SetUp() override { ASSERT_TRUE(synth_status_->ok()) << *synth_status_; }

  static EngineOptions Options(int max_running = 16) {
    EngineOptions o;
    o.model_dir = *dir_ / "tiny";
    o.runner.device = "cpu";
    o.runner.threads = 2;
    o.runner.max_batch = 16;
    o.runner.max_seq_len = 512;
    o.max_running = max_running;
    o.max_queue = 64;
    return o;
  }
  static std::unique_ptr<Engine> Load(int max_running = 16) {
    auto e = Engine::Make(Options(max_running));
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  static GenerateRequest Request(int prompt_len, int max_tokens, uint64_t salt,
                                 double temperature = 0.0) {
    GenerateRequest r;
    std::mt19937 rng(static_cast<uint32_t>(salt));
    for (int i = 0; i < prompt_len; ++i) r.prompt_ids.push_back(3 + rng() % 250);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;  // fixed lengths: a random model may draw EOS at any step
    r.return_logits = true;
    r.sampling.temperature = temperature;
    r.sampling.seed = salt;
    if (temperature > 0) {
      r.sampling.top_p = 0.9;
      r.sampling.top_k = 50;
    }
    for (int i = 0; i < 32; ++i) r.request_key[i] = static_cast<uint8_t>(salt * 31 + i);
    return r;
  }

  static void CheckBatchInvariance(Engine* engine);

  static std::filesystem::path* dir_;
  static absl::Status* synth_status_;
};

std::filesystem::path* ModelEngineTest::dir_ = nullptr;
absl::Status* ModelEngineTest::synth_status_ = nullptr;

TEST_F(ModelEngineTest, LoadsInfoAndGeneratesText) {
  auto engine = Load();
  ASSERT_NE(engine, nullptr);
  const ModelInfo& info = engine->info();
  EXPECT_EQ(info.id, "tiny");
  auto digest = ComputeModelDigest(*dir_ / "tiny");
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(info.digest, *digest);
  EXPECT_GT(info.config.vocab_size, 0);
  EXPECT_FALSE(info.path_description.empty());
  ASSERT_NE(engine->tokenizer(), nullptr);
  // The fingerprint measured at load equals one measured on an independently loaded runner.
  ASSERT_TRUE(info.fingerprint.ok()) << info.fingerprint.status();
  auto runner = LoadModel(*dir_ / "tiny", Options().runner);
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto fp = ComputeCanaryFingerprint(**runner);
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(*info.fingerprint, *fp);

  GenerateRequest r;
  r.prompt_ids = engine->tokenizer()->Encode("The quick brown fox", false);
  ASSERT_FALSE(r.prompt_ids.empty());
  r.max_tokens = 16;
  r.ignore_eos = true;
  r.sampling.top_logprobs = 5;
  auto h = engine->Submit(r);
  ASSERT_TRUE(h.ok()) << h.status();
  Output o = Collect(**h);
  EXPECT_EQ(o.finish, FinishReason::kLength) << o.status;
  EXPECT_EQ(o.ids.size(), 16u);
  EXPECT_EQ(o.text, engine->tokenizer()->Decode(o.ids, true));
  EXPECT_EQ(engine->stats().tokens_generated, 16);
}

// Stop strings over the real byte-level BPE tokenizer: the streamed text ends right before the
// first occurrence, and the tokens after the completing one are never generated.
TEST_F(ModelEngineTest, StopStringOverRealTokenizer) {
  auto engine = Load();
  ASSERT_NE(engine, nullptr);
  // Seeded sampling: a random tiny model's greedy output is repetitive.
  GenerateRequest base = Request(9, 40, 77, 1.0);
  base.return_logits = false;
  Output full = Collect(**engine->Submit(base));
  ASSERT_EQ(full.finish, FinishReason::kLength) << full.status;
  const std::string& text = full.text;
  ASSERT_EQ(text, engine->tokenizer()->Decode(full.ids, true));
  // Three ASCII bytes, preferably from the second half of the text.
  size_t pos = std::string::npos;
  for (size_t k = 0; k < text.size() && pos == std::string::npos; ++k) {
    const size_t p = (text.size() / 2 + k) % text.size();
    if (p + 3 <= text.size() && !(text[p] & 0x80) && !(text[p + 1] & 0x80) &&
        !(text[p + 2] & 0x80)) {
      pos = p;
    }
  }
  if (pos == std::string::npos) GTEST_SKIP() << "no ASCII run in: " << text;
  const std::string stop = text.substr(pos, 3);
  GenerateRequest r = base;
  r.stop_strings = {stop};
  Output o = Collect(**engine->Submit(r));
  EXPECT_EQ(o.finish, FinishReason::kStop);
  EXPECT_EQ(o.text, text.substr(0, text.find(stop)));
  ASSERT_LE(o.ids.size(), full.ids.size());
  EXPECT_EQ(o.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + o.ids.size()));
  // The completing token's text reaches past the start of the stop string.
  const std::string upto = engine->tokenizer()->Decode(o.ids, true);
  EXPECT_GE(upto.size(), text.find(stop) + stop.size());
  const std::string before =
      engine->tokenizer()->Decode(std::vector<int32_t>(o.ids.begin(), o.ids.end() - 1), true);
  EXPECT_LT(before.size(), text.find(stop) + stop.size());
}

TEST_F(ModelEngineTest, MissingFolderIsAnErrorNotACrash) {
  EngineOptions o = Options();
  o.model_dir = *dir_ / "does-not-exist";
  auto e = Engine::Make(o);
  EXPECT_FALSE(e.ok());
}

// A request alone, then among 1, 4, 9 and 15 others that arrive before and during it: the same
// tokens, logits and logprobs, greedy and sampled.
void ModelEngineTest::CheckBatchInvariance(Engine* engine) {
  ASSERT_NE(engine, nullptr);
  for (double temperature : {0.0, 0.9}) {
    SCOPED_TRACE(temperature);
    const GenerateRequest target = Request(13, 20, 1000, temperature);
    Output alone = Collect(**engine->Submit(target));
    ASSERT_EQ(alone.finish, FinishReason::kLength) << alone.status;
    ASSERT_EQ(alone.ids.size(), 20u);
    for (int others : {1, 4, 9, 15}) {
      SCOPED_TRACE(others);
      std::vector<std::shared_ptr<RequestHandle>> hs;
      const EngineStats before = engine->stats();
      // Half the others arrive first and run longer than the target, so the target joins a
      // running batch and shares its decode steps; the rest arrive while it decodes.
      for (int i = 0; i < others / 2; ++i) {
        hs.push_back(*engine->Submit(Request(1 + (i * 7) % 40, 60 + (i * 5) % 30, i + 1, 0.7)));
      }
      auto th = engine->Submit(target);
      ASSERT_TRUE(th.ok()) << th.status();
      for (int i = others / 2; i < others; ++i) {
        std::this_thread::sleep_for(milliseconds(i % 3));
        hs.push_back(*engine->Submit(Request(1 + (i * 11) % 50, 4 + (i * 3) % 25, i + 1)));
      }
      Output together = Collect(**th);
      for (auto& h : hs) EXPECT_EQ(Collect(*h).finish, FinishReason::kLength);
      // The comparison means something only if decode steps were really shared (counted by the
      // scheduler, not sampled by a watcher thread that a loaded machine may starve).
      const EngineStats after = engine->stats();
      EXPECT_GT(after.decode_rows - before.decode_rows, after.decode_steps - before.decode_steps);
      EXPECT_EQ(together.ids, alone.ids);
      EXPECT_TRUE(SameBits(together.logits, alone.logits));
      EXPECT_EQ(together.logprobs, alone.logprobs);
    }
  }
}

TEST_F(ModelEngineTest, BatchInvariantTokensAndLogits) { CheckBatchInvariance(Load().get()); }

// The same on a GPU (bfloat16, decode padded to max_batch); skipped where this libtorch has no
// CUDA or no GPU is visible.
TEST_F(ModelEngineTest, CudaBatchInvariantTokensAndLogits) {
  EngineOptions o = Options();
  o.runner.device = "cuda";
  auto engine = Engine::Make(o);
  if (!test::CudaRuns(engine.status())) GTEST_SKIP() << engine.status();
  CheckBatchInvariance(engine->get());
}

// Two engines loaded independently from the same folder produce the same bits, for greedy and
// seeded sampled requests, run concurrently on each.
TEST_F(ModelEngineTest, TwoEnginesAgreeBitForBit) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i) reqs.push_back(Request(2 + i * 5, 10 + i, 50 + i, i % 2 ? 0.8 : 0.0));
  std::vector<std::vector<Output>> outs(2);
  for (int e = 0; e < 2; ++e) {
    auto engine = Load(e == 0 ? 16 : 2);
    ASSERT_NE(engine, nullptr);
    std::vector<std::shared_ptr<RequestHandle>> hs;
    for (const auto& r : reqs) hs.push_back(*engine->Submit(r));
    for (auto& h : hs) outs[e].push_back(Collect(*h));
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(outs[0][i].finish, FinishReason::kLength) << outs[0][i].status;
    EXPECT_EQ(outs[0][i].ids, outs[1][i].ids);
    EXPECT_TRUE(SameBits(outs[0][i].logits, outs[1][i].logits));
  }
  // Seeds matter: a different seed changes a sampled output.
  auto engine = Load();
  GenerateRequest other = reqs[1];
  other.sampling.seed += 1;
  EXPECT_NE(Collect(**engine->Submit(other)).ids, outs[0][1].ids);
}

}  // namespace
}  // namespace atoma::engine
