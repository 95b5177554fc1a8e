#include "atoma/node/node.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/consensus/request.h"
#include "atoma/crypto/keys.h"
#include "atoma/ledger/evm_ledger.h"

#ifndef ATOMA_VERSION
#define ATOMA_VERSION "unknown"
#endif

namespace atoma::node {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<spdlog::logger> Log() { return GetLogger("node"); }

absl::StatusOr<engine::DecodeKernel> ParseDecodeKernel(const std::string& name) {
  if (name == "auto") return engine::DecodeKernel::kAuto;
  if (name == "avx2") return engine::DecodeKernel::kAvx2;
  if (name == "portable") return engine::DecodeKernel::kPortable;
  // Validate() already rejects anything else; this guards against the two drifting apart.
  return absl::InvalidArgumentError(absl::StrCat("engine.decode_kernel: unknown kernel ", name));
}

int ResolveThreads(int configured) {
  if (configured > 0) return configured;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

absl::StatusOr<engine::EngineOptions> MakeEngineOptions(const config::NodeConfig& c, size_t i) {
  const config::EngineSection& e = c.engine;
  engine::EngineOptions o;
  o.model_dir = c.models[i].path;
  o.model_id = c.models[i].id;
  o.runner.device = e.device;
  o.runner.dtype = e.dtype;
  o.runner.threads = ResolveThreads(e.threads);
  ASSIGN_OR_RETURN(o.runner.decode_kernel, ParseDecodeKernel(e.decode_kernel));
  o.runner.max_batch = e.max_batch;
  o.runner.max_seq_len = e.max_seq_len;
  o.runner.prefill_chunk = e.prefill_chunk;
  o.max_queue = e.max_queue;
  o.max_running = e.max_running;
  o.max_prompt_tokens = e.max_prompt_tokens;
  o.max_new_tokens = e.max_new_tokens;
  o.sampling_threads = e.sampling_threads;
  o.max_prefill_tokens_per_step = e.max_prefill_tokens_per_step;
  return o;
}

absl::Status Annotate(const absl::Status& status, const std::string& context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// api.admin_token_file: owner-only, the token trimmed, at least 16 characters.
absl::StatusOr<std::string> ReadAdminToken(const fs::path& path) {
  ASSIGN_OR_RETURN(std::string text, crypto::ReadOwnerOnlyFile(path, "api.admin_token_file", 4096));
  std::string token(absl::StripAsciiWhitespace(text));
  if (token.size() < 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("api.admin_token_file ", path.string(),
                     ": the token must be at least 16 characters (e.g. openssl rand -hex 32)"));
  }
  return token;
}

// A PEM file the config names; errors name the key.
absl::StatusOr<std::string> ReadTextFile(const fs::path& path, std::string_view key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(std::string(key), ": cannot read ", path.string()));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(key), ": ", path.string(), " is not PEM"));
  }
  return text;
}

// http.tls_cert_file and http.tls_key_file: (chain, key), at start and on SIGHUP.
absl::StatusOr<std::pair<std::string, std::string>> ReadHttpTls(const config::NodeConfig& c) {
  ASSIGN_OR_RETURN(std::string chain, ReadTextFile(c.http.tls_cert_file, "http.tls_cert_file"));
  ASSIGN_OR_RETURN(std::string key, ReadTextFile(c.http.tls_key_file, "http.tls_key_file"));
  return std::make_pair(std::move(chain), std::move(key));
}

void StopEpochTimer(NodeContext& ctx) {
  {
    std::lock_guard lock(ctx.timer_mu);
    ctx.timer_stop = true;
  }
  ctx.timer_cv.notify_all();
  if (ctx.epoch_timer.joinable()) ctx.epoch_timer.join();
}

