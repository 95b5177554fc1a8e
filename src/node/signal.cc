#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "atoma/node/node.h"

namespace atoma::node {
namespace {

// Process-wide because signal handlers are: the handler can reach nothing else. Both are
// lock-free atomics, which are async-signal-safe to use.
std::atomic<int> g_write_fd{-1};
std::atomic<int> g_signal_count{0};
std::atomic<bool> g_installed{false};
struct sigaction g_old_int;
struct sigaction g_old_term;
struct sigaction g_old_hup;

static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void OnShutdownSignal(int sig) {
  const int saved_errno = errno;
  // A second SIGINT/SIGTERM: stop now. SIGHUP asks for a reload and never forces an exit.
  if (sig != SIGHUP && g_signal_count.fetch_add(1) >= 1) _exit(128 + sig);
  const int fd = g_write_fd.load();
  if (fd >= 0) {
    const unsigned char byte = static_cast<unsigned char>(sig);
    // Non-blocking pipe; if it is full a wake-up is already pending, so a lost byte is fine.
    [[maybe_unused]] const ssize_t n = ::write(fd, &byte, 1);
  }
  errno = saved_errno;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShutdownSignal>> ShutdownSignal::Install() {
  if (g_installed.exchange(true)) {
    return absl::FailedPreconditionError("a ShutdownSignal is already installed");
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    g_installed = false;
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  g_signal_count = 0;
  g_write_fd = fds[1];
  struct sigaction action {};
  action.sa_handler = OnShutdownSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, &g_old_int);
  ::sigaction(SIGTERM, &action, &g_old_term);
  ::sigaction(SIGHUP, &action, &g_old_hup);
  return std::unique_ptr<ShutdownSignal>(new ShutdownSignal(fds[0], fds[1]));
}

ShutdownSignal::~ShutdownSignal() {
  ::sigaction(SIGINT, &g_old_int, nullptr);
  ::sigaction(SIGTERM, &g_old_term, nullptr);
  ::sigaction(SIGHUP, &g_old_hup, nullptr);
  g_write_fd = -1;
  ::close(read_fd_);
  ::close(write_fd_);
  g_installed = false;
}

int ShutdownSignal::Wait() {
  for (;;) {
    pollfd p{read_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, -1);
    if (ready < 0 && errno == EINTR) continue;
    unsigned char byte = 0;
    const ssize_t n = ::read(read_fd_, &byte, 1);
    if (n == 1) return byte;
    if (n < 0 && errno == EINTR) continue;
    return 0;  // unexpected EOF or error: treat as a shutdown request
  }
}

void ShutdownSignal::Trigger() {
  const unsigned char byte = 0;
  [[maybe_unused]] const ssize_t n = ::write(write_fd_, &byte, 1);
}

}  // namespace atoma::node
