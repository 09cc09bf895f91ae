/// @file feeds.hpp
/// @brief Binding a Batch to the inputs of a compiled Function: `step.run(batch.feeds(x,
/// y))`.
///
/// The one place where xgrad/data/ meets the executor (xgrad/function.hpp): data sets and
/// the loader compile without it, and data.hpp includes this header for the binding.
#pragma once

#include <array>

#include "xgrad/data/dataset.hpp"
#include "xgrad/function.hpp"

namespace xgrad::data {

/// @cond INTERNAL
namespace detail {
// Feed<G> from Expr<G>, with G deduced (aggregate deduction is not in every compiler).
template <class G>
Feed<G> bind(Expr<G> input, TensorArg value) {
  return {input, value};
}
}  // namespace detail
/// @endcond

/// Bindings of the batch's features to input x and its targets to input y, for
/// Function::run: `step.run(feeds(batch, x, y))`, which batch.feeds(x, y) spells shorter.
/// The batch must outlive the run (nothing is copied).
template <class X, Element T, Element L>
auto feeds(const Batch<T, L>& batch, const X& x, const X& y) {
  return std::array{detail::bind(x, batch.features), detail::bind(y, batch.targets)};
}

/// Binding of the batch's features alone to input x, for prediction:
/// `predict.run(feeds(batch, x))`.
template <class X, Element T, Element L>
auto feeds(const Batch<T, L>& batch, const X& x) {
  return std::array{detail::bind(x, batch.features)};
}

}  // namespace xgrad::data
