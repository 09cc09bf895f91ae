// The two op classes every elementwise op is an instance of: UnaryOp and BinaryOp, each
// driven by a small definition struct (unary.cpp, binary.cpp) that holds the op's name,
// scalar kernel, gradient rule and printed form. The public builders are generated from
// the table in include/xgrad/ops/elementwise.hpp. Internal to src/ops/.
#pragma once

#include <charconv>
#include <string>
#include <type_traits>
#include <utility>

#include "../exec/thread_pool.hpp"
#include "common.hpp"

namespace xgrad::detail {

/// The attributes of an op that has none.
struct NoAttrs {};

/// Shortest decimal text that reads back as v.
template <class U>
std::string number_text(U v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// D's view of a node's attributes (NoAttrs when it has none).
template <class D>
auto unary_attrs(const Attrs& a) {
  if constexpr (requires { D::attrs(a); }) {
    return D::attrs(a);
  } else {
    return NoAttrs{};
  }
}

/// An elementwise op of one operand, defined by D: D::name, the kernel D::f(x) and the
/// gradient rule D::grad(x, y, g), or D::nondiff for a zero gradient. Optional: D::print
/// (printed form), D::label (Graphviz), D::prec (precedence), D::simplify. An op with
/// attributes decodes them with D::attrs(const Attrs&) (an accessor of attrs.hpp), and
/// each of the functions above then takes the decoded struct as its last argument.
template <class T, class D>
class UnaryOp final : public Op<T> {
  using Params = decltype(unary_attrs<D>(std::declval<const Attrs&>()));
  static constexpr bool kAttrs = !std::is_same_v<Params, NoAttrs>;
  static Params params(const Attrs& a) { return unary_attrs<D>(a); }
  static T f(T v, const Params& p) {
    if constexpr (kAttrs) {
      return D::f(v, p);
    } else {
      return D::f(v);
    }
  }

 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.rows = RowRole::elementwise, .map = {.unary = &loop}};
    return t;
  }
  std::string_view name() const override { return D::name; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override { return in[0]; }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    // A large map in parts of the flat range, one per thread (each element alone: the
    // result does not depend on the partition).
    exec::parallel_for_work(out.size, 1.0, exec::kMinPartWork,
                            [&](std::size_t b, std::size_t e, std::size_t) {
                              loop(in[0].data + b, out.data + b, e - b, a);
                            });
  }
  static void loop(const T* x, T* y, std::size_t n, const Attrs& a) {
    // Attributes are decoded once, so the vectorised loop need not reload them.
    const Params p = params(a);
    if (x == y) {
      map1_inplace(x, y, n, [p](T v) { return f(v, p); });
    } else {
      map1(x, y, n, [p](T v) { return f(v, p); });
    }
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    if constexpr (D::nondiff) {
      return;
    } else if constexpr (kAttrs) {
      gr[0] = D::grad(arg(y, n, 0), y, g, params(n.attrs));
    } else {
      gr[0] = D::grad(arg(y, n, 0), y, g);
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    if constexpr (kAttrs && requires { D::template print<T>(args[0], params(a)); }) {
      return D::template print<T>(args[0], params(a));
    } else if constexpr (!kAttrs && requires { D::template print<T>(args[0]); }) {
      return D::template print<T>(args[0]);
    } else {
      return Op<T>::format(args, a);
    }
  }
  std::string label(const Attrs& a) const override {
    if constexpr (requires { D::template label<T>(params(a)); }) {
      return D::template label<T>(params(a));
    } else {
      return Op<T>::label(a);
    }
  }
  int precedence() const override {
    if constexpr (requires { D::prec; }) {
      return D::prec;
    } else {
      return 100;
    }
  }
  int shape_source(const Node<T>&, const Graph<T>&) const override { return 0; }
  Expr<T> simplify(Graph<T>& g, std::span<const NodeId> in, const Attrs& a) const override {
    if constexpr (kAttrs && requires { D::simplify(g, g.expr(in[0]), params(a)); }) {
      return D::simplify(g, g.expr(in[0]), params(a));
    } else if constexpr (!kAttrs && requires { D::simplify(g, g.expr(in[0])); }) {
      return D::simplify(g, g.expr(in[0]));
    } else {
      return {};
    }
  }
};

/// A node of the unary op D over x.
template <class T, class D>
Expr<T> unary(Expr<T> x, Attrs a = {}) {
  return make<UnaryOp<T, D>>({x}, std::move(a));
}

/// Base of differentiable unary definitions.
struct Diff {
  static constexpr bool nondiff = false;
};

template <class T, class D>
class BinaryOp;

/// A node of the binary op D over a and b.
template <class T, class D>
Expr<T> binary(Expr<T> a, Expr<T> b) {
  return make<BinaryOp<T, D>>({a, b});
}

/// The operand of n = broadcast_like(s, ref) when n's partner in an elementwise op (node
/// `partner`, of rank `partner_rank`) has ref's run-time shape, so broadcasting by the op
/// itself gives the same result.
template <class T>
Expr<T> strip_broadcast(Graph<T>& g, const Node<T>& n, NodeId partner, std::size_t partner_rank) {
  if (!is_broadcast_like(n)) return {};
  if (!g.same_runtime_shape(n.inputs[1], partner)) return {};
  Expr<T> s = g.expr(n.inputs[0]);
  if (s.rank() > partner_rank) return {};
  return s;
}

/// The operands of a new binary node as D::simplify reads them: handles and nodes, each
/// looked up once.
template <class T>
struct BinaryOperands {
  Graph<T>& g;
  Expr<T> a, b;
  const Node<T>& na;
  const Node<T>& nb;
};

/// True when node n is a 0-d constant equal to v.
template <class T>
bool is_scalar(const Node<T>& n, T v) {
  return n.kind == NodeKind::constant && n.shape.empty() && n.value.data()[0] == v;
}

/// An elementwise op of two broadcast operands, defined by D: D::name, D::f(a, b), and
/// D::grad(a, b, y, g, i) for operand i (before reduction to the operand's shape).
/// Printed as a call, infix (D::infix, D::symbol) or by D::print. D::simplify, if any,
/// takes BinaryOperands and holds identities that need a constant operand or a == b: it
/// is not asked otherwise.
template <class T, class D>
class BinaryOp final : public Op<T> {
  // The scalar kernel every loop below is instantiated with.
  static constexpr auto kF = [](T a, T b) { return D::f(a, b); };

 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{
        .rows = RowRole::elementwise,
        .map = {
            .binary = [](const T* a, const T* b, T* y, std::size_t n) { map2(a, b, y, n, kF); },
            .scalar_a = [](T a, const T* b, T* y, std::size_t n) { map2_scalar_a(a, b, y, n, kF); },
            .scalar_b = [](const T* a, T b, T* y,
                           std::size_t n) { map2_scalar_b(a, b, y, n, kF); }}};
    return t;
  }
  std::string_view name() const override { return D::name; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    return broadcast_shapes(in[0], in[1]);
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    binary_map(in[0], in[1], out, kF);
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    if constexpr (!D::nondiff) {
      Expr<T> a = arg(y, n, 0), b = arg(y, n, 1);
      for (std::size_t i = 0; i < 2; ++i) {
        if (!wanted[i]) continue;
        if (Expr<T> gi = D::grad(a, b, y, g, i)) gr[i] = unbroadcast(gi, i == 0 ? a : b);
      }
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    if constexpr (requires { D::print(args); }) {
      return D::print(args);
    } else if constexpr (D::infix) {
      return args[0] + D::symbol + args[1];
    } else {
      return Op<T>::format(args, a);
    }
  }
  int precedence() const override { return D::prec; }
  bool associative() const override { return D::assoc; }
  int shape_source(const Node<T>& n, const Graph<T>& g) const override {
    // An operand with the output's static shape whose partner is fully known and
    // broadcasts into it has the output's run-time shape.
    for (int i = 0; i < 2; ++i) {
      const Shape& mine = g.node(n.inputs[i]).shape;
      const Shape& other = g.node(n.inputs[1 - i]).shape;
      if (mine == n.shape && same_known(other, other) && other.size() <= mine.size()) return i;
    }
    return -1;
  }
  Expr<T> simplify(Graph<T>& g, std::span<const NodeId> in, const Attrs&) const override {
    const Node<T>& na = g.node(in[0]);
    const Node<T>& nb = g.node(in[1]);
    const bool broadcast_a = na.kind == NodeKind::op && is_broadcast_like(na);
    const bool broadcast_b = nb.kind == NodeKind::op && is_broadcast_like(nb);
    // Every identity of a definition (binary.cpp) needs a constant operand or the same
    // operand twice; most new nodes have neither, and leave here without further lookups.
    if (!broadcast_a && !broadcast_b && na.kind != NodeKind::constant &&
        nb.kind != NodeKind::constant && in[0] != in[1])
      return {};
    Expr<T> a(&g, in[0]), b(&g, in[1]);
    // An operand broadcast to the other's shape broadcasts here anyway.
    if (broadcast_a) {
      if (Expr<T> s = strip_broadcast(g, na, in[1], nb.shape.size())) return binary<T, D>(s, b);
    }
    if (broadcast_b) {
      if (Expr<T> s = strip_broadcast(g, nb, in[0], na.shape.size())) return binary<T, D>(a, s);
    }
    if constexpr (requires { D::simplify(BinaryOperands<T>{g, a, b, na, nb}); }) {
      return D::simplify(BinaryOperands<T>{g, a, b, na, nb});
    } else {
      return {};
    }
  }
};

/// Base of binary definitions: a differentiable op printed as a call.
struct BinDiff {
  static constexpr bool nondiff = false;
  static constexpr bool infix = false;
  static constexpr bool assoc = false;
  static constexpr int prec = 100;
};

// Fused gradients of tanh and sigmoid (binary.cpp): one node instead of three.

/// g*(1 - y^2) from y = tanh(x) and the incoming gradient g.
template <class T>
Expr<T> tanh_grad(Expr<T> y, Expr<T> g);
/// g*(y*(1 - y)) from y = sigmoid(x) and the incoming gradient g.
template <class T>
Expr<T> sigmoid_grad(Expr<T> y, Expr<T> g);

}  // namespace xgrad::detail
