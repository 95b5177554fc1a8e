// Engine::Make(options): the loading overload. It lives in its own file so that programs that only
// inject a runner (unit tests, tools) do not pull LoadModel and libtorch into their link.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/engine/engine.h"
#include "atoma/engine/model.h"
#include "atoma/engine/tokenizer.h"
#include "engine_impl.h"

namespace atoma::engine {
namespace {

absl::Status Annotate(const absl::Status& st, const std::string& what) {
  return absl::Status(st.code(), absl::StrCat(what, ": ", st.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Make(const EngineOptions& options) {
  if (options.model_dir.empty()) return absl::InvalidArgumentError("engine: model_dir is empty");
  const std::filesystem::path dir = options.model_dir.lexically_normal();
  auto log = GetLogger("engine");
  const auto t0 = std::chrono::steady_clock::now();

  auto tokenizer = Tokenizer::FromFolder(dir);
  if (!tokenizer.ok()) {
    return Annotate(tokenizer.status(), absl::StrCat("loading the tokenizer from ", dir.string()));
  }
  // A daemon draws no progress bar: a line every 5 s while a large folder is hashed.
  auto last_report = t0;
  auto digest = ComputeModelDigest(dir, [&](uint64_t hashed, uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (hashed == 0 || hashed == total || now - last_report < std::chrono::seconds(5)) return;
    last_report = now;
    log->info("model {}: digest {:.0f}% ({:.2f} of {:.2f} GB hashed)", dir.string(),
              100.0 * static_cast<double>(hashed) / static_cast<double>(total),
              static_cast<double>(hashed) / 1e9, static_cast<double>(total) / 1e9);
  });
  if (!digest.ok()) {
    return Annotate(digest.status(), absl::StrCat("computing the model digest of ", dir.string()));
  }
  // LoadModel fixes the intra-op thread count (options.runner.threads) for the process.
  auto runner = LoadModel(dir, options.runner);
  if (!runner.ok()) {
    return Annotate(runner.status(), absl::StrCat("loading the model from ", dir.string()));
  }

  ModelInfo info;
  if (options.compute_fingerprint) {
    // Measured here because afterwards the runner belongs to the scheduler thread.
    info.fingerprint = ComputeCanaryFingerprint(**runner);
    if (!info.fingerprint.ok()) {
      log->warn("canary fingerprint of {}: {}", dir.string(), info.fingerprint.status().ToString());
    }
  }
  info.dir = dir;
  info.digest = *digest;
  info.id = options.model_id;
  if (info.id.empty()) {
    // "models/tiny/" normalizes to "models/tiny/", whose filename() is empty.
    info.id = dir.has_filename() ? dir.filename().string() : dir.parent_path().filename().string();
  }
  ASSIGN_OR_RETURN(
      std::unique_ptr<Engine> engine,
      internal::MakeEngine(options, *std::move(runner), *std::move(tokenizer), std::move(info)));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const ModelInfo& loaded = engine->info();
  const ModelConfig& cfg = loaded.config;
  log->info(
      "model {} ({} layers, hidden {}, vocab {}) loaded from {} in {:.2f} s: digest {}, path {}, "
      "fingerprint {}",
      loaded.id, cfg.num_layers, cfg.hidden_size, cfg.vocab_size, dir.string(), secs,
      crypto::ToHex(loaded.digest), loaded.path_description,
      loaded.fingerprint.ok() ? crypto::ToHex(*loaded.fingerprint)
                              : std::string(loaded.fingerprint.status().message()));
  return engine;
}

}  // namespace atoma::engine
