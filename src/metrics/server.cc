// MetricsServer: a minimal HTTP/1.1 responder for GET /metrics on a socket of our own.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/common/tcp_listener.h"
#include "atoma/metrics/metrics.h"
#include "collector.h"

namespace atoma::metrics {
namespace {

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
  ASSIGN_OR_RETURN(TcpListener listener, ListenTcp(listen, 16, "metrics"));
  GetLogger("metrics")->info("Prometheus metrics on http://{}:{}/metrics", listener.host,
                             listener.port);
  return std::unique_ptr<MetricsServer>(new SocketServer(metrics, listener.fd, listener.port));
}

}  // namespace atoma::metrics
