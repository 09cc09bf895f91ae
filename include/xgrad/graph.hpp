/// @file graph.hpp
/// @brief Graph, Node, Op and the Expr handle: the data model every other piece works on.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/error.hpp"

namespace xgrad {

/// One extent of a shape; xgrad::open marks a dimension left open until values are bound.
using Dim = std::ptrdiff_t;
/// A static shape; dimensions may be xgrad::open (typically the leading batch dimension).
using Shape = std::vector<Dim>;
/// A dimension whose extent is only known when a value is bound (the batch size).
inline constexpr Dim open = -1;
/// The largest rank the kernels handle; their index arithmetic lives on the stack.
inline constexpr std::size_t max_rank = 8;
/// Index of a node inside its graph.
using NodeId = std::uint32_t;

/// Formats a shape as "(2, 3)", with "?" for open dimensions.
std::string shape_str(std::span<const Dim> shape);
/// Number of elements of a fully known shape.
std::size_t shape_size(std::span<const Dim> shape);

/// Element types a bound value may have; integers are accepted only by integer inputs.
enum class DType : std::uint8_t { float32, float64, int32, int64 };
/// Human-readable dtype name, for error messages.
const char* dtype_name(DType d);
/// The DType tag of a C++ element type (float, double, int32_t, int64_t).
template <class U>
constexpr DType dtype_of();
/// @cond INTERNAL
template <>
constexpr DType dtype_of<float>() {
  return DType::float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::float64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::int32;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::int64;
}
/// @endcond

/// What a node is: a bound placeholder, a trainable value, a fixed value, or an op result.
enum class NodeKind : std::uint8_t { input, parameter, constant, op };

/// Op-specific attributes. One generic record keeps nodes uniform (hashable for
/// common-subexpression merging) instead of a class hierarchy per op.
struct Attrs {
  std::vector<Dim> ints;  ///< Axes, permutation, target shape or slice bounds, per op.
  double real = 0;        ///< First scalar attribute (exponent, lower bound...).
  double real2 = 0;       ///< Second scalar attribute (upper bound...).
  bool flag = false;      ///< First switch (keepdims, transpose of the left operand...).
  bool flag2 = false;     ///< Second switch (transpose of the right operand...).
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

template <class T>
class Graph;
template <class T>
class Expr;
/// @cond INTERNAL
namespace detail {
struct GraphAccess;  // src/: the graph's compact operand lists
}  // namespace detail
/// @endcond
template <class T>
struct Node;

/// An operation: its shape rule, forward kernel, gradient rule and printed form in one
/// object, so that adding an op touches one place. Built-in ops and user ops implement
/// this same interface.
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
  /// Appends gradient nodes: for each input i, grads[i] receives the vector-Jacobian
  /// product of g, or stays invalid when the input gets no gradient (labels, shapes).
  virtual void backward(const Node<T>& node, Expr<T> out, Expr<T> g,
                        std::span<Expr<T>> grads) const = 0;
  /// Printed form given the printed operands; the default is name(a, b, ...).
  virtual std::string format(std::span<const std::string> args, const Attrs& a) const;
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
};

/// The operand ids of a node: a read-only sequence of NodeId (range-for, size(),
/// operator[], comparison, conversion to std::vector and std::span). Up to three ids live
/// inline, so building a node with three or fewer operands allocates nothing for them.
class NodeInputs {
 public:
  using value_type = NodeId;             ///< Element type.
  using size_type = std::size_t;         ///< Size type.
  using const_iterator = const NodeId*;  ///< Iterator (read-only).
  using iterator = const NodeId*;        ///< Iterator (read-only).

  /// No operands.
  NodeInputs() = default;
  /// Copies the given ids.
  NodeInputs(std::span<const NodeId> ids) { assign(ids); }  // NOLINT(google-explicit-constructor)
  /// Copies the given ids.
  NodeInputs(std::initializer_list<NodeId> ids)  // NOLINT(google-explicit-constructor)
      : NodeInputs(std::span<const NodeId>(ids.begin(), ids.size())) {}
  /// Copies the given ids.
  NodeInputs(const std::vector<NodeId>& ids)  // NOLINT(google-explicit-constructor)
      : NodeInputs(std::span<const NodeId>(ids)) {}
  /// Copies.
  NodeInputs(const NodeInputs& o) { assign(o); }
  /// Moves (steals a heap list).
  NodeInputs(NodeInputs&& o) noexcept { steal(o); }
  /// Copies.
  NodeInputs& operator=(const NodeInputs& o) {
    if (this != &o) {
      release();
      assign(o);
    }
    return *this;
  }
  /// Moves.
  NodeInputs& operator=(NodeInputs&& o) noexcept {
    if (this != &o) {
      release();
      steal(o);
    }
    return *this;
  }
  ~NodeInputs() { release(); }

