// atoma-cli subcommands. Each Add*Command registers one CLI11 subcommand (with its options and
// callback) on the top-level app; the callback runs when the user picks that subcommand. The CLI
// main (src/cli/main.cc) calls every Add*Command before parsing.
#pragma once

#include <CLI/CLI.hpp>

namespace atoma::cli {

// `atoma-cli generate`: streams a generation from a running node over gRPC (src/cli/generate.cc).
void AddGenerateCommand(CLI::App& app);

}  // namespace atoma::cli
