// MetricsServer on prometheus-cpp's Exposer. civetweb reports the port it bound for port 0
// (Exposer::GetListeningPorts), so no probe-then-bind race is needed.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
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
#include "prometheus/exposer.h"

namespace atoma::metrics {
namespace {

// civetweb's listening_ports option has its own syntax (comma-separated lists, "s" and "r"
// suffixes for TLS and redirects, bare ports); accept only plain host:port so that a typo is an
// INVALID_ARGUMENT naming the address instead of civetweb's generic bind failure or a surprise
// second port.
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

// An IPv4 address that reaches a server listening on `host` (a wildcard listener is reached on
// loopback), or nullopt when the host name does not resolve.
std::optional<sockaddr_in> LocalAddressOf(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (host == "0.0.0.0") {
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  addr.sin_addr = reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr;
  ::freeaddrinfo(found);
  return addr;
}

// Opens and closes one connection to `addr`, ignoring failure.
void Poke(const sockaddr_in& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  ::close(fd);
}

class ExposerServer final : public MetricsServer {
 public:
  ExposerServer(std::shared_ptr<internal::Collector> collector,
                std::unique_ptr<prometheus::Exposer> exposer, int port,
                std::optional<sockaddr_in> wake_address)
      : collector_(std::move(collector)),
        exposer_(std::move(exposer)),
        port_(port),
        wake_address_(wake_address) {}

  // civetweb's mg_stop waits for its accept thread, which looks at the stop flag only between
  // polls of up to 2 s (its SOCKET_TIMEOUT_QUANTUM), so a plain stop takes ~2 s. A connection
  // wakes the poll: poke the port until the exposer is gone. Each poke is a connection closed
  // before any request, which a civetweb worker drops at once.
  ~ExposerServer() override {
    if (!wake_address_) {
      exposer_.reset();
      return;
    }
    std::atomic<bool> stopped = false;
    std::thread waker([this, &stopped] {
      while (!stopped.load()) {
        Poke(*wake_address_);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    exposer_.reset();
    stopped.store(true);
    waker.join();
  }

  int bound_port() const override { return port_; }

 private:
  // Declared before exposer_ so that the exposer (and its civetweb threads, which may be
  // collecting) stops first.
  const std::shared_ptr<internal::Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  const int port_;
  const std::optional<sockaddr_in> wake_address_;
};

constexpr size_t kServerThreads = 2;  // scrapes are rare and cheap

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                    NodeMetrics& metrics) {
  RETURN_IF_ERROR(ValidateListen(listen));
  std::shared_ptr<internal::Collector> collector = metrics.collector_;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::vector<int> ports;
  // civetweb throws CivetException when it cannot bind (address in use, not an address of this
  // machine, unresolvable name); nothing of it may escape.
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen, kServerThreads);
    exposer->RegisterCollectable(collector);
    ports = exposer->GetListeningPorts();
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen,
                                               " (address in use or not local?): ", e.what()));
  } catch (...) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, " (address in use or not local?)"));
  }
  if (ports.size() != 1 || ports[0] <= 0) {
    return absl::InternalError(
        absl::StrCat("metrics server on ", listen, " reported ", ports.size(), " listening ports"));
  }
  GetLogger("metrics")->info("Prometheus metrics on http://{}/metrics (port {})", listen, ports[0]);
  const std::string host = listen.substr(0, listen.rfind(':'));
  return std::unique_ptr<MetricsServer>(new ExposerServer(
      std::move(collector), std::move(exposer), ports[0], LocalAddressOf(host, ports[0])));
}

}  // namespace atoma::metrics
