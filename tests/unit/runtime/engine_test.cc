// The scheduler and Engine facade over the fake runner (fakes.h): outputs, continuous batching
// without cross-talk, stop handling, validation, queue limits, cancellation, shutdown and runner
// faults.
#include "atoma/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fakes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atoma::engine {
namespace {

using std::chrono::milliseconds;
using testing::FakeControl;
using testing::FakeLogits;
using testing::FakeRunner;
using testing::FakeTokenizer;
using ::testing::HasSubstr;
using testing::kFakeEos;
using testing::kFakeVocab;

struct Result {
  std::vector<StreamEvent> tokens;
  StreamEvent final;
  std::string text;  // all streamed text, token events and final event
  std::vector<double> logprobs;
};

Result Collect(RequestHandle& h, milliseconds timeout = milliseconds(20000)) {
  Result r;
  for (;;) {
    StreamEvent ev;
    if (!h.Next(&ev, timeout)) {
      ADD_FAILURE() << "timed out waiting for an event";
      return r;
    }
    r.text += ev.text;
    if (ev.final) {
      r.final = std::move(ev);
      return r;
    }
    r.logprobs.push_back(ev.logprob);
    r.tokens.push_back(std::move(ev));
  }
}

struct Fixture {
  std::shared_ptr<FakeControl> control = std::make_shared<FakeControl>();
  std::unique_ptr<Engine> engine;
};

Fixture MakeFixture(EngineOptions opt = {}, bool with_tokenizer = true,
                    std::shared_ptr<FakeControl> control = nullptr) {
  Fixture f;
  if (control) f.control = control;
  auto runner = std::make_unique<FakeRunner>(f.control, opt.runner.max_seq_len);
  auto e = Engine::Make(opt, std::move(runner),
                        with_tokenizer ? std::make_unique<FakeTokenizer>() : nullptr);
  EXPECT_TRUE(e.ok()) << e.status();
  if (e.ok()) f.engine = *std::move(e);
  return f;
}

GenerateRequest Req(std::vector<int32_t> prompt, int max_tokens, double temperature = 0,
                    uint64_t seed = 0) {
  GenerateRequest r;
  r.prompt_ids = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = seed;
  for (int i = 0; i < 32; ++i) r.request_key[i] = static_cast<uint8_t>(i * 7 + seed);
  return r;
}

Result RunOne(Engine& e, GenerateRequest r) {
  auto h = e.Submit(std::move(r));
  EXPECT_TRUE(h.ok()) << h.status();
  if (!h.ok()) return {};
  return Collect(**h);
}

// Greedy generation computed directly from the fake logits, independent of the engine.
std::vector<int32_t> ReferenceGreedy(std::vector<int32_t> history, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = FakeLogits(history);
    const int32_t t = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    out.push_back(t);
    history.push_back(t);
  }
  return out;
}

