// The ops a model writer reaches for beyond the basics: erf, log1p, expm1, gelu,
// stop_gradient and where (elementwise), and min, prod, logsumexp, var, std, argmax and
// argmin (reductions). Forward values against plain loops and hand-computed values (float
// and double), gradients against central differences in double precision (first and
// second order, broadcast and open-batch operands) and against hand-derived values, the
// printed forms, and the errors for bad axes. The elementwise rows also have their cases
// in the all-ops tables of test_ops_forward.cpp and test_ops_gradcheck.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace {

using xgrad::Dim;
using xgrad::Expr;
using xgrad::Graph;
using Sh = std::vector<std::size_t>;
using A = xt::xarray<double>;
constexpr Dim kOpen = xgrad::open;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class T>
constexpr double kTol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

template <class T>
xt::xarray<T> rnd(const Sh& s, std::mt19937& gen, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<double> d(lo, hi);
  xt::xarray<T> a = xt::xarray<T>::from_shape(s);
  for (T& e : a) e = static_cast<T>(d(gen));
  return a;
}

Sh shape_of(const auto& a) { return Sh(a.shape().begin(), a.shape().end()); }

/// An array of shape s holding v in row-major order (nested braces like {{1}, {0}} are
/// ambiguous to xtensor).
template <class T>
xt::xarray<T> shaped(const Sh& s, const std::vector<double>& v) {
  xt::xarray<T> a = xt::xarray<T>::from_shape(s);
  for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<T>(v.at(i));
  return a;
}

/// got == want elementwise within tol * max(1, |want|); NaN and infinities must match.
template <class T>
void expect_values(const xt::xarray<T>& got, const A& want, double tol, const std::string& what) {
  ASSERT_EQ(shape_of(got), shape_of(want)) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got.data()[i]), w = want.data()[i];
    if (std::isnan(w)) {
      EXPECT_TRUE(std::isnan(g)) << what << " [" << i << "] = " << g;
    } else if (std::isinf(w)) {
      EXPECT_EQ(g, w) << what << " [" << i << "]";
    } else {
      EXPECT_NEAR(g, w, tol * std::max(1.0, std::abs(w))) << what << " [" << i << "]";
    }
  }
}

/// The groups of a reduction of a (rows, cols) matrix: axis 0 (columns), 1 (rows) or all.
template <class F>
A reduce2d(const A& x, int axis, F f) {
  const std::size_t r = x.shape()[0], c = x.shape()[1];
  auto group = [&](std::size_t start, std::size_t n, std::size_t stride) {
    std::vector<double> v;
    for (std::size_t j = 0; j < n; ++j) v.push_back(x.data()[start + j * stride]);
    return f(v);
  };
  if (axis == 0) {
    A out = A::from_shape({c});
    for (std::size_t j = 0; j < c; ++j) out(j) = group(j, r, c);
    return out;
  }
  if (axis == 1) {
    A out = A::from_shape({r});
    for (std::size_t i = 0; i < r; ++i) out(i) = group(i * c, c, 1);
    return out;
  }
  return A(group(0, r * c, 1));
}

double ref_var(const std::vector<double>& v, double correction) {
  double m = 0, s = 0;
  for (double e : v) m += e;
  m /= static_cast<double>(v.size());
  for (double e : v) s += (e - m) * (e - m);
  return s / (static_cast<double>(v.size()) - correction);
}
double ref_lse(const std::vector<double>& v) {
  double m = -kInf, s = 0;
  for (double e : v) m = std::max(m, e);
  for (double e : v) s += std::exp(e - m);
  return m + std::log(s);
}
double ref_prod(const std::vector<double>& v) {
  double p = 1;
  for (double e : v) p *= e;
  return p;
}
double ref_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double ref_argmax(const std::vector<double>& v) {
  return static_cast<double>(std::max_element(v.begin(), v.end()) - v.begin());
}
double ref_argmin(const std::vector<double>& v) {
  return static_cast<double>(std::min_element(v.begin(), v.end()) - v.begin());
}

template <class T>
A to_double(const xt::xarray<T>& a) {
  A r = A::from_shape(shape_of(a));
  for (std::size_t i = 0; i < a.size(); ++i) r.data()[i] = static_cast<double>(a.data()[i]);
  return r;
}

/// Runs `check` over a message of a thrown E and requires it to name each part.
template <class E, class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    for (const std::string& p : parts) {
      EXPECT_TRUE(xgrad_test::contains(e.what(), p)) << e.what() << " lacks " << p;
    }
  }
}

template <class T>
class OpsMath : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(OpsMath, FloatTypes);

// ------------------------------------------------------------------ elementwise forward

