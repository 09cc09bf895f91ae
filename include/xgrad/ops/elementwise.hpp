/// @file ops/elementwise.hpp
/// @brief Elementwise ops (NumPy broadcasting) and the arithmetic operators.
#pragma once

#include <cstdint>
#include <type_traits>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// Scalar operand type that does not take part in template deduction, so `2.0 * x` works
/// for Expr<float> as well as Expr<double>.
template <class T>
using scalar_t = std::type_identity_t<T>;

/// Which function gelu computes.
enum class GeluApproximate : std::uint8_t {
  none,  ///< The exact x * Phi(x), with the Gaussian CDF Phi written with erf.
  tanh,  ///< PyTorch's approximate="tanh" form, which GPT-2-style models were trained with.
};

/// The elementwise ops, one row each: X(kind, name, definition struct, parameters). The
/// kind is the builder's signature: `unary` (x), `binary` (a, b, broadcast as in NumPy),
/// `unary_scalar` (x and one scalar parameter, named in the row, optionally followed by
/// its `= default`), `unary_scalar2` (x and two scalar parameters), `unary_option` (x and
/// one parameter of the type named in the row, then its name and `= default`) or
/// `ternary` (cond, a, b, all three broadcast). The definition struct (src/ops/unary.cpp,
/// binary.cpp, ternary.cpp) holds the kernel, the gradient rule and the printed form. This header
/// expands the table into the builders' declarations, the sources into their definitions and
/// explicit instantiations: adding an elementwise op takes its definition struct and one documented
/// row.
#define XGRAD_ELEMENTWISE_OPS(X)                                                             \
  /** a + b. */                                                                              \
  X(binary, add, AddD)                                                                       \
  /** a - b. */                                                                              \
  X(binary, sub, SubD)                                                                       \
  /** a * b. */                                                                              \
  X(binary, mul, MulD)                                                                       \
  /** a / b. */                                                                              \
  X(binary, div, DivD)                                                                       \
  /** -x. */                                                                                 \
  X(unary, neg, NegD)                                                                        \
  /** x ** p with a scalar exponent. */                                                      \
  X(unary_scalar, pow, PowScalarD, p)                                                        \
  /** a ** b with a tensor exponent; the gradient with respect to b uses a**b * log(a),      \
      taken as 0 where a**b is 0. */                                                         \
  X(binary, pow, PowD)                                                                       \
  /** Elementwise larger value; at ties each operand gets half of the gradient. */           \
  X(binary, maximum, MaxD)                                                                   \
  /** Elementwise smaller value; at ties each operand gets half of the gradient. */          \
  X(binary, minimum, MinD)                                                                   \
  /** x limited to [lo, hi]; the gradient is 1 inside the closed interval, 0 outside. Bounds \
      with lo > hi raise ValueError. */                                                      \
  X(unary_scalar2, clamp, ClampD, lo, hi)                                                    \
  /** a / b where b is nonzero, 0 where b is 0: the subgradient convention of norm and       \
      rmse. */                                                                               \
  X(binary, safe_div, SafeDivD)                                                              \
  /** a * log(b), taken as 0 where a is 0. */                                                \
  X(binary, xlogy, XlogyD)                                                                   \
  /** x * x. */                                                                              \
  X(unary, square, SquareD)                                                                  \
  /** Square root. */                                                                        \
  X(unary, sqrt, SqrtD)                                                                      \
  /** e ** x. */                                                                             \
  X(unary, exp, ExpD)                                                                        \
  /** Natural logarithm. */                                                                  \
  X(unary, log, LogD)                                                                        \
  /** |x|; the subgradient at 0 is 0. */                                                     \
  X(unary, abs, AbsD)                                                                        \
  /** Sine. */                                                                               \
  X(unary, sin, SinD)                                                                        \
  /** Cosine. */                                                                             \
  X(unary, cos, CosD)                                                                        \
  /** Hyperbolic tangent. */                                                                 \
  X(unary, tanh, TanhD)                                                                      \
  /** 1 / (1 + e ** -x), computed without overflow. */                                       \
  X(unary, sigmoid, SigmoidD)                                                                \
  /** max(x, 0); the subgradient at 0 is 0. */                                               \
  X(unary, relu, ReluD)                                                                      \
  /** x where x >= 0, negative_slope * x elsewhere. The derivative is 1 where x > 0 and      \
      negative_slope elsewhere, at 0 too (PyTorch's convention). A negative or non-finite    \
      slope raises ValueError. */                                                            \
  X(unary_scalar, leaky_relu, LeakyReluD, negative_slope, = 0.01)                            \
  /** log(1 + e ** x), computed without overflow. */                                         \
  X(unary, softplus, SoftplusD)                                                              \
  /** -1, 0 or 1; zero gradient. */                                                          \
  X(unary, sign, SignD)                                                                      \
  /** 1 where x > 0, else 0; zero gradient. */                                               \
  X(unary, step, StepD)                                                                      \
  /** 1 where a == b (broadcast), else 0; zero gradient. */                                  \
  X(binary, equal, EqualD)                                                                   \
  /** Gauss error function, 2/sqrt(pi) times the integral of e ** -t^2 from 0 to x. */       \
  X(unary, erf, ErfD)                                                                        \
  /** log(1 + x), accurate where x is tiny (log(1 + x) would round 1 + x first). */          \
  X(unary, log1p, Log1pD)                                                                    \
  /** e ** x - 1, accurate where x is tiny. */                                               \
  X(unary, expm1, Expm1D)                                                                    \
  /** Gaussian error linear unit x * Phi(x), Phi the standard normal CDF: exactly            \
      0.5 x (1 + erf(x / sqrt(2))) by default, or with GeluApproximate::tanh                 \
      0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) as in PyTorch. The gradient is one     \
      node, differentiable again. */                                                         \
  X(unary_option, gelu, GeluD, GeluApproximate, approximate, = GeluApproximate::none)        \
  /** x itself, as a value that no gradient flows through (detach): the forward is the       \
      identity and x receives nothing from it, so grad(x * stop_gradient(x)) is x. */        \
  X(unary, stop_gradient, StopGradientD)                                                     \
  /** a where cond is nonzero, b where it is zero (NaN counts as nonzero); cond, a and b     \
      broadcast together as in NumPy. The gradient flows to a and b where each is chosen,    \
      summed back to their shapes; cond, a mask, receives none. */                           \
  X(ternary, where, WhereD)

