// Fixed-order decode GEMM: dispatch, worker pool and the portable kernel. See gemm.h for the
// summation order every kernel here follows. This file is compiled with -ffp-contract=off so the
// compiler cannot fuse a multiply and an add in one tile shape and not in another.
#include "atoma/engine/gemm.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "gemm_internal.h"

namespace atoma::engine {
namespace {

// Spin iterations before a waiting thread blocks. A decode step issues a job every few
// microseconds; sleeping between them would cost a futex wake-up (~10-50 us) per GEMM.
constexpr int kSpinIterations = 20000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Below this many multiply-adds a GEMM runs on the calling thread: waking workers costs more than
// it saves. Only speed depends on it, never bits.
constexpr int64_t kParallelMinWork = 1 << 15;

}  // namespace

const char* GemmPathName(GemmPath path) {
  switch (path) {
    case GemmPath::kAvx2:
      return "avx2-fixed";
    case GemmPath::kPortable:
      return "portable-fixed";
    case GemmPath::kTorch:
      return "torch";
  }
  return "unknown";
}

bool CpuHasAvx2Fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

WorkerPool::WorkerPool(int threads)
    : threads_(std::max(1, threads)), claimed_(new std::atomic<bool>[std::max(1, threads)]) {
  for (int p = 0; p < threads_; ++p) claimed_[p].store(true);
  workers_.reserve(threads_ - 1);
  for (int w = 1; w < threads_; ++w) workers_.emplace_back([this, w] { WorkerLoop(w); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void WorkerPool::TryRun(int part) {
  // The claim (acquire) pairs with Run's release of the flags, which it stores after job_.
  if (claimed_[part].exchange(true, std::memory_order_acq_rel)) return;
  (*job_.load(std::memory_order_acquire))(part, threads_);
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    { std::lock_guard<std::mutex> lock(mu_); }
    done_cv_.notify_one();
  }
}

void WorkerPool::Run(const std::function<void(int, int)>& fn) {
  if (threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_.store(&fn, std::memory_order_release);
  pending_.store(threads_, std::memory_order_release);
  for (int p = 0; p < threads_; ++p) claimed_[p].store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  TryRun(0);
  // Parts whose worker has not woken yet run here.
  for (int p = 1; p < threads_; ++p) TryRun(p);
  for (int i = 0; i < kSpinIterations; ++i) {
    if (pending_.load(std::memory_order_acquire) == 0) return;
    CpuRelax();
  }
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
}

void WorkerPool::WorkerLoop(int worker) {
  uint64_t seen = 0;
  while (true) {
    bool fresh = false;
    for (int i = 0; i < kSpinIterations; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen ||
          stop_.load(std::memory_order_acquire)) {
        fresh = true;
        break;
      }
      CpuRelax();
    }
    if (!fresh) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] {
        return generation_.load(std::memory_order_acquire) != seen ||
               stop_.load(std::memory_order_acquire);
      });
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    TryRun(worker);
  }
}

namespace internal {

// One output element, portable: 8 scalar lanes, the fixed horizontal sum, the tail, the bias.
static inline float DotPortable(const float* x, const float* w, int64_t k, const float* bias_n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t k8 = k - k % 8;
  for (int64_t c = 0; c < k8; c += 8) {
    for (int l = 0; l < 8; ++l) lane[l] = lane[l] + x[c + l] * w[c + l];
  }
  float s =
      ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
  for (int64_t i = k8; i < k; ++i) s = s + x[i] * w[i];
  if (bias_n != nullptr) s = s + *bias_n;
  return s;
}

void GemmPortableRange(const float* x, int64_t rows, int64_t ldx, const float* w, int64_t k,
                       const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  // Weight row outer, batch rows inner: each weight row comes from memory once and stays in L1
  // for every row of x.
  for (int64_t n = n_begin; n < n_end; ++n) {
    const float* wn = w + n * k;
    const float* bn = bias != nullptr ? bias + n : nullptr;
    for (int64_t r = 0; r < rows; ++r) y[r * ldy + n] = DotPortable(x + r * ldx, wn, k, bn);
  }
}

}  // namespace internal

absl::Status Gemm(GemmPath path, const float* x, int64_t rows, int64_t ldx, const float* w,
                  int64_t n, int64_t k, const float* bias, float* y, int64_t ldy,
                  WorkerPool* pool) {
  if (rows < 0 || n < 0 || k < 0 || ldx < k || ldy < n) {
    return absl::InvalidArgumentError(absl::StrCat("Gemm: bad sizes rows=", rows, " n=", n,
                                                   " k=", k, " ldx=", ldx, " ldy=", ldy));
  }
  if (rows == 0 || n == 0) return absl::OkStatus();
  if (path == GemmPath::kTorch) return internal::GemmTorch(x, rows, ldx, w, n, k, bias, y, ldy);
  if (path == GemmPath::kAvx2 && !CpuHasAvx2Fma()) {
    return absl::FailedPreconditionError("Gemm: this CPU lacks AVX2/FMA");
  }
  auto range = path == GemmPath::kAvx2 ? &internal::GemmAvx2Range : &internal::GemmPortableRange;
  if (pool == nullptr || pool->threads() == 1 || rows * n * k < kParallelMinWork) {
    range(x, rows, ldx, w, k, bias, y, ldy, 0, n);
    return absl::OkStatus();
  }
  pool->Run([&](int worker, int workers) {
    // Contiguous ranges of output features, rounded to multiples of 4 so the AVX2 kernel keeps
    // its 4-wide tiles; which worker computes an element never changes its bits.
    const int64_t blocks = (n + 3) / 4;
    const int64_t b0 = blocks * worker / workers;
    const int64_t b1 = blocks * (worker + 1) / workers;
    range(x, rows, ldx, w, k, bias, y, ldy, std::min(n, b0 * 4), std::min(n, b1 * 4));
  });
  return absl::OkStatus();
}

}  // namespace atoma::engine
