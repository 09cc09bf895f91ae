// Workload 2: full-batch linear regression, X 100000 x 100 float64 (80 MB), y = X w + noise,
// loss = mean((X beta - y)^2), 100 gradient-descent steps (lr 0.1) from beta = 0.
// Memory-bound: the gradient 2/n X^T (X beta - y) needs X twice per step unless the two
// products share one pass over it.
//
// Variants (one run = 100 steps from beta = 0):
//   xgrad      compile({loss, grad}) once, then f.run(feeds) + optim::GradientDescent
//   LibTorch   X.mv(beta), loss.backward(), torch::optim::SGD
//   BLAS 2 passes      dgemv (X beta), residual, dgemv (X^T r): what a graph without
//                      fusion can do at best
//   BLAS 1 pass        rows of X in 40 KiB blocks: r = X_b beta - y_b, g += X_b^T r, so
//                      the second product finds the block in cache (the limit of a
//                      graph that reads X once per step through BLAS)
//   kernels by hand    the same with xgrad's own kernels (xgrad/kernels.hpp), in 40 KiB
//                      and in 8-row blocks: xgrad's row-tiled executor minus its overhead
// xgrad and its kernels by hand run twice where the CPU has AVX-512: with the kernels'
// default (AVX-512, or AVX2 on AMD Zen 4) and with the other (kernels::gemv_limit_isa).
// Also the memory bandwidth, by reading X once per step: STREAM-style sums of X with 8
// independent vector accumulators (AVX-512 and AVX2, one core, and with more threads all
// cores at once), the limit of a step that reads X once; and OpenBLAS dasum, twice per step. GB/s
// of each variant counted as bytes of X per step / time per step, and each variant's GB/s as a
// share of the read limit.
//
//   w2_full_linreg [ROWS] [COLS] [STEPS]
#include <cmath>
#include <random>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <xgrad/kernels.hpp>  // the library's own matrix-vector kernels, for the limits
#include <xgrad/xgrad.hpp>
#include <xtensor-blas/xblas.hpp>

#include "harness.hpp"

namespace {

void gemv(bool trans, std::size_t rows, std::size_t cols, double alpha, const double* A,
          const double* x, double beta, double* y) {
  using I = xt::blas_index_t;
  cxxblas::gemv<I>(cxxblas::StorageOrder::RowMajor,
                   trans ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                   static_cast<I>(rows), static_cast<I>(cols), alpha, A, static_cast<I>(cols), x, 1,
                   beta, y, 1);
}

// Sum of p[0, n): a STREAM-style read with 8 independent accumulators, so that the
// additions never wait for one another and the loads alone set the pace.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f"))) double read_avx512(const double* p, std::size_t n) {
  __m512d a[8];
  for (auto& v : a) v = _mm512_setzero_pd();
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) a[k] = _mm512_add_pd(a[k], _mm512_loadu_pd(p + i + 8 * k));
  }
  alignas(64) double t[8];
  __m512d s = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(a[0], a[1]), _mm512_add_pd(a[2], a[3])),
                            _mm512_add_pd(_mm512_add_pd(a[4], a[5]), _mm512_add_pd(a[6], a[7])));
  _mm512_store_pd(t, s);
  double r = 0;
  for (double v : t) r += v;
  for (; i < n; ++i) r += p[i];
  return r;
}
__attribute__((target("avx2"))) double read_avx2(const double* p, std::size_t n) {
  __m256d a[8];
  for (auto& v : a) v = _mm256_setzero_pd();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) a[k] = _mm256_add_pd(a[k], _mm256_loadu_pd(p + i + 4 * k));
  }
  alignas(32) double t[4];
  __m256d s = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(a[0], a[1]), _mm256_add_pd(a[2], a[3])),
                            _mm256_add_pd(_mm256_add_pd(a[4], a[5]), _mm256_add_pd(a[6], a[7])));
  _mm256_store_pd(t, s);
  double r = t[0] + t[1] + t[2] + t[3];
  for (; i < n; ++i) r += p[i];
  return r;
}
bool have(bool wide) {
  return wide ? __builtin_cpu_supports("avx512f") : __builtin_cpu_supports("avx2");
}
#else
double read_avx512(const double*, std::size_t) { return 0; }
double read_avx2(const double*, std::size_t) { return 0; }
bool have(bool) { return false; }
#endif

