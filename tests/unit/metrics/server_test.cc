// MetricsServer: GET /metrics over a real socket returns the same text as Render(), samplers run
// at scrape time, and bad or busy listen addresses are clear errors instead of exceptions.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "atoma/metrics/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atoma::metrics {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct HttpResponse {
  std::string status_line;
  std::string headers;
  std::string body;
};

// A minimal HTTP/1.1 client: one GET with Connection: close, read to EOF.
absl::StatusOr<HttpResponse> Get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket");
  // Not a timing assertion: only keeps a broken server from hanging the test binary forever.
  timeval timeout{.tv_sec = 30, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      ::close(fd);
      return absl::UnavailableError("send");
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      ::close(fd);
      return absl::UnavailableError("recv (timeout?)");
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t line_end = raw.find("\r\n");
  const size_t head_end = raw.find("\r\n\r\n");
  if (line_end == std::string::npos || head_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("not an HTTP response: ", raw));
  }
  return HttpResponse{raw.substr(0, line_end), raw.substr(line_end + 2, head_end - line_end - 2),
                      raw.substr(head_end + 4)};
}

TEST(MetricsServerTest, ServesRenderedTextOnMetrics) {
  NodeMetrics m;
  m.AddGenerationTokens("tiny", 42);
  m.ObserveRequestLatency("tiny", "none", 0.25);
  std::atomic<int> scrapes = 0;
  m.SetConsensusSampler([&scrapes] {
    ++scrapes;
    NodeMetrics::ConsensusSample s;
    s.rounds_certified = 11;
    return s;
  });
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0", m);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->bound_port();
  ASSERT_GT(port, 0);

  absl::StatusOr<HttpResponse> response = Get(port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->status_line, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(response->headers, HasSubstr("text/plain"));
  EXPECT_EQ(scrapes.load(), 1);  // the sampler ran for the scrape
  // Nothing changed since the scrape, so Render() gives the same text as the body.
  const std::string rendered = m.Render();
  EXPECT_THAT(rendered, HasSubstr("atoma_generation_tokens_total{model=\"tiny\"} 42\n"));
  EXPECT_THAT(rendered, HasSubstr("atoma_consensus_rounds_total{outcome=\"certified\"} 11\n"));
  EXPECT_EQ(response->body, rendered);

  // Every scrape samples again.
  response = Get(port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->status_line, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(scrapes.load(), 3);  // two scrapes and one Render()
}

TEST(MetricsServerTest, WildcardAndHostNameListenersServeOnLoopback) {
  NodeMetrics m;
  for (const std::string listen : {"0.0.0.0:0", "localhost:0"}) {
    SCOPED_TRACE(listen);
    absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(listen, m);
    ASSERT_TRUE(server.ok()) << server.status();
    absl::StatusOr<HttpResponse> response = Get((*server)->bound_port(), "/metrics");
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_THAT(response->status_line, StartsWith("HTTP/1.1 200"));
  }
}

TEST(MetricsServerTest, OtherPathsAreNotFound) {
  NodeMetrics m;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0", m);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<HttpResponse> response = Get((*server)->bound_port(), "/other");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->status_line, StartsWith("HTTP/1.1 404"));
}

TEST(MetricsServerTest, StopsServingWhenDestroyed) {
  NodeMetrics m;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0", m);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->bound_port();
  server->reset();
  EXPECT_FALSE(Get(port, "/metrics").ok());
}

TEST(MetricsServerTest, MalformedAddressesAreInvalidArgument) {
  NodeMetrics m;
  for (const std::string listen :
       {"", "nonsense", "127.0.0.1", ":9090", "127.0.0.1:", "127.0.0.1:abc", "127.0.0.1:99999",
        "127.0.0.1:+80", "127.0.0.1:9090s", "127.0.0.1:1,127.0.0.1:2", "[::1]:9090",
        "host name:80"}) {
    SCOPED_TRACE(listen);
    absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(listen, m);
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
    EXPECT_THAT(server.status().message(), HasSubstr("\"" + listen + "\""));
  }
}

TEST(MetricsServerTest, PortInUseIsUnavailable) {
  NodeMetrics m;
  absl::StatusOr<std::unique_ptr<MetricsServer>> first = MetricsServer::Start("127.0.0.1:0", m);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string busy = absl::StrCat("127.0.0.1:", (*first)->bound_port());
  absl::StatusOr<std::unique_ptr<MetricsServer>> second = MetricsServer::Start(busy, m);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr(busy));
  // The first server is unharmed.
  absl::StatusOr<HttpResponse> response = Get((*first)->bound_port(), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->status_line, StartsWith("HTTP/1.1 200"));
}

TEST(MetricsServerTest, AddressNotOfThisMachineIsUnavailable) {
  NodeMetrics m;
  // TEST-NET-3 (RFC 5737): never assigned to a local interface.
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("203.0.113.7:0", m);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable) << server.status();
  EXPECT_THAT(server.status().message(), HasSubstr("203.0.113.7:0"));
}

}  // namespace
}  // namespace atoma::metrics
