// Kernels behind Gemm (gemm.h); private to atoma_model.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "atoma/engine/gemm.h"

namespace atoma::engine::internal {

// Computes panels [p_begin, p_end) of `w` for all rows: the order gemm.h states.
void GemmPortablePanels(const float* x, int64_t rows, int64_t ldx, const PackedWeights& w,
                        const float* bias, float* y, int64_t ldy, int64_t p_begin, int64_t p_end);
// Precondition: CpuHasAvx2Fma().
void GemmAvx2Panels(const float* x, int64_t rows, int64_t ldx, const PackedWeights& w,
                    const float* bias, float* y, int64_t ldy, int64_t p_begin, int64_t p_end);
// at::linear; catches libtorch exceptions.
absl::Status GemmTorch(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t n,
                       int64_t k, const float* bias, float* y, int64_t ldy);

}  // namespace atoma::engine::internal
