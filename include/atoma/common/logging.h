// Logging: spdlog, one named logger per module ("engine", "api", "node", ...), human text or JSON
// lines. Loggers are created on first use and share one sink set configured by InitLogging.
#pragma once

// pip torch ships its own fmt headers in its include directory, ahead of the system's: a file that
// sees torch's headers must not include spdlog (whose fmt is the system's). atoma_model, the one
// library with torch's include directories, defines ATOMA_TORCH_TU to keep this checked on every
// build, also where libtorch carries no fmt (Debian's 1.13).
#ifdef ATOMA_TORCH_TU
#error "atoma/common/logging.h (spdlog, fmt) included in a translation unit that sees libtorch"
#endif

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "spdlog/formatter.h"
#include "spdlog/spdlog.h"

namespace atoma {

struct LogOptions {
  std::string level = "info";  // trace|debug|info|warn|error|off
  bool json = false;           // JSON lines instead of human text
};

// Configures every module logger (existing and future). Returns INVALID_ARGUMENT for an unknown
// level. Thread-safe.
absl::Status InitLogging(const LogOptions& options);

// The formatter every module logger uses: human text, or one JSON object a line with the message
// escaped (exposed for tests).
std::unique_ptr<spdlog::formatter> MakeLogFormatter(bool json);

// The logger of a module; never null. Thread-safe.
std::shared_ptr<spdlog::logger> GetLogger(std::string_view module);

}  // namespace atoma
