// The lecture note's two worked problems as compiled graphs, shared by the tests that
// train on them (test_function, test_optim, test_optim_stopping).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>
#include <xgrad/xgrad.hpp>

namespace xgrad_test {

/// The note's second example f(x, y) = x^2 + 2 y^2 from (x0, y0); fn returns {f, df/dx,
/// df/dy}.
struct SeedBowl {
  SeedBowl(double x0, double y0)
      : x(g.parameter("x", xt::xarray<double>(x0))),
        y(g.parameter("y", xt::xarray<double>(y0))),
        f(xgrad::square(x) + 2.0 * xgrad::square(y)),
        fn(compile_with_gradient(f, {x, y})) {}
  xgrad::Graph<double> g;
  xgrad::Expr<double> x, y, f;
  xgrad::Function<double> fn;

 private:
  static xgrad::Function<double> compile_with_gradient(xgrad::Expr<double> f,
                                                       std::vector<xgrad::Expr<double>> xs) {
    auto gr = xgrad::grad(f, xs);
    return xgrad::compile({f, gr[0], gr[1]});
  }
};

/// The note's linear regression: X with a ones column, y = X @ [1, 2] + 3, loss
/// sum((y - X beta)^2) / 2 so that grad = -X^T (y - X beta), beta0 = [10.1, 15.1, -6.5];
/// f returns {loss, gradient}.
struct SeedRegression {
  xt::xarray<double> X = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
  xt::xarray<double> y = {6, 8, 9, 11};
  xt::xarray<double> beta0 = {10.1, 15.1, -6.5};
  xgrad::Graph<double> g;
  xgrad::Expr<double> Xi = g.input("X", {xgrad::open, 3});
  xgrad::Expr<double> yi = g.input("y", {xgrad::open});
  xgrad::Expr<double> beta = g.parameter("beta", beta0);
  xgrad::Expr<double> loss = xgrad::sum(xgrad::square(yi - xgrad::matmul(Xi, beta))) / 2.0;
  xgrad::Function<double> f = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});

  /// One evaluation of loss and gradient at the current beta.
  const std::vector<xt::xarray<double>>& run() { return f.run({{Xi, X}, {yi, y}}); }
  /// Largest distance of a coordinate of beta from the solution [1, 2, 3].
  double error() {
    const auto& b = g.value(beta);
    return std::max({std::abs(b(0) - 1), std::abs(b(1) - 2), std::abs(b(2) - 3)});
  }
};

}  // namespace xgrad_test
