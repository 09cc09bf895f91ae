// Elementwise ops of one operand. Each op is one definition struct: its name, scalar
// kernel and gradient rule (built from other ops, so it can be differentiated again), and
// its printed form when not name(x); UnaryOp (elementwise.hpp) makes it an op. The
// builders come from the table in include/xgrad/ops/elementwise.hpp, at the end.
#include <cmath>
#include <numbers>
#include <string>

#include "elementwise.hpp"

namespace xgrad {
namespace detail {
namespace {

struct NegD : Diff {
  static constexpr std::string_view name = "neg";
  static constexpr int prec = 25;
  template <class T>
  static T f(T x) {
    return -x;
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T>, Expr<T> g) {
    return neg(g);
  }
  template <class T>
  static std::string print(const std::string& x) {
    return "-" + x;
  }
  template <class T>
  static Expr<T> simplify(Graph<T>& g, Expr<T> x) {
    const Node<T>& n = x.node();
    if (is_node_of<UnaryOp<T, NegD>>(n)) return g.expr(n.inputs[0]);  // -(-x) = x
    return {};
  }
};

struct SquareD : Diff {
  static constexpr std::string_view name = "square";
  template <class T>
  static T f(T x) {
    return x * x;
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g * (T(2) * x);
  }
};
struct SqrtD : Diff {
  static constexpr std::string_view name = "sqrt";
  template <class T>
  static T f(T x) {
    return std::sqrt(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g) {
    return g / (T(2) * y);
  }
};
struct ExpD : Diff {
  static constexpr std::string_view name = "exp";
  template <class T>
  static T f(T x) {
    return std::exp(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g) {
    return g * y;
  }
};
struct LogD : Diff {
  static constexpr std::string_view name = "log";
  template <class T>
  static T f(T x) {
    return std::log(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g / x;
  }
};
struct SignD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "sign";
  template <class T>
  static T f(T x) {
    return T((x > 0) - (x < 0));
  }
};
struct StepD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "step";
  template <class T>
  static T f(T x) {
    return x > 0 ? T(1) : T(0);
  }
};
struct AbsD : Diff {
  static constexpr std::string_view name = "abs";
  template <class T>
  static T f(T x) {
    return std::abs(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g * sign(x);
  }
};
struct SinD : Diff {
  static constexpr std::string_view name = "sin";
  template <class T>
  static T f(T x) {
    return std::sin(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g * cos(x);
  }
};
struct CosD : Diff {
  static constexpr std::string_view name = "cos";
  template <class T>
  static T f(T x) {
    return std::cos(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return -(g * sin(x));
  }
};
struct TanhD : Diff {
  static constexpr std::string_view name = "tanh";
  template <class T>
  static T f(T x) {
    return std::tanh(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g) {
    return tanh_grad(y, g);  // g*(1 - square(y))
  }
};
struct SigmoidD : Diff {
  static constexpr std::string_view name = "sigmoid";
  template <class T>
  static T f(T x) {
    // Both branches only ever exponentiate a non-positive number.
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  }
  template <class T>
  static Expr<T> grad(Expr<T>, Expr<T> y, Expr<T> g) {
    return sigmoid_grad(y, g);  // g*(y*(1 - y))
  }
};
struct ReluD : Diff {
  static constexpr std::string_view name = "relu";
  template <class T>
  static T f(T x) {
    return x < 0 ? T(0) : x;  // NaN passes through
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g * step(x);
  }
};
struct SoftplusD : Diff {
  static constexpr std::string_view name = "softplus";
  template <class T>
  static T f(T x) {
    return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g * sigmoid(x);
  }
};

struct PowScalarD : Diff {
  static constexpr std::string_view name = "pow";
  static constexpr int prec = 30;
  static PowAttrs attrs(const Attrs& a) { return pow_attrs(a); }
  template <class T>
  static Attrs make_attrs(Expr<T>, T p) {
    return to_attrs(PowAttrs{p});
  }
  template <class T>
  static T f(T x, const PowAttrs& a) {
    T p = static_cast<T>(a.p);
    if (p == T(2)) return x * x;
    return std::pow(x, p);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const PowAttrs& a) {
    T p = static_cast<T>(a.p);
    return g * (p * pow(x, p - T(1)));
  }
  template <class T>
  static std::string print(const std::string& x, const PowAttrs& a) {
    return x + "^" + number_text(a.p);
  }
  template <class T>
  static Expr<T> simplify(Graph<T>& g, Expr<T> x, const PowAttrs& a) {
    if (a.p == 1) return x;
    if (a.p == 0 && same_known(x.shape(), x.shape())) {
      std::vector<std::size_t> s(x.shape().begin(), x.shape().end());
      return g.constant(xt::xarray<T>(xt::ones<T>(s)));
    }
    return {};
  }
};

/// 1 on [lo, hi], else 0: the derivative of clamp.
struct InsideD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "inside";
  static ClampAttrs attrs(const Attrs& a) { return clamp_attrs(a); }
  template <class T>
  static T f(T x, const ClampAttrs& a) {
    return (x >= static_cast<T>(a.lo) && x <= static_cast<T>(a.hi)) ? T(1) : T(0);
  }
};
struct ClampD : Diff {
  static constexpr std::string_view name = "clamp";
  static ClampAttrs attrs(const Attrs& a) { return clamp_attrs(a); }
  template <class T>
  static Attrs make_attrs(Expr<T> x, T lo, T hi) {
    if (!(lo <= hi)) {
      throw ValueError("clamp: lower bound " + std::to_string(lo) + " exceeds upper bound " +
                       std::to_string(hi) + " for " + x.graph().describe(x.id()));
    }
    return to_attrs(ClampAttrs{lo, hi});
  }
  template <class T>
  static T f(T x, const ClampAttrs& a) {
    return std::min(std::max(x, static_cast<T>(a.lo)), static_cast<T>(a.hi));
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const ClampAttrs& a) {
    return g * unary<T, InsideD>(x, to_attrs(a));
  }
};

/// 1 where x > 0, else the slope: the derivative of leaky_relu, with PyTorch's choice at 0.
struct LeakyStepD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "leaky_step";
  static LeakyReluAttrs attrs(const Attrs& a) { return leaky_relu_attrs(a); }
  template <class T>
  static T f(T x, const LeakyReluAttrs& a) {
    return x > 0 ? T(1) : static_cast<T>(a.negative_slope);
  }
  template <class T>
  static std::string print(const std::string& x, const LeakyReluAttrs& a) {
    return "leaky_step(" + x + ", " + number_text(static_cast<T>(a.negative_slope)) + ")";
  }
  template <class T>
  static std::string label(const LeakyReluAttrs& a) {
    return "leaky_step(" + number_text(static_cast<T>(a.negative_slope)) + ")";
  }
};
struct LeakyReluD : Diff {
  static constexpr std::string_view name = "leaky_relu";
  static LeakyReluAttrs attrs(const Attrs& a) { return leaky_relu_attrs(a); }
  template <class T>
  static Attrs make_attrs(Expr<T> x, T negative_slope) {
    // A negative slope flips the sign of negative inputs: far more likely a typo than an
    // intended activation.
    if (!(std::isfinite(negative_slope) && negative_slope >= 0)) {
      throw ValueError("leaky_relu: negative_slope " + std::to_string(negative_slope) +
                       " is not a finite non-negative number, for " + x.graph().describe(x.id()));
    }
    return to_attrs(LeakyReluAttrs{negative_slope});
  }
  template <class T>
  static T f(T x, const LeakyReluAttrs& a) {
    return x >= 0 ? x : static_cast<T>(a.negative_slope) * x;  // NaN passes through
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const LeakyReluAttrs& a) {
    return g * unary<T, LeakyStepD>(x, to_attrs(a));
  }
  // Printed in the element type, so that a float slope of 0.01 shows as 0.01.
  template <class T>
  static std::string print(const std::string& x, const LeakyReluAttrs& a) {
    return "leaky_relu(" + x + ", " + number_text(static_cast<T>(a.negative_slope)) + ")";
  }
  template <class T>
  static std::string label(const LeakyReluAttrs& a) {
    return "leaky_relu(" + number_text(static_cast<T>(a.negative_slope)) + ")";
  }
};

struct ErfD : Diff {
  static constexpr std::string_view name = "erf";
  template <class T>
  static T f(T x) {
    return std::erf(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g * (T(2 * std::numbers::inv_sqrtpi) * exp(-square(x)));  // 2/sqrt(pi) e^-x^2
  }
};
struct Log1pD : Diff {
  static constexpr std::string_view name = "log1p";
  template <class T>
  static T f(T x) {
    return std::log1p(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g / (x + T(1));
  }
};
struct Expm1D : Diff {
  static constexpr std::string_view name = "expm1";
  template <class T>
  static T f(T x) {
    return std::expm1(x);
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g) {
    return g * exp(x);
  }
};

/// The value of x that no gradient flows through.
struct StopGradientD {
  static constexpr bool nondiff = true;
  static constexpr std::string_view name = "stop_gradient";
  template <class T>
  static T f(T x) {
    return x;
  }
  template <class T>
  static Expr<T> simplify(Graph<T>&, Expr<T> x) {
    if (is_node_of<UnaryOp<T, StopGradientD>>(x.node())) return x;  // already stopped
    return {};
  }
};

// gelu(x) = x Phi(x). Exact: Phi(x) = erfc(-x/sqrt 2)/2 (erfc keeps the left tail's
// relative precision), Phi'(x) = phi(x) = e^(-x^2/2)/sqrt(2 pi). Tanh form (PyTorch):
// 0.5 x (1 + tanh(u)), u = k (x + c x^3), k = sqrt(2/pi), c = 0.044715.
constexpr double kGeluK = 0.79788456080286535588;  // sqrt(2/pi)
constexpr double kGeluC = 0.044715;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/sqrt(2 pi)
constexpr double kInvSqrt2 = 1 / std::numbers::sqrt2;

/// gelu'(x): Phi(x) + x phi(x) exactly, or
/// 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(u), for the tanh form.
struct GeluGradD : Diff {
  static constexpr std::string_view name = "gelu_grad";
  static GeluAttrs attrs(const Attrs& a) { return gelu_attrs(a); }
  template <class T>
  static T f(T x, const GeluAttrs& a) {
    if (a.approximate == GeluApproximate::tanh) {
      T t = std::tanh(T(kGeluK) * (x + T(kGeluC) * x * x * x));
      return T(0.5) * (T(1) + t) +
             T(0.5) * x * (T(1) - t * t) * T(kGeluK) * (T(1) + T(3 * kGeluC) * x * x);
    }
    return T(0.5) * std::erfc(-x * T(kInvSqrt2)) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  }
  // gelu''(x): phi(x) (2 - x^2) exactly; for the tanh form, with u' = k (1 + 3 c x^2),
  // (1 - t^2) (u' - x t u'^2 + 3 k c x^2).
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const GeluAttrs& a) {
    if (a.approximate == GeluApproximate::tanh) {
      Expr<T> x2 = square(x);
      Expr<T> t = tanh(T(kGeluK) * (x + T(kGeluC) * (x * x2)));
      Expr<T> du = T(kGeluK) * (T(3 * kGeluC) * x2 + T(1));
      return g * ((T(1) - square(t)) * (du - x * t * square(du) + T(3 * kGeluK * kGeluC) * x2));
    }
    return g * (T(kInvSqrt2Pi) * exp(T(-0.5) * square(x)) * (T(2) - square(x)));
  }
  template <class T>
  static std::string print(const std::string& x, const GeluAttrs& a) {
    return a.approximate == GeluApproximate::tanh ? "gelu_grad(" + x + ", tanh)"
                                                  : "gelu_grad(" + x + ")";
  }
  template <class T>
  static std::string label(const GeluAttrs& a) {
    return a.approximate == GeluApproximate::tanh ? "gelu_grad(tanh)" : "gelu_grad";
  }
};
struct GeluD : Diff {
  static constexpr std::string_view name = "gelu";
  static GeluAttrs attrs(const Attrs& a) { return gelu_attrs(a); }
  template <class T>
  static Attrs make_attrs(Expr<T> x, GeluApproximate approximate) {
    if (approximate != GeluApproximate::none && approximate != GeluApproximate::tanh) {
      throw ValueError("gelu: approximate " + std::to_string(static_cast<int>(approximate)) +
                       " is neither none nor tanh, for " + x.graph().describe(x.id()));
    }
    return to_attrs(GeluAttrs{approximate});
  }
  template <class T>
  static T f(T x, const GeluAttrs& a) {
    if (a.approximate == GeluApproximate::tanh) {
      return T(0.5) * x * (T(1) + std::tanh(T(kGeluK) * (x + T(kGeluC) * x * x * x)));
    }
    return T(0.5) * x * std::erfc(-x * T(kInvSqrt2));
  }
  template <class T>
  static Expr<T> grad(Expr<T> x, Expr<T>, Expr<T> g, const GeluAttrs& a) {
    return g * unary<T, GeluGradD>(x, to_attrs(a));
  }
  template <class T>
  static std::string print(const std::string& x, const GeluAttrs& a) {
    return a.approximate == GeluApproximate::tanh ? "gelu(" + x + ", tanh)" : "gelu(" + x + ")";
  }
  template <class T>
  static std::string label(const GeluAttrs& a) {
    return a.approximate == GeluApproximate::tanh ? "gelu(tanh)" : "gelu";
  }
};

}  // namespace
}  // namespace detail

// The builders of the table's rows with one tensor operand, instantiated for float and
// double; binary.cpp defines the rows with two.
#define XGRAD_ROW(kind, ...) XGRAD_ROW_##kind(__VA_ARGS__)
#define XGRAD_ROW_binary(name, def)
#define XGRAD_ROW_ternary(name, def)
#define XGRAD_ROW_unary(name, def)           \
  template <class T>                         \
  Expr<T> name(Expr<T> x) {                  \
    return detail::unary<T, detail::def>(x); \
  }                                          \
  template Expr<float> name(Expr<float>);    \
  template Expr<double> name(Expr<double>);
#define XGRAD_ROW_unary_scalar(name, def, p, ...)                              \
  template <class T>                                                           \
  Expr<T> name(Expr<T> x, scalar_t<T> p) {                                     \
    return detail::unary<T, detail::def>(x, detail::def::make_attrs<T>(x, p)); \
  }                                                                            \
  template Expr<float> name(Expr<float>, float);                               \
  template Expr<double> name(Expr<double>, double);
#define XGRAD_ROW_unary_scalar2(name, def, p, q)                                  \
  template <class T>                                                              \
  Expr<T> name(Expr<T> x, scalar_t<T> p, scalar_t<T> q) {                         \
    return detail::unary<T, detail::def>(x, detail::def::make_attrs<T>(x, p, q)); \
  }                                                                               \
  template Expr<float> name(Expr<float>, float, float);                           \
  template Expr<double> name(Expr<double>, double, double);
#define XGRAD_ROW_unary_option(name, def, type, p, ...)                        \
  template <class T>                                                           \
  Expr<T> name(Expr<T> x, type p) {                                            \
    return detail::unary<T, detail::def>(x, detail::def::make_attrs<T>(x, p)); \
  }                                                                            \
  template Expr<float> name(Expr<float>, type);                                \
  template Expr<double> name(Expr<double>, type);
XGRAD_ELEMENTWISE_OPS(XGRAD_ROW)

}  // namespace xgrad
