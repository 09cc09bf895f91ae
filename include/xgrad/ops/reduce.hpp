/// @file ops/reduce.hpp
/// @brief Reductions over axes (sums, extremes, products, moments, logsumexp, arg-extremes),
/// the Euclidean norm and run-time element counts.
#pragma once

#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// The reductions, one row each: X(name, (parameters)), expanded here into declarations
/// and in src/ops/reduce.cpp into explicit instantiations.
#define XGRAD_REDUCE_OPS(X)                                                                  \
  /** Sum over axes. */                                                                      \
  X(sum, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                     \
  /** Mean over axes. Over no elements (an empty batch) it raises ShapeError naming the      \
      node and the empty operand, as max does; a sum of no elements is 0. */                 \
  X(mean, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                    \
  /** Maximum over axes; tied maxima share the gradient equally. */                          \
  X(max, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                     \
  /** Minimum over axes; tied minima share the gradient equally. */                          \
  X(min, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                     \
  /** Product over axes (1 over none). The gradient of each element is the product of        \
      the others of its group, without dividing by zero: with one zero in a group only       \
      the zero gets a gradient, with two or more no element does. Its own derivative is      \
      exact except between two zeros of one group, where it is taken as 0. */                \
  X(prod, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                    \
  /** log(sum(exp(x))) over axes, computed as m + log(sum(exp(x - m))) with m the            \
      maximum, so large and very negative inputs neither overflow nor underflow; -inf        \
      over no elements. The gradient is softmax over the axes, exp(x - y), times g. */       \
  X(logsumexp, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))               \
  /** Variance over axes, sum((x - mean)^2) / (n - correction) with n the elements per       \
      output: the default correction 1 is the unbiased estimator (Bessel's correction,       \
      PyTorch's default), 0 the population variance. A negative correction, or n not         \
      above it, raises ValueError (when the graph is built if n is known, else when it       \
      runs). Computed in two passes (mean, then squared deviations) in double. */            \
  X(var, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false, Dim correction = 1)) \
  /** Standard deviation, sqrt(var(x, axes, keepdims, correction)) (same correction and      \
      errors). Where every element of a group is equal (std 0) its gradient is taken as      \
      0, the subgradient convention of norm, rather than 0/0. */                             \
  X(std, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false, Dim correction = 1)) \
  /** Index of the largest element along one axis ({a}), or into the row-major               \
      flattened x when axes is empty, as a value of T (exact up to 2^24 in float); the       \
      first one at ties, and a NaN counts as largest (as in PyTorch). Several axes or        \
      an empty axis raise ShapeError. An index is not differentiable: x receives no          \
      gradient from it (zeros). */                                                           \
  X(argmax, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                  \
  /** Index of the smallest element, otherwise as argmax (NaN counts as smallest). */        \
  X(argmin, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                  \
  /** Euclidean norm of all elements, computed with scaling so it neither overflows nor      \
      underflows; the subgradient at 0 is 0. */                                              \
  X(norm, (Expr<T> x))                                                                       \
  /** Number of elements of x over axes at run time (all axes when empty); zero              \
      gradient. */                                                                           \
  X(size_of, (Expr<T> x, std::vector<Dim> axes = {}))

/// @name Reductions (empty axes: all elements; negative axes count from the end)
/// @{
XGRAD_REDUCE_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
