// Reductions over axes (sum, mean, max, min, prod), the L2 norm, run-time element counts,
// and the builders of every row of the table (logsumexp, var, std, argmax and argmin are
// defined in stats.cpp).
#include "reduce.hpp"

#include <limits>

#include "../exec/thread_pool.hpp"

namespace xgrad {
namespace detail {
namespace {

/// The input shape with reduced axes set to 1, on the stack.
struct KeptShape {
  std::array<Dim, max_rank> d{};
  std::size_t r = 0;
  std::span<const Dim> span() const { return {d.data(), r}; }
};
inline KeptShape kept_shape(std::span<const Dim> in, std::span<const Dim> axes) {
  KeptShape k;
  k.r = in.size();
  for (std::size_t i = 0; i < k.r; ++i) k.d[i] = in[i];
  for (Dim a : axes) k.d[static_cast<std::size_t>(a)] = 1;
  return k;
}

/// A reduction defined by D: D::name, D::init, D::acc(a, x), D::finish(acc, count) and
/// the gradient rule D::grad(x, y, g, attrs), with y and g shaped as if keepdims.
template <class T, class D>
class ReduceOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.rows = D::rows};
    return t;
  }
  std::string_view name() const override { return D::name; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const ReduceAttrs r = reduce_attrs(a);
    return reduced_shape(in[0], r.axes, r.keepdims, D::needs_elements);
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const T* x = in[0].data;
    std::size_t n = in[0].size;
    if (n == 0 && D::needs_elements) throw ValueError(std::string(D::name) + " of an empty tensor");
    T count = out.size ? static_cast<T>(n / std::max<std::size_t>(out.size, 1)) : T(0);
    if (out.size == 1) {
      // Whole-tensor reductions accumulate in double so float sums keep their precision,
      // one partial result per part of the leading axis (exec::parts_for: the same parts
      // as a row-tiled group's), combined in part order.
      const std::size_t rows = in[0].shape.empty() ? 1 : static_cast<std::size_t>(in[0].shape[0]);
      const std::size_t parts = exec::parts_for(rows), row = rows ? n / rows : 0;
      thread_local std::vector<double> partial;
      if (partial.size() < parts) partial.resize(parts);
      double* pa = partial.data();
      const bool concurrent =
          static_cast<double>(n) >= exec::kMinPartWork * static_cast<double>(parts);
      exec::parallel_for(rows, parts, concurrent, [&](std::size_t b, std::size_t e, std::size_t p) {
        const std::size_t first = b * row, end = parts == 1 ? n : e * row;
        if constexpr (D::rows == RowRole::sum || D::rows == RowRole::mean) {
          pa[p] = sum_in_order(x + first, end - first);  // as row-tiled and direct steps sum
        } else {
          double acc = D::template init<double>();
          for (std::size_t i = first; i < end; ++i) acc = D::acc(acc, static_cast<double>(x[i]));
          pa[p] = acc;
        }
      });
      double acc = pa[0];
      for (std::size_t p = 1; p < parts; ++p) acc = D::acc(acc, pa[p]);
      out.data[0] = static_cast<T>(D::finish(acc, static_cast<double>(count)));
      return;
    }
    std::fill(out.data, out.data + out.size, D::template init<T>());
    KeptShape k = kept_shape(in[0].shape, reduce_attrs(a).axes);
    std::array<std::ptrdiff_t, max_rank> si{}, so{};
    broadcast_strides(in[0].shape, in[0].shape, si.data());
    broadcast_strides(k.span(), in[0].shape, so.data());
    strided_loop<2>(in[0].shape, {si.data(), so.data()},
                    [&](const auto& off, const auto& st, std::size_t m) {
                      T* o = out.data + off[1];
                      const T* p = x + off[0];
                      if (st[1] == 0) {
                        T acc = *o;
                        for (std::size_t j = 0; j < m; ++j) acc = D::acc(acc, p[j]);
                        *o = acc;
                      } else {
                        for (std::size_t j = 0; j < m; ++j) o[j] = D::acc(o[j], p[j]);
                      }
                    });
    for (std::size_t i = 0; i < out.size; ++i) out.data[i] = D::finish(out.data[i], count);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    Expr<T> x = arg(y, n, 0);
    const ReduceAttrs r = reduce_attrs(n.attrs);
    gr[0] = D::grad(x, kept(y, r.axes, r.keepdims), kept(g, r.axes, r.keepdims), r);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const ReduceAttrs r = reduce_attrs(a);
    std::string s = std::string(D::name) + "(" + args[0];
    if (!r.all_axes) s += ", axes=" + shape_str(r.axes);
    if (r.keepdims) s += ", keepdims";
    return s + ")";
  }
};

