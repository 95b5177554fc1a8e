// Fixed-order decode GEMM: dispatch, worker pool and the portable kernel. See gemm.h for the
// summation order every kernel here follows. This file is compiled with -ffp-contract=off so the
// compiler cannot fuse a multiply and an add in one tile shape and not in another.
#include "atoma/engine/gemm.h"

#include <algorithm>
#include <new>
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

void PackedWeights::AlignedFree::operator()(float* p) const {
  ::operator delete[](p, std::align_val_t{64});
}

PackedWeights PackedWeights::Pack(const float* w, int64_t n, int64_t k) {
  PackedWeights out;
  out.n_ = std::max<int64_t>(n, 0);
  out.k_ = std::max<int64_t>(k, 0);
  const int64_t floats = out.panels() * out.k_ * kPanel;
  // 64-byte alignment: an 8-float load never splits a cache line.
  out.data_.reset(static_cast<float*>(
      ::operator new[](std::max<int64_t>(floats, 1) * sizeof(float), std::align_val_t{64})));
  for (int64_t p = 0; p < out.panels(); ++p) {
    float* dst = out.data_.get() + p * out.k_ * kPanel;
    for (int64_t kk = 0; kk < out.k_; ++kk) {
      for (int64_t j = 0; j < kPanel; ++j) {
        const int64_t row = p * kPanel + j;
        dst[kk * kPanel + j] = row < n ? w[row * k + kk] : 0.0f;
      }
    }
  }
  return out;
}

namespace internal {

void GemmPortablePanels(const float* x, int64_t rows, int64_t ldx, const PackedWeights& w,
                        const float* bias, float* y, int64_t ldy, int64_t p_begin, int64_t p_end) {
  constexpr int64_t kP = PackedWeights::kPanel;
  const int64_t k = w.k();
  // Panel outer, batch rows inner: a panel comes from memory once and stays in cache for every
  // row of x. Each of the 16 columns is its own sequential chain over k (multiply, then add).
  for (int64_t p = p_begin; p < p_end; ++p) {
    const float* wp = w.panel(p);
    const int64_t n0 = p * kP, cols = std::min(kP, w.n() - n0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * ldx;
      float acc[kP] = {};
      for (int64_t i = 0; i < k; ++i) {
        const float xv = xr[i];
        for (int64_t j = 0; j < kP; ++j) acc[j] = acc[j] + xv * wp[i * kP + j];
      }
      float* yr = y + r * ldy + n0;
      for (int64_t j = 0; j < cols; ++j) yr[j] = bias != nullptr ? acc[j] + bias[n0 + j] : acc[j];
    }
  }
}

}  // namespace internal

absl::Status Gemm(GemmPath path, const float* x, int64_t rows, int64_t ldx, const PackedWeights& w,
                  const float* bias, float* y, int64_t ldy, WorkerPool* pool) {
  const int64_t n = w.n(), k = w.k();
  if (rows < 0 || ldx < k || ldy < n) {
    return absl::InvalidArgumentError(absl::StrCat("Gemm: bad sizes rows=", rows, " n=", n,
                                                   " k=", k, " ldx=", ldx, " ldy=", ldy));
  }
  if (path == GemmPath::kTorch) {
    return absl::InvalidArgumentError("Gemm: packed weights need a fixed-order path, not torch");
  }
  if (path == GemmPath::kAvx2 && !CpuHasAvx2Fma()) {
    return absl::FailedPreconditionError("Gemm: this CPU lacks AVX2/FMA");
  }
  if (rows == 0 || n == 0) return absl::OkStatus();
  auto panels_fn =
      path == GemmPath::kAvx2 ? &internal::GemmAvx2Panels : &internal::GemmPortablePanels;
  const int64_t panels = w.panels();
  if (pool == nullptr || pool->threads() == 1 || rows * n * k < kParallelMinWork) {
    panels_fn(x, rows, ldx, w, bias, y, ldy, 0, panels);
    return absl::OkStatus();
  }
  pool->Run([&](int worker, int workers) {
    // Contiguous ranges of panels; which worker computes an element never changes its bits.
    panels_fn(x, rows, ldx, w, bias, y, ldy, panels * worker / workers,
              panels * (worker + 1) / workers);
  });
  return absl::OkStatus();
}

absl::Status Gemm(GemmPath path, const float* x, int64_t rows, int64_t ldx, const float* w,
                  int64_t n, int64_t k, const float* bias, float* y, int64_t ldy,
                  WorkerPool* pool) {
  if (rows < 0 || n < 0 || k < 0 || ldx < k || ldy < n) {
    return absl::InvalidArgumentError(absl::StrCat("Gemm: bad sizes rows=", rows, " n=", n,
                                                   " k=", k, " ldx=", ldx, " ldy=", ldy));
  }
  if (rows == 0 || n == 0) return absl::OkStatus();
  if (path == GemmPath::kTorch) return internal::GemmTorch(x, rows, ldx, w, n, k, bias, y, ldy);
  return Gemm(path, x, rows, ldx, PackedWeights::Pack(w, n, k), bias, y, ldy, pool);
}

}  // namespace atoma::engine
