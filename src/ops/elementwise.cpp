// Elementwise ops. Each op is one small definition struct: its name, its scalar kernel
// and its gradient rule (built from other ops, so it can be differentiated again).
#include <charconv>
#include <cmath>

#include "common.hpp"

namespace xgrad {
namespace detail {
namespace {

// ---------------------------------------------------------------- unary ops

/// An elementwise op of one operand, defined by D: D::name, D::f(x) and
/// D::grad(x, y, g) (or D::nondiff for ops with zero gradient).
template <class T, class D>
class UnaryOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.rows = RowRole::elementwise, .map = {.unary = &loop}};
    return t;
  }
  std::string_view name() const override { return D::name; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override { return in[0]; }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    loop(in[0].data, out.data, out.size, a);
  }
  static void loop(const T* x, T* y, std::size_t n, const Attrs& a) {
    // Scalar attributes are copied so the vectorised loop need not reload them.
    const Attrs attrs{{}, a.real, a.real2, a.flag, a.flag2};
    if (x == y) {
      map1_inplace(x, y, n, [attrs](T v) { return D::f(v, attrs); });
    } else {
      map1(x, y, n, [attrs](T v) { return D::f(v, attrs); });
    }
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    if constexpr (!D::nondiff) gr[0] = D::grad(arg(y, n, 0), y, g, n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    if constexpr (requires { D::print(args[0], a); }) {
      return D::print(args[0], a);
    } else {
      return Op<T>::format(args, a);
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
    if constexpr (requires { D::simplify(g, g.expr(in[0]), a); }) {
      return D::simplify(g, g.expr(in[0]), a);
    } else {
      return {};
    }
  }
};

struct Diff {
  static constexpr bool nondiff = false;
};

// Fused gradients of tanh and sigmoid (one node instead of three; defined with the
// binary ops below).
template <class T>
Expr<T> tanh_grad(Expr<T> y, Expr<T> g);
template <class T>
Expr<T> sigmoid_grad(Expr<T> y, Expr<T> g);

struct NegD : Diff {
  static constexpr std::string_view name = "neg";
  static constexpr int prec = 25;
  template <class T>
  static T f(T x, const Attrs&) {
    return -x;
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T>, Expr<T> g, const Attrs&) {
    return neg(g);
  }
  static std::string print(const std::string& x, const Attrs&) { return "-" + x; }
  template <class T>
  static Expr<T> simplify(Graph<T>& g, Expr<T> x, const Attrs&);
};
template <class T>
Expr<T> NegD::simplify(Graph<T>& g, Expr<T> x, const Attrs&) {
  const Node<T>& n = x.node();
  if (is_node_of<UnaryOp<T, NegD>>(n)) return g.expr(n.inputs[0]);  // -(-x) = x
  return {};
}

struct SquareD : Diff {
  static constexpr std::string_view name = "square";
  template <class T>
  static T f(T x, const Attrs&) {
    return x * x;
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs&) {
    return g * (T(2) * x);
  }
};
struct SqrtD : Diff {
  static constexpr std::string_view name = "sqrt";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::sqrt(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g, const Attrs&) {
    return g / (T(2) * y);
  }
};
struct ExpD : Diff {
  static constexpr std::string_view name = "exp";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::exp(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g, const Attrs&) {
    return g * y;
  }
};
struct LogD : Diff {
  static constexpr std::string_view name = "log";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::log(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs&) {
    return g / x;
  }
};
struct SignD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "sign";
  template <class T>
  static T f(T x, const Attrs&) {
    return T((x > 0) - (x < 0));
  }
};
struct StepD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "step";
  template <class T>
  static T f(T x, const Attrs&) {
    return x > 0 ? T(1) : T(0);
  }
};
struct AbsD : Diff {
  static constexpr std::string_view name = "abs";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::abs(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs&) {
    return g * sign(x);
  }
};
struct SinD : Diff {
  static constexpr std::string_view name = "sin";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::sin(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs&) {
    return g * cos(x);
  }
};
struct CosD : Diff {
  static constexpr std::string_view name = "cos";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::cos(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs&) {
    return -(g * sin(x));
  }
};
struct TanhD : Diff {
  static constexpr std::string_view name = "tanh";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::tanh(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g, const Attrs&) {
    return tanh_grad(y, g);  // g*(1 - square(y))
  }
};
struct SigmoidD : Diff {
  static constexpr std::string_view name = "sigmoid";
  template <class T>
  static T f(T x, const Attrs&) {
    // Both branches only ever exponentiate a non-positive number.
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g, const Attrs&) {
    return sigmoid_grad(y, g);  // g*(y*(1 - y))
  }
};
struct ReluD : Diff {
  static constexpr std::string_view name = "relu";
  template <class T>
  static T f(T x, const Attrs&) {
    return x < 0 ? T(0) : x;  // NaN passes through
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs&) {
    return g * step(x);
  }
};
struct SoftplusD : Diff {
  static constexpr std::string_view name = "softplus";
  template <class T>
  static T f(T x, const Attrs&) {
    return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs&) {
    return g * sigmoid(x);
  }
};
struct PowScalarD : Diff {
  static constexpr std::string_view name = "pow";
  static constexpr int prec = 30;
  template <class T>
  static T f(T x, const Attrs& a) {
    T p = static_cast<T>(a.real);
    if (p == T(2)) return x * x;
    return std::pow(x, p);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs& a) {
    T p = static_cast<T>(a.real);
    return g * (p * pow(x, p - T(1)));
  }
  static std::string print(const std::string& x, const Attrs& a) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, a.real);
    return x + "^" + std::string(buf, r.ptr);
  }
  template <class T>
  static Expr<T> simplify(Graph<T>& g, Expr<T> x, const Attrs& a) {
    if (a.real == 1) return x;
    if (a.real == 0 && same_known(x.shape(), x.shape())) {
      std::vector<std::size_t> s(x.shape().begin(), x.shape().end());
      return g.constant(xt::xarray<T>(xt::ones<T>(s)));
    }
    return {};
  }
};
struct ClampD : Diff {
  static constexpr std::string_view name = "clamp";
  template <class T>
  static T f(T x, const Attrs& a) {
    return std::min(std::max(x, static_cast<T>(a.real)), static_cast<T>(a.real2));
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs& a);
};
struct InsideD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "inside";
  template <class T>
  static T f(T x, const Attrs& a) {
    return (x >= static_cast<T>(a.real) && x <= static_cast<T>(a.real2)) ? T(1) : T(0);
  }
};
template <class T>
Expr<T> ClampD::grad(Expr<T> x, Expr<T>, Expr<T> g, const Attrs& a) {
  return g * make<UnaryOp<T, InsideD>>({x}, a);
}