TYPED_TEST(OpsMath, ErfLog1pExpm1AtSpecialPoints) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {6});
  const T inf = std::numeric_limits<T>::infinity();
  xt::xarray<T> xv = {-inf, T(-1), T(-1e-10), T(0), T(1e-10), inf};
  auto f = xgrad::compile({xgrad::erf(x), xgrad::log1p(x), xgrad::expm1(x)});
  const auto& r = f.run({{x, xv}});
  const double t = static_cast<double>(T(1e-10));  // 1e-10 rounded to T
  expect_values(r[0], A{-1, std::erf(-1.0), std::erf(-t), 0, std::erf(t), 1}, kTol<T>, "erf");
  expect_values(r[1], A{kNaN, -kInf, std::log1p(-t), 0, std::log1p(t), kInf}, kTol<T>, "log1p");
  expect_values(r[2], A{-1, std::expm1(-1.0), std::expm1(-t), 0, std::expm1(t), kInf}, kTol<T>,
                "expm1");
  // Tiny arguments keep their relative precision, which log(1 + x) and exp(x) - 1 lose.
  EXPECT_NEAR(static_cast<double>(r[1](4)) / t, 1.0, 1e-6);
  EXPECT_NEAR(static_cast<double>(r[2](2)) / -t, 1.0, 1e-6);
}

TYPED_TEST(OpsMath, GeluByHandBothForms) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {7});
  const T inf = std::numeric_limits<T>::infinity();
  xt::xarray<T> xv = {-inf, T(-40), T(-1), T(0), T(1), T(3), inf};
  auto f = xgrad::compile({xgrad::gelu(x), xgrad::gelu(x, xgrad::GeluApproximate::tanh)});
  const auto& r = f.run({{x, xv}});
  // gelu(1) = Phi(1) = 0.841344746068543; the tanh form gives 0.841191990608277 there.
  const double phi3 = 0.5 * std::erfc(-3 / std::sqrt(2.0));
  expect_values(r[0], A{kNaN, 0, -(1 - 0.841344746068543), 0, 0.841344746068543, 3 * phi3, kInf},
                kTol<T>, "gelu");
  const double u3 = std::sqrt(2 / M_PI) * (3 + 0.044715 * 27);
  expect_values(
      r[1],
      A{kNaN, 0, -(1 - 0.841191990608277), 0, 0.841191990608277, 1.5 * (1 + std::tanh(u3)), kInf},
      kTol<T>, "gelu tanh");
  // Far left tail: a tiny negative number, not 0 * -inf or a rounding to -0 of 1 + erf.
  EXPECT_LE(r[0](1), T(0));
  EXPECT_FALSE(std::isnan(r[0](1)));
  // (At -inf, x * Phi(x) is -inf * 0: NaN, as in PyTorch.) The two forms differ by at
  // most about 5e-4 on [-4, 4].
  std::mt19937 gen(3);
  auto w = g.input("w", {200});
  auto wv = rnd<T>({200}, gen, -4, 4);
  auto rw =
      xgrad::compile({xgrad::gelu(w), xgrad::gelu(w, xgrad::GeluApproximate::tanh)}).run({{w, wv}});
  for (std::size_t i = 0; i < 200; ++i) EXPECT_NEAR(rw[0](i), rw[1](i), 1e-3);
}

TYPED_TEST(OpsMath, GeluJoinsRowTiledGroups) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {4});
  for (const xgrad::Node<T>* n :
       {&xgrad::gelu(x).node(), &xgrad::gelu(x, xgrad::GeluApproximate::tanh).node(),
        &xgrad::erf(x).node(), &xgrad::log1p(x).node(), &xgrad::expm1(x).node(),
        &xgrad::stop_gradient(x).node()}) {
    SCOPED_TRACE(std::string(n->op->name()));
    EXPECT_EQ(n->op->traits().rows, xgrad::RowRole::elementwise);
    ASSERT_NE(n->op->traits().map.unary, nullptr);
  }
  // A gelu MLP over the rows of a 2.3 MiB (float) input: tiled and untiled runs agree.
  std::mt19937 gen(7);
  auto X = g.input("X", {kOpen, 24});
  auto W = g.parameter("W", rnd<T>({24, 8}, gen));
  auto h = xgrad::gelu(xgrad::matmul(X, W));
  auto loss = xgrad::sum(h * h);
  auto gw = xgrad::grad(loss, {W})[0];
  xgrad::CompileOptions untiled;
  untiled.tile_rows = false;
  auto tiled = xgrad::compile({loss, gw});
  auto plain = xgrad::compile({loss, gw}, untiled);
  auto xv = rnd<T>({25000, 24}, gen);
  const auto& rt = tiled.run({{X, xv}});
  EXPECT_GT(tiled.tiled_groups(), 0u);
  EXPECT_GE(tiled.tiled_steps(), 3u);  // the product, gelu and its gradient among them
  const auto& rp = plain.run({{X, xv}});
  for (std::size_t k = 0; k < 2; ++k) {
    const double scale = std::max(1.0, static_cast<double>(xt::amax(xt::abs(rp[k]))()));
    expect_values(rt[k], to_double(rp[k]), (std::is_same_v<T, float> ? 1e-3 : 1e-10) * scale,
                  "tiled");
  }
}

