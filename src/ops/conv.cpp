// Convolution and pooling. Each op's gradient is built from the ops of this file, so the
// set is closed under differentiation: conv2d's adjoints in x (conv_transpose2d) and in w
// are ops whose own adjoints are conv2d and each other; max pooling is "the value at the
// window's maximum" (pool_select), whose adjoint scatters to those positions and back.
//
// One internal node carries work shared within a run, in a buffer the plan owns: the
// offsets of each pooling window's maximum, read by max_pool2d and by its gradient, which
// give their gradient to the values themselves, so none flows into the offsets.
#include "../kernels/conv.hpp"

#include "common.hpp"
#include "xgrad/ops/conv.hpp"
#include "xgrad/ops/shape.hpp"

namespace xgrad {
namespace detail {
namespace {

// Attributes: conv ops ints = {sh, sw, ph, pw, dh, dw}; pooling ints = {kh, kw, sh, sw,
// ph, pw} and flag = count_include_pad.
struct ConvAttrs {
  Dim sh, sw, ph, pw, dh, dw;
};
ConvAttrs conv_attrs(const Attrs& a) {
  return {a.ints[0], a.ints[1], a.ints[2], a.ints[3], a.ints[4], a.ints[5]};
}
struct PoolAttrs {
  Dim kh, kw, sh, sw, ph, pw;
  bool include_pad;
};
PoolAttrs pool_attrs(const Attrs& a) {
  return {a.ints[0], a.ints[1], a.ints[2], a.ints[3], a.ints[4], a.ints[5], a.flag};
}
/// Output extent along one axis, or open when the input extent is.
Dim out_extent(Dim in, Dim k, Dim s, Dim p, Dim d) {
  if (in == open) return open;
  const Dim span = d * (k - 1) + 1;
  if (in + 2 * p < span) {
    throw std::invalid_argument("the window (" + std::to_string(span) +
                                " with dilation) does not fit in an input extent of " +
                                std::to_string(in) + " with padding " + std::to_string(p));
  }
  return (in + 2 * p - span) / s + 1;
}

void require_rank4(std::span<const Shape> in, std::size_t k, const char* role) {
  if (in[k].size() != 4) {
    throw std::invalid_argument(std::string(role) + " must be 4-d (NCHW), got " + shape_str(in[k]));
  }
}

bool same_or_open(Dim a, Dim b) { return a == b || a == open || b == open; }

kernels::ConvGeometry conv_geometry(std::span<const Dim> x, std::span<const Dim> w,
                                    std::span<const Dim> y, const ConvAttrs& a) {
  auto u = [](Dim d) { return static_cast<std::size_t>(d); };
  return {u(x[0]), u(x[1]), u(x[2]), u(x[3]), u(w[0]), u(w[2]), u(w[3]), u(y[2]),
          u(y[3]), u(a.sh), u(a.sw), u(a.ph), u(a.pw), u(a.dh), u(a.dw)};
}
kernels::ConvGeometry pool_geometry(std::span<const Dim> x, std::span<const Dim> y,
                                    const PoolAttrs& a) {
  auto u = [](Dim d) { return static_cast<std::size_t>(d); };
  return {u(x[0]), u(x[1]), u(x[2]), u(x[3]), u(x[1]), u(a.kh), u(a.kw), u(y[2]),
          u(y[3]), u(a.sh), u(a.sw), u(a.ph), u(a.pw), 1,       1};
}

/// The shape conv2d gives x (n, c, h, w) and w (o, c, kh, kw).
Shape conv_shape(const Shape& x, const Shape& w, const ConvAttrs& a) {
  if (!same_or_open(x[1], w[1])) {
    throw std::invalid_argument("input channels differ: x " + shape_str(x) + " has " +
                                std::to_string(x[1]) + ", weights " + shape_str(w) + " expect " +
                                std::to_string(w[1]));
  }
  if (w[2] == open || w[3] == open) {
    throw std::invalid_argument("the window extents of the weights " + shape_str(w) +
                                " must be known");
  }
  return {x[0], w[0], out_extent(x[2], w[2], a.sh, a.ph, a.dh),
          out_extent(x[3], w[3], a.sw, a.pw, a.dw)};
}

std::string conv_format(const std::string& name, std::span<const std::string> args,
                        const Attrs& at) {
  const ConvAttrs a = conv_attrs(at);
  std::string s = name + "(" + args[0] + ", " + args[1];
  if (args.size() == 3)
    s +=
        ", " +
        args[2];  // conv2d's bias (the adjoints pass two: their third operand only gives the shape)
  auto pair = [](Dim p, Dim q) {
    return p == q ? std::to_string(p) : "(" + std::to_string(p) + ", " + std::to_string(q) + ")";
  };
  if (a.sh != 1 || a.sw != 1) s += ", stride=" + pair(a.sh, a.sw);
  if (a.ph || a.pw) s += ", padding=" + pair(a.ph, a.pw);
  if (a.dh != 1 || a.dw != 1) s += ", dilation=" + pair(a.dh, a.dw);
  return s + ")";
}

template <class T>
Expr<T> conv_grad_input(Expr<T> g, Expr<T> w, Expr<T> x, const Attrs& a);
template <class T>
Expr<T> conv_grad_weight(Expr<T> x, Expr<T> g, Expr<T> w, const Attrs& a);
template <class T>
Expr<T> conv(Expr<T> x, Expr<T> w, const Attrs& a);

/// True when shape_rule() accepts the operands: builders create a shared internal node
/// only then, and otherwise let the public op's own shape rule report the error.
template <class F>
bool fits(F&& shape_rule) {
  try {
    shape_rule();
    return true;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

template <class T>
Expr<T> conv_grad_bias(Expr<T> g);

/// y = conv2d(x, w), plus the bias b (o) per output channel when there is a third operand.
template <class T>
class Conv2dOp final : public Op<T> {
 public:
  std::string_view name() const override { return "conv2d"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    require_rank4(in, 0, "the input");
    require_rank4(in, 1, "the weights");
    if (in.size() == 3 && (in[2].size() != 1 || !same_or_open(in[2][0], in[1][0]))) {
      throw std::invalid_argument("the bias " + shape_str(in[2]) +
                                  " must hold one value per output channel of the weights " +
                                  shape_str(in[1]));
    }
    return conv_shape(in[0], in[1], conv_attrs(a));
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    kernels::conv2d(in[0].data, in[1].data, in.size() == 3 ? in[2].data : nullptr, out.data,
                    conv_geometry(in[0].shape, in[1].shape, out.shape, conv_attrs(a)));
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    Expr<T> x = arg(y, n, 0), w = arg(y, n, 1);
    if (wanted[0]) gr[0] = conv_grad_input(g, w, x, n.attrs);
    if (wanted[1]) gr[1] = conv_grad_weight(x, g, w, n.attrs);
    if (n.inputs.size() == 3 && wanted[2]) gr[2] = conv_grad_bias(g);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return conv_format("conv2d", args, a);
  }
};

/// dx = conv_transpose2d(g, w) shaped like x (operand 2, read for its shape): the adjoint
/// of conv2d in its input.
template <class T>
class Conv2dGradInputOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_operand = 2};
    return t;
  }
  std::string_view name() const override { return "conv_transpose2d"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    for (std::size_t k = 0; k < 3; ++k) require_rank4(in, k, k == 1 ? "the weights" : "operand");
    const Shape y = conv_shape(in[2], in[1], conv_attrs(a));
    for (std::size_t i = 0; i < 4; ++i) {
      if (!same_or_open(y[i], in[0][i])) {
        throw std::invalid_argument("the output gradient " + shape_str(in[0]) +
                                    " does not match conv2d's output " + shape_str(y));
      }
    }
    return in[2];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    kernels::conv2d_grad_input(in[0].data, in[1].data, out.data,
                               conv_geometry(out.shape, in[1].shape, in[0].shape, conv_attrs(a)));
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> G, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    Expr<T> g = arg(y, n, 0), w = arg(y, n, 1);
    if (wanted[0]) gr[0] = conv(G, w, n.attrs);
    if (wanted[1]) gr[1] = conv_grad_weight(G, g, w, n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return conv_format("conv_transpose2d", args.first(2), a);
  }
};

/// dw shaped like w (operand 2, read for its shape) from input x and output gradient g:
/// the adjoint of conv2d in its weights.
template <class T>
class Conv2dGradWeightOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_operand = 2};
    return t;
  }
  std::string_view name() const override { return "conv2d_weight"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    for (std::size_t k = 0; k < 3; ++k) require_rank4(in, k, k == 0 ? "the input" : "operand");
    const Shape y = conv_shape(in[0], in[2], conv_attrs(a));
    for (std::size_t i = 0; i < 4; ++i) {
      if (!same_or_open(y[i], in[1][i])) {
        throw std::invalid_argument("the output gradient " + shape_str(in[1]) +
                                    " does not match conv2d's output " + shape_str(y));
      }
    }
    return in[2];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    kernels::conv2d_grad_weight(in[0].data, in[1].data, out.data,
                                conv_geometry(in[0].shape, out.shape, in[1].shape, conv_attrs(a)));
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> G, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    Expr<T> x = arg(y, n, 0), g = arg(y, n, 1);
    if (wanted[0]) gr[0] = conv_grad_input(g, G, x, n.attrs);
    if (wanted[1]) gr[1] = conv(x, G, n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return conv_format("conv2d_weight", args.first(2), a);
  }
};

/// db (o) = g (n, o, oh, ow) summed over everything but the channel: the adjoint of the
/// bias of conv2d_bias.
template <class T>
class Conv2dGradBiasOp final : public Op<T> {
 public:
  std::string_view name() const override { return "conv2d_bias_grad"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    require_rank4(in, 0, "the output gradient");
    return {in[0][1]};
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    auto u = [](Dim d) { return static_cast<std::size_t>(d); };
    kernels::ConvGeometry geo;
    geo.n = u(in[0].shape[0]);
    geo.o = u(in[0].shape[1]);
    geo.oh = u(in[0].shape[2]);
    geo.ow = u(in[0].shape[3]);
    kernels::conv2d_grad_bias(in[0].data, out.data, geo);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> G, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    Expr<T> g = arg(y, n, 0);
    if (wanted[0]) gr[0] = broadcast_like(reshape(G, {-1, 1, 1}), g);
  }
};

template <class T>
Expr<T> conv(Expr<T> x, Expr<T> w, const Attrs& a) {
  return make<Conv2dOp<T>>({x, w}, a);
}
template <class T>
Expr<T> conv_grad_bias(Expr<T> g) {
  return make<Conv2dGradBiasOp<T>>({g});
}
template <class T>
Expr<T> conv_grad_input(Expr<T> g, Expr<T> w, Expr<T> x, const Attrs& a) {
  return make<Conv2dGradInputOp<T>>({g, w, x}, a);
}
template <class T>
Expr<T> conv_grad_weight(Expr<T> x, Expr<T> g, Expr<T> w, const Attrs& a) {
  return make<Conv2dGradWeightOp<T>>({x, g, w}, a);
}

// ---------------------------------------------------------------- pooling

Shape pool_shape(const Shape& x, const PoolAttrs& a) {
  return {x[0], x[1], out_extent(x[2], a.kh, a.sh, a.ph, 1), out_extent(x[3], a.kw, a.sw, a.pw, 1)};
}

std::string pool_format(const std::string& name, const std::string& x, const Attrs& at) {
  const PoolAttrs a = pool_attrs(at);
  auto pair = [](Dim p, Dim q) {
    return p == q ? std::to_string(p) : "(" + std::to_string(p) + ", " + std::to_string(q) + ")";
  };
  std::string s = name + "(" + x + ", " + pair(a.kh, a.kw);
  if (a.sh != a.kh || a.sw != a.kw) s += ", stride=" + pair(a.sh, a.sw);
  if (a.ph || a.pw) s += ", padding=" + pair(a.ph, a.pw);
  return s + ")";
}

template <class T>
Expr<T> pool_scatter(Expr<T> k, Expr<T> g, const Attrs& a);
template <class T>
Expr<T> pool_select(Expr<T> k, Expr<T> v, const Attrs& a);

/// The offset in its window of each window's largest k (kernels::pool_argmax), shaped like
/// the pooled output. Internal: read by pool_select and pool_scatter, so a max pooling
/// and its gradient search the windows once per run.
template <class T>
class PoolArgmaxOp final : public Op<T> {
 public:
  std::string_view name() const override { return "max_pool2d_argmax"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    require_rank4(in, 0, "the input");
    return pool_shape(in[0], pool_attrs(a));
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    kernels::pool_argmax(in[0].data, out.data,
                         pool_geometry(in[0].shape, out.shape, pool_attrs(a)));
  }
  // Piecewise constant: no gradient (the consumers say so for their keys too).
  void backward(const Node<T>&, Expr<T>, Expr<T>, std::span<const bool>,
                std::span<Expr<T>>) const override {}
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return pool_format("max_pool2d_argmax", args[0], a);
  }
};

