/// @file ops/linalg.hpp
/// @brief Matrix products and axis permutations.
#pragma once

#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// The linear-algebra ops, one row each: X(name, (parameters)), expanded here into
/// declarations and in src/ops/linalg.cpp into explicit instantiations.
#define XGRAD_LINALG_OPS(X)                                                              \
  /** Matrix product through BLAS: vector-vector (dot), matrix-vector, vector-matrix and \
      matrix-matrix. The transpose flags (2-d operands only) avoid materialised          \
      transposes. */                                                                     \
  X(matmul, (Expr<T> a, Expr<T> b, bool transpose_a = false, bool transpose_b = false))  \
  /** Permutes axes; an empty permutation reverses them. */                              \
  X(transpose, (Expr<T> x, std::vector<Dim> perm = {}))

/// @name Linear algebra
/// @{
XGRAD_LINALG_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
