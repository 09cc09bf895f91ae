// Shared by the workload benchmarks (bench/w*.cpp): one thread setting for xgrad's BLAS
// and LibTorch, A B A B timing with min / median / max, LibTorch / xgrad ratios, Markdown
// rows for scripts/bench.sh, and counting of heap allocations.
//
// Threads: XGRAD_THREADS, else OPENBLAS_NUM_THREADS, else 1, capped at the number of
// hardware threads. It is applied to xgrad (xgrad::set_num_threads: its own pool, which keeps
// OpenBLAS at one thread and splits the products itself) and to LibTorch's intra-op pool
// (torch::set_num_threads) with one inter-op thread. LibTorch and the hand-written limits
// call OpenBLAS (the same libopenblas as xgrad) for their products, so while a variant of
// another kind than "xgrad" runs, OpenBLAS gets the same number of threads (and one again
// for xgrad's variants): no variant gets more cores than another and the machine is never
// oversubscribed.
//
// Repetitions: XGRAD_BENCH_REPS (default per program), after one warm-up run of every
// variant. Each repetition runs every variant once, in a fixed order (A B C A B C ...),
// so slow drifts of the machine (other jobs, thermal) hit every variant alike. The heap
// is trimmed before every timed run (settle_heap), so no variant pays for another's frees.
//
// Include this header in exactly one translation unit per program: through counting.hpp it
// replaces the global allocation functions (counting versions, enabled only inside
// count_allocations).
#pragma once

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifdef XGRAD_BENCH_HAVE_TORCH
#include <torch/torch.h>
#endif

#include <xgrad/threads.hpp>

#include "counting.hpp"  // tests/alloc/counting.hpp

extern "C" {
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char* openblas_get_corename(void);
}

namespace bench {

// ------------------------------------------------------------------ allocation counting
// The counting replacements of the allocation functions come from tests/alloc/counting.hpp
// (shared with the allocation tests); here the counts are summed per caller.

/// Heap allocations made while f ran: by this executable's code (xgrad, xtensor, the
/// benchmark itself) and by shared libraries (OpenBLAS, LibTorch). -1 where not counted.
struct AllocCount {
  long own = -1;
  long foreign = -1;
};
template <class F>
AllocCount count_allocations(F&& f) {
  alloc_counting::Counts c = alloc_counting::count_allocations(std::forward<F>(f));
  if (!alloc_counting::counts_malloc) return {};
  return {c.own(), c.foreign()};
}

// ------------------------------------------------------------------ threads

/// The one thread setting (see the top of this file).
inline int thread_setting() {
  int n = 1;
  if (const char* s = std::getenv("XGRAD_THREADS"); s && *s) {
    n = std::atoi(s);
  } else if (const char* o = std::getenv("OPENBLAS_NUM_THREADS"); o && *o) {
    n = std::atoi(o);
  }
  int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::clamp(n, 1, hw);
}

/// The thread setting applied by setup_threads.
inline int& threads_in_use() {
  static int n = 1;
  return n;
}

/// OpenBLAS's threads while a variant of this kind runs: xgrad's own variants leave it at
/// xgrad's setting (one thread beside xgrad's pool), every other kind gets all the threads.
inline void blas_threads_for(const std::string& kind) {
  const int n = threads_in_use();
  if (n > 1) openblas_set_num_threads(kind == "xgrad" ? 1 : n);
}

/// Applies the thread setting to xgrad, OpenBLAS and LibTorch; prints it. Call first in main.
inline int setup_threads(const char* program) {
  int n = thread_setting();
  threads_in_use() = n;
  xgrad::set_num_threads(n);
  if (n == 1) openblas_set_num_threads(1);
#ifdef XGRAD_BENCH_HAVE_TORCH
  torch::set_num_threads(n);
  torch::set_num_interop_threads(1);
  std::printf(
      "%s: threads %d (xgrad %d, OpenBLAS %d beside xgrad and %d for the others, core %s; "
      "LibTorch %d intra-op, 1 inter-op)\n",
      program, n, xgrad::num_threads(), openblas_get_num_threads(), n, openblas_get_corename(),
      torch::get_num_threads());
#else
  std::printf(
      "%s: threads %d (xgrad %d, OpenBLAS %d beside xgrad and %d for the others, core %s; "
      "LibTorch not built)\n",
      program, n, xgrad::num_threads(), openblas_get_num_threads(), n, openblas_get_corename());
#endif
  return n;
}

inline int reps(int fallback) {
  if (const char* s = std::getenv("XGRAD_BENCH_REPS"); s && *s) return std::max(1, std::atoi(s));
  return fallback;
}

// ------------------------------------------------------------------ timing

using Clock = std::chrono::steady_clock;

/// Name suffix of the one-thread run of xgrad's first variant (compare(), report()).
inline const std::string one_thread_suffix = ", 1 thread (same run)";

/// One contender: a name, a kind ("xgrad", "LibTorch", "limit"...) and the run to time.
struct Variant {
  Variant(std::string n, std::string k, std::function<void()> r)
      : name(std::move(n)), kind(std::move(k)), run(std::move(r)) {}
  std::string name;
  std::string kind;
  std::function<void()> run;
  std::vector<double> seconds;  // filled by compare()
  /// Optional: runs k steady-state steps of the variant, for count_step_allocations.
  std::function<void(int)> steps;
  double allocs_own = -1;      // heap allocations per step by this executable's code
  double allocs_foreign = -1;  // ... and by shared libraries (OpenBLAS, LibTorch)
  double min() const { return *std::min_element(seconds.begin(), seconds.end()); }
  double max() const { return *std::max_element(seconds.begin(), seconds.end()); }
  double median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    std::size_t n = s.size();
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  }
};