TYPED_TEST(OpsMath, WhereBroadcastsAllThreeOperands) {
  using T = TypeParam;
  Graph<T> g;
  auto c = g.input("c", {3, 1});
  auto a = g.input("a", {1, 4});
  auto b = g.input("b", {});
  auto y = xgrad::where(c, a, b);
  EXPECT_EQ(y.shape(), (xgrad::Shape{3, 4}));
  const double nan = kNaN;
  xt::xarray<T> cv = shaped<T>({3, 1}, {1, 0, nan}), av = {{1, 2, 3, 4}}, bv = T(-7);
  expect_values(xgrad::eval(y, {{c, cv}, {a, av}, {b, bv}}),
                A{{1, 2, 3, 4}, {-7, -7, -7, -7}, {1, 2, 3, 4}}, 0, "where");
  // Equal shapes take the direct loop; a constant condition folds.
  auto p = g.input("p", {5});
  xt::xarray<T> pv = {-2, -1, 0, 1, 2};
  expect_values(xgrad::eval(xgrad::where(xgrad::step(p), p, -p), {{p, pv}}), A{2, 1, 0, 1, 2}, 0,
                "|p|");
  auto k = xgrad::where(g.constant(xt::xarray<T>{0, 2}), g.constant(xt::xarray<T>{1, 1}),
                        g.constant(xt::xarray<T>{5, 5}));
  EXPECT_EQ(k.node().kind, xgrad::NodeKind::constant);
  expect_values(xgrad::eval(k), A{5, 1}, 0, "folded");
  // where(c, a, a) is a.
  EXPECT_EQ(xgrad::where(p, p, p), p);
  // An open batch in any operand.
  auto q = g.input("q", {kOpen, 3});
  auto r = g.input("r", {3});
  auto f = xgrad::compile({xgrad::where(xgrad::step(q), r, q)});
  xt::xarray<T> qv = {{1, -1, 2}, {-3, 4, -5}}, rv = {10, 20, 30};
  expect_values(f.run({{q, qv}, {r, rv}})[0], A{{10, -1, 30}, {-3, 20, -5}}, 0, "open");
}

TYPED_TEST(OpsMath, WhereRefusesWhatBinaryOpsRefuse) {
  using T = TypeParam;
  Graph<T> g;
  auto c = g.input("mask", {2, 3});
  auto a = g.input("a", {3});
  auto b = g.input("b", {4});
  // The same NumPy broadcasting as a + b: (2, 3) with (4,) is refused by both.
  EXPECT_THROW(c + b, xgrad::ShapeError);
  expect_error<xgrad::ShapeError>([&] { xgrad::where(c, a, b); },
                                  {"where", "(2, 3)", "(4,)", "mask"});
  expect_error<xgrad::ShapeError>([&] { xgrad::where(b, c, a); }, {"where", "(4,)", "(2, 3)"});
}

// ------------------------------------------------------------------ elementwise gradients

using E = Expr<double>;
using G = Graph<double>;

void expect_grads_ok(E y, const std::vector<E>& xs, std::vector<xgrad::Feed<double>> feeds,
                     const std::string& what) {
  xgrad::GradCheckResult r = xgrad::check_gradients(y, xs, feeds);
  EXPECT_TRUE(r.ok) << what << ": " << r.summary();
  EXPECT_GT(r.checked, 0u) << what;
}

/// The gradient of sum(sin(y)) dotted with a fixed random v, against central differences
/// of the first-order gradient graph: second derivatives.
void expect_second_order_ok(E y, const std::vector<E>& xs, std::vector<xgrad::Feed<double>> feeds,
                            const std::vector<Sh>& shapes, const std::string& what) {
  std::mt19937 gen(99);
  G& g = y.graph();
  std::vector<E> gs = xgrad::grad(xgrad::sum(xgrad::sin(y)), xs);
  E obj;
  for (std::size_t k = 0; k < gs.size(); ++k) {
    E t = xgrad::sum(gs[k] * g.constant(rnd<double>(shapes[k], gen)));
    obj = obj ? obj + t : t;
  }
  expect_grads_ok(obj, xs, feeds, what + " (second order)");
}

std::vector<A> eval_grads(E y, const std::vector<E>& xs,
                          std::vector<xgrad::Feed<double>> feeds = {}) {
  return xgrad::compile(xgrad::grad(y, xs)).run(feeds);
}

TEST(OpsMathGrad, GeluDerivativesByHand) {
  // gelu'(x) = Phi(x) + x phi(x); gelu''(x) = phi(x) (2 - x^2).
  G g;
  A xv = {-2, -0.5, 0, 0.7, 3};
  E x = g.parameter("x", xv);
  E d1 = xgrad::grad(xgrad::sum(xgrad::gelu(x)), {x})[0];
  E d2 = xgrad::grad(xgrad::sum(d1), {x})[0];
  auto r = xgrad::compile({d1, d2}).run();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double v = xv(i), phi = std::exp(-v * v / 2) / std::sqrt(2 * M_PI);
    EXPECT_NEAR(r[0](i), 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * phi, 1e-15);
    EXPECT_NEAR(r[1](i), phi * (2 - v * v), 1e-15);
  }
  // The tanh form at 0: y' = 1/2, y'' = sqrt(2/pi).
  E z = g.parameter("z", A{0.0});
  E t1 = xgrad::grad(xgrad::sum(xgrad::gelu(z, xgrad::GeluApproximate::tanh)), {z})[0];
  E t2 = xgrad::grad(xgrad::sum(t1), {z})[0];
  auto rt = xgrad::compile({t1, t2}).run();
  EXPECT_NEAR(rt[0](0), 0.5, 1e-15);
  EXPECT_NEAR(rt[1](0), std::sqrt(2 / M_PI), 1e-15);
}

