#include "atoma/node/node.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "atoma/consensus/request.h"
#include "atoma/engine/synth.h"
#include "atoma/ledger/ledger.h"

namespace atoma::node {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// What the fakes saw, in order.
struct Journal {
  std::mutex mu;
  std::vector<std::string> events;
  NodeContext* ctx = nullptr;  // to check the draining flag at each step
  void Add(const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
  }
};

// A recording engine: Init/Shutdown tests check what the node asked of its engines and when. It
// serves nothing (Submit refuses), which is all these tests need.
class FakeEngine : public engine::Engine {
 public:
  FakeEngine(const engine::EngineOptions& options, Journal* journal, milliseconds drain_time)
      : journal_(journal), drain_time_(drain_time) {
    info_.id = options.model_id;
    info_.dir = options.model_dir;
    info_.path_description = "fake";
    options_ = options;
  }
  const engine::ModelInfo& info() const override { return info_; }
  const engine::Tokenizer* tokenizer() const override { return nullptr; }
  absl::StatusOr<std::shared_ptr<engine::RequestHandle>> Submit(engine::GenerateRequest) override {
    return absl::UnavailableError("fake engine");
  }
  void Shutdown(milliseconds deadline) override {
    journal_->Add("engine " + info_.id + " shutdown draining=" +
                  std::to_string(journal_->ctx != nullptr && journal_->ctx->draining.load()) +
                  " deadline=" + std::to_string(deadline.count()));
    std::this_thread::sleep_for(std::min(drain_time_, deadline));
  }
  engine::EngineStats stats() const override { return {}; }

  engine::EngineOptions options_;

 private:
  engine::ModelInfo info_;
  Journal* journal_;
  milliseconds drain_time_;
};

class FakeServer : public api::Server {
 public:
  FakeServer(Journal* journal, api::NodeControl control)
      : control_(std::move(control)), journal_(journal) {}
  int port() const override { return 43210; }
  void Shutdown(milliseconds) override { journal_->Add("server shutdown"); }
  void Wait() override { journal_->Add("server wait"); }
  void SetAdminToken(std::string token) override { admin_token_ = std::move(token); }
  api::NodeControl control_;
  std::string admin_token_ = "(unset)";

 private:
  Journal* journal_;
};

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("atoma_node_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "models" / "a");
    fs::create_directories(dir_ / "models" / "b");
    key_ = crypto::PrivateKey::Generate().value().SecretHex();
    auto key = crypto::PrivateKey::FromHex(key_).value();
    ASSERT_TRUE(crypto::WriteKeyFile(dir_ / "node.key", key, false).ok());
    address_ = crypto::AddressToString(key.address());
    config_.node.key_file = dir_ / "node.key";
    config_.node.data_dir = dir_ / "data";
    config_.api.listen = "127.0.0.1:0";
    config_.api.ports_file = dir_ / "ports.json";
    config_.engine.threads = 1;
    config_.models = {{"a", dir_ / "models" / "a"}, {"b", dir_ / "models" / "b"}};
    config_.shutdown.drain_deadline_ms = 500;
  }
  void TearDown() override { fs::remove_all(dir_); }

  Components Fakes(milliseconds drain_time = milliseconds(0)) {
    Components c;
    c.make_engine =
        [this, drain_time](
            const engine::EngineOptions& o) -> absl::StatusOr<std::unique_ptr<engine::Engine>> {
      journal_.Add("make engine " + o.model_id);
      auto e = std::make_unique<FakeEngine>(o, &journal_, drain_time);
      engines_.push_back(e.get());
      return e;
    };
    c.start_server = [this](
                         const api::ServerOptions& o, std::vector<engine::Engine*> engines,
                         api::NodeControl control) -> absl::StatusOr<std::unique_ptr<api::Server>> {
      journal_.Add("start server " + o.listen_address + " with " + std::to_string(engines.size()) +
                   " engines");
      server_options_ = o;
      auto s = std::make_unique<FakeServer>(&journal_, std::move(control));
      server_ = s.get();
      return s;
    };
    return c;
  }

  fs::path dir_;
  std::string key_;
  std::string address_;
  config::NodeConfig config_;
  Journal journal_;
  std::vector<FakeEngine*> engines_;
  FakeServer* server_ = nullptr;
  api::ServerOptions server_options_;
};

