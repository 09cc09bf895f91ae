// Graph construction: shape inference, identities, constant folding and merging of
// identical nodes all happen here, once, when a node is created.
#include "xgrad/graph.hpp"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <sstream>

#include "huge_pages.hpp"
#include "xgrad/ops.hpp"

namespace xgrad {

void detail::throw_invalid_expr() {
  throw GraphError(
      "use of an invalid (empty) Expr handle (default-constructed, or a gradient that does "
      "not exist)");
}

std::string shape_str(std::span<const Dim> shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += shape[i] == open ? std::string("?") : std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::size_t shape_size(std::span<const Dim> shape) {
  std::size_t n = 1;
  for (Dim d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

bool shape_overflows(std::span<const Dim> shape) {
  Dim n = 1;
  for (Dim d : shape) {
    if (d <= 0) continue;  // open or empty
    if (__builtin_mul_overflow(n, d, &n)) return true;
  }
  return false;
}

std::string bytes_str(std::size_t elements, std::size_t element_size) {
  std::size_t bytes = 0;
  std::string b = __builtin_mul_overflow(elements, element_size, &bytes)
                      ? std::string("more than 2^64")
                      : std::to_string(bytes);
  return b + " bytes (" + std::to_string(elements) + " elements of " +
         std::to_string(element_size) + " bytes)";
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::float32:
      return "float32";
    case DType::float64:
      return "float64";
    case DType::int32:
      return "int32";
    case DType::int64:
      return "int64";
  }
  return "unknown";
}

template <class T>
std::string Op<T>::format(std::span<const std::string> args, const Attrs&) const {
  std::string s(name());
  s += "(";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) s += ", ";
    s += args[i];
  }
  return s + ")";
}

template <class T>
std::string Op<T>::label(const Attrs&) const {
  return std::string(name());
}

template <class T>
Expr<T> Op<T>::simplify(Graph<T>&, std::span<const NodeId>, const Attrs&) const {
  return {};
}

template <class T>
int Op<T>::shape_source(const Node<T>&, const Graph<T>&) const {
  return -1;
}

template <class T>
const OpTraits<T>& Op<T>::traits() const {
  static const OpTraits<T> none;
  return none;
}

namespace {

constexpr NodeId kNone = ~NodeId{0};

const char* kind_name(NodeKind k) {
  switch (k) {
    case NodeKind::input:
      return "input";
    case NodeKind::parameter:
      return "parameter";
    case NodeKind::constant:
      return "constant";
    case NodeKind::op:
      return "op";
  }
  return "?";
}

template <class T>
Shape shape_of(const xt::xarray<T>& v) {
  return Shape(v.shape().begin(), v.shape().end());
}

// True when no node may have shape s: a rank above max_rank, or extents whose element count
// overflows. Checked inline for every new node; shape_problem() says why, once it fails.
bool bad_shape(const Shape& s) { return s.size() > max_rank || shape_overflows(s); }

// Why no node may have shape s ("" when it may).
std::string shape_problem(const Shape& s) {
  if (s.size() > max_rank) {
    return "rank " + std::to_string(s.size()) + " of shape " + shape_str(s) +
           " exceeds the supported maximum " + std::to_string(max_rank);
  }
  if (shape_overflows(s)) {
    return "the element count of shape " + shape_str(s) + " overflows a 64-bit index";
  }
  return {};
}

// who: how the message names the node, "input 'x'".
void check_shape(const Shape& s, const std::string& who) {
  if (bad_shape(s)) throw ShapeError(who + ": " + shape_problem(s));
}

// Bytes of node chunk k, whose first chunk holds `first` nodes: what huge_alloc is asked
// for and huge_free is told.
template <class T>
std::size_t chunk_bytes(std::size_t first, std::size_t k) {
  return sizeof(Node<T>) * (first << k);
}

}  // namespace

template <class T>
Graph<T>::Graph() = default;

template <class T>
Graph<T>::~Graph() {
  for (std::size_t i = 0; i < size_; ++i) at(static_cast<NodeId>(i)).~Node<T>();
  for (std::size_t k = 0; k < chunks_.size(); ++k)
    detail::huge_free(chunks_[k], chunk_bytes<T>(kFirstChunk, k));
}

template <class T>
NodeId Graph<T>::reserve_node() {
  const NodeId id = static_cast<NodeId>(size_);
  // A new chunk and the size check out of line, so that this path, which every node a
  // builder makes takes, saves no registers.
  const std::size_t k = chunk_of(id);
  if (size_ >= std::numeric_limits<NodeId>::max() - 1 || k == chunks_.size()) [[unlikely]] {
    return reserve_node_slow();
  }
  node_at_.push_back(chunks_[k] + (id - chunk_start(k)));
  uses_of_.push_back(Uses{});
  in_begin_.push_back(static_cast<std::uint32_t>(in_ids_.size()));
  return id;
}

template <class T>
NodeId Graph<T>::reserve_node_slow() {
  if (size_ >= std::numeric_limits<NodeId>::max() - 1) {
    throw GraphError("graph is full (" + std::to_string(size_) + " nodes)");
  }
  const std::size_t k = chunk_of(static_cast<NodeId>(size_));
  // On huge pages from 2 MiB up (huge_alloc), and reused from the graph before.
  chunks_.reserve(k + 1);
  chunks_.push_back(
      static_cast<Node<T>*>(detail::huge_alloc(chunk_bytes<T>(kFirstChunk, k), alignof(Node<T>))));
  return reserve_node();  // which now finds the chunk
}

template <class T>
Node<T>& Graph<T>::new_node() {
  Node<T>* n = new (&at(reserve_node())) Node<T>();
  ++size_;
  return *n;
}

template <class T>
void Graph<T>::out_of_range(NodeId id) const {
  throw GraphError("node id " + std::to_string(id) + " is out of range (graph has " +
                   std::to_string(size_) + " nodes)");
}
template <class T>
Expr<T> Graph<T>::expr(NodeId id) {
  node(id);
  return Expr<T>(this, id);
}

template <class T>
void Graph<T>::set_name(NodeId id, std::string name) {
  node(id);
  at(id).name = std::move(name);
}

template <class T>
std::string Graph<T>::describe(NodeId id) const {
  const Node<T>& n = node(id);
  std::string s = n.name.empty() ? "#" + std::to_string(id) : "'" + n.name + "'";
  s += " (";
  s += n.kind == NodeKind::op ? std::string(n.op->name()) : std::string(kind_name(n.kind));
  return s + ", shape " + shape_str(n.shape) + ")";
}

template <class T>
bool Graph<T>::same_runtime_shape(NodeId a, NodeId b) const {
  const Shape& sa = node(a).shape;
  const Shape& sb = node(b).shape;
  // One loop, not operator!= (a memcmp call) and then a search: every gradient rule of a
  // broadcasting op asks this, mostly about equal shapes without open dimensions.
  if (sa.size() != sb.size()) return false;
  bool any_open = false;
  for (std::size_t i = 0; i < sa.size(); ++i) {
    if (sa[i] != sb[i]) return false;
    any_open = any_open || sa[i] == open;
  }
  if (!any_open) return true;
  auto root = [this](NodeId id) {
    for (;;) {
      const Node<T>& n = at(id);
      if (n.kind != NodeKind::op) return id;
      int k = n.op->shape_source(n, *this);
      if (k < 0) return id;
      id = n.inputs[static_cast<std::size_t>(k)];
    }
  };
  return root(a) == root(b);
}

template <class T>
xt::xarray<T>& Graph<T>::value(Expr<T> e) {
  if (&e.graph() != this) throw GraphError("value(): the handle belongs to another graph");
  node(e.id());
  Node<T>& n = at(e.id());
  if (n.kind != NodeKind::parameter && n.kind != NodeKind::constant) {
    throw GraphError("value(): " + describe(e.id()) + " is not a parameter or constant");
  }
  return n.value.get();
}

template <class T>
Expr<T> Graph<T>::input(std::string name, Shape shape, DType dtype) {
  for (Dim d : shape) {
    if (d < 0 && d != open) {
      throw ShapeError("input '" + name + "': dimension " + std::to_string(d) +
                       " is negative (use xgrad::open for a batch dimension)");
    }
  }
  bool is_int = dtype == DType::int32 || dtype == DType::int64;
  if (!is_int && dtype != dtype_of<T>()) {
    throw ValueError("input '" + name + "': a " + dtype_name(dtype_of<T>()) +
                     " graph takes inputs of its own type or integer labels, not " +
                     dtype_name(dtype));
  }
  check_shape(shape, "input '" + name + "'");
  Node<T>& n = new_node();
  n.kind = NodeKind::input;
  n.shape = std::move(shape);
  n.name = std::move(name);
  n.dtype = dtype;
  return Expr<T>(this, static_cast<NodeId>(size_ - 1));
}

template <class T>
Expr<T> Graph<T>::parameter(std::string name, xt::xarray<T> value) {
  Shape s = shape_of(value);
  check_shape(s, "parameter '" + name + "'");
  Node<T>& n = new_node();
  n.kind = NodeKind::parameter;
  n.shape = std::move(s);
  n.name = std::move(name);
  n.value = std::move(value);
  return Expr<T>(this, static_cast<NodeId>(size_ - 1));
}

template <class T>
Expr<T> Graph<T>::constant(xt::xarray<T> value, std::string name) {
  if (value.dimension() == 0 && name.empty()) return scalar(value());
  Shape s = shape_of(value);
  check_shape(s, name.empty() ? std::string("constant") : "constant '" + name + "'");
  Node<T>& n = new_node();
  n.kind = NodeKind::constant;
  n.shape = std::move(s);
  n.name = std::move(name);
  n.value = std::move(value);
  return Expr<T>(this, static_cast<NodeId>(size_ - 1));
}

template <class T>
Expr<T> Graph<T>::scalar(T v) {
  // Scalars are interned by bit pattern, so every "2" in a formula is one node and
  // identical expressions over it merge. A scalar renamed since is not reused.
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  // The scalars used last (a chain's 0.9 and 0.1) are found without hashing.
  RecentScalar& recent = recent_scalars_[(bits * 0x9E3779B97F4A7C15ull) >> (64 - kRecentBits)];
  if (recent.id != kNone && recent.bits == bits && at(recent.id).name.empty()) {
    return Expr<T>(this, recent.id);
  }
  auto [it, fresh] = scalars_.try_emplace(bits, kNone);
  if (fresh || !at(it->second).name.empty()) {
    Node<T>& n = new_node();
    n.kind = NodeKind::constant;
    n.value = xt::xarray<T>(v);
    it->second = static_cast<NodeId>(size_ - 1);
  }
  recent.bits = bits;
  recent.id = it->second;
  return Expr<T>(this, it->second);
}

template <class T>
Expr<T> Graph<T>::apply(const Op<T>& op, std::vector<NodeId> inputs, Attrs attrs) {
  return apply(op, std::span<const NodeId>(inputs), std::move(attrs));
}

template <class T>
Expr<T> Graph<T>::apply(const Op<T>& op, std::initializer_list<NodeId> inputs, Attrs attrs) {
  return apply(op, std::span<const NodeId>(inputs.begin(), inputs.size()), std::move(attrs));
}

template <class T>
Expr<T> Graph<T>::apply(const Op<T>& op, std::span<const NodeId> inputs, Attrs attrs) {
  // Operand shapes go to a reused scratch list, so building a million-node graph does not
  // allocate a list per node. It is only read before simplify(), which may re-enter apply().
  // It never shrinks: a unary op after a binary one would free the second shape's buffer.
  if (scratch_shapes_.size() < inputs.size()) scratch_shapes_.resize(inputs.size());
  const std::span<Shape> shapes(scratch_shapes_.data(), inputs.size());
  bool all_constant = !inputs.empty();
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Node<T>& n = node(inputs[k]);
    if (n.shape.empty()) {
      shapes[k].clear();  // 0-d operands (losses, scalars) skip the out-of-line assign
    } else {
      shapes[k].assign(n.shape.begin(), n.shape.end());
    }
    all_constant = all_constant && n.kind == NodeKind::constant;
  }
  auto operands = [&] {
    std::string s = "; operands:";
    for (std::size_t k = 0; k < inputs.size(); ++k) s += (k ? ", " : " ") + describe(inputs[k]);
    return s;
  };
  Shape out = [&] {
    try {
      return op.infer_shape(shapes, attrs);
    } catch (const std::invalid_argument& e) {
      throw ShapeError(std::string(op.name()) + ": " + e.what() + operands());
    }
  }();
  // Every shape rule's result passes here: an overflowing element count never reaches a
  // kernel or a stride computation.
  if (bad_shape(out)) [[unlikely]] {
    throw ShapeError(std::string(op.name()) + ": " + shape_problem(out) + operands());
  }
  if (Expr<T> s = op.simplify(*this, inputs, attrs)) return s;

