// Row-tiled execution (plan_groups / run_group in src/exec/tiling.cpp) and the hand-written
// matrix-vector kernels behind matmul (src/kernels/gemv.cpp), each against plain loops in
// double.
//
// Tolerances. A computed sum of m terms differs from the exact one by at most about
// m * eps * sum|terms| in any summation order (Higham's gamma_m), so results are compared
// within kRel<T> times a "scale": the same computation done on absolute values.
//  - double: the longest sums here have m <= 30111 terms, gamma_m <= 3.4e-12, so 1e-11
//    cannot fail spuriously; a lost or repeated row of X moves a result by ~1/n of its
//    scale (>= 3e-5), seven orders of magnitude above it.
//  - float: the worst case gamma_m for m ~ 5000 is 3e-4, but rounding errors of random
//    sign grow like sqrt(m) * eps ~ 4e-6 in practice; 1e-4 leaves a 25x margin.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>
#include <xgrad/kernels.hpp>  // gemv_isa / gemv_limit_isa: run every kernel variant
#include <xgrad/xgrad.hpp>
#include <xtensor/xadapt.hpp>

#include "test_util.hpp"

namespace {

using xgrad::Expr;
using xgrad::Graph;
using xgrad::open;

template <class T>
constexpr double kRel = std::is_same_v<T, double> ? 1e-11 : 1e-4;

using xgrad_test::contains;

using xgrad_test::uniform;

/// Integers in [-8, 8]: products and sums of up to 2^18 of them are exact in float.
template <class T>
xt::xarray<T> small_integers(std::vector<std::size_t> shape, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> u(-8, 8);
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (auto& v : a) v = static_cast<T>(u(rng));
  return a;
}

/// Expects |actual[i] - ref[i]| <= rel * scale[i] + allow[i] for every i (allow may be
/// empty) and reports the first offender and the number of offenders.
template <class T>
void expect_close(const xt::xarray<T>& actual, const std::vector<double>& ref,
                  const std::vector<double>& scale, double rel, const std::string& what,
                  const std::vector<double>& allow = {}) {
  ASSERT_EQ(actual.size(), ref.size()) << what;
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    double tol = rel * scale[i] + (allow.empty() ? 0.0 : allow[i]);
    double a = static_cast<double>(actual.flat(i));
    if (!(std::abs(a - ref[i]) <= tol)) {
      if (bad++ == 0) first = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": first mismatch at flat index " << first << ": got "
                     << static_cast<double>(actual.flat(first)) << ", expected " << ref[first]
                     << " (tolerance " << rel * scale[first] << ")";
}

// ---------------------------------------------------------------- matrix-vector kernels

/// A x and A^T u by loops in double, each with the sum of its terms' magnitudes (the scale
/// a tolerance is relative to).
struct GemvReference {
  std::vector<double> Ax, Ax_scale, Atu, Atu_scale;
};
template <class T>
GemvReference gemv_reference(const xt::xarray<T>& A, const xt::xarray<T>& x,
                             const xt::xarray<T>& u) {
  const std::size_t rows = A.shape(0), cols = A.shape(1);
  GemvReference r{std::vector<double>(rows, 0), std::vector<double>(rows, 0),
                  std::vector<double>(cols, 0), std::vector<double>(cols, 0)};
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < cols; ++j) {
      const double a = static_cast<double>(A(i, j));
      r.Ax[i] += a * static_cast<double>(x(j));
      r.Ax_scale[i] += std::abs(a * static_cast<double>(x(j)));
      r.Atu[j] += a * static_cast<double>(u(i));
      r.Atu_scale[j] += std::abs(a * static_cast<double>(u(i)));
    }
  }
  return r;
}

/// A v, A^T u, u A and v A^T through matmul for every shape rows x cols, against loops.
/// float uses small integers, whose products and sums are exact (so any summation order
/// must give the exact value, tolerance 0); double uses random reals within 1e-12 of the
/// scale (gamma_k for k <= 2049 terms is 2.3e-13).
template <class T>
void check_matrix_vector(const std::vector<std::size_t>& rows_list,
                         const std::vector<std::size_t>& cols_list) {
  constexpr bool exact = std::is_same_v<T, float>;
  const double rel = exact ? 0.0 : 1e-12;
  Graph<T> g;
  auto A = g.input("A", {open, open});
  auto v = g.input("v", {open});  // cols elements
  auto u = g.input("u", {open});  // rows elements
  auto f = xgrad::compile({xgrad::matmul(A, v), xgrad::matmul(A, u, true, false),
                           xgrad::matmul(u, A), xgrad::matmul(v, A, false, true)});
  unsigned seed = 1;
  for (std::size_t rows : rows_list) {
    for (std::size_t cols : cols_list) {
      SCOPED_TRACE("rows " + std::to_string(rows) + ", cols " + std::to_string(cols));
      xt::xarray<T> Av =
          exact ? small_integers<T>({rows, cols}, seed) : uniform<T>({rows, cols}, seed);
      xt::xarray<T> vv = exact ? small_integers<T>({cols}, seed + 1) : uniform<T>({cols}, seed + 1);
      xt::xarray<T> uv = exact ? small_integers<T>({rows}, seed + 2) : uniform<T>({rows}, seed + 2);
      seed += 3;
      const GemvReference ref = gemv_reference(Av, vv, uv);
      // Bound through adaptors over a non-null pointer: binding an empty xt::xarray (whose
      // data() is null) is rejected as "not bound", a separate issue of Function::run.
      T dummy[1] = {};
      auto view = [&](xt::xarray<T>& a) {
        std::vector<std::size_t> shape(a.shape().begin(), a.shape().end());
        return xt::adapt(a.size() ? a.data() : dummy, a.size(), xt::no_ownership(), shape);
      };
      auto Aa = view(Av), va = view(vv), ua = view(uv);
      const auto& r = f.run({{A, Aa}, {v, va}, {u, ua}});
      expect_close(r[0], ref.Ax, ref.Ax_scale, rel, "A @ v");
      expect_close(r[1], ref.Atu, ref.Atu_scale, rel, "A^T @ u");
      expect_close(r[2], ref.Atu, ref.Atu_scale, rel, "u @ A");
      expect_close(r[3], ref.Ax, ref.Ax_scale, rel, "v @ A^T");
    }
  }
}

