// Reductions that look at each group of elements more than once: logsumexp (maximum,
// then the shifted sum), var and std (mean, then squared deviations), argmax and argmin
// (position of the extreme). Their builders are in reduce.cpp, with the table's others.
#include <cmath>
#include <limits>

#include "reduce.hpp"

namespace xgrad {
namespace detail {
namespace {

/// The printed arguments after x shared by the reductions below.
std::string axes_text(const std::vector<Dim>& axes, bool all_axes, bool keepdims) {
  std::string s;
  if (!all_axes) s += ", axes=" + shape_str(axes);
  if (keepdims) s += ", keepdims";
  return s;
}

/// log(sum(exp(x))) over axes, shifted by the maximum of each group.
template <class T>
class LogSumExpOp final : public Op<T> {
 public:
  std::string_view name() const override { return "logsumexp"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const ReduceAttrs r = reduce_attrs(a);
    return reduced_shape(in[0], r.axes, r.keepdims, false);
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const T* x = in[0].data;
    ReduceWalk w(in[0].shape, reduce_attrs(a).axes);
    w.each_group([&](std::size_t o, std::size_t base) {
      double m = -std::numeric_limits<double>::infinity();
      w.each(base, [&](std::size_t i) {
        const double v = x[i];
        if (v > m || std::isnan(v)) m = std::isnan(m) ? m : v;
      });
      if (!std::isfinite(m)) {  // NaN, all -inf (or none), or an +inf
        out.data[o] = static_cast<T>(m);
        return;
      }
      double s = 0;
      w.each(base, [&](std::size_t i) { s += std::exp(static_cast<double>(x[i]) - m); });
      out.data[o] = static_cast<T>(m + std::log(s));
    });
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    const ReduceAttrs r = reduce_attrs(n.attrs);
    Expr<T> x = arg(y, n, 0);
    gr[0] = kept(g, r.axes, r.keepdims) * exp(x - kept(y, r.axes, r.keepdims));
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const ReduceAttrs r = reduce_attrs(a);
    return "logsumexp(" + args[0] + axes_text(r.axes, r.all_axes, r.keepdims) + ")";
  }
};

/// var(x) over axes, or std(x) with Sqrt.
template <class T, bool Sqrt>
class MomentOp final : public Op<T> {
  static constexpr std::string_view kName = Sqrt ? "std" : "var";

 public:
  std::string_view name() const override { return kName; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const MomentAttrs m = moment_attrs(a);
    return reduced_shape(in[0], m.axes, m.keepdims, false);
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const T* x = in[0].data;
    const MomentAttrs m = moment_attrs(a);
    ReduceWalk w(in[0].shape, m.axes);
    const std::size_t n = w.count();
    if (n <= static_cast<std::size_t>(m.correction)) {
      throw ValueError(std::string(kName) + ": " + std::to_string(n) +
                       " elements per output leave no degrees of freedom with correction " +
                       std::to_string(m.correction) + ", for an operand of shape " +
                       shape_str(in[0].shape));
    }
    const double denom = static_cast<double>(n - static_cast<std::size_t>(m.correction));
    w.each_group([&](std::size_t o, std::size_t base) {
      double mean = 0;
      w.each(base, [&](std::size_t i) { mean += x[i]; });
      mean /= static_cast<double>(n);
      double ss = 0;
      w.each(base, [&](std::size_t i) {
        const double d = static_cast<double>(x[i]) - mean;
        ss += d * d;
      });
      const double v = ss / denom;
      out.data[o] = static_cast<T>(Sqrt ? std::sqrt(v) : v);
    });
  }
  // var: g * 2 (x - mean) / (n - c). std: g * (x - mean) / ((n - c) std), 0 where std is 0.
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    const MomentAttrs m = moment_attrs(n.attrs);
    Expr<T> x = arg(y, n, 0);
    Expr<T> dev = x - mean(x, m.axes, true);
    Expr<T> denom = reduced_count(x, m.axes) - static_cast<T>(m.correction);
    Expr<T> gk = kept(g, m.axes, m.keepdims);
    if constexpr (Sqrt) {
      gr[0] = dev * safe_div(gk, denom * kept(y, m.axes, m.keepdims));
    } else {
      gr[0] = dev * (T(2) * gk / denom);
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const MomentAttrs m = moment_attrs(a);
    std::string s = std::string(kName) + "(" + args[0] + axes_text(m.axes, m.all_axes, m.keepdims);
    if (m.correction != 1) s += ", correction=" + std::to_string(m.correction);
    return s + ")";
  }
};

/// Position of the largest (or, with Min, smallest) element along one axis or over all
/// (axis -1), as T; no gradient.
template <class T, bool Min>
class ArgOp final : public Op<T> {
  static constexpr std::string_view kName = Min ? "argmin" : "argmax";