// Runs f with xgrad's matrix-vector kernels at instruction set isa, then restores the setting.
template <class F>
void with_isa(int isa, F&& f) {
  const int before = xgrad::kernels::gemv_limit_isa(isa);
  f();
  xgrad::kernels::gemv_limit_isa(before);
}

const char* isa_name(int isa) { return isa == 2 ? "AVX-512" : isa == 1 ? "AVX2" : "BLAS"; }

}  // namespace

int main(int argc, char** argv) {
  bench::setup_threads("w2_full_linreg");
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  const std::size_t k = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 100;
  const double lr = 0.1;

  xt::xarray<double> X = xt::xarray<double>::from_shape({n, k});
  xt::xarray<double> y = xt::xarray<double>::from_shape({n});
  {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> nd;
    std::vector<double> w(k);
    for (auto& v : w) v = nd(rng);
    for (std::size_t i = 0; i < n; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < k; ++j) s += (X(i, j) = nd(rng)) * w[j];
      y(i) = s + 0.1 * nd(rng);
    }
  }
  const double bytes_x = static_cast<double>(n * k * sizeof(double));

  std::vector<bench::Variant> vs;
  std::vector<double> final_loss;  // per variant, of the last run (checked equal)

  // ---- xgrad
  xgrad::Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, static_cast<xgrad::Dim>(k)});
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::zeros<double>({k}));
  auto loss = xgrad::mse(xgrad::matmul(Xi, beta), yi);
  auto f = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});
  xgrad::optim::GradientDescent<double> gd({beta}, lr);
  double xg_loss = 0;
  auto xgrad_steps = [&](int m) {
    for (int i = 0; i < m; ++i) {
      const auto& out = f.run({{Xi, X}, {yi, y}});
      xg_loss = out[0]();
      gd.step(out, 1);
    }
  };
  vs.push_back({"xgrad (Function + GradientDescent)", "xgrad", [&] {
                  g.value(beta).fill(0);
                  xgrad_steps(steps);
                }});
  vs.back().steps = xgrad_steps;
  // The kernels' other instruction set, where the CPU has both: AVX2 below an AVX-512
  // default, AVX-512 above an AVX2 default (AMD Zen 4).
  const int isa_default = xgrad::kernels::gemv_isa();
  int isa_best = 0;
  with_isa(2, [&] { isa_best = xgrad::kernels::gemv_isa(); });
  const int isa_other = isa_default == 2 ? 1 : isa_best == 2 ? 2 : -1;
  const std::string other_suffix = isa_other < 0 ? "" : std::string(", ") + isa_name(isa_other);
  if (isa_other > 0) {
    vs.push_back({"xgrad, kernels at " + std::string(isa_name(isa_other)), "xgrad", [&] {
                    with_isa(isa_other, [&] {
                      g.value(beta).fill(0);
                      xgrad_steps(steps);
                    });
                  }});
  }

#ifdef XGRAD_BENCH_HAVE_TORCH
  auto tX =
      torch::from_blob(X.data(), {static_cast<long>(n), static_cast<long>(k)}, torch::kFloat64);
  auto ty = torch::from_blob(y.data(), {static_cast<long>(n)}, torch::kFloat64);
  auto tb = torch::zeros({static_cast<long>(k)}, torch::dtype(torch::kFloat64).requires_grad(true));
  torch::optim::SGD sgd({tb}, torch::optim::SGDOptions(lr));
  double t_loss = 0;
  auto torch_steps = [&](int m) {
    for (int i = 0; i < m; ++i) {
      sgd.zero_grad();
      auto l = (tX.mv(tb) - ty).square().mean();
      l.backward();
      t_loss = l.item<double>();
      sgd.step();
    }
  };
  vs.push_back({"LibTorch (eager + backward + optim::SGD)", "LibTorch", [&] {
                  {
                    torch::NoGradGuard ng;
                    tb.zero_();
                  }
                  torch_steps(steps);
                }});
  vs.back().steps = torch_steps;