/// sum (Mean = false) and mean: the same accumulation, mean divides by the count after.
template <bool Mean>
struct ReduceAddD {
  static constexpr std::string_view name = Mean ? "mean" : "sum";
  static constexpr RowRole rows = Mean ? RowRole::mean : RowRole::sum;
  // A mean of no elements is 0/0: an error, as for max, where a sum of none is 0.
  static constexpr bool needs_elements = Mean;
  template <class U>
  static U init() {
    return U(0);
  }
  template <class U>
  static U acc(U a, U x) {
    return a + x;
  }
  template <class U>
  static U finish(U a, U n) {
    if constexpr (Mean) {
      return a / n;
    } else {
      return a;
    }
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const ReduceAttrs& a) {
    if constexpr (Mean) {
      return broadcast_like(g / reduced_count(x, a.axes), x);
    } else {
      return broadcast_like(g, x);
    }
  }
};
using ReduceSumD = ReduceAddD<false>;
using ReduceMeanD = ReduceAddD<true>;
/// max (Min = false) and min: tied extremes share the gradient equally.
template <bool Min>
struct ReduceExtremeD {
  static constexpr std::string_view name = Min ? "min" : "max";
  static constexpr RowRole rows = RowRole::none;
  static constexpr bool needs_elements = true;
  template <class U>
  static U init() {
    return Min ? std::numeric_limits<U>::infinity() : -std::numeric_limits<U>::infinity();
  }
  template <class U>
  static U acc(U a, U x) {
    return ((Min ? x < a : x > a) || std::isnan(x)) ? x : a;
  }
  template <class U>
  static U finish(U a, U) {
    return a;
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T> y, Expr<T> g, const ReduceAttrs& a) {
    Expr<T> mask = equal(x, y);
    return mask * (g / sum(mask, a.axes, true));
  }
};
using ReduceMaxD = ReduceExtremeD<false>;
using ReduceMinD = ReduceExtremeD<true>;
struct ReduceProdD {
  static constexpr std::string_view name = "prod";
  static constexpr RowRole rows = RowRole::none;
  static constexpr bool needs_elements = false;  // the empty product is 1
  template <class U>
  static U init() {
    return U(1);
  }
  template <class U>
  static U acc(U a, U x) {
    return a * x;
  }
  template <class U>
  static U finish(U a, U) {
    return a;
  }
  // d prod / d x_i is the product of the other elements of x_i's group: y / x_i without
  // zeros; with one zero, the product of the nonzero elements at the zero and 0 elsewhere
  // (y is 0 there); with two or more zeros, 0 everywhere. No division by a zero: the
  // zeros are replaced by ones before dividing.
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T> y, Expr<T> g, const ReduceAttrs& a) {
    Graph<T>& gr = x.graph();
    Expr<T> is_zero = equal(x, gr.scalar(T(0)));
    Expr<T> ones_at_zeros = where(is_zero, gr.scalar(T(1)), x);
    Expr<T> nonzero_prod = prod(ones_at_zeros, a.axes, true);
    Expr<T> one_zero = equal(sum(is_zero, a.axes, true), gr.scalar(T(1)));
    return g * where(is_zero, nonzero_prod * one_zero, y / ones_at_zeros);
  }
};

