// RunNode: the atoma-node program behind main().
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "atoma/common/logging.h"
#include "atoma/config/config.h"
#include "atoma/node/node.h"

#ifndef ATOMA_VERSION
#define ATOMA_VERSION "unknown"
#endif

namespace atoma::node {
namespace {

int StartupError(const absl::Status& status) {
  std::fprintf(stderr, "atoma-node: %.*s\n", static_cast<int>(status.message().size()),
               status.message().data());
  return 2;
}

}  // namespace

int RunNode(int argc, char** argv, bool reexec) {
  CLI::App app{
      "atoma-node: serves verifiable LLM inference over gRPC (atoma.v1.Inference and Admin).\n"
      "Stops cleanly on SIGINT/SIGTERM (a second signal exits at once); SIGHUP re-reads\n"
      "http.api_keys_file, the HTTPS certificate and api.admin_token_file.\n"
      "Exit codes: 0 after a clean shutdown, 2 for usage or start-up errors.",
      "atoma-node"};
  std::string config_path;
  std::string listen;
  std::string log_level;
  std::string ports_file;
  app.add_option("-c,--config", config_path,
                 "YAML configuration file; config/node.yaml documents every key")
      ->required();
  CLI::Option* listen_opt = app.add_option(
      "--listen", listen, "gRPC address host:port, replaces api.listen (port 0 = any free port)");
  CLI::Option* level_opt = app.add_option("--log-level", log_level,
                                          "trace|debug|info|warn|error|off, replaces log.level");
  CLI::Option* ports_opt = app.add_option(
      "--ports-file", ports_file,
      "after binding, write {\"grpc\": PORT} to this file (relative to the working directory); "
      "replaces api.ports_file");
  app.set_version_flag("--version", ATOMA_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  auto config = config::LoadConfigFile(config_path);
  if (!config.ok()) return StartupError(config.status());
  config::Overrides overrides;
  if (*listen_opt) overrides.listen = listen;
  if (*level_opt) overrides.log_level = log_level;
  if (*ports_opt) overrides.ports_file = ports_file;
  if (absl::Status s = config::ApplyOverrides(overrides, &*config); !s.ok()) {
    return StartupError(s);
  }

  // May start the process again with the thread environment in place (see node.h).
  if (reexec) ReexecWithThreadEnvironment(config->engine.threads, argv);

  // Installed before Init, so a signal during a long model load is not lost: Wait() below
  // returns at once and the node shuts down instead of starting to serve.
  auto signal = ShutdownSignal::Install();
  if (!signal.ok()) return StartupError(signal.status());

  NodeContext ctx;
  if (absl::Status s = Init(*config, Components::Default(), &ctx); !s.ok()) {
    return StartupError(s);
  }
  GetLogger("node")->info("ready");
  int sig = 0;
  // SIGHUP reloads (errors are logged there; the node keeps serving with what it had).
  while ((sig = (*signal)->Wait()) == SIGHUP) (void)ReloadSecrets(ctx);
  GetLogger("node")->info("received {}; shutting down", sig == 0        ? "shutdown request"
                                                        : sig == SIGINT ? "SIGINT"
                                                                        : "SIGTERM");
  Shutdown(ctx);
  return 0;
}

}  // namespace atoma::node