TEST_F(NodeTest, InitBuildsInOrderAndShutdownIsOrdered) {
  NodeContext ctx;
  journal_.ctx = &ctx;
  config_.api.max_concurrent_generations = 7;
  config_.api.allow_anonymous = false;
  config_.engine.max_batch = 8;
  config_.engine.max_running = 4;
  config_.engine.decode_kernel = "portable";
  config_.engine.sampling_threads = 3;
  config_.engine.max_prefill_tokens_per_step = 99;
  ASSERT_TRUE(Init(config_, Fakes(), &ctx).ok());
  EXPECT_EQ(crypto::AddressToString(ctx.key->address()), address_);
  EXPECT_EQ(ctx.port, 43210);
  EXPECT_TRUE(fs::is_directory(dir_ / "data"));
  EXPECT_EQ(ReadFile(dir_ / "ports.json"), "{\"grpc\": 43210}\n");
  ASSERT_EQ(engines_.size(), 2u);
  // Config reaches the engines and the server.
  EXPECT_EQ(engines_[0]->options_.model_dir, dir_ / "models" / "a");
  EXPECT_EQ(engines_[0]->options_.runner.threads, 1);
  EXPECT_EQ(engines_[0]->options_.runner.max_batch, 8);
  EXPECT_EQ(engines_[0]->options_.max_running, 4);
  EXPECT_EQ(engines_[0]->options_.runner.decode_kernel, engine::DecodeKernel::kPortable);
  EXPECT_EQ(engines_[0]->options_.sampling_threads, 3);
  EXPECT_EQ(engines_[0]->options_.max_prefill_tokens_per_step, 99);
  EXPECT_EQ(engines_[0]->options_.max_queue, 64);
  EXPECT_EQ(engines_[0]->options_.runner.prefill_chunk, 512);
  EXPECT_EQ(server_options_.max_concurrent_generations, 7);
  EXPECT_FALSE(server_options_.allow_anonymous);
  // NodeControl: the key's address, and drain flips the context's flag.
  EXPECT_EQ(server_->control_.node_address, address_);
  EXPECT_FALSE(server_->control_.version.empty());
  EXPECT_FALSE(server_->control_.draining());
  server_->control_.drain();
  EXPECT_TRUE(ctx.draining.load());
  EXPECT_TRUE(server_->control_.draining());
  ctx.draining = false;

  Shutdown(ctx);
  Shutdown(ctx);  // idempotent
  std::vector<std::string> shutdown_events(journal_.events.begin() + 3, journal_.events.end());
  std::sort(shutdown_events.begin(), shutdown_events.begin() + 2);  // engines drain in parallel
  EXPECT_EQ(journal_.events[0], "make engine a");
  EXPECT_EQ(journal_.events[1], "make engine b");
  EXPECT_EQ(journal_.events[2], "start server 127.0.0.1:0 with 2 engines");
  EXPECT_EQ(shutdown_events, (std::vector<std::string>{"engine a shutdown draining=1 deadline=500",
                                                       "engine b shutdown draining=1 deadline=500",
                                                       "server shutdown", "server wait"}));
  EXPECT_FALSE(fs::exists(dir_ / "ports.json")) << "ports file left behind";
}

TEST_F(NodeTest, EnginesDrainInParallelWithinTheDeadline) {
  NodeContext ctx;
  config_.shutdown.drain_deadline_ms = 300;
  ASSERT_TRUE(Init(config_, Fakes(milliseconds(10000)), &ctx).ok());
  const auto start = std::chrono::steady_clock::now();
  Shutdown(ctx);
  const auto took = std::chrono::steady_clock::now() - start;
  // Two engines that each use the whole 300 ms deadline: ~300 ms together, not 600.
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(550));
}

TEST_F(NodeTest, DestructorShutsDown) {
  {
    NodeContext ctx;
    ASSERT_TRUE(Init(config_, Fakes(), &ctx).ok());
  }
  EXPECT_EQ(journal_.events.back(), "server wait");
}