const std::vector<std::size_t> kGemvRows = {0, 1, 2, 3, 4, 5, 7, 8, 9, 33};

// Runs f with each instruction set the kernels can use on this CPU, from the best down to
// none (BLAS), so an AVX-512 machine also tests the AVX2 kernels.
template <class F>
void for_each_isa(F f) {
  const int before = xgrad::kernels::gemv_limit_isa(2);
  const int best = xgrad::kernels::gemv_isa();  // AVX-512 too where the default is AVX2
  for (int isa = best; isa >= 0; --isa) {
    SCOPED_TRACE("kernel instruction set " + std::to_string(isa));
    xgrad::kernels::gemv_limit_isa(isa);
    EXPECT_EQ(xgrad::kernels::gemv_isa(), isa);
    f();
  }
  xgrad::kernels::gemv_limit_isa(before);
}

// The setting caps the kernels, can raise them above the default (AVX-512 on a CPU whose
// default is AVX2), and a negative value brings the default back.
TEST(GemvKernels, LimitAndDefaultInstructionSet) {
  namespace k = xgrad::kernels;
  const int def = k::gemv_isa();
  const int before = k::gemv_limit_isa(0);
  EXPECT_EQ(k::gemv_isa(), 0);
  EXPECT_EQ(k::gemv_limit_isa(2), 0);
  EXPECT_GE(k::gemv_isa(), def);
  EXPECT_EQ(k::gemv_limit_isa(-1), 2);
  EXPECT_EQ(k::gemv_isa(), def);
  k::gemv_limit_isa(before);
}

// Guards the double matrix-vector kernels (every row/column remainder of the 4-row and
// vector-width loops) and the switch to BLAS above 16 KiB rows (2048 / 2049 doubles).
TEST(GemvKernels, DoubleMatrixVectorProductsMatchLoops) {
  for_each_isa([] {
    check_matrix_vector<double>(kGemvRows,
                                {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 2048, 2049});
  });
}

// Guards the float matrix-vector kernels (16 lanes on AVX-512, 8 on AVX2) and the switch
// to BLAS above 16 KiB rows (4096 / 4097 floats), exactly.
TEST(GemvKernels, FloatMatrixVectorProductsMatchLoopsExactly) {
  for_each_isa([] {
    check_matrix_vector<float>(kGemvRows, {1,  2,  3,  4,  5,  7,   8,    9,    15,   16,  17,
                                           31, 33, 63, 64, 65, 100, 2048, 2049, 4096, 4097});
  });
}

// Guards what row tiling and threads rely on: a row's dot product does not depend on the
// block of rows it is computed in (long rows are read one by one, short ones four side by
// side), and A^T v adds the rows in row order whether A is taken to come from cache or from
// memory (1 MiB and more): computed in blocks, with beta = 1 after the first, with the next
// block prefetched or not, it gives the bits of one call.
template <class T>
void check_block_independence() {
  for (std::size_t cols : {7, 16, 33, 64, 100, 129}) {
    if (!xgrad::kernels::gemv_own<T>(cols)) continue;
    const std::size_t rows = (std::size_t{3} << 20) / (cols * sizeof(T)) + 5;  // about 3 MiB
    SCOPED_TRACE("cols " + std::to_string(cols) + ", rows " + std::to_string(rows));
    const xt::xarray<T> A = uniform<T>({rows, cols}, 7);
    const xt::xarray<T> x = uniform<T>({cols}, 8);
    const xt::xarray<T> v = uniform<T>({rows}, 9);
    std::vector<T> whole(rows), blocked(rows, T(0));
    xgrad::kernels::gemv_dots(A.data(), rows, cols, x.data(), T(0), whole.data());
    std::size_t bad = 0;
    for (std::size_t b : {1, 7}) {
      for (std::size_t r0 = 0; r0 < rows; r0 += b) {
        const std::size_t m = std::min(b, rows - r0);
        xgrad::kernels::gemv_dots(A.data() + r0 * cols, m, cols, x.data(), T(0),
                                  blocked.data() + r0);
      }
      bad += static_cast<std::size_t>(!std::equal(whole.begin(), whole.end(), blocked.begin()));
    }
    EXPECT_EQ(bad, 0u) << "A @ x differs between one call and blocks of rows";
    const GemvReference ref = gemv_reference(A, x, v);
    const double rel = std::is_same_v<T, float> ? 2e-5 : 1e-12;
    expect_close(xt::xarray<T>(xt::adapt(whole)), ref.Ax, ref.Ax_scale, rel, "A @ x");

    std::vector<T> g_whole(cols), g_blocked(cols), g_prefetching(cols);
    xgrad::kernels::gemv_axpys(A.data(), rows, cols, v.data(), T(0), g_whole.data());
    for (std::size_t r0 = 0; r0 < rows; r0 += 9) {
      const std::size_t m = std::min<std::size_t>(9, rows - r0);
      const T* Ab = A.data() + r0 * cols;
      const T beta = r0 == 0 ? T(0) : T(1);
      xgrad::kernels::gemv_axpys(Ab, m, cols, v.data() + r0, beta, g_blocked.data());
      // As the tiled executor calls it: the next block named for prefetching.
      xgrad::kernels::gemv_axpys(Ab, m, cols, v.data() + r0, beta, g_prefetching.data(),
                                 r0 + 2 * m <= rows ? Ab + m * cols : nullptr);
    }
    EXPECT_TRUE(std::equal(g_whole.begin(), g_whole.end(), g_blocked.begin()))
        << "A^T @ v differs between one call and blocks of 9 rows";
    EXPECT_TRUE(std::equal(g_whole.begin(), g_whole.end(), g_prefetching.begin()))
        << "A^T @ v differs between one call and blocks of 9 rows prefetching the next";
  }
}

