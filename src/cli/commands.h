// atoma-cli subcommands. Each Add*Command registers one CLI11 subcommand (with its options and
// callback) on the top-level app; the callback runs when the user picks that subcommand. The CLI
// main (src/cli/main.cc) calls every Add*Command before parsing.
//
// Error convention: a callback that fails prints "atoma-cli: <message>" on stderr and throws
// CLI::RuntimeError(1) (see Fail below), so main exits 1.
#pragma once

#include <CLI/CLI.hpp>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/consensus/xv.h"

namespace atoma::cli {

// `atoma-cli generate`: streams a generation from a running node over gRPC (src/cli/generate.cc).
void AddGenerateCommand(CLI::App& app);

// `atoma-cli authorize BODY --client-key FILE LEDGER [--addr A]`: the atoma_security and
// atoma_client fields of a verified request over the OpenAI HTTP API (src/cli/authorize.cc).
void AddAuthorizeCommand(CLI::App& app);

// `atoma-cli keygen --out FILE [--force]` and `atoma-cli address --key FILE` (src/cli/keys.cc).
void AddKeyCommands(CLI::App& app);

// `atoma-cli model synth ...` and `atoma-cli model digest DIR` (src/cli/model.cc).
void AddModelCommand(CLI::App& app);

// `atoma-cli ledger LEDGER <info|nodes|epoch|escrow|rewards|settled|settlements|slashings>` and
// the mutations (register-node, stake, advance-epoch, deposit, request-withdrawal and withdraw
// of escrow: unsigned dev operations on an embedded ledger, transactions signed by --key on an EVM
// ledger), `init` (embedded), `deploy` and `fund` (EVM) (src/cli/ledger_cmd.cc). LEDGER is --db
// FILE or --rpc-url URL --contract ADDRESS (ledger_open.h).
void AddLedgerCommand(CLI::App& app);

// `atoma-cli verify LEDGER CERT_FILE [--output FILE]` (src/cli/verify_cmd.cc).
void AddVerifyCommand(CLI::App& app);

// `atoma-cli status|peers|drain` (a running node's Admin service, peers' health) and
// `stake|unstake|withdraw|claim` (the node's own stake and rewards on an embedded or EVM ledger)
// (src/cli/operator.cc).
void AddOperatorCommands(CLI::App& app);

// A fresh secret cross-validation salt from the kernel's CSPRNG (src/cli/generate.cc); Fail when
// getrandom fails.
consensus::XvSalt RandomSaltOrFail();

// Prints "atoma-cli: <message>" to stderr and throws CLI::RuntimeError(exit_code).
[[noreturn]] void Fail(std::string_view message, int exit_code = 1);
[[noreturn]] void Fail(const absl::Status& status, int exit_code = 1);

// The value, or Fail with the status.
template <typename T>
T OrFail(absl::StatusOr<T> value) {
  if (!value.ok()) Fail(value.status());
  return *std::move(value);
}
inline void OrFail(const absl::Status& status) {
  if (!status.ok()) Fail(status);
}

}  // namespace atoma::cli
