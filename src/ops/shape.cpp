// Ops that move or replicate elements without arithmetic: reshape, squeeze/unsqueeze,
// broadcasting and its adjoint, row gather/scatter, slicing, concatenation.
#include <cstring>
#include <limits>

#include "common.hpp"

namespace xgrad {
namespace detail {
namespace {

template <class T>
void copy(ConstTensor<T> in, Tensor<T> out) {
  if (out.size) std::memcpy(out.data, in.data, out.size * sizeof(T));
}

/// Same elements, a new static shape (one -1 entry inferred).
template <class T>
class ReshapeOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.copy_when_same_size = true};
    return t;
  }
  std::string_view name() const override { return "reshape"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    Shape out = reshape_attrs(a).shape;
    bool in_open = std::count(in[0].begin(), in[0].end(), open) > 0;
    std::size_t n_infer = std::count(out.begin(), out.end(), Dim{-1});
    if (n_infer > 1) throw std::invalid_argument("more than one -1 in target " + shape_str(out));
    for (Dim d : out) {
      if (d < -1) throw std::invalid_argument("negative extent in target " + shape_str(out));
    }
    if (in_open) return out;  // checked again at run time, when the batch is known
    std::size_t known = 1;
    for (Dim d : out) known *= d == -1 ? 1 : static_cast<std::size_t>(d);
    std::size_t total = shape_size(in[0]);
    if (n_infer) {
      if (known == 0 || total % known) {
        throw std::invalid_argument("cannot reshape " + shape_str(in[0]) + " into " +
                                    shape_str(out));
      }
      *std::find(out.begin(), out.end(), Dim{-1}) = static_cast<Dim>(total / known);
    } else if (known != total) {
      throw std::invalid_argument("cannot reshape " + shape_str(in[0]) + " (" +
                                  std::to_string(total) + " elements) into " + shape_str(out));
    }
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    copy(in[0], out);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = reshape_like(g, arg(y, n, 0));
  }
};

/// Same elements with another node's run-time shape.
template <class T>
class ReshapeLikeOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.copy_when_same_size = true, .shape_operand = 1};
    return t;
  }
  std::string_view name() const override { return "reshape_like"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    if (same_known(in[0], in[0]) && same_known(in[1], in[1]) &&
        shape_size(in[0]) != shape_size(in[1])) {
      throw std::invalid_argument("element counts differ: " + shape_str(in[0]) + " vs " +
                                  shape_str(in[1]));
    }
    return in[1];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    copy(in[0], out);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = reshape_like(g, arg(y, n, 0));
  }
  std::string format(std::span<const std::string> args, const Attrs&) const override {
    return "reshape(" + args[0] + ", shape(" + args[1] + "))";
  }
  int shape_source(const Node<T>&, const Graph<T>&) const override { return 1; }
};

/// Removes (Squeeze) or inserts size-1 axes.
template <class T, bool Squeeze>
class AxesOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.copy_when_same_size = true};
    return t;
  }
  std::string_view name() const override { return Squeeze ? "squeeze" : "unsqueeze"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const std::vector<Dim>& given = squeeze_attrs(a).axes;
    Shape out;
    if constexpr (Squeeze) {
      std::vector<Dim> axes = norm_axes(given, in[0].size());
      for (std::size_t i = 0; i < in[0].size(); ++i) {
        bool drop = std::find(axes.begin(), axes.end(), static_cast<Dim>(i)) != axes.end();
        if (drop && in[0][i] != 1 && in[0][i] != open) {
          throw std::invalid_argument("cannot squeeze axis " + std::to_string(i) + " of extent " +
                                      std::to_string(in[0][i]));
        }
        if (!drop) out.push_back(in[0][i]);
      }
      return out;
    }
    // No axes: nothing to insert (norm_axes would read an empty list as every axis).
    if (given.empty()) return in[0];
    std::size_t r = in[0].size() + given.size();
    std::vector<Dim> axes = norm_axes(given, r);
    for (std::size_t i = 0, k = 0; i < r; ++i) {
      bool ins = std::find(axes.begin(), axes.end(), static_cast<Dim>(i)) != axes.end();
      out.push_back(ins ? 1 : in[0][k++]);
    }
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    copy(in[0], out);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = reshape_like(g, arg(y, n, 0));
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return std::string(name()) + "(" + args[0] + ", " + shape_str(squeeze_attrs(a).axes) + ")";
  }
};
template <class T>
using SqueezeOp = AxesOp<T, true>;
template <class T>
using UnsqueezeOp = AxesOp<T, false>;