/// Counts the heap allocations of k steady-state steps of every variant that has `steps`
/// (after compare(), so plans and buffers are in place), per step.
inline void count_step_allocations(std::vector<Variant>& vs, int k) {
  for (Variant& v : vs) {
    if (!v.steps) continue;
    blas_threads_for(v.kind);
    AllocCount a = count_allocations([&] { v.steps(k); });
    if (a.own < 0) continue;
    v.allocs_own = static_cast<double>(a.own) / k;
    v.allocs_foreign = static_cast<double>(a.foreign) / k;
  }
  blas_threads_for("xgrad");
}

/// What a run moves or computes, for the throughput column: `amount` per run in `unit`
/// per second ("GB/s of X": the gigabytes of X one run reads).
struct Rate {
  std::string unit;
  double amount = 0;
};

/// Returns the heap to a clean state between runs (glibc): frees parked by the previous
/// variant (LibTorch frees a hundred thousand autograd nodes in workload 4) are merged and
/// handed back now, instead of inside the next variant's timed region, where the next
/// large malloc would consolidate them. Every variant then starts from the same heap and
/// pays for the fresh memory it touches.
inline void settle_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

/// Above one thread, waits until the previous variant's idle threads have gone to sleep:
/// OpenBLAS's workers spin for about 2^28 cycles after their last job, and would take a
/// core from the next variant (docs/benchmarks.md, "Threads on an AMD EPYC").
/// XGRAD_BENCH_SETTLE_MS sets the wait (default 300, 0: none).
inline void settle_threads() {
  if (threads_in_use() <= 1) return;
  static const int ms = [] {
    const char* s = std::getenv("XGRAD_BENCH_SETTLE_MS");
    return s && *s ? std::atoi(s) : 300;
  }();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

/// Wall time of one run of f, after settle_heap() and, when `settle`, settle_threads().
inline double seconds_of(const std::function<void()>& f, bool settle = false) {
  settle_heap();
  if (settle) settle_threads();
  auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Runs shorter than this are timed without settle_threads(): a run of a few milliseconds
/// started after a sleep pays for the idle core's wake-up (workload 1 took twice as long),
/// and is too short for a neighbour's spinning threads to matter much.
inline constexpr double kSettleAbove = 0.05;

/// Warm-up (one run of each), then `repetitions` rounds running every variant once in
/// order: A B A B ...
/// XGRAD_BENCH_ONLY=KIND keeps only the variants of that kind (for profiling one side).
inline void compare(std::vector<Variant>& vs, int repetitions) {
  if (const char* only = std::getenv("XGRAD_BENCH_ONLY"); only && *only) {
    std::erase_if(vs, [&](const Variant& v) { return v.kind != only; });
    if (vs.empty()) {
      std::fprintf(stderr, "XGRAD_BENCH_ONLY=%s matches no variant\n", only);
      std::exit(2);
    }
  }
  // Above one thread, xgrad's first variant also runs at one thread, in turn with the
  // others: its speed-up is then measured side by side, not across two runs minutes apart
  // on a machine whose speed drifts.
  std::vector<Variant> one;
  const int n = threads_in_use();
  const auto first =
      std::find_if(vs.begin(), vs.end(), [](const Variant& v) { return v.kind == "xgrad"; });
  if (n > 1 && first != vs.end()) {
    one.emplace_back(first->name + one_thread_suffix, "xgrad", [run = first->run, n] {
      xgrad::set_num_threads(1);
      openblas_set_num_threads(1);
      run();
      xgrad::set_num_threads(n);
    });
  }
  auto all = [&](auto&& f) {  // the one-thread run first: a program's last variant may end a round
    for (Variant& v : one) f(v);
    for (Variant& v : vs) f(v);
  };
  std::vector<bool> settle;  // per variant in all()'s order, from the warm-up's time
  all([&](Variant& v) {
    blas_threads_for(v.kind);
    settle.push_back(seconds_of(v.run) > kSettleAbove);
  });
  for (int r = 0; r < repetitions; ++r) {
    std::size_t i = 0;
    all([&](Variant& v) {
      blas_threads_for(v.kind);
      v.seconds.push_back(seconds_of(v.run, settle[i++]));
    });
  }
  blas_threads_for("xgrad");
  for (Variant& v : one) vs.push_back(std::move(v));
}

/// "1.23 ms"-style rendering of a duration.
inline std::string human(double s) {
  char buf[64];
  if (s >= 1) {
    std::snprintf(buf, sizeof buf, "%.3f s", s);
  } else if (s >= 1e-3) {
    std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  } else if (s >= 1e-6) {
    std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f ns", s * 1e9);
  }
  return buf;
}

/// "0", "3.2", "161 (all in libraries)"-style rendering of allocations per step.
inline std::string allocs_str(const Variant& v) {
  if (v.allocs_own < 0) return "-";
  char buf[96];
  double total = v.allocs_own + v.allocs_foreign;
  if (total == 0) return "0";
  if (v.allocs_own == 0) {
    std::snprintf(buf, sizeof buf, "%.4g (all in libraries)", total);
  } else {
    std::snprintf(buf, sizeof buf, "%.4g (%.4g in libraries)", total, v.allocs_foreign);
  }
  return buf;
}

/// Prints a human table and Markdown rows ("MD " prefix, collected by scripts/bench.sh):
/// | workload | variant | min | median | max | median per unit | throughput | heap
/// allocations per unit | LibTorch / this |. `units` is the number of units ("steps") one
/// run consists of; the ratio is taken against the first variant of kind "LibTorch".
inline void report(const std::string& workload, const std::vector<Variant>& vs, double units,
                   const std::string& unit_name, const Rate& rate = {}) {
  const Variant* torch = nullptr;
  for (const Variant& v : vs) {
    if (v.kind == "LibTorch") {
      torch = &v;
      break;
    }
  }
  auto throughput = [&](const Variant& v) -> std::string {
    if (rate.amount <= 0) return "-";
    char b[64];
    std::snprintf(b, sizeof b, "%.1f %s", rate.amount / v.median(), rate.unit.c_str());
    return b;
  };
  std::printf("\n%-44s %11s %11s %11s %12s %16s %10s %s\n", workload.c_str(), "min", "median",
              "max", ("per " + unit_name).c_str(), "throughput", "LT/this",
              ("allocs/" + unit_name).c_str());
  for (const Variant& v : vs) {
    std::string ratio = "";
    if (torch) {
      char b[64];
      std::snprintf(b, sizeof b, "%.2fx", torch->median() / v.median());
      ratio = b;
    }
    std::printf("%-44s %11s %11s %11s %12s %16s %10s %s\n", v.name.c_str(), human(v.min()).c_str(),
                human(v.median()).c_str(), human(v.max()).c_str(),
                human(v.median() / units).c_str(), throughput(v).c_str(), ratio.c_str(),
                allocs_str(v).c_str());
  }
  for (const Variant& v : vs) {
    std::string ratio = "";
    if (torch && &v != torch) {
      char b[96];
      std::snprintf(b, sizeof b, "**%.2fx** (min %.2fx)", torch->median() / v.median(),
                    torch->min() / v.min());
      ratio = b;
    } else if (torch) {
      ratio = "1";
    }
    std::printf("MD | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", workload.c_str(),
                v.name.c_str(), human(v.min()).c_str(), human(v.median()).c_str(),
                human(v.max()).c_str(), human(v.median() / units).c_str(), throughput(v).c_str(),
                allocs_str(v).c_str(), ratio.c_str());
  }
  // The speed-up of xgrad's first variant over its one-thread run (compare() adds it).
  const auto first =
      std::find_if(vs.begin(), vs.end(), [](const Variant& v) { return v.kind == "xgrad"; });
  const auto one =
      first == vs.end() ? vs.end() : std::find_if(vs.begin(), vs.end(), [&](const Variant& v) {
        return v.name == first->name + one_thread_suffix;
      });
  if (one != vs.end()) {
    const double med = one->median() / first->median(), min = one->min() / first->min();
    std::printf(
        "%s, %d threads against 1 in the same run: %.2fx the speed (medians; minima %.2fx)\n",
        first->name.c_str(), threads_in_use(), med, min);
    std::printf(
        "MDSPEEDUP %s, %d threads against 1 in the same run: **%.2fx** the speed "
        "(medians; minima %.2fx)\n",
        first->name.c_str(), threads_in_use(), med, min);
  }
}

/// A free-form Markdown note line for scripts/bench.sh ("MDNOTE " prefix).
template <class... A>
void note(const char* fmt, A... args) {
  char buf[1024];
  std::snprintf(buf, sizeof buf, fmt, args...);
  std::printf("%s\nMDNOTE %s\n", buf, buf);
}

/// Keeps a value alive for the optimiser.
template <class V>
void keep(const V& v) {
  asm volatile("" : : "g"(&v) : "memory");
}

}  // namespace bench