/// The offsets of k's window maxima, or k itself when the window does not fit (the
/// consumer's shape rule then throws the ShapeError that names it).
template <class T>
Expr<T> maxima(Expr<T> k, const Attrs& a) {
  const Shape& ks = k.shape();
  const bool ok = ks.size() == 4 && fits([&] { pool_shape(ks, pool_attrs(a)); });
  return ok ? make<PoolArgmaxOp<T>>({k}, a) : k;
}

/// The value of v at the largest k of each window; max_pool2d(x) is pool_select(x, x).
/// Reads the stored offsets (operand 2) and k's shape only. No gradient flows to k:
/// which position wins changes only at ties.
template <class T>
class PoolSelectOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_operand = 0};
    return t;
  }
  std::string_view name() const override { return "max_pool2d"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    require_rank4(in, 0, "the input");
    if (in[1] != in[0]) {
      throw std::invalid_argument("the selected values " + shape_str(in[1]) +
                                  " must have the keys' shape " + shape_str(in[0]));
    }
    return pool_shape(in[0], pool_attrs(a));
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    kernels::pool_gather(in[2].data, in[1].data, out.data,
                         pool_geometry(in[0].shape, out.shape, pool_attrs(a)));
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    if (wanted[1]) gr[1] = pool_scatter(arg(y, n, 0), g, n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    if (args[0] == args[1]) return pool_format("max_pool2d", args[0], a);
    return pool_format("max_pool2d_at", args[0] + ", " + args[1], a);
  }
};

