/// @file autodiff.hpp
/// @brief Reverse-mode differentiation that returns gradients as new nodes of the graph,
/// and the derivatives built from it: Jacobians, Hessians, Hessian- and Jacobian-vector
/// products.
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

/// The Jacobian of y with respect to x as one node of shape y.shape() ++ x.shape():
/// element (i..., j...) is dy[i...]/dx[j...]. Built from one vector-Jacobian product per
/// element of y (a one-hot cotangent each), so it costs size(y) backward passes; y and x
/// need fully known shapes (ShapeError otherwise). An x that y does not depend on gives
/// zeros. Like every derivative here it compiles, prints, draws and differentiates again.
template <class T>
Expr<T> jacobian(Expr<T> y, Expr<T> x);

/// The Hessian of a scalar f with respect to x, shape x.shape() ++ x.shape(): the
/// Jacobian of the gradient, so one backward pass of the gradient per element of x.
template <class T>
Expr<T> hessian(Expr<T> f, Expr<T> x);

/// The Hessian-vector product H v of a scalar f, without forming H: the gradient of
/// sum(grad(f, x) * v), two backward passes whatever the size of x (what Hessian-free
/// optimisation needs). v must have x's shape; it may be any node (an input bound per run,
/// a parameter, an expression).
template <class T>
Expr<T> hvp(Expr<T> f, Expr<T> x, Expr<T> v);

/// The Jacobian-vector product J u (forward mode: how y moves when x moves along u), with
/// y of any shape and u of x's shape; the result has y's shape. Built by the double-VJP
/// construction: w -> J^T w is linear in a dummy cotangent w, so its vector-Jacobian
/// product with u is J u. The dummy is a zero parameter named "jvp_w" that the result does
/// not read numerically. docs/benchmarks.md compares its cost with forming J.
template <class T>
Expr<T> jvp(Expr<T> y, Expr<T> x, Expr<T> u);

extern template Expr<float> jacobian(Expr<float>, Expr<float>);
extern template Expr<double> jacobian(Expr<double>, Expr<double>);
extern template Expr<float> hessian(Expr<float>, Expr<float>);
extern template Expr<double> hessian(Expr<double>, Expr<double>);
extern template Expr<float> hvp(Expr<float>, Expr<float>, Expr<float>);
extern template Expr<double> hvp(Expr<double>, Expr<double>, Expr<double>);
extern template Expr<float> jvp(Expr<float>, Expr<float>, Expr<float>);
extern template Expr<double> jvp(Expr<double>, Expr<double>, Expr<double>);

}  // namespace xgrad
