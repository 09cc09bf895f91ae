// xgrad's thread pool and the kernels it splits (xgrad/threads.hpp, src/exec/thread_pool.*):
// the partition covers a range exactly once, exceptions reach the caller, nested and
// concurrent calls run, and every split kernel gives what one thread gives (bit for bit where
// threads.hpp promises it, within rounding elsewhere), the same bits on every run at a given
// thread count. Run under ThreadSanitizer by .ci/run.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <xgrad/kernels.hpp>
#include <xgrad/xgrad.hpp>

#include "../src/exec/thread_pool.hpp"
#include "test_util.hpp"

namespace {

namespace exec = xgrad::exec;

using xgrad_test::Threads;

TEST(ThreadPool, PartitionCoversTheRangeOnceInOrder) {
  Threads t(3);
  EXPECT_EQ(xgrad::num_threads(), 3);
  for (std::size_t count : {0u, 1u, 2u, 3u, 7u, 100u, 1001u}) {
    for (std::size_t parts : {1u, 2u, 3u}) {
      for (bool concurrent : {false, true}) {
        std::vector<std::atomic<int>> hits(count);
        std::vector<std::size_t> begins(parts, ~std::size_t{0}), ends(parts, 0);
        exec::parallel_for(count, parts, concurrent,
                           [&](std::size_t b, std::size_t e, std::size_t p) {
                             begins[p] = b;
                             ends[p] = e;
                             for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
                           });
        for (std::size_t i = 0; i < count; ++i) EXPECT_EQ(hits[i].load(), 1) << count << " " << i;
        // Contiguous parts in order, sizes differing by at most one.
        EXPECT_EQ(begins[0], 0u);
        EXPECT_EQ(ends[parts - 1], count);
        for (std::size_t p = 0; p + 1 < parts; ++p) EXPECT_EQ(ends[p], begins[p + 1]);
        for (std::size_t p = 0; p < parts; ++p)
          EXPECT_LE(ends[p] - begins[p], count / parts + 1) << count << " part " << p;
      }
    }
  }
}

TEST(ThreadPool, PartsRunOnSeveralThreads) {
  Threads t(2);
  std::vector<std::thread::id> ids(2);
  // Each part waits (bounded) for the other to start: only concurrent parts both see it.
  std::atomic<int> started{0};
  bool both = false;
  for (int attempt = 0; attempt < 20 && !both; ++attempt) {
    started = 0;
    exec::parallel_for(2, 2, true, [&](std::size_t, std::size_t, std::size_t p) {
      ids[p] = std::this_thread::get_id();
      started.fetch_add(1);
      for (int i = 0; i < 2000000 && started.load() < 2; ++i) std::this_thread::yield();
    });
    both = ids[0] != ids[1];
  }
  EXPECT_TRUE(both) << "the two parts never ran on two threads";
  EXPECT_EQ(ids[0], std::this_thread::get_id()) << "part 0 runs in the caller";
}

TEST(ThreadPool, FirstExceptionByPartIndexReachesTheCaller) {
  Threads t(3);
  for (bool concurrent : {false, true}) {
    std::atomic<int> ran{0};
    try {
      exec::parallel_for(30, 3, concurrent, [&](std::size_t, std::size_t, std::size_t p) {
        ran.fetch_add(1);
        if (p >= 1) throw std::runtime_error("part " + std::to_string(p));
      });
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "part 1");
    }
    // Serially the first failure stops the rest; concurrently every part ran.
    EXPECT_GE(ran.load(), 2);
    // The pool is usable afterwards.
    std::atomic<int> sum{0};
    exec::parallel_for(30, 3, concurrent, [&](std::size_t b, std::size_t e, std::size_t) {
      sum.fetch_add(static_cast<int>(e - b));
    });
    EXPECT_EQ(sum.load(), 30);
  }
}

