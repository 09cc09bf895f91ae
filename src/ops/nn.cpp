// Probabilistic layers and losses: softmax, log_softmax, one_hot, cross-entropy, binary
// cross-entropy on logits, MSE, the seed's RMSE objective, Huber and L1. Losses other than
// cross-entropy are compositions of elementwise ops and reductions (so their gradients
// are automatic and differentiate again), behind a shape check that refuses to broadcast
// the prediction against the target.
#include <cstdint>
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

/// The name of a Reduction in printed forms.
inline std::string_view reduction_name(Reduction r) {
  switch (r) {
    case Reduction::mean:
      return "mean";
    case Reduction::sum:
      return "sum";
    case Reduction::none:
      return "none";
  }
  return "?";
}

/// -log softmax(logits)[row, label] per row, optionally scaled by per-class weights (a
/// third operand), then reduced (cross_entropy_attrs()); logits (N, C), labels (N).
template <class T>
class CrossEntropyOp final : public Op<T> {
 public:
  std::string_view name() const override { return "cross_entropy"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const Shape &z = in[0], &y = in[1];
    if (z.size() != 2 || y.size() != 1) {
      throw std::invalid_argument(
          "expects logits (N, C) and labels (N), got logits " + shape_str(z) + " and labels " +
          shape_str(y) + "; squeeze or reshape them to match (labels in a (N, 1) column: " +
          "squeeze(labels, {1}))");
    }
    if (z[0] != y[0] && z[0] != open && y[0] != open) {
      throw std::invalid_argument("logits " + shape_str(z) + " have " + std::to_string(z[0]) +
                                  " rows but labels " + shape_str(y) + " have " +
                                  std::to_string(y[0]) + "; reshape or slice them to match");
    }
    // The loss is a mean over rows: none (an empty batch) would be 0/0, and no class
    // leaves nothing to normalise over.
    if (in[0][0] == 0 || in[1][0] == 0) {
      throw std::invalid_argument("empty batch: logits " + shape_str(in[0]) + " have no rows");
    }
    if (in[0][1] == 0) throw std::invalid_argument("logits " + shape_str(in[0]) + " have no class");
    if (in.size() == 3) {
      const Shape& w = in[2];
      if (w.size() != 1 || (w[0] != z[1] && w[0] != open && z[1] != open)) {
        throw std::invalid_argument("class weights " + shape_str(w) +
                                    " must be one per class of logits " + shape_str(z));
      }
    }
    if (cross_entropy_attrs(a).reduction == Reduction::none) return {z[0]};
    return {};
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const Reduction red = cross_entropy_attrs(a).reduction;
    const std::size_t n = in[0].shape[0], c = in[0].shape[1];
    const T* w = in.size() == 3 ? in[2].data : nullptr;
    double total = 0, weight = 0;
    for (std::size_t r = 0; r < n; ++r) {
      const T* z = in[0].data + r * c;
      T v = in[1].data[r];
      if (!(v >= 0 && v < static_cast<T>(c)) || v != std::floor(v)) {
        throw ValueError("label " + std::to_string(v) + " at row " + std::to_string(r) +
                         " is not an integer class in [0, " + std::to_string(c) + ")");
      }
      const auto label = static_cast<std::size_t>(v);
      T m = *std::max_element(z, z + c);
      T s = 0;
      for (std::size_t j = 0; j < c; ++j) s += std::exp(z[j] - m);
      const T wr = w ? w[label] : T(1);
      const T l = wr * ((m - z[label]) + std::log(s));
      if (red == Reduction::none) out.data[r] = l;
      total += static_cast<double>(l);
      weight += static_cast<double>(wr);
    }
    if (red == Reduction::sum) out.data[0] = static_cast<T>(total);
    // A weighted mean over a zero total weight is 0/0 (NaN), as in PyTorch.
    if (red == Reduction::mean) out.data[0] = n || w ? static_cast<T>(total / weight) : T(0);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    Expr<T> z = arg(y, n, 0), labels = arg(y, n, 1);
    if (wanted[1]) {  // as PyTorch and JAX: class indices are not differentiable
      throw GraphError("cross_entropy: no gradient with respect to the labels " +
                       y.graph().describe(labels.id()) +
                       ", which are class indices; use a soft-target loss for that");
    }
    Expr<T> w = n.inputs.size() == 3 ? arg(y, n, 2) : Expr<T>();
    const Reduction red = cross_entropy_attrs(n.attrs).reduction;
    Dim classes = z.shape()[1];
    if (classes == open) {
      throw GraphError("cross_entropy: the gradient needs a known number of classes in " +
                       z.graph().describe(z.id()));
    }
    // Per row r: d/dz_r = w[label_r] * (softmax(z_r) - one_hot(label_r)) times the row's
    // share of g; the mean divides by the number of rows or by the total weight.
    Expr<T> wy = w ? gather_rows(w, labels) : Expr<T>();
    Expr<T> scale;  // g per row (none) or g / denominator
    if (red == Reduction::none) {
      scale = unsqueeze(w ? g * wy : g, {1});
    } else if (red == Reduction::sum) {
      scale = w ? unsqueeze(wy, {1}) * g : g;
    } else if (w) {
      scale = unsqueeze(wy, {1}) * (g / sum(wy));
    } else {
      Expr<T> rows =
          z.shape()[0] == open ? size_of(z, {0}) : z.graph().scalar(static_cast<T>(z.shape()[0]));
      scale = g / rows;
    }
    if (wanted[0]) gr[0] = (softmax(z, 1) - one_hot(labels, classes)) * scale;
    if (w && wanted[2]) {
      // d/dw_c sums the rows labelled c: their losses (less the mean, for the mean).
      Expr<T> l = cross_entropy(z, labels, Reduction::none);
      Expr<T> per_row = red == Reduction::mean ? (l - y) * (g / sum(wy)) : l * g;
      gr[2] = scatter_add_rows(per_row, labels, w);
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return "cross_entropy(" + args[0] + ", " + args[1] + extra(args, a) + ")";
  }
  std::string label(const Attrs& a) const override {
    const Reduction red = cross_entropy_attrs(a).reduction;
    return red == Reduction::mean ? "cross_entropy"
                                  : "cross_entropy(" + std::string(reduction_name(red)) + ")";
  }

 private:
  static std::string extra(std::span<const std::string> args, const Attrs& a) {
    std::string s = args.size() == 3 ? ", weights=" + args[2] : "";
    const Reduction red = cross_entropy_attrs(a).reduction;
    if (red != Reduction::mean) s += ", " + std::string(reduction_name(red));
    return s;
  }
};

/// The losses whose prediction and target must have one shape.
enum class Loss : std::uint8_t { mse, rmse, bce, huber, l1 };

/// Names of a loss and of its two operands, for messages.
struct LossNames {
  std::string_view loss, pred, target;
};
constexpr LossNames loss_names(Loss l) {
  switch (l) {
    case Loss::mse:
      return {"mse", "prediction", "target"};
    case Loss::rmse:
      return {"rmse", "prediction", "target"};
    case Loss::bce:
      return {"binary_cross_entropy_with_logits", "logits", "targets"};
    case Loss::huber:
      return {"huber", "prediction", "target"};
    case Loss::l1:
      return {"l1", "prediction", "target"};
  }
  return {"loss", "prediction", "target"};
}

/// The prediction, passed through once its shape is checked against the target's (the
/// second operand, read for its shape only): the loss of L refuses to broadcast them. A
/// node exists only while some dimension is open, so that the run-time shape pass checks
/// it; with known shapes the check happens when the loss is built and the node is
/// replaced by the prediction. It prints as the prediction.
template <class T, Loss L>
class LossShapeOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.copy_when_same_size = true, .shape_operand = 1};
    return t;
  }
  std::string_view name() const override { return loss_names(L).loss; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    const Shape &p = in[0], &t = in[1];
    bool fits = p.size() == t.size();
    for (std::size_t i = 0; fits && i < p.size(); ++i)
      fits = p[i] == t[i] || p[i] == open || t[i] == open;
    if (!fits) {
      const LossNames nm = loss_names(L);
      throw std::invalid_argument(
          std::string(nm.pred) + " " + shape_str(p) + " and " + std::string(nm.target) + " " +
          shape_str(t) +
          " differ in shape, and a loss does not broadcast them (every element of one would "
          "meet every element of the other); squeeze or reshape one of them to the other's "
          "shape (squeeze(x, {1}) for a (N, 1) column), or broadcast_like the " +
          std::string(nm.target) + " on purpose");
    }
    if constexpr (L == Loss::rmse) refuse_empty(p);
    return p;
  }
  /// rmse divides by the element count: an empty batch would be 0/0, a NaN loss with a
  /// zero gradient, where mean() and the other losses refuse an empty batch.
  static void refuse_empty(const Shape& p) {
    if (std::find(p.begin(), p.end(), Dim{0}) != p.end()) {
      throw std::invalid_argument("the prediction " + shape_str(p) +
                                  " has no elements (an empty batch?): rmse averages over "
                                  "the elements, and there is none");
    }
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    std::copy_n(in[0].data, out.size, out.data);
  }
  void backward(const Node<T>&, Expr<T>, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = g;
  }
  std::string format(std::span<const std::string> args, const Attrs&) const override {
    return args[0];
  }
  std::string label(const Attrs&) const override {
    return std::string(loss_names(L).loss) + ": same shape";
  }
  Expr<T> simplify(Graph<T>& g, std::span<const NodeId> in, const Attrs&) const override {
    const Shape &p = g.node(in[0]).shape, &t = g.node(in[1]).shape;
    return same_known(p, t) ? g.expr(in[0]) : Expr<T>();
  }
};

