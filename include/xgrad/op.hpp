/// @file op.hpp
/// @brief The op interface: attributes, tensor views, what the executor may assume about
/// an op (OpTraits), and Op itself. Built-in ops and user ops implement the same interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "xgrad/node_inputs.hpp"
#include "xgrad/shape.hpp"

namespace xgrad {

/// Op-specific attributes. One generic record keeps nodes uniform (hashable for
/// common-subexpression merging) instead of a class hierarchy per op; built-in ops read it
/// through named accessors (matmul_attrs() and the like), user ops as they document.
struct Attrs {
  std::vector<Dim> ints;  ///< Integer attributes (axes, permutation, target shape...).
  double real = 0;        ///< First scalar attribute.
  double real2 = 0;       ///< Second scalar attribute.
  bool flag = false;      ///< First switch.
  bool flag2 = false;     ///< Second switch.
  /// Attributes are equal when every field is.
  bool operator==(const Attrs&) const = default;
};

/// A read-only view of a dense row-major tensor during execution.
template <class T>
struct ConstTensor {
  const T* data = nullptr;     ///< First element.
  std::span<const Dim> shape;  ///< Concrete extents (never open).
  std::size_t size = 0;        ///< Number of elements.
};

/// A writable view of a dense row-major tensor during execution.
template <class T>
struct Tensor {
  T* data = nullptr;           ///< First element.
  std::span<const Dim> shape;  ///< Concrete extents (never open).
  std::size_t size = 0;        ///< Number of elements.
};

/// What an op computes on a block of rows, which decides whether it may join a row-tiled
/// group (CompileOptions::tile_rows): the executor then calls forward() on blocks of rows
/// of a large input instead of on whole arrays, so a chain reads each block from memory
/// once.
enum class RowRole : std::uint8_t {
  /// Whole arrays only (the safe default).
  none,
  /// Elementwise with NumPy broadcasting: forward() on a block of rows of the output,
  /// given the same rows of operands of the output's shape and whole operands that
  /// broadcast along the rows, computes exactly those rows.
  elementwise,
  /// The built-in matrix product: op(a) @ op(b) with the transposes of matmul_attrs().
  matmul,
  /// The sum of all elements of operand 0 (a 0-d result).
  sum,
  /// The mean of all elements of operand 0 (a 0-d result).
  mean,
  /// Operand 0 summed down to the output's shape (the adjoint of broadcasting).
  sum_to,
};

/// The attributes of a node of the built-in matrix product, by name.
struct MatmulAttrs {
  bool transpose_a = false;  ///< The left operand (2-d) enters transposed.
  bool transpose_b = false;  ///< The right operand (2-d) enters transposed.
};
/// A matmul node's attributes read by name.
inline MatmulAttrs matmul_attrs(const Attrs& a) { return {a.flag, a.flag2}; }
/// The attribute record of a matmul node.
inline Attrs to_attrs(const MatmulAttrs& m) {
  Attrs a;
  a.flag = m.transpose_a;
  a.flag2 = m.transpose_b;
  return a;
}

/// Direct loops of an elementwise op, which an executor calls on blocks of a few rows,
/// where forward()'s broadcast dispatch would cost as much as the work. Null: no such form.
template <class T>
struct MapKernels {
  /// y = f(x) over n elements (y may be x).
  void (*unary)(const T* x, T* y, std::size_t n, const Attrs& a) = nullptr;
  /// y = f(a, b) over n elements each.
  void (*binary)(const T* a, const T* b, T* y, std::size_t n) = nullptr;
  /// y = f(a, b) for a scalar a.
  void (*scalar_a)(T a, const T* b, T* y, std::size_t n) = nullptr;
  /// y = f(a, b) for a scalar b.
  void (*scalar_b)(const T* a, T b, T* y, std::size_t n) = nullptr;
};

/// What the executor may assume about an op beyond calling forward(). Every field's
/// default is safe; an op opts into more by overriding Op::traits().
template <class T>
struct OpTraits {
  /// forward() copies operand 0 unchanged whenever its run-time size equals the output's
  /// (reshape, squeeze): the output may share the operand's buffer instead of running.
  bool copy_when_same_size = false;
  /// forward() reads operand shapes only, never their values (size, zeros_like).
  bool shape_only = false;
  /// An operand forward() reads for its shape only, or -1 (broadcast_to's second operand,
  /// the node whose shape it takes): it needs no buffer and no finished value.
  int shape_operand = -1;
  /// How the op may run on blocks of rows.
  RowRole rows = RowRole::none;
  /// Direct loops for RowRole::elementwise ops (optional).
  MapKernels<T> map{};
};

template <class T>
class Graph;
template <class T>
class Expr;
template <class T>
struct Node;

/// An operation: its shape rule, forward kernel, gradient rule, printed form and executor
/// traits in one object, so that adding an op touches one place.
template <class T>
class Op {
 public:
  virtual ~Op() = default;
  /// Short name used in formulas, Graphviz labels and error messages.
  virtual std::string_view name() const = 0;
  /// Output shape from input shapes (which may hold open dimensions); throws
  /// std::invalid_argument with the reason when the operands do not fit.
  virtual Shape infer_shape(std::span<const Shape> in, const Attrs& a) const = 0;
  /// Computes the output from inputs; must not allocate (the plan sized everything).
  virtual void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const = 0;
  /// Appends gradient nodes: for each input i with wanted[i], grads[i] receives the
  /// vector-Jacobian product of g, or stays invalid when the input has no gradient
  /// (labels, shapes). Operands with !wanted[i] lead to none of the variables asked for:
  /// a rule may skip them (whatever it puts there is ignored).
  virtual void backward(const Node<T>& node, Expr<T> out, Expr<T> g, std::span<const bool> wanted,
                        std::span<Expr<T>> grads) const = 0;
  /// Printed form given the printed operands; the default is name(a, b, ...).
  virtual std::string format(std::span<const std::string> args, const Attrs& a) const;
  /// What a drawing (to_dot) shows for a node of this op: the default is name(); an op
  /// whose attributes change what it computes may add them, as leaky_relu(0.2) does.
  virtual std::string label(const Attrs& a) const;
  /// Binding strength for infix printing (higher binds tighter); calls bind tightest.
  virtual int precedence() const { return 100; }
  /// True when a right operand of equal precedence needs no parentheses (+ and *).
  virtual bool associative() const { return false; }
  /// Index of an input whose run-time shape always equals the output's, or -1. Lets
  /// gradient rules skip broadcasting and reductions that would be identities.
  virtual int shape_source(const Node<T>& node, const Graph<T>& g) const;
  /// Algebraic identities (x*1, x+0...) that replace a new node by an existing one;
  /// returns an invalid Expr when none applies.
  virtual Expr<T> simplify(Graph<T>& g, std::span<const NodeId> in, const Attrs& a) const;
  /// What the executor may assume (aliasing, row tiling, direct loops); the default
  /// assumes nothing. The executor reads it once per compiled step, so return a member.
  virtual const OpTraits<T>& traits() const;
};

extern template class Op<float>;
extern template class Op<double>;

}  // namespace xgrad