// Tears down a partly built context after a failed Init, in the same order as Shutdown.
void Unwind(NodeContext& ctx) {
  ctx.draining = true;
  ctx.metrics_server.reset();
  ctx.http_server.reset();
  StopEpochTimer(ctx);
  if (ctx.consensus) ctx.consensus->Shutdown(std::chrono::milliseconds(0));
  if (ctx.cosigner) ctx.cosigner->Bind(nullptr);
  if (ctx.server) {
    ctx.server->Shutdown(std::chrono::milliseconds(0));
    ctx.server->Wait();
    ctx.server.reset();
  }
  ctx.consensus.reset();
  ctx.outbox.reset();
  ctx.journal.reset();
  ctx.ledger.reset();
  for (auto& e : ctx.engines) e->Shutdown(std::chrono::milliseconds(0));
  ctx.engines.clear();
}

// The ledger of `c.ledger.backend` (embedded or evm).
absl::StatusOr<std::unique_ptr<ledger::LedgerClient>> OpenLedger(
    const config::NodeConfig& c, const crypto::PrivateKey& key,
    std::shared_ptr<ledger::Cosigner> cosigner) {
  if (c.ledger.backend == "evm") {
    ledger::EvmLedgerOptions eo;
    eo.rpc_url = c.ledger.rpc_url;
    eo.chain_id = c.ledger.chain_id;
    auto contract = crypto::ParseAddress(c.ledger.contract);
    if (!contract.ok()) return Annotate(contract.status(), "ledger.contract");
    eo.contract = *contract;
    eo.confirmations = c.ledger.confirmations;
    eo.signers.push_back(key.Clone());
    // The node's own transactions (registration, epochs, settlements) survive a restart here.
    eo.journal_path = c.node.data_dir / "evm_transactions.db";
    eo.receipt_timeout = absl::Milliseconds(c.ledger.receipt_timeout_ms);
    eo.cosigner = std::move(cosigner);
    auto ledger = ledger::OpenEvmLedger(eo);
    if (!ledger.ok()) {
      return Annotate(ledger.status(), absl::StrCat("ledger (evm: ", c.ledger.rpc_url,
                                                    ", contract ", c.ledger.contract, ")"));
    }
    return ledger;
  }
  ledger::EmbeddedLedgerOptions lo;
  lo.chain_id = c.ledger.chain_id;
  lo.epoch_length_s = c.ledger.epoch_length_s;
  auto ledger = ledger::OpenEmbeddedLedger(c.ledger.path, lo);
  if (!ledger.ok()) {
    return Annotate(ledger.status(), absl::StrCat("ledger.path (", c.ledger.path.string(), ")"));
  }
  return ledger;
}