  if (all_constant) {
    std::vector<ConstTensor<T>> in;
    for (NodeId i : inputs) {
      const Node<T>& n = at(i);
      in.push_back({n.value.data(), n.shape, n.value.size()});
    }
    std::vector<std::size_t> ushape(out.begin(), out.end());
    xt::xarray<T> value;
    try {
      value = xt::xarray<T>::from_shape(ushape);
    } catch (const std::exception&) {  // bad_alloc, or length_error beyond max_size()
      throw AllocationError(std::string(op.name()) + ": folding constants into shape " +
                            shape_str(out) + " needs " + bytes_str(shape_size(out), sizeof(T)) +
                            ", which could not be allocated" + operands());
    }
    op.forward(in, Tensor<T>{value.data(), out, value.size()}, attrs);
    return constant(std::move(value));
  }

  // An identical node consumes every operand: scan the consumers of the least used one.
  auto same = [&](NodeId c) {
    const Node<T>& n = at(c);
    return n.op == &op &&
           std::equal(n.inputs.begin(), n.inputs.end(), inputs.begin(), inputs.end()) &&
           n.attrs == attrs;
  };
  if (inputs.empty()) {
    for (NodeId c : leaf_ops_) {
      if (same(c)) return Expr<T>(this, c);
    }
  } else {
    NodeId least = inputs[0];
    for (NodeId i : inputs) {
      if (uses_of_[i].count < uses_of_[least].count) least = i;
    }
    for (std::uint32_t r = uses_of_[least].first; r != kNone; r = uses_[r].next) {
      if (same(uses_[r].user)) return Expr<T>(this, uses_[r].user);
    }
  }
  NodeInputs ins(inputs);  // may allocate: before the node is reserved, whose moves cannot throw
  const NodeId id = reserve_node();
  new (&at(id)) Node<T>{NodeKind::op,     dtype_of<T>(),  &op, std::move(ins),
                        std::move(attrs), std::move(out), {},  {}};
  ++size_;
  if (inputs.empty()) leaf_ops_.push_back(id);
  if (in_ids_.size() + inputs.size() >= kNone) {
    throw GraphError("graph is full (too many operand references)");
  }
  for (NodeId i : inputs) in_ids_.push_back(i);
  for (NodeId i : inputs) {
    if (uses_.size() >= kNone) throw GraphError("graph is full (too many operand references)");
    uses_.push_back({id, uses_of_[i].first});
    uses_of_[i].first = static_cast<std::uint32_t>(uses_.size() - 1);
    ++uses_of_[i].count;
  }
  return Expr<T>(this, id);
}

template class Op<float>;
template class Op<double>;
template class Graph<float>;
template class Graph<double>;

}  // namespace xgrad