TEST(OpsMathGrad, ElementwiseThirdOrder) {
  // Gradients of gradients of gradients stay correct: third derivatives by central
  // differences of the second-derivative graph.
  for (int form = 0; form < 5; ++form) {
    G g;
    std::mt19937 gen(11 + form);
    E x = g.parameter("x", rnd<double>({4}, gen, -1.5, 1.5));
    auto f = [&](E v) {
      switch (form) {
        case 0:
          return xgrad::gelu(v);
        case 1:
          return xgrad::gelu(v, xgrad::GeluApproximate::tanh);
        case 2:
          return xgrad::erf(v);
        case 3:
          return xgrad::expm1(v);
        default:
          return xgrad::log1p(v + 2.0);
      }
    };
    E d1 = xgrad::grad(xgrad::sum(f(x)), {x})[0];
    E d2 = xgrad::grad(xgrad::sum(d1), {x})[0];
    expect_grads_ok(d2, {x}, {}, "third order, form " + std::to_string(form));
  }
}

TEST(OpsMathGrad, StopGradientPassesNothing) {
  G g;
  E x = g.parameter("x", A{1, -2, 3});
  // d/dx x * stop_gradient(x) is stop_gradient(x) = x, not 2x.
  auto r = eval_grads(xgrad::sum(x * xgrad::stop_gradient(x)), {x});
  expect_values(r[0], A{1, -2, 3}, 0, "x * sg(x)");
  // Alone it gives zeros (x is reached, so no unconnected error).
  r = eval_grads(xgrad::sum(xgrad::stop_gradient(x)), {x});
  expect_values(r[0], A{0, 0, 0}, 0, "sg(x)");
  // Stopping twice is stopping once; the forward value is x.
  E s = xgrad::stop_gradient(x);
  EXPECT_EQ(xgrad::stop_gradient(s), s);
  expect_values(xgrad::eval(s * 2.0), A{2, -4, 6}, 0, "forward");
  // A straight-through estimator: round-like forward (sign), identity gradient.
  E ste = x + xgrad::stop_gradient(xgrad::sign(x) - x);
  expect_values(xgrad::eval(ste), A{1, -1, 1}, 0, "ste forward");
  expect_values(eval_grads(xgrad::sum(ste), {x})[0], A{1, 1, 1}, 0, "ste gradient");
}

TEST(OpsMathGrad, WhereMasksAndReducesAndGivesCondNothing) {
  G g;
  E c = g.parameter("c", shaped<double>({2, 1}, {1, 0}));
  E a = g.parameter("a", A{1, 2, 3});  // (3,)
  E b = g.parameter("b", A{{4, 5, 6}, {7, 8, 9}});
  E w = g.constant(A{{1, 10, 100}, {1000, 10000, 100000}});
  auto r = eval_grads(xgrad::sum(xgrad::where(c, a, b) * w), {c, a, b});
  expect_values(r[0], shaped<double>({2, 1}, {0, 0}), 0, "cond");
  expect_values(r[1], A{1, 10, 100}, 0, "a: row 0 only, summed over rows");
  expect_values(r[2], A{{0, 0, 0}, {1000, 10000, 100000}}, 0, "b: row 1 only");
}

TEST(OpsMathGrad, WhereCentralDifferences) {
  struct Config {
    xgrad::Shape dc, da, db;
    Sh vc, va, vb;
  };
  const std::vector<Config> configs = {
      {{2, 3}, {2, 3}, {2, 3}, {2, 3}, {2, 3}, {2, 3}},
      {{2, 1, 3}, {4, 1}, {3}, {2, 1, 3}, {4, 1}, {3}},
      {{}, {2, 3}, {1, 3}, {}, {2, 3}, {1, 3}},
      {{kOpen, 3}, {3}, {kOpen, 1}, {4, 3}, {3}, {4, 1}},
  };
  std::mt19937 gen(5);
  for (const Config& k : configs) {
    const std::string what = "where " + xgrad::shape_str(k.dc) + " " + xgrad::shape_str(k.da) +
                             " " + xgrad::shape_str(k.db);
    G g;
    std::vector<A> vals = {rnd<double>(k.vc, gen), rnd<double>(k.va, gen), rnd<double>(k.vb, gen)};
    E c = g.input("c", k.dc);
    E a = g.input("a", k.da);
    E b = g.input("b", k.db);
    std::vector<xgrad::Feed<double>> feeds = {{c, vals[0]}, {a, vals[1]}, {b, vals[2]}};
    E y = xgrad::where(xgrad::step(c), a * a, xgrad::sin(b));
    expect_grads_ok(y, {a, b}, feeds, what);
    expect_second_order_ok(y, {a, b}, feeds, {k.va, k.vb}, what);
  }
}

// ------------------------------------------------------------------ reductions: forward