/// g added at the largest k of each window, shaped like k: pool_select's adjoint in v.
/// Reads the stored offsets (operand 2) and k's shape only.
template <class T>
class PoolScatterOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_operand = 0};
    return t;
  }
  std::string_view name() const override { return "max_pool2d_grad"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    require_rank4(in, 0, "the input");
    const Shape y = pool_shape(in[0], pool_attrs(a));
    if (in[1].size() != 4 || !std::equal(y.begin(), y.end(), in[1].begin(), same_or_open)) {
      throw std::invalid_argument("the output gradient " + shape_str(in[1]) +
                                  " does not match the pooled shape " + shape_str(y));
    }
    return in[0];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    kernels::pool_scatter(in[2].data, in[1].data, out.data,
                          pool_geometry(in[0].shape, in[1].shape, pool_attrs(a)));
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> G, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    if (wanted[1]) gr[1] = pool_select(arg(y, n, 0), G, n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return pool_format("max_pool2d_grad", args[0] + ", " + args[1], a);
  }
};

template <class T>
Expr<T> avg_pool_grad(Expr<T> g, Expr<T> x, const Attrs& a);
template <class T>
Expr<T> avg_pool(Expr<T> x, const Attrs& a);

/// The mean of each window.
template <class T>
class AvgPoolOp final : public Op<T> {
 public:
  std::string_view name() const override { return "avg_pool2d"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    require_rank4(in, 0, "the input");
    return pool_shape(in[0], pool_attrs(a));
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const PoolAttrs p = pool_attrs(a);
    kernels::avg_pool(in[0].data, out.data, pool_geometry(in[0].shape, out.shape, p),
                      p.include_pad);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = avg_pool_grad(g, arg(y, n, 0), n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return pool_format("avg_pool2d", args[0], a);
  }
};

/// avg_pool2d's adjoint: each window's gradient spread evenly over it, shaped like x
/// (operand 1, read for its shape).
template <class T>
class AvgPoolGradOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.shape_operand = 1};
    return t;
  }
  std::string_view name() const override { return "avg_pool2d_grad"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    require_rank4(in, 1, "the input");
    const Shape y = pool_shape(in[1], pool_attrs(a));
    if (in[0].size() != 4 || !std::equal(y.begin(), y.end(), in[0].begin(), same_or_open)) {
      throw std::invalid_argument("the output gradient " + shape_str(in[0]) +
                                  " does not match the pooled shape " + shape_str(y));
    }
    return in[1];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const PoolAttrs p = pool_attrs(a);
    kernels::avg_pool_grad(in[0].data, out.data, pool_geometry(out.shape, in[0].shape, p),
                           p.include_pad);
  }
  void backward(const Node<T>& n, Expr<T>, Expr<T> G, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    gr[0] = avg_pool(G, n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    return pool_format("avg_pool2d_grad", args[0], a);
  }
};