// ledger.backend embedded or evm: ledger, journal, outbox and the consensus runtime over the
// engines.
absl::Status StartConsensus(const config::NodeConfig& c, NodeContext& ctx) {
  auto log = Log();
  ctx.cosigner = std::make_shared<ledger::LateCosigner>();
  auto ledger = OpenLedger(c, *ctx.key, ctx.cosigner);
  if (!ledger.ok()) return ledger.status();
  ctx.ledger = std::move(*ledger);
  auto journal = journal::OpenJournal(c.node.data_dir);
  if (!journal.ok()) return Annotate(journal.status(), "node.data_dir (journal)");
  ctx.journal = std::move(*journal);
  journal::OutboxOptions oo;
  oo.submitter = ctx.key->address();
  oo.batch_size = static_cast<size_t>(c.consensus.settlement_batch_size);
  oo.max_delay = absl::Milliseconds(c.consensus.settlement_max_delay_ms);
  auto outbox = journal::SettlementOutbox::Start(*ctx.journal, *ctx.ledger, oo);
  if (!outbox.ok()) return Annotate(outbox.status(), "consensus (settlement outbox)");
  ctx.outbox = std::move(*outbox);
  peer::Dependencies deps;
  deps.key = &*ctx.key;
  deps.ledger = ctx.ledger.get();
  deps.journal = ctx.journal.get();
  deps.outbox = ctx.outbox.get();
  for (auto& e : ctx.engines) {
    const engine::ModelInfo& info = e->info();
    if (!info.fingerprint.ok()) {
      log->warn("model {}: no fingerprint, so it joins no echelon and serves no verified requests",
                info.id);
      continue;
    }
    deps.models.push_back({e.get(), consensus::EchelonId(info.digest, *info.fingerprint)});
  }
  peer::ConsensusOptions po;
  if (!c.consensus.peer_ca_file.empty()) {
    auto pem = ReadTextFile(c.consensus.peer_ca_file, "consensus.peer_ca_file");
    if (!pem.ok()) return pem.status();
    po.peer_root_certs_pem = *std::move(pem);
  }
  po.member_timeout_ms = c.consensus.member_timeout_ms;
  po.reattest_timeout_ms = c.consensus.reattest_timeout_ms;
  po.referee_timeout_ms = c.consensus.referee_timeout_ms;
  po.salt_timeout_ms = c.consensus.salt_timeout_ms;
  po.peer_call_timeout_ms = c.consensus.peer_call_timeout_ms;
  po.max_committee_size = static_cast<uint64_t>(c.consensus.max_committee_size);
  auto consensus = peer::ConsensusNode::Make(std::move(deps), po);
  if (!consensus.ok()) return Annotate(consensus.status(), "consensus");
  ctx.consensus = std::move(*consensus);
  ctx.cosigner->Bind(&ctx.consensus->cosigner());
  const auto params = ctx.ledger->GetParams();
  const auto epoch = ctx.ledger->CurrentEpoch();
  if (params.ok() && epoch.ok()) {
    log->info(
        "ledger {} (chain {}, ledger {}), epoch {}",
        c.ledger.backend == "evm" ? absl::StrCat("evm ", c.ledger.rpc_url) : c.ledger.path.string(),
        params->domain.chain_id, crypto::AddressToString(params->domain.ledger), epoch->number);
  }
  return absl::OkStatus();
}

// metrics.listen: samplers over the engines and the consensus runtime, then the /metrics server.
absl::Status StartMetrics(const config::NodeConfig& c, NodeContext& ctx) {
  std::vector<engine::Engine*> engines;
  for (auto& e : ctx.engines) engines.push_back(e.get());
  ctx.metrics->SetEngineSampler([engines] {
    std::vector<metrics::NodeMetrics::EngineSample> out;
    for (engine::Engine* e : engines) {
      const engine::EngineStats st = e->stats();
      out.push_back({e->info().id, st.running, st.waiting, st.kv_bytes_used, st.kv_bytes_capacity});
    }
    return out;
  });
  if (ctx.consensus) {
    peer::ConsensusNode* consensus = ctx.consensus.get();
    journal::SettlementOutbox* outbox = ctx.outbox.get();
    ctx.metrics->SetConsensusSampler([consensus, outbox] {
      const peer::PeerStats p = consensus->stats();
      metrics::NodeMetrics::ConsensusSample out;
      out.rounds_certified = p.rounds_certified;
      out.rounds_disputed = p.rounds_disputed;
      out.rounds_failed = p.rounds_failed;
      out.attestations_accepted = p.attestations_accepted;
      out.equivocations_reported = p.equivocations_reported;
      out.slashings_submitted = p.slashings_submitted;
      out.peer_call_errors = p.peer_call_errors;
      out.rejected = p.rejected;
      if (outbox != nullptr) {
        const journal::OutboxStats o = outbox->stats();
        out.settled = o.settled;
        out.settlement_rejected = o.rejected;
        out.settlement_calls_failed = o.failed_calls;
      }
      return out;
    });
  }
  auto server = metrics::MetricsServer::Start(c.metrics.listen, *ctx.metrics);
  if (!server.ok()) return Annotate(server.status(), "metrics.listen");
  ctx.metrics_server = std::move(*server);
  Log()->info("serving Prometheus metrics on {} (port {})", c.metrics.listen,
              ctx.metrics_server->bound_port());
  return absl::OkStatus();
}

