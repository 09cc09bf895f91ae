// Reductions over axes (sum, mean, max), the L2 norm and run-time element counts.
#include <limits>

#include "common.hpp"

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
    Shape out;
    for (std::size_t i = 0; i < in[0].size(); ++i) {
      bool red = std::find(r.axes.begin(), r.axes.end(), static_cast<Dim>(i)) != r.axes.end();
      if (red && D::needs_elements && in[0][i] == 0) {
        throw std::invalid_argument("reducing over empty axis " + std::to_string(i) +
                                    " (an empty batch?): there is no element to take the " +
                                    std::string(D::name) + " of");
      }
      if (!red) {
        out.push_back(in[0][i]);
      } else if (r.keepdims) {
        out.push_back(1);
      }
    }
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const T* x = in[0].data;
    std::size_t n = in[0].size;
    if (n == 0 && D::needs_elements) throw ValueError(std::string(D::name) + " of an empty tensor");
    T count = out.size ? static_cast<T>(n / std::max<std::size_t>(out.size, 1)) : T(0);
    if (out.size == 1) {
      // Whole-tensor reductions accumulate in double so float sums keep their precision.
      double acc = D::template init<double>();
      for (std::size_t i = 0; i < n; ++i) acc = D::acc(acc, static_cast<double>(x[i]));
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
    auto keep = [&](Expr<T> e) {
      return (r.keepdims || e.shape().empty()) ? e : unsqueeze(e, r.axes);
    };
    gr[0] = D::grad(x, keep(y), keep(g), r);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const ReduceAttrs r = reduce_attrs(a);
    std::string s = std::string(D::name) + "(" + args[0];
    if (!r.all_axes) s += ", axes=" + shape_str(r.axes);
    if (r.keepdims) s += ", keepdims";
    return s + ")";
  }
};

/// Elements reduced per output element, static when known, else counted at run time.
template <class T>
Expr<T> reduced_count(Expr<T> x, const std::vector<Dim>& axes) {
  std::size_t c = 1;
  for (Dim a : axes) {
    Dim d = x.shape()[static_cast<std::size_t>(a)];
    if (d == open) return size_of(x, axes);
    c *= static_cast<std::size_t>(d);
  }
  return x.graph().scalar(static_cast<T>(c));
}

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
struct ReduceMaxD {
  static constexpr std::string_view name = "max";
  static constexpr RowRole rows = RowRole::none;
  static constexpr bool needs_elements = true;
  template <class U>
  static U init() {
    return -std::numeric_limits<U>::infinity();
  }
  template <class U>
  static U acc(U a, U x) {
    return (x > a || std::isnan(x)) ? x : a;
  }
  template <class U>
  static U finish(U a, U) {
    return a;
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T> y, Expr<T> g, const ReduceAttrs& a) {
    // Tied maxima share the gradient equally.
    Expr<T> mask = equal(x, y);
    return mask * (g / sum(mask, a.axes, true));
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
  std::vector<Dim> normed;
  x.graph(D::name);  // names the op when x is an invalid handle
  try {
    normed = norm_axes(axes, x.rank());
  } catch (const std::invalid_argument& e) {
    throw ShapeError(std::string(D::name) + ": " + e.what() + "; operand " +
                     x.graph().describe(x.id()));
  }
  if (normed.empty() && !std::is_same_v<D, ReduceMaxD>) return x;  // 0-d: nothing to reduce
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
Expr<T> norm(Expr<T> x) {
  return detail::make<detail::NormOp<T>>({x});
}
template <class T>
Expr<T> size_of(Expr<T> x, std::vector<Dim> axes) {
  return detail::make<detail::SizeOfOp<T>>({x}, to_attrs(detail::SizeOfAttrs{axes}));
}

XGRAD_REDUCE_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
