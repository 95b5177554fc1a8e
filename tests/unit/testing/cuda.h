// Test-only: whether a CUDA test can run. A loader or engine that refused device "cuda" must say
// FAILED_PRECONDITION (no CUDA in this libtorch, or no GPU); then the test skips, unless
// ATOMA_REQUIRE_CUDA is set (scripts/gpu-kit.sh on a GPU machine), where it fails instead.
#pragma once

#include <cstdlib>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace atoma::test {

// True when `loaded` (the status of loading on "cuda") means the test should run. Records the
// failures above; the caller then GTEST_SKIP()s when this returns false.
inline bool CudaRuns(const absl::Status& loaded) {
  if (loaded.ok()) return true;
  EXPECT_EQ(loaded.code(), absl::StatusCode::kFailedPrecondition) << loaded;
  if (std::getenv("ATOMA_REQUIRE_CUDA") != nullptr) {
    ADD_FAILURE() << "ATOMA_REQUIRE_CUDA is set but: " << loaded;
  }
  return false;
}

}  // namespace atoma::test