TEST(GemvKernels, RowsGiveTheSameBitsInAnyBlock) {
  for_each_isa([] {
    if (xgrad::kernels::gemv_isa() == 0) return;  // BLAS's order depends on the block
    check_block_independence<double>();
    check_block_independence<float>();
  });
}

// Guards the kernels on rows that start at any alignment: a matrix bound at an odd element
// offset of its buffer (an adaptor over a std::vector), as blocks of rows of a tiled group.
TEST(GemvKernels, UnalignedMatrixAndVectors) {
  for (std::size_t off : {1, 3, 5}) {
    SCOPED_TRACE("offset " + std::to_string(off));
    const std::size_t rows = 13, cols = 37;
    std::vector<double> buf(off + rows * cols), vbuf(off + cols);
    std::mt19937_64 rng(off);
    std::uniform_real_distribution<double> d(-1, 1);
    for (double& x : buf) x = d(rng);
    for (double& x : vbuf) x = d(rng);
    auto Av = xt::adapt(buf.data() + off, rows * cols, xt::no_ownership(),
                        std::vector<std::size_t>{rows, cols});
    auto vv =
        xt::adapt(vbuf.data() + off, cols, xt::no_ownership(), std::vector<std::size_t>{cols});
    Graph<double> g;
    auto A = g.input("A", {open, static_cast<xgrad::Dim>(cols)});
    auto v = g.input("v", {static_cast<xgrad::Dim>(cols)});
    auto f = xgrad::compile({xgrad::matmul(A, v)});
    std::vector<double> ref(rows, 0), scale(rows, 0);
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t j = 0; j < cols; ++j) {
        ref[i] += Av(i, j) * vv(j);
        scale[i] += std::abs(Av(i, j) * vv(j));
      }
    }
    expect_close(f.run({{A, Av}, {v, vv}})[0], ref, scale, 1e-12, "A @ v");
  }
}

// ---------------------------------------------------------------- row-tiled groups

/// Linear regression data: X (n, k), y (n) and a beta away from the optimum, so that the
/// gradient is not small (no cancellation).
template <class T>
struct Regression {
  xt::xarray<T> X, y, beta;
  Regression(std::size_t n, std::size_t k, unsigned seed)
      : X(uniform<T>({n, k}, seed)),
        y(uniform<T>({n}, seed + 1)),
        beta(uniform<T>({k}, seed + 2)) {}
};

/// Loops in double for r = X beta - y, mse = mean(r^2) and d mse / d beta = 2/n X^T r, and
/// the same computations on absolute values.
struct RegressionRef {
  std::vector<double> r, r_scale, grad, grad_scale;
  std::vector<double> loss{0}, loss_scale{0};
};

template <class T>
RegressionRef regression_ref(const xt::xarray<T>& X, const xt::xarray<T>& beta,
                             const xt::xarray<T>& y) {
  const std::size_t n = X.shape(0), k = X.shape(1);
  RegressionRef ref;
  ref.r.assign(n, 0);
  ref.r_scale.assign(n, 0);
  ref.grad.assign(k, 0);
  ref.grad_scale.assign(k, 0);
  for (std::size_t i = 0; i < n; ++i) {
    double s = -static_cast<double>(y(i)), sc = std::abs(static_cast<double>(y(i)));
    for (std::size_t j = 0; j < k; ++j) {
      double t = static_cast<double>(X(i, j)) * static_cast<double>(beta(j));
      s += t;
      sc += std::abs(t);
    }
    ref.r[i] = s;
    ref.r_scale[i] = sc;
    ref.loss[0] += s * s / static_cast<double>(n);
    ref.loss_scale[0] += (std::abs(s) + sc) * (std::abs(s) + sc) / static_cast<double>(n);
    for (std::size_t j = 0; j < k; ++j) {
      double x = static_cast<double>(X(i, j));
      ref.grad[j] += 2.0 / static_cast<double>(n) * x * s;
      ref.grad_scale[j] += 2.0 / static_cast<double>(n) * std::abs(x) * (std::abs(s) + sc);
    }
  }
  return ref;
}