template <class T, class D>
Expr<T> unary(Expr<T> x, Attrs a = {}) {
  return make<UnaryOp<T, D>>({x}, std::move(a));
}

// ---------------------------------------------------------------- binary ops

template <class T, class D>
Expr<T> binary(Expr<T> a, Expr<T> b);

/// The operand of x = broadcast_like(s, ref) when the partner of x in an elementwise op
/// has ref's run-time shape, so broadcasting by the op itself gives the same result.
template <class T>
Expr<T> strip_broadcast(Graph<T>& g, Expr<T> x, Expr<T> partner) {
  const Node<T>& n = x.node();
  if (!is_broadcast_like(n)) return {};
  if (!g.same_runtime_shape(n.inputs[1], partner.id())) return {};
  Expr<T> s = g.expr(n.inputs[0]);
  if (s.rank() > partner.rank()) return {};
  return s;
}

/// An elementwise op of two broadcast operands, defined by D: D::name, D::f(a, b), and
/// D::grad(a, b, y, g, i) for operand i (before reduction to the operand's shape).
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
    Expr<T> a = g.expr(in[0]), b = g.expr(in[1]);
    // An operand broadcast to the other's shape broadcasts here anyway.
    if (Expr<T> s = strip_broadcast(g, a, b)) return binary<T, D>(s, b);
    if (Expr<T> s = strip_broadcast(g, b, a)) return binary<T, D>(a, s);
    if constexpr (requires { D::simplify(g, a, b); }) {
      return D::simplify(g, a, b);
    } else {
      return {};
    }
  }
};

