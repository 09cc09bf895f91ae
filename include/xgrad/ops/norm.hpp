/// @file ops/norm.hpp
/// @brief Normalisation built from the elementwise and reduction ops (so its gradients,
/// and theirs, come from those ops' rules).
#pragma once

#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// The normalisation ops, one row each: X(name, (parameters)), expanded here into
/// declarations and in src/ops/norm.cpp into explicit instantiations.
#define XGRAD_NORM_OPS(X)                                                                 \
  /** (x - mean) / sqrt(var + eps) over the trailing `dims` axes of x, the mean and the   \
      (biased) variance taken over those axes, as PyTorch's layer_norm without its affine \
      part. dims must be at least 1 and at most x's rank, their extents known. */         \
  X(layer_norm, (Expr<T> x, std::size_t dims = 1, double eps = 1e-5))                     \
  /** (x - mean) / sqrt(var + eps) with the mean and biased variance of every channel     \
      (axis 1) over the other axes: batch normalisation's training-time form, for x of    \
      shape (n, c) or (n, c, h, w). */                                                    \
  X(batch_norm_batch_stats, (Expr<T> x, double eps = 1e-5))

/// @name Normalisation
/// @{
XGRAD_NORM_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