#endif

  // ---- direct BLAS, two passes over X per step
  std::vector<double> b2(k), r2(n), g2(k);
  double blas_loss = 0;
  vs.push_back({"BLAS dgemv x2 (two passes over X)", "limit", [&] {
                  std::fill(b2.begin(), b2.end(), 0.0);
                  for (int it = 0; it < steps; ++it) {
                    std::copy(y.data(), y.data() + n, r2.data());
                    gemv(false, n, k, 1.0, X.data(), b2.data(), -1.0, r2.data());  // Xb - y
                    double l = 0;
                    for (double v : r2) l += v * v;
                    blas_loss = l / static_cast<double>(n);
                    gemv(true, n, k, 2.0 / static_cast<double>(n), X.data(), r2.data(), 0.0,
                         g2.data());
                    for (std::size_t j = 0; j < k; ++j) b2[j] -= lr * g2[j];
                  }
                }});

  // ---- by hand, one pass over X per step: blocks of rows stay in cache between the two
  // products, r_b = X_b beta - y_b, g += 2/n X_b^T r_b. The products are BLAS dgemv calls
  // or xgrad's own kernels (xgrad/kernels.hpp) called directly: the second shows what the
  // tiled executor costs on top of its kernels, and what smaller blocks would gain.
  std::vector<double> b1(k), g1(k), r1(n);
  double hand_loss = 0;
  auto one_pass = [&](std::size_t block, bool own) {
    std::fill(b1.begin(), b1.end(), 0.0);
    const double two_n = 2.0 / static_cast<double>(n);
    for (int it = 0; it < steps; ++it) {
      std::fill(g1.begin(), g1.end(), 0.0);
      double l = 0;
      for (std::size_t r0 = 0; r0 < n; r0 += block) {
        std::size_t m = std::min(block, n - r0);
        const double* Xb = X.data() + r0 * k;
        double* rb = r1.data() + r0;
        std::copy(y.data() + r0, y.data() + r0 + m, rb);
        if (own) {
          xgrad::kernels::gemv_dots(Xb, m, k, b1.data(), -1.0, rb);
          for (std::size_t i = 0; i < m; ++i) l += rb[i] * rb[i];
          for (std::size_t i = 0; i < m; ++i) rb[i] *= two_n;
          // The next block is prefetched meanwhile, as the executor does.
          xgrad::kernels::gemv_axpys(Xb, m, k, rb, 1.0, g1.data(),
                                     r0 + 2 * m <= n ? Xb + m * k : nullptr);
        } else {
          gemv(false, m, k, 1.0, Xb, b1.data(), -1.0, rb);
          for (std::size_t i = 0; i < m; ++i) l += rb[i] * rb[i];
          gemv(true, m, k, two_n, Xb, rb, 1.0, g1.data());
        }
      }
      hand_loss = l / static_cast<double>(n);
      for (std::size_t j = 0; j < k; ++j) b1[j] -= lr * g1[j];
    }
  };
  // 40 KiB blocks of X stay in the level-1 cache between the two products.
  const std::size_t block = std::max<std::size_t>(1, (40 * 1024) / (k * sizeof(double)));
  vs.push_back(
      {"BLAS dgemv x2 per cache block (one pass)", "limit", [&] { one_pass(block, false); }});
  if (xgrad::kernels::gemv_own<double>(k)) {
    vs.push_back(
        {"xgrad's kernels by hand, 40 KiB blocks", "limit", [&] { one_pass(block, true); }});
    vs.push_back({"xgrad's kernels by hand, 8-row blocks", "limit", [&] { one_pass(8, true); }});
    if (isa_other > 0) {
      vs.push_back({"xgrad's kernels by hand, 8-row blocks" + other_suffix, "limit",
                    [&] { with_isa(isa_other, [&] { one_pass(8, true); }); }});
    }
  }

  // ---- the memory bandwidth: X read once per step, STREAM-style (the limit)
  // With more than one thread also the read of all threads at once, each over its own
  // contiguous part of X and without a barrier per step: what memory gives the cores
  // together, the limit of the speed-up a memory-bound step can have.
  double sink = 0;
  const int nt = bench::threads_in_use();
  std::vector<int> thread_counts = {1};
  if (nt > 1) thread_counts.push_back(nt);
  for (const int threads : thread_counts) {
    for (const bool wide : {true, false}) {
      if (!have(wide)) continue;
      std::string name = wide ? "STREAM-style read of X, AVX-512, 8 accumulators"
                              : "STREAM-style read of X, AVX2, 8 accumulators";
      if (threads > 1) name += ", " + std::to_string(threads) + " threads";
      vs.push_back({name, "read", [&, wide, threads] {
                      std::vector<double> part(static_cast<std::size_t>(threads));
                      auto read_part = [&](int t) {
                        const std::size_t all = n * k, b = all * t / threads,
                                          e = all * (t + 1) / threads;
                        for (int it = 0; it < steps; ++it) {
                          part[t] += wide ? read_avx512(X.data() + b, e - b)
                                          : read_avx2(X.data() + b, e - b);
                        }
                      };
                      std::vector<std::thread> others;
                      for (int t = 1; t < threads; ++t) others.emplace_back(read_part, t);
                      read_part(0);
                      for (std::thread& th : others) th.join();
                      for (double v : part) sink += v;
                    }});
    }
  }

  // ---- a plain read of X (OpenBLAS dasum: vectorised, one pass), twice per step
  vs.push_back({"plain read of X (dasum), x2 per step", "read", [&] {
                  using I = xt::blas_index_t;
                  for (int it = 0; it < 2 * steps; ++it) {
                    double s = 0;
                    cxxblas::asum<I>(static_cast<I>(n * k), X.data(), 1, s);
                    sink += s;
                  }
                }});

  bench::compare(vs, bench::reps(7));
  bench::count_step_allocations(vs, 5);
  char title[128];
  std::snprintf(title, sizeof title, "2. full-batch linreg %zux%zu f64, %d GD steps", n, k, steps);
  // Throughput: bytes of X per step over time per step (the plain read moves X twice a step).
  bench::report(title, vs, steps, "step", {"GB/s of X", bytes_x * steps / 1e9});
  bench::keep(sink);

  // The runs must agree on the final loss.
  auto close = [](double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(1.0, b); };
  if (!close(xg_loss, blas_loss) || !close(hand_loss, blas_loss)) {
    std::fprintf(stderr, "final losses differ: xgrad %.17g, BLAS %.17g, hand %.17g\n", xg_loss,
                 blas_loss, hand_loss);
    return 1;
  }