template <class T>
Expr<T> pool_select(Expr<T> k, Expr<T> v, const Attrs& a) {
  return make<PoolSelectOp<T>>({k, v, maxima(k, a)}, a);
}
template <class T>
Expr<T> pool_scatter(Expr<T> k, Expr<T> g, const Attrs& a) {
  return make<PoolScatterOp<T>>({k, g, maxima(k, a)}, a);
}
template <class T>
Expr<T> avg_pool(Expr<T> x, const Attrs& a) {
  return make<AvgPoolOp<T>>({x}, a);
}
template <class T>
Expr<T> avg_pool_grad(Expr<T> g, Expr<T> x, const Attrs& a) {
  return make<AvgPoolGradOp<T>>({g, x}, a);
}

[[noreturn]] void bad_option(const std::string& op, const std::string& what, Dim v) {
  throw ValueError(op + ": " + what + " " + std::to_string(v));
}

Attrs conv_record(const std::string& op, const Conv2dOptions& o) {
  for (std::size_t i = 0; i < 2; ++i) {
    if (o.stride[i] < 1) bad_option(op, "strides must be >= 1, got", o.stride[i]);
    if (o.padding[i] < 0) bad_option(op, "padding must be >= 0, got", o.padding[i]);
    if (o.dilation[i] < 1) bad_option(op, "dilations must be >= 1, got", o.dilation[i]);
  }
  Attrs a;
  a.ints = {o.stride[0], o.stride[1], o.padding[0], o.padding[1], o.dilation[0], o.dilation[1]};
  return a;
}