TEST(EngineTest, GreedyGenerationMatchesReference) {
  auto f = MakeFixture();
  const std::vector<int32_t> prompt = {5, 9, 17, 33};
  GenerateRequest r = Req(prompt, 12);
  r.sampling.top_logprobs = 3;
  Result res = RunOne(*f.engine, r);
  const std::vector<int32_t> expected = ReferenceGreedy(prompt, 12);
  EXPECT_EQ(res.final.output_ids, expected);
  EXPECT_EQ(res.final.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(res.final.status.ok());
  EXPECT_EQ(res.final.prompt_tokens, 4);
  EXPECT_EQ(res.final.completion_tokens, 12);
  ASSERT_EQ(res.tokens.size(), 12u);
  FakeTokenizer tok;
  EXPECT_EQ(res.text, tok.Decode(expected, true));
  std::vector<int32_t> history = prompt;
  for (size_t i = 0; i < res.tokens.size(); ++i) {
    EXPECT_EQ(res.tokens[i].token_id, expected[i]);
    ASSERT_EQ(res.tokens[i].top_logprobs.size(), 3u);
    EXPECT_EQ(res.tokens[i].top_logprobs[0].token_id, expected[i]);
    EXPECT_EQ(res.tokens[i].top_logprobs[0].logprob, res.tokens[i].logprob);
    EXPECT_LT(res.tokens[i].logprob, 0.0);
    EXPECT_TRUE(res.tokens[i].logits.empty());
    history.push_back(expected[i]);
  }
  EXPECT_EQ(f.control->contract_violations.load(), 0);
  const EngineStats st = f.engine->stats();
  EXPECT_EQ(st.requests_finished, 1);
  EXPECT_EQ(st.tokens_generated, 12);
  EXPECT_EQ(st.decode_steps, 11);  // the first token comes from the prefill logits
  EXPECT_GT(st.prefill_seconds, 0);
  EXPECT_GT(st.decode_seconds, 0);
  EXPECT_GT(st.sample_seconds, 0);
  EXPECT_EQ(f.engine->info().path_description, "fake/hash-logits");
  EXPECT_EQ(f.engine->info().config.vocab_size, kFakeVocab);
}

TEST(EngineTest, NextRepeatsFinalAndTimesOut) {
  auto control = std::make_shared<FakeControl>();
  control->prefill_gate = std::make_shared<absl::Notification>();
  auto f = MakeFixture({}, true, control);
  auto h = f.engine->Submit(Req({1, 2}, 2));
  ASSERT_TRUE(h.ok());
  StreamEvent ev;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE((*h)->Next(&ev, milliseconds(50)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(45));
  control->prefill_gate->Notify();
  Result r = Collect(**h);
  EXPECT_EQ(r.final.completion_tokens, 2);
  ASSERT_TRUE((*h)->Next(&ev, milliseconds(0)));
  EXPECT_TRUE(ev.final);
  EXPECT_EQ(ev.output_ids, r.final.output_ids);
}

// Many concurrent requests (greedy and sampled, different lengths, staggered arrivals, several
// submitting threads) each get exactly the tokens, logprobs and logits they get alone.
TEST(EngineTest, ConcurrentRequestsMatchSoloRuns) {
  constexpr int kRequests = 40;
  std::mt19937 rng(7);
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < kRequests; ++i) {
    std::vector<int32_t> prompt(1 + rng() % 12);
    for (auto& t : prompt) t = 1 + rng() % (kFakeVocab - 1);
    GenerateRequest r = Req(prompt, 1 + rng() % 30, (i % 3 == 0) ? 0.0 : 0.8, i);
    if (i % 3 == 2) {
      r.sampling.top_p = 0.9;
      r.sampling.top_k = 20;
    }
    r.sampling.top_logprobs = i % 4;
    r.return_logits = true;
    reqs.push_back(r);
  }
  std::vector<Result> solo(kRequests);
  {
    EngineOptions opt;
    opt.max_running = 1;
    opt.sampling_threads = 1;
    auto f = MakeFixture(opt);
    for (int i = 0; i < kRequests; ++i) solo[i] = RunOne(*f.engine, reqs[i]);
  }

  EngineOptions opt;
  opt.max_running = 8;
  opt.sampling_threads = 3;  // rows sampled on 3 threads here, on 1 in the solo runs
  auto f = MakeFixture(opt);
  f.control->decode_sleep_ms = 1;
  std::vector<Result> together(kRequests);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kRequests; i += 4) {
        std::this_thread::sleep_for(milliseconds((i * 3) % 7));
        auto h = f.engine->Submit(reqs[i]);
        ASSERT_TRUE(h.ok()) << h.status();
        together[i] = Collect(**h);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < kRequests; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(together[i].final.output_ids, solo[i].final.output_ids);
    EXPECT_EQ(together[i].final.finish_reason, solo[i].final.finish_reason);
    EXPECT_EQ(together[i].text, solo[i].text);
    EXPECT_EQ(together[i].logprobs, solo[i].logprobs);
    ASSERT_EQ(together[i].tokens.size(), solo[i].tokens.size());
    for (size_t k = 0; k < solo[i].tokens.size(); ++k) {
      EXPECT_EQ(together[i].tokens[k].logits, solo[i].tokens[k].logits);
      EXPECT_EQ(together[i].tokens[k].logits.size(), static_cast<size_t>(kFakeVocab));
    }
  }
  // The test is only meaningful if sequences really shared decode steps.
  EXPECT_GT(f.control->max_batch_seen.load(), 2);
  EXPECT_LE(f.control->max_batch_seen.load(), 8);
  EXPECT_EQ(f.control->contract_violations.load(), 0);
  EXPECT_EQ(f.engine->stats().requests_finished, kRequests);
  EXPECT_EQ(f.engine->stats().running, 0);
}

