// Decode GEMM: y[r, n] = bias[n] + sum_k x[r, k] * W[n, k], with W in Hugging Face layout
// [out, in] row-major fp32, for the few rows of a decode step (DESIGN §3).
//
// Why our own kernel: libtorch/OpenBLAS is far from the memory floor at 1..16 rows and its bits
// change with the row count and the thread count. The fixed-order kernels here compute every
// output element with the same sequence of floating-point operations whatever the number of rows,
// the row's position and the number of threads. The canonical order is one sequential chain over
// K per output element:
//   s = 0; for k = 0, 1, ..., K-1: s = s + x[r, k] * W[n, k]; then s = s + bias[n] (if any).
// The AVX2 kernel rounds once per step (s = fma(x[r, k], W[n, k], s)); the portable kernel rounds
// the product and the sum separately (multiply then add, no contraction), so the two paths differ
// in bits (a different path is a different echelon) but each is batch-invariant.
// The kernels read W repacked into column panels (PackedWeights): an 8-wide vector then holds 8
// output features of one k, a register tile keeps R rows x 16 features in flight, and a tile of
// any R runs the same chain per element. Threads split the panels (each element is computed by
// exactly one thread), never K.
//
// No torch in this header: other modules and tests include it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace atoma::engine {

enum class GemmPath {
  kAvx2,      // fixed-order AVX2/FMA (FAILED_PRECONDITION where the CPU lacks avx2 or fma)
  kPortable,  // fixed-order scalar, same summation structure, no FMA
  kTorch,     // at::linear (OpenBLAS on CPU): the fast non-invariant baseline
};

const char* GemmPathName(GemmPath path);

// True when the running CPU supports AVX2 and FMA (checked once, at run time).
bool CpuHasAvx2Fma();

// A fixed set of worker threads for data-parallel loops. The caller's thread takes part as
// worker 0, so a pool of `threads` starts `threads - 1` OS threads. A job is split into
// `threads()` parts by index; each part runs exactly once, on whichever thread claims it first:
// the caller claims the parts of workers that have not started yet, so a descheduled worker (a
// busy machine) never stalls a decode step. Which thread runs a part never changes its result.
// Workers spin briefly on a new job before sleeping, because a decode step issues a few hundred
// short jobs.
//
// Thread-safety: Run may be called by one thread at a time (the model's owner); not reentrant.
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int threads() const { return threads_; }

  // Calls fn(part, threads()) once for each part in [0, threads()), possibly on different
  // threads, and returns when all calls have returned. fn must not throw.
  void Run(const std::function<void(int part, int parts)>& fn);

 private:
  void WorkerLoop(int worker);
  // Runs `part` of the current job if nobody claimed it yet.
  void TryRun(int part);

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_cv_;
  std::atomic<const std::function<void(int, int)>*> job_{nullptr};
  std::unique_ptr<std::atomic<bool>[]> claimed_;  // per part, reset by each Run
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // parts not finished
  std::atomic<bool> stop_{false};
};

// W repacked for the fixed-order kernels: panels of kPanel consecutive output features, each
// stored k-major ([ceil(N / kPanel)][K][kPanel], 64-byte aligned), the last panel zero-padded.
// Holds a copy: the source can be freed. Immutable after Pack, so safe to share between threads.
class PackedWeights {
 public:
  static constexpr int64_t kPanel = 16;

  PackedWeights() = default;
  // w: [n, k] row-major (Hugging Face [out, in]).
  static PackedWeights Pack(const float* w, int64_t n, int64_t k);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t panels() const { return (n_ + kPanel - 1) / kPanel; }
  // Panel p: K rows of kPanel floats.
  const float* panel(int64_t p) const { return data_.get() + p * k_ * kPanel; }
  int64_t bytes() const { return panels() * k_ * kPanel * static_cast<int64_t>(sizeof(float)); }

 private:
  struct AlignedFree {
    void operator()(float* p) const;
  };
  int64_t n_ = 0, k_ = 0;
  std::unique_ptr<float[], AlignedFree> data_;
};

// y (rows x N, row stride ldy >= N) = x (rows x K, row stride ldx >= K) * W^T + bias, through a
// fixed-order kernel (kAvx2 or kPortable; INVALID_ARGUMENT for kTorch, which needs the HF layout).
// `bias` may be null. `pool` may be null (runs on the calling thread). FAILED_PRECONDITION for
// kAvx2 without AVX2/FMA.
absl::Status Gemm(GemmPath path, const float* x, int64_t rows, int64_t ldx, const PackedWeights& w,
                  const float* bias, float* y, int64_t ldy, WorkerPool* pool);

// y (rows x N, row stride ldy >= N) = x (rows x K, row stride ldx >= K) * W^T + bias.
// `bias` may be null. `pool` may be null (runs on the calling thread). Output features are split
// into contiguous ranges, one per worker. The fixed paths pack W on every call (same bits as the
// PackedWeights overload; for tests and one-off calls, not for the decode loop). For kTorch `pool`
// is ignored (libtorch uses its own
// threads). INVALID_ARGUMENT on bad sizes; FAILED_PRECONDITION for kAvx2 without AVX2/FMA;
// INTERNAL when libtorch throws.
absl::Status Gemm(GemmPath path, const float* x, int64_t rows, int64_t ldx, const float* w,
                  int64_t n, int64_t k, const float* bias, float* y, int64_t ldy, WorkerPool* pool);

}  // namespace atoma::engine
