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