struct BinDiff {
  static constexpr bool nondiff = false;
  static constexpr bool infix = false;
  static constexpr bool assoc = false;
  static constexpr int prec = 100;
};

/// Replaces `x op c` by x when c is the identity scalar and x already has the result
/// shape (so dropping the op loses no broadcasting).
template <class T>
bool drops_to(Expr<T> keep, Expr<T> other, T identity) {
  return keep.graph().is_scalar_constant(other.id(), identity) &&
         (keep.shape() == broadcast_shapes(keep.shape(), other.shape()));
}

/// Zeros of the broadcast result shape: a constant when known, else zeros_like.
template <class T>
Expr<T> zeros_of(Expr<T> a, Expr<T> b) {
  Shape s = broadcast_shapes(a.shape(), b.shape());
  if (same_known(s, s)) {
    std::vector<std::size_t> us(s.begin(), s.end());
    return a.graph().constant(xt::xarray<T>(xt::zeros<T>(us)));
  }
  return {};
}

struct AddD : BinDiff {
  static constexpr std::string_view name = "add";
  static constexpr bool infix = true;
  static constexpr bool assoc = true;
  static constexpr const char* symbol = " + ";
  static constexpr int prec = 10;
  template <class T>
  static T f(T a, T b) {
    return a + b;
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T>, Expr<T>, Expr<T> g, std::size_t) {
    return g;
  }
  template <class T>
  static Expr<T> simplify(Graph<T>& g, Expr<T> a, Expr<T> b) {
    if (drops_to(a, b, T(0))) return a;
    if (drops_to(b, a, T(0))) return b;
    if (a == b) return mul(g.scalar(T(2)), a);  // x + x = 2*x
    // Constants go to the right: "2*x + 2" reads better than "2 + 2*x".
    if (g.is_constant(a.id()) && !g.is_constant(b.id())) return add(b, a);
    return {};
  }
};
struct SubD : BinDiff {
  static constexpr std::string_view name = "sub";
  static constexpr bool infix = true;
  static constexpr const char* symbol = " - ";
  static constexpr int prec = 10;
  template <class T>
  static T f(T a, T b) {
    return a - b;
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T>, Expr<T>, Expr<T> g, std::size_t i) {
    return i == 0 ? g : neg(g);
  }
  template <class T>
  static Expr<T> simplify(Graph<T>&, Expr<T> a, Expr<T> b) {
    if (drops_to(a, b, T(0))) return a;
    if (drops_to(b, a, T(0))) return neg(b);
    return {};
  }
};
struct MulD : BinDiff {
  static constexpr std::string_view name = "mul";
  static constexpr bool infix = true;
  static constexpr bool assoc = true;
  static constexpr const char* symbol = "*";
  static constexpr int prec = 20;
  template <class T>
  static T f(T a, T b) {
    return a * b;
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i) {
    // A scalar constant factor goes straight to the left, where simplify() would move it.
    Expr<T> other = i == 0 ? b : a;
    if (other.shape().empty() && other.graph().is_constant(other.id())) return other * g;
    return g * other;
  }
  template <class T>
  static Expr<T> simplify(Graph<T>& g, Expr<T> a, Expr<T> b) {
    if (drops_to(a, b, T(1))) return a;
    if (drops_to(b, a, T(1))) return b;
    if (g.is_scalar_constant(a.id(), T(0)) || g.is_scalar_constant(b.id(), T(0))) {
      if (Expr<T> z = zeros_of(a, b)) return z;
      Expr<T> other = g.is_scalar_constant(a.id(), T(0)) ? b : a;
      if (other.shape() == broadcast_shapes(a.shape(), b.shape())) return zeros_like(other);
    }
    // Scalar constants go to the left and merge: 2*(3*x) becomes 6*x.
    if (g.is_constant(b.id()) && !g.is_constant(a.id()) && b.shape().empty()) return mul(b, a);
    if (g.is_constant(a.id()) && a.shape().empty()) {
      const Node<T>& nb = b.node();
      if (is_node_of<BinaryOp<T, MulD>>(nb) && g.is_constant(nb.inputs[0]) &&
          g.node(nb.inputs[0]).shape.empty()) {
        T c = a.node().value() * g.node(nb.inputs[0]).value();
        return mul(g.scalar(c), g.expr(nb.inputs[1]));
      }
    }
    return {};
  }
};
struct DivD : BinDiff {
  static constexpr std::string_view name = "div";
  static constexpr bool infix = true;
  static constexpr const char* symbol = "/";
  static constexpr int prec = 20;
  template <class T>
  static T f(T a, T b) {
    return a / b;
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T> y, Expr<T> g, std::size_t i) {
    (void)a;
    return i == 0 ? g / b : -(g * y / b);
  }
  template <class T>
  static Expr<T> simplify(Graph<T>&, Expr<T> a, Expr<T> b) {
    if (drops_to(a, b, T(1))) return a;
    return {};
  }
};
struct PowD : BinDiff {
  static constexpr std::string_view name = "pow";
  static constexpr bool infix = true;
  static constexpr const char* symbol = "^";
  static constexpr int prec = 30;
  template <class T>
  static T f(T a, T b) {
    return std::pow(a, b);
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T> y, Expr<T> g, std::size_t i) {
    if (i == 0) return g * (b * pow(a, b - T(1)));
    return g * xlogy(y, a);
  }
};
struct SafeDivD : BinDiff {
  static constexpr std::string_view name = "safe_div";
  template <class T>
  static T f(T a, T b) {
    return b == T(0) ? T(0) : a / b;
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T> y, Expr<T> g, std::size_t i) {
    (void)a;
    return i == 0 ? safe_div(g, b) : -safe_div(g * y, b);
  }
};
struct XlogyD : BinDiff {
  static constexpr std::string_view name = "xlogy";
  template <class T>
  static T f(T a, T b) {
    return a == T(0) ? T(0) : a * std::log(b);
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i) {
    return i == 0 ? g * log(b) : g * safe_div(a, b);
  }
};
/// 1 where a > b, 1/2 where a == b, 0 where a < b: the share of the gradient a receives
/// from maximum(a, b).
struct WinD : BinDiff {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "win";
  template <class T>
  static T f(T a, T b) {
    return a > b ? T(1) : (a == b ? T(0.5) : T(0));
  }
};
struct EqualD : BinDiff {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "equal";
  template <class T>
  static T f(T a, T b) {
    return a == b ? T(1) : T(0);
  }
};
template <class T, class D>
Expr<T> binary(Expr<T> a, Expr<T> b) {
  return make<BinaryOp<T, D>>({a, b});
}

