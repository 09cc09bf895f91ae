// Slices and joins: slice and its adjoint pad_like, concatenate and stack, and split
// (slices of one tensor).
#include <limits>

#include "common.hpp"

namespace xgrad {
namespace detail {
namespace {

/// Normalised [begin, end) of a slice along an axis of extent d (Python semantics).
inline std::pair<Dim, Dim> slice_bounds(Dim begin, Dim end, Dim d) {
  auto fix = [d](Dim v) { return std::clamp<Dim>(v < 0 ? v + d : v, 0, d); };
  Dim b = fix(begin), e = fix(end);
  return {b, std::max(b, e)};
}

/// Copies a block along one axis from src to dst: the slice (pad=false) or its adjoint.
template <class T>
void block_copy(const T* src, T* dst, std::span<const Dim> big, std::size_t axis, Dim begin,
                Dim len, bool to_big) {
  std::size_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= big[i];
  for (std::size_t i = axis + 1; i < big.size(); ++i) inner *= big[i];
  std::size_t bd = static_cast<std::size_t>(big[axis]);
  std::size_t chunk = static_cast<std::size_t>(len) * inner;
  for (std::size_t o = 0; o < outer; ++o) {
    T* b = const_cast<T*>(to_big ? dst : src) + (o * bd + begin) * inner;
    T* s = const_cast<T*>(to_big ? src : dst) + o * chunk;
    if (to_big) {
      std::copy_n(s, chunk, b);
    } else {
      std::copy_n(b, chunk, s);
    }
  }
}

/// Elements [begin, end) along an axis.
template <class T>
class SliceOp final : public Op<T> {
 public:
  std::string_view name() const override { return "slice"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const SliceAttrs s = slice_attrs(a);
    std::size_t ax = norm_axis(s.axis, in[0].size());
    Shape out = in[0];
    if (in[0][ax] != open) {
      auto [b, e] = slice_bounds(s.begin, s.end, in[0][ax]);
      out[ax] = e - b;
    } else {
      out[ax] = open;
    }
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const SliceAttrs s = slice_attrs(a);
    std::size_t ax = norm_axis(s.axis, in[0].shape.size());
    auto [b, e] = slice_bounds(s.begin, s.end, in[0].shape[ax]);
    block_copy(in[0].data, out.data, in[0].shape, ax, b, e - b, false);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    const SliceAttrs s = slice_attrs(n.attrs);
    gr[0] = pad_like(g, arg(y, n, 0), s.axis, s.begin);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const SliceAttrs s = slice_attrs(a);
    return "slice(" + args[0] + ", axis=" + std::to_string(s.axis) + ", " +
           std::to_string(s.begin) + ":" + std::to_string(s.end) + ")";
  }
};

/// The first input placed into zeros shaped like the second at begin along an axis.
template <class T>
class PadOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_operand = 1};
    return t;
  }
  std::string_view name() const override { return "pad_like"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    if (in[0].size() != in[1].size()) {
      throw std::invalid_argument("ranks differ: " + shape_str(in[0]) + " vs " + shape_str(in[1]));
    }
    const PadAttrs p = pad_attrs(a);
    std::size_t ax = norm_axis(p.axis, in[1].size());
    for (std::size_t i = 0; i < in[1].size(); ++i) {
      // Off the axis the block spans ref exactly, or the copy would leave its bounds.
      if (i != ax && in[0][i] != open && in[1][i] != open && in[0][i] != in[1][i]) {
        throw std::invalid_argument("block " + shape_str(in[0]) + " does not fit in " +
                                    shape_str(in[1]) + ": extents differ on axis " +
                                    std::to_string(i) + ", not the padded axis " +
                                    std::to_string(ax));
      }
    }
    if (in[1][ax] != open && in[0][ax] != open) {
      Dim b = slice_bounds(p.begin, in[1][ax], in[1][ax]).first;
      if (b + in[0][ax] > in[1][ax]) {
        throw std::invalid_argument("block " + shape_str(in[0]) + " at " + std::to_string(b) +
                                    " does not fit in " + shape_str(in[1]));
      }
    }
    return in[1];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    std::fill(out.data, out.data + out.size, T(0));
    const PadAttrs p = pad_attrs(a);
    std::size_t ax = norm_axis(p.axis, out.shape.size());
    Dim b = slice_bounds(p.begin, out.shape[ax], out.shape[ax]).first;
    block_copy(in[0].data, out.data, out.shape, ax, b, in[0].shape[ax], true);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    Expr<T> x = arg(y, n, 0);
    const PadAttrs p = pad_attrs(n.attrs);
    std::size_t ax = norm_axis(p.axis, x.rank());
    if (x.shape()[ax] == open) {
      throw GraphError("pad_like: the gradient needs a known extent along axis " +
                       std::to_string(ax) + " of " + x.graph().describe(x.id()));
    }
    // Normalise the start against the reference's extent when known; with an open extent
    // a negative start that ends at the last element slices "to the end".
    Dim b = p.begin, len = x.shape()[ax];
    Dim extent = arg(y, n, 1).shape()[ax];
    if (extent != open) b = slice_bounds(b, extent, extent).first;
    Dim e = (b < 0 && b + len >= 0) ? std::numeric_limits<Dim>::max() : b + len;
    gr[0] = slice(g, p.axis, b, e);
  }
};

