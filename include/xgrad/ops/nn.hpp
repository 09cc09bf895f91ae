/// @file ops/nn.hpp
/// @brief Probabilistic layers and losses: softmax, one-hot labels, cross-entropy, binary
/// cross-entropy on logits, MSE, RMSE, Huber and L1.
#pragma once

#include <cstdint>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// How a loss turns its per-element (or per-row) terms into its result, shared by every
/// loss that takes one (PyTorch's `reduction`).
enum class Reduction : std::uint8_t {
  mean,  ///< The mean of the terms (a weighted mean when the loss has weights).
  sum,   ///< The sum of the terms.
  none,  ///< The terms themselves, shaped like the target.
};

/// The probabilistic layers and losses, one row each: X(name, (parameters)), expanded
/// here into declarations and in src/ops/nn.cpp into explicit instantiations.
///
/// A loss never broadcasts its prediction against its target: their shapes must match as
/// the loss defines them, or it raises a ShapeError naming the loss and both operands with
/// their shapes (mse of a (n, 1) prediction against a (n) target would otherwise compare
/// every prediction with every target). Shapes known when the loss is built are checked
/// then, open dimensions when a Function plans a run; squeeze, reshape or broadcast_like
/// make the intent explicit. An empty batch (0 rows) is an error, never a NaN or a 0:
/// cross_entropy, rmse and the mean-reduced losses raise ShapeError naming the op and the
/// empty operand, when the graph is built for a static batch and when a Function is run
/// for an open one.
/// cross_entropy has no gradient with respect to its labels (class indices): asking for
/// one raises GraphError.
#define XGRAD_NN_OPS(X)                                                                            \
  /** Softmax along axis, shifted by the maximum so it never overflows. */                         \
  X(softmax, (Expr<T> x, Dim axis = -1))                                                           \
  /** log(softmax(x)) along axis, computed stably. */                                              \
  X(log_softmax, (Expr<T> x, Dim axis = -1))                                                       \
  /** Rows of one-hot vectors of the given depth from integer labels; labels outside               \
      [0, depth) raise ValueError naming the node. */                                              \
  X(one_hot, (Expr<T> labels, Dim depth))                                                          \
  /** -log softmax(logits)[row, label] per row, reduced: logits (N, C), integer labels             \
      (N) (a (N, 1) column is refused: squeeze it). Optional per-class weights (C) scale           \
      each row by its label's weight; their mean divides by the sum of the weights of the          \
      rows' labels (PyTorch's semantics). Reduction::none gives the N row losses. */               \
  X(cross_entropy,                                                                                 \
    (Expr<T> logits, Expr<T> labels, Reduction reduction = Reduction::mean, Expr<T> weights = {})) \
  /** Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed stably           \
      as max(z, 0) - z*y + log1p(exp(-|z|)) (softplus(z) - z*y). pos_weight (broadcast             \
      along the targets' trailing axes, typically one per class) scales the positive               \
      term: pos_weight*y*softplus(-z) + (1 - y)*softplus(z). */                                    \
  X(binary_cross_entropy_with_logits,                                                              \
    (Expr<T> logits, Expr<T> targets, Reduction reduction = Reduction::mean,                       \
     Expr<T> pos_weight = {}))                                                                     \
  /** Squared differences, reduced (mean: the MSE). */                                             \
  X(mse, (Expr<T> pred, Expr<T> target, Reduction reduction = Reduction::mean))                    \
  /** Root mean squared error, the seed's ||y - X beta|| / sqrt(n); subgradient 0 at a             \
      zero residual. Always a full reduction. */                                                   \
  X(rmse, (Expr<T> pred, Expr<T> target))                                                          \
  /** Huber loss of d = pred - target: d^2 / 2 where |d| <= delta, else                            \
      delta*(|d| - delta/2); its gradient is clamp(d, -delta, delta). delta must be                \
      positive and finite (ValueError). */                                                         \
  X(huber,                                                                                         \
    (Expr<T> pred, Expr<T> target, double delta = 1.0, Reduction reduction = Reduction::mean))     \
  /** Absolute differences |pred - target|, reduced; subgradient 0 where they are equal. */        \
  X(l1, (Expr<T> pred, Expr<T> target, Reduction reduction = Reduction::mean))

/// @name Losses and probabilistic layers
/// @{
XGRAD_NN_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