TYPED_TEST(OpsMath, ReductionsOfMatricesAgainstLoops) {
  using T = TypeParam;
  std::mt19937 gen(21);
  auto xv = rnd<T>({4, 5}, gen, 0.5, 1.5);
  const A xd = to_double(xv);
  Graph<T> g;
  auto x = g.input("x", {kOpen, 5});
  for (int axis : {0, 1, -1}) {
    SCOPED_TRACE("axis " + std::to_string(axis));
    std::vector<Dim> axes;
    if (axis >= 0) axes = {axis};
    auto f = xgrad::compile({xgrad::min(x, axes), xgrad::prod(x, axes), xgrad::logsumexp(x, axes),
                             xgrad::var(x, axes), xgrad::var(x, axes, false, 0),
                             xgrad::std(x, axes), xgrad::std(x, axes, false, 2)});
    const auto& r = f.run({{x, xv}});
    expect_values(r[0], reduce2d(xd, axis, ref_min), 0, "min");
    expect_values(r[1], reduce2d(xd, axis, ref_prod), kTol<T>, "prod");
    expect_values(r[2], reduce2d(xd, axis, ref_lse), kTol<T>, "logsumexp");
    expect_values(r[3], reduce2d(xd, axis, [](auto v) { return ref_var(v, 1); }), kTol<T>, "var");
    expect_values(r[4], reduce2d(xd, axis, [](auto v) { return ref_var(v, 0); }), kTol<T>,
                  "var correction 0");
    expect_values(r[5], reduce2d(xd, axis, [](auto v) { return std::sqrt(ref_var(v, 1)); }),
                  kTol<T>, "std");
    expect_values(r[6], reduce2d(xd, axis, [](auto v) { return std::sqrt(ref_var(v, 2)); }),
                  kTol<T>, "std correction 2");
  }
  // keepdims, negative axes and a 3-d operand reduced over two axes.
  auto z = g.input("z", {2, 3, 4});
  auto zv = rnd<T>({2, 3, 4}, gen, 0.5, 1.5);
  auto k = xgrad::var(z, {0, -1}, true);
  EXPECT_EQ(k.shape(), (xgrad::Shape{1, 3, 1}));
  auto rk =
      xgrad::compile({k, xgrad::logsumexp(z, {2, 0}), xgrad::prod(z, {1}, true)}).run({{z, zv}});
  for (std::size_t j = 0; j < 3; ++j) {
    std::vector<double> v;
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t l = 0; l < 4; ++l) v.push_back(static_cast<double>(zv(i, j, l)));
    EXPECT_NEAR(rk[0](0, j, 0), ref_var(v, 1), kTol<T>);
    EXPECT_NEAR(rk[1](j), ref_lse(v), kTol<T>);
  }
  EXPECT_EQ(shape_of(rk[2]), (Sh{2, 1, 4}));
  EXPECT_NEAR(rk[2](1, 0, 2), static_cast<double>(zv(1, 0, 2)) * zv(1, 1, 2) * zv(1, 2, 2),
              kTol<T>);
}

TYPED_TEST(OpsMath, LogSumExpDoesNotOverflowOrUnderflow) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {3, 3});
  const T inf = std::numeric_limits<T>::infinity();
  xt::xarray<T> xv = {{1000, 1001, 999}, {-1000, -1001, -999}, {-inf, -inf, -inf}};
  auto r = xgrad::compile({xgrad::logsumexp(x, {1})}).run({{x, xv}});
  const double s = std::log(1 + std::exp(1.0) + std::exp(-1.0));
  expect_values(r[0], A{1000 + s, -999 + std::log(1 + std::exp(-1.0) + std::exp(-2.0)), -kInf},
                kTol<T>, "logsumexp");
  // exp(1000) overflows in double; the shift keeps the gradient finite: softmax of the row.
  Graph<double> gd;
  E p = gd.parameter("p", A{{1000, 1001, 999}});
  auto gr = eval_grads(xgrad::logsumexp(p), {p});
  const double z = 1 + std::exp(1.0) + std::exp(-1.0);
  expect_values(gr[0], A{{1 / z, std::exp(1.0) / z, std::exp(-1.0) / z}}, 1e-12, "softmax");
  // NaN and +inf win.
  xt::xarray<T> wv = {{1, std::numeric_limits<T>::quiet_NaN(), 2}, {1, inf, 2}, {0, 0, 0}};
  auto rw = xgrad::compile({xgrad::logsumexp(x, {1})}).run({{x, wv}});
  expect_values(rw[0], A{kNaN, kInf, std::log(3.0)}, kTol<T>, "special");
}

TYPED_TEST(OpsMath, VarianceOfLargeOffsetInFloat) {
  using T = TypeParam;
  // Two passes in double: a mean of 1e4 does not swallow a spread of 1e-2 in float.
  Graph<T> g;
  auto x = g.input("x", {4});
  xt::xarray<T> xv = {T(10000.01), T(10000.02), T(10000.03), T(10000.04)};
  A xd = to_double(xv);
  std::vector<double> v(xd.begin(), xd.end());
  auto r = xgrad::compile({xgrad::var(x), xgrad::std(x, {}, false, 0)}).run({{x, xv}});
  EXPECT_NEAR(r[0](), ref_var(v, 1), 1e-6 * ref_var(v, 1));
  EXPECT_NEAR(r[1](), std::sqrt(ref_var(v, 0)), 1e-6 * std::sqrt(ref_var(v, 0)));
}

