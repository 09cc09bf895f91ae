// xgrad's thread pool (xgrad/threads.hpp): num_threads() - 1 persistent workers and the
// calling thread run the parts of a range. The partition is fixed by the part count, which
// callers derive from the thread count and the shape only, so results never depend on timing;
// `concurrent` only says whether waking the workers pays (a call that does not run
// concurrently runs the same parts one after another, in part order, and gives the same
// bits). Internal to src/.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <type_traits>

#include "xgrad/threads.hpp"

namespace xgrad::exec {

/// CPUs the process's cgroup lets it use: its CPU quota (cgroup v2 `cpu.max`, else v1
/// `cpu.cfs_quota_us` over `cpu.cfs_period_us`), the smallest of the cgroup's and its
/// ancestors', rounded up; 0 when no quota applies or none can be read.
int cgroup_cpu_limit();
/// cgroup_cpu_limit() for a cgroup file system mounted at cgroup_root and the text of a
/// /proc/self/cgroup (tests give it a directory of their own).
int cgroup_cpu_limit(const std::string& cgroup_root, const std::string& proc_self_cgroup);

/// A part's body: f(begin, end, part) over items [begin, end) of the range.
struct PartFn {
  void (*call)(const void*, std::size_t, std::size_t, std::size_t);
  const void* ctx;
};

/// Runs fn on `parts` parts of [0, count) (parts >= 1), on the pool when `concurrent`, the
/// pool is free and this thread is not already inside a part; otherwise every part in this
/// thread, in order. Rethrows the exception of the first failing part (by part index) after
/// every part has finished. No allocation in steady state.
void run_parts(std::size_t count, std::size_t parts, bool concurrent, PartFn fn);

/// Spins until done(ctx) is true or about `us` microseconds have passed, pausing between
/// checks and yielding the core after the first 20 microseconds (to a thread it may be
/// waiting for on the same core); true when done(ctx). Waking a blocked thread costs tens of
/// microseconds on a virtual machine: a short wait is cheaper spun than blocked.
bool spin_until(bool (*done)(const void*), const void* ctx, unsigned us);

/// spin_until for a callable.
template <class F>
bool spin_until(const F& done, unsigned us) {
  return spin_until([](const void* c) { return (*static_cast<const F*>(c))(); }, &done, us);
}

/// First item of part p of `parts` parts of [0, count): the parts differ by at most one item
/// and the first count % parts parts take the larger share.
inline std::size_t part_begin(std::size_t count, std::size_t parts, std::size_t p) {
  return p * (count / parts) + std::min(p, count % parts);
}

/// The part count of a range of `count` items whose work is large per item (images of a
/// convolution): one per thread, at most one per item (1 for an empty range).
inline std::size_t parts_per_thread(std::size_t count) {
  return std::max<std::size_t>(1, std::min(static_cast<std::size_t>(num_threads()), count));
}

/// Rows a part of a partial-sum partition holds at least.
inline constexpr std::size_t kMinPartRows = 64;

/// The part count of a range of `count` rows whose partial results are summed: one per
/// thread, but never fewer than kMinPartRows rows a part, so that a small problem (the
/// seed's 4 x 3 regression) sums as in one thread whatever the thread count, and its
/// printed figures do not depend on the machine. Depends on (threads, count) only, so a
/// row-tiled group and the untiled run over the same rows use the same parts.
inline std::size_t parts_for(std::size_t count) {
  return std::max<std::size_t>(1, std::min(parts_per_thread(count), count / kMinPartRows));
}

/// The part count for `count` items that each cost about `item_work` elementary operations:
/// only as many parts as keep at least `min_work` per part (1: run in the caller alone). For
/// work whose result does not depend on the partition.
inline std::size_t parts_for_work(std::size_t count, double item_work, double min_work) {
  const double per = std::max(item_work, 1e-9);
  const double work = static_cast<double>(count) * per;
  // Small work stays in the caller, decided without a division or asking the pool: the
  // executor's direct steps ask on every run of steps of a few elements.
  if (work < 2 * min_work) return 1;
  const auto by_work = static_cast<std::size_t>(work / min_work);
  return std::max<std::size_t>(1, std::min(parts_per_thread(count), by_work));
}

/// run_parts for any callable f(begin, end, part).
template <class F>
void parallel_for(std::size_t count, std::size_t parts, bool concurrent, const F& f) {
  if (parts <= 1) {
    f(std::size_t{0}, count, std::size_t{0});
    return;
  }
  PartFn fn{[](const void* c, std::size_t b, std::size_t e, std::size_t p) {
              (*static_cast<const F*>(c))(b, e, p);
            },
            &f};
  run_parts(count, parts, concurrent, fn);
}

/// parallel_for with parts_for_work's part count: for work whose result does not depend on
/// the partition (maps, products element by element).
template <class F>
void parallel_for_work(std::size_t count, double item_work, double min_work, const F& f) {
  const std::size_t parts = parts_for_work(count, item_work, min_work);
  parallel_for(count, parts, parts > 1, f);
}

/// Elementary operations a part should have at least, for parallel_for_work: about the work
/// of 10 microseconds of one core, against a few microseconds to wake and join a worker (the
/// workers spin a while after each region, so a training step's many regions wake them
/// cheaply: docs/benchmarks.md).
inline constexpr double kMinPartWork = 32768;

/// True while this thread runs a part of a parallel region (nested calls then run serially).
bool in_parallel_part();

}  // namespace xgrad::exec