TEST(EngineTest, SampledOutputDependsOnSeedAndKeyOnly) {
  auto f = MakeFixture();
  GenerateRequest r = Req({3, 4, 5}, 25, 1.0, 99);
  Result a = RunOne(*f.engine, r);
  Result b = RunOne(*f.engine, r);
  EXPECT_EQ(a.final.output_ids, b.final.output_ids);
  GenerateRequest r2 = r;
  r2.sampling.seed = 100;
  GenerateRequest r3 = r;
  r3.request_key[0] ^= 1;
  EXPECT_NE(RunOne(*f.engine, r2).final.output_ids, a.final.output_ids);
  EXPECT_NE(RunOne(*f.engine, r3).final.output_ids, a.final.output_ids);
}

// Offsets where each token's text starts, for choosing stop strings that straddle boundaries.
std::vector<size_t> PieceStarts(const std::vector<int32_t>& ids) {
  std::vector<size_t> starts;
  size_t pos = 0;
  for (int32_t id : ids) {
    starts.push_back(pos);
    pos += testing::FakePiece(id).size();
  }
  return starts;
}

TEST(EngineTest, StopStringsAcrossTokenBoundariesAreNeverStreamed) {
  auto f = MakeFixture();
  int checked = 0;
  for (int p = 1; p < 12; ++p) {
    const GenerateRequest base = Req({p, p + 1, 2 * p}, 30);
    Result full = RunOne(*f.engine, base);
    ASSERT_EQ(full.final.output_ids.size(), 30u);
    const std::string text = full.text;
    const std::vector<size_t> starts = PieceStarts(full.final.output_ids);
    // A stop string that starts one byte before the boundary of tokens 6 and 7 and ends inside or
    // after token 7.
    const size_t begin = starts[7] - 1;
    const std::string stop = text.substr(begin, 3);
    const size_t first = text.find(stop);
    GenerateRequest r = base;
    r.stop_strings = {"never-occurs", stop};
    Result res = RunOne(*f.engine, r);
    SCOPED_TRACE(absl::StrCat("text='", text, "' stop='", stop, "'"));
    EXPECT_EQ(res.final.finish_reason, FinishReason::kStop);
    EXPECT_EQ(res.text, text.substr(0, first));
    EXPECT_EQ(res.text.find(stop), std::string::npos);
    // The stop completed with the token whose text covers byte first + 2; nothing after it ran.
    size_t completing = 0;
    while (completing + 1 < starts.size() && starts[completing + 1] <= first + stop.size() - 1) {
      ++completing;
    }
    EXPECT_EQ(res.final.output_ids,
              std::vector<int32_t>(full.final.output_ids.begin(),
                                   full.final.output_ids.begin() + completing + 1));
    ++checked;
  }
  EXPECT_EQ(checked, 11);
}

TEST(EngineTest, HeldBackTextIsReleasedAtTheEnd) {
  auto f = MakeFixture();
  GenerateRequest base = Req({7, 8, 9}, 10);
  Result full = RunOne(*f.engine, base);
  // A stop string whose first byte is the last byte of the output: the final piece is held back
  // as a possible prefix and must be released when max_tokens ends the request.
  GenerateRequest r = base;
  r.stop_strings = {full.text.substr(full.text.size() - 1) + "\x01"};
  Result res = RunOne(*f.engine, r);
  EXPECT_EQ(res.final.finish_reason, FinishReason::kLength);
  EXPECT_EQ(res.text, full.text);
  EXPECT_TRUE(res.final.text.empty());
}