TYPED_TEST(OpsMath, ArgmaxArgminByHand) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {2, 4});
  const T nan = std::numeric_limits<T>::quiet_NaN();
  xt::xarray<T> xv = {{3, 7, 7, -1}, {2, 9, 1, 1}};
  auto f = xgrad::compile({xgrad::argmax(x, {1}), xgrad::argmin(x, {1}), xgrad::argmax(x, {0}),
                           xgrad::argmin(x, {-2}, true), xgrad::argmax(x), xgrad::argmin(x),
                           xgrad::argmax(x, {}, true)});
  const auto& r = f.run({{x, xv}});
  expect_values(r[0], A{1, 1}, 0, "argmax rows: first of the tied 7s");
  expect_values(r[1], A{3, 2}, 0, "argmin rows: first of the tied 1s");
  expect_values(r[2], A{0, 1, 0, 1}, 0, "argmax columns");
  expect_values(r[3], A{{1, 0, 1, 0}}, 0, "argmin columns, keepdims");
  expect_values(r[4], A(5), 0, "argmax flattened");
  expect_values(r[5], A(3), 0, "argmin flattened");
  expect_values(r[6], shaped<double>({1, 1}, {5}), 0, "argmax flattened, keepdims");
  // A NaN counts as the extreme for both, as in PyTorch.
  xt::xarray<T> nv = {{3, nan, 9, nan}, {1, 2, 3, 4}};
  const auto& rn = f.run({{x, nv}});
  expect_values(rn[0], A{1, 3}, 0, "argmax with NaN");
  expect_values(rn[1], A{1, 0}, 0, "argmin with NaN");
  // Random matrices against loops, all ranks of output.
  std::mt19937 gen(8);
  auto rv = rnd<T>({2, 4}, gen);
  const auto& rr = f.run({{x, rv}});
  expect_values(rr[0], reduce2d(to_double(rv), 1, ref_argmax), 0, "argmax loops");
  expect_values(rr[2], reduce2d(to_double(rv), 0, ref_argmax), 0, "argmax columns loops");
  expect_values(rr[1], reduce2d(to_double(rv), 1, ref_argmin), 0, "argmin loops");
  expect_values(rr[5], reduce2d(to_double(rv), -1, ref_argmin), 0, "argmin all loops");
}

TYPED_TEST(OpsMath, MinMatchesNegatedMax) {
  using T = TypeParam;
  std::mt19937 gen(9);
  Graph<T> g;
  auto x = g.input("x", {3, 4, 2});
  auto xv = rnd<T>({3, 4, 2}, gen);
  auto f = xgrad::compile(
      {xgrad::min(x, {0, 2}), -xgrad::max(-x, {0, 2}), xgrad::min(x), -xgrad::max(-x)});
  const auto& r = f.run({{x, xv}});
  expect_values(r[0], to_double(r[1]), 0, "axes");
  expect_values(r[2], to_double(r[3]), 0, "all");
}

TYPED_TEST(OpsMath, VarStdNeedMoreElementsThanTheCorrection) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {kOpen, 1});
  // Known: one element per output with the default correction 1.
  expect_error<xgrad::ValueError>([&] { xgrad::var(x, {1}); }, {"var", "correction 1", "(?, 1)"});
  expect_error<xgrad::ValueError>([&] { xgrad::std(x, {1}, false, 3); }, {"std", "correction 3"});
  expect_error<xgrad::ValueError>([&] { xgrad::var(x, {0}, false, -1); }, {"var", "negative"});
  EXPECT_NO_THROW(xgrad::var(x, {1}, false, 0));
  // Open: checked when it runs.
  auto f = xgrad::compile({xgrad::var(x, {0})});
  EXPECT_NO_THROW(f.run({{x, shaped<T>({2, 1}, {1, 2})}}));
  expect_error<xgrad::ValueError>(
      [&] {
        f.run({{x, shaped<T>({1, 1}, {1})}});
      },
      {"var", "correction 1"});
}

