// Direct kernel calls (CompileOptions::direct_calls, src/exec/calls.cpp): a step whose
// shapes lead forward() straight to one kernel runs that kernel, decided when planning.
// Each case compiles the same outputs with the calls on and off (every step through
// Op::forward) and requires the same bits, and counts the steps that took a direct call,
// so a case that silently fell back to forward() fails too.
#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>
#include <xgrad/kernels.hpp>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace {

using xgrad::Expr;
using xgrad::Graph;
using xgrad::open;
using xgrad_test::Threads;

/// Uniform reals in [-2, 2).
template <class T>
xt::xarray<T> uniform(std::vector<std::size_t> shape, unsigned seed) {
  return xgrad_test::uniform<T>(std::move(shape), seed, -2, 2);
}

/// Whole tiling off: these tests are about the steps that run one by one.
xgrad::CompileOptions options(bool direct) {
  xgrad::CompileOptions o;
  o.tile_rows = false;
  o.direct_calls = direct;
  return o;
}

/// Runs `outs` compiled with and without direct calls on the same feeds; expects equal
/// bits and `direct` steps run directly (none without). Returns the direct run's results.
template <class T>
std::vector<xt::xarray<T>> same_bits(const std::vector<Expr<T>>& outs,
                                     const std::vector<xgrad::Feed<T>>& feeds, std::size_t direct) {
  xgrad::Function<T> on(outs, options(true)), off(outs, options(false));
  std::vector<xt::xarray<T>> a = on.run(feeds);
  const std::vector<xt::xarray<T>>& b = off.run(feeds);
  EXPECT_EQ(on.direct_steps(), direct);
  EXPECT_EQ(off.direct_steps(), 0u);
  EXPECT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size() && k < b.size(); ++k) {
    EXPECT_EQ(a[k].shape(), b[k].shape()) << "output " << k;
    if (a[k].size() != b[k].size()) continue;
    EXPECT_EQ(std::memcmp(a[k].data(), b[k].data(), a[k].size() * sizeof(T)), 0)
        << "output " << k << " differs from forward()'s";
  }
  return a;
}

template <class T>
class DirectCalls : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(DirectCalls, Types);

TYPED_TEST(DirectCalls, MapsOfEqualShapesAndScalars) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {open, 7});
  auto y = g.input("y", {open, 7});
  auto s = g.input("s", {});
  // unary, binary, scalar_b (x / 3), scalar_a (s - x), and a broadcast of a row, which
  // stays with forward().
  auto row = g.parameter("row", uniform<T>({7}, 3));
  std::vector<Expr<T>> outs{xgrad::exp(x), x * y, x / T(3), s - x, x + row};
  auto xv = uniform<T>({5, 7}, 1), yv = uniform<T>({5, 7}, 2);
  xt::xarray<T> sv = T(0.75);
  auto r = same_bits<T>(outs, {{x, xv}, {y, yv}, {s, sv}}, 4);
  // And against the arithmetic itself, so that both paths cannot be wrong together.
  EXPECT_EQ(r[1](4, 6), xv(4, 6) * yv(4, 6));
  EXPECT_EQ(r[2](2, 3), xv(2, 3) / T(3));
  EXPECT_EQ(r[3](0, 0), T(0.75) - xv(0, 0));
}

TYPED_TEST(DirectCalls, MatrixVectorProducts) {
  using T = TypeParam;
  Graph<T> g;
  auto X = g.input("X", {open, 3});
  auto v = g.input("v", {3});
  auto r = g.input("r", {open});
  // X @ v (gemv_dots), X^T @ r and r @ X (gemv_axpys, the matrix second in the latter).
  std::vector<Expr<T>> outs{xgrad::matmul(X, v), xgrad::matmul(X, r, true), xgrad::matmul(r, X)};
  auto Xv = uniform<T>({6, 3}, 4), vv = uniform<T>({3}, 5), rv = uniform<T>({6}, 6);
  auto res = same_bits<T>(outs, {{X, Xv}, {v, vv}, {r, rv}}, 3);
  double d = 0, a = 0;
  for (std::size_t j = 0; j < 3; ++j) d += static_cast<double>(Xv(5, j)) * vv(j);
  for (std::size_t i = 0; i < 6; ++i) a += static_cast<double>(Xv(i, 2)) * rv(i);
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  EXPECT_NEAR(res[0](5), d, tol * 10);
  EXPECT_NEAR(res[1](2), a, tol * 10);
  EXPECT_EQ(res[1](2), res[2](2));  // the same kernel on the same rows
  // Rows longer than a vector take the kernels' vector loops.
  Graph<T> h;
  auto W = h.input("W", {open, 37});
  auto w = h.input("w", {37});
  auto q = h.input("q", {open});
  same_bits<T>({xgrad::matmul(W, w), xgrad::matmul(W, q, true)},
               {{W, uniform<T>({45, 37}, 7)}, {w, uniform<T>({37}, 8)}, {q, uniform<T>({45}, 9)}},
               2);
}

