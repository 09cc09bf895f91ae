// Derivatives beyond the gradient, all composed from grad()'s vector-Jacobian products, so
// each is a node of the same graph that compiles, prints and differentiates again.
#include <algorithm>
#include <string>
#include <vector>

#include "xgrad/autodiff.hpp"
#include "xgrad/ops.hpp"

namespace xgrad {
namespace {

/// The number of elements of e's shape; a ShapeError naming `what` and the node when a
/// dimension is open.
template <class T>
std::size_t known_size(Expr<T> e, const char* what, const char* role) {
  const Shape& s = e.shape();
  if (std::find(s.begin(), s.end(), open) != s.end()) {
    throw ShapeError(std::string(what) + ": " + role + " " + e.graph().describe(e.id()) +
                     " has an open dimension; a Jacobian needs fully known shapes");
  }
  return shape_size(s);
}

template <class T>
void same_graph(Expr<T> a, Expr<T> b, const char* what) {
  if (&a.graph() != &b.graph()) {
    throw GraphError(std::string(what) + ": " + b.graph().describe(b.id()) +
                     " belongs to another graph than " + a.graph().describe(a.id()));
  }
}

template <class T>
void same_shape(Expr<T> x, Expr<T> v, const char* what) {
  if (v.shape() != x.shape()) {
    throw ShapeError(std::string(what) + ": " + v.graph().describe(v.id()) +
                     " does not have the shape of " + x.graph().describe(x.id()));
  }
}

}  // namespace

template <class T>
Expr<T> jacobian(Expr<T> y, Expr<T> x) {
  same_graph(y, x, "jacobian");
  const std::size_t m = known_size(y, "jacobian", "output");
  const std::size_t k = known_size(x, "jacobian", "variable");
  Graph<T>& g = y.graph();
  std::vector<std::size_t> ys(y.shape().begin(), y.shape().end());
  const GradOptions opts{.allow_unconnected = true};
  std::vector<Expr<T>> rows;
  rows.reserve(m);
  for (std::size_t i = 0; i < m; ++i) {
    xt::xarray<T> e = xt::zeros<T>(ys);
    e.flat(i) = T(1);
    // The unit vector e_i, named as the note writes it, so printed Jacobians read
    // X^T @ (X @ e0) rather than X^T @ (X @ const(3,)).
    Expr<T> unit = g.constant(std::move(e), "e" + std::to_string(i));
    Expr<T> row = grad(y, {x}, unit, opts)[0];
    rows.push_back(reshape(row, {1, static_cast<Dim>(k)}));
  }
  Expr<T> flat = m == 1 ? rows[0] : concatenate(rows, 0);
  Shape out = y.shape();
  out.insert(out.end(), x.shape().begin(), x.shape().end());
  return reshape(flat, out);
}

template <class T>
Expr<T> hessian(Expr<T> f, Expr<T> x) {
  same_graph(f, x, "hessian");
  return jacobian(grad(f, {x}, GradOptions{.allow_unconnected = true})[0], x);
}

template <class T>
Expr<T> hvp(Expr<T> f, Expr<T> x, Expr<T> v) {
  same_graph(f, x, "hvp");
  same_graph(f, v, "hvp");
  same_shape(x, v, "hvp");
  const GradOptions opts{.allow_unconnected = true};
  Expr<T> gx = grad(f, {x}, opts)[0];
  return grad(sum(gx * v), {x}, opts)[0];
}

template <class T>
Expr<T> jvp(Expr<T> y, Expr<T> x, Expr<T> u) {
  same_graph(y, x, "jvp");
  same_graph(y, u, "jvp");
  same_shape(x, u, "jvp");
  const Shape& s = y.shape();
  if (std::find(s.begin(), s.end(), open) != s.end()) {
    throw ShapeError("jvp: output " + y.graph().describe(y.id()) +
                     " has an open dimension; the dummy cotangent needs a known shape");
  }
  Graph<T>& g = y.graph();
  std::vector<std::size_t> ys(s.begin(), s.end());
  // A parameter, not a constant: a zero constant would fold J^T w away.
  Expr<T> w = g.parameter("jvp_w", xt::xarray<T>(xt::zeros<T>(ys)));
  const GradOptions opts{.allow_unconnected = true};
  Expr<T> jtw = grad(y, {x}, w, opts)[0];  // J^T w, linear in w
  return grad(jtw, {w}, u, opts)[0];       // d/dw <u, J^T w> = J u
}

template Expr<float> jacobian(Expr<float>, Expr<float>);
template Expr<double> jacobian(Expr<double>, Expr<double>);
template Expr<float> hessian(Expr<float>, Expr<float>);
template Expr<double> hessian(Expr<double>, Expr<double>);
template Expr<float> hvp(Expr<float>, Expr<float>, Expr<float>);
template Expr<double> hvp(Expr<double>, Expr<double>, Expr<double>);
template Expr<float> jvp(Expr<float>, Expr<float>, Expr<float>);
template Expr<double> jvp(Expr<double>, Expr<double>, Expr<double>);

}  // namespace xgrad