/// Joins its inputs along an axis.
template <class T>
class ConcatOp final : public Op<T> {
 public:
  std::string_view name() const override { return "concatenate"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    Shape out = in[0];
    std::size_t ax = norm_axis(concat_attrs(a).axis, out.size());
    for (std::size_t k = 1; k < in.size(); ++k) {
      if (in[k].size() != out.size()) {
        throw std::invalid_argument("operand " + std::to_string(k) + " has rank " +
                                    std::to_string(in[k].size()) + ", expected " +
                                    std::to_string(out.size()));
      }
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (i == ax) {
          out[i] = (out[i] == open || in[k][i] == open) ? open : out[i] + in[k][i];
        } else if (out[i] != in[k][i] && out[i] != open && in[k][i] != open) {
          throw std::invalid_argument("operand " + std::to_string(k) + " " + shape_str(in[k]) +
                                      " differs from " + shape_str(in[0]) + " outside axis " +
                                      std::to_string(ax));
        }
      }
    }
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    std::size_t ax = norm_axis(concat_attrs(a).axis, out.shape.size());
    Dim begin = 0;
    for (const ConstTensor<T>& x : in) {
      block_copy(x.data, out.data, out.shape, ax, begin, x.shape[ax], true);
      begin += x.shape[ax];
    }
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    const Dim axis = concat_attrs(n.attrs).axis;
    Dim begin = 0;
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      Expr<T> x = arg(y, n, k);
      std::size_t ax = norm_axis(axis, x.rank());
      Dim len = x.shape()[ax];
      if (len == open) {
        throw GraphError("concatenate: the gradient needs known extents along axis " +
                         std::to_string(ax) + "; " + x.graph().describe(x.id()) + " is open");
      }
      gr[k] = slice(g, axis, begin, begin + len);
      begin += len;
    }
  }
};

/// Its inputs, of one shape, joined along a new axis.
template <class T>
class StackOp final : public Op<T> {
 public:
  std::string_view name() const override { return "stack"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    Shape first = in[0];
    for (std::size_t k = 1; k < in.size(); ++k) {
      bool fits = in[k].size() == first.size();
      for (std::size_t i = 0; fits && i < first.size(); ++i) {
        fits = in[k][i] == first[i] || in[k][i] == open || first[i] == open;
        if (first[i] == open) first[i] = in[k][i];
      }
      if (!fits) {
        throw std::invalid_argument("operand " + std::to_string(k) + " " + shape_str(in[k]) +
                                    " differs from operand 0 " + shape_str(in[0]) +
                                    "; stacked tensors need one shape");
      }
    }
    Shape out = in[0];
    std::size_t ax = norm_axis(concat_attrs(a).axis, out.size() + 1);
    out.insert(out.begin() + static_cast<std::ptrdiff_t>(ax), static_cast<Dim>(in.size()));
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    std::size_t ax = norm_axis(concat_attrs(a).axis, out.shape.size());
    for (std::size_t k = 0; k < in.size(); ++k) {
      block_copy(in[k].data, out.data, out.shape, ax, static_cast<Dim>(k), 1, true);
    }
  }
  void backward(const Node<T>& n, Expr<T>, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    const Dim axis = concat_attrs(n.attrs).axis;
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      const auto b = static_cast<Dim>(k);
      if (wanted[k]) gr[k] = squeeze(slice(g, axis, b, b + 1), {axis});
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    std::string s = "stack([";
    for (std::size_t k = 0; k < args.size(); ++k) s += (k ? ", " : "") + args[k];
    return s + "], axis=" + std::to_string(concat_attrs(a).axis) + ")";
  }
};

}  // namespace
}  // namespace detail