/// mse(X @ beta, y) and its gradient; optionally the residual X @ beta - y too (a tiled
/// result that escapes its group: it needs its full buffer).
template <class T>
struct RegressionGraph {
  Graph<T> g;
  Expr<T> X, y, beta, resid, loss, gbeta;
  RegressionGraph(std::size_t k, const xt::xarray<T>& beta0) {
    X = g.input("X", {open, static_cast<xgrad::Dim>(k)});
    y = g.input("y", {open});
    beta = g.parameter("beta", beta0);
    auto pred = xgrad::matmul(X, beta).named("pred");
    loss = xgrad::mse(pred, y);
    resid = pred - y;  // a member of the same group as mse's own difference
    gbeta = xgrad::grad(loss, {beta})[0];
  }
};

template <class T>
void check_regression(xgrad::Function<T>& f, const RegressionRef& ref, bool with_resid,
                      const std::string& what) {
  const auto& r = f.results();
  expect_close(r[0], ref.loss, ref.loss_scale, kRel<T>, what + ": loss");
  expect_close(r[1], ref.grad, ref.grad_scale, kRel<T>, what + ": gradient");
  if (with_resid) expect_close(r[2], ref.r, ref.r_scale, kRel<T>, what + ": residual");
}

/// (a) loss and gradient, (b) with the residual returned as well: both tiled (X is over
/// 2 MiB; n is prime, so the last block of rows is partial). The workspace shows the
/// tiling: untiled, X @ beta and the residual alone take n elements each.
template <class T>
void check_regression_tiled(std::size_t n, std::size_t k) {
  Regression<T> d(n, k, 11);
  RegressionGraph<T> m(k, d.beta);
  auto fa = xgrad::compile({m.loss, m.gbeta});
  auto fb = xgrad::compile({m.loss, m.gbeta, m.resid});
  RegressionRef ref = regression_ref(d.X, d.beta, d.y);
  fa.run({{m.X, d.X}, {m.y, d.y}});
  check_regression(fa, ref, false, "loss and gradient");
  fb.run({{m.X, d.X}, {m.y, d.y}});
  check_regression(fb, ref, true, "with the residual");
  EXPECT_LT(fa.workspace_bytes(), n * sizeof(T)) << "not tiled?";
  EXPECT_LT(fb.workspace_bytes(), n * sizeof(T)) << "not tiled?";
}

// Guards the tiled linear-regression step in double: X @ beta by rows, the mean of
// squares accumulated by blocks, X^T @ g accumulated (gemv with beta = 1 and prefetch of
// the next block), and a tiled residual returned as an output.
TEST(RowTiling, RegressionLossGradientAndResidualDouble) {
  for_each_isa([] { check_regression_tiled<double>(30011, 100); });  // 24 MB
}

// Guards the same in float, rows of 784 elements (MNIST-sized).
TEST(RowTiling, RegressionLossGradientAndResidualFloat) {
  check_regression_tiled<float>(5003, 784);  // 15.7 MB
}

// Guards re-running a tiled Function: unchanged shapes reuse the plan and rebind the new
// values; a new n re-plans the groups (other block count and remainder), a small n drops
// the tiling, and the first n tiles again, each time with correct results.
TEST(RowTiling, RerunsAndReplansWithOtherRowCounts) {
  const std::size_t k = 100;
  Regression<double> d(30011, k, 21);
  RegressionGraph<double> m(k, d.beta);
  auto f = xgrad::compile({m.loss, m.gbeta, m.resid});
  RegressionRef ref = regression_ref(d.X, d.beta, d.y);
  f.run({{m.X, d.X}, {m.y, d.y}});
  check_regression(f, ref, true, "first run");
  const std::vector<xt::xarray<double>> first = f.results();
  f.run({{m.X, d.X}, {m.y, d.y}});
  EXPECT_EQ(f.plan_count(), 1u);
  for (std::size_t i = 0; i < first.size(); ++i) EXPECT_EQ(f.results()[i], first[i]) << i;

  Regression<double> other(30011, k, 31);  // same shapes, new values: no re-plan
  f.run({{m.X, other.X}, {m.y, other.y}});
  EXPECT_EQ(f.plan_count(), 1u);
  check_regression(f, regression_ref(other.X, d.beta, other.y), true, "new values");

  for (std::size_t n : {20011, 300, 30011}) {  // 300 x 100 doubles: below the threshold
    SCOPED_TRACE("n = " + std::to_string(n));
    Regression<double> e(n, k, static_cast<unsigned>(n));
    f.run({{m.X, e.X}, {m.y, e.y}});
    check_regression(f, regression_ref(e.X, d.beta, e.y), true, "n = " + std::to_string(n));
  }
  EXPECT_EQ(f.plan_count(), 4u);
}