// The admin token is read at start (owner-only, >= 16 characters) and again by ReloadSecrets
// (SIGHUP); a token file that fails then keeps the token in force.
TEST_F(NodeTest, AdminTokenAtStartAndOnReload) {
  const fs::path file = dir_ / "admin.token";
  auto write = [&](const std::string& text, mode_t mode) {
    std::ofstream(file, std::ios::trunc) << text;
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
  };
  config_.api.admin_token_file = file;
  write("too-short\n", 0600);
  {
    NodeContext ctx;
    absl::Status s = Init(config_, Fakes(), &ctx);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("at least 16 characters"), std::string::npos) << s;
  }
  write("  first-token-0123456789\n", 0600);
  NodeContext ctx;
  ASSERT_TRUE(Init(config_, Fakes(), &ctx).ok());
  EXPECT_EQ(server_options_.admin_token, "first-token-0123456789");
  write("second-token-0123456789", 0600);
  EXPECT_TRUE(ReloadSecrets(ctx).ok());
  EXPECT_EQ(server_->admin_token_, "second-token-0123456789");
  write("third-token-0123456789", 0644);  // others may read it: refused, the second stays
  EXPECT_EQ(ReloadSecrets(ctx).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(server_->admin_token_, "second-token-0123456789");
}

TEST_F(NodeTest, RefusesKeyReadableByOthers) {
  ASSERT_EQ(::chmod((dir_ / "node.key").c_str(), 0644), 0);
  NodeContext ctx;
  absl::Status s = Init(config_, Fakes(), &ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("node.key_file"), std::string::npos) << s;
  EXPECT_NE(s.message().find("chmod 600 " + (dir_ / "node.key").string()), std::string::npos) << s;
  EXPECT_TRUE(journal_.events.empty()) << "built components despite a bad key";
}

TEST_F(NodeTest, MissingKeyFile) {
  config_.node.key_file = dir_ / "none.key";
  NodeContext ctx;
  absl::Status s = Init(config_, Fakes(), &ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("atoma-cli keygen"), std::string::npos) << s;
}

TEST_F(NodeTest, MissingModelFolderUnwindsEarlierEngines) {
  config_.models[1].path = dir_ / "models" / "missing";
  NodeContext ctx;
  absl::Status s = Init(config_, Fakes(), &ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("models[1] (b): model folder " + (dir_ / "models/missing").string() +
                             " does not exist"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("atoma-cli model synth"), std::string::npos);
  EXPECT_EQ(journal_.events,
            (std::vector<std::string>{"make engine a", "engine a shutdown draining=0 deadline=0"}));
  EXPECT_TRUE(ctx.engines.empty());
}

TEST_F(NodeTest, UnloadableModelNamesTheModel) {
  Components c = Fakes();
  auto make = c.make_engine;
  c.make_engine =
      [make](const engine::EngineOptions& o) -> absl::StatusOr<std::unique_ptr<engine::Engine>> {
    if (o.model_id == "b") return absl::InvalidArgumentError("config.json: missing hidden_size");
    return make(o);
  };
  NodeContext ctx;
  journal_.ctx = &ctx;
  absl::Status s = Init(config_, c, &ctx);
  EXPECT_EQ(s.message(), "models[1] (b): config.json: missing hidden_size");
  EXPECT_EQ(journal_.events.back(), "engine a shutdown draining=1 deadline=0");
}

TEST_F(NodeTest, ServerStartFailureUnwinds) {
  Components c = Fakes();
  c.start_server = [](const api::ServerOptions&, std::vector<engine::Engine*>,
                      api::NodeControl) -> absl::StatusOr<std::unique_ptr<api::Server>> {
    return absl::UnavailableError("address in use");
  };
  NodeContext ctx;
  absl::Status s = Init(config_, c, &ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "api.listen (127.0.0.1:0): address in use");
  EXPECT_TRUE(ctx.engines.empty());
}

TEST_F(NodeTest, PortsFileFailureUnwinds) {
  config_.api.ports_file = dir_ / "no" / "such" / "dir" / "ports.json";
  NodeContext ctx;
  absl::Status s = Init(config_, Fakes(), &ctx);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("api.ports_file"), std::string::npos) << s;
  EXPECT_TRUE(ctx.server == nullptr);
  EXPECT_TRUE(ctx.engines.empty());
}