// http.listen: the OpenAI-compatible API over the engines; refuses generations while draining.
absl::Status StartHttp(const config::NodeConfig& c, NodeContext& ctx) {
  std::vector<engine::Engine*> engines;
  for (auto& e : ctx.engines) engines.push_back(e.get());
  http::OpenAiOptions options;
  options.max_prompt_bytes = c.api.max_prompt_bytes;
  options.max_connections = c.api.max_concurrent_generations;
  std::atomic<bool>* draining = &ctx.draining;
  options.draining = [draining] { return draining->load(); };
  options.metrics = ctx.metrics.get();
  // Verified requests run their rounds here too (the consensus runtime outlives the HTTP server:
  // Shutdown and Unwind reset http_server first).
  if (ctx.consensus) {
    peer::ConsensusNode* runtime = ctx.consensus.get();
    options.submit_verified = [runtime](const consensus::ConsensusRequest& request,
                                        const crypto::Signature& signature) {
      return runtime->Submit(request, signature);
    };
    options.reveal_salt = [runtime](const std::array<uint8_t, 32>& request_id,
                                    const std::array<uint8_t, 32>& salt) {
      return runtime->RevealSalt(request_id, salt);
    };
  }
  options.allow_anonymous = c.api.allow_anonymous;
  if (!c.http.tls_cert_file.empty()) {
    ASSIGN_OR_RETURN(std::tie(options.tls_cert_chain_pem, options.tls_private_key_pem),
                     ReadHttpTls(c));
  }
  if (!c.http.api_keys_file.empty()) {
    absl::StatusOr<std::vector<std::string>> keys = http::LoadApiKeys(c.http.api_keys_file);
    if (!keys.ok()) return Annotate(keys.status(), "http.api_keys_file");
    options.api_keys = *std::move(keys);
    Log()->info("HTTP API: {} API key(s) from {}", options.api_keys.size(),
                c.http.api_keys_file.string());
  }
  const bool tls = !options.tls_cert_chain_pem.empty();
  auto server = http::OpenAiServer::Start(c.http.listen, std::move(engines), std::move(options));
  if (!server.ok()) {
    return Annotate(server.status(),
                    tls ? "http.tls_cert_file/http.tls_key_file or http.listen" : "http.listen");
  }
  ctx.http_server = std::move(*server);
  Log()->info("serving the OpenAI-compatible API on {} (port {})", c.http.listen,
              ctx.http_server->bound_port());
  return absl::OkStatus();
}

// The endpoint peers reach this node at: consensus.advertise, else api.listen with the bound
// port (a wildcard host becomes 127.0.0.1).
std::string AdvertisedEndpoint(const config::NodeConfig& c, int port) {
  if (!c.consensus.advertise.empty()) return c.consensus.advertise;
  std::string host = c.api.listen.substr(0, c.api.listen.rfind(':'));
  if (host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty()) host = "127.0.0.1";
  return absl::StrCat(host, ":", port);
}

absl::Status RegisterOnLedger(const config::NodeConfig& c, NodeContext& ctx) {
  std::vector<ledger::EchelonRef> echelons;
  for (auto& e : ctx.engines) {
    const engine::ModelInfo& info = e->info();
    if (!info.fingerprint.ok()) continue;
    echelons.push_back({info.digest, consensus::EchelonId(info.digest, *info.fingerprint)});
  }
  const std::string endpoint = AdvertisedEndpoint(c, ctx.port);
  const crypto::Address& self = ctx.key->address();
  absl::Status s = ctx.ledger->RegisterNode(self, endpoint, echelons);
  if (absl::IsAlreadyExists(s)) s = ctx.ledger->UpdateNode(self, endpoint, echelons);
  if (!s.ok()) return Annotate(s, "registering on the ledger");
  Log()->info("registered on the ledger: endpoint {}, {} echelon(s)", endpoint, echelons.size());
  for (const auto& e : echelons) Log()->info("echelon {}", crypto::ToHex(e.echelon_id));
  return absl::OkStatus();
}