/// The regression, its residual, sum(tanh(residual) / 3) (a unary and a scalar operand on
/// the right), a scalar broadcast to the residual's shape and sum_to(X^2, shape(beta)) (the
/// rows summed, as for a bias gradient), tiled in blocks of about 1, 2, 3, 5, 6, 7 and 13 rows, of
/// the default size and of 1 MiB, against the same graph with tile_rows off: equal bit for bit with
/// xgrad's matrix-vector kernels, within the tolerance of the loops with BLAS.
template <class T>
void check_tiled_equals_untiled(std::size_t n, std::size_t k) {
  Regression<T> d(n, k, 71);
  RegressionGraph<T> m(k, d.beta);
  auto extra = xgrad::sum(xgrad::tanh(m.resid) / T(3));
  auto c = m.g.parameter("c", xt::xarray<T>(T(0.25)));
  const std::vector<Expr<T>> outs = {m.loss,
                                     m.gbeta,
                                     m.resid,
                                     extra,
                                     xgrad::broadcast_like(c, m.resid),
                                     xgrad::sum_to_like(xgrad::square(m.X), m.beta)};
  xgrad::CompileOptions plain;
  plain.tile_rows = false;
  auto ref = xgrad::compile(outs, plain);
  const std::vector<xt::xarray<T>> want = ref.run({{m.X, d.X}, {m.y, d.y}});
  // Untiled, square(X) takes n x k elements.
  EXPECT_GE(ref.workspace_bytes(), n * k * sizeof(T)) << "tiled although tile_rows is off?";
  const std::size_t row_bytes = (k + 8) * sizeof(T);  // about: X, y and the 1-d members
  for (std::size_t bytes : {row_bytes, 2 * row_bytes, 3 * row_bytes, 5 * row_bytes, 6 * row_bytes,
                            7 * row_bytes, 13 * row_bytes, std::size_t{0}, std::size_t{1} << 20}) {
    SCOPED_TRACE("tile_bytes " + std::to_string(bytes));
    xgrad::CompileOptions opts;
    opts.tile_bytes = bytes;
    auto f = xgrad::compile(outs, opts);
    const auto& got = f.run({{m.X, d.X}, {m.y, d.y}});
    EXPECT_LT(f.workspace_bytes(), n * k * sizeof(T)) << "not tiled?";
    if (xgrad::kernels::gemv_isa() == 0) {  // BLAS gemv: its order depends on the block
      check_regression(f, regression_ref(d.X, d.beta, d.y), true, "BLAS");
      continue;
    }
    const char* names[] = {"loss",
                           "gradient",
                           "residual",
                           "sum(tanh(residual) / 3)",
                           "broadcast(c, shape(residual))",
                           "sum_to(square(X), shape(beta))"};
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << names[i];
  }
}

// Guards the tiled executor's direct kernels (matrix-vector products, elementwise loops
// without forward()'s broadcast dispatch, sums in double in row-major order) and the
// matrix-vector kernel's last one to three rows of a block: each row, each column of
// X^T @ g and each sum adds its terms in the order the untiled run does, in double.
TEST(RowTiling, EqualsUntiledBitForBitAtAnyBlockSizeDouble) {
  for_each_isa([] { check_tiled_equals_untiled<double>(30011, 100); });
}

// Guards the same in float, rows of 784 elements.
TEST(RowTiling, EqualsUntiledBitForBitAtAnyBlockSizeFloat) {
  for_each_isa([] { check_tiled_equals_untiled<float>(5003, 784); });
}

/// (c) h = relu(X @ W + b): sum(h), mean(h), and the gradients of sum(h) + mean(h) with
/// respect to W (X^T @ G accumulated by blocks, a matrix-matrix product) and b.
template <class T>
void check_mlp_tiled(std::size_t n, std::size_t k) {
  const std::size_t m = 16;
  xt::xarray<T> Xv = uniform<T>({n, k}, 41), W0 = uniform<T>({k, m}, 42),
                b0 = uniform<T>({m}, 43, -0.5, 0.5);
  Graph<T> g;
  auto X = g.input("X", {open, static_cast<xgrad::Dim>(k)});
  auto W = g.parameter("W", W0);
  auto b = g.parameter("b", b0);
  auto h = xgrad::relu(xgrad::matmul(X, W) + b);
  auto s = xgrad::sum(h), mu = xgrad::mean(h);
  auto grads = xgrad::grad(s + mu, {W, b});
  auto f = xgrad::compile({s, mu, grads[0], grads[1]});
  f.run({{X, Xv}});

  // Reference. Where pre = X W + b is within rounding of 0, relu's mask may go either way:
  // such an entry's whole contribution to the gradients is allowed on top of the tolerance.
  const double c = 1.0 + 1.0 / static_cast<double>(n * m);
  std::vector<double> sum_ref{0}, sum_scale{0}, sum_allow{0};
  std::vector<double> dW(k * m, 0), dW_scale(k * m, 0), dW_allow(k * m, 0);
  std::vector<double> db(m, 0), db_scale(m, 0), db_allow(m, 0);
  std::vector<double> pre(m), pre_scale(m);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t l = 0; l < m; ++l) {
      pre[l] = static_cast<double>(b0(l));
      pre_scale[l] = std::abs(pre[l]);
    }
    for (std::size_t j = 0; j < k; ++j) {
      double x = static_cast<double>(Xv(i, j));
      for (std::size_t l = 0; l < m; ++l) {
        double t = x * static_cast<double>(W0(j, l));
        pre[l] += t;
        pre_scale[l] += std::abs(t);
      }
    }
    for (std::size_t l = 0; l < m; ++l) {
      bool on = pre[l] > 0;
      bool unsure = std::abs(pre[l]) <= kRel<T> * pre_scale[l];
      sum_ref[0] += on ? pre[l] : 0.0;
      sum_scale[0] += on || unsure ? pre_scale[l] : 0.0;
      if (on) db[l] += c;
      db_scale[l] += c;
      if (unsure) db_allow[l] += c;
      for (std::size_t j = 0; j < k; ++j) {
        double x = static_cast<double>(Xv(i, j));
        if (on) dW[j * m + l] += c * x;
        dW_scale[j * m + l] += c * std::abs(x);
        if (unsure) dW_allow[j * m + l] += c * std::abs(x);
      }
    }
  }
  std::vector<double> mean_ref{sum_ref[0] / static_cast<double>(n * m)},
      mean_scale{sum_scale[0] / static_cast<double>(n * m)};
  const auto& r = f.results();
  expect_close(r[0], sum_ref, sum_scale, kRel<T>, "sum(h)");
  expect_close(r[1], mean_ref, mean_scale, kRel<T>, "mean(h)");
  expect_close(r[2], dW, dW_scale, kRel<T>, "d/dW", dW_allow);
  expect_close(r[3], db, db_scale, kRel<T>, "d/db", db_allow);
  // Forward and backward are one tiled group (broadcast_to(1, shape(h)) by rows, the bias
  // gradient sum_to(G, shape(b)) accumulated by blocks): untiled, X @ W + b, h and G
  // would take n x 16 elements each.
  EXPECT_LT(f.workspace_bytes(), n * m * sizeof(T)) << "not tiled?";
  auto fwd = xgrad::compile({s, mu});
  fwd.run({{X, Xv}});
  EXPECT_EQ(fwd.results()[0], r[0]);
  EXPECT_EQ(fwd.results()[1], r[1]);
  EXPECT_LT(fwd.workspace_bytes(), n * m * sizeof(T)) << "not tiled?";
}

