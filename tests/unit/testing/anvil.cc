#include "testing/anvil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "atoma/common/status.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/rpc.h"

#ifndef ATOMA_SOURCE_DIR_DEFAULT
#define ATOMA_SOURCE_DIR_DEFAULT "."
#endif

namespace atoma::test {
namespace {

namespace fs = std::filesystem;

constexpr absl::Duration kStartDeadline = absl::Seconds(20);
constexpr absl::Duration kStopGrace = absl::Seconds(5);
constexpr int kPortAttempts = 5;

fs::path SourceDir() {
  const char* env = std::getenv("ATOMA_SOURCE_DIR");
  return fs::path(env != nullptr && *env != '\0' ? env : ATOMA_SOURCE_DIR_DEFAULT);
}

// A port that was free a moment ago (the kernel's choice for port 0). Another process may take it
// before Anvil binds it; Launch retries with a new one then.
absl::StatusOr<uint16_t> PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return absl::InternalError("cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string Tail(const fs::path& file, size_t max = 2000) {
  std::ifstream in(file, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s.size() > max ? s.substr(s.size() - max) : s;
}

// true when the child exited (and was reaped).
bool Reap(pid_t pid, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace

fs::path AnvilProcess::BinaryPath() {
  return SourceDir() / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";
}

AnvilProcess::AnvilProcess(AnvilOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<AnvilProcess>> AnvilProcess::Start(AnvilOptions options) {
  const fs::path binary = BinaryPath();
  if (::access(binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("Anvil is not installed at ", binary.string(),
                     ": run scripts/setup.sh (it runs npm ci for the pinned "
                     "@foundry-rs/anvil-linux-amd64), or set ATOMA_SOURCE_DIR to the repository"));
  }
  std::unique_ptr<AnvilProcess> anvil(new AnvilProcess(std::move(options)));
  static std::atomic<int> counter{0};
  anvil->dir_ = fs::temp_directory_path() /
                absl::StrCat("atoma_anvil_", ::getpid(), "_", counter.fetch_add(1));
  std::error_code ec;
  fs::remove_all(anvil->dir_, ec);
  fs::create_directories(anvil->dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", anvil->dir_.string()));
  RETURN_IF_ERROR(anvil->Launch());
  return anvil;
}

AnvilProcess::~AnvilProcess() {
  Stop();
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

absl::Status AnvilProcess::Launch() {
  const fs::path log = dir_ / "anvil.log";
  const bool fixed_port = port_ != 0;
  absl::Status last;
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    if (!fixed_port) {
      ASSIGN_OR_RETURN(port_, PickFreePort());
    } else if (attempt > 0) {
      absl::SleepFor(absl::Milliseconds(200));  // the old process's socket may linger briefly
    }
    url_ = absl::StrCat("http://127.0.0.1:", port_);
    // The chain's state is dumped on SIGTERM into state.json and loaded from it at start when it
    // exists (Restart(true) keeps it, Restart(false) and Start begin without it).
    // --prune-history: Anvil otherwise writes every old block's state to
    // ~/.foundry/anvil/tmp and never deletes it (gigabytes per test run); 64 recent states in
    // memory serve eth_call a few blocks back (confirmations).
    std::vector<std::string> args = {BinaryPath().string(),
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     std::to_string(port_),
                                     "--chain-id",
                                     std::to_string(options_.chain_id),
                                     "--silent",
                                     "--prune-history",
                                     "64",
                                     "--state",
                                     (dir_ / "state.json").string()};
    if (options_.block_time_s > 0) {
      args.push_back("--block-time");
      args.push_back(std::to_string(options_.block_time_s));
    }
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      // Child: only async-signal-safe calls until exec. Anvil dies with the test process.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int null = ::open("/dev/null", O_RDWR);
      if (out >= 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
      }
      if (null >= 0) ::dup2(null, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;

    auto rpc = evm::RpcClient::MakeHttp({.url = url_,
                                         .timeout = absl::Seconds(2),
                                         .connect_timeout = absl::Seconds(1),
                                         .max_attempts = 1});
    if (!rpc.ok()) return rpc.status();
    evm::EthClient eth(std::shared_ptr<evm::RpcClient>(std::move(*rpc)));
    const absl::Time deadline = absl::Now() + kStartDeadline;
    bool exited = false;
    while (absl::Now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited = true;
        pid_ = -1;
        break;
      }
      absl::StatusOr<uint64_t> chain_id = eth.ChainId();
      if (chain_id.ok()) {
        if (*chain_id != options_.chain_id) {
          Stop();
          return absl::InternalError(
              absl::StrCat("Anvil at ", url_, " reports chain id ", *chain_id));
        }
        return absl::OkStatus();
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    const std::string tail = Tail(log);
    if (!exited) {
      Stop();
      return absl::UnavailableError(absl::StrCat("Anvil did not answer eth_chainId at ", url_,
                                                 " within 20 s; its output: ", tail));
    }
    last = absl::UnavailableError(
        absl::StrCat("Anvil exited at start on port ", port_, "; its output: ", tail));
    // Retry only when the port was taken; any other early exit is reported at once.
    if (tail.find("in use") == std::string::npos) return last;
  }
  return last;
}

void AnvilProcess::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!Reap(pid_, kStopGrace)) {
    ::kill(pid_, SIGKILL);
    Reap(pid_, absl::Seconds(30));
  }
  pid_ = -1;
}

absl::Status AnvilProcess::Restart(bool keep_state) {
  Stop();
  const fs::path state = dir_ / "state.json";
  std::error_code ec;
  if (!keep_state) {
    fs::remove(state, ec);
  } else if (!fs::exists(state)) {
    return absl::InternalError(
        absl::StrCat("Anvil did not dump its state to ", state.string(), " on SIGTERM"));
  }
  return Launch();
}

absl::Status AnvilProcess::SetBalance(std::string_view url, const crypto::Address& address,
                                      const Uint256& wei) {
  ASSIGN_OR_RETURN(std::unique_ptr<evm::RpcClient> rpc,
                   evm::RpcClient::MakeHttp({.url = std::string(url), .max_attempts = 1}));
  return rpc
      ->Call("anvil_setBalance",
             nlohmann::json::array({evm::AddressHex(address), evm::QuantityHex(wei)}))
      .status();
}

}  // namespace atoma::test
