// Random values and gradient checks against central differences shared by the op test
// files that check leaves given as a list (parameters, and inputs bound in feeds).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

namespace xgrad_test {

/// Uniform values in [lo, hi) of the given shape.
template <class T = double>
xt::xarray<T> uniform_values(const std::vector<std::size_t>& shape, std::mt19937& gen,
                             double lo = -1.5, double hi = 1.5) {
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  std::uniform_real_distribution<double> u(lo, hi);
  for (T& e : a) e = static_cast<T>(u(gen));
  return a;
}

/// Autodiff gradients of y with respect to xs match central differences.
inline void expect_grads_ok(xgrad::Expr<double> y, const std::vector<xgrad::Expr<double>>& xs,
                            const std::vector<xgrad::Feed<double>>& feeds,
                            const std::string& what) {
  xgrad::GradCheckResult r = xgrad::check_gradients(y, xs, feeds);
  EXPECT_TRUE(r.ok) << what << ": " << r.summary();
  EXPECT_GT(r.checked, 0u) << what;
}

/// Second derivatives: the gradient of sum_k sum(g_k * v_k), g_k = d sum(sin(y)) / dx_k
/// with random v_k of the run-time shapes of xs, against central differences of the
/// first-order gradient graph (sin keeps the Hessian nonzero for linear ops).
inline void expect_second_order_ok(xgrad::Expr<double> y,
                                   const std::vector<xgrad::Expr<double>>& xs,
                                   const std::vector<xgrad::Feed<double>>& feeds,
                                   const std::vector<std::vector<std::size_t>>& shapes,
                                   std::mt19937& gen, const std::string& what) {
  std::vector<xgrad::Expr<double>> gs = xgrad::grad(xgrad::sum(xgrad::sin(y)), xs);
  xgrad::Expr<double> obj;
  for (std::size_t k = 0; k < gs.size(); ++k) {
    xgrad::Expr<double> t = xgrad::sum(gs[k] * y.graph().constant(uniform_values(shapes[k], gen)));
    obj = obj ? obj + t : t;
  }
  xgrad::GradCheckResult r = xgrad::check_gradients(obj, xs, feeds);
  EXPECT_TRUE(r.ok) << what << " (second order): " << r.summary();
}

}  // namespace xgrad_test