// Guards a tiled chain with a matrix parameter (X @ W by blocks through BLAS gemm), a
// broadcast bias, relu, sum and mean reductions and the accumulated X^T @ G, in double.
TEST(RowTiling, MlpLayerSumMeanAndGradientsDouble) { check_mlp_tiled<double>(30011, 100); }

// Guards the same in float with rows of 784 elements.
TEST(RowTiling, MlpLayerSumMeanAndGradientsFloat) { check_mlp_tiled<float>(5003, 784); }

/// (d) Z = (X - mu) * s + c with mu a 1-d row (k), s a 2-d row (1, k) and c a column
/// (n, 1) that is tiled with the rows; then mse(Z @ beta, y), its gradient (Z^T @ g from a
/// tile that lives only in the group) and sum(Z).
template <class T>
void check_broadcast_tiled(std::size_t n, std::size_t k) {
  xt::xarray<T> Xv = uniform<T>({n, k}, 51), yv = uniform<T>({n}, 52), cv = uniform<T>({n, 1}, 53);
  xt::xarray<T> mu0 = uniform<T>({k}, 54), s0 = uniform<T>({1, k}, 55, 0.5, 1.5),
                beta0 = uniform<T>({k}, 56);
  Graph<T> g;
  auto X = g.input("X", {open, static_cast<xgrad::Dim>(k)});
  auto y = g.input("y", {open});
  auto c = g.input("c", {open, 1});
  auto mu = g.parameter("mu", mu0);
  auto s = g.parameter("s", s0);
  auto beta = g.parameter("beta", beta0);
  auto Z = (X - mu) * s + c;
  auto loss = xgrad::mse(xgrad::matmul(Z, beta), y);
  auto gbeta = xgrad::grad(loss, {beta})[0];
  auto f = xgrad::compile({loss, gbeta, xgrad::sum(Z)});
  f.run({{X, Xv}, {y, yv}, {c, cv}});

  xt::xarray<double> Zr = xt::zeros<double>({n, k}), Zs = xt::zeros<double>({n, k});
  std::vector<double> total{0}, total_scale{0};
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < k; ++j) {
      double a = static_cast<double>(Xv(i, j)) - static_cast<double>(mu0(j));
      double sc = std::abs(static_cast<double>(Xv(i, j))) + std::abs(static_cast<double>(mu0(j)));
      Zr(i, j) = a * static_cast<double>(s0(0, j)) + static_cast<double>(cv(i, 0));
      Zs(i, j) =
          sc * std::abs(static_cast<double>(s0(0, j))) + std::abs(static_cast<double>(cv(i, 0)));
      total[0] += Zr(i, j);
      total_scale[0] += Zs(i, j);
    }
  }
  // Z's own rounding (a few ulps of Zs) enters the regression reference through its scale.
  xt::xarray<double> beta_d = xt::cast<double>(beta0), y_d = xt::cast<double>(yv);
  RegressionRef ref = regression_ref(Zr, beta_d, y_d);
  RegressionRef bound =
      regression_ref(Zs, xt::xarray<double>(xt::abs(beta_d)), xt::xarray<double>(-xt::abs(y_d)));
  const auto& r = f.results();
  expect_close(r[0], ref.loss, bound.loss_scale, kRel<T>, "loss");
  expect_close(r[1], ref.grad, bound.grad_scale, kRel<T>, "gradient");
  expect_close(r[2], total, total_scale, kRel<T>, "sum(Z)");
  // Untiled, Z alone would take n x k elements.
  EXPECT_LT(f.workspace_bytes(), n * k * sizeof(T)) << "not tiled?";
}

// Guards elementwise members that broadcast a 1-d row, a (1, k) row and an (n, 1) column
// against blocks of rows, and a product over a member that has no full buffer, in double.
TEST(RowTiling, BroadcastRowsAndColumnsDouble) { check_broadcast_tiled<double>(30011, 100); }

// Guards the same in float.
TEST(RowTiling, BroadcastRowsAndColumnsFloat) { check_broadcast_tiled<float>(5003, 784); }

// ---------------------------------------------------------------- user ops in groups

