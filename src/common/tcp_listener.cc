#include "atoma/common/tcp_listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace atoma {

absl::StatusOr<TcpListener> ListenTcp(const std::string& listen, int backlog,
                                      std::string_view what) {
  const auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " listen address \"", listen, "\": ", std::string(why)));
  };
  // Plain host:port only, so that a typo is an INVALID_ARGUMENT naming the address.
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return invalid("expected host:port");
  const std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  if (host.empty()) return invalid("no host (0.0.0.0 listens on every interface)");
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') {
      return invalid("host must be an IPv4 address or a host name");
    }
  }
  int port = -1;
  bool digits = !port_text.empty() && port_text.size() <= 5;
  for (char c : port_text) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
  if (!digits || !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return invalid("port must be a number from 0 to 65535");
  }

  const auto unavailable = [&](std::string_view why) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve ", std::string(what), " on ", listen, ": ", std::string(why)));
  };
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
      return unavailable("host does not resolve");
    }
    addr.sin_addr = reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr;
    ::freeaddrinfo(found);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return unavailable(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, backlog) != 0) {
    const int err = errno;
    ::close(fd);
    return unavailable(absl::StrCat(std::strerror(err), " (address in use or not local?)"));
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return TcpListener{fd, host, ntohs(bound.sin_port)};
}

}  // namespace atoma
