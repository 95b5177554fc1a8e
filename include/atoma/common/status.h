// Error handling across module boundaries: absl::Status / absl::StatusOr<T>.
//
// Policy (see README "Error policy"): untrusted input (clients, peers, files a user names) is
// reported as a Status and never aborts; bad configuration at start-up stops the process with one
// clear message; libraries that throw (libtorch, yaml-cpp, nlohmann::json) are caught at the one
// place that calls them and turned into a Status there.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ATOMA_STATUS_CONCAT_INNER(a, b) a##b
#define ATOMA_STATUS_CONCAT(a, b) ATOMA_STATUS_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status atoma_status_ = (expr);           \
    if (!atoma_status_.ok()) return atoma_status_;   \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an absl::StatusOr or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(ATOMA_STATUS_CONCAT(atoma_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