TEST(ThreadPool, NestedCallsRunSeriallyInsideAPart) {
  Threads t(2);
  std::vector<std::atomic<int>> hits(64);
  std::atomic<int> nested_serial{0};
  exec::parallel_for(2, 2, true, [&](std::size_t b, std::size_t e, std::size_t) {
    EXPECT_TRUE(exec::in_parallel_part());
    for (std::size_t i = b; i < e; ++i) {
      const std::thread::id me = std::this_thread::get_id();
      exec::parallel_for(32, 2, true, [&](std::size_t b2, std::size_t e2, std::size_t) {
        if (std::this_thread::get_id() == me) nested_serial.fetch_add(1);
        for (std::size_t j = b2; j < e2; ++j) hits[i * 32 + j].fetch_add(1);
      });
    }
  });
  EXPECT_FALSE(exec::in_parallel_part());
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_EQ(nested_serial.load(), 4) << "nested parts ran on another thread";
  EXPECT_THROW(exec::parallel_for(2, 2, true,
                                  [&](std::size_t, std::size_t, std::size_t p) {
                                    if (p == 0) xgrad::set_num_threads(1);
                                  }),
               xgrad::ValueError);
}

TEST(ThreadPool, ConcurrentCallersFromSeveralThreads) {
  Threads t(2);
  auto work = [](int seed) {
    long total = 0;
    for (int k = 0; k < 300; ++k) {
      std::vector<long> part(3, 0);
      exec::parallel_for(1000 + k, 3, true, [&](std::size_t b, std::size_t e, std::size_t p) {
        for (std::size_t i = b; i < e; ++i) part[p] += static_cast<long>(i) * seed;
      });
      total += part[0] + part[1] + part[2];
    }
    return total;
  };
  const long want1 = work(1), want2 = work(2);
  long got1 = 0, got2 = 0;
  std::thread a([&] { got1 = work(1); });
  std::thread b([&] { got2 = work(2); });
  a.join();
  b.join();
  EXPECT_EQ(got1, want1);
  EXPECT_EQ(got2, want2);
}

TEST(ThreadPool, SetNumThreadsChecksItsArgumentAndTheEnvironment) {
  const int old = xgrad::num_threads();
  EXPECT_THROW(xgrad::set_num_threads(-1), xgrad::ValueError);
  const char* saved = std::getenv("XGRAD_THREADS");
  const std::string keep = saved ? saved : "";
  for (const char* bad : {"abc", "0", "-2", "2x", "1.5", "99999"}) {
    setenv("XGRAD_THREADS", bad, 1);
    try {
      xgrad::set_num_threads(0);
      ADD_FAILURE() << "XGRAD_THREADS=" << bad << " accepted";
    } catch (const xgrad::ValueError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("XGRAD_THREADS"), std::string::npos) << msg;
      EXPECT_NE(msg.find(bad), std::string::npos) << msg;
    }
  }
  setenv("XGRAD_THREADS", "3", 1);
  xgrad::set_num_threads(0);
  EXPECT_EQ(xgrad::num_threads(), 3);
  setenv("XGRAD_THREADS", "", 1);  // empty: the available cores
  xgrad::set_num_threads(0);
  EXPECT_GE(xgrad::num_threads(), 1);
  if (saved) {
    setenv("XGRAD_THREADS", keep.c_str(), 1);
  } else {
    unsetenv("XGRAD_THREADS");
  }
  xgrad::set_num_threads(old);
  EXPECT_EQ(xgrad::num_threads(), old);
}

// XGRAD_THREADS and set_num_threads are the one setting for OpenBLAS too: at one thread it
// must not keep the threads OpenBLAS had (OPENBLAS_NUM_THREADS, or all cores by default),
// and at more xgrad splits the products itself.
TEST(ThreadPool, OpenBlasRunsOnOneThreadAtEverySetting) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  const auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  const auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (!set || !get) GTEST_SKIP() << "the BLAS in this process is not OpenBLAS";
  set(2);
  if (get() != 2) GTEST_SKIP() << "this OpenBLAS build runs on one thread only";
  for (int n : {1, 2, 3, 1}) {
    set(2);  // as OPENBLAS_NUM_THREADS=2, or a call of the program's own, leaves it
    Threads t(n);
    EXPECT_EQ(get(), 1) << "at " << n << " xgrad threads";
  }
}