TEST(PortsFile, AtomicReplace) {
  const fs::path dir = fs::temp_directory_path() / ("atoma_ports_" + std::to_string(getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(WritePortsFile(dir / "p.json", 1).ok());
  ASSERT_TRUE(WritePortsFile(dir / "p.json", 50051).ok());
  EXPECT_EQ(ReadFile(dir / "p.json"), "{\"grpc\": 50051}\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(Threads, OpenBlasCountIsSetAtRunTime) {
  using GetFn = int (*)();
  auto get = reinterpret_cast<GetFn>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const std::string one = ApplyThreadSettings(1);
  EXPECT_STREQ(std::getenv("OPENBLAS_NUM_THREADS"), "1");
  EXPECT_STREQ(std::getenv("OMP_NUM_THREADS"), "1");
  if (get == nullptr) GTEST_SKIP() << "OpenBLAS is not loaded in this build: " << one;
  EXPECT_EQ(get(), 1);
  EXPECT_EQ(one.rfind("openblas=1", 0), 0u) << one;
  ApplyThreadSettings(2);
  EXPECT_EQ(get(), 2);
  ApplyThreadSettings(1);
  EXPECT_EQ(get(), 1);
}

TEST(Signals, SignalAndTriggerWakeWait) {
  auto signal = ShutdownSignal::Install();
  ASSERT_TRUE(signal.ok()) << signal.status();
  EXPECT_EQ(ShutdownSignal::Install().status().code(), absl::StatusCode::kFailedPrecondition);
  (*signal)->Trigger();
  EXPECT_EQ((*signal)->Wait(), 0);
  std::thread sender([] {
    std::this_thread::sleep_for(milliseconds(50));
    ::kill(::getpid(), SIGTERM);
  });
  EXPECT_EQ((*signal)->Wait(), SIGTERM);
  sender.join();
  signal->reset();
  // The previous (default) disposition is back, and a new instance can be installed.
  struct sigaction now {};
  ::sigaction(SIGTERM, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  EXPECT_TRUE(ShutdownSignal::Install().ok());
}

// SIGHUP (reload) wakes Wait() with its number and never counts as the first of two stops.
TEST(Signals, HangupIsAReloadNotAStop) {
  auto signal = ShutdownSignal::Install();
  ASSERT_TRUE(signal.ok()) << signal.status();
  for (int i = 0; i < 3; ++i) {
    ::raise(SIGHUP);
    EXPECT_EQ((*signal)->Wait(), SIGHUP);
  }
  ::raise(SIGTERM);  // the first stop request: Wait() returns, the process lives
  EXPECT_EQ((*signal)->Wait(), SIGTERM);
  signal->reset();
  struct sigaction now {};
  ::sigaction(SIGHUP, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
}

TEST(SignalsDeathTest, SecondSignalExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto signal = ShutdownSignal::Install();
        ::raise(SIGINT);
        (void)(*signal)->Wait();
        ::raise(SIGINT);  // as if the operator pressed Ctrl-C again during shutdown
        std::this_thread::sleep_for(milliseconds(2000));
        std::exit(0);
      },
      ::testing::ExitedWithCode(128 + SIGINT), "");
}

// RunNode's start-up errors: one line on stderr, exit code 2.
TEST_F(NodeTest, RunNodeStartupErrorsExit2WithOneLine) {
  const auto run = [](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStderr();
    const int code = RunNode(static_cast<int>(argv.size()), argv.data(), /*reexec=*/false);
    return std::make_pair(code, ::testing::internal::GetCapturedStderr());
  };
  auto [code, err] = run({"atoma-node", "--config", (dir_ / "missing.yaml").string()});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(err, "atoma-node: config file " + (dir_ / "missing.yaml").string() + " not found\n");

  std::ofstream(dir_ / "node.yaml") << "node:\n  key_file: node.key\nmodels:\n  - path: models/a\n"
                                       "engine:\n  max_batch: 0\n";
  std::tie(code, err) = run({"atoma-node", "--config", (dir_ / "node.yaml").string()});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(err, "atoma-node: " + (dir_ / "node.yaml").string() +
                     ": engine.max_batch: must be between 1 and 256, got 0\n");

  std::ofstream(dir_ / "node.yaml") << "node:\n  key_file: node.key\nmodels:\n  - path: models/a\n";
  ASSERT_EQ(::chmod((dir_ / "node.key").c_str(), 0640), 0);
  std::tie(code, err) = run({"atoma-node", "--config", (dir_ / "node.yaml").string()});
  EXPECT_EQ(code, 2);
  // The start-up log lines come first; the error is the last line, whole.
  ASSERT_FALSE(err.empty());
  const size_t last = err.rfind('\n', err.size() - 2);
  const std::string last_line = err.substr(last == std::string::npos ? 0 : last + 1);
  EXPECT_EQ(last_line.rfind("atoma-node: node.key_file: key file ", 0), 0u) << err;
  EXPECT_NE(last_line.find("; run: chmod 600 " + (dir_ / "node.key").string() + "\n"),
            std::string::npos)
      << err;

  std::tie(code, err) =
      run({"atoma-node", "--config", (dir_ / "node.yaml").string(), "--listen", "nope"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(err, "atoma-node: --listen: expected host:port, got \"nope\" (no port)\n");
}

// The real thing: a synthesized tiny model, the real engine and the real gRPC server on port 0.
TEST_F(NodeTest, InitServesASynthesizedModel) {
  engine::SynthOptions synth;
  synth.preset = "tiny";
  synth.seed = 5;
  synth.out_dir = dir_ / "models" / "tiny";
  ASSERT_TRUE(engine::SynthesizeModel(synth).ok());
  config_.models = {{"tiny", synth.out_dir}};
  NodeContext ctx;
  absl::Status s = Init(config_, Components::Default(), &ctx);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_GT(ctx.port, 0);
  EXPECT_EQ(ReadFile(dir_ / "ports.json"), "{\"grpc\": " + std::to_string(ctx.port) + "}\n");
  ASSERT_EQ(ctx.engines.size(), 1u);
  EXPECT_EQ(ctx.engines[0]->info().id, "tiny");
  EXPECT_EQ(ctx.engines[0]->info().digest, engine::ComputeModelDigest(synth.out_dir).value());
  // The engine really generates.
  engine::GenerateRequest request;
  request.prompt_ids = {1, 2, 3};
  request.max_tokens = 4;
  request.ignore_eos = true;
  auto handle = ctx.engines[0]->Submit(request);
  ASSERT_TRUE(handle.ok()) << handle.status();
  engine::StreamEvent event;
  do {
    ASSERT_TRUE((*handle)->Next(&event, milliseconds(10000)));
  } while (!event.final);
  EXPECT_EQ(event.completion_tokens, 4);
  Shutdown(ctx);
  EXPECT_FALSE(fs::exists(dir_ / "ports.json"));
  // After shutdown the engine refuses work.
  EXPECT_FALSE(ctx.engines[0]->Submit(request).ok());
}

// Start-up with a model folder that exists but holds no model: the real loader's error, prefixed
// with the model entry.
TEST_F(NodeTest, InitWithEmptyModelFolderFails) {
  config_.models = {{"a", dir_ / "models" / "a"}};
  NodeContext ctx;
  absl::Status s = Init(config_, Components::Default(), &ctx);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("models[0] (a): ", 0), 0u) << s;
}

// ledger.backend embedded: the node opens the ledger, registers its bound endpoint and the
// echelon of its model, and on a restart updates the registration instead of failing.
TEST_F(NodeTest, InitWithEmbeddedLedgerRegistersEndpointAndEchelon) {
  engine::SynthOptions synth;
  synth.preset = "tiny";
  synth.seed = 5;
  synth.out_dir = dir_ / "models" / "tiny";
  ASSERT_TRUE(engine::SynthesizeModel(synth).ok());
  config_.models = {{"tiny", synth.out_dir}};
  config_.ledger.backend = "embedded";
  config_.ledger.path = dir_ / "ledger.db";
  for (int start = 0; start < 2; ++start) {
    NodeContext ctx;
    absl::Status s = Init(config_, Components::Default(), &ctx);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_NE(ctx.consensus, nullptr);
    auto ledger = ledger::OpenEmbeddedLedger(config_.ledger.path).value();
    const ledger::NodeInfo info = ledger->GetNode(ctx.key->address()).value();
    EXPECT_EQ(info.endpoint, "127.0.0.1:" + std::to_string(ctx.port));
    ASSERT_EQ(info.echelons.size(), 1u);
    const engine::ModelInfo& model = ctx.engines[0]->info();
    EXPECT_EQ(info.echelons[0].model_digest, model.digest);
    EXPECT_EQ(info.echelons[0].echelon_id,
              consensus::EchelonId(model.digest, model.fingerprint.value()));
    EXPECT_TRUE(fs::exists(config_.node.data_dir / "journal.db"));
    Shutdown(ctx);
  }
}

}  // namespace
}  // namespace atoma::node