TYPED_TEST(OpsMath, BadAxesNameTheOpAndShape) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("feat", {2, 3});
  using Builder = std::function<Expr<T>(std::vector<Dim>)>;
  const std::vector<std::pair<std::string, Builder>> ops = {
      {"min", [&](std::vector<Dim> a) { return xgrad::min(x, a); }},
      {"prod", [&](std::vector<Dim> a) { return xgrad::prod(x, a); }},
      {"logsumexp", [&](std::vector<Dim> a) { return xgrad::logsumexp(x, a); }},
      {"var", [&](std::vector<Dim> a) { return xgrad::var(x, a); }},
      {"std", [&](std::vector<Dim> a) { return xgrad::std(x, a); }},
      {"argmax", [&](std::vector<Dim> a) { return xgrad::argmax(x, a); }},
      {"argmin", [&](std::vector<Dim> a) { return xgrad::argmin(x, a); }},
  };
  for (const auto& entry : ops) {
    const auto& name = entry.first;  // not bound: captured below (Clang 14)
    const auto& op = entry.second;
    SCOPED_TRACE(name);
    expect_error<xgrad::ShapeError>([&] { op({2}); }, {name, "axis 2", "feat", "(2, 3)"});
    expect_error<xgrad::ShapeError>([&] { op({-3}); }, {name, "feat"});
    expect_error<xgrad::ShapeError>([&] { op({1, 1}); }, {name, "repeated"});
  }
  expect_error<xgrad::ShapeError>(
      [&] {
        xgrad::argmax(x, {0, 1});
      },
      {"argmax", "one axis", "(0, 1)", "feat", "(2, 3)"});
  expect_error<xgrad::ShapeError>([&] { xgrad::argmin(x, {0, 1}); }, {"argmin", "one axis"});
  // An empty axis has no extreme.
  auto e = g.input("empty", {0, 3});
  expect_error<xgrad::ShapeError>([&] { xgrad::argmax(e, {0}); }, {"argmax", "empty"});
  expect_error<xgrad::ShapeError>([&] { xgrad::min(e, {0}); }, {"min", "empty"});
}

TYPED_TEST(OpsMath, PrintedForms) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {2, 3});
  auto c = g.input("c", {2, 3});
  EXPECT_EQ(xgrad::to_string(xgrad::erf(x)), "erf(x)");
  EXPECT_EQ(xgrad::to_string(xgrad::log1p(x)), "log1p(x)");
  EXPECT_EQ(xgrad::to_string(xgrad::expm1(x)), "expm1(x)");
  EXPECT_EQ(xgrad::to_string(xgrad::gelu(x)), "gelu(x)");
  EXPECT_EQ(xgrad::to_string(xgrad::gelu(x, xgrad::GeluApproximate::tanh)), "gelu(x, tanh)");
  EXPECT_EQ(xgrad::to_string(xgrad::stop_gradient(x) * x), "stop_gradient(x)*x");
  EXPECT_EQ(xgrad::to_string(xgrad::where(c, x, -x)), "where(c, x, -x)");
  EXPECT_EQ(xgrad::to_string(xgrad::min(x, {1})), "min(x, axes=(1,))");
  EXPECT_EQ(xgrad::to_string(xgrad::prod(x)), "prod(x)");
  EXPECT_EQ(xgrad::to_string(xgrad::logsumexp(x, {-1}, true)), "logsumexp(x, axes=(1,), keepdims)");
  EXPECT_EQ(xgrad::to_string(xgrad::var(x, {0}, false, 0)), "var(x, axes=(0,), correction=0)");
  EXPECT_EQ(xgrad::to_string(xgrad::std(x)), "std(x)");
  EXPECT_EQ(xgrad::to_string(xgrad::argmax(x, {1})), "argmax(x, axis=1)");
  EXPECT_EQ(xgrad::to_string(xgrad::argmin(x, {}, true)), "argmin(x, keepdims)");
  // Drawings show the gelu form.
  EXPECT_TRUE(xgrad_test::contains(xgrad::to_dot(xgrad::gelu(x, xgrad::GeluApproximate::tanh)),
                                   "gelu(tanh)"));
}

// ------------------------------------------------------------------ reductions: gradients

/// Central differences for f over leaves of the given values, then second order.
void check_reduction(const std::string& what, const std::function<E(E)>& f, A xv,
                     bool second = true, const xgrad::Shape& decl = {}) {
  G g;
  Sh s = shape_of(xv);
  E x = decl.empty() ? g.parameter("x", xv) : g.input("x", decl);
  std::vector<xgrad::Feed<double>> feeds;
  if (!decl.empty()) feeds.push_back({x, xv});
  expect_grads_ok(f(x), {x}, feeds, what);
  if (second) expect_second_order_ok(f(x), {x}, feeds, {s}, what);
}

TEST(OpsMathGrad, ReductionsCentralDifferences) {
  using F = std::function<E(E)>;
  struct Case {
    std::string name;
    std::function<E(E, std::vector<Dim>, bool)> f;
    double lo, hi;
  };
  const std::vector<Case> cases = {
      {"min", [](E x, std::vector<Dim> a, bool k) { return xgrad::min(x, a, k); }, -1, 1},
      {"prod", [](E x, std::vector<Dim> a, bool k) { return xgrad::prod(x, a, k); }, -1.5, 1.5},
      {"logsumexp", [](E x, std::vector<Dim> a, bool k) { return xgrad::logsumexp(x, a, k); }, -2,
       2},
      {"var", [](E x, std::vector<Dim> a, bool k) { return xgrad::var(x, a, k); }, -1, 1},
      {"var 0", [](E x, std::vector<Dim> a, bool k) { return xgrad::var(x, a, k, 0); }, -1, 1},
      {"std", [](E x, std::vector<Dim> a, bool k) { return xgrad::std(x, a, k); }, -1, 1},
      {"std 2", [](E x, std::vector<Dim> a, bool k) { return xgrad::std(x, a, k, 2); }, -1, 1},
  };
  std::mt19937 gen(31);
  for (const Case& c : cases) {
    for (const std::vector<Dim>& axes : {std::vector<Dim>{}, {0}, {1}, {0, 2}, {-1}}) {
      for (bool keep : {false, true}) {
        const std::string what = c.name + " axes " + xgrad::shape_str(axes) + (keep ? " keep" : "");
        check_reduction(
            what, [&](E x) { return c.f(x, axes, keep); }, rnd<double>({3, 4, 3}, gen, c.lo, c.hi),
            keep);
      }
    }
    // An open batch, reduced over it and beside it.
    check_reduction(c.name + " open batch", F([&](E x) { return c.f(x, {0}, false); }),
                    rnd<double>({5, 3}, gen, c.lo, c.hi), true, {kOpen, 3});
    check_reduction(c.name + " open batch rows", F([&](E x) { return c.f(x, {1}, true); }),
                    rnd<double>({5, 3}, gen, c.lo, c.hi), true, {kOpen, 3});
  }
}