// The default thread count keeps to a cgroup's CPU quota (a container run with --cpus=2 on
// a large host): v2 and v1 files, the smallest over the ancestors, rounded up, and no limit
// where there is none or the files cannot be read.
TEST(ThreadPool, CgroupCpuQuotaLimitsTheDefault) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("xgrad_cgroup_" + std::to_string(getpid()));
  fs::remove_all(root);
  auto put = [&](const std::string& rel, const std::string& text) {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  };
  auto put_v1 = [&](const std::string& dir, const std::string& quota) {
    put(dir + "/cpu.cfs_quota_us", quota + "\n");
    put(dir + "/cpu.cfs_period_us", "100000\n");
  };
  const std::string r = root.string();
  using exec::cgroup_cpu_limit;
  // v2: the cgroup's own quota, rounded up; an ancestor's smaller one wins; "max" is none.
  put("a/b/cpu.max", "150000 100000\n");
  put("a/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(r, "0::/a/b\n"), 2);
  put("a/cpu.max", "100000 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(r, "0::/a/b\n"), 1);
  put("a/cpu.max", "max 100000\n");
  put("a/b/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(r, "0::/a/b\n"), 0);
  // A hybrid system mounts the v2 hierarchy at unified/.
  put("unified/c/cpu.max", "300000 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(r, "0::/c\n"), 3);
  // v1, under the joined controller list or under cpu/, beside other controllers' lines.
  put_v1("cpu,cpuacct/x", "250000");
  EXPECT_EQ(cgroup_cpu_limit(r, "4:memory:/m\n3:cpu,cpuacct:/x\n0::/\n"), 3);
  put_v1("cpu/y", "-1");
  EXPECT_EQ(cgroup_cpu_limit(r, "1:cpu:/y\n"), 0);
  // A container without a cgroup namespace: the host's path is missing, the mount's own
  // files hold the container's quota.
  put_v1("cpu", "50000");
  EXPECT_EQ(cgroup_cpu_limit(r, "1:cpu:/docker/0123abcd\n"), 1);
  // Nothing to read, or nothing that parses.
  EXPECT_EQ(cgroup_cpu_limit(r, ""), 0);
  EXPECT_EQ(cgroup_cpu_limit(r, "garbage\n2:cpu\n"), 0);
  put("d/cpu.max", "lots 100000\n");
  EXPECT_EQ(cgroup_cpu_limit(r, "0::/d\n"), 0);
  EXPECT_EQ(cgroup_cpu_limit((root / "none").string(), "0::/a/b\n1:cpu:/y\n"), 0);
  fs::remove_all(root);
}

// ---------------------------------------------------------------- kernels

template <class T>
xt::xarray<T> random(std::vector<std::size_t> shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (auto& v : a) v = static_cast<T>(u(rng));
  return a;
}

std::string bytes(const xt::xarray<float>& a) {
  return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float)};
}
std::string bytes(const xt::xarray<double>& a) {
  return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(double)};
}