TYPED_TEST(DirectCalls, WholeTensorSumAndMean) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {open, 5});
  std::vector<Expr<T>> outs{xgrad::sum(x), xgrad::mean(x), xgrad::sum(x, {1})};
  auto xv = uniform<T>({9, 5}, 10);
  auto r = same_bits<T>(outs, {{x, xv}}, 2);  // the sum over an axis stays with forward()
  double s = 0;
  for (T e : xv) s += static_cast<double>(e);
  EXPECT_EQ(r[0](), static_cast<T>(s));
  EXPECT_EQ(r[1](), static_cast<T>(s / 45.0));
  // A mean of nothing is forward()'s error, with or without direct calls.
  for (bool direct : {true, false}) {
    xgrad::Function<T> f({xgrad::mean(x)}, options(direct));
    xt::xarray<T> empty = xt::xarray<T>::from_shape({0, 5});
    EXPECT_THROW(f.run({{x, empty}}), xgrad::Error) << (direct ? "direct" : "forward");
  }
}

// The seed's regression (its loss and gradient), the graph the calls were made for: the
// gradient is X^T (X beta - y), checked by hand as well.
TYPED_TEST(DirectCalls, SeedRegressionStep) {
  using T = TypeParam;
  Graph<T> g;
  auto X = g.input("X", {open, 3});
  auto y = g.input("y", {open});
  auto beta = g.parameter("beta", xt::xarray<T>{T(10.1), T(15.1), T(-6.5)});
  auto loss = xgrad::sum(xgrad::square(y - xgrad::matmul(X, beta))) / T(2);
  auto grad = xgrad::grad(loss, {beta})[0];
  xt::xarray<T> Xv = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
  xt::xarray<T> yv = {6, 8, 9, 11};
  // Every step but the aliased sum_to runs directly: matmul, sub, square, sum, div, neg
  // and the transposed product.
  auto r = same_bits<T>({loss, grad}, {{X, Xv}, {y, yv}}, 7);
  const T b[3] = {T(10.1), T(15.1), T(-6.5)};
  double gr[3] = {0, 0, 0};
  for (std::size_t i = 0; i < 4; ++i) {
    double res = static_cast<double>(Xv(i, 0)) * b[0] + static_cast<double>(Xv(i, 1)) * b[1] +
                 static_cast<double>(Xv(i, 2)) * b[2] - yv(i);
    for (std::size_t j = 0; j < 3; ++j) gr[j] += static_cast<double>(Xv(i, j)) * res;
  }
  for (std::size_t j = 0; j < 3; ++j) EXPECT_NEAR(r[1](j), gr[j], 1e-3) << j;
}

// Above one thread, work large enough to split goes through forward() (sums in parts) or
// splits the same way (maps): the bits still match, and a new shape re-plans the calls.
TYPED_TEST(DirectCalls, ThreadsAndNewShapes) {
  using T = TypeParam;
  Threads two(2);
  Graph<T> g;
  auto X = g.input("X", {open, 3});
  auto v = g.input("v", {3});
  std::vector<Expr<T>> outs{xgrad::sum(xgrad::square(xgrad::matmul(X, v)))};
  auto vv = uniform<T>({3}, 11);
  xgrad::Function<T> on(outs, options(true)), off(outs, options(false));
  for (std::size_t rows : {4u, 300000u, 7u}) {
    SCOPED_TRACE(rows);
    auto Xv = uniform<T>({rows, 3}, 12);
    const T a = on.run({{X, Xv}, {v, vv}})[0]();
    const T b = off.run({{X, Xv}, {v, vv}})[0]();
    EXPECT_EQ(a, b);
    // Large: the product and the sum split across the threads, only the map runs directly.
    EXPECT_EQ(on.direct_steps(), rows > 1000 ? 1u : 3u);
  }
  EXPECT_EQ(on.plan_count(), 3u);
}

// A Function planned on the AVX2 kernels of an AVX-512 machine gives their bits whether
// the product is called directly or through forward().
TYPED_TEST(DirectCalls, CappedInstructionSet) {
  using T = TypeParam;
  if (xgrad::kernels::gemv_isa() < 1) GTEST_SKIP() << "no AVX2 on this CPU";
  const int old = xgrad::kernels::gemv_limit_isa(1);
  Graph<T> g;
  auto W = g.input("W", {open, 37});
  auto w = g.input("w", {37});
  same_bits<T>({xgrad::matmul(W, w)}, {{W, uniform<T>({45, 37}, 13)}, {w, uniform<T>({37}, 14)}},
               1);
  xgrad::kernels::gemv_limit_isa(old);
}

}  // namespace