#ifdef XGRAD_BENCH_HAVE_TORCH
  if (!close(t_loss, blas_loss)) {
    std::fprintf(stderr, "final losses differ: LibTorch %.17g, BLAS %.17g\n", t_loss, blas_loss);
    return 1;
  }
#endif
  // The read limit: the faster one-thread STREAM-style read (X once per step); every
  // variant's GB/s of X (per step) as a share of it. With more threads, the faster read of
  // all threads too, against which the multi-threaded variants are measured as well.
  double limit = 0, limit_all = 0;
  std::string limit_name, limit_all_name;
  for (const auto& v : vs) {
    const double gbs = bytes_x * steps / v.median() / 1e9;
    if (v.name.rfind("STREAM", 0) == 0) {
      const bool all = v.name.find(" threads") != std::string::npos;
      double& best = all ? limit_all : limit;
      if (gbs > best) best = gbs, (all ? limit_all_name : limit_name) = v.name;
    }
    if (v.name.rfind("plain read", 0) == 0) {
      bench::note("%s: %.1f GB/s (two passes over X per step, so twice the column's figure)",
                  v.name.c_str(), 2 * gbs);
    }
  }
  bench::note("xgrad's matrix-vector kernels by default on this CPU: %s", isa_name(isa_default));
  if (limit > 0) {
    bench::note(
        "read limit: %.1f GB/s (%s, median); GB/s of X per step against it (target >= "
        "0.70 for every path that reads X once per step, at 1 thread):",
        limit, limit_name.c_str());
    for (const auto& v : vs) {
      if (v.kind == "read") continue;
      const double gbs = bytes_x * steps / v.median() / 1e9;
      bench::note("  %s: %.1f GB/s, %.2f of the limit", v.name.c_str(), gbs, gbs / limit);
    }
  }
  if (limit > 0 && limit_all > 0) {
    bench::note(
        "read limit of %d threads: %.1f GB/s (%s, median), %.2fx the one-thread limit: the "
        "most %d threads can speed up a step that reads X once. Against it:",
        nt, limit_all, limit_all_name.c_str(), limit_all / limit, nt);
    for (const auto& v : vs) {
      if (v.kind == "read" || v.name.find(bench::one_thread_suffix) != std::string::npos) continue;
      const double gbs = bytes_x * steps / v.median() / 1e9;
      bench::note("  %s: %.1f GB/s, %.2f of the limit", v.name.c_str(), gbs, gbs / limit_all);
    }
  }
  return 0;
}