/// Runs f at 1 thread and at 2 and 3, three times each: every count gives the same bits on
/// every run; `exact` results equal the 1-thread ones bit for bit, others within rel.
template <class T, class F>
void expect_thread_counts(F&& f, bool exact, double rel, const std::string& what) {
  std::vector<xt::xarray<T>> one;
  {
    Threads t(1);
    one = f();
  }
  for (int n : {2, 3}) {
    Threads t(n);
    const std::vector<xt::xarray<T>> first = f();
    for (int rep = 0; rep < 2; ++rep) {
      const std::vector<xt::xarray<T>> again = f();
      for (std::size_t i = 0; i < first.size(); ++i)
        EXPECT_TRUE(bytes(again[i]) == bytes(first[i]))
            << what << ": result " << i << " differs run to run at " << n << " threads";
    }
    ASSERT_EQ(first.size(), one.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
      ASSERT_EQ(first[i].shape(), one[i].shape()) << what;
      if (exact) {
        EXPECT_TRUE(bytes(first[i]) == bytes(one[i]))
            << what << ": result " << i << " at " << n << " threads differs from 1 thread";
        continue;
      }
      double scale = 0, err = 0;
      for (std::size_t j = 0; j < one[i].size(); ++j) {
        scale = std::max(scale, std::abs(static_cast<double>(one[i].flat(j))));
        err = std::max(err, std::abs(static_cast<double>(first[i].flat(j) - one[i].flat(j))));
      }
      EXPECT_LE(err, rel * std::max(scale, 1.0)) << what << ": result " << i << " at " << n;
    }
  }
}

template <class T>
constexpr double kRel = std::is_same_v<T, float> ? 1e-5 : 1e-12;

using xgrad::Dim;

template <class T>
void check_matmuls() {
  struct Case {
    std::size_t m, k, n;
    bool ta, tb;
  };
  // Large enough to split, odd sizes, fewer rows (or columns) than threads, empty.
  const std::vector<Case> cases = {
      {300, 200, 150, false, false}, {301, 199, 151, true, false}, {157, 203, 311, false, true},
      {203, 155, 301, true, true},   {2, 4001, 800, false, false}, {900, 3001, 2, false, false},
      {1, 5000, 1, false, false},    {0, 30, 40, false, false},    {40, 0, 30, false, false}};
  for (const Case& c : cases) {
    const std::string what = std::to_string(c.m) + "x" + std::to_string(c.k) + " @ " +
                             std::to_string(c.k) + "x" + std::to_string(c.n) + (c.ta ? " ta" : "") +
                             (c.tb ? " tb" : "");
    xt::xarray<T> A = random<T>(c.ta ? std::vector{c.k, c.m} : std::vector{c.m, c.k}, 1);
    xt::xarray<T> B = random<T>(c.tb ? std::vector{c.n, c.k} : std::vector{c.k, c.n}, 2);
    expect_thread_counts<T>(
        [&] {
          xt::xarray<T> out = xt::xarray<T>::from_shape({c.m, c.n});
          out.fill(T(0.5));
          std::vector<Dim> sa(A.shape().begin(), A.shape().end()),
              sb(B.shape().begin(), B.shape().end()), so{Dim(c.m), Dim(c.n)};
          xgrad::kernels::matmul<T>({A.data(), sa, A.size()}, {B.data(), sb, B.size()},
                                    {out.data(), so, out.size()}, c.ta, c.tb, T(0.25));
          return std::vector<xt::xarray<T>>{out};
        },
        false, kRel<T> * static_cast<double>(c.k + 1), what);
  }
}

TEST(ParallelKernels, MatrixProductsDouble) { check_matmuls<double>(); }
TEST(ParallelKernels, MatrixProductsFloat) { check_matmuls<float>(); }

// Matrix-vector products on both kernels (own and BLAS: rows over 16 KiB) and both sides.
template <class T>
void check_gemv() {
  for (std::size_t cols : {std::size_t{100}, std::size_t{5000}}) {
    for (std::size_t rows : {std::size_t{3}, std::size_t{4099}}) {
      xt::xarray<T> A = random<T>({rows, cols}, 3), v = random<T>({cols}, 4),
                    u = random<T>({rows}, 5);
      xgrad::Graph<T> g;
      auto a = g.input("A", {xgrad::open, Dim(cols)});
      auto vv = g.parameter("v", v);
      auto uu = g.input("u", {xgrad::open});
      auto f = xgrad::compile({xgrad::matmul(a, vv), xgrad::matmul(uu, a)},
                              xgrad::CompileOptions{.tile_rows = false});
      const std::string what = std::to_string(rows) + "x" + std::to_string(cols);
      // A @ v: a dot per row, whatever the partition. A^T u: partial sums.
      expect_thread_counts<T>(
          [&] {
            return std::vector{f.run({{a, A}, {uu, u}})[0]};
          },
          cols * sizeof(T) <= 16384, kRel<T> * 10, what + " A @ v");
      expect_thread_counts<T>(
          [&] {
            return std::vector{f.run({{a, A}, {uu, u}})[1]};
          },
          false, kRel<T> * static_cast<double>(rows), what + " u @ A");
    }
  }
}

