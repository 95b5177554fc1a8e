// Device read bandwidth for the engine benchmark: a reduction over a large float32 buffer on the
// device, timed with the result copied back to the host (which waits for a GPU to finish).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/sum.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "atoma/engine/model.h"

namespace atoma::engine {

absl::StatusOr<double> MeasureReadBandwidth(const std::string& device, int64_t bytes) {
  if (bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("bandwidth buffer of ", bytes, " bytes"));
  }
  try {
    const at::Device dev(device);
    if (dev.is_cuda() && !at::hasCUDA()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device '", device, "' requested but this libtorch has no CUDA"));
    }
    const int64_t n = bytes / 4;
    at::Tensor x = at::ones({n}, at::TensorOptions().dtype(at::kFloat).device(dev));
    double best = 0;
    for (int pass = 0; pass < 6; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      (void)x.sum().item<float>();  // item() copies to the host: the GPU has finished
      const double dt =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (pass > 0) best = std::max(best, 4.0 * n / dt);  // pass 0 warms up
    }
    return best;
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return absl::InvalidArgumentError(absl::StrCat("device '", device, "': ", what));
  }
}

}  // namespace atoma::engine
