// Jacobians, Hessians, Hessian- and Jacobian-vector products: against hand values and
// central differences in double precision, and as nodes that compile, print, draw and
// differentiate again.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <xgrad/xgrad.hpp>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xrandom.hpp>

#include "seed_problems.hpp"
#include "test_util.hpp"

namespace {

using xgrad::Expr;
using xgrad::Graph;
using Arr = xt::xarray<double>;

/// The Jacobian of y with respect to the parameter x by central differences: column j
/// moves element j of x by +-h.
Arr numeric_jacobian(Expr<double> y, Expr<double> x, std::vector<xgrad::Feed<double>> feeds = {},
                     double h = 1e-5) {
  auto fn = xgrad::compile({y});
  Arr& xv = x.graph().value(x);
  const std::size_t m = xgrad::shape_size(y.shape()), k = xv.size();
  Arr jac = xt::zeros<double>({m, k});
  for (std::size_t j = 0; j < k; ++j) {
    const double x0 = xv.flat(j);
    xv.flat(j) = x0 + h;
    Arr up = fn.run(feeds)[0];
    xv.flat(j) = x0 - h;
    Arr down = fn.run(feeds)[0];
    xv.flat(j) = x0;
    for (std::size_t i = 0; i < m; ++i) jac(i, j) = (up.flat(i) - down.flat(i)) / (2 * h);
  }
  return jac;
}

double max_abs_diff(const Arr& a, const Arr& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d = std::max(d, std::abs(a.flat(i) - b.flat(i)));
  }
  return d;
}

TEST(Hessian, SeedBowlIsDiag2And4) {
  // The note's f(x, y) = x^2 + 2y^2, with its two scalar parameters as in the seed.
  xgrad_test::SeedBowl bowl(0.3, -1.2);
  auto hxx = xgrad::hessian(bowl.f, bowl.x);
  auto hyy = xgrad::hessian(bowl.f, bowl.y);
  auto hxy = xgrad::jacobian(xgrad::grad(bowl.f, {bowl.x})[0], bowl.y);
  EXPECT_EQ(hxx.shape(), xgrad::Shape{});
  auto fn_out = xgrad::compile({hxx, hyy, hxy});
  const auto& out = fn_out.run();
  EXPECT_DOUBLE_EQ(out[0](), 2.0);
  EXPECT_DOUBLE_EQ(out[1](), 4.0);
  EXPECT_DOUBLE_EQ(out[2](), 0.0);
  EXPECT_EQ(xgrad::to_string(hxx), "2");
  EXPECT_EQ(xgrad::to_string(hyy), "4");

  // The same bowl over one vector p = (x, y): the Hessian is diag(2, 4) as a (2, 2) node.
  Graph<double> g;
  auto p = g.parameter("p", Arr{0.3, -1.2});
  auto f = xgrad::sum(g.constant(Arr{1, 2}) * xgrad::square(p));
  auto h = xgrad::hessian(f, p);
  EXPECT_EQ(h.shape(), (xgrad::Shape{2, 2}));
  Arr expected = {{2, 0}, {0, 4}};
  EXPECT_EQ(xgrad::eval(h), expected);
  EXPECT_LT(max_abs_diff(xgrad::eval(h), numeric_jacobian(xgrad::grad(f, {p})[0], p)), 1e-8);
}

TEST(Hessian, SeedRegressionIsXtX) {
  // Half the sum of squares has Hessian X^T X; the MSE (2/n) X^T X; at any beta.
  xgrad_test::SeedRegression reg;
  const Arr XtX = xt::linalg::dot(xt::transpose(reg.X), reg.X);
  auto h = xgrad::hessian(reg.loss, reg.beta);
  auto mse = xgrad::mse(xgrad::matmul(reg.Xi, reg.beta), reg.yi);
  auto hm = xgrad::hessian(mse, reg.beta);
  auto fn = xgrad::compile({h, hm});
  const auto& out = fn.run({{reg.Xi, reg.X}, {reg.yi, reg.y}});
  EXPECT_LT(max_abs_diff(out[0], XtX), 1e-12) << out[0];
  EXPECT_LT(max_abs_diff(out[1], XtX * (2.0 / 4.0)), 1e-12) << out[1];
  auto gr = xgrad::grad(reg.loss, {reg.beta})[0];
  Arr num = numeric_jacobian(gr, reg.beta, {{reg.Xi, reg.X}, {reg.yi, reg.y}});
  EXPECT_LT(max_abs_diff(out[0], num), 1e-7);
}