TEST(ParallelKernels, MatrixVectorProductsDouble) { check_gemv<double>(); }
TEST(ParallelKernels, MatrixVectorProductsFloat) { check_gemv<float>(); }

// Elementwise maps (unary, binary of equal shapes, with a scalar, with a broadcast row) over a
// large array: element by element, so bit for bit at every thread count.
template <class T>
void check_maps() {
  xgrad::Graph<T> g;
  auto x = g.input("x", {xgrad::open, 333});
  auto y = g.input("y", {xgrad::open, 333});
  auto row = g.parameter("row", random<T>({333}, 9));
  auto f = xgrad::compile({xgrad::tanh(x), x * y, x + T(2), y - row, xgrad::exp(x) / y},
                          xgrad::CompileOptions{.tile_rows = false});
  const xt::xarray<T> xv = random<T>({1001, 333}, 7), yv = random<T>({1001, 333}, 8);
  expect_thread_counts<T>([&] { return f.run({{x, xv}, {y, yv}}); }, true, 0, "maps");
}

TEST(ParallelKernels, ElementwiseMapsDouble) { check_maps<double>(); }
TEST(ParallelKernels, ElementwiseMapsFloat) { check_maps<float>(); }

// Reductions over all elements and sum_to over rows: partial sums per part, so within
// rounding across thread counts (and the same bits on every run at each count).
template <class T>
void check_reductions() {
  xgrad::Graph<T> g;
  auto x = g.input("x", {xgrad::open, 257});
  auto b = g.parameter("b", random<T>({257}, 3));
  auto f = xgrad::compile(
      {xgrad::sum(x), xgrad::mean(x), xgrad::max(x), xgrad::sum_to_like(x, b), xgrad::sum(x, {1})},
      xgrad::CompileOptions{.tile_rows = false});
  for (std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{3001}}) {
    const xt::xarray<T> xv = random<T>({n, 257}, 4);
    expect_thread_counts<T>(
        [&] {
          return f.run({{x, xv}});
        },
        false, kRel<T> * static_cast<double>(n), "reductions " + std::to_string(n));
  }
}

TEST(ParallelKernels, ReductionsDouble) { check_reductions<double>(); }
TEST(ParallelKernels, ReductionsFloat) { check_reductions<float>(); }

// A row-tiled group (X over 2 MiB: X @ w by rows, the residual, its mean, X^T @ r and a bias
// gradient accumulated per part) against 1 thread; the residual, computed row by row, is
// the same to the bit.
template <class T>
void check_tiled_group() {
  const std::size_t n = 20011, k = 100;
  xgrad::Graph<T> g;
  auto X = g.input("X", {xgrad::open, Dim(k)});
  auto y = g.input("y", {xgrad::open});
  auto w = g.parameter("w", random<T>({k}, 5));
  auto c = g.parameter("c", random<T>({k}, 6));
  auto resid = xgrad::matmul(X, w) - y;
  auto loss = xgrad::mean(xgrad::square(resid)) + xgrad::sum(xgrad::sum_to_like(X * c, c));
  auto grads = xgrad::grad(loss, {w, c});
  auto f = xgrad::compile({resid, loss, grads[0], grads[1]});
  const xt::xarray<T> Xv = random<T>({n, k}, 7), yv = random<T>({n}, 8);
  f.run({{X, Xv}, {y, yv}});
  EXPECT_GE(f.tiled_groups(), 1u);
  expect_thread_counts<T>(
      [&] {
        return std::vector{f.run({{X, Xv}, {y, yv}})[0]};
      },
      true, 0, "tiled residual");
  expect_thread_counts<T>(
      [&] {
        const auto& r = f.run({{X, Xv}, {y, yv}});
        return std::vector{r[1], r[2], r[3]};
      },
      false, kRel<T> * 100, "tiled loss and gradients");
}

