// Kernels behind Gemm (gemm.h); private to atoma_model.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace atoma::engine::internal {

// Computes output features [n_begin, n_end) for all rows. Same contract as Gemm.
void GemmPortableRange(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t k,
                       const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);
// Precondition: CpuHasAvx2Fma().
void GemmAvx2Range(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t k,
                   const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);
// at::linear; catches libtorch exceptions.
absl::Status GemmTorch(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t n,
                       int64_t k, const float* bias, float* y, int64_t ldy);

}  // namespace atoma::engine::internal
