/// @file gradcheck.hpp
/// @brief Central finite differences (the e_i definition) and a checker against autodiff.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "xgrad/function.hpp"

namespace xgrad {

/// Step and tolerances of a gradient check.
struct GradCheckOptions {
  double step = 1e-6;  ///< h in (f(x + h e_i) - f(x - h e_i)) / 2h.
  double atol = 1e-6;  ///< Absolute tolerance.
  double rtol = 1e-5;  ///< Relative tolerance: |a - n| <= atol + rtol * |n| passes.
};

/// Outcome of check_gradients(): the worst disagreement and where it occurred.
struct GradCheckResult {
  bool ok = true;               ///< Every element within tolerance.
  double max_abs_error = 0;     ///< Largest |analytic - numeric|.
  double max_rel_error = 0;     ///< Largest |analytic - numeric| / max(|numeric|, tiny).
  std::string worst_node;       ///< Node holding the worst element.
  std::size_t worst_index = 0;  ///< Flat index of the worst element.
  double worst_analytic = 0;    ///< Autodiff value there.
  double worst_numeric = 0;     ///< Finite-difference value there.
  std::size_t checked = 0;      ///< Number of elements compared.
  /// One line summarising the result.
  std::string summary() const;
};

/// Central finite-difference gradient of sum(y) with respect to x, element by element.
/// x must be a parameter, or an input bound in feeds.
template <class T>
xt::xarray<T> numeric_gradient(Expr<T> y, Expr<T> x, std::vector<Feed<T>> feeds = {},
                               double step = 1e-6);

/// Compares autodiff gradients with central differences for each x. A non-scalar y is
/// checked through sum(y * w) with a fixed pseudo-random w, which covers every row of
/// the Jacobian.
template <class T>
GradCheckResult check_gradients(Expr<T> y, const std::vector<Expr<T>>& xs,
                                std::vector<Feed<T>> feeds = {}, GradCheckOptions opts = {});

extern template xt::xarray<float> numeric_gradient(Expr<float>, Expr<float>,
                                                   std::vector<Feed<float>>, double);
extern template xt::xarray<double> numeric_gradient(Expr<double>, Expr<double>,
                                                    std::vector<Feed<double>>, double);
extern template GradCheckResult check_gradients(Expr<float>, const std::vector<Expr<float>>&,
                                                std::vector<Feed<float>>, GradCheckOptions);
extern template GradCheckResult check_gradients(Expr<double>, const std::vector<Expr<double>>&,
                                                std::vector<Feed<double>>, GradCheckOptions);

}  // namespace xgrad