/// Tutorial 7's Huber loss as a user op written against the public interface, without
/// traits(): the executor may assume nothing about it.
template <class T>
class PlainHuber : public xgrad::Op<T> {
 public:
  /// The kernel, shared by forward() and (in TiledHuber) the executor's direct call.
  static void loop(const T* r, T* y, std::size_t n, const xgrad::Attrs& a) {
    const T delta = static_cast<T>(a.real);
    for (std::size_t i = 0; i < n; ++i) {
      const T ar = std::abs(r[i]);
      y[i] = ar <= delta ? r[i] * r[i] / 2 : delta * (ar - delta / 2);
    }
  }
  std::string_view name() const override { return "huber"; }
  xgrad::Shape infer_shape(std::span<const xgrad::Shape> in, const xgrad::Attrs&) const override {
    return in[0];
  }
  void forward(std::span<const xgrad::ConstTensor<T>> in, xgrad::Tensor<T> out,
               const xgrad::Attrs& a) const override {
    loop(in[0].data, out.data, out.size, a);
  }
  void backward(const xgrad::Node<T>& node, Expr<T>, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> grads) const override {
    const T delta = static_cast<T>(node.attrs.real);
    grads[0] = g * xgrad::clamp(g.graph().expr(node.inputs[0]), -delta, delta);
  }
};

/// The same op declaring RowRole::elementwise, so it may run on blocks of rows: through
/// forward() on each block, or with `direct`, through its loop as a MapKernels unary.
template <class T>
class TiledHuber : public PlainHuber<T> {
 public:
  explicit TiledHuber(bool direct) {
    traits_.rows = xgrad::RowRole::elementwise;
    if (direct) traits_.map.unary = &PlainHuber<T>::loop;
  }
  const xgrad::OpTraits<T>& traits() const override { return traits_; }

 private:
  xgrad::OpTraits<T> traits_;
};

/// sum(huber(X @ w - y)) and its gradient X^T @ (broadcast(1) * clamp(X @ w - y)), 9 steps,
/// with the op given: `tiled` of them placed in the row-tiled group (Function::tiled_steps),
/// and the results equal to those of the same Function with tile_rows off.
template <class T>
void check_user_op_tiled(const xgrad::Op<T>& op, std::size_t n, std::size_t k, std::size_t tiled) {
  Regression<T> d(n, k, 81);
  Graph<T> g;
  auto X = g.input("X", {open, static_cast<xgrad::Dim>(k)});
  auto y = g.input("y", {open});
  auto w = g.parameter("w", d.beta);
  xgrad::Attrs delta;
  delta.real = 1.0;  // residuals are about 3 across: both branches of huber are taken
  auto r = xgrad::matmul(X, w) - y;
  auto loss = xgrad::sum(g.apply(op, {r.id()}, delta));
  auto gw = xgrad::grad(loss, {w})[0];
  xgrad::CompileOptions plain;
  plain.tile_rows = false;
  auto ref = xgrad::compile({loss, gw}, plain);
  const std::vector<xt::xarray<T>> want = ref.run({{X, d.X}, {y, d.y}});
  EXPECT_EQ(ref.tiled_groups(), 0u);
  EXPECT_EQ(ref.tiled_steps(), 0u);
  auto f = xgrad::compile({loss, gw});
  EXPECT_EQ(f.tiled_groups(), 0u) << "planned before the first run?";
  const auto& got = f.run({{X, d.X}, {y, d.y}});
  ASSERT_EQ(f.num_steps(), 9u);
  EXPECT_EQ(f.tiled_groups(), 1u);
  EXPECT_EQ(f.tiled_steps(), tiled);
  if (xgrad::kernels::gemv_isa() == 0) {  // BLAS gemv: its order depends on the block
    for (std::size_t i = 0; i < want.size(); ++i) {
      std::vector<double> wd(want[i].begin(), want[i].end()), scale(want[i].size());
      for (std::size_t j = 0; j < scale.size(); ++j) scale[j] = std::abs(wd[j]) + 1;
      expect_close(got[i], wd, scale, kRel<T>, i ? "gradient" : "loss");
    }
  } else {
    EXPECT_EQ(got[0], want[0]) << "loss";
    EXPECT_EQ(got[1], want[1]) << "gradient";
  }
}

/// TiledHuber whose forward() refuses residuals beyond 1e6: a member that throws inside a
/// row-tiled group.
template <class T>
class CheckedHuber : public TiledHuber<T> {
 public:
  CheckedHuber() : TiledHuber<T>(false) {}
  void forward(std::span<const xgrad::ConstTensor<T>> in, xgrad::Tensor<T> out,
               const xgrad::Attrs& a) const override {
    for (std::size_t i = 0; i < in[0].size; ++i) {
      if (std::abs(in[0].data[i]) > T(1e6)) throw xgrad::ValueError("residual out of range");
    }
    PlainHuber<T>::forward(in, out, a);
  }
};

// Guards a user op's way into row tiling: without traits() huber ends the group after
// X @ w - y (matmul and sub) and runs over the whole residual, and so do the 7 steps after
// it; declaring RowRole::elementwise puts it, the sum and the whole gradient in the group
// (run through forward() on each block, or through its own loop), with the untiled run's
// results bit for bit. In double and in float, rows of 100 and 784 elements.
TEST(RowTiling, UserOpJoinsGroupsThroughItsTraits) {
  const PlainHuber<double> plain_d;
  const TiledHuber<double> rows_d(false), loop_d(true);
  const PlainHuber<float> plain_f;
  const TiledHuber<float> rows_f(false), loop_f(true);
  for_each_isa([&] {
    check_user_op_tiled<double>(plain_d, 30011, 100, 2);
    check_user_op_tiled<float>(plain_f, 5003, 784, 2);
    for (const auto* op : {&rows_d, &loop_d}) check_user_op_tiled<double>(*op, 30011, 100, 9);
    for (const auto* op : {&rows_f, &loop_f}) check_user_op_tiled<float>(*op, 5003, 784, 9);
  });
}

