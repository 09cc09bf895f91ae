// Helpers shared by the op definitions: op singletons and the one way to add a node of a
// built-in op, shape rules of broadcasting and axes, gradient helpers. The loops kernels
// are built from are in src/kernels/loops.hpp, attribute accessors in attrs.hpp.
// Internal to src/.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/loops.hpp"
#include "attrs.hpp"
#include "xgrad/ops.hpp"

namespace xgrad::detail {

/// The one instance of an op class; nodes point at it. Constant-initialised (op classes
/// hold no state), so no call checks a guard: builders ask for it on every node.
template <class O>
inline constexpr O kInstance{};
template <class O>
constexpr const O& instance() {
  return kInstance<O>;
}

/// Graph both handles belong to, or a GraphError naming the op and both nodes.
template <class T>
Graph<T>& same_graph(std::string_view op, Expr<T> a, Expr<T> b) {
  if (&a.graph() != &b.graph()) {
    throw GraphError(std::string(op) + ": operands belong to different graphs: " +
                     a.graph().describe(a.id()) + " and " + b.graph().describe(b.id()));
  }
  return a.graph();
}

/// GraphError naming the op unless operand k is a valid handle (a default-constructed
/// Expr, such as a gradient that does not exist, is not).
template <class T>
void check_operand(std::string_view op, const Expr<T>& x, std::size_t k) {
  if (!x.valid()) x.graph(std::string(op) + " (operand " + std::to_string(k) + ")");
}

/// Adds a node of the built-in op O (an Op<T>) over operands of one graph; the graph then
/// simplifies, folds or merges it. Every builder of src/ops/ goes through here.
template <class O, class T>
Expr<T> make(std::span<const Expr<T>> xs, Attrs a = {}) {
  const O& op = instance<O>();
  // Operand ids on the stack for the usual one to three operands.
  std::array<NodeId, 4> few;
  std::vector<NodeId> many;
  std::span<NodeId> ids;
  if (xs.size() <= few.size()) {
    ids = std::span<NodeId>(few.data(), xs.size());
  } else {
    many.resize(xs.size());
    ids = many;
  }
  for (std::size_t i = 0; i < xs.size(); ++i) {
    check_operand(op.name(), xs[i], i);
    if (i && &xs[i].graph() != &xs[0].graph()) same_graph(op.name(), xs[0], xs[i]);  // throws
    ids[i] = xs[i].id();
  }
  return xs[0].graph().apply(op, std::span<const NodeId>(ids), std::move(a));
}
/// make() over a list of operands: make<ReshapeOp<T>>({x}, attrs).
template <class O, class T>
Expr<T> make(std::initializer_list<Expr<T>> xs, Attrs a = {}) {
  return make<O, T>(std::span<const Expr<T>>(xs.begin(), xs.size()), std::move(a));
}

/// True for a node of the built-in op O.
template <class O, class T>
bool is_node_of(const Node<T>& n) {
  return n.kind == NodeKind::op && n.op == &instance<O>();
}

/// True for a node of broadcast_like(x, ref), the broadcast to another node's run-time
/// shape (src/ops/shape.cpp).
template <class T>
bool is_broadcast_like(const Node<T>& n);

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

// Explicit instantiations for float and double of a row X(name, (parameters)) of an op
// table (include/xgrad/ops/table.hpp); the function type comes from the declaration, so
// the parameters are not written twice.
#define XGRAD_DETAIL_INSTANTIATE(name, params) \
  template decltype(name<float>) name<float>;  \
  template decltype(name<double>) name<double>;
