/// @file ops.hpp
/// @brief Builders for every built-in op. Each builder adds a node (after simplification)
/// and returns its handle; definitions and kernels live in src/ops/.
#pragma once

#include <type_traits>
#include <vector>

#include "xgrad/graph.hpp"

namespace xgrad {

/// Scalar operand type that does not take part in template deduction, so `2.0 * x` works
/// for Expr<float> as well as Expr<double>.
template <class T>
using scalar_t = std::type_identity_t<T>;

/// @name Elementwise arithmetic (NumPy broadcasting)
/// @{

/// a + b.
template <class T>
Expr<T> add(Expr<T> a, Expr<T> b);
/// a - b.
template <class T>
Expr<T> sub(Expr<T> a, Expr<T> b);
/// a * b.
template <class T>
Expr<T> mul(Expr<T> a, Expr<T> b);
/// a / b.
template <class T>
Expr<T> div(Expr<T> a, Expr<T> b);
/// -x.
template <class T>
Expr<T> neg(Expr<T> x);
/// x ** p with a scalar exponent.
template <class T>
Expr<T> pow(Expr<T> x, scalar_t<T> p);
/// x ** y with a tensor exponent; the gradient with respect to y uses x**y * log(x),
/// taken as 0 where x**y is 0.
template <class T>
Expr<T> pow(Expr<T> x, Expr<T> y);
/// Elementwise larger value; at ties each operand gets half of the gradient.
template <class T>
Expr<T> maximum(Expr<T> a, Expr<T> b);
/// Elementwise smaller value; at ties each operand gets half of the gradient.
template <class T>
Expr<T> minimum(Expr<T> a, Expr<T> b);
/// x limited to [lo, hi]; the gradient is 1 inside the closed interval, 0 outside.
template <class T>
Expr<T> clamp(Expr<T> x, scalar_t<T> lo, scalar_t<T> hi);
/// a / b where b is nonzero, 0 where b is 0: the subgradient convention of norm and rmse.
template <class T>
Expr<T> safe_div(Expr<T> a, Expr<T> b);
/// a * log(b), taken as 0 where a is 0.
template <class T>
Expr<T> xlogy(Expr<T> a, Expr<T> b);
/// @}

/// @name Elementwise functions
/// @{

/// x * x.
template <class T>
Expr<T> square(Expr<T> x);
/// Square root.
template <class T>
Expr<T> sqrt(Expr<T> x);
/// e ** x.
template <class T>
Expr<T> exp(Expr<T> x);
/// Natural logarithm.
template <class T>
Expr<T> log(Expr<T> x);
/// |x|; the subgradient at 0 is 0.
template <class T>
Expr<T> abs(Expr<T> x);
/// Sine.
template <class T>
Expr<T> sin(Expr<T> x);
/// Cosine.
template <class T>
Expr<T> cos(Expr<T> x);
/// Hyperbolic tangent.
template <class T>
Expr<T> tanh(Expr<T> x);
/// 1 / (1 + e ** -x), computed without overflow.
template <class T>
Expr<T> sigmoid(Expr<T> x);
/// max(x, 0); the subgradient at 0 is 0.
template <class T>
Expr<T> relu(Expr<T> x);
/// log(1 + e ** x), computed without overflow.
template <class T>
Expr<T> softplus(Expr<T> x);
/// -1, 0 or 1; zero gradient.
template <class T>
Expr<T> sign(Expr<T> x);
/// 1 where x > 0, else 0; zero gradient.
template <class T>
Expr<T> step(Expr<T> x);
/// 1 where a == b (broadcast), else 0; zero gradient.
template <class T>
Expr<T> equal(Expr<T> a, Expr<T> b);
/// @}

/// @name Linear algebra
/// @{

/// Matrix product through BLAS: vector-vector (dot), matrix-vector, vector-matrix and
/// matrix-matrix. The transpose flags (2-d operands only) avoid materialised transposes.
template <class T>
Expr<T> matmul(Expr<T> a, Expr<T> b, bool transpose_a = false, bool transpose_b = false);
/// Permutes axes; an empty permutation reverses them.
template <class T>
Expr<T> transpose(Expr<T> x, std::vector<Dim> perm = {});
/// @}

/// @name Reductions (empty axes: all elements; negative axes count from the end)
/// @{

/// Sum over axes.
template <class T>
Expr<T> sum(Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false);
/// Mean over axes.
template <class T>
Expr<T> mean(Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false);
/// Maximum over axes; tied maxima share the gradient equally.
template <class T>
Expr<T> max(Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false);
/// Euclidean norm of all elements, computed with scaling so it neither overflows nor
/// underflows; the subgradient at 0 is 0.
template <class T>
Expr<T> norm(Expr<T> x);
/// Number of elements of x over axes at run time (all axes when empty); zero gradient.
template <class T>
Expr<T> size_of(Expr<T> x, std::vector<Dim> axes = {});
/// @}

/// @name Shape manipulation
/// @{

/// Same elements, new shape; one entry may be -1 (inferred).
template <class T>
Expr<T> reshape(Expr<T> x, Shape shape);
/// Same elements with the run-time shape of ref.
template <class T>
Expr<T> reshape_like(Expr<T> x, Expr<T> ref);
/// Inserts size-1 axes at the given output positions.
template <class T>
Expr<T> unsqueeze(Expr<T> x, std::vector<Dim> axes);
/// Removes the given size-1 axes.
template <class T>
Expr<T> squeeze(Expr<T> x, std::vector<Dim> axes);
/// Broadcasts to a static shape (NumPy rules).
template <class T>
Expr<T> broadcast_to(Expr<T> x, Shape shape);
/// Broadcasts x to the run-time shape of ref.
template <class T>
Expr<T> broadcast_like(Expr<T> x, Expr<T> ref);
/// Sums x down to the run-time shape of ref (the adjoint of broadcasting).
template <class T>
Expr<T> sum_to_like(Expr<T> x, Expr<T> ref);
/// Rows of x picked by integer indices (a 1-d node, usually an int64 input).
template <class T>
Expr<T> gather_rows(Expr<T> x, Expr<T> indices);
/// Adds the rows of x into a zero tensor shaped like ref at the given row indices.
template <class T>
Expr<T> scatter_add_rows(Expr<T> x, Expr<T> indices, Expr<T> ref);
/// Elements begin..end (exclusive, negative counts from the end) along axis.
template <class T>
Expr<T> slice(Expr<T> x, Dim axis, Dim begin, Dim end);
/// Places x into zeros shaped like ref at begin along axis (the adjoint of slice).
template <class T>
Expr<T> pad_like(Expr<T> x, Expr<T> ref, Dim axis, Dim begin);
/// Zeros with the run-time shape of x; zero gradient.
template <class T>
Expr<T> zeros_like(Expr<T> x);
/// Joins tensors along an axis.
template <class T>
Expr<T> concatenate(const std::vector<Expr<T>>& xs, Dim axis = 0);
/// @}

/// @name Losses and probabilistic layers
/// @{

/// Softmax along axis, shifted by the maximum so it never overflows.
template <class T>
Expr<T> softmax(Expr<T> x, Dim axis = -1);
/// log(softmax(x)) along axis, computed stably.
template <class T>
Expr<T> log_softmax(Expr<T> x, Dim axis = -1);
/// Rows of one-hot vectors of the given depth from integer labels; labels outside
/// [0, depth) raise ValueError naming the node.
template <class T>
Expr<T> one_hot(Expr<T> labels, Dim depth);
/// Mean over rows of -log softmax(logits)[row, label]; logits (N, C), labels (N).
template <class T>
Expr<T> cross_entropy(Expr<T> logits, Expr<T> labels);
/// Mean of squared differences.
template <class T>
Expr<T> mse(Expr<T> pred, Expr<T> target);
/// Root mean squared error, the seed's ||y - X beta|| / sqrt(n); subgradient 0 at a zero
/// residual.
template <class T>
Expr<T> rmse(Expr<T> pred, Expr<T> target);
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
  return add(a, a.graph().scalar(b));
}
/// scalar + x.
template <class T>
Expr<T> operator+(scalar_t<T> a, Expr<T> b) {
  return add(b.graph().scalar(a), b);
}
/// x - scalar.
template <class T>
Expr<T> operator-(Expr<T> a, scalar_t<T> b) {
  return sub(a, a.graph().scalar(b));
}
/// scalar - x.
template <class T>
Expr<T> operator-(scalar_t<T> a, Expr<T> b) {
  return sub(b.graph().scalar(a), b);
}
/// x * scalar.
template <class T>
Expr<T> operator*(Expr<T> a, scalar_t<T> b) {
  return mul(a, a.graph().scalar(b));
}
/// scalar * x.
template <class T>
Expr<T> operator*(scalar_t<T> a, Expr<T> b) {
  return mul(b.graph().scalar(a), b);
}
/// x / scalar.
template <class T>
Expr<T> operator/(Expr<T> a, scalar_t<T> b) {
  return div(a, a.graph().scalar(b));
}
/// scalar / x.
template <class T>
Expr<T> operator/(scalar_t<T> a, Expr<T> b) {
  return div(b.graph().scalar(a), b);
}
/// @}

}  // namespace xgrad
#include "xgrad/ops/conv.hpp"
#include "xgrad/ops/norm.hpp"
#include "xgrad/ops/random.hpp"
