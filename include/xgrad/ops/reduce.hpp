/// @file ops/reduce.hpp
/// @brief Reductions over axes, the Euclidean norm and run-time element counts.
#pragma once

#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// The reductions, one row each: X(name, (parameters)), expanded here into declarations
/// and in src/ops/reduce.cpp into explicit instantiations.
#define XGRAD_REDUCE_OPS(X)                                                             \
  /** Sum over axes. */                                                                 \
  X(sum, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                \
  /** Mean over axes. Over no elements (an empty batch) it raises ShapeError naming the \
      node and the empty operand, as max does; a sum of no elements is 0. */            \
  X(mean, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))               \
  /** Maximum over axes; tied maxima share the gradient equally. */                     \
  X(max, (Expr<T> x, std::vector<Dim> axes = {}, bool keepdims = false))                \
  /** Euclidean norm of all elements, computed with scaling so it neither overflows nor \
      underflows; the subgradient at 0 is 0. */                                         \
  X(norm, (Expr<T> x))                                                                  \
  /** Number of elements of x over axes at run time (all axes when empty); zero         \
      gradient. */                                                                      \
  X(size_of, (Expr<T> x, std::vector<Dim> axes = {}))

/// @name Reductions (empty axes: all elements; negative axes count from the end)
/// @{
XGRAD_REDUCE_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