// The declaration of each row's builder, by kind.
#define XGRAD_DETAIL_DECLARE_ELEMENTWISE(kind, ...) XGRAD_DETAIL_DECLARE_##kind(__VA_ARGS__)
#define XGRAD_DETAIL_DECLARE_unary(name, def) \
  template <class T>                          \
  Expr<T> name(Expr<T> x);
#define XGRAD_DETAIL_DECLARE_binary(name, def) \
  template <class T>                           \
  Expr<T> name(Expr<T> a, Expr<T> b);
#define XGRAD_DETAIL_DECLARE_unary_scalar(name, def, p, ...) \
  template <class T>                                         \
  Expr<T> name(Expr<T> x, scalar_t<T> p __VA_ARGS__);
#define XGRAD_DETAIL_DECLARE_unary_scalar2(name, def, p, q) \
  template <class T>                                        \
  Expr<T> name(Expr<T> x, scalar_t<T> p, scalar_t<T> q);
#define XGRAD_DETAIL_DECLARE_unary_option(name, def, type, p, ...) \
  template <class T>                                               \
  Expr<T> name(Expr<T> x, type p __VA_ARGS__);
#define XGRAD_DETAIL_DECLARE_ternary(name, def) \
  template <class T>                            \
  Expr<T> name(Expr<T> cond, Expr<T> a, Expr<T> b);

/// @name Elementwise ops (NumPy broadcasting)
/// @{
XGRAD_ELEMENTWISE_OPS(XGRAD_DETAIL_DECLARE_ELEMENTWISE)
/// @}

/// @name Operators
/// @{

/// a + b.
template <class T>
Expr<T> operator+(Expr<T> a, Expr<T> b) {
  return add(a, b);
}
/// a - b.
template <class T>
Expr<T> operator-(Expr<T> a, Expr<T> b) {
  return sub(a, b);
}
/// a * b (elementwise).
template <class T>
Expr<T> operator*(Expr<T> a, Expr<T> b) {
  return mul(a, b);
}
/// a / b.
template <class T>
Expr<T> operator/(Expr<T> a, Expr<T> b) {
  return div(a, b);
}
/// -x.
template <class T>
Expr<T> operator-(Expr<T> x) {
  return neg(x);
}
/// x + scalar.
template <class T>
Expr<T> operator+(Expr<T> a, scalar_t<T> b) {
  return add(a, a.graph("add").scalar(b));
}
/// scalar + x.
template <class T>
Expr<T> operator+(scalar_t<T> a, Expr<T> b) {
  return add(b.graph("add").scalar(a), b);
}
/// x - scalar.
template <class T>
Expr<T> operator-(Expr<T> a, scalar_t<T> b) {
  return sub(a, a.graph("sub").scalar(b));
}
/// scalar - x.
template <class T>
Expr<T> operator-(scalar_t<T> a, Expr<T> b) {
  return sub(b.graph("sub").scalar(a), b);
}
/// x * scalar.
template <class T>
Expr<T> operator*(Expr<T> a, scalar_t<T> b) {
  return mul(a, a.graph("mul").scalar(b));
}
/// scalar * x.
template <class T>
Expr<T> operator*(scalar_t<T> a, Expr<T> b) {
  return mul(b.graph("mul").scalar(a), b);
}
/// x / scalar.
template <class T>
Expr<T> operator/(Expr<T> a, scalar_t<T> b) {
  return div(a, a.graph("div").scalar(b));
}
/// scalar / x.
template <class T>
Expr<T> operator/(scalar_t<T> a, Expr<T> b) {
  return div(b.graph("div").scalar(a), b);
}
/// @}

}  // namespace xgrad
