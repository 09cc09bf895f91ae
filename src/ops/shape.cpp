// Ops that move or replicate elements without arithmetic: reshape, squeeze/unsqueeze,
// broadcasting and its adjoint, row gather/scatter (slices and joins: slicing.cpp).
#include <cstring>

#include "../exec/thread_pool.hpp"
#include "common.hpp"

namespace xgrad {
namespace detail {
namespace {

template <class T>
void copy(ConstTensor<T> in, Tensor<T> out) {
  if (out.size) std::memcpy(out.data, in.data, out.size * sizeof(T));
}

/// A reshape target as the caller wrote it: -1 is "infer this extent" there, not an open
/// dimension (which shape_str shows as "?").
std::string target_str(const Shape& s) {
  std::string r = "(";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
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
    if (n_infer > 1) throw std::invalid_argument("more than one -1 in target " + target_str(out));
    for (Dim d : out) {
      if (d < -1) throw std::invalid_argument("negative extent in target " + target_str(out));
    }
    if (shape_overflows(out)) {  // (the -1 entry is skipped)
      throw std::invalid_argument("the element count of target " + target_str(out) +
                                  " overflows a 64-bit index");
    }
    if (in_open) return out;  // checked again at run time, when the batch is known
    std::size_t known = 1;
    for (Dim d : out) known *= d == -1 ? 1 : static_cast<std::size_t>(d);
    std::size_t total = shape_size(in[0]);
    if (n_infer) {
      if (known == 0 || total % known) {
        throw std::invalid_argument("cannot reshape " + shape_str(in[0]) + " into " +
                                    target_str(out));
      }
      *std::find(out.begin(), out.end(), Dim{-1}) = static_cast<Dim>(total / known);
    } else if (known != total) {
      throw std::invalid_argument("cannot reshape " + shape_str(in[0]) + " (" +
                                  std::to_string(total) + " elements) into " + target_str(out));
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
    // broadcast_like's reference may still be open when the graph is built; once both
    // shapes are known (at the latest when a run binds them) they are checked alike.
    const auto known = [](const Shape& sh) {
      return std::none_of(sh.begin(), sh.end(), [](Dim d) { return d == open; });
    };
    if (b != target && (in.size() == 1 || (known(in[0]) && known(target)))) {
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
    // Sums accumulate in double, as sum does (a float bias gradient over thousands of rows
    // would otherwise lose digits), in a per-thread scratch buffer that only grows: a
    // run with unchanged shapes allocates nothing.
    thread_local std::vector<double> scratch;
    if (is_row_of(out.shape, in[0].shape) && out.size) {
      // The rows summed into one: each part of the rows into partial sums of its own, added
      // in part order (exec::parts_for, as a row-tiled group's sum_to adds them).
      const std::size_t m = out.size, rows = in[0].size / m, parts = exec::parts_for(rows);
      if (scratch.size() < parts * m) scratch.resize(parts * m);
      double* acc = scratch.data();
      const T* x = in[0].data;
      const bool concurrent =
          static_cast<double>(in[0].size) >= exec::kMinPartWork * static_cast<double>(parts);
      exec::parallel_for(rows, parts, concurrent, [&](std::size_t b, std::size_t e, std::size_t p) {
        double* a = acc + p * m;
        std::fill(a, a + m, 0.0);
        for (std::size_t r = b; r < e; ++r) accumulate(x + r * m, a, m);
      });
      for (std::size_t j = 0; j < m; ++j) {
        double total = 0;
        for (std::size_t p = 0; p < parts; ++p) total += acc[p * m + j];
        out.data[j] = static_cast<T>(total);
      }
      return;
    }
    if (scratch.size() < out.size) scratch.resize(out.size);
    double* acc = scratch.data();
    std::fill(acc, acc + out.size, 0.0);
    std::array<std::ptrdiff_t, max_rank> si{}, so{};
    broadcast_strides(in[0].shape, in[0].shape, si.data());
    broadcast_strides(out.shape, in[0].shape, so.data());
    const T* x = in[0].data;
    strided_loop<2>(in[0].shape, {si.data(), so.data()},
                    [&](const auto& off, const auto& st, std::size_t n) {
                      double* o = acc + off[1];
                      if (st[1] == 0) {
                        double a = 0;
                        for (std::size_t j = 0; j < n; ++j) a += static_cast<double>(x[off[0] + j]);
                        *o += a;
                      } else {
                        for (std::size_t j = 0; j < n; ++j)
                          o[j] += static_cast<double>(x[off[0] + j]);
                      }
                    });
    for (std::size_t i = 0; i < out.size; ++i) out.data[i] = static_cast<T>(acc[i]);
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
    auto differ = [](Dim a, Dim b) { return a != b && a != open && b != open; };
    bool fits = in[0].size() == in[2].size() && !in[0].empty();
    for (std::size_t i = 1; fits && i < in[0].size(); ++i) fits = !differ(in[0][i], in[2][i]);
    if (!fits) {
      throw std::invalid_argument("rows " + shape_str(in[0]) + " do not fit " + shape_str(in[2]));
    }
    // One row per index: forward reads in[0] row k for index k.
    if (differ(in[0][0], in[1][0])) {
      throw std::invalid_argument("rows " + shape_str(in[0]) + " and indices " + shape_str(in[1]) +
                                  " differ in count");
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
  if (!ref.valid()) ref.graph("reshape_like");
  if (x.graph("reshape_like").same_runtime_shape(x.id(), ref.id())) return x;
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
  if (x.graph("broadcast_to").node(x.id()).shape == shape) return x;
  return make<detail::BroadcastOp<T>>({x}, to_attrs(detail::BroadcastAttrs{shape}));
}
template <class T>
Expr<T> broadcast_like(Expr<T> x, Expr<T> ref) {
  if (!ref.valid()) ref.graph("broadcast_like");
  if (x.graph("broadcast_like").same_runtime_shape(x.id(), ref.id())) return x;
  return make<detail::BroadcastOp<T>>({x, ref});
}
template <class T>
Expr<T> sum_to_like(Expr<T> x, Expr<T> ref) {
  if (!ref.valid()) ref.graph("sum_to_like");
  if (x.graph("sum_to_like").same_runtime_shape(x.id(), ref.id())) return x;
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
XGRAD_SHAPE_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
