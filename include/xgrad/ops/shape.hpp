/// @file ops/shape.hpp
/// @brief Ops that move or replicate elements without arithmetic: reshapes, broadcasting
/// and its adjoint, row gather and scatter, slicing, concatenation, stacking and splitting.
#pragma once

#include <initializer_list>
#include <utility>
#include <vector>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// The shape ops, one row each: X(name, (parameters)), expanded here into declarations
/// and in src/ops/shape.cpp into explicit instantiations.
#define XGRAD_SHAPE_OPS(X)                                                               \
  /** Same elements, new shape; one entry may be -1 (inferred). */                       \
  X(reshape, (Expr<T> x, Shape shape))                                                   \
  /** Same elements with the run-time shape of ref. */                                   \
  X(reshape_like, (Expr<T> x, Expr<T> ref))                                              \
  /** Inserts size-1 axes at the given output positions. */                              \
  X(unsqueeze, (Expr<T> x, std::vector<Dim> axes))                                       \
  /** Removes the given size-1 axes. */                                                  \
  X(squeeze, (Expr<T> x, std::vector<Dim> axes))                                         \
  /** Broadcasts to a static shape (NumPy rules). */                                     \
  X(broadcast_to, (Expr<T> x, Shape shape))                                              \
  /** Broadcasts x to the run-time shape of ref. */                                      \
  X(broadcast_like, (Expr<T> x, Expr<T> ref))                                            \
  /** Sums x down to the run-time shape of ref (the adjoint of broadcasting). */         \
  X(sum_to_like, (Expr<T> x, Expr<T> ref))                                               \
  /** Rows of x picked by integer indices (a 1-d node, usually an int64 input). */       \
  X(gather_rows, (Expr<T> x, Expr<T> indices))                                           \
  /** Adds the rows of x into a zero tensor shaped like ref at the given row indices. */ \
  X(scatter_add_rows, (Expr<T> x, Expr<T> indices, Expr<T> ref))                         \
  /** Zeros with the run-time shape of x; zero gradient. */                              \
  X(zeros_like, (Expr<T> x))

/// The slices and joins, one row each: X(name, (parameters)), expanded here into
/// declarations and in src/ops/slicing.cpp into explicit instantiations.
#define XGRAD_SLICE_OPS(X)                                                               \
  /** Elements begin..end (exclusive, negative counts from the end) along axis. Bounds   \
      are clamped to the axis as in Python: slice(x, 0, 2, 100) of 5 rows takes rows     \
      2..4 and an empty range gives an empty result, never an error. */                  \
  X(slice, (Expr<T> x, Dim axis, Dim begin, Dim end))                                    \
  /** Places x into zeros shaped like ref at begin along axis (the adjoint of slice). */ \
  X(pad_like, (Expr<T> x, Expr<T> ref, Dim axis, Dim begin))                             \
  /** Joins tensors along an axis. */                                                    \
  X(concatenate, (const std::vector<Expr<T>>& xs, Dim axis = 0))                         \
  /** Joins tensors of one shape along a new axis (at position axis of the result). */   \
  X(stack, (const std::vector<Expr<T>>& xs, Dim axis = 0))

/// @name Shape manipulation
/// @{
XGRAD_SHAPE_OPS(XGRAD_DETAIL_DECLARE)
XGRAD_SLICE_OPS(XGRAD_DETAIL_DECLARE)

/// The pieces split() cuts an axis into: a number of equal sections (`split(x, 3)`) or
/// the extent of each piece (`split(x, {2, 3})`; a braced single number is one piece of
/// that extent, not a count).
struct SplitSizes {
  /// A number of equal sections, which must divide the extent.
  SplitSizes(Dim n) : sections(n) {}  // NOLINT(google-explicit-constructor)
  /// The extent of each piece; they must add up to the axis' extent.
  SplitSizes(std::initializer_list<Dim> s) : sizes(s) {}
  /// The extent of each piece; they must add up to the axis' extent.
  SplitSizes(std::vector<Dim> s) : sizes(std::move(s)) {}  // NOLINT(google-explicit-constructor)
  Dim sections = 0;        ///< Number of equal sections (when sizes is empty).
  std::vector<Dim> sizes;  ///< Extent of each piece.
};

/// Cuts x along an axis of known extent into consecutive pieces, the inverse of
/// concatenate. It adds no op of its own (so it is not a row of the tables): the pieces
/// are slice nodes, and the gradient of x places each used piece's gradient back where
/// the piece came from (pieces without a gradient contribute zeros). Sizes that do not
/// add up to the extent, or sections that do not divide it, raise ValueError.
template <class T>
std::vector<Expr<T>> split(Expr<T> x, const SplitSizes& pieces, Dim axis = 0);
/// @}

}  // namespace xgrad
