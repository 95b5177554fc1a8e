// Test-only: an empty temporary folder of the running test, unique per process and test name
// (<tmp>/<prefix><pid>_<test name>, emptied if a crashed run left it behind).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace atoma::test {

inline std::filesystem::path FreshTestDir(std::string_view prefix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrCat(std::string(prefix), ::getpid(), "_", info != nullptr ? info->name() : "none");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace atoma::test
