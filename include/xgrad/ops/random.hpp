/// @file ops/random.hpp
/// @brief Ops with pseudo-random masks, drawn from a seed and a step node rather than from
/// hidden generator state, so a compiled run is reproducible from those two values.
#pragma once

#include <cstdint>

#include "xgrad/graph.hpp"

namespace xgrad {

/// Inverted dropout: element i of x is kept, and scaled by 1 / (1 - p), when a
/// counter-based hash (splitmix64) of (seed, the step's value, i) gives a uniform number
/// in [0, 1) at least p; other elements become 0. i is the flat row-major index of x.
///
/// `step` is a 0-d node (a buffer, typically nn::Dropout's step counter) whose value,
/// rounded to an integer, selects the run's mask: the same seed and step give the same
/// mask in every run, on every machine and for float and double alike, and a run is
/// repeated exactly from them. No generator state is kept anywhere else.
///
/// The gradient is dropout(g, p, seed, step), the same mask applied to g, so derivatives
/// of any order exist. p must lie in [0, 1) (ValueError otherwise); p = 0 returns x.
template <class T>
Expr<T> dropout(Expr<T> x, double p, std::uint64_t seed, Expr<T> step);

}  // namespace xgrad