 public:
  std::string_view name() const override { return kName; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const ArgAttrs r = arg_attrs(a);
    if (r.axis < 0) return reduced_shape(in[0], all_axes(in[0].size()), r.keepdims, true);
    const std::array<Dim, 1> axis = {r.axis};
    return reduced_shape(in[0], axis, r.keepdims, true);
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const T* x = in[0].data;
    const ArgAttrs r = arg_attrs(a);
    const std::size_t rank = in[0].shape.size();
    std::array<Dim, max_rank> ax{};
    std::size_t na = 0;
    if (r.axis < 0) {
      for (std::size_t i = 0; i < rank; ++i) ax[na++] = static_cast<Dim>(i);
    } else {
      ax[na++] = r.axis;
    }
    ReduceWalk w(in[0].shape, std::span<const Dim>(ax.data(), na));
    if (w.count() == 0) throw ValueError(std::string(kName) + " of an empty tensor");
    w.each_group([&](std::size_t o, std::size_t base) {
      std::size_t k = 0, best = 0;
      T b = T(0);
      bool nan = false;
      w.each(base, [&](std::size_t i) {
        const T v = x[i];
        // The first NaN wins; otherwise the first extreme, ties keep the earlier one.
        if (!nan && (k == 0 || std::isnan(v) || (Min ? v < b : v > b))) {
          best = k;
          b = v;
          nan = std::isnan(v);
        }
        ++k;
      });
      out.data[o] = static_cast<T>(best);
    });
  }
  void backward(const Node<T>&, Expr<T>, Expr<T>, std::span<const bool>,
                std::span<Expr<T>>) const override {}  // an index: no gradient
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const ArgAttrs r = arg_attrs(a);
    std::string s = std::string(kName) + "(" + args[0];
    if (r.axis >= 0) s += ", axis=" + std::to_string(r.axis);
    if (r.keepdims) s += ", keepdims";
    return s + ")";
  }

 private:
  static std::vector<Dim> all_axes(std::size_t rank) {
    std::vector<Dim> v(rank);
    for (std::size_t i = 0; i < rank; ++i) v[i] = static_cast<Dim>(i);
    return v;
  }
};

}  // namespace

template <class T>
Expr<T> logsumexp_node(Expr<T> x, const std::vector<Dim>& axes, bool keepdims) {
  std::vector<Dim> normed = reduce_axes("logsumexp", x, axes);
  return make<LogSumExpOp<T>>({x},
                              to_attrs(ReduceAttrs{normed, keepdims, normed.size() == x.rank()}));
}

template <class T>
Expr<T> moment_node(Expr<T> x, const std::vector<Dim>& axes, bool keepdims, Dim correction,
                    bool take_sqrt) {
  const char* op = take_sqrt ? "std" : "var";
  std::vector<Dim> normed = reduce_axes(op, x, axes);
  if (correction < 0) {
    throw ValueError(std::string(op) + ": correction " + std::to_string(correction) +
                     " is negative, for " + x.graph().describe(x.id()));
  }
  // Too few elements is known now when every reduced extent is.
  Dim n = 1;
  bool known = true;
  for (Dim a : normed) {
    const Dim d = x.shape()[static_cast<std::size_t>(a)];
    known = known && d != open;
    n *= d;
  }
  if (known && n <= correction) {
    throw ValueError(std::string(op) + ": " + std::to_string(n) +
                     " elements per output leave no degrees of freedom with correction " +
                     std::to_string(correction) + ", for " + x.graph().describe(x.id()));
  }
  Attrs a = to_attrs(MomentAttrs{normed, keepdims, normed.size() == x.rank(), correction});
  if (take_sqrt) return make<MomentOp<T, true>>({x}, std::move(a));
  return make<MomentOp<T, false>>({x}, std::move(a));
}

template <class T>
Expr<T> arg_node(Expr<T> x, const std::vector<Dim>& axes, bool keepdims, bool smallest) {
  const char* op = smallest ? "argmin" : "argmax";
  std::vector<Dim> normed = reduce_axes(op, x, axes);
  if (axes.size() > 1) {
    throw ShapeError(std::string(op) + ": searches one axis or all (axes {}), not the axes " +
                     shape_str(axes) + ", for " + x.graph().describe(x.id()));
  }
  Attrs a = to_attrs(ArgAttrs{axes.empty() ? Dim{-1} : normed[0], keepdims});
  if (smallest) return make<ArgOp<T, true>>({x}, std::move(a));
  return make<ArgOp<T, false>>({x}, std::move(a));
}

#define XGRAD_STATS_INSTANTIATE(T)                                                 \
  template Expr<T> logsumexp_node(Expr<T>, const std::vector<Dim>&, bool);         \
  template Expr<T> moment_node(Expr<T>, const std::vector<Dim>&, bool, Dim, bool); \
  template Expr<T> arg_node(Expr<T>, const std::vector<Dim>&, bool, bool);
XGRAD_STATS_INSTANTIATE(float)
XGRAD_STATS_INSTANTIATE(double)
#undef XGRAD_STATS_INSTANTIATE

}  // namespace detail
}  // namespace xgrad