using detail::make;

template <class T>
Expr<T> slice(Expr<T> x, Dim axis, Dim begin, Dim end) {
  return make<detail::SliceOp<T>>({x}, to_attrs(detail::SliceAttrs{axis, begin, end}));
}
template <class T>
Expr<T> pad_like(Expr<T> x, Expr<T> ref, Dim axis, Dim begin) {
  return make<detail::PadOp<T>>({x, ref}, to_attrs(detail::PadAttrs{axis, begin}));
}
template <class T>
Expr<T> concatenate(const std::vector<Expr<T>>& xs, Dim axis) {
  if (xs.empty()) throw ValueError("concatenate: no operands");
  if (xs.size() == 1) return xs[0];
  return make<detail::ConcatOp<T>>(std::span<const Expr<T>>(xs),
                                   to_attrs(detail::ConcatAttrs{axis}));
}

template <class T>
Expr<T> stack(const std::vector<Expr<T>>& xs, Dim axis) {
  if (xs.empty()) throw ValueError("stack: no operands");
  const Dim r = static_cast<Dim>(xs[0].rank()) + 1;
  if (axis < -r || axis >= r) {
    throw ShapeError("stack: axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(r) + "; operand 0: " + xs[0].graph().describe(xs[0].id()));
  }
  return make<detail::StackOp<T>>(std::span<const Expr<T>>(xs),
                                  to_attrs(detail::ConcatAttrs{axis < 0 ? axis + r : axis}));
}

template <class T>
std::vector<Expr<T>> split(Expr<T> x, const SplitSizes& pieces, Dim axis) {
  const std::string where = x.graph().describe(x.id());
  std::size_t ax;
  try {
    ax = detail::norm_axis(axis, x.rank());
  } catch (const std::invalid_argument& e) {
    throw ShapeError(std::string("split: ") + e.what() + "; operand " + where);
  }
  const Dim d = x.shape()[ax];
  if (d == open) {
    throw ShapeError("split: axis " + std::to_string(axis) + " of " + where +
                     " is open; split needs its extent");
  }
  std::vector<Dim> sizes = pieces.sizes;
  if (sizes.empty()) {
    if (pieces.sections <= 0 || d % pieces.sections != 0) {
      throw ValueError("split: " + std::to_string(pieces.sections) +
                       " equal sections do not divide extent " + std::to_string(d) + " of axis " +
                       std::to_string(axis) + " of " + where);
    }
    sizes.assign(static_cast<std::size_t>(pieces.sections), d / pieces.sections);
  }
  Dim total = 0;
  for (Dim s : sizes) total += s;
  if (total != d || std::any_of(sizes.begin(), sizes.end(), [](Dim s) { return s < 0; })) {
    throw ValueError("split: sizes " + shape_str(sizes) + " do not add up to extent " +
                     std::to_string(d) + " of axis " + std::to_string(axis) + " of " + where);
  }
  if (sizes.size() == 1) return {x};
  std::vector<Expr<T>> out;
  Dim begin = 0;
  for (Dim s : sizes) {
    out.push_back(slice(x, static_cast<Dim>(ax), begin, begin + s));
    begin += s;
  }
  return out;
}

XGRAD_SLICE_OPS(XGRAD_DETAIL_INSTANTIATE)

template std::vector<Expr<float>> split(Expr<float>, const SplitSizes&, Dim);
template std::vector<Expr<double>> split(Expr<double>, const SplitSizes&, Dim);

}  // namespace xgrad