/// pred, checked to have target's shape for the loss L.
template <Loss L, class T>
Expr<T> shape_checked(Expr<T> pred, Expr<T> target) {
  return make<LossShapeOp<T, L>>({pred, target});
}

/// The terms of a loss combined as asked.
template <class T>
Expr<T> reduce_terms(Expr<T> terms, Reduction r) {
  switch (r) {
    case Reduction::mean:
      return mean(terms);
    case Reduction::sum:
      return sum(terms);
    case Reduction::none:
      return terms;
  }
  return terms;
}

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
Expr<T> cross_entropy(Expr<T> logits, Expr<T> labels, Reduction reduction, Expr<T> weights) {
  const Attrs a = to_attrs(detail::CrossEntropyAttrs{reduction});
  if (weights) return detail::make<detail::CrossEntropyOp<T>>({logits, labels, weights}, a);
  return detail::make<detail::CrossEntropyOp<T>>({logits, labels}, a);
}
template <class T>
Expr<T> binary_cross_entropy_with_logits(Expr<T> logits, Expr<T> targets, Reduction reduction,
                                         Expr<T> pos_weight) {
  using detail::Loss;
  Expr<T> z = detail::shape_checked<Loss::bce>(logits, targets), y = targets;
  if (!pos_weight) return detail::reduce_terms(softplus(z) - z * y, reduction);
  // pos_weight scales the positive term only; it must not enlarge the targets.
  bool fits = pos_weight.rank() <= y.rank();
  try {
    fits = fits && detail::broadcast_shapes(pos_weight.shape(), y.shape()) == y.shape();
  } catch (const std::invalid_argument&) {
    fits = false;
  }
  if (!fits) {
    throw ShapeError("binary_cross_entropy_with_logits: pos_weight " +
                     shape_str(pos_weight.shape()) + " does not broadcast along targets " +
                     shape_str(y.shape()) + " without enlarging them; operands: " +
                     y.graph().describe(pos_weight.id()) + ", " + y.graph().describe(y.id()));
  }
  // p*y*softplus(-z) + (1 - y)*softplus(z), with softplus(-z) = softplus(z) - z.
  Expr<T> terms = (1.0 + (pos_weight - 1.0) * y) * softplus(z) - pos_weight * y * z;
  return detail::reduce_terms(terms, reduction);
}
template <class T>
Expr<T> mse(Expr<T> pred, Expr<T> target, Reduction reduction) {
  // target - pred, as the note writes the residual (y - X beta): the same values, and the
  // gradient prints as -2/n * X^T @ (y - X @ beta).
  Expr<T> d = target - detail::shape_checked<detail::Loss::mse>(pred, target);
  return detail::reduce_terms(square(d), reduction);
}
template <class T>
Expr<T> huber(Expr<T> pred, Expr<T> target, double delta, Reduction reduction) {
  if (!(delta > 0) || !std::isfinite(delta)) {
    throw ValueError("huber: delta " + std::to_string(delta) + " must be positive and finite for " +
                     pred.graph().describe(pred.id()));
  }
  Expr<T> a = abs(detail::shape_checked<detail::Loss::huber>(pred, target) - target);
  // m*(a - m/2) with m = min(|d|, delta): d^2/2 inside, delta*(|d| - delta/2) outside, and
  // the gradient clamp(d, -delta, delta) (clamp passes the gradient at the bound).
  Expr<T> m = clamp(a, 0.0, delta);
  return detail::reduce_terms(m * (a - 0.5 * m), reduction);
}
template <class T>
Expr<T> l1(Expr<T> pred, Expr<T> target, Reduction reduction) {
  Expr<T> d = detail::shape_checked<detail::Loss::l1>(pred, target) - target;
  return detail::reduce_terms(abs(d), reduction);
}
template <class T>
Expr<T> rmse(Expr<T> pred, Expr<T> target) {
  // the note's residual y - X beta (see mse)
  Expr<T> d = target - detail::shape_checked<detail::Loss::rmse>(pred, target);
  // norm(d) / sqrt(n) rather than sqrt(mean(d^2)): norm carries the subgradient 0 at a
  // zero residual, where the seed's formula divides by zero.
  bool known = detail::same_known(d.shape(), d.shape());
  if (known && shape_size(d.shape()) == 0) {
    try {
      detail::LossShapeOp<T, detail::Loss::rmse>::refuse_empty(d.shape());
    } catch (const std::invalid_argument& e) {
      throw ShapeError(std::string("rmse: ") + e.what() + "; operand " +
                       pred.graph().describe(pred.id()));
    }
  }
  Expr<T> n =
      known
          ? d.graph().scalar(static_cast<T>(std::sqrt(static_cast<double>(shape_size(d.shape())))))
          : sqrt(size_of(d));
  return norm(d) / n;
}

XGRAD_NN_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
