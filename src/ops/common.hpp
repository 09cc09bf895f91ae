// Helpers shared by the op definitions: op singletons, broadcasting, axis handling and
// the strided loops the kernels are built from. Internal to src/.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

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

/// Adds a node for op O over the given operands.
template <template <class> class O, class T, class... E>
Expr<T> make(Attrs attrs, Expr<T> first, E... rest) {
  Graph<T>& g = first.graph();
  (same_graph<T>(instance<O<T>>().name(), first, rest), ...);
  return g.apply(instance<O<T>>(), {first.id(), rest.id()...}, std::move(attrs));
}

/// Input handle i of a node, for gradient rules.
template <class T>
Expr<T> arg(Expr<T> out, const Node<T>& node, std::size_t i) {
  return out.graph().expr(node.inputs[i]);
}

inline std::string dims_str(std::span<const Dim> s) { return shape_str(s); }

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

/// Element strides of `in` when iterated over `out` (0 on broadcast axes); both shapes
/// are right-aligned as in NumPy.
inline void broadcast_strides(std::span<const Dim> in, std::span<const Dim> out,
                              std::ptrdiff_t* st) {
  std::size_t r = out.size(), k = in.size();
  std::ptrdiff_t s = 1;
  for (std::size_t i = r; i-- > 0;) {
    if (i + k < r) {
      st[i] = 0;
      continue;
    }
    Dim d = in[i + k - r];
    st[i] = (d == 1 && out[i] != 1) ? 0 : s;
    s *= d;
  }
}

/// Calls body(offsets...) for every element of `shape` in row-major order, where each
/// offset walks its own strides; the innermost axis is a tight loop the compiler can
/// vectorise.
template <std::size_t N, class F>
void strided_loop(std::span<const Dim> shape, const std::array<const std::ptrdiff_t*, N>& st,
                  F&& inner) {
  std::size_t r = shape.size();
  std::size_t total = shape_size(shape);
  if (total == 0) return;
  if (r == 0) {
    std::array<std::ptrdiff_t, N> off{};
    std::array<std::ptrdiff_t, N> step{};
    inner(off, step, std::size_t{1});
    return;
  }
  std::size_t n_inner = static_cast<std::size_t>(shape[r - 1]);
  std::array<std::ptrdiff_t, N> step{};
  for (std::size_t k = 0; k < N; ++k) step[k] = st[k][r - 1];
  std::array<std::size_t, max_rank> idx{};
  std::array<std::ptrdiff_t, N> off{};
  for (std::size_t o = 0, outer = total / n_inner; o < outer; ++o) {
    inner(off, step, n_inner);
    for (std::size_t d = r - 1; d-- > 0;) {
      ++idx[d];
      for (std::size_t k = 0; k < N; ++k) off[k] += st[k][d];
      if (idx[d] < static_cast<std::size_t>(shape[d])) break;
      for (std::size_t k = 0; k < N; ++k) off[k] -= st[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

/// out = f(a, b) with NumPy broadcasting; fast paths for equal shapes and scalars.
template <class T, class F>
void binary_map(ConstTensor<T> a, ConstTensor<T> b, Tensor<T> out, F f) {
  T* o = out.data;
  const T* pa = a.data;
  const T* pb = b.data;
  if (a.size == out.size && b.size == out.size) {
    for (std::size_t i = 0; i < out.size; ++i) o[i] = f(pa[i], pb[i]);
    return;
  }
  if (b.size == 1 && a.size == out.size) {
    T bv = pb[0];
    for (std::size_t i = 0; i < out.size; ++i) o[i] = f(pa[i], bv);
    return;
  }
  if (a.size == 1 && b.size == out.size) {
    T av = pa[0];
    for (std::size_t i = 0; i < out.size; ++i) o[i] = f(av, pb[i]);
    return;
  }
  std::array<std::ptrdiff_t, max_rank> sa{}, sb{}, so{};
  broadcast_strides(a.shape, out.shape, sa.data());
  broadcast_strides(b.shape, out.shape, sb.data());
  broadcast_strides(out.shape, out.shape, so.data());
  strided_loop<3>(out.shape, {sa.data(), sb.data(), so.data()},
                  [&](const auto& off, const auto& step, std::size_t n) {
                    const T* x = pa + off[0];
                    const T* y = pb + off[1];
                    T* z = o + off[2];
                    for (std::size_t j = 0; j < n; ++j) z[j] = f(x[j * step[0]], y[j * step[1]]);
                  });
}

/// Runtime check used by kernels whose operand shapes were open at build time.
inline void require(bool ok, std::string_view op, const std::string& what) {
  if (!ok) throw ShapeError(std::string(op) + ": " + what);
}

}  // namespace xgrad::detail
