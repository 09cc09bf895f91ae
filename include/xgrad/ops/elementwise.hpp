/// @file ops/elementwise.hpp
/// @brief Elementwise ops (NumPy broadcasting) and the arithmetic operators.
#pragma once

#include <type_traits>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// Scalar operand type that does not take part in template deduction, so `2.0 * x` works
/// for Expr<float> as well as Expr<double>.
template <class T>
using scalar_t = std::type_identity_t<T>;

/// The elementwise ops, one row each: X(kind, name, definition struct, parameters). The
/// kind is the builder's signature: `unary` (x), `binary` (a, b, broadcast as in NumPy),
/// `unary_scalar` (x and one scalar parameter, named in the row, optionally followed by
/// its `= default`) or `unary_scalar2` (x and two scalar parameters). The definition
/// struct (src/ops/unary.cpp, binary.cpp) holds the kernel, the gradient rule and the
/// printed form. This header expands the table into the builders' declarations, the
/// sources into their definitions and explicit instantiations: adding an elementwise op
/// takes its definition struct and one documented row.
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
  X(binary, equal, EqualD)

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
