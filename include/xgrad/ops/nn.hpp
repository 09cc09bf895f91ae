/// @file ops/nn.hpp
/// @brief Probabilistic layers and losses: softmax, one-hot labels, cross-entropy, MSE and
/// RMSE.
#pragma once

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// The probabilistic layers and losses, one row each: X(name, (parameters)), expanded
/// here into declarations and in src/ops/nn.cpp into explicit instantiations.
///
/// An empty batch (0 rows) is an error, never a NaN or a 0: cross_entropy and mse (a mean)
/// raise ShapeError naming the op and the empty operand, when the graph is built for a
/// static batch and when a Function is run for an open one. cross_entropy has no gradient
/// with respect to its labels (class indices): asking for one raises GraphError.
#define XGRAD_NN_OPS(X)                                                                 \
  /** Softmax along axis, shifted by the maximum so it never overflows. */              \
  X(softmax, (Expr<T> x, Dim axis = -1))                                                \
  /** log(softmax(x)) along axis, computed stably. */                                   \
  X(log_softmax, (Expr<T> x, Dim axis = -1))                                            \
  /** Rows of one-hot vectors of the given depth from integer labels; labels outside    \
      [0, depth) raise ValueError naming the node. */                                   \
  X(one_hot, (Expr<T> labels, Dim depth))                                               \
  /** Mean over rows of -log softmax(logits)[row, label]; logits (N, C), labels (N). */ \
  X(cross_entropy, (Expr<T> logits, Expr<T> labels))                                    \
  /** Mean of squared differences. */                                                   \
  X(mse, (Expr<T> pred, Expr<T> target))                                                \
  /** Root mean squared error, the seed's ||y - X beta|| / sqrt(n); subgradient 0 at a  \
      zero residual. */                                                                 \
  X(rmse, (Expr<T> pred, Expr<T> target))

/// @name Losses and probabilistic layers
/// @{
XGRAD_NN_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