// Opens the next epoch when the current one has lasted the ledger's epoch length.
// AdvanceEpochFrom makes it safe for several nodes to do this on one ledger.
void RunEpochTimer(NodeContext* ctx) {
  auto log = GetLogger("ledger");
  auto params = ctx->ledger->GetParams();
  const int64_t length_s = params.ok() ? static_cast<int64_t>(params->epoch_length_s) : 3600;
  std::unique_lock lock(ctx->timer_mu);
  while (!ctx->timer_stop) {
    int64_t wait_s = std::min<int64_t>(length_s, 60);
    auto epoch = ctx->ledger->CurrentEpoch();
    if (epoch.ok()) {
      const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
      const int64_t due = epoch->started_unix_s + length_s;
      if (now_s >= due) {
        auto next = ctx->ledger->AdvanceEpochFrom(epoch->number);
        if (next.ok()) log->info("opened epoch {}", next->number);
        wait_s = 1;
      } else {
        wait_s = std::min<int64_t>(due - now_s, 60);
      }
    }
    ctx->timer_cv.wait_for(lock, std::chrono::seconds(std::max<int64_t>(wait_s, 1)),
                           [ctx] { return ctx->timer_stop; });
  }
}

}  // namespace

Components Components::Default() {
  Components c;
  c.make_engine = [](const engine::EngineOptions& options) {
    return engine::Engine::Make(options);
  };
  c.start_server = [](const api::ServerOptions& options, std::vector<engine::Engine*> engines,
                      api::NodeControl control) {
    return api::Server::Start(options, std::move(engines), std::move(control));
  };
  return c;
}

void ReexecWithThreadEnvironment(int threads, char** argv) {
  if (std::getenv("ATOMA_NODE_REEXEC") != nullptr) {
    ::unsetenv("ATOMA_NODE_REEXEC");  // children of the node start clean
    return;
  }
  const std::string want = std::to_string(ResolveThreads(threads));
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* openblas = std::getenv("OPENBLAS_NUM_THREADS");
  if (policy != nullptr && openblas != nullptr && want == openblas) return;
  if (policy == nullptr) ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::setenv("OPENBLAS_NUM_THREADS", want.c_str(), 1);
  ::setenv("OMP_NUM_THREADS", want.c_str(), 1);
  ::setenv("ATOMA_NODE_REEXEC", "1", 1);
  ::execv("/proc/self/exe", argv);
  // execv failed (no /proc?): carry on; ApplyThreadSettings still sets OpenBLAS's count.
  ::unsetenv("ATOMA_NODE_REEXEC");
}

std::string ApplyThreadSettings(int threads) {
  const int n = ResolveThreads(threads);
  const std::string value = std::to_string(n);
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const std::string wait_policy =
      absl::StrCat(", OMP_WAIT_POLICY=", policy != nullptr ? policy : "(unset: workers spin)");
  // For libraries loaded or initialized after this point (and child processes).
  ::setenv("OPENBLAS_NUM_THREADS", value.c_str(), 1);
  ::setenv("OMP_NUM_THREADS", value.c_str(), 1);
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set = reinterpret_cast<SetFn>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetFn>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  std::string openblas = "openblas not loaded";
  if (set != nullptr) {
    set(n);
    openblas = absl::StrCat("openblas=", get != nullptr ? get() : n);
  }
  return absl::StrCat(openblas, ", torch intra-op=", n, " (set by the engine)", wait_policy);
}