TEST(Jacobian, SoftmaxIsDiagSMinusSST) {
  Graph<double> g;
  auto z = g.parameter("z", Arr{0.5, -1.0, 2.0, 0.25});
  auto s = xgrad::softmax(z);
  auto jac = xgrad::jacobian(s, z);
  EXPECT_EQ(jac.shape(), (xgrad::Shape{4, 4}));
  auto fn_out = xgrad::compile({s, jac});
  const auto& out = fn_out.run();
  const Arr sv = out[0];
  Arr expected = xt::diag(sv) - xt::linalg::outer(sv, sv);
  EXPECT_LT(max_abs_diff(out[1], expected), 1e-15);
  EXPECT_LT(max_abs_diff(out[1], numeric_jacobian(s, z)), 1e-9);
}

TEST(Jacobian, MatrixShapesAndUnconnected) {
  Graph<double> g;
  auto W = g.parameter("W", Arr{{1, 2, 3}, {4, 5, 6}});
  auto x = g.parameter("x", Arr{0.5, -1, 2});
  auto y = xgrad::tanh(xgrad::matmul(W, x));  // (2,)
  auto jw = xgrad::jacobian(y, W);
  EXPECT_EQ(jw.shape(), (xgrad::Shape{2, 2, 3}));
  EXPECT_LT(max_abs_diff(xgrad::eval(jw), numeric_jacobian(y, W)), 1e-9);
  auto jx = xgrad::jacobian(y, x);
  EXPECT_LT(max_abs_diff(xgrad::eval(jx), numeric_jacobian(y, x)), 1e-9);
  auto other = g.parameter("other", Arr{1, 2});
  EXPECT_EQ(xgrad::eval(xgrad::jacobian(y, other)), Arr(xt::zeros<double>({2, 2})));
}

TEST(Jvp, EqualsJacobianTimesU) {
  Graph<double> g;
  auto W = g.parameter("W", Arr{{1, 2, 3}, {4, 5, 6}});
  auto x = g.parameter("x", Arr{0.5, -1, 2});
  auto u = g.input("u", {3});
  auto y = xgrad::softmax(xgrad::tanh(xgrad::matmul(W, x)) * 2.0);
  auto jv = xgrad::jvp(y, x, u);
  EXPECT_EQ(jv.shape(), y.shape());
  auto jac = xgrad::jacobian(y, x);
  const Arr uv = {0.3, -0.7, 1.1};
  auto fn_out = xgrad::compile({jv, jac});
  const auto& out = fn_out.run({{u, uv}});
  EXPECT_LT(max_abs_diff(out[0], xt::linalg::dot(out[1], uv)), 1e-14);
  EXPECT_LT(max_abs_diff(out[0], xt::linalg::dot(numeric_jacobian(y, x), uv)), 1e-9);
  // Forward mode of a scalar output is the directional derivative grad . u.
  auto f = xgrad::sum(xgrad::square(x));
  EXPECT_NEAR(xgrad::eval(xgrad::jvp(f, x, u), {{u, uv}})(), 2 * (0.5 * 0.3 + 0.7 + 2 * 1.1),
              1e-14);
}

TEST(Hvp, EqualsHessianTimesV) {
  Graph<double> g;
  auto w = g.parameter("w", Arr{0.2, -0.4, 0.9});
  auto v = g.input("v", {3});
  auto f = xgrad::sum(xgrad::exp(w) * xgrad::sin(w)) + xgrad::square(xgrad::sum(w * w));
  auto hv = xgrad::hvp(f, w, v);
  auto h = xgrad::hessian(f, w);
  const Arr vv = {1.0, 0.5, -2.0};
  auto fn_out = xgrad::compile({hv, h});
  const auto& out = fn_out.run({{v, vv}});
  EXPECT_LT(max_abs_diff(out[0], xt::linalg::dot(out[1], vv)), 1e-12);
  EXPECT_LT(max_abs_diff(out[1], numeric_jacobian(xgrad::grad(f, {w})[0], w)), 1e-7);
}

