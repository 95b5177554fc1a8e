// atoma-cli model synth / digest.
#include "atoma/engine/model.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "atoma/common/progress.h"
#include "atoma/crypto/sha256.h"
#include "atoma/engine/synth.h"
#include "commands.h"

namespace atoma::cli {

void AddModelCommand(CLI::App& app) {
  CLI::App* model = app.add_subcommand("model", "Model folders: synthesize test models, digests.");
  model->require_subcommand(1);

  CLI::App* synth = model->add_subcommand(
      "synth",
      "Write a seeded random Llama-architecture model folder (config.json, model.safetensors, "
      "a real byte-level BPE tokenizer.json, tokenizer_config.json). Same preset and seed give "
      "byte-identical files.");
  struct SynthArgs {
    std::string preset = "tiny";
    uint64_t seed = 0;
    std::string out;
  };
  auto args = std::make_shared<SynthArgs>();
  synth
      ->add_option("--preset", args->preset,
                   "tiny (unit tests, 0.5 MB) | small (demo) | bench-135m (SmolLM-135M shape)")
      ->check(CLI::IsMember({"tiny", "small", "bench-135m"}))
      ->capture_default_str();
  synth->add_option("--seed", args->seed, "random seed of the weights")->capture_default_str();
  synth->add_option("-o,--out", args->out, "output folder (created if missing)")->required();
  synth->callback([args] {
    engine::SynthOptions options;
    options.preset = args->preset;
    options.seed = args->seed;
    options.out_dir = args->out;
    ProgressBar bar(absl::StrCat("synth ", args->preset));
    options.progress = [&bar](double f) { bar.Update(f); };
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = engine::SynthesizeModel(options);
    bar.Finish();
    if (!s.ok()) Fail(s);
    ProgressBar digest_bar("digest");
    auto digest = engine::ComputeModelDigest(
        args->out, [&](uint64_t done, uint64_t total) { digest_bar.UpdateBytes(done, total); });
    digest_bar.Finish();
    if (!digest.ok()) Fail(digest.status());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s\n", crypto::ToHex(*digest).c_str());
    std::fprintf(stderr, "atoma-cli: wrote %s (preset %s, seed %llu) in %.1f s\n",
                 args->out.c_str(), args->preset.c_str(),
                 static_cast<unsigned long long>(args->seed), seconds);
  });

  CLI::App* digest = model->add_subcommand(
      "digest",
      "Print the model digest (SHA-256 over config, tokenizer and weight files) that names the "
      "model on the ledger.");
  auto dir = std::make_shared<std::string>();
  digest->add_option("dir", *dir, "model folder")->required();
  digest->callback([dir] {
    // A multi-GB checkpoint takes a while to hash: show how far it got (on a terminal only).
    std::filesystem::path name = std::filesystem::path(*dir).filename();
    if (name.empty()) name = std::filesystem::path(*dir).parent_path().filename();  // "DIR/"
    ProgressBar bar(absl::StrCat("digest ", name.string()));
    auto d = engine::ComputeModelDigest(
        *dir, [&bar](uint64_t done, uint64_t total) { bar.UpdateBytes(done, total); });
    bar.Finish();
    if (!d.ok()) Fail(d.status());
    std::printf("%s\n", crypto::ToHex(*d).c_str());
  });
}

}  // namespace atoma::cli
