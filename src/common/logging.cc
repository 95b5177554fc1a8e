#include "atoma/common/logging.h"

#include <mutex>
#include <string>

#include "spdlog/sinks/stdout_color_sinks.h"

namespace atoma {
namespace {

struct LogState {
  std::mutex mu;
  spdlog::level::level_enum level = spdlog::level::info;
  bool json = false;
};

LogState& State() {
  static LogState* state = new LogState();  // never destroyed: loggers may log during exit
  return *state;
}

// Escaped JSON string body for the message field; the pattern wraps it.
constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%fZ %^%-5l%$ [%n] %v";
constexpr const char* kJsonPattern =
    R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","module":"%n","msg":"%v"})";

void Configure(spdlog::logger& logger, const LogState& s) {
  logger.set_level(s.level);
  logger.set_pattern(s.json ? kJsonPattern : kTextPattern, spdlog::pattern_time_type::utc);
}

}  // namespace

absl::Status InitLogging(const LogOptions& options) {
  auto level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError("log level '" + options.level +
                                      "' is not one of trace|debug|info|warn|error|off");
  }
  LogState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  s.level = level;
  s.json = options.json;
  spdlog::apply_all([&](std::shared_ptr<spdlog::logger> l) { Configure(*l, s); });
  return absl::OkStatus();
}

std::shared_ptr<spdlog::logger> GetLogger(std::string_view module) {
  LogState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  std::string name(module);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  Configure(*logger, s);
  return logger;
}

}  // namespace atoma