/// Broadcast to a static shape or, with two inputs, to the second's run-time shape.
template <class T>
class BroadcastOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{
        .copy_when_same_size = true, .shape_operand = 1, .rows = RowRole::elementwise};
    return t;
  }
  std::string_view name() const override { return "broadcast_to"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    Shape target = in.size() > 1 ? in[1] : broadcast_attrs(a).shape;
    if (in.size() == 1 && std::any_of(target.begin(), target.end(), [](Dim d) { return d < 0; })) {
      // An open extent would reach the executor as a negative run-time size.
      throw std::invalid_argument("target " + shape_str(target) +
                                  " has an open extent: expected a static shape (broadcast_like "
                                  "takes a run-time shape)");
    }
    Shape b = broadcast_shapes(in[0], target);
    if (b != target && in.size() == 1) {
      throw std::invalid_argument("cannot broadcast " + shape_str(in[0]) + " to " +
                                  shape_str(target));
    }
    if (in[0].size() > target.size()) {
      throw std::invalid_argument("cannot broadcast " + shape_str(in[0]) + " to lower rank " +
                                  shape_str(target));
    }
    return target;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    if (in[0].size == out.size) return copy(in[0], out);
    std::array<std::ptrdiff_t, max_rank> si{}, so{};
    broadcast_strides(in[0].shape, out.shape, si.data());
    broadcast_strides(out.shape, out.shape, so.data());
    const T* x = in[0].data;
    strided_loop<2>(out.shape, {si.data(), so.data()},
                    [&](const auto& off, const auto& st, std::size_t n) {
                      for (std::size_t j = 0; j < n; ++j)
                        out.data[off[1] + j] = x[off[0] + j * st[0]];
                    });
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = sum_to_like(g, arg(y, n, 0));
  }
  int shape_source(const Node<T>& n, const Graph<T>&) const override {
    return n.inputs.size() > 1 ? 1 : -1;
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    if (args.size() > 1) return "broadcast(" + args[0] + ", shape(" + args[1] + "))";
    return "broadcast(" + args[0] + ", " + shape_str(broadcast_attrs(a).shape) + ")";
  }
};

/// Sums the first input down to the second's run-time shape (the adjoint of broadcasting).
template <class T>
class SumToOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{
        .copy_when_same_size = true, .shape_operand = 1, .rows = RowRole::sum_to};
    return t;
  }
  std::string_view name() const override { return "sum_to"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    if (in[1].size() > in[0].size()) {
      throw std::invalid_argument("cannot sum " + shape_str(in[0]) + " down to higher rank " +
                                  shape_str(in[1]));
    }
    broadcast_shapes(in[0], in[1]);
    return in[1];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    if (in[0].size == out.size) return copy(in[0], out);
    std::fill(out.data, out.data + out.size, T(0));
    std::array<std::ptrdiff_t, max_rank> si{}, so{};
    broadcast_strides(in[0].shape, in[0].shape, si.data());
    broadcast_strides(out.shape, in[0].shape, so.data());
    const T* x = in[0].data;
    strided_loop<2>(in[0].shape, {si.data(), so.data()},
                    [&](const auto& off, const auto& st, std::size_t n) {
                      T* o = out.data + off[1];
                      if (st[1] == 0) {
                        T acc = 0;
                        for (std::size_t j = 0; j < n; ++j) acc += x[off[0] + j];
                        *o += acc;
                      } else {
                        for (std::size_t j = 0; j < n; ++j) o[j] += x[off[0] + j];
                      }
                    });
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = broadcast_like(g, arg(y, n, 0));
  }
  std::string format(std::span<const std::string> args, const Attrs&) const override {
    return "sum_to(" + args[0] + ", shape(" + args[1] + "))";
  }
  int shape_source(const Node<T>&, const Graph<T>&) const override { return 1; }
};

/// Zeros of the operand's run-time shape.
template <class T>
class ZerosLikeOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_only = true};
    return t;
  }
  std::string_view name() const override { return "zeros_like"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override { return in[0]; }
  void forward(std::span<const ConstTensor<T>>, Tensor<T> out, const Attrs&) const override {
    std::fill(out.data, out.data + out.size, T(0));
  }
  void backward(const Node<T>&, Expr<T>, Expr<T>, std::span<const bool>,
                std::span<Expr<T>>) const override {}
  std::string format(std::span<const std::string>, const Attrs&) const override { return "0"; }
  int shape_source(const Node<T>&, const Graph<T>&) const override { return 0; }
};

