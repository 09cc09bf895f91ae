// Helpers shared by the op definitions: op singletons, shape rules of broadcasting and
// axes, gradient helpers. The loops kernels are built from are in src/kernels/loops.hpp.
// Internal to src/.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "../kernels/loops.hpp"
#include "xgrad/ops.hpp"

namespace xgrad::detail {

/// The one instance of an op class; nodes point at it.
template <class O>
const O& instance() {
  static const O op;
  return op;
}

/// Graph both handles belong to, or a GraphError naming the op.
template <class T>
Graph<T>& same_graph(std::string_view op, Expr<T> a, Expr<T> b) {
  if (&a.graph() != &b.graph()) {
    throw GraphError(std::string(op) + ": operands belong to different graphs");
  }
  return a.graph();
}

/// Input handle i of a node, for gradient rules.
template <class T>
Expr<T> arg(Expr<T> out, const Node<T>& node, std::size_t i) {
  return out.graph().expr(node.inputs[i]);
}

/// NumPy broadcast of two static shapes; open dimensions broadcast against anything.
inline Shape broadcast_shapes(std::span<const Dim> a, std::span<const Dim> b) {
  std::size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (std::size_t i = 0; i < r; ++i) {
    Dim da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    Dim db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else if (da == open) {
      out[i] = db;
    } else if (db == open) {
      out[i] = da;
    } else {
      throw std::invalid_argument("cannot broadcast " + shape_str(a) + " with " + shape_str(b) +
                                  " (dimension " + std::to_string(i) + ": " + std::to_string(da) +
                                  " vs " + std::to_string(db) + ")");
    }
  }
  return out;
}

/// Axis in [0, rank), accepting negative axes counted from the end.
inline std::size_t norm_axis(Dim axis, std::size_t rank) {
  Dim r = static_cast<Dim>(rank);
  if (axis < -r || axis >= r) {
    throw std::invalid_argument("axis " + std::to_string(axis) + " is out of range for rank " +
                                std::to_string(rank));
  }
  return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

/// Sorted, unique, non-negative axes; empty means all axes.
inline std::vector<Dim> norm_axes(const std::vector<Dim>& axes, std::size_t rank) {
  std::vector<Dim> out;
  if (axes.empty()) {
    for (std::size_t i = 0; i < rank; ++i) out.push_back(static_cast<Dim>(i));
    return out;
  }
  for (Dim a : axes) out.push_back(static_cast<Dim>(norm_axis(a, rank)));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) {
    throw std::invalid_argument("repeated axis in " + shape_str(axes));
  }
  return out;
}

/// True when the static shapes are identical and fully known, so no reduction is needed
/// to bring a gradient back to the operand.
inline bool same_known(std::span<const Dim> a, std::span<const Dim> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end()) &&
         std::none_of(a.begin(), a.end(), [](Dim d) { return d == open; });
}

/// Reduces a gradient to the shape of the operand it flows to (the adjoint of
/// broadcasting); a no-op when the shapes are statically equal.
template <class T>
Expr<T> unbroadcast(Expr<T> g, Expr<T> x) {
  return sum_to_like(g, x);
}

/// Runtime check used by kernels whose operand shapes were open at build time.
inline void require(bool ok, std::string_view op, const std::string& what) {
  if (!ok) throw ShapeError(std::string(op) + ": " + what);
}

}  // namespace xgrad::detail