/// Euclidean norm of all elements, scaled by the largest magnitude so that squares of
/// large or tiny values neither overflow nor underflow.
template <class T>
class NormOp final : public Op<T> {
 public:
  std::string_view name() const override { return "norm"; }
  Shape infer_shape(std::span<const Shape>, const Attrs&) const override { return {}; }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    const T* x = in[0].data;
    T scale = 0;
    for (std::size_t i = 0; i < in[0].size; ++i) {
      T a = std::abs(x[i]);
      if (std::isnan(a)) {
        scale = a;  // NaN wins over everything, Inf included
        break;
      }
      scale = std::max(scale, a);
    }
    if (scale == 0 || !std::isfinite(scale)) {
      out.data[0] = scale;
      return;
    }
    double acc = 0;
    for (std::size_t i = 0; i < in[0].size; ++i) {
      double v = static_cast<double>(x[i]) / static_cast<double>(scale);
      acc += v * v;
    }
    out.data[0] = static_cast<T>(static_cast<double>(scale) * std::sqrt(acc));
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = g * safe_div(arg(y, n, 0), y);  // subgradient 0 at x = 0
  }
};

/// Run-time product of extents over axes (empty: all); no gradient.
template <class T>
class SizeOfOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_only = true};
    return t;
  }
  std::string_view name() const override { return "size"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    norm_axes(size_of_attrs(a).axes, in[0].size());
    return {};
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const std::vector<Dim>& axes = size_of_attrs(a).axes;
    std::size_t c = 1;
    if (axes.empty()) {
      c = in[0].size;
    } else {
      for (Dim ax : axes)
        c *= static_cast<std::size_t>(in[0].shape[norm_axis(ax, in[0].shape.size())]);
    }
    out.data[0] = static_cast<T>(c);
  }
  void backward(const Node<T>&, Expr<T>, Expr<T>, std::span<const bool>,
                std::span<Expr<T>>) const override {}
};

template <class T, class D>
Expr<T> reduce(Expr<T> x, const std::vector<Dim>& axes, bool keepdims) {
  x.graph(D::name);  // names the op when x is an invalid handle
  std::vector<Dim> normed = reduce_axes(D::name, x, axes);
  // 0-d: nothing to reduce (max and min keep their node, as the printed form shows).
  if (normed.empty() && !std::is_same_v<D, ReduceMaxD> && !std::is_same_v<D, ReduceMinD>) {
    return x;
  }
  // all_axes: prints as sum(x).
  return make<ReduceOp<T, D>>({x},
                              to_attrs(ReduceAttrs{normed, keepdims, normed.size() == x.rank()}));
}

}  // namespace
}  // namespace detail

template <class T>
Expr<T> sum(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::reduce<T, detail::ReduceSumD>(x, axes, keepdims);
}
template <class T>
Expr<T> mean(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::reduce<T, detail::ReduceMeanD>(x, axes, keepdims);
}
template <class T>
Expr<T> max(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::reduce<T, detail::ReduceMaxD>(x, axes, keepdims);
}
template <class T>
Expr<T> min(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::reduce<T, detail::ReduceMinD>(x, axes, keepdims);
}
template <class T>
Expr<T> prod(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::reduce<T, detail::ReduceProdD>(x, axes, keepdims);
}
template <class T>
Expr<T> logsumexp(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::logsumexp_node(x, axes, keepdims);
}
template <class T>
Expr<T> var(Expr<T> x, std::vector<Dim> axes, bool keepdims, Dim correction) {
  return detail::moment_node(x, axes, keepdims, correction, false);
}
template <class T>
Expr<T> std(Expr<T> x, std::vector<Dim> axes, bool keepdims, Dim correction) {
  return detail::moment_node(x, axes, keepdims, correction, true);
}
template <class T>
Expr<T> argmax(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::arg_node(x, axes, keepdims, false);
}
template <class T>
Expr<T> argmin(Expr<T> x, std::vector<Dim> axes, bool keepdims) {
  return detail::arg_node(x, axes, keepdims, true);
}
template <class T>
Expr<T> norm(Expr<T> x) {
  return detail::make<detail::NormOp<T>>({x});
}
template <class T>
Expr<T> size_of(Expr<T> x, std::vector<Dim> axes) {
  return detail::make<detail::SizeOfOp<T>>({x}, to_attrs(detail::SizeOfAttrs{axes}));
}

XGRAD_REDUCE_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
