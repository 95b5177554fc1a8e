// MetricsServer: a minimal HTTP/1.1 responder for GET /metrics on a socket of our own.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/metrics/metrics.h"
#include "collector.h"

namespace atoma::metrics {
namespace {

// Plain host:port only (IPv4 address or host name), so that a typo is an INVALID_ARGUMENT naming
// the address.
absl::Status ValidateListen(const std::string& listen) {
  const auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address \"", listen, "\": ", why));
  };
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return invalid("expected host:port");
  const absl::string_view host = absl::string_view(listen).substr(0, colon);
  const absl::string_view port = absl::string_view(listen).substr(colon + 1);
  if (host.empty()) return invalid("no host (0.0.0.0 listens on every interface)");
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') {
      return invalid("host must be an IPv4 address or a host name");
    }
  }
  int port_number = -1;
  bool digits = !port.empty() && port.size() <= 5;
  for (char c : port) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
  if (!digits || !absl::SimpleAtoi(port, &port_number) || port_number > 65535) {
    return invalid("port must be a number from 0 to 65535");
  }
  return absl::OkStatus();
}

// One thread, one connection at a time: scrapes are rare (every few seconds) and cheap, and a
// server of our own avoids civetweb, which could not start its worker threads inside atoma-node
// (it fails with "Cannot create threads" there, while the same code works in a plain process).
class SocketServer final : public MetricsServer {
 public:
  SocketServer(NodeMetrics& metrics, int fd, int port) : metrics_(metrics), fd_(fd), port_(port) {
    ::pipe2(wake_, O_CLOEXEC);
    thread_ = std::thread([this] { Serve(); });
  }
  ~SocketServer() override {
    stop_ = true;
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
    thread_.join();
    ::close(fd_);
    for (int fd : wake_) {
      if (fd >= 0) ::close(fd);
    }
  }
  int bound_port() const override { return port_; }

 private:
  void Serve() {
    while (!stop_) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, wake_[0] >= 0 ? 2 : 1, 1000) <= 0) continue;
      if (stop_) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      Handle(conn);
      ::close(conn);
    }
  }

  // Reads the request head (bounded: 8 KiB, 2 s) and answers GET /metrics; 404 otherwise.
  void Handle(int conn) {
    timeval tv{2, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string head;
    char buf[1024];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
      const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return;
      head.append(buf, static_cast<size_t>(n));
    }
    const bool get_metrics = head.rfind("GET /metrics ", 0) == 0 ||
                             head.rfind("GET /metrics?", 0) == 0 ||
                             head.rfind("GET /metrics\r", 0) == 0;
    std::string body;
    std::string status = "404 Not Found";
    std::string type = "text/plain; charset=utf-8";
    if (get_metrics) {
      body = metrics_.Render();
      status = "200 OK";
      type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
      body = "only GET /metrics is served here\n";
    }
    const std::string response =
        absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                     "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
    size_t sent = 0;
    while (sent < response.size()) {
      const ssize_t n = ::send(conn, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  NodeMetrics& metrics_;
  const int fd_;
  const int port_;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                    NodeMetrics& metrics) {
  RETURN_IF_ERROR(ValidateListen(listen));
  const size_t colon = listen.rfind(':');
  const std::string host = listen.substr(0, colon);
  const int port = std::stoi(listen.substr(colon + 1));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", listen, ": host does not resolve"));
    }
    addr.sin_addr = reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr;
    ::freeaddrinfo(found);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, ": socket: ", std::strerror(errno)));
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen, ": ",
                                               std::strerror(err),
                                               " (address in use or not local?)"));
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port = ntohs(bound.sin_port);
  GetLogger("metrics")->info("Prometheus metrics on http://{}:{}/metrics", host, bound_port);
  return std::unique_ptr<MetricsServer>(new SocketServer(metrics, fd, bound_port));
}

}  // namespace atoma::metrics