TEST(OpsMathGrad, MinTiesShareTheGradient) {
  G g;
  E x = g.parameter("x", A{{2, 1, 1}, {0, 5, 3}});
  auto r = eval_grads(xgrad::sum(xgrad::min(x, {1})), {x});
  expect_values(r[0], A{{0, 0.5, 0.5}, {1, 0, 0}}, 1e-15, "min'");
}

TEST(OpsMathGrad, ProdWithZerosByHand) {
  G g;
  // Rows: no zero, one zero, two zeros.
  E x = g.parameter("x", A{{2, 3, 4, 5}, {2, 0, 3, 5}, {0, 2, 0, 3}});
  auto r = eval_grads(xgrad::sum(xgrad::prod(x, {1})), {x});
  expect_values(r[0], A{{60, 40, 30, 24}, {0, 30, 0, 0}, {0, 0, 0, 0}}, 1e-13, "prod'");
  // Over all elements: one zero gives the product of the others there.
  E y = g.parameter("y", A{{1.5, -2}, {0, 4}});
  expect_values(eval_grads(xgrad::prod(y), {y})[0], A{{0, 0}, {-12, 0}}, 1e-15, "prod' all");
  // prod is linear in each element, so central differences are exact at zeros too.
  check_reduction(
      "prod one zero", [](E v) { return xgrad::prod(v, {1}); }, A{{0.5, 0, -1.5}, {2, 0.7, 0}});
  check_reduction(
      "prod two zeros", [](E v) { return xgrad::prod(v, {1}); },
      A{{0.5, 0, 0, 1.5}, {2, 0.7, 1.1, 0.3}}, false);
  // Second derivatives from one zero are exact: for z = (0, 3, 2) the Hessian has
  // H01 = 2, H02 = 3, H12 = 0, so d/dz sum(grad) = (5, 2, 3).
  E z = g.parameter("z", A{0, 3, 2});
  E dz = xgrad::grad(xgrad::prod(z), {z})[0];
  expect_values(eval_grads(xgrad::sum(dz), {z})[0], A{5, 2, 3}, 1e-15, "prod'' one zero");
  // Between two zeros of a group the mixed derivative is taken as 0 (documented): for
  // (0, 0, 2) the exact H01 would be 2.
  E u = g.parameter("u", A{0, 0, 2});
  E du = xgrad::grad(xgrad::prod(u), {u})[0];
  expect_values(eval_grads(xgrad::sum(du), {u})[0], A{0, 0, 0}, 0, "prod'' two zeros");
}

TEST(OpsMathGrad, StdAtAConstantRowIsZeroNotNaN) {
  G g;
  E x = g.parameter("x", A{{3, 3, 3}, {1, 2, 4}});
  auto r = eval_grads(xgrad::sum(xgrad::std(x, {1})), {x});
  // Row 0: std is 0, its gradient taken as 0. Row 1: (x - mean) / ((n - 1) std).
  const double m = 7.0 / 3,
               s = std::sqrt(((1 - m) * (1 - m) + (2 - m) * (2 - m) + (4 - m) * (4 - m)) / 2);
  expect_values(r[0], A{{0, 0, 0}, {(1 - m) / (2 * s), (2 - m) / (2 * s), (4 - m) / (2 * s)}},
                1e-15, "std'");
  // var at a constant row: 0 as well, from 2 (x - mean) / (n - 1).
  expect_values(eval_grads(xgrad::sum(xgrad::var(x, {1})), {x})[0],
                A{{0, 0, 0}, {(1 - m), (2 - m), (4 - m)}}, 1e-15, "var'");
}

TEST(OpsMathGrad, ArgmaxGivesNoGradient) {
  G g;
  E x = g.parameter("x", A{{1, 5, 2}, {7, 0, 3}});
  auto r =
      eval_grads(xgrad::sum(xgrad::argmax(x, {1}, true) * x) + xgrad::sum(xgrad::argmin(x)), {x});
  // Only the explicit factor x contributes: d/dx argmax(x) * x = argmax(x) (broadcast).
  expect_values(r[0], A{{1, 1, 1}, {0, 0, 0}}, 0, "argmax is a constant to autodiff");
}

}  // namespace