/// g*(1 - y^2) from y = tanh(x) and the incoming gradient g, as one node. It prints as
/// the three ops it replaces and gives bit-identical values (same operations, same order).
struct TanhGradD : BinDiff {
  static constexpr std::string_view name = "tanh_grad";
  static constexpr bool assoc = true;
  static constexpr int prec = 20;
  template <class T>
  static T f(T y, T g) {
    return g * (T(1) - y * y);
  }
  template <class T>
  static Expr<T> grad(Expr<T> y, Expr<T> g, Expr<T>, Expr<T> G, std::size_t i) {
    if (i == 1) return tanh_grad(y, G);  // d/dg = 1 - y^2
    return G * (g * (T(-2) * y));        // d/dy = -2 y g
  }
  static std::string print(std::span<const std::string> args) {
    return args[1] + "*(1 - square(" + args[0] + "))";
  }
  template <class T>
  static Expr<T> simplify(Graph<T>& gr, Expr<T> y, Expr<T> g) {
    if (drops_to(y, g, T(1))) return gr.scalar(T(1)) - square(y);  // seed gradient 1
    return {};
  }
};
/// g*(y*(1 - y)) from y = sigmoid(x) and the incoming gradient g, as one node.
struct SigmoidGradD : BinDiff {
  static constexpr std::string_view name = "sigmoid_grad";
  static constexpr bool assoc = true;
  static constexpr int prec = 20;
  template <class T>
  static T f(T y, T g) {
    return g * (y * (T(1) - y));
  }
  template <class T>
  static Expr<T> grad(Expr<T> y, Expr<T> g, Expr<T>, Expr<T> G, std::size_t i) {
    if (i == 1) return sigmoid_grad(y, G);  // d/dg = y (1 - y)
    return G * (g * (T(1) - T(2) * y));     // d/dy = g (1 - 2y)
  }
  static std::string print(std::span<const std::string> args) {
    return args[1] + "*" + args[0] + "*(1 - " + args[0] + ")";
  }
  template <class T>
  static Expr<T> simplify(Graph<T>& gr, Expr<T> y, Expr<T> g) {
    if (drops_to(y, g, T(1))) return y * (gr.scalar(T(1)) - y);
    return {};
  }
};
template <class T>
Expr<T> tanh_grad(Expr<T> y, Expr<T> g) {
  return binary<T, TanhGradD>(y, g);
}
template <class T>
Expr<T> sigmoid_grad(Expr<T> y, Expr<T> g) {
  return binary<T, SigmoidGradD>(y, g);
}
struct MaxD : BinDiff {
  static constexpr std::string_view name = "maximum";
  template <class T>
  static T f(T a, T b) {
    return std::isnan(a) ? a : (std::isnan(b) || a < b ? b : a);
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i);
};
struct MinD : BinDiff {
  static constexpr std::string_view name = "minimum";
  template <class T>
  static T f(T a, T b) {
    return std::isnan(a) ? a : (std::isnan(b) || b < a ? b : a);
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i);
};