TEST(ParallelKernels, RowTiledGroupDouble) { check_tiled_group<double>(); }
TEST(ParallelKernels, RowTiledGroupFloat) { check_tiled_group<float>(); }

// conv2d (im2col + gemm per image), pooling, and their gradients. The forward values and
// the input gradient are computed image by image (bit for bit at every thread count); the
// weight and bias gradients add per-part partial sums.
template <class T>
void check_conv() {
  xgrad::Graph<T> g;
  auto x = g.input("x", {xgrad::open, 3, 20, 20});
  auto w = g.parameter("w", random<T>({8, 3, 5, 5}, 11));
  auto bias = g.parameter("bias", random<T>({8}, 12));
  auto h = xgrad::relu(xgrad::conv2d_bias(x, w, bias, {.padding = {1, 1}}));
  auto pooled = xgrad::max_pool2d(h, {2, 2});
  auto avg = xgrad::avg_pool2d(h, {3, 3}, {.stride = {2, 2}, .padding = {1, 1}});
  auto loss = xgrad::sum(xgrad::square(pooled)) + xgrad::sum(avg);
  auto grads = xgrad::grad(loss, {x, w, bias});
  auto f = xgrad::compile({h, pooled, avg, grads[0], grads[1], grads[2]});
  const xt::xarray<T> xv = random<T>({37, 3, 20, 20}, 13);
  expect_thread_counts<T>(
      [&] {
        const auto& r = f.run({{x, xv}});
        return std::vector{r[0], r[1], r[2], r[3]};
      },
      true, 0, "conv2d, pooling and the input gradient");
  expect_thread_counts<T>(
      [&] {
        const auto& r = f.run({{x, xv}});
        return std::vector{r[4], r[5]};
      },
      false, kRel<T> * 1000, "conv2d weight and bias gradients");
}

TEST(ParallelKernels, ConvolutionAndPoolingDouble) { check_conv<double>(); }
TEST(ParallelKernels, ConvolutionAndPoolingFloat) { check_conv<float>(); }

// The optimizer's gradient norm sums a long array in blocks fixed by its length, and SGD
// updates a large parameter element by element on the pool: both are the same bits at
// every thread count (so a run's clipping and recorded norms do not depend on it).
template <class T>
void check_optimizer_step() {
  for (std::size_t n : {std::size_t{1000}, std::size_t{65537}, std::size_t{300001}}) {
    const xt::xarray<T> grad = random<T>({n}, 21), start = random<T>({n}, 22);
    long double want = 0;
    for (std::size_t i = 0; i < n; ++i) want += static_cast<long double>(grad(i)) * grad(i);
    expect_thread_counts<T>(
        [&] {
          xgrad::Graph<T> g;
          auto p = g.parameter("p", start);
          xgrad::optim::SGD<T> sgd({p}, 0.25);
          const std::vector<xt::xarray<T>> grads{grad};
          sgd.step(std::span<const xt::xarray<T>>(grads));
          xt::xarray<double> norm = {sgd.last_grad_norm()};
          const double sq = xgrad::optim::sum_of_squares(grad.data(), grad.size());
          EXPECT_NEAR(sq, static_cast<double>(want), 1e-12 * static_cast<double>(want));
          return std::vector<xt::xarray<T>>{g.value(p), xt::xarray<T>{static_cast<T>(sq)},
                                            xt::xarray<T>(norm)};
        },
        true, 0, "SGD step and gradient norm, n = " + std::to_string(n));
  }
}

TEST(ParallelKernels, OptimizerStepDouble) { check_optimizer_step<double>(); }
TEST(ParallelKernels, OptimizerStepFloat) { check_optimizer_step<float>(); }

}  // namespace