// Guards the name in an error thrown by a member of a row-tiled group: the run fails
// "while running" that member (the huber node, not the product before it or the sum
// after it), at one thread and at two, and the Function stays usable.
TEST(RowTiling, ThrowingMemberIsNamed) {
  const std::size_t n = 30011, k = 100;
  Regression<double> d(n, k, 83);
  const CheckedHuber<double> op;
  Graph<double> g;
  auto X = g.input("X", {open, static_cast<xgrad::Dim>(k)});
  auto y = g.input("y", {open});
  auto w = g.parameter("w", d.beta);
  xgrad::Attrs delta;
  delta.real = 1.0;
  auto terms = g.apply(op, {(xgrad::matmul(X, w) - y).id()}, delta).named("terms");
  auto loss = xgrad::sum(terms);
  auto f = xgrad::compile({loss, xgrad::grad(loss, {w})[0]});
  xt::xarray<double> bad = d.y;
  bad(20000) = 1e9;
  const int old = xgrad::num_threads();
  for (int threads : {1, 2}) {
    xgrad::set_num_threads(threads);
    try {
      f.run({{X, d.X}, {y, bad}});
      ADD_FAILURE() << "expected ValueError";
    } catch (const xgrad::ValueError& e) {
      const std::string msg = e.what();
      EXPECT_TRUE(contains(msg, "while running 'terms' (huber")) << msg;
      EXPECT_TRUE(contains(msg, "residual out of range")) << msg;
    }
    EXPECT_EQ(f.tiled_groups(), 1u);
    const auto& out = f.run({{X, d.X}, {y, d.y}});
    EXPECT_TRUE(std::isfinite(out[0]()));
  }
  xgrad::set_num_threads(old);
}

// Guards check_finite inside a tiled group: a NaN in row 20000 of X is reported by the
// node that first produces it, with its flat index in the whole result (not the block).
TEST(RowTiling, CheckFiniteNamesNodeInsideGroup) {
  const std::size_t n = 30011, k = 100;
  Regression<double> d(n, k, 61);
  Graph<double> g;
  auto X = g.input("X", {open, static_cast<xgrad::Dim>(k)});
  auto y = g.input("y", {open});
  auto beta = g.parameter("beta", d.beta);
  auto pred = xgrad::matmul(X, beta).named("pred");
  auto loss = xgrad::mse(pred, y);
  auto gbeta = xgrad::grad(loss, {beta})[0];
  xgrad::CompileOptions opts;
  opts.check_finite = true;
  auto f = xgrad::compile({loss, gbeta}, opts);
  // Finite inputs (a NaN in X would be reported as X's): row 20000 of X @ beta overflows.
  xt::xarray<double> bad = d.X;
  for (std::size_t j = 0; j < k; ++j) bad(20000, j) = d.beta(j) < 0 ? -1e308 : 1e308;
  try {
    f.run({{X, bad}, {y, d.y}});
    ADD_FAILURE() << "expected ValueError";
  } catch (const xgrad::ValueError& e) {
    std::string msg = e.what();
    EXPECT_TRUE(contains(msg, "check_finite")) << msg;
    EXPECT_TRUE(contains(msg, "'pred' (matmul")) << msg;
    EXPECT_TRUE(contains(msg, "flat index 20000")) << msg;
  }
  EXPECT_LT(f.workspace_bytes(), n * sizeof(double)) << "not tiled?";
  // The Function stays usable, and finite values pass.
  f.run({{X, d.X}, {y, d.y}});
  check_regression(f, regression_ref(d.X, d.beta, d.y), false, "after the error");
}

// Guards check_finite on the reductions of a tiled group: every element of 2 * X is finite,
// but their sum, and X^T @ 1 of them, overflow to +inf; the node must be named, as it is
// without tiling.
TEST(RowTiling, CheckFiniteSeesOverflowingReductions) {
  const std::size_t k = 100;
  for (bool product : {false, true}) {
    for (std::size_t n : {30011, 300}) {  // tiled, then below the threshold
      SCOPED_TRACE(std::string(product ? "X^T @ ones" : "sum") + ", n = " + std::to_string(n));
      Graph<double> g;
      auto X = g.input("X", {open, static_cast<xgrad::Dim>(k)});
      auto ones = g.input("ones", {open});
      auto twice = X * 2.0;
      auto total =
          (product ? xgrad::matmul(twice, ones, true, false) : xgrad::sum(twice)).named("total");
      xgrad::CompileOptions opts;
      opts.check_finite = true;
      auto f = xgrad::compile({total}, opts);
      xt::xarray<double> big = xt::xarray<double>::from_shape({n, k});
      big.fill(1e306);
      xt::xarray<double> onesv = xt::ones<double>({n});
      try {
        const auto& r = f.run({{X, big}, {ones, onesv}});
        ADD_FAILURE() << "expected ValueError, got " << r[0].flat(0);
      } catch (const xgrad::ValueError& e) {
        std::string msg = e.what();
        EXPECT_TRUE(contains(msg, "check_finite")) << msg;
        EXPECT_TRUE(contains(msg, product ? "'total' (matmul" : "'total' (sum")) << msg;
      }
    }
  }
}

}  // namespace
