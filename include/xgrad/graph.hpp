/// @file graph.hpp
/// @brief Graph, Node and the Expr handle: the data model every other piece works on.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/detail/huge_pages.hpp"
#include "xgrad/error.hpp"
#include "xgrad/node_inputs.hpp"
#include "xgrad/op.hpp"
#include "xgrad/shape.hpp"

namespace xgrad {

/// What a node is: a bound placeholder, a trainable value, a fixed value, or an op result.
enum class NodeKind : std::uint8_t { input, parameter, constant, op };

template <class T>
class Graph;
/// @cond INTERNAL
namespace detail {
struct GraphAccess;  // src/: the graph's compact operand lists
}  // namespace detail
/// @endcond

/// The value a parameter or constant node owns: an xt::xarray<T> kept out of line, so
/// that op and input nodes, which own none, stay small. Reads like the array itself
/// (data(), size(), shape(), element access, conversion to xt::xarray<T>&); empty (no
/// elements, shape (0,)) for nodes without a value.
template <class T>
class NodeValue {
 public:
  // Construction, deep copy and move
  /// @cond TRIVIAL
  NodeValue() = default;
  NodeValue(xt::xarray<T> v)  // NOLINT(google-explicit-constructor)
      : v_(std::make_unique<xt::xarray<T>>(std::move(v))) {}
  NodeValue(const NodeValue& o) : v_(o.v_ ? std::make_unique<xt::xarray<T>>(*o.v_) : nullptr) {}
  NodeValue(NodeValue&&) noexcept = default;
  NodeValue& operator=(const NodeValue& o) {
    if (this != &o) v_ = o.v_ ? std::make_unique<xt::xarray<T>>(*o.v_) : nullptr;
    return *this;
  }
  NodeValue& operator=(NodeValue&&) noexcept = default;
  /// @endcond
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
  // Read like the array (data() is nullptr and size() 0 without a value)
  /// @cond TRIVIAL
  operator const xt::xarray<T>&() const { return get(); }  // NOLINT(google-explicit-constructor)
  operator xt::xarray<T>&() { return get(); }              // NOLINT(google-explicit-constructor)
  const T* data() const { return v_ ? v_->data() : nullptr; }
  T* data() { return v_ ? v_->data() : nullptr; }
  std::size_t size() const { return v_ ? v_->size() : 0; }
  const auto& shape() const { return get().shape(); }
  std::size_t shape(std::size_t i) const { return get().shape(i); }
  std::size_t dimension() const { return get().dimension(); }
  auto begin() const { return get().begin(); }
  auto end() const { return get().end(); }
  template <class... I>
  const T& operator()(I... i) const {
    return get()(i...);
  }
  template <class... I>
  T& operator()(I... i) {
    return get()(i...);
  }
  /// @endcond

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
///
/// Lifetime: a handle borrows its graph and must not be used after the graph is destroyed
/// (that is undefined behaviour, as for a dangling pointer; checking every use would cost
/// every op builder a lookup). Objects that keep handles beyond a call, a compiled
/// Function and an optimizer, do check: they raise GraphError once the graph is gone.
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
  /// The owning graph; GraphError for an invalid handle.
  Graph<T>& graph() const;
  /// The owning graph; for an invalid handle, a GraphError that names who (an op or a
  /// function) was given it.
  Graph<T>& graph(std::string_view who) const;
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
/// Handles point into the graph, so it is neither copyable nor movable, and it must
/// outlive every Expr, Module and layer built on it (Functions and optimizers detect a
/// destroyed graph: see liveness()). Different graphs may be used from different threads
/// at once; one graph is not built from two threads at once (docs/design.md, "Threads").
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
    if (id >= size_) [[unlikely]]
      out_of_range(id);
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
  bool is_scalar_constant(NodeId id, T v) const {
    const Node<T>& n = node(id);
    return n.kind == NodeKind::constant && n.shape.empty() && n.value.data()[0] == v;
  }
  /// True when a and b have the same shape at every run: equal fully known static
  /// shapes, or the same shape source (see Op::shape_source).
  bool same_runtime_shape(NodeId a, NodeId b) const;
  /// True for constant nodes.
  bool is_constant(NodeId id) const { return node(id).kind == NodeKind::constant; }
  /// A token that expires when the graph is destroyed. Objects that outlive a call, such
  /// as a compiled Function or an optimizer, keep it and check it before they touch the
  /// graph again, so that using them after the graph is gone raises GraphError.
  std::weak_ptr<const void> liveness() const { return alive_; }

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
  // Through the table of node addresses: one load, where the chunk arithmetic took a dozen
  // instructions, and the builders look up several nodes for each node they make.
  Node<T>& at(NodeId id) { return *node_at_[id]; }
  const Node<T>& at(NodeId id) const { return *node_at_[id]; }
  Node<T>& new_node();  // default-constructed, appended; its id is size() - 1
  // Room and bookkeeping for node size(): the caller constructs it at at(id) and then
  // counts it (++size_), so an op node is built from its fields in place.
  NodeId reserve_node();
  [[gnu::noinline, gnu::cold]] NodeId reserve_node_slow();  // adds a chunk, or "graph is full"
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
  detail::AppendArray<Node<T>*> node_at_;        // per node: its address in its chunk
  detail::AppendArray<std::uint32_t> in_begin_;  // per node: first operand in in_ids_
  detail::AppendArray<NodeId> in_ids_;
  detail::AppendArray<Uses> uses_of_;  // per node
  detail::AppendArray<Use> uses_;      // use records, appended per operand of each op node
  std::vector<NodeId> leaf_ops_;       // op nodes without operands
  std::unordered_map<std::uint64_t, NodeId> scalars_;  // bit pattern -> interned scalar
  // A direct-mapped cache in front of scalars_, so the few scalars a loop uses are found
  // without hashing.
  struct RecentScalar {
    std::uint64_t bits = 0;
    NodeId id = ~NodeId{0};  // ~0: empty
  };
  static constexpr unsigned kRecentBits = 3;
  RecentScalar recent_scalars_[1u << kRecentBits];
  std::shared_ptr<const int> alive_ = std::make_shared<const int>(0);  // see liveness()
};

extern template class Graph<float>;
extern template class Graph<double>;

/// @cond INTERNAL
namespace detail {
/// The GraphError of Expr::graph() for an invalid handle, out of line so that the checked
/// accessors every op builder calls stay small enough to inline.
[[noreturn]] void throw_invalid_expr();
}  // namespace detail
/// @endcond

template <class T>
Graph<T>& Expr<T>::graph() const {
  if (!graph_) [[unlikely]]
    detail::throw_invalid_expr();
  return *graph_;
}
template <class T>
Graph<T>& Expr<T>::graph(std::string_view who) const {
  if (!graph_) {
    throw GraphError(std::string(who) +
                     ": given an invalid (empty) Expr handle (default-constructed, or a "
                     "gradient that does not exist)");
  }
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
