// A listening TCP socket for the node's small HTTP endpoints (metrics, the OpenAI API): parses a
// plain "host:port" (IPv4 address or host name; port 0 = a free port), binds and listens.
//
// Errors name `what` and the address: INVALID_ARGUMENT for a malformed address, UNAVAILABLE when
// the host does not resolve or the bind fails (address in use, not an address of this machine).
// Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace atoma {

struct TcpListener {
  int fd = -1;       // listening, close-on-exec; the caller owns it
  std::string host;  // as given
  int port = 0;      // the bound port (the real one for port 0)
};

absl::StatusOr<TcpListener> ListenTcp(const std::string& listen, int backlog,
                                      std::string_view what);

}  // namespace atoma