template <class T>
Expr<T> MaxD::grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i) {
  return i == 0 ? g * binary<T, WinD>(a, b) : g * binary<T, WinD>(b, a);
}
template <class T>
Expr<T> MinD::grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i) {
  return i == 0 ? g * binary<T, WinD>(b, a) : g * binary<T, WinD>(a, b);
}

}  // namespace
}  // namespace detail

using detail::binary;
using detail::unary;

template <class T>
Expr<T> add(Expr<T> a, Expr<T> b) {
  return binary<T, detail::AddD>(a, b);
}
template <class T>
Expr<T> sub(Expr<T> a, Expr<T> b) {
  return binary<T, detail::SubD>(a, b);
}
template <class T>
Expr<T> mul(Expr<T> a, Expr<T> b) {
  return binary<T, detail::MulD>(a, b);
}
template <class T>
Expr<T> div(Expr<T> a, Expr<T> b) {
  return binary<T, detail::DivD>(a, b);
}
template <class T>
Expr<T> pow(Expr<T> a, Expr<T> b) {
  return binary<T, detail::PowD>(a, b);
}
template <class T>
Expr<T> maximum(Expr<T> a, Expr<T> b) {
  return binary<T, detail::MaxD>(a, b);
}
template <class T>
Expr<T> minimum(Expr<T> a, Expr<T> b) {
  return binary<T, detail::MinD>(a, b);
}
template <class T>
Expr<T> safe_div(Expr<T> a, Expr<T> b) {
  return binary<T, detail::SafeDivD>(a, b);
}
template <class T>
Expr<T> xlogy(Expr<T> a, Expr<T> b) {
  return binary<T, detail::XlogyD>(a, b);
}
template <class T>
Expr<T> equal(Expr<T> a, Expr<T> b) {
  return binary<T, detail::EqualD>(a, b);
}

