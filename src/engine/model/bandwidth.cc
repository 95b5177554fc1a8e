// Device read bandwidth for the engine benchmark: a reduction over a large float32 buffer, on the
// CPU by the WorkerPool, on a GPU by libtorch with the result copied back to the host (which waits
// for the GPU to finish).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/sum.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "atoma/engine/gemm.h"
#include "atoma/engine/model.h"

namespace atoma::engine {

namespace {

using Clock = std::chrono::steady_clock;

// The best rate of five timed passes of `pass` over `bytes`, after one untimed warm-up pass.
template <typename Pass>
double BestOfFive(int64_t bytes, Pass pass) {
  double best = 0;
  for (int i = 0; i < 6; ++i) {
    const auto t0 = Clock::now();
    pass();
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (i > 0) best = std::max(best, static_cast<double>(bytes) / dt);
  }
  return best;
}

}  // namespace

absl::StatusOr<double> MeasureReadBandwidth(const std::string& device, int64_t bytes, int threads) {
  if (bytes < (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("bandwidth buffer of ", bytes, " bytes"));
  }
  const int64_t n = bytes / 4;
  try {
    const at::Device dev(device);
    if (dev.is_cuda() && !at::hasCUDA()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device '", device, "' requested but this libtorch has no CUDA"));
    }
    if (dev.is_cuda()) {
      at::Tensor x = at::ones({n}, at::TensorOptions().dtype(at::kFloat).device(dev));
      // item() copies to the host: the GPU has finished.
      return BestOfFive(4 * n, [&] { (void)x.sum().item<float>(); });
    }
    if (!dev.is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("device '", device, "' is not cpu or cuda"));
    }
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return absl::InvalidArgumentError(absl::StrCat("device '", device, "': ", what));
  }
  // CPU: each worker sums its share in 16 independent lanes (no reassociation needed to keep the
  // adders busy).
  std::vector<float> buf(static_cast<size_t>(n), 1.0f);
  WorkerPool pool(std::max(1, threads));
  std::vector<float> sink(pool.threads());
  const double best = BestOfFive(4 * n, [&] {
    pool.Run([&](int part, int parts) {
      const size_t b = buf.size() * part / parts, e = buf.size() * (part + 1) / parts;
      float lane[16] = {};
      for (size_t i = b; i + 16 <= e; i += 16) {
        for (int l = 0; l < 16; ++l) lane[l] += buf[i + l];
      }
      float s = 0;
      for (float v : lane) s += v;
      sink[part] = s;
    });
  });
  if (sink[0] < 0) return absl::InternalError("bandwidth sum went negative");  // keeps it alive
  return best;
}

}  // namespace atoma::engine