TEST(EngineTest, StopTokenIdsAndEos) {
  auto f = MakeFixture();
  GenerateRequest base = Req({11, 12}, 20);
  Result full = RunOne(*f.engine, base);
  const int32_t stop_id = full.final.output_ids[5];
  const size_t first =
      std::find(full.final.output_ids.begin(), full.final.output_ids.end(), stop_id) -
      full.final.output_ids.begin();
  GenerateRequest r = base;
  r.stop_token_ids = {stop_id};
  Result res = RunOne(*f.engine, r);
  EXPECT_EQ(res.final.finish_reason, FinishReason::kStop);
  EXPECT_EQ(res.final.output_ids.size(), first + 1);
  EXPECT_EQ(res.final.output_ids.back(), stop_id);
  // The stop token's own text is not streamed.
  FakeTokenizer tok;
  EXPECT_EQ(res.text, tok.Decode(std::vector<int32_t>(full.final.output_ids.begin(),
                                                      full.final.output_ids.begin() + first),
                                 true));

  f.control->eos_after = 3;
  Result eos = RunOne(*f.engine, base);
  EXPECT_EQ(eos.final.finish_reason, FinishReason::kStop);
  ASSERT_EQ(eos.final.output_ids.size(), 4u);
  EXPECT_EQ(eos.final.output_ids.back(), kFakeEos);
  GenerateRequest ignore = base;
  ignore.ignore_eos = true;
  Result ign = RunOne(*f.engine, ignore);
  EXPECT_EQ(ign.final.finish_reason, FinishReason::kLength);
  EXPECT_EQ(ign.final.output_ids.size(), 20u);
}

TEST(EngineTest, ValidationNamesTheField) {
  EngineOptions opt;
  opt.max_prompt_tokens = 16;
  opt.max_new_tokens = 100;
  opt.runner.max_seq_len = 64;
  auto f = MakeFixture(opt);
  struct Case {
    GenerateRequest r;
    const char* field;
  };
  std::vector<Case> cases;
  auto add = [&](auto mutate, const char* field) {
    GenerateRequest r = Req({1, 2, 3}, 10);
    mutate(r);
    cases.push_back({r, field});
  };
  add([](GenerateRequest& r) { r.prompt_ids.clear(); }, "prompt_ids");
  add([](GenerateRequest& r) { r.prompt_ids.assign(17, 1); }, "prompt_ids");
  add([](GenerateRequest& r) { r.prompt_ids[1] = kFakeVocab; }, "prompt_ids");
  add([](GenerateRequest& r) { r.prompt_ids[2] = -1; }, "prompt_ids");
  add([](GenerateRequest& r) { r.max_tokens = 0; }, "max_tokens");
  add([](GenerateRequest& r) { r.max_tokens = 101; }, "max_tokens");
  add([](GenerateRequest& r) { r.max_tokens = 62; }, "max_tokens");  // 3 + 62 > 64
  add([](GenerateRequest& r) { r.sampling.top_p = 0; }, "sampling.top_p");
  add([](GenerateRequest& r) { r.sampling.top_p = 1.01; }, "sampling.top_p");
  add([](GenerateRequest& r) { r.sampling.temperature = -1; }, "sampling.temperature");
  add([](GenerateRequest& r) { r.sampling.temperature = std::nan(""); }, "sampling.temperature");
  add([](GenerateRequest& r) { r.sampling.top_k = -2; }, "sampling.top_k");
  add([](GenerateRequest& r) { r.sampling.top_logprobs = 21; }, "sampling.top_logprobs");
  add([](GenerateRequest& r) { r.sampling.top_logprobs = -1; }, "sampling.top_logprobs");
  add([](GenerateRequest& r) { r.stop_token_ids = {kFakeVocab + 5}; }, "stop_token_ids");
  add([](GenerateRequest& r) { r.stop_strings = {""}; }, "stop_strings");
  for (const Case& c : cases) {
    auto h = f.engine->Submit(c.r);
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(h.status().message(), HasSubstr(c.field));
  }
  // The bounds themselves are accepted.
  EXPECT_TRUE(RunOne(*f.engine, Req(std::vector<int32_t>(16, 1), 48)).final.status.ok());
  GenerateRequest edge = Req({1, 2, 3}, 61);
  edge.sampling.top_p = 1.0;
  edge.sampling.top_logprobs = 20;
  EXPECT_EQ(RunOne(*f.engine, edge).final.completion_tokens, 61);
  EXPECT_EQ(f.control->contract_violations.load(), 0);

  // Without a tokenizer stop strings cannot be matched.
  auto bare = MakeFixture(opt, /*with_tokenizer=*/false);
  GenerateRequest r = Req({1, 2}, 5);
  r.stop_strings = {"x"};
  EXPECT_THAT(bare.engine->Submit(r).status().message(), HasSubstr("stop_strings"));
  Result no_text = RunOne(*bare.engine, Req({1, 2}, 5));
  EXPECT_EQ(no_text.final.completion_tokens, 5);
  EXPECT_TRUE(no_text.text.empty());
}