/// Validated row index from a stored index value.
template <class T>
std::size_t row_index(T v, Dim rows, std::size_t pos) {
  if (!(v >= 0 && v < static_cast<T>(rows)) || v != std::floor(v)) {
    throw ValueError("row index " + std::to_string(v) + " at position " + std::to_string(pos) +
                     " is not an integer in [0, " + std::to_string(rows) + ")");
  }
  return static_cast<std::size_t>(v);
}

/// Rows of a tensor picked by a 1-d index node.
template <class T>
class GatherOp final : public Op<T> {
 public:
  std::string_view name() const override { return "gather_rows"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    if (in[0].empty()) throw std::invalid_argument("cannot gather rows of a 0-d tensor");
    if (in[1].size() != 1)
      throw std::invalid_argument("indices must be 1-d, got " + shape_str(in[1]));
    Shape out = in[0];
    out[0] = in[1][0];
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    std::size_t row = in[0].shape[0] ? in[0].size / in[0].shape[0] : 0;
    for (std::size_t k = 0; k < in[1].size; ++k) {
      std::size_t r = row_index(in[1].data[k], in[0].shape[0], k);
      std::copy_n(in[0].data + r * row, row, out.data + k * row);
    }
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = scatter_add_rows(g, arg(y, n, 1), arg(y, n, 0));
  }
};

/// Rows added into zeros shaped like a reference (the adjoint of gather_rows).
template <class T>
class ScatterOp final : public Op<T> {
 public:
  std::string_view name() const override { return "scatter_add_rows"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    if (in[1].size() != 1)
      throw std::invalid_argument("indices must be 1-d, got " + shape_str(in[1]));
    if (in[0].size() != in[2].size() || in[0].empty()) {
      throw std::invalid_argument("rows " + shape_str(in[0]) + " do not fit " + shape_str(in[2]));
    }
    return in[2];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    std::fill(out.data, out.data + out.size, T(0));
    std::size_t row = out.shape[0] ? out.size / out.shape[0] : 0;
    for (std::size_t k = 0; k < in[1].size; ++k) {
      std::size_t r = row_index(in[1].data[k], out.shape[0], k);
      for (std::size_t j = 0; j < row; ++j) out.data[r * row + j] += in[0].data[k * row + j];
    }
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = gather_rows(g, arg(y, n, 1));
  }
};

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

}  // namespace

template <class T>
bool is_broadcast_like(const Node<T>& n) {
  return is_node_of<BroadcastOp<T>>(n) && n.inputs.size() == 2;
}
template bool is_broadcast_like(const Node<float>&);
template bool is_broadcast_like(const Node<double>&);

}  // namespace detail

using detail::make;

template <class T>
Expr<T> reshape(Expr<T> x, Shape shape) {
  return make<detail::ReshapeOp<T>>({x}, to_attrs(detail::ReshapeAttrs{shape}));
}
template <class T>
Expr<T> reshape_like(Expr<T> x, Expr<T> ref) {
  if (x.graph().same_runtime_shape(x.id(), ref.id())) return x;
  return make<detail::ReshapeLikeOp<T>>({x, ref});
}
template <class T>
Expr<T> unsqueeze(Expr<T> x, std::vector<Dim> axes) {
  return make<detail::UnsqueezeOp<T>>({x}, to_attrs(detail::SqueezeAttrs{axes}));
}
template <class T>
Expr<T> squeeze(Expr<T> x, std::vector<Dim> axes) {
  return make<detail::SqueezeOp<T>>({x}, to_attrs(detail::SqueezeAttrs{axes}));
}
template <class T>
Expr<T> broadcast_to(Expr<T> x, Shape shape) {
  if (x.shape() == shape) return x;
  return make<detail::BroadcastOp<T>>({x}, to_attrs(detail::BroadcastAttrs{shape}));
}
template <class T>
Expr<T> broadcast_like(Expr<T> x, Expr<T> ref) {
  if (x.graph().same_runtime_shape(x.id(), ref.id())) return x;
  return make<detail::BroadcastOp<T>>({x, ref});
}
template <class T>
Expr<T> sum_to_like(Expr<T> x, Expr<T> ref) {
  if (x.graph().same_runtime_shape(x.id(), ref.id())) return x;
  return make<detail::SumToOp<T>>({x, ref});
}
template <class T>
Expr<T> zeros_like(Expr<T> x) {
  return make<detail::ZerosLikeOp<T>>({x});
}
template <class T>
Expr<T> gather_rows(Expr<T> x, Expr<T> indices) {
  return make<detail::GatherOp<T>>({x, indices});
}
template <class T>
Expr<T> scatter_add_rows(Expr<T> x, Expr<T> indices, Expr<T> ref) {
  return make<detail::ScatterOp<T>>({x, indices, ref});
}
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

XGRAD_SHAPE_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
