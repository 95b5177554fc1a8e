#include "atoma/common/logging.h"

#include <gtest/gtest.h>

namespace atoma {
namespace {

TEST(Logging, SameModuleGivesSameLogger) {
  auto a = GetLogger("test-module");
  auto b = GetLogger("test-module");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a->name(), "test-module");
}

TEST(Logging, LevelAppliesToExistingAndNewLoggers) {
  auto before = GetLogger("before-init");
  ASSERT_TRUE(InitLogging({.level = "warn", .json = true}).ok());
  EXPECT_EQ(before->level(), spdlog::level::warn);
  EXPECT_EQ(GetLogger("after-init")->level(), spdlog::level::warn);
  ASSERT_TRUE(InitLogging({.level = "info", .json = false}).ok());
  EXPECT_EQ(before->level(), spdlog::level::info);
}

TEST(Logging, UnknownLevelIsRejected) {
  absl::Status s = InitLogging({.level = "loud"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("loud"), std::string::npos);
}

}  // namespace
}  // namespace atoma

namespace atoma {
namespace {

std::string Format(bool json, std::string_view message) {
  auto formatter = MakeLogFormatter(json);
  spdlog::details::log_msg msg("mod", spdlog::level::warn,
                               spdlog::string_view_t(message.data(), message.size()));
  spdlog::memory_buf_t out;
  formatter->format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(Logging, JsonLinesEscapeTheMessage) {
  const std::string line = Format(true, "model \"x\\y\"\n\tbad\x01");
  EXPECT_NE(line.find(R"("level":"warning","module":"mod")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("msg":"model \"x\\y\"\n\tbad\u0001"})"), std::string::npos) << line;
  // One line: the only raw newline is the terminator.
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
}

TEST(Logging, TextLinesKeepTheMessage) {
  const std::string line = Format(false, "hello \"there\"");
  EXPECT_NE(line.find("[mod] hello \"there\""), std::string::npos) << line;
}

}  // namespace
}  // namespace atoma
