// Elementwise ops of two broadcast operands. Each op is one definition struct: its name,
// scalar kernel, gradient rule per operand (built from other ops, so it can be
// differentiated again), printed form and algebraic identities; BinaryOp
// (elementwise.hpp) makes it an op. The builders come from the table in
// include/xgrad/ops/elementwise.hpp, at the end.
#include <cmath>
#include <string>

#include "elementwise.hpp"

namespace xgrad {
namespace detail {
namespace {

/// Replaces `x op c` by x when c is the identity scalar and x already has the result
/// shape (so dropping the op loses no broadcasting).
template <class T>
bool drops_to(const Node<T>& keep, const Node<T>& other, T identity) {
  return is_scalar(other, identity) && keep.shape == broadcast_shapes(keep.shape, other.shape);
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
  static Expr<T> simplify(const BinaryOperands<T>& o) {
    if (drops_to(o.na, o.nb, T(0))) return o.a;
    if (drops_to(o.nb, o.na, T(0))) return o.b;
    if (o.a == o.b) return mul(o.g.scalar(T(2)), o.a);  // x + x = 2*x
    // Constants go to the right: "2*x + 2" reads better than "2 + 2*x".
    if (o.na.kind == NodeKind::constant && o.nb.kind != NodeKind::constant) return add(o.b, o.a);
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
  static Expr<T> simplify(const BinaryOperands<T>& o) {
    if (drops_to(o.na, o.nb, T(0))) return o.a;
    if (drops_to(o.nb, o.na, T(0))) return neg(o.b);
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
  static Expr<T> simplify(const BinaryOperands<T>& o) {
    const Node<T>&na = o.na, &nb = o.nb;
    if (drops_to(na, nb, T(1))) return o.a;
    if (drops_to(nb, na, T(1))) return o.b;
    const bool zero_a = is_scalar(na, T(0));
    if (zero_a || is_scalar(nb, T(0))) {
      if (Expr<T> z = zeros_of(o.a, o.b)) return z;
      if ((zero_a ? nb : na).shape == broadcast_shapes(na.shape, nb.shape))
        return zeros_like(zero_a ? o.b : o.a);
    }
    // Scalar constants go to the left and merge: 2*(3*x) becomes 6*x.
    if (nb.kind == NodeKind::constant && na.kind != NodeKind::constant && nb.shape.empty())
      return mul(o.b, o.a);
    if (na.kind == NodeKind::constant && na.shape.empty() && is_node_of<BinaryOp<T, MulD>>(nb)) {
      const Node<T>& c = o.g.node(nb.inputs[0]);
      if (c.kind == NodeKind::constant && c.shape.empty())
        return mul(o.g.scalar(na.value() * c.value()), o.g.expr(nb.inputs[1]));
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
  static Expr<T> grad(Expr<T>, Expr<T> b, Expr<T> y, Expr<T> g, std::size_t i) {
    return i == 0 ? g / b : -(g * y / b);
  }
  template <class T>
  static Expr<T> simplify(const BinaryOperands<T>& o) {
    if (drops_to(o.na, o.nb, T(1))) return o.a;
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
  static Expr<T> grad(Expr<T>, Expr<T> b, Expr<T> y, Expr<T> g, std::size_t i) {
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
struct MaxD : BinDiff {
  static constexpr std::string_view name = "maximum";
  template <class T>
  static T f(T a, T b) {
    return std::isnan(a) ? a : (std::isnan(b) || a < b ? b : a);
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i) {
    return i == 0 ? g * binary<T, WinD>(a, b) : g * binary<T, WinD>(b, a);
  }
};
struct MinD : BinDiff {
  static constexpr std::string_view name = "minimum";
  template <class T>
  static T f(T a, T b) {
    return std::isnan(a) ? a : (std::isnan(b) || b < a ? b : a);
  }
  template <class T>
  static Expr<T> grad(Expr<T> a, Expr<T> b, Expr<T>, Expr<T> g, std::size_t i) {
    return i == 0 ? g * binary<T, WinD>(b, a) : g * binary<T, WinD>(a, b);
  }
};

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
  static Expr<T> simplify(const BinaryOperands<T>& o) {                     // a: y, b: g
    if (drops_to(o.na, o.nb, T(1))) return o.g.scalar(T(1)) - square(o.a);  // seed gradient 1
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
  static Expr<T> simplify(const BinaryOperands<T>& o) {  // a: y, b: g
    if (drops_to(o.na, o.nb, T(1))) return o.a * (o.g.scalar(T(1)) - o.a);
    return {};
  }
};

}  // namespace

template <class T>
Expr<T> tanh_grad(Expr<T> y, Expr<T> g) {
  return binary<T, TanhGradD>(y, g);
}
template <class T>
Expr<T> sigmoid_grad(Expr<T> y, Expr<T> g) {
  return binary<T, SigmoidGradD>(y, g);
}
template Expr<float> tanh_grad(Expr<float>, Expr<float>);
template Expr<double> tanh_grad(Expr<double>, Expr<double>);
template Expr<float> sigmoid_grad(Expr<float>, Expr<float>);
template Expr<double> sigmoid_grad(Expr<double>, Expr<double>);

}  // namespace detail

// The builders of the table's rows with two tensor operands, instantiated for float and
// double; unary.cpp defines the rows with one.
#define XGRAD_ROW(kind, ...) XGRAD_ROW_##kind(__VA_ARGS__)
#define XGRAD_ROW_unary(name, def)
#define XGRAD_ROW_unary_scalar(name, def, ...)
#define XGRAD_ROW_unary_scalar2(name, def, p, q)
#define XGRAD_ROW_unary_option(name, def, ...)
#define XGRAD_ROW_ternary(name, def)
#define XGRAD_ROW_binary(name, def)                    \
  template <class T>                                   \
  Expr<T> name(Expr<T> a, Expr<T> b) {                 \
    return detail::binary<T, detail::def>(a, b);       \
  }                                                    \
  template Expr<float> name(Expr<float>, Expr<float>); \
  template Expr<double> name(Expr<double>, Expr<double>);
XGRAD_ELEMENTWISE_OPS(XGRAD_ROW)

}  // namespace xgrad
