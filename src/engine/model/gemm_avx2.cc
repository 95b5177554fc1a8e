// The fixed-order AVX2/FMA decode kernel. Only the functions marked ATOMA_AVX2 use AVX2
// instructions, so the rest of the binary stays portable; Gemm calls them only after
// CpuHasAvx2Fma(). Compiled with -ffp-contract=off (the bias add must stay a separate add).
//
// Every output element follows the same operations whatever tile computes it (gemm.h):
//   s = 0; for k = 0 .. K-1: s = fma(x[r, k], W[n, k], s); then s = s + bias[n].
// W is packed in panels of 16 output features stored k-major, so one k of a panel is two 8-wide
// vectors. A tile of R rows broadcasts x[r, k] and updates R x 2 accumulator vectors: R only
// changes how many chains run side by side (how often a loaded weight vector is reused), never
// the operations inside a chain, which is what makes a row's bits independent of the batch.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "gemm_internal.h"

#if defined(__GNUC__) || defined(__clang__)
#define ATOMA_AVX2 __attribute__((target("avx2,fma")))
#define ATOMA_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#else
#error "the AVX2 kernel needs GCC or Clang"
#endif

namespace atoma::engine::internal {
namespace {

constexpr int64_t kP = PackedWeights::kPanel;
static_assert(kP == 16, "the tile holds a panel in two 8-wide vectors");

// The most rows one tile holds: 6 x 2 = 12 accumulators, enough independent FMA chains to cover
// the FMA latency (4 cycles x 2 ports), with registers left for the two weight vectors and the
// broadcast.
constexpr int kMaxTileRows = 6;

// Bytes of x one row block keeps in flight (half of a 1 MiB L2, leaving room for the panel).
constexpr int64_t kRowBlockBytes = 512 * 1024;

// R rows of x times one panel (16 output features) over all of K.
template <int R>
ATOMA_AVX2_INLINE void Tile(const float* x, int64_t ldx, const float* wp, int64_t k,
                            const float* bias, float* y, int64_t ldy, int64_t n0, int64_t cols) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    const __m256 w0 = _mm256_load_ps(wp + i * kP);
    const __m256 w1 = _mm256_load_ps(wp + i * kP + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_broadcast_ss(x + r * ldx + i);
      acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
    }
  }
  if (bias != nullptr && cols == kP) {
    const __m256 b0 = _mm256_loadu_ps(bias + n0), b1 = _mm256_loadu_ps(bias + n0 + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm256_add_ps(acc[r][0], b0);
      acc[r][1] = _mm256_add_ps(acc[r][1], b1);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* yr = y + r * ldy + n0;
    if (cols == kP) {
      _mm256_storeu_ps(yr, acc[r][0]);
      _mm256_storeu_ps(yr + 8, acc[r][1]);
    } else {
      // The zero-padded last panel: only `cols` features exist (in y and in bias).
      alignas(32) float tmp[kP];
      _mm256_store_ps(tmp, acc[r][0]);
      _mm256_store_ps(tmp + 8, acc[r][1]);
      for (int64_t j = 0; j < cols; ++j) yr[j] = bias != nullptr ? tmp[j] + bias[n0 + j] : tmp[j];
    }
  }
}

ATOMA_AVX2_INLINE void TileRows(int rows, const float* x, int64_t ldx, const float* wp, int64_t k,
                                const float* bias, float* y, int64_t ldy, int64_t n0,
                                int64_t cols) {
  switch (rows) {
    case 1:
      return Tile<1>(x, ldx, wp, k, bias, y, ldy, n0, cols);
    case 2:
      return Tile<2>(x, ldx, wp, k, bias, y, ldy, n0, cols);
    case 3:
      return Tile<3>(x, ldx, wp, k, bias, y, ldy, n0, cols);
    case 4:
      return Tile<4>(x, ldx, wp, k, bias, y, ldy, n0, cols);
    case 5:
      return Tile<5>(x, ldx, wp, k, bias, y, ldy, n0, cols);
    default:
      return Tile<6>(x, ldx, wp, k, bias, y, ldy, n0, cols);
  }
}

}  // namespace

ATOMA_AVX2 void GemmAvx2Panels(const float* x, int64_t rows, int64_t ldx, const PackedWeights& w,
                               const float* bias, float* y, int64_t ldy, int64_t p_begin,
                               int64_t p_end) {
  const int64_t k = w.k();
  // Prefill (hundreds of rows): x no longer fits in L2 (512 x 1536 floats = 3 MB), and streaming
  // all of it from L3 for every panel costs more than re-reading the panels. Rows go in blocks of
  // about kRowBlockBytes of x, each block sweeping this worker's panels. The row split only
  // changes which tile computes an element, never its chain, so bits are unchanged.
  const int64_t block = std::max<int64_t>(
      kMaxTileRows, kRowBlockBytes / (std::max<int64_t>(k, 1) * 4) / kMaxTileRows * kMaxTileRows);
  for (int64_t b0 = 0; b0 < rows; b0 += block) {
    const int64_t brows = std::min(block, rows - b0);
    const float* xb = x + b0 * ldx;
    float* yb = y + b0 * ldy;
    // Rows split into the fewest tiles of at most 6, as even as possible (8 rows = 4 + 4, not
    // 6 + 2: a small tile is latency-bound and costs nearly as much as a full one).
    const int64_t groups = (brows + kMaxTileRows - 1) / kMaxTileRows;
    // Panel outer, row tiles inner: a panel (K x 64 bytes) is read from memory once per row
    // block, as one sequential stream, and reused from cache for every tile of rows.
    for (int64_t p = p_begin; p < p_end; ++p) {
      const float* wp = w.panel(p);
      const int64_t n0 = p * kP, cols = std::min(kP, w.n() - n0);
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t r0 = brows * g / groups, r1 = brows * (g + 1) / groups;
        TileRows(static_cast<int>(r1 - r0), xb + r0 * ldx, ldx, wp, k, bias, yb + r0 * ldy, ldy, n0,
                 cols);
      }
    }
  }
}

}  // namespace atoma::engine::internal
