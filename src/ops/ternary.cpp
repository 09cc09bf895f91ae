// Elementwise ops of three broadcast operands (where). Each op is one definition struct,
// as for unary.cpp and binary.cpp; TernaryOp makes it an op. The builders come from the
// table in include/xgrad/ops/elementwise.hpp, at the end.
//
// A ternary op declares no row role: a row-tiled group calls members of at most two
// operands (src/exec/tiling.hpp), so where runs as a step of its own.
#include <array>
#include <string>

#include "elementwise.hpp"

namespace xgrad {
namespace detail {
namespace {

/// y[i] = f(c[i], a[i], b[i]).
template <class T, class F>
XGRAD_KERNEL void map3(const T* c, const T* a, const T* b, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(c[i], a[i], b[i]);
}

/// An elementwise op of three broadcast operands, defined by D: D::name, D::f(c, a, b) and
/// D::grad(c, a, b, g, i) for operand i (before reduction to the operand's shape; an
/// invalid Expr when operand i gets no gradient). Printed as name(c, a, b).
template <class T, class D>
class TernaryOp final : public Op<T> {
  static constexpr auto kF = [](T c, T a, T b) { return D::f(c, a, b); };

 public:
  std::string_view name() const override { return D::name; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    return broadcast_shapes(broadcast_shapes(in[0], in[1]), in[2]);
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    if (out.size == 0) return;
    if (in[0].size == out.size && in[1].size == out.size && in[2].size == out.size) {
      map3(in[0].data, in[1].data, in[2].data, out.data, out.size, kF);
      return;
    }
    std::array<std::array<std::ptrdiff_t, max_rank>, 4> st{};
    for (std::size_t k = 0; k < 3; ++k) broadcast_strides(in[k].shape, out.shape, st[k].data());
    broadcast_strides(out.shape, out.shape, st[3].data());
    const T* c = in[0].data;
    const T* a = in[1].data;
    const T* b = in[2].data;
    strided_loop<4>(out.shape, {st[0].data(), st[1].data(), st[2].data(), st[3].data()},
                    [&](const auto& off, const auto& step, std::size_t n) {
                      const T* pc = c + off[0];
                      const T* pa = a + off[1];
                      const T* pb = b + off[2];
                      T* y = out.data + off[3];
                      for (std::size_t j = 0; j < n; ++j) {
                        y[j] = kF(pc[j * step[0]], pa[j * step[1]], pb[j * step[2]]);
                      }
                    });
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    std::array<Expr<T>, 3> x = {arg(y, n, 0), arg(y, n, 1), arg(y, n, 2)};
    for (std::size_t i = 0; i < 3; ++i) {
      if (!wanted[i]) continue;
      if (Expr<T> gi = D::grad(x[0], x[1], x[2], g, i)) gr[i] = unbroadcast(gi, x[i]);
    }
  }
  Expr<T> simplify(Graph<T>& g, std::span<const NodeId> in, const Attrs&) const override {
    if constexpr (requires { D::simplify(g, g.expr(in[0]), g.expr(in[1]), g.expr(in[2])); }) {
      return D::simplify(g, g.expr(in[0]), g.expr(in[1]), g.expr(in[2]));
    } else {
      return {};
    }
  }
};

/// A node of the ternary op D over c, a and b.
template <class T, class D>
Expr<T> ternary(Expr<T> c, Expr<T> a, Expr<T> b) {
  return make<TernaryOp<T, D>>({c, a, b});
}

struct WhereD {
  static constexpr std::string_view name = "where";
  template <class T>
  static T f(T c, T a, T b) {
    return c != T(0) ? a : b;  // NaN != 0: a NaN mask selects a
  }
  template <class T>
  static Expr<T> grad(Expr<T> c, Expr<T>, Expr<T>, Expr<T> g, std::size_t i) {
    if (i == 0) return {};  // a mask: no gradient
    Expr<T> zero = g.graph().scalar(T(0));
    return i == 1 ? where(c, g, zero) : where(c, zero, g);
  }
  template <class T>
  static Expr<T> simplify(Graph<T>&, Expr<T> c, Expr<T> a, Expr<T> b) {
    // where(c, a, a) is a when c broadcasts nothing into a.
    if (a == b && a.shape() == broadcast_shapes(c.shape(), a.shape()) &&
        same_known(a.shape(), a.shape()))
      return a;
    return {};
  }
};

}  // namespace
}  // namespace detail

// The builders of the table's rows with three tensor operands, instantiated for float and
// double; unary.cpp and binary.cpp define the others.
#define XGRAD_ROW(kind, ...) XGRAD_ROW_##kind(__VA_ARGS__)
#define XGRAD_ROW_unary(name, def)
#define XGRAD_ROW_binary(name, def)
#define XGRAD_ROW_unary_scalar(name, def, ...)
#define XGRAD_ROW_unary_scalar2(name, def, p, q)
#define XGRAD_ROW_unary_option(name, def, ...)
#define XGRAD_ROW_ternary(name, def)                                \
  template <class T>                                                \
  Expr<T> name(Expr<T> cond, Expr<T> a, Expr<T> b) {                \
    return detail::ternary<T, detail::def>(cond, a, b);             \
  }                                                                 \
  template Expr<float> name(Expr<float>, Expr<float>, Expr<float>); \
  template Expr<double> name(Expr<double>, Expr<double>, Expr<double>);
XGRAD_ELEMENTWISE_OPS(XGRAD_ROW)

}  // namespace xgrad