absl::Status WritePortsFile(const fs::path& path, int grpc_port, int metrics_port, int http_port) {
  std::string text = absl::StrCat("{\"grpc\": ", grpc_port);
  if (metrics_port > 0) absl::StrAppend(&text, ", \"metrics\": ", metrics_port);
  if (http_port > 0) absl::StrAppend(&text, ", \"http\": ", http_port);
  text += "}\n";
  fs::path tmp = path;
  tmp += absl::StrCat(".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("api.ports_file: cannot create ", tmp.string(), ": ", std::strerror(errno)));
  }
  const ssize_t written = ::write(fd, text.data(), text.size());
  const int write_errno = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(text.size())) {
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("api.ports_file: writing ", tmp.string(), ": ", std::strerror(write_errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("api.ports_file: renaming to ", path.string(), ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

NodeContext::~NodeContext() {
  if (running) Shutdown(*this);
}

absl::Status Init(const config::NodeConfig& config, const Components& components,
                  NodeContext* ctx) {
  ctx->config = config;
  const config::NodeConfig& c = ctx->config;
  RETURN_IF_ERROR(InitLogging(LogOptions{.level = c.log.level, .json = c.log.format == "json"}));
  auto log = Log();
  log->info("atoma-node {} starting", ATOMA_VERSION);

  // Before any engine exists: OpenBLAS and libtorch size their pools from these.
  ctx->thread_settings = ApplyThreadSettings(c.engine.threads);
  log->info("threads: {}", ctx->thread_settings);

  auto key = crypto::ReadKeyFile(c.node.key_file);
  if (!key.ok()) return Annotate(key.status(), "node.key_file");
  ctx->key.emplace(std::move(*key));
  const std::string address = crypto::AddressToString(ctx->key->address());
  log->info("node address {} (key {})", address, c.node.key_file.string());

  std::error_code ec;
  fs::create_directories(c.node.data_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("node.data_dir: cannot create ",
                                                    c.node.data_dir.string(), ": ", ec.message()));
  }

  for (size_t i = 0; i < c.models.size(); ++i) {
    const config::ModelEntry& m = c.models[i];
    const std::string where = absl::StrCat("models[", i, "] (", m.id, ")");
    if (!fs::is_directory(m.path, ec)) {
      Unwind(*ctx);
      return absl::NotFoundError(absl::StrCat(
          where, ": model folder ", m.path.string(),
          " does not exist (make a test model with: atoma-cli model synth --preset tiny --out ",
          m.path.string(), ")"));
    }
    absl::StatusOr<engine::EngineOptions> options = MakeEngineOptions(c, i);
    absl::StatusOr<std::unique_ptr<engine::Engine>> made =
        options.ok() ? components.make_engine(*options)
                     : absl::StatusOr<std::unique_ptr<engine::Engine>>(options.status());
    if (!made.ok()) {
      Unwind(*ctx);
      return Annotate(made.status(), where);
    }
    const engine::ModelInfo& info = (*made)->info();
    // The fingerprint names the node's echelon (DESIGN §4.2); a node that is not batch-invariant
    // may serve but must not join one, which the operator should see at start.
    const std::string fingerprint =
        info.fingerprint.ok() ? crypto::ToHex(*info.fingerprint)
                              : absl::StrCat("none (", info.fingerprint.status().message(), ")");
    log->info("model {}: digest {} fingerprint {} path {} compute {}", info.id,
              crypto::ToHex(info.digest), fingerprint, info.dir.string(), info.path_description);
    ctx->engines.push_back(std::move(*made));
  }

  if (c.ledger.backend != "none") {
    absl::Status started = StartConsensus(c, *ctx);
    if (!started.ok()) {
      Unwind(*ctx);
      return started;
    }
  }

  if (!c.metrics.listen.empty()) ctx->metrics = std::make_unique<metrics::NodeMetrics>();

  api::ServerOptions server_options;
  server_options.consensus = ctx->consensus.get();
  server_options.metrics = ctx->metrics.get();
  if (!c.api.tls_cert_file.empty()) {
    auto cert = ReadTextFile(c.api.tls_cert_file, "api.tls_cert_file");
    auto tls_key = ReadTextFile(c.api.tls_key_file, "api.tls_key_file");
    if (!cert.ok() || !tls_key.ok()) {
      Unwind(*ctx);
      return cert.ok() ? tls_key.status() : cert.status();
    }
    server_options.tls_cert_chain_pem = *std::move(cert);
    server_options.tls_private_key_pem = *std::move(tls_key);
  }
  if (!c.api.admin_token_file.empty()) {
    absl::StatusOr<std::string> token = ReadAdminToken(c.api.admin_token_file);
    if (!token.ok()) {
      Unwind(*ctx);
      return token.status();
    }
    server_options.admin_token = *std::move(token);
  }
  server_options.listen_address = c.api.listen;
  server_options.max_receive_message_bytes = c.api.max_receive_message_bytes;
  server_options.max_concurrent_generations = c.api.max_concurrent_generations;
  server_options.max_prompt_bytes = c.api.max_prompt_bytes;
  server_options.allow_anonymous = c.api.allow_anonymous;
  api::NodeControl control;
  control.node_address = address;
  control.version = ATOMA_VERSION;
  std::atomic<bool>* draining = &ctx->draining;
  control.draining = [draining] { return draining->load(); };
  control.drain = [draining] {
    if (!draining->exchange(true)) GetLogger("node")->info("drain requested: refusing new work");
  };
  std::vector<engine::Engine*> engines;
  for (auto& e : ctx->engines) engines.push_back(e.get());
  auto server = components.start_server(server_options, std::move(engines), std::move(control));
  if (!server.ok()) {
    Unwind(*ctx);
    return Annotate(server.status(), absl::StrCat("api.listen (", c.api.listen, ")"));
  }
  ctx->server = std::move(*server);
  ctx->port = ctx->server->port();
  const std::string host = c.api.listen.substr(0, c.api.listen.rfind(':'));
  log->info("serving gRPC on {}:{}", host, ctx->port);

  if (ctx->metrics) {
    absl::Status started = StartMetrics(c, *ctx);
    if (!started.ok()) {
      Unwind(*ctx);
      return started;
    }
  }
  if (!c.http.listen.empty()) {
    absl::Status started = StartHttp(c, *ctx);
    if (!started.ok()) {
      Unwind(*ctx);
      return started;
    }
  }
  if (!c.api.ports_file.empty()) {
    absl::Status written = WritePortsFile(
        c.api.ports_file, ctx->port, ctx->metrics_server ? ctx->metrics_server->bound_port() : 0,
        ctx->http_server ? ctx->http_server->bound_port() : 0);
    if (!written.ok()) {
      Unwind(*ctx);
      return written;
    }
    log->info("wrote ports file {}", c.api.ports_file.string());
  }
  if (ctx->consensus) {
    if (c.consensus.register_node) {
      absl::Status registered = RegisterOnLedger(c, *ctx);
      if (!registered.ok()) {
        Unwind(*ctx);
        return registered;
      }
    }
    if (c.ledger.advance_epochs) ctx->epoch_timer = std::thread(RunEpochTimer, ctx);
    auto resumed = ctx->consensus->ResumeJournaled();
    if (!resumed.ok()) log->warn("resuming journaled rounds: {}", resumed.status().ToString());
  }
  ctx->running = true;
  return absl::OkStatus();
}

absl::Status ReloadSecrets(NodeContext& ctx) {
  const config::NodeConfig& c = ctx.config;
  absl::Status result = absl::OkStatus();
  int reloaded = 0;
  // Each secret on its own: one that fails keeps its old value and does not stop the others.
  auto failed = [&](const char* key, const absl::Status& s) {
    Log()->error("SIGHUP: {}: {}; the previous one stays in force", key, s.ToString());
    if (result.ok()) result = Annotate(s, key);
  };
  if (ctx.http_server != nullptr && !c.http.api_keys_file.empty()) {
    absl::StatusOr<std::vector<std::string>> keys = http::LoadApiKeys(c.http.api_keys_file);
    if (keys.ok()) {
      Log()->info("SIGHUP: HTTP API: {} API key(s) from {}", keys->size(),
                  c.http.api_keys_file.string());
      ctx.http_server->SetApiKeys(*std::move(keys));
      ++reloaded;
    } else {
      failed("http.api_keys_file", keys.status());
    }
  }
  if (ctx.http_server != nullptr && !c.http.tls_cert_file.empty()) {
    absl::StatusOr<std::pair<std::string, std::string>> tls = ReadHttpTls(c);
    const absl::Status set =
        tls.ok() ? ctx.http_server->SetTls(tls->first, tls->second) : tls.status();
    if (set.ok()) {
      Log()->info("SIGHUP: HTTPS certificate from {}", c.http.tls_cert_file.string());
      ++reloaded;
    } else {
      failed("http.tls_cert_file", set);
    }
  }
  if (ctx.server != nullptr && !c.api.admin_token_file.empty()) {
    absl::StatusOr<std::string> token = ReadAdminToken(c.api.admin_token_file);
    if (token.ok()) {
      Log()->info("SIGHUP: admin token from {}", c.api.admin_token_file.string());
      ctx.server->SetAdminToken(*std::move(token));
      ++reloaded;
    } else {
      failed("api.admin_token_file", token.status());
    }
  }
  if (reloaded == 0 && result.ok()) {
    Log()->info(
        "SIGHUP: nothing to reload (no http.api_keys_file, http.tls_cert_file or "
        "api.admin_token_file)");
  }
  return result;
}

void Shutdown(NodeContext& ctx) {
  if (!ctx.running) return;
  ctx.running = false;
  auto log = Log();
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = std::chrono::milliseconds(ctx.config.shutdown.drain_deadline_ms);

  // 1. Stop intake: the API refuses new generations from here on. The metrics endpoint goes first
  // (it samples what the next steps take down).
  ctx.draining = true;
  ctx.metrics_server.reset();
  log->info("shutting down: draining {} engine(s), deadline {} ms", ctx.engines.size(),
            deadline.count());

  // 2. Drain the consensus rounds and the engines together, so the deadline bounds the whole step
  // rather than each part.
  std::vector<std::thread> drains;
  if (ctx.consensus) {
    peer::ConsensusNode* consensus = ctx.consensus.get();
    drains.emplace_back([consensus, deadline] { consensus->Shutdown(deadline); });
  }
  for (auto& e : ctx.engines) {
    engine::Engine* engine = e.get();
    drains.emplace_back([engine, deadline] { engine->Shutdown(deadline); });
  }
  for (auto& t : drains) t.join();
  const auto drained_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count();
  log->info("engines stopped after {} ms", drained_ms);
  // The HTTP streams have had their final events: close the endpoint.
  ctx.http_server.reset();

  // 3. Stop the server. Every stream has had its final event by now; give the completion queues a
  // moment to send them.
  if (ctx.server) {
    ctx.server->Shutdown(std::chrono::milliseconds(2000));
    ctx.server->Wait();
  }
  // 4. Settle what is certified (bounded: whatever is left stays journaled for the next start).
  if (ctx.outbox) {
    absl::Status flushed = ctx.outbox->Flush(absl::Now() + absl::Seconds(3));
    if (!flushed.ok()) log->warn("settlement outbox: {}", flushed.ToString());
  }
  // The outbox may still run (it stops with the context); it must no longer reach the runtime.
  if (ctx.cosigner) ctx.cosigner->Bind(nullptr);
  StopEpochTimer(ctx);
  if (!ctx.config.api.ports_file.empty()) {
    std::error_code ec;
    fs::remove(ctx.config.api.ports_file, ec);
  }
  log->info("shutdown complete");
}

}  // namespace atoma::node