  /// First id.
  const NodeId* data() const { return size_ <= kInline ? inline_ : heap_; }
  /// First id.
  const NodeId* begin() const { return data(); }
  /// One past the last id.
  const NodeId* end() const { return data() + size_; }
  /// Number of operands.
  std::size_t size() const { return size_; }
  /// True without operands.
  bool empty() const { return size_ == 0; }
  /// Operand i (unchecked).
  NodeId operator[](std::size_t i) const { return data()[i]; }
  /// The ids as a span.
  operator std::span<const NodeId>() const { return {data(), size_}; }  // NOLINT
  /// The ids as a vector.
  operator std::vector<NodeId>() const { return {begin(), end()}; }  // NOLINT
  /// Same ids in the same order.
  friend bool operator==(const NodeInputs& a, const NodeInputs& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  /// Same ids in the same order.
  friend bool operator==(const NodeInputs& a, const std::vector<NodeId>& b) {
    return a.size_ == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }

 private:
  static constexpr std::uint32_t kInline = 3;
  void assign(std::span<const NodeId> ids) {
    size_ = static_cast<std::uint32_t>(ids.size());
    NodeId* d = inline_;
    if (size_ > kInline) d = heap_ = new NodeId[size_];
    std::copy(ids.begin(), ids.end(), d);
  }
  void steal(NodeInputs& o) {
    size_ = o.size_;
    if (size_ > kInline) {
      heap_ = o.heap_;
    } else {
      std::copy(o.inline_, o.inline_ + size_, inline_);
    }
    o.size_ = 0;
  }
  void release() {
    if (size_ > kInline) delete[] heap_;
    size_ = 0;
  }
  union {
    NodeId inline_[kInline];
    NodeId* heap_;
  };
  std::uint32_t size_ = 0;
};

/// The value a parameter or constant node owns: an xt::xarray<T> kept out of line, so
/// that op and input nodes, which own none, stay small. Reads like the array itself
/// (data(), size(), shape(), element access, conversion to xt::xarray<T>&); empty (no
/// elements, shape (0,)) for nodes without a value.
template <class T>
class NodeValue {
 public:
  /// No value.
  NodeValue() = default;
  /// Owns v.
  NodeValue(xt::xarray<T> v)  // NOLINT(google-explicit-constructor)
      : v_(std::make_unique<xt::xarray<T>>(std::move(v))) {}
  /// Deep copy.
  NodeValue(const NodeValue& o) : v_(o.v_ ? std::make_unique<xt::xarray<T>>(*o.v_) : nullptr) {}
  /// Moves.
  NodeValue(NodeValue&&) noexcept = default;
  /// Deep copy.
  NodeValue& operator=(const NodeValue& o) {
    if (this != &o) v_ = o.v_ ? std::make_unique<xt::xarray<T>>(*o.v_) : nullptr;
    return *this;
  }
  /// Moves.
  NodeValue& operator=(NodeValue&&) noexcept = default;
  /// Replaces the value.
  NodeValue& operator=(xt::xarray<T> v) {
    if (v_) {
      *v_ = std::move(v);
    } else {
      v_ = std::make_unique<xt::xarray<T>>(std::move(v));
    }
    return *this;
  }

