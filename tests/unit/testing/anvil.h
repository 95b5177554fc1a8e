// Test-only: a real local EVM chain. AnvilProcess runs the Anvil binary from the npm package
// @foundry-rs/anvil-linux-amd64 (installed under node_modules/ by scripts/setup.sh) on a free
// loopback port, silent, chain id 31337 by default, automining (each transaction is mined at
// once in its own block).
//
// Link the test binary with the `atoma_anvil_fixture` library (tests/unit/evm/CMakeLists.txt).
// The repository root comes from $ATOMA_SOURCE_DIR (ctest sets it) or else the source dir the
// fixture was compiled in.
//
// Errors: Start/Restart return FAILED_PRECONDITION naming scripts/setup.sh when the binary is
// missing (tests must ASSERT on it and fail, never skip), UNAVAILABLE when Anvil does not answer
// eth_chainId within 20 s or exits early (the message holds the tail of its stderr).
//
// Thread-safety: none; use one AnvilProcess from one thread. The chain itself may be used from
// any number of threads and clients through url().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"

namespace atoma::test {

// Anvil's first default dev account (mnemonic "test test ... junk"), funded with 10000 ETH.
inline constexpr std::string_view kAnvilDevKey0 =
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

struct AnvilOptions {
  uint64_t chain_id = 31337;
  // Seconds between blocks; 0 = automine (a block per transaction, the default for tests).
  uint64_t block_time_s = 0;
  // Further command-line arguments, e.g. {"--base-fee", "1000000000"}.
  std::vector<std::string> extra_args;
};

class AnvilProcess {
 public:
  // Starts Anvil and waits until it answers eth_chainId (deadline 20 s). Retries with another
  // port when the chosen one was taken in the meantime.
  static absl::StatusOr<std::unique_ptr<AnvilProcess>> Start(AnvilOptions options = {});

  AnvilProcess(const AnvilProcess&) = delete;
  AnvilProcess& operator=(const AnvilProcess&) = delete;
  // Stops the process (as Stop) and removes its temporary folder.
  ~AnvilProcess();

  // "http://127.0.0.1:<port>".
  const std::string& url() const { return url_; }
  uint16_t port() const { return port_; }
  bool running() const { return pid_ > 0; }

  // SIGTERM, then SIGKILL after 5 s, then waitpid. Idempotent.
  void Stop();
  // Stops and starts Anvil again on the same port. keep_state = false: a fresh chain (genesis,
  // dev accounts funded). keep_state = true: the chain as it was (accounts, balances, nonces,
  // code, storage, block number), which Anvil dumps to a file on SIGTERM (it runs with --state),
  // so a test can "crash" the chain mid-flight and go on. INTERNAL when there is no dump (the
  // process had to be killed). Transactions still in the pool are lost either way (automine
  // leaves none).
  absl::Status Restart(bool keep_state);

  // anvil_setBalance: sets `address`'s balance on the chain at `url` to `wei`.
  static absl::Status SetBalance(std::string_view url, const crypto::Address& address,
                                 const Uint256& wei);
  absl::Status SetBalance(const crypto::Address& address, const Uint256& wei) const {
    return SetBalance(url_, address, wei);
  }

  // Where the Anvil binary is expected (node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil).
  static std::filesystem::path BinaryPath();

 private:
  explicit AnvilProcess(AnvilOptions options);
  // Launches on port_ (0: pick a free one) and waits until it answers.
  absl::Status Launch();

  AnvilOptions options_;
  std::filesystem::path dir_;  // temporary folder: stderr log, dumped state
  std::string url_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace atoma::test