TEST(Hessian, ThirdDerivativeOfAScalarFunction) {
  Graph<double> g;
  auto x = g.parameter("x", Arr(0.7));
  auto f = xgrad::pow(x, 4.0) + xgrad::sin(x);
  auto d2 = xgrad::hessian(f, x);      // 12 x^2 - sin x
  auto d3 = xgrad::jacobian(d2, x);    // 24 x - cos x
  auto d3b = xgrad::grad(d2, {x})[0];  // the same through grad
  auto fn_out = xgrad::compile({d2, d3, d3b});
  const auto& out = fn_out.run();
  EXPECT_NEAR(out[0](), 12 * 0.49 - std::sin(0.7), 1e-13);
  EXPECT_NEAR(out[1](), 24 * 0.7 - std::cos(0.7), 1e-13);
  EXPECT_NEAR(out[2](), out[1](), 1e-13);
  EXPECT_NEAR(out[1](), numeric_jacobian(d2, x)(0, 0), 1e-7);
  // And the Hessian of a vector function's gradient norm: third order in w.
  auto w = g.parameter("w", Arr{0.3, -0.2});
  auto q = xgrad::sum(xgrad::pow(w, 3.0));
  auto t = xgrad::jacobian(xgrad::hessian(q, w), w);  // d3/dw_i dw_j dw_k = 6 delta_ijk
  EXPECT_EQ(t.shape(), (xgrad::Shape{2, 2, 2}));
  Arr expected = xt::zeros<double>({2, 2, 2});
  expected(0, 0, 0) = 6;
  expected(1, 1, 1) = 6;
  EXPECT_LT(max_abs_diff(xgrad::eval(t), expected), 1e-13);
}

TEST(Hessian, PrintsAndDraws) {
  Graph<double> g;
  auto x = g.parameter("x", Arr(1.5));
  auto f = xgrad::pow(x, 3.0);
  auto h = xgrad::hessian(f, x);
  EXPECT_FALSE(xgrad::to_string(h).empty());
  EXPECT_TRUE(xgrad_test::contains(xgrad::to_dot(h), "digraph"));
  EXPECT_DOUBLE_EQ(xgrad::eval(h)(), 9.0);
  // Float graphs work too.
  Graph<float> gf;
  auto xf = gf.parameter("x", xt::xarray<float>{1.f, 2.f});
  auto hf = xgrad::hessian(xgrad::sum(xgrad::square(xf)), xf);
  EXPECT_EQ(xgrad::eval(hf), (xt::xarray<float>{{2, 0}, {0, 2}}));
}

TEST(HigherOrderErrors, OpenShapesAndMismatchedVectors) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto beta = g.parameter("beta", Arr{1, 2, 3});
  auto pred = xgrad::matmul(X, beta);  // (?,)
  try {
    (void)xgrad::jacobian(pred, beta);
    FAIL() << "no ShapeError";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(xgrad_test::contains(e.what(), "jacobian")) << e.what();
    EXPECT_TRUE(xgrad_test::contains(e.what(), "open")) << e.what();
  }
  auto f = xgrad::sum(xgrad::square(pred));
  auto v = g.input("v", {2});
  EXPECT_THROW((void)xgrad::hvp(f, beta, v), xgrad::ShapeError);
  EXPECT_THROW((void)xgrad::jvp(pred, beta, g.input("u", {3})), xgrad::ShapeError);
  EXPECT_THROW((void)xgrad::jvp(xgrad::sum(pred), beta, v), xgrad::ShapeError);
  Graph<double> other;
  auto z = other.parameter("z", Arr{1, 2, 3});
  EXPECT_THROW((void)xgrad::jacobian(f, z), xgrad::GraphError);
}

}  // namespace
