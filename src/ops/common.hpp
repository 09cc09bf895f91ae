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

/// What autodiff puts in grads[i] before calling Op::backward when operand i needs no
/// gradient (it leads to none of the requested xs): an invalid handle, so rules that
/// ignore it behave as before, with an id built-in rules recognise to skip the work.
inline constexpr NodeId kGradNotNeeded = ~NodeId{0} - 1;

/// False when autodiff marked operand i as needing no gradient.
template <class T>
bool wants_grad(std::span<const Expr<T>> gr, std::size_t i) {
  return gr[i].valid() || gr[i].id() != kGradNotNeeded;
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

// Elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64, picked at load
// time by the CPU (GCC target_clones; glibc ifunc), with the vectoriser enabled for them
// whatever the build's optimisation level. Results are bit-identical across the clones:
// no floating-point contraction or reassociation is allowed.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(XGRAD_NO_MULTIVERSIONING)
#define XGRAD_KERNEL                                                           \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                 optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off")))
#else
#define XGRAD_KERNEL
#endif

/// y[i] = f(x[i]).
template <class T, class F>
XGRAD_KERNEL void map1(const T* __restrict x, T* __restrict y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
/// y[i] = f(x[i]) where y may be x.
template <class T, class F>
XGRAD_KERNEL void map1_inplace(const T* x, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
/// y[i] = f(a[i], b[i]).
template <class T, class F>
XGRAD_KERNEL void map2(const T* a, const T* b, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}
/// y[i] = f(a[i], b).
template <class T, class F>
XGRAD_KERNEL void map2_scalar_b(const T* a, T b, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a[i], b);
}
/// y[i] = f(a, b[i]).
template <class T, class F>
XGRAD_KERNEL void map2_scalar_a(T a, const T* b, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a, b[i]);
}
/// y[r, j] = f(a[r, j], b[j]) for rows r of length m (b broadcast along rows), or with
/// the roles swapped when row_is_a.
template <class T, class F>
XGRAD_KERNEL void map2_rows(const T* full, const T* row, T* y, std::size_t rows, std::size_t m,
                            bool row_is_a, F f) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* x = full + r * m;
    T* z = y + r * m;
    if (row_is_a) {
      for (std::size_t j = 0; j < m; ++j) z[j] = f(row[j], x[j]);
    } else {
      for (std::size_t j = 0; j < m; ++j) z[j] = f(x[j], row[j]);
    }
  }
}

/// True when `small` is a trailing block of `big` (after dropping leading 1s), so that
/// broadcasting repeats it whole along the leading axes.
inline bool is_row_of(std::span<const Dim> small, std::span<const Dim> big) {
  std::size_t k = 0;
  while (k < small.size() && small[k] == 1) ++k;
  std::size_t r = small.size() - k;
  if (r > big.size()) return false;
  return std::equal(small.begin() + static_cast<std::ptrdiff_t>(k), small.end(),
                    big.end() - static_cast<std::ptrdiff_t>(r));
}

/// out = f(a, b) with NumPy broadcasting; fast paths for equal shapes, scalars and an
/// operand repeated along leading axes (a bias row).
template <class T, class F>
void binary_map(ConstTensor<T> a, ConstTensor<T> b, Tensor<T> out, F f) {
  T* o = out.data;
  const T* pa = a.data;
  const T* pb = b.data;
  if (out.size == 0) return;
  if (a.size == out.size && b.size == out.size) {
    map2(pa, pb, o, out.size, f);
    return;
  }
  if (b.size == 1 && a.size == out.size) {
    map2_scalar_b(pa, pb[0], o, out.size, f);
    return;
  }
  if (a.size == 1 && b.size == out.size) {
    map2_scalar_a(pa[0], pb, o, out.size, f);
    return;
  }
  if (a.size == out.size && b.size && is_row_of(b.shape, out.shape)) {
    map2_rows(pa, pb, o, out.size / b.size, b.size, false, f);
    return;
  }
  if (b.size == out.size && a.size && is_row_of(a.shape, out.shape)) {
    map2_rows(pb, pa, o, out.size / a.size, a.size, true, f);
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

/// The loops of a built-in elementwise op, for an executor that calls them directly on
/// blocks of a few rows, where forward()'s broadcast dispatch would cost as much as the
/// work. Null where the op has no such form.
template <class T>
struct MapKernels {
  /// y = f(x) over n elements (y may be x).
  void (*unary)(const T* x, T* y, std::size_t n, const Attrs& a) = nullptr;
  /// y = f(a, b) over n elements each.
  void (*binary)(const T* a, const T* b, T* y, std::size_t n) = nullptr;
  /// y = f(a, b) for a scalar a.
  void (*scalar_a)(T a, const T* b, T* y, std::size_t n) = nullptr;
  /// y = f(a, b) for a scalar b.
  void (*scalar_b)(const T* a, T b, T* y, std::size_t n) = nullptr;
};
/// Base of the built-in elementwise op classes: their MapKernels.
template <class T>
struct MapKernelsMarker {
  MapKernels<T> map_kernels;  ///< The op's loops.
};

/// Marker bases of built-in op classes, read by op_traits().
struct ElementwiseMarker {};  ///< out = f(operands) per element, NumPy broadcasting
struct MatmulMarker {};       ///< MatmulOp
struct ShapeOnlyMarker {};    ///< forward() reads operand shapes, never their values
/// ReduceOp: kind 1 = sum, 2 = mean, 0 = other (max).
struct ReduceMarker {
  int reduce_kind = 0;
};

/// What the executor (src/function.cpp) may assume about a built-in op, beyond calling
/// Op::forward. User ops are plain (all false).
struct OpTraits {
  /// forward() copies operand 0 unchanged whenever its run-time size equals the output's
  /// (reshape, squeeze, unsqueeze, reshape_like, and broadcast_to / sum_to between equal
  /// sizes): the output may share the operand's buffer instead.
  bool copy_when_same_size = false;
  /// Elementwise with broadcasting: forward() on a block of rows of the output, given the
  /// same rows of full-shaped operands and whole operands that broadcast along rows,
  /// computes those rows.
  bool elementwise = false;
  /// MatmulOp (attributes: flag / flag2 transpose the operands).
  bool matmul = false;
  /// forward() reads only operand shapes (size, zeros_like).
  bool shape_only = false;
  /// An operand forward() reads for its shape only, or -1: the second operand of
  /// broadcast_to, sum_to, reshape_like and pad_like (the node whose shape they take).
  int shape_operand = -1;
  /// BroadcastOp: forward() on a block of rows of the output, given the same rows of a
  /// full-shaped operand or a whole operand that broadcasts along rows, computes them.
  bool broadcast = false;
  /// SumToOp: out = input summed down to out's shape.
  bool sum_to = false;
  /// A sum (1) or mean (2) reduction; 0 otherwise.
  int reduce_kind = 0;
};

/// out += op(a) @ op(b) for 2-d a, 1-d or 2-d b (MatmulOp's forward with beta = 1).
template <class T>
void matmul_accumulate(ConstTensor<T> a, ConstTensor<T> b, Tensor<T> out, const Attrs& attrs);
/// Traits of op (a lookup by address among the built-in op singletons).
template <class T>
OpTraits op_traits(const Op<T>& op);

/// Runtime check used by kernels whose operand shapes were open at build time.
inline void require(bool ok, std::string_view op, const std::string& what) {
  if (!ok) throw ShapeError(std::string(op) + ": " + what);
}

}  // namespace xgrad::detail
