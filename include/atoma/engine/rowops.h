// Fixed-order row kernels of the CPU decode path (DESIGN §3): the attention of one query head over
// its own sequence's cache, SiLU(gate) * up, and the exp they use. Like the GEMM (gemm.h) each
// output is one fixed sequence of IEEE float operations (multiply, add, divide, each rounded on
// its own: no contraction), whatever the batch, the thread or the CPU. The AVX2 versions run the
// same operations 8 lanes at a time and give the same bits as the portable ones; GemmPath only
// picks the speed.
//
// exp is ours (FixedExp), not libm's: a library's exp may round differently from version to
// version, and it cannot be vectorized with the same bits. Thread-safe (pure functions).
#pragma once

#include <cstdint>

#include "atoma/engine/gemm.h"

namespace atoma::engine {

// e^x in float: x clamped to [-87, 88], x = n ln2 + r with n = nearbyint(x log2(e)) and ln2 split
// in two (Cody-Waite), e^r by its degree-7 Taylor polynomial in Horner form, times 2^n built from
// the exponent bits. Relative error under 3e-7 over the whole range (tested); e^-87 ≈ 1.6e-38 is
// the smallest value (softmax needs no exact zero), e^88 ≈ 1.65e38 the largest.
float FixedExp(float x);

// One query head: scores[j] = dot8(q, K[j]) * scale for j < len (dot8: 8 lanes over the head
// dimension, combined ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)), then the tail), softmax with FixedExp
// (max subtracted; the sum in the same 8-lane order over j), out[d] = sum_j p_j V[j][d] in
// ascending j. K and V hold `len` rows of `hd` floats; `scores` has room for `len` floats.
// kAvx2 needs CpuHasAvx2Fma(); kPortable and kTorch run the portable code.
void AttendHead(GemmPath path, const float* q, const float* K, const float* V, int64_t len,
                int64_t hd, float scale, float* scores, float* out);

// a[i] = (g[i] / (1 + FixedExp(-g[i]))) * u[i] for i < n.
void SiluMul(GemmPath path, const float* g, const float* u, float* a, int64_t n);

}  // namespace atoma::engine
