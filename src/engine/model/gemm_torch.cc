// The libtorch baseline behind GemmPath::kTorch: at::linear (OpenBLAS on CPU). Fast on some
// shapes but its bits depend on the row count and the thread count.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/linear.h>

#include <cstring>
#include <exception>

#include "absl/strings/str_cat.h"
#include "gemm_internal.h"

namespace atoma::engine::internal {

absl::Status GemmTorch(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t n,
                       int64_t k, const float* bias, float* y, int64_t ldy) {
  try {
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    at::Tensor xt = at::from_blob(const_cast<float*>(x), {rows, k}, {ldx, 1}, opts);
    at::Tensor wt = at::from_blob(const_cast<float*>(w), {n, k}, opts);
    // No optional<Tensor> spelled out: c10::optional is its own class in 1.13 and a deprecated
    // alias of std::optional in 2.x.
    at::Tensor out =
        (bias != nullptr ? at::linear(xt, wt, at::from_blob(const_cast<float*>(bias), {n}, opts))
                         : at::linear(xt, wt))
            .contiguous();
    const float* src = out.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) std::memcpy(y + r * ldy, src + r * n, n * sizeof(float));
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("at::linear failed: ", e.what()));
  }
}

}  // namespace atoma::engine::internal