  /// True when the node owns a value.
  bool has_value() const { return v_ != nullptr; }
  /// The array (an empty one for nodes without a value).
  const xt::xarray<T>& get() const { return v_ ? *v_ : empty(); }
  /// The array, created empty on first use.
  xt::xarray<T>& get() {
    if (!v_) v_ = std::make_unique<xt::xarray<T>>(xt::xarray<T>::from_shape({0}));
    return *v_;
  }
  /// The array.
  operator const xt::xarray<T>&() const { return get(); }  // NOLINT(google-explicit-constructor)
  /// The array.
  operator xt::xarray<T>&() { return get(); }  // NOLINT(google-explicit-constructor)
  /// First element (nullptr without a value).
  const T* data() const { return v_ ? v_->data() : nullptr; }
  /// First element.
  T* data() { return v_ ? v_->data() : nullptr; }
  /// Number of elements (0 without a value).
  std::size_t size() const { return v_ ? v_->size() : 0; }
  /// Extents.
  const auto& shape() const { return get().shape(); }
  /// Extent of axis i.
  std::size_t shape(std::size_t i) const { return get().shape(i); }
  /// Rank.
  std::size_t dimension() const { return get().dimension(); }
  /// First element, for range-for over the values.
  auto begin() const { return get().begin(); }
  /// Past the last element.
  auto end() const { return get().end(); }
  /// Element access, as on the array.
  template <class... I>
  const T& operator()(I... i) const {
    return get()(i...);
  }
  /// Element access, as on the array.
  template <class... I>
  T& operator()(I... i) {
    return get()(i...);
  }

 private:
  static const xt::xarray<T>& empty() {
    static const xt::xarray<T> e = xt::xarray<T>::from_shape({0});
    return e;
  }
  std::unique_ptr<xt::xarray<T>> v_;
};

/// A node of the graph. Inputs always have smaller ids than the node, so the graph is a
/// DAG by construction.
template <class T>
struct Node {
  NodeKind kind = NodeKind::op;  ///< What the node is.
  DType dtype = dtype_of<T>();   ///< Accepted element type, for inputs.
  const Op<T>* op = nullptr;     ///< The operation, for op nodes.
  NodeInputs inputs;             ///< Operands, for op nodes.
  Attrs attrs;                   ///< Op attributes.
  Shape shape;                   ///< Static shape; may hold open dimensions.
  std::string name;              ///< User-given name, or empty.
  /// Owned value, for parameters and constants (empty, and allocation-free, for the rest).
  NodeValue<T> value;
};

/// A cheap handle to a node: a graph pointer and an id. Arithmetic on handles builds new
/// nodes in the same graph.
template <class T>
class Expr {
 public:
  /// An invalid handle (used for "no gradient").
  Expr() = default;
  /// A handle to node id of graph g.
  Expr(Graph<T>* g, NodeId id) : graph_(g), id_(id) {}
  /// True when the handle refers to a node.
  bool valid() const { return graph_ != nullptr; }
  /// True when the handle refers to a node.
  explicit operator bool() const { return valid(); }
  /// The node id inside its graph.
  NodeId id() const { return id_; }
  /// The owning graph.
  Graph<T>& graph() const;
  /// The node this handle refers to.
  const Node<T>& node() const;
  /// Static shape of the node (open dimensions as xgrad::open).
  const Shape& shape() const { return node().shape; }
  /// Rank of the node.
  std::size_t rank() const { return shape().size(); }
  /// User-given name (empty when none).
  const std::string& name() const { return node().name; }
  /// Gives the node a name used in formulas, Graphviz and error messages.
  Expr& named(std::string name);
  /// Same node of the same graph.
  bool operator==(const Expr& o) const { return graph_ == o.graph_ && id_ == o.id_; }

 private:
  Graph<T>* graph_ = nullptr;
  NodeId id_ = 0;
};

/// Owns the nodes of one computation graph with element type T (float or double).
/// Handles point into the graph, so it is neither copyable nor movable.
template <class T>
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// A placeholder bound per run. Dimensions may be xgrad::open (the batch); dtype is the
  /// element type accepted at binding: T itself, or int32/int64 for labels and indices
  /// (converted to T per run). Another float type raises ValueError.
  Expr<T> input(std::string name, Shape shape, DType dtype = dtype_of<T>());
  /// A trainable value owned by the graph (optimizers update it in place).
  Expr<T> parameter(std::string name, xt::xarray<T> value);
  /// A fixed value; participates in constant folding.
  Expr<T> constant(xt::xarray<T> value, std::string name = {});
  /// A 0-d constant (merged with equal scalars).
  Expr<T> scalar(T value);
  /// Creates (or reuses an identical) op node after shape inference, identities and
  /// constant folding. Builders of ops call this; user-defined ops may too.
  Expr<T> apply(const Op<T>& op, std::vector<NodeId> inputs, Attrs attrs = {});
  /// apply() with a braced list of operands, without building a vector.
  Expr<T> apply(const Op<T>& op, std::initializer_list<NodeId> inputs, Attrs attrs = {});
  /// apply() with operands in a span.
  Expr<T> apply(const Op<T>& op, std::span<const NodeId> inputs, Attrs attrs = {});

