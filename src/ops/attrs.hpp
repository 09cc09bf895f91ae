// The meaning of the attribute record (xgrad::Attrs) for each built-in op, by name. One
// hashable record keeps nodes uniform (common-subexpression merging compares it), and
// these accessors keep what its fields mean for each op in one place: op code reads
// `slice_attrs(a).begin`, never `a.ints[1]`. Each op has a struct of named fields, a
// reader `<op>_attrs(const Attrs&)` and a writer `to_attrs(<Op>Attrs)`. Readers of list
// attributes return references into the record (kernels read them without allocating).
// The matrix product's accessors are public (op.hpp): the executor reads them. Internal
// to src/.
#pragma once

#include <vector>

#include "xgrad/op.hpp"
#include "xgrad/ops/elementwise.hpp"
#include "xgrad/ops/nn.hpp"

namespace xgrad::detail {

// ---------------------------------------------------------------- elementwise

/// pow(x, p) with a scalar exponent.
struct PowAttrs {
  double p = 0;  ///< The exponent.
};
inline PowAttrs pow_attrs(const Attrs& a) { return {a.real}; }
inline Attrs to_attrs(const PowAttrs& p) {
  Attrs a;
  a.real = p.p;
  return a;
}

/// clamp(x, lo, hi), and the mask of its gradient (1 on the closed interval).
struct ClampAttrs {
  double lo = 0;  ///< Lower bound.
  double hi = 0;  ///< Upper bound.
};
inline ClampAttrs clamp_attrs(const Attrs& a) { return {a.real, a.real2}; }
inline Attrs to_attrs(const ClampAttrs& c) {
  Attrs a;
  a.real = c.lo;
  a.real2 = c.hi;
  return a;
}

/// leaky_relu(x, negative_slope), and its derivative.
struct LeakyReluAttrs {
  double negative_slope = 0;  ///< Slope for x < 0.
};
inline LeakyReluAttrs leaky_relu_attrs(const Attrs& a) { return {a.real}; }
inline Attrs to_attrs(const LeakyReluAttrs& l) {
  Attrs a;
  a.real = l.negative_slope;
  return a;
}

/// gelu(x, approximate), and its derivative.
struct GeluAttrs {
  GeluApproximate approximate = GeluApproximate::none;  ///< Exact or the tanh form.
};
inline GeluAttrs gelu_attrs(const Attrs& a) {
  return {a.flag ? GeluApproximate::tanh : GeluApproximate::none};
}
inline Attrs to_attrs(const GeluAttrs& g) {
  Attrs a;
  a.flag = g.approximate == GeluApproximate::tanh;
  return a;
}

// ---------------------------------------------------------------- reductions

/// sum, mean and max over axes.
struct ReduceAttrs {
  const std::vector<Dim>& axes;  ///< Reduced axes: sorted, non-negative.
  bool keepdims = false;         ///< Reduced axes stay, with extent 1.
  bool all_axes = false;         ///< Every axis is reduced (printed without the axes).
};
inline ReduceAttrs reduce_attrs(const Attrs& a) { return {a.ints, a.flag, a.flag2}; }
inline Attrs to_attrs(const ReduceAttrs& r) {
  Attrs a;
  a.ints = r.axes;
  a.flag = r.keepdims;
  a.flag2 = r.all_axes;
  return a;
}

/// var(x, axes, keepdims, correction) and std(...).
struct MomentAttrs {
  const std::vector<Dim>& axes;  ///< Reduced axes: sorted, non-negative.
  bool keepdims = false;         ///< Reduced axes stay, with extent 1.
  bool all_axes = false;         ///< Every axis is reduced (printed without the axes).
  Dim correction = 1;            ///< The divisor is the count minus this (Bessel's correction).
};
inline MomentAttrs moment_attrs(const Attrs& a) {
  return {a.ints, a.flag, a.flag2, static_cast<Dim>(a.real)};
}
inline Attrs to_attrs(const MomentAttrs& m) {
  Attrs a;
  a.ints = m.axes;
  a.flag = m.keepdims;
  a.flag2 = m.all_axes;
  a.real = static_cast<double>(m.correction);
  return a;
}

/// argmax(x, axes, keepdims) and argmin.
struct ArgAttrs {
  Dim axis = 0;           ///< Searched axis (non-negative), or -1 for all elements.
  bool keepdims = false;  ///< The searched axes stay, with extent 1.
};
inline ArgAttrs arg_attrs(const Attrs& a) { return {a.ints[0], a.flag}; }
inline Attrs to_attrs(const ArgAttrs& r) {
  Attrs a;
  a.ints = {r.axis};
  a.flag = r.keepdims;
  return a;
}

/// size_of(x, axes).
struct SizeOfAttrs {
  const std::vector<Dim>& axes;  ///< Counted axes as given (negative from the end); empty: all.
};
inline SizeOfAttrs size_of_attrs(const Attrs& a) { return {a.ints}; }
inline Attrs to_attrs(const SizeOfAttrs& s) {
  Attrs a;
  a.ints = s.axes;
  return a;
}

// ---------------------------------------------------------------- linear algebra

/// transpose(x, perm).
struct TransposeAttrs {
  const std::vector<Dim>& perm;  ///< Output axis i is input axis perm[i] (non-negative).
};
inline TransposeAttrs transpose_attrs(const Attrs& a) { return {a.ints}; }
inline Attrs to_attrs(const TransposeAttrs& t) {
  Attrs a;
  a.ints = t.perm;
  return a;
}

// ---------------------------------------------------------------- shape ops

/// reshape(x, shape).
struct ReshapeAttrs {
  const Shape& shape;  ///< Target shape; one entry may be -1 (inferred).
};
inline ReshapeAttrs reshape_attrs(const Attrs& a) { return {a.ints}; }
inline Attrs to_attrs(const ReshapeAttrs& r) {
  Attrs a;
  a.ints = r.shape;
  return a;
}

/// squeeze(x, axes) and unsqueeze(x, axes).
struct SqueezeAttrs {
  const std::vector<Dim>& axes;  ///< Removed input axes, or inserted output positions.
};
inline SqueezeAttrs squeeze_attrs(const Attrs& a) { return {a.ints}; }
inline Attrs to_attrs(const SqueezeAttrs& s) {
  Attrs a;
  a.ints = s.axes;
  return a;
}

/// broadcast_to(x, shape); broadcast_like takes its target from an operand instead.
struct BroadcastAttrs {
  const Shape& shape;  ///< Static target shape.
};
inline BroadcastAttrs broadcast_attrs(const Attrs& a) { return {a.ints}; }
inline Attrs to_attrs(const BroadcastAttrs& b) {
  Attrs a;
  a.ints = b.shape;
  return a;
}

/// slice(x, axis, begin, end).
struct SliceAttrs {
  Dim axis = 0;   ///< Sliced axis (negative from the end).
  Dim begin = 0;  ///< First element (negative from the end).
  Dim end = 0;    ///< One past the last element (negative from the end).
};
inline SliceAttrs slice_attrs(const Attrs& a) { return {a.ints[0], a.ints[1], a.ints[2]}; }
inline Attrs to_attrs(const SliceAttrs& s) {
  Attrs a;
  a.ints = {s.axis, s.begin, s.end};
  return a;
}

/// pad_like(x, ref, axis, begin).
struct PadAttrs {
  Dim axis = 0;   ///< Axis x is placed along (negative from the end).
  Dim begin = 0;  ///< Position of x's first element (negative from the end).
};
inline PadAttrs pad_attrs(const Attrs& a) { return {a.ints[0], a.ints[1]}; }
inline Attrs to_attrs(const PadAttrs& p) {
  Attrs a;
  a.ints = {p.axis, p.begin};
  return a;
}

/// concatenate(xs, axis).
struct ConcatAttrs {
  Dim axis = 0;  ///< Joined axis (negative from the end).
};
inline ConcatAttrs concat_attrs(const Attrs& a) { return {a.ints[0]}; }
inline Attrs to_attrs(const ConcatAttrs& c) {
  Attrs a;
  a.ints = {c.axis};
  return a;
}

// ---------------------------------------------------------------- nn

/// softmax(x, axis) and log_softmax(x, axis).
struct SoftmaxAttrs {
  Dim axis = 0;      ///< Normalised axis (non-negative).
  bool log = false;  ///< log_softmax rather than softmax.
};
inline SoftmaxAttrs softmax_attrs(const Attrs& a) { return {a.ints[0], a.flag}; }
inline Attrs to_attrs(const SoftmaxAttrs& s) {
  Attrs a;
  a.ints = {s.axis};
  a.flag = s.log;
  return a;
}

/// one_hot(labels, depth).
struct OneHotAttrs {
  Dim depth = 0;  ///< Number of classes.
};
inline OneHotAttrs one_hot_attrs(const Attrs& a) { return {a.ints[0]}; }
inline Attrs to_attrs(const OneHotAttrs& o) {
  Attrs a;
  a.ints = {o.depth};
  return a;
}

/// cross_entropy(logits, labels, reduction, weights); the weights are a third operand.
struct CrossEntropyAttrs {
  Reduction reduction = Reduction::mean;  ///< How the row losses are combined.
};
inline CrossEntropyAttrs cross_entropy_attrs(const Attrs& a) {
  return {static_cast<Reduction>(a.ints[0])};
}
inline Attrs to_attrs(const CrossEntropyAttrs& c) {
  Attrs a;
  a.ints = {static_cast<Dim>(c.reduction)};
  return a;
}

}  // namespace xgrad::detail
