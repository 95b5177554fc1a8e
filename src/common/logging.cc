#include "atoma/common/logging.h"

#include <mutex>
#include <string>

#include "spdlog/pattern_formatter.h"
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

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%fZ %^%-5l%$ [%n] %v";
// %* is the message as the body of a JSON string (JsonEscapedMessage); module names are ours.
constexpr const char* kJsonPattern =
    R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","module":"%n","msg":"%*"})";

// Writes the message escaped for a JSON string: messages carry peer- and client-supplied text
// (model ids, error messages), which must not break the line's JSON.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    auto put = [&dest](std::string_view v) { dest.append(v.data(), v.data() + v.size()); };
    for (char ch : std::string_view(msg.payload.data(), msg.payload.size())) {
      const auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '"':
          put("\\\"");
          break;
        case '\\':
          put("\\\\");
          break;
        case '\n':
          put("\\n");
          break;
        case '\r':
          put("\\r");
          break;
        case '\t':
          put("\\t");
          break;
        default:
          if (c < 0x20) {
            const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
            dest.append(esc, esc + 6);
          } else {
            dest.push_back(ch);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

void Configure(spdlog::logger& logger, const LogState& s) {
  logger.set_level(s.level);
  logger.set_formatter(MakeLogFormatter(s.json));
}

}  // namespace

std::unique_ptr<spdlog::formatter> MakeLogFormatter(bool json) {
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (json) {
    f->add_flag<JsonEscapedMessage>('*').set_pattern(kJsonPattern);
  } else {
    f->set_pattern(kTextPattern);
  }
  return f;
}

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
