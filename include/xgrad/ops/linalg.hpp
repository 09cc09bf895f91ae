/// @file ops/linalg.hpp
/// @brief Matrix products (batched too), outer products and axis permutations.
#pragma once

#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// The linear-algebra ops, one row each: X(name, (parameters)), expanded here into
/// declarations and in src/ops/linalg.cpp into explicit instantiations.
#define XGRAD_LINALG_OPS(X)                                                                \
  /** Matrix product through BLAS: vector-vector (dot), matrix-vector, vector-matrix and   \
      matrix-matrix, and batches over a leading axis: (b, m, k) @ (b, k, n) -> (b, m, n),  \
      or (b, m, k) @ (k, n) with the right matrix shared by the batch. The transpose flags \
      (matrices and batches only) swap an operand's last two axes without materialising    \
      the transpose. */                                                                    \
  X(matmul, (Expr<T> a, Expr<T> b, bool transpose_a = false, bool transpose_b = false))    \
  /** The outer product of two vectors: (m) and (n) give (m, n), a[i] * b[j]. */           \
  X(outer, (Expr<T> a, Expr<T> b))                                                         \
  /** Permutes axes; an empty permutation reverses them. */                                \
  X(transpose, (Expr<T> x, std::vector<Dim> perm = {}))

/// @name Linear algebra
/// @{
XGRAD_LINALG_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
