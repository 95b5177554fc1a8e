// Endpoint validation: registration data is read by every other node, which dials it; reject
// what cannot be a gRPC target rather than let peers fail on it later.
#include <cctype>
#include <charconv>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "atoma/ledger/ledger.h"

namespace atoma::ledger {
namespace {

bool IsDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label_start = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      const std::string_view label = host.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
        return false;
      }
      label_start = i + 1;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(host[i]);
    if (!std::isalnum(c) && c != '-') return false;
  }
  return true;
}

bool IsIpv6Literal(std::string_view inner) {
  if (inner.size() < 2 || inner.size() > 45) return false;
  int colons = 0;
  for (char c : inner) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == ':') {
      ++colons;
    } else if (!std::isxdigit(u) && c != '.') {
      return false;
    }
  }
  return colons >= 2;
}

}  // namespace

absl::Status ValidateEndpoint(const std::string& endpoint) {
  if (endpoint.empty() || endpoint.size() > LedgerClient::kMaxEndpointLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint must be 1..", LedgerClient::kMaxEndpointLength, " characters of host:port"));
  }
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint \"", endpoint, "\" has no port (expected host:port)"));
  }
  const std::string_view host = std::string_view(endpoint).substr(0, colon);
  const std::string_view port_text = std::string_view(endpoint).substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port == 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint \"", endpoint, "\" needs a port in 1..65535"));
  }
  bool host_ok = false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host_ok = IsIpv6Literal(host.substr(1, host.size() - 2));
  } else {
    host_ok = IsDnsName(host);  // also accepts dotted IPv4
  }
  if (!host_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint \"", endpoint, "\": host must be a DNS name, IPv4 or [IPv6] address"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEchelons(const std::vector<EchelonRef>& echelons) {
  if (echelons.size() > LedgerClient::kMaxEchelons) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", LedgerClient::kMaxEchelons,
                                                   " echelons per node, got ", echelons.size()));
  }
  for (size_t i = 0; i < echelons.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (echelons[i].model_digest == echelons[j].model_digest) {
        return absl::InvalidArgumentError(absl::StrCat("one echelon per model: model ",
                                                       crypto::ToHex(echelons[i].model_digest),
                                                       " is listed twice"));
      }
      if (echelons[i].echelon_id == echelons[j].echelon_id) {
        return absl::InvalidArgumentError(
            absl::StrCat("echelon ", crypto::ToHex(echelons[i].echelon_id), " is listed twice"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace atoma::ledger