template <class T>
Expr<T> neg(Expr<T> x) {
  return unary<T, detail::NegD>(x);
}
template <class T>
Expr<T> square(Expr<T> x) {
  return unary<T, detail::SquareD>(x);
}
template <class T>
Expr<T> sqrt(Expr<T> x) {
  return unary<T, detail::SqrtD>(x);
}
template <class T>
Expr<T> exp(Expr<T> x) {
  return unary<T, detail::ExpD>(x);
}
template <class T>
Expr<T> log(Expr<T> x) {
  return unary<T, detail::LogD>(x);
}
template <class T>
Expr<T> abs(Expr<T> x) {
  return unary<T, detail::AbsD>(x);
}
template <class T>
Expr<T> sin(Expr<T> x) {
  return unary<T, detail::SinD>(x);
}
template <class T>
Expr<T> cos(Expr<T> x) {
  return unary<T, detail::CosD>(x);
}
template <class T>
Expr<T> tanh(Expr<T> x) {
  return unary<T, detail::TanhD>(x);
}
template <class T>
Expr<T> sigmoid(Expr<T> x) {
  return unary<T, detail::SigmoidD>(x);
}
template <class T>
Expr<T> relu(Expr<T> x) {
  return unary<T, detail::ReluD>(x);
}
template <class T>
Expr<T> softplus(Expr<T> x) {
  return unary<T, detail::SoftplusD>(x);
}
template <class T>
Expr<T> sign(Expr<T> x) {
  return unary<T, detail::SignD>(x);
}
template <class T>
Expr<T> step(Expr<T> x) {
  return unary<T, detail::StepD>(x);
}
template <class T>
Expr<T> pow(Expr<T> x, scalar_t<T> p) {
  Attrs a;
  a.real = p;
  return unary<T, detail::PowScalarD>(x, a);
}
template <class T>
Expr<T> clamp(Expr<T> x, scalar_t<T> lo, scalar_t<T> hi) {
  if (!(lo <= hi)) {
    throw ValueError("clamp: lower bound " + std::to_string(lo) + " exceeds upper bound " +
                     std::to_string(hi) + " for " + x.graph().describe(x.id()));
  }
  Attrs a;
  a.real = lo;
  a.real2 = hi;
  return unary<T, detail::ClampD>(x, a);
}

#define XGRAD_INSTANTIATE(T)                   \
  template Expr<T> add(Expr<T>, Expr<T>);      \
  template Expr<T> sub(Expr<T>, Expr<T>);      \
  template Expr<T> mul(Expr<T>, Expr<T>);      \
  template Expr<T> div(Expr<T>, Expr<T>);      \
  template Expr<T> pow(Expr<T>, Expr<T>);      \
  template Expr<T> maximum(Expr<T>, Expr<T>);  \
  template Expr<T> minimum(Expr<T>, Expr<T>);  \
  template Expr<T> safe_div(Expr<T>, Expr<T>); \
  template Expr<T> xlogy(Expr<T>, Expr<T>);    \
  template Expr<T> equal(Expr<T>, Expr<T>);    \
  template Expr<T> neg(Expr<T>);               \
  template Expr<T> square(Expr<T>);            \
  template Expr<T> sqrt(Expr<T>);              \
  template Expr<T> exp(Expr<T>);               \
  template Expr<T> log(Expr<T>);               \
  template Expr<T> abs(Expr<T>);               \
  template Expr<T> sin(Expr<T>);               \
  template Expr<T> cos(Expr<T>);               \
  template Expr<T> tanh(Expr<T>);              \
  template Expr<T> sigmoid(Expr<T>);           \
  template Expr<T> relu(Expr<T>);              \
  template Expr<T> softplus(Expr<T>);          \
  template Expr<T> sign(Expr<T>);              \
  template Expr<T> step(Expr<T>);              \
  template Expr<T> pow(Expr<T>, scalar_t<T>);  \
  template Expr<T> clamp(Expr<T>, scalar_t<T>, scalar_t<T>);
XGRAD_INSTANTIATE(float)
XGRAD_INSTANTIATE(double)

}  // namespace xgrad