Attrs pool_record(const std::string& op, std::array<Dim, 2> k, const Pool2dOptions& o) {
  Attrs a;
  for (std::size_t i = 0; i < 2; ++i) {
    if (k[i] < 1) bad_option(op, "window extents must be >= 1, got", k[i]);
    if (o.stride[i] < 0)
      bad_option(op, "strides must be >= 1 (or 0: the window), got", o.stride[i]);
    if (o.padding[i] < 0 || 2 * o.padding[i] > k[i]) {
      bad_option(op, "padding must lie in [0, window / 2], got", o.padding[i]);
    }
  }
  a.ints = {
      k[0],         k[1],        o.stride[0] ? o.stride[0] : k[0], o.stride[1] ? o.stride[1] : k[1],
      o.padding[0], o.padding[1]};
  a.flag = o.count_include_pad;
  return a;
}

}  // namespace
}  // namespace detail

template <class T>
Expr<T> conv2d(Expr<T> x, Expr<T> w, Conv2dOptions o) {
  return detail::conv(x, w, detail::conv_record("conv2d", o));
}

template <class T>
Expr<T> conv2d_bias(Expr<T> x, Expr<T> w, Expr<T> b, Conv2dOptions o) {
  return detail::make<detail::Conv2dOp<T>>({x, w, b}, detail::conv_record("conv2d_bias", o));
}

template <class T>
Expr<T> max_pool2d(Expr<T> x, std::array<Dim, 2> window, Pool2dOptions o) {
  return detail::pool_select(x, x, detail::pool_record("max_pool2d", window, o));
}

template <class T>
Expr<T> avg_pool2d(Expr<T> x, std::array<Dim, 2> window, Pool2dOptions o) {
  return detail::avg_pool(x, detail::pool_record("avg_pool2d", window, o));
}

XGRAD_CONV_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
