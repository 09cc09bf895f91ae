// The thread pool behind xgrad/threads.hpp. Workers wait for a new generation number: they
// spin for a short while (the next parallel region of a run usually follows within
// microseconds) and then block in a futex wait (std::atomic::wait), so idle workers cost no
// CPU. The parts of a region are claimed one at a time, by the workers and by the caller, so
// a worker that the system has not scheduled yet (a loaded machine) delays nothing: the
// caller runs the parts left. Which thread runs a part never changes what it computes. One
// caller at a time owns the pool; a caller that finds it owned, or that is itself inside a
// part, runs its parts alone.
#include "thread_pool.hpp"

#include <dlfcn.h>
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "xgrad/error.hpp"

namespace xgrad {
namespace exec {
namespace {

constexpr int kMaxThreads = 1024;
// How long a waiting thread spins before it blocks, and after how long of it it yields
// the core to any other runnable thread (a loader's prefetching worker) between checks.
// Waking a blocked thread costs tens of microseconds on a virtual machine, more than the
// serial stretch between two parallel regions of a training step usually lasts.
constexpr auto kSpin = std::chrono::microseconds(1000);
constexpr auto kSpinBeforeYield = std::chrono::microseconds(20);

thread_local bool tl_in_part = false;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

/// Waits until a.load() != old: spins for kSpin, then blocks.
void wait_change(const std::atomic<std::uint32_t>& a, std::uint32_t old) {
  const auto changed = [&] { return a.load(std::memory_order_acquire) != old; };
  if (spin_until(changed, static_cast<unsigned>(kSpin.count()))) return;
  while (a.load(std::memory_order_acquire) == old) a.wait(old, std::memory_order_acquire);
}

}  // namespace

bool spin_until(bool (*done)(const void*), const void* ctx, unsigned us) {
  const auto start = std::chrono::steady_clock::now();
  const auto budget = std::chrono::microseconds(us);
  for (unsigned i = 1;; ++i) {
    if (done(ctx)) return true;
    cpu_relax();
    if (i % 64 == 0) {
      const auto spun = std::chrono::steady_clock::now() - start;
      if (spun > budget) return false;
      if (spun > kSpinBeforeYield) sched_yield();
    }
  }
}

namespace {

/// Cores this process may run on: those of its affinity mask, at most as many as its cgroup's
/// CPU quota allows.
int available_cores() {
  int n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int quota = cgroup_cpu_limit();
  return quota > 0 ? std::min(n, quota) : n;
}

/// XGRAD_THREADS when set (and not empty), else the available cores.
int default_threads() {
  const char* s = std::getenv("XGRAD_THREADS");
  if (!s || !*s) return available_cores();
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < 1 || v > kMaxThreads) {
    throw ValueError("XGRAD_THREADS='" + std::string(s) +
                     "' is not a thread count (a whole number from 1 to " +
                     std::to_string(kMaxThreads) + ")");
  }
  return static_cast<int>(v);
}

// OpenBLAS's thread setter, when the BLAS in the process is OpenBLAS.
using SetThreads = void (*)(int);

// The pool's thread count once known, outside the pool: num_threads() is asked on every
// run (bind.cpp) and the function-local pool's guard costs more than the answer.
std::atomic<int> known_threads{0};

class Pool {
 public:
  ~Pool() { stop_workers(); }

  int size() {
    int n = threads_.load(std::memory_order_acquire);
    if (n > 0) return n;
    std::lock_guard lock(use_);
    if (threads_.load(std::memory_order_relaxed) == 0) resize(default_threads());
    return threads_.load(std::memory_order_relaxed);
  }

  void set(int n) {
    if (n < 0) {
      throw ValueError("set_num_threads(" + std::to_string(n) +
                       "): the thread count must be at least 1 (0: the default)");
    }
    if (n > kMaxThreads) {
      throw ValueError("set_num_threads(" + std::to_string(n) + "): at most " +
                       std::to_string(kMaxThreads) + " threads");
    }
    if (tl_in_part) throw ValueError("set_num_threads: called from inside a parallel part");
    std::lock_guard lock(use_);
    resize(n == 0 ? default_threads() : n);
  }

