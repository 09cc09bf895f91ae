/// @file autodiff.hpp
/// @brief Reverse-mode differentiation that returns gradients as new nodes of the graph.
#pragma once

#include <vector>

#include "xgrad/graph.hpp"

namespace xgrad {

/// Options of grad().
struct GradOptions {
  /// When true, a node y does not depend on gets a zero gradient of its shape instead of
  /// a GraphError.
  bool allow_unconnected = false;
};

/// Gradients of a scalar y with respect to each x (parameters, inputs or intermediate
/// nodes), built as nodes of the same graph: they can be compiled, printed, drawn and
/// differentiated again. Walks the nodes between xs and y in reverse topological order.
template <class T>
std::vector<Expr<T>> grad(Expr<T> y, const std::vector<Expr<T>>& xs, GradOptions opts = {});

/// Vector-Jacobian products: the gradient of sum(y * cotangent) for a y of any shape;
/// cotangent must have y's shape.
template <class T>
std::vector<Expr<T>> grad(Expr<T> y, const std::vector<Expr<T>>& xs, Expr<T> cotangent,
                          GradOptions opts = {});

extern template std::vector<Expr<float>> grad(Expr<float>, const std::vector<Expr<float>>&,
                                              GradOptions);
extern template std::vector<Expr<double>> grad(Expr<double>, const std::vector<Expr<double>>&,
                                               GradOptions);
extern template std::vector<Expr<float>> grad(Expr<float>, const std::vector<Expr<float>>&,
                                              Expr<float>, GradOptions);
extern template std::vector<Expr<double>> grad(Expr<double>, const std::vector<Expr<double>>&,
                                               Expr<double>, GradOptions);

}  // namespace xgrad