  /// Number of nodes.
  std::size_t size() const { return size_; }
  /// Node by id (bounds-checked).
  const Node<T>& node(NodeId id) const {
    if (id >= size_) out_of_range(id);
    return at(id);
  }
  /// Handle for a node id (bounds-checked).
  Expr<T> expr(NodeId id);
  /// Mutable value of a parameter or constant; shape changes are checked at the next run.
  xt::xarray<T>& value(Expr<T> e);
  /// Renames a node.
  void set_name(NodeId id, std::string name);
  /// "'name' (kind op, shape (2, 3))": how error messages refer to a node.
  std::string describe(NodeId id) const;
  /// True when the node is a 0-d constant equal to v.
  bool is_scalar_constant(NodeId id, T v) const;
  /// True when a and b have the same shape at every run: equal fully known static
  /// shapes, or the same shape source (see Op::shape_source).
  bool same_runtime_shape(NodeId a, NodeId b) const;
  /// True for constant nodes.
  bool is_constant(NodeId id) const { return node(id).kind == NodeKind::constant; }

 private:
  // Nodes live in chunks that never move, so references stay valid while the graph grows
  // and no node is ever copied or moved. Chunk k holds kFirstChunk << k nodes: small
  // graphs stay small, large ones need few, large chunks.
  static constexpr unsigned kFirstBits = 8;
  static constexpr std::size_t kFirstChunk = std::size_t{1} << kFirstBits;
  static std::size_t chunk_of(NodeId id) {
    return static_cast<std::size_t>(std::bit_width((std::size_t{id} >> kFirstBits) + 1)) - 1;
  }
  static std::size_t chunk_start(std::size_t k) { return (kFirstChunk << k) - kFirstChunk; }
  Node<T>& at(NodeId id) {
    std::size_t k = chunk_of(id);
    return chunks_[k][id - chunk_start(k)];
  }
  const Node<T>& at(NodeId id) const {
    std::size_t k = chunk_of(id);
    return chunks_[k][id - chunk_start(k)];
  }
  Node<T>& new_node();  // default-constructed, appended; its id is size() - 1
  [[noreturn]] void out_of_range(NodeId id) const;
  // Common-subexpression elimination by use lists: an identical node, if one exists,
  // consumes every operand of the new one, so apply() scans the consumers of the operand
  // that has the fewest. Lists of recent nodes are short and hot in cache, where a global
  // hash table would cost a cache miss per node on large graphs.
  struct Use {
    NodeId user;         // the consuming node
    std::uint32_t next;  // next use record of the same operand, or ~0
  };
  struct Uses {
    std::uint32_t first = ~std::uint32_t{0};  // newest use record, or ~0
    std::uint32_t count = 0;                  // number of use records
  };
  std::vector<Shape> scratch_shapes_;
  std::vector<Node<T>*> chunks_;
  std::size_t size_ = 0;
  friend struct detail::GraphAccess;
  // Operand ids of every node, node after node (a copy of Node::inputs packed for the
  // sweeps of topological ordering, which then never touch the nodes themselves).
  std::vector<std::uint32_t> in_begin_;  // per node: first operand in in_ids_
  std::vector<NodeId> in_ids_;
  std::vector<Uses> uses_of_;   // per node
  std::vector<Use> uses_;       // use records, appended per operand of each op node
  std::vector<NodeId> leaf_ops_;  // op nodes without operands
  std::unordered_map<std::uint64_t, NodeId> scalars_;  // bit pattern -> interned scalar
};

extern template class Graph<float>;
extern template class Graph<double>;
extern template class Op<float>;
extern template class Op<double>;

template <class T>
Graph<T>& Expr<T>::graph() const {
  if (!graph_) throw GraphError("use of an invalid (empty) Expr handle");
  return *graph_;
}
template <class T>
const Node<T>& Expr<T>::node() const {
  return graph().node(id_);
}
template <class T>
Expr<T>& Expr<T>::named(std::string name) {
  graph().set_name(id_, std::move(name));
  return *this;
}

}  // namespace xgrad