  void run(std::size_t count, std::size_t parts, bool concurrent, PartFn fn) {
    std::unique_lock lock(use_, std::defer_lock);
    const bool pooled = concurrent && !tl_in_part && parts > 1 && lock.try_lock() &&
                        !workers_.empty() && parts <= workers_.size() + 1;
    if (!pooled) {
      if (lock.owns_lock()) lock.unlock();
      run_serially(count, parts, fn);
      return;
    }
    fn_ = fn;
    count_ = count;
    for (std::size_t p = 0; p < parts; ++p) errors_[p] = nullptr;
    done_.store(0, std::memory_order_relaxed);
    const std::uint64_t job = (++jobs_ & 0xFFFFFF) << 40 | std::uint64_t{parts} << 20;
    claims_.store(job | 1, std::memory_order_release);  // part 0 is the caller's
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    run_part(0);
    std::uint32_t done = done_.fetch_add(1, std::memory_order_acq_rel) + 1;
    while (claim_and_run()) {
    }
    const auto all = static_cast<std::uint32_t>(parts);
    while ((done = done_.load(std::memory_order_acquire)) != all) wait_change(done_, done);
    for (std::size_t p = 0; p < parts; ++p) {
      if (errors_[p]) std::rethrow_exception(errors_[p]);
    }
  }

 private:
  static void run_serially(std::size_t count, std::size_t parts, PartFn fn) {
    const bool outer = !tl_in_part;
    tl_in_part = true;
    try {
      for (std::size_t p = 0; p < parts; ++p)
        fn.call(fn.ctx, part_begin(count, parts, p), part_begin(count, parts, p + 1), p);
    } catch (...) {
      if (outer) tl_in_part = false;
      throw;
    }
    if (outer) tl_in_part = false;
  }

  std::size_t parts_now() const {
    return static_cast<std::size_t>(claims_.load(std::memory_order_relaxed) >> 20 & 0xFFFFF);
  }

  void run_part(std::size_t p) {
    tl_in_part = true;
    try {
      fn_.call(fn_.ctx, part_begin(count_, parts_now(), p), part_begin(count_, parts_now(), p + 1),
               p);
    } catch (...) {
      errors_[p] = std::current_exception();
    }
    tl_in_part = false;
  }

  /// Claims the next unclaimed part of the current region and runs it; false when none is
  /// left. The claim word holds the region's number, its part count and the next part, so a
  /// claim on a finished region fails; a region cannot finish while a claimed part runs, so
  /// its fields stay valid for the claimant.
  bool claim_and_run() {
    std::uint64_t w = claims_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t parts = w >> 20 & 0xFFFFF, next = w & 0xFFFFF;
      if (next >= parts) return false;
      if (claims_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        run_part(next);
        const auto all = static_cast<std::uint32_t>(parts);
        if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == all) done_.notify_one();
        return true;
      }
    }
  }

  void worker(std::uint32_t seen) {
    for (;;) {
      wait_change(generation_, seen);
      seen = generation_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_acquire)) return;
      while (claim_and_run()) {
      }
    }
  }

  // Holding use_.
  void resize(int n) {
    set_blas_threads();  // also when n is unchanged: a user may have raised it meanwhile
    if (n == threads_.load(std::memory_order_relaxed) && workers_.size() + 1 == std::size_t(n))
      return;
    stop_workers();
    errors_.assign(static_cast<std::size_t>(n), nullptr);
    stop_.store(false, std::memory_order_relaxed);
    workers_.reserve(static_cast<std::size_t>(n - 1));
    const std::uint32_t g0 = generation_.load(std::memory_order_relaxed);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, g0] { worker(g0); });
    threads_.store(n, std::memory_order_release);
    known_threads.store(n, std::memory_order_release);
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  // OpenBLAS runs on one thread at every setting: with more, xgrad splits the products itself
  // (OpenBLAS's threads and xgrad's workers would compete for the same cores), and at one
  // thread one is what was asked for (XGRAD_THREADS=1 must not leave OpenBLAS on all cores).
  static void set_blas_threads() {
    static const auto set_fn =
        reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (set_fn) set_fn(1);
  }

  std::mutex use_;  // the caller owning the pool, and resizing
  std::atomic<int> threads_{0};
  std::vector<std::thread> workers_;
  std::atomic<std::uint32_t> generation_{0};  // wakes the workers
  std::atomic<std::uint64_t> claims_{0};      // region number << 40 | parts << 20 | next part
  std::atomic<std::uint32_t> done_{0};        // parts finished in the current region
  std::atomic<bool> stop_{false};
  std::uint64_t jobs_ = 0;
  PartFn fn_{};
  std::size_t count_ = 0;
  std::vector<std::exception_ptr> errors_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void run_parts(std::size_t count, std::size_t parts, bool concurrent, PartFn fn) {
  pool().run(count, parts, concurrent, fn);
}

bool in_parallel_part() { return tl_in_part; }

}  // namespace exec

void set_num_threads(int n) { exec::pool().set(n); }

int num_threads() {
  const int n = exec::known_threads.load(std::memory_order_acquire);
  return n > 0 ? n : exec::pool().size();
}

}  // namespace xgrad