TEST(EngineTest, BadOptionsAreRejected) {
  auto control = std::make_shared<FakeControl>();
  EngineOptions opt;
  opt.max_queue = 0;
  EXPECT_EQ(Engine::Make(opt, std::make_unique<FakeRunner>(control), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  opt = {};
  opt.max_running = 0;
  EXPECT_EQ(Engine::Make(opt, std::make_unique<FakeRunner>(control), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Engine::Make({}, nullptr, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, QueueFullIsResourceExhausted) {
  EngineOptions opt;
  opt.max_running = 1;
  opt.max_queue = 2;
  auto control = std::make_shared<FakeControl>();
  control->prefill_gate = std::make_shared<absl::Notification>();
  auto f = MakeFixture(opt, true, control);
  auto first = f.engine->Submit(Req({1}, 3));
  ASSERT_TRUE(first.ok());
  // Wait until the scheduler took the first request out of the queue (it blocks in Prefill).
  while (control->prefill_entered.load() == 0) std::this_thread::sleep_for(milliseconds(1));
  auto second = f.engine->Submit(Req({2}, 3));
  auto third = f.engine->Submit(Req({3}, 3));
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(f.engine->stats().waiting, 2);
  auto fourth = f.engine->Submit(Req({4}, 3));
  EXPECT_EQ(fourth.status().code(), absl::StatusCode::kResourceExhausted);
  control->prefill_gate->Notify();
  for (auto* h : {&first, &second, &third}) {
    EXPECT_EQ(Collect(***h).final.finish_reason, FinishReason::kLength);
  }
  EXPECT_TRUE(f.engine->Submit(Req({4}, 3)).ok());
}

TEST(EngineTest, CancelTakesEffectWithinOneDecodeStep) {
  EngineOptions opt;
  opt.max_new_tokens = 1000;
  auto f = MakeFixture(opt);
  // Steps long enough that a consumer delayed by a loaded machine still reads its tokens in time.
  f.control->decode_sleep_ms = 40;
  auto other = f.engine->Submit(Req({9, 9}, 12));
  auto h = f.engine->Submit(Req({1, 2, 3}, 1000));
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(other.ok());
  StreamEvent ev;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*h)->Next(&ev, milliseconds(5000)));
    ASSERT_FALSE(ev.final);
  }
  (*h)->Cancel();
  const auto t0 = std::chrono::steady_clock::now();
  int after = 0;
  for (;;) {
    ASSERT_TRUE((*h)->Next(&ev, milliseconds(5000)));
    if (ev.final) break;
    ++after;
  }
  const auto waited = std::chrono::steady_clock::now() - t0;
  // Tokens already queued before Cancel returned (at most a few consumed late) plus at most one.
  EXPECT_LE(after, 1 + 3);
  EXPECT_EQ(ev.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(ev.completion_tokens, 10);
  EXPECT_LT(waited, milliseconds(1000));  // at most two 40 ms steps, with a wide margin
  // The other request is unaffected.
  Result o = Collect(**other);
  EXPECT_EQ(o.final.finish_reason, FinishReason::kLength);
  EXPECT_EQ(o.final.output_ids, ReferenceGreedy({9, 9}, 12));
}

TEST(EngineTest, CancelStopsTokensAtOnceWhenConsumerIsCaughtUp) {
  EngineOptions opt;
  opt.max_new_tokens = 1000;
  auto f = MakeFixture(opt);
  f.control->decode_sleep_ms = 20;
  auto h = f.engine->Submit(Req({1, 2, 3}, 1000));
  ASSERT_TRUE(h.ok());
  StreamEvent ev;
  ASSERT_TRUE((*h)->Next(&ev, milliseconds(5000)));
  // Drain everything emitted so far, then cancel mid-step.
  while ((*h)->Next(&ev, milliseconds(0))) {
  }
  const int decodes_before = f.control->decode_calls.load();
  (*h)->Cancel();
  int after = 0;
  for (;;) {
    ASSERT_TRUE((*h)->Next(&ev, milliseconds(5000)));
    if (ev.final) break;
    ++after;
  }
  EXPECT_LE(after, 1);
  EXPECT_EQ(ev.finish_reason, FinishReason::kCancelled);
  EXPECT_LE(f.control->decode_calls.load() - decodes_before, 2);
}

TEST(EngineTest, CancelWhileWaitingAndDroppedHandle) {
  EngineOptions opt;
  opt.max_running = 1;
  opt.max_new_tokens = 1000;
  auto f = MakeFixture(opt);
  f.control->decode_sleep_ms = 2;
  auto busy = f.engine->Submit(Req({1}, 200));
  auto waiting = f.engine->Submit(Req({2}, 5));
  ASSERT_TRUE(busy.ok());
  ASSERT_TRUE(waiting.ok());
  (*waiting)->Cancel();
  Result w = Collect(**waiting);
  EXPECT_EQ(w.final.finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(w.final.completion_tokens, 0);
  // Dropping the handle cancels the request: the engine stops spending steps on it.
  busy->reset();
  for (int i = 0; i < 500 && f.engine->stats().requests_finished < 2; ++i) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  EXPECT_EQ(f.engine->stats().requests_finished, 2);
  EXPECT_LT(f.engine->stats().tokens_generated, 200);
}

TEST(EngineTest, ShutdownFinishesWhatItCanThenCancels) {
  EngineOptions opt;
  opt.max_new_tokens = 2000;
  auto f = MakeFixture(opt);
  f.control->decode_sleep_ms = 5;
  auto quick = f.engine->Submit(Req({1, 2}, 5));
  auto slow = f.engine->Submit(Req({3, 4}, 2000));
  ASSERT_TRUE(quick.ok());
  ASSERT_TRUE(slow.ok());
  StreamEvent ev;
  ASSERT_TRUE((*slow)->Next(&ev, milliseconds(5000)));
  const auto t0 = std::chrono::steady_clock::now();
  f.engine->Shutdown(milliseconds(300));
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_EQ(Collect(**quick).final.finish_reason, FinishReason::kLength);
  Result s = Collect(**slow);
  EXPECT_EQ(s.final.finish_reason, FinishReason::kCancelled);
  EXPECT_GT(s.final.completion_tokens, 1);
  EXPECT_LT(s.final.completion_tokens, 2000);
  EXPECT_EQ(f.engine->Submit(Req({1}, 1)).status().code(), absl::StatusCode::kUnavailable);
  f.engine->Shutdown(milliseconds(0));  // idempotent
  EXPECT_EQ(f.engine->stats().running, 0);
}

TEST(EngineTest, ShutdownCancelsQueuedRequestsAtTheDeadline) {
  EngineOptions opt;
  opt.max_running = 1;
  opt.max_new_tokens = 2000;
  auto f = MakeFixture(opt);
  f.control->decode_sleep_ms = 5;
  auto running = f.engine->Submit(Req({1}, 2000));
  auto queued1 = f.engine->Submit(Req({2}, 5));
  auto queued2 = f.engine->Submit(Req({3}, 5));
  ASSERT_TRUE(running.ok() && queued1.ok() && queued2.ok());
  f.engine->Shutdown(milliseconds(100));
  EXPECT_EQ(Collect(**running).final.finish_reason, FinishReason::kCancelled);
  for (auto* q : {&queued1, &queued2}) {
    Result r = Collect(***q);
    EXPECT_EQ(r.final.finish_reason, FinishReason::kCancelled);
    EXPECT_EQ(r.final.completion_tokens, 0);
    EXPECT_EQ(r.final.prompt_tokens, 1);
  }
  EXPECT_EQ(f.engine->stats().waiting, 0);
  EXPECT_EQ(f.engine->stats().requests_finished, 3);
}

TEST(EngineTest, ShutdownDrainsWhenEverythingFinishesInTime) {
  auto f = MakeFixture();
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 1; i <= 5; ++i) hs.push_back(*f.engine->Submit(Req({i}, 10)));
  f.engine->Shutdown(milliseconds(10000));
  for (int i = 0; i < 5; ++i) {
    Result r = Collect(*hs[i]);
    EXPECT_EQ(r.final.finish_reason, FinishReason::kLength);
    EXPECT_EQ(r.final.output_ids, ReferenceGreedy({i + 1}, 10));
  }
}

TEST(EngineTest, RunnerFaultsBecomeErrorEvents) {
  auto f = MakeFixture();
  f.control->fail_prefill_call = 0;
  Result pf = RunOne(*f.engine, Req({1, 2}, 5));
  EXPECT_EQ(pf.final.finish_reason, FinishReason::kError);
  EXPECT_THAT(pf.final.status.message(), HasSubstr("injected prefill failure"));
  EXPECT_TRUE(pf.tokens.empty());

  // A failed decode fails the sequences in that step; the engine goes on serving.
  f.control->fail_decode_call = f.control->decode_calls.load() + 2;
  Result dc = RunOne(*f.engine, Req({1, 2}, 10));
  EXPECT_EQ(dc.final.finish_reason, FinishReason::kError);
  EXPECT_THAT(dc.final.status.message(), HasSubstr("injected decode failure"));
  EXPECT_EQ(dc.final.completion_tokens, 3);

  f.control->throw_decode_call = f.control->decode_calls.load() + 1;
  Result th = RunOne(*f.engine, Req({1, 2}, 10));
  EXPECT_EQ(th.final.finish_reason, FinishReason::kError);
  EXPECT_THAT(th.final.status.message(), HasSubstr("fake torch error"));

  f.control->nan_decode_call = f.control->decode_calls.load();
  Result nan = RunOne(*f.engine, Req({1, 2}, 10));
  EXPECT_EQ(nan.final.finish_reason, FinishReason::kError);
  EXPECT_THAT(nan.final.status.message(), HasSubstr("NaN"));

  Result ok = RunOne(*f.engine, Req({1, 2}, 10));
  EXPECT_EQ(ok.final.finish_reason, FinishReason::kLength);
  EXPECT_EQ(ok.final.output_ids, ReferenceGreedy({1, 2}, 10));
  EXPECT_EQ(f.control->contract_violations.load(), 0);
  EXPECT_EQ(f.engine->stats().kv_bytes_used, 0);
  EXPECT_GT(f.engine->stats().kv_bytes_capacity, 0);
}

TEST(EngineTest, PrefillBudgetSpreadsAdmissionsOverDecodeSteps) {
  EngineOptions opt;
  opt.max_prefill_tokens_per_step = 10;
  auto f = MakeFixture(opt);
  f.control->decode_sleep_ms = 1;
  auto stream = f.engine->Submit(Req({1, 2, 3, 4, 5, 6, 7, 8}, 60));
  ASSERT_TRUE(stream.ok());
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 1; i <= 6; ++i) hs.push_back(*f.engine->Submit(Req({i, i, i, i, i, 9}, 5)));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(Collect(*hs[i]).final.output_ids,
              ReferenceGreedy({i + 1, i + 1, i + 1, i + 1, i + 1, 9}, 5));
  }
  EXPECT_EQ(Collect(**stream).final.output_ids, ReferenceGreedy({1, 2, 3, 4, 5, 6, 7, 8}, 60));
  // 8 + 6 and 6 + 6 tokens are over the budget: one prefill between two decode steps.
  EXPECT_EQ(f.control->max_prefills_between_decodes.load(), 1);

  // With a large budget the same burst is admitted at once.
  EngineOptions wide;
  auto g = MakeFixture(wide);
  g.control->prefill_gate = std::make_shared<absl::Notification>();
  std::vector<std::shared_ptr<RequestHandle>> gs;
  for (int i = 1; i <= 6; ++i) gs.push_back(*g.engine->Submit(Req({i, i, i, i, i, 9}, 5)));
  g.control->prefill_gate->Notify();
  for (auto& h : gs) EXPECT_EQ(Collect(*h).final.finish_reason, FinishReason::kLength);
  EXPECT_GE(g.control->max_prefills_between_decodes.load(), 2);
}

// A prompt longer than the budget is prefilled over several iterations, in slices on chunk
// boundaries, with decode steps of the running streams between them; every output is what it is
// alone.
TEST(EngineTest, LongPromptIsPrefilledInSlicesBetweenDecodeSteps) {
  EngineOptions opt;
  opt.runner.prefill_chunk = 4;
  opt.max_prefill_tokens_per_step = 8;
  auto control = std::make_shared<FakeControl>();
  control->prefill_chunk = 4;
  // The stream decodes for ~200 ms: long enough to still run while the long prompt is prefilled.
  control->decode_sleep_ms = 1;
  auto f = MakeFixture(opt, true, control);
  auto stream = f.engine->Submit(Req({9, 9}, 200));
  ASSERT_TRUE(stream.ok());
  StreamEvent ev;
  ASSERT_TRUE((*stream)->Next(&ev, milliseconds(5000)));  // decoding before the long prompt comes
  std::vector<int32_t> prompt;
  for (int i = 0; i < 50; ++i) prompt.push_back(1 + (i * 7) % 60);
  auto long_req = f.engine->Submit(Req(prompt, 5));
  ASSERT_TRUE(long_req.ok());
  EXPECT_EQ(Collect(**long_req).final.output_ids, ReferenceGreedy(prompt, 5));
  EXPECT_EQ(control->max_prefill_call_tokens.load(), 8);
  EXPECT_GE(control->prefill_calls.load(), 1 + 7);  // 50 tokens in slices of at most 8
  // Each slice was followed by a decode step of the stream, not by the next slice.
  EXPECT_EQ(control->max_prefills_between_decodes.load(), 1);
  Result rest = Collect(**stream);
  EXPECT_EQ(rest.final.output_ids, ReferenceGreedy({9, 9}, 200));
  EXPECT_EQ(control->contract_violations.load(), 0);

  // A budget below one chunk still prefills one chunk per iteration.
  EngineOptions tight = opt;
  tight.max_prefill_tokens_per_step = 1;
  auto c2 = std::make_shared<FakeControl>();
  c2->prefill_chunk = 4;
  auto g = MakeFixture(tight, true, c2);
  EXPECT_EQ(Collect(**g.engine->Submit(Req(prompt, 3))).final.output_ids,
            ReferenceGreedy(prompt, 3));
  EXPECT_EQ(c2->max_prefill_call_tokens.load(), 4);
  EXPECT_EQ(c2->contract_violations.load(), 0);
}

// A cancel, or the shutdown deadline, stops a long prefill between two slices.
TEST(EngineTest, CancelAndShutdownStopALongPrefill) {
  EngineOptions opt;
  opt.runner.prefill_chunk = 4;
  opt.max_prefill_tokens_per_step = 4;
  std::vector<int32_t> prompt(400, 3);
  {
    auto control = std::make_shared<FakeControl>();
    control->prefill_sleep_ms = 2;
    auto f = MakeFixture(opt, true, control);
    auto h = f.engine->Submit(Req(prompt, 5));
    ASSERT_TRUE(h.ok());
    for (int i = 0; i < 2000 && control->prefill_calls.load() < 3; ++i) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    (*h)->Cancel();
    Result r = Collect(**h);
    EXPECT_EQ(r.final.finish_reason, FinishReason::kCancelled);
    EXPECT_EQ(r.final.completion_tokens, 0);
    EXPECT_LT(control->prefill_calls.load(), 100) << "the whole prompt was prefilled";
    EXPECT_EQ(f.engine->stats().running, 0);
  }
  {
    auto control = std::make_shared<FakeControl>();
    control->prefill_sleep_ms = 5;  // 100 slices: about 500 ms
    auto f = MakeFixture(opt, true, control);
    auto h = f.engine->Submit(Req(prompt, 5));
    ASSERT_TRUE(h.ok());
    for (int i = 0; i < 2000 && control->prefill_calls.load() < 1; ++i) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    f.engine->Shutdown(milliseconds(30));
    Result r = Collect(**h);
    EXPECT_EQ(r.final.finish_reason, FinishReason::kCancelled);
    EXPECT_LT(control->prefill_calls.load(), 100);
  }
}

TEST(EngineTest, KvSlotExhaustionRequeuesUntilASlotFrees) {
  EngineOptions opt;
  opt.max_running = 6;
  auto control = std::make_shared<FakeControl>();
  control->max_slots = 2;
  auto f = MakeFixture(opt, true, control);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 1; i <= 6; ++i) hs.push_back(*f.engine->Submit(Req({i, i}, 8 + i)));
  for (int i = 0; i < 6; ++i) {
    Result r = Collect(*hs[i]);
    EXPECT_EQ(r.final.finish_reason, FinishReason::kLength) << r.final.status;
    EXPECT_EQ(r.final.output_ids, ReferenceGreedy({i + 1, i + 1}, 9 + i));
  }
  EXPECT_LE(control->max_batch_seen.load(), 2);
  EXPECT_EQ(control->contract_violations.load(), 0);
}

}  // namespace
}  // namespace atoma::engine
