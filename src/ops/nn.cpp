// Probabilistic layers and losses: softmax, log_softmax, one_hot, cross-entropy, MSE and
// the seed's RMSE objective.
#include <limits>

#include "common.hpp"

namespace xgrad {
namespace detail {
namespace {

/// Extents before, along and after an axis: the lanes a softmax runs over.
struct Lanes {
  std::size_t outer = 1, len = 1, inner = 1;
};
inline Lanes lanes(std::span<const Dim> s, std::size_t axis) {
  Lanes l;
  for (std::size_t i = 0; i < axis; ++i) l.outer *= s[i];
  l.len = s[axis];
  for (std::size_t i = axis + 1; i < s.size(); ++i) l.inner *= s[i];
  return l;
}

/// softmax or log_softmax along an axis, shifted by the lane maximum so exp never
/// overflows.
template <class T>
class SoftmaxOp final : public Op<T> {
 public:
  std::string_view name() const override { return "softmax"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    if (in[0].empty()) throw std::invalid_argument("softmax needs at least one axis");
    norm_axis(softmax_attrs(a).axis, in[0].size());
    return in[0];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const SoftmaxAttrs sa = softmax_attrs(a);
    Lanes l = lanes(in[0].shape, static_cast<std::size_t>(sa.axis));
    const T* x = in[0].data;
    for (std::size_t o = 0; o < l.outer; ++o) {
      for (std::size_t i = 0; i < l.inner; ++i) {
        std::size_t base = o * l.len * l.inner + i;
        T m = -std::numeric_limits<T>::infinity();
        for (std::size_t j = 0; j < l.len; ++j) m = std::max(m, x[base + j * l.inner]);
        if (!std::isfinite(m)) m = 0;
        T s = 0;
        for (std::size_t j = 0; j < l.len; ++j) s += std::exp(x[base + j * l.inner] - m);
        if (sa.log) {
          // (x - m) - log s keeps precision that x - (m + log s) would round away.
          T ls = std::log(s);
          for (std::size_t j = 0; j < l.len; ++j)
            out.data[base + j * l.inner] = (x[base + j * l.inner] - m) - ls;
        } else {
          for (std::size_t j = 0; j < l.len; ++j) {
            out.data[base + j * l.inner] = std::exp(x[base + j * l.inner] - m) / s;
          }
        }
      }
    }
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    const SoftmaxAttrs sa = softmax_attrs(n.attrs);
    std::vector<Dim> ax{sa.axis};
    if (sa.log) {
      gr[0] = g - exp(y) * sum(g, ax, true);
    } else {
      gr[0] = y * (g - sum(g * y, ax, true));
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return std::string(softmax_attrs(a).log ? "log_softmax(" : "softmax(") + args[0] + ")";
  }
};

/// One-hot rows from integer-valued labels.
template <class T>
class OneHotOp final : public Op<T> {
 public:
  std::string_view name() const override { return "one_hot"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    Shape out = in[0];
    out.push_back(one_hot_attrs(a).depth);
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    std::size_t depth = static_cast<std::size_t>(one_hot_attrs(a).depth);
    std::fill(out.data, out.data + out.size, T(0));
    for (std::size_t k = 0; k < in[0].size; ++k) {
      T v = in[0].data[k];
      if (!(v >= 0 && v < static_cast<T>(depth)) || v != std::floor(v)) {
        throw ValueError("label " + std::to_string(v) + " at position " + std::to_string(k) +
                         " is not an integer class in [0, " + std::to_string(depth) + ")");
      }
      out.data[k * depth + static_cast<std::size_t>(v)] = T(1);
    }
  }
  void backward(const Node<T>&, Expr<T>, Expr<T>, std::span<const bool>,
                std::span<Expr<T>>) const override {}
};

/// Mean over rows of -log softmax(logits)[row, label]; logits (N, C), labels (N).
template <class T>
class CrossEntropyOp final : public Op<T> {
 public:
  std::string_view name() const override { return "cross_entropy"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    if (in[0].size() != 2 || in[1].size() != 1) {
      throw std::invalid_argument("expects logits (N, C) and labels (N,), got " + shape_str(in[0]) +
                                  " and " + shape_str(in[1]));
    }
    if (in[0][0] != in[1][0] && in[0][0] != open && in[1][0] != open) {
      throw std::invalid_argument("logits have " + std::to_string(in[0][0]) + " rows but " +
                                  std::to_string(in[1][0]) + " labels");
    }
    return {};
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    std::size_t n = in[0].shape[0], c = in[0].shape[1];
    double total = 0;
    for (std::size_t r = 0; r < n; ++r) {
      const T* z = in[0].data + r * c;
      T v = in[1].data[r];
      if (!(v >= 0 && v < static_cast<T>(c)) || v != std::floor(v)) {
        throw ValueError("label " + std::to_string(v) + " at row " + std::to_string(r) +
                         " is not an integer class in [0, " + std::to_string(c) + ")");
      }
      T m = *std::max_element(z, z + c);
      T s = 0;
      for (std::size_t j = 0; j < c; ++j) s += std::exp(z[j] - m);
      total += static_cast<double>((m - z[static_cast<std::size_t>(v)]) + std::log(s));
    }
    out.data[0] = n ? static_cast<T>(total / static_cast<double>(n)) : T(0);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    Expr<T> z = arg(y, n, 0), labels = arg(y, n, 1);
    Dim classes = z.shape()[1];
    if (classes == open) {
      throw GraphError("cross_entropy: the gradient needs a known number of classes in " +
                       z.graph().describe(z.id()));
    }
    Expr<T> rows =
        z.shape()[0] == open ? size_of(z, {0}) : z.graph().scalar(static_cast<T>(z.shape()[0]));
    gr[0] = (softmax(z, 1) - one_hot(labels, classes)) * (g / rows);
  }
};

template <class T>
Expr<T> softmax_impl(Expr<T> x, Dim axis, bool log) {
  Dim normed;
  try {
    normed = static_cast<Dim>(norm_axis(axis, x.rank()));
  } catch (const std::invalid_argument& e) {
    throw ShapeError(std::string(log ? "log_softmax: " : "softmax: ") + e.what() + "; operand " +
                     x.graph().describe(x.id()));
  }
  return make<SoftmaxOp<T>>({x}, to_attrs(SoftmaxAttrs{normed, log}));
}

}  // namespace
}  // namespace detail

template <class T>
Expr<T> softmax(Expr<T> x, Dim axis) {
  return detail::softmax_impl(x, axis, false);
}
template <class T>
Expr<T> log_softmax(Expr<T> x, Dim axis) {
  return detail::softmax_impl(x, axis, true);
}
template <class T>
Expr<T> one_hot(Expr<T> labels, Dim depth) {
  if (depth <= 0) {
    throw ValueError("one_hot: depth " + std::to_string(depth) + " must be positive for " +
                     labels.graph().describe(labels.id()));
  }
  return detail::make<detail::OneHotOp<T>>({labels}, to_attrs(detail::OneHotAttrs{depth}));
}
template <class T>
Expr<T> cross_entropy(Expr<T> logits, Expr<T> labels) {
  return detail::make<detail::CrossEntropyOp<T>>({logits, labels});
}
template <class T>
Expr<T> mse(Expr<T> pred, Expr<T> target) {
  // target - pred, as the note writes the residual (y - X beta): the same values, and the
  // gradient prints as -2/n * X^T @ (y - X @ beta).
  return mean(square(target - pred));
}
template <class T>
Expr<T> rmse(Expr<T> pred, Expr<T> target) {
  Expr<T> d = target - pred;  // the note's residual y - X beta (see mse)
  // norm(d) / sqrt(n) rather than sqrt(mean(d^2)): norm carries the subgradient 0 at a
  // zero residual, where the seed's formula divides by zero.
  bool known = detail::same_known(d.shape(), d.shape());
  Expr<T> n =
      known
          ? d.graph().scalar(static_cast<T>(std::sqrt(static_cast<double>(shape_size(d.shape())))))
          : sqrt(size_of(d));
  return norm(d) / n;
}

XGRAD_NN_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
