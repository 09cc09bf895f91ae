// Graph construction: shape inference, identities, constant folding and merging of
// identical nodes all happen here, once, when a node is created.
#include "xgrad/graph.hpp"

#include <bit>
#include <cstring>
#include <functional>
#include <sstream>

#include "xgrad/ops.hpp"

namespace xgrad {

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
Expr<T> Op<T>::simplify(Graph<T>&, std::span<const NodeId>, const Attrs&) const {
  return {};
}

template <class T>
int Op<T>::shape_source(const Node<T>&, const Graph<T>&) const {
  return -1;
}

namespace {

std::size_t hash_combine(std::size_t h, std::size_t v) {
  return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

template <class T>
std::size_t node_hash(const void* op, const std::vector<NodeId>& inputs, const Attrs& a) {
  std::size_t h = std::hash<const void*>{}(op);
  for (NodeId i : inputs) h = hash_combine(h, i);
  for (Dim d : a.ints) h = hash_combine(h, std::hash<Dim>{}(d));
  h = hash_combine(h, std::hash<double>{}(a.real));
  h = hash_combine(h, std::hash<double>{}(a.real2));
  return hash_combine(h, (a.flag ? 1u : 0u) | (a.flag2 ? 2u : 0u));
}

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

}  // namespace

template <class T>
Graph<T>::Graph() : interned_(std::make_unique<std::unordered_multimap<std::size_t, NodeId>>()) {}

template <class T>
Graph<T>::~Graph() = default;

template <class T>
void Graph<T>::out_of_range(NodeId id) const {
  throw GraphError("node id " + std::to_string(id) + " is out of range (graph has " +
                   std::to_string(nodes_.size()) + " nodes)");
}
template <class T>
Expr<T> Graph<T>::expr(NodeId id) {
  node(id);
  return Expr<T>(this, id);
}

template <class T>
void Graph<T>::set_name(NodeId id, std::string name) {
  node(id);
  nodes_[id].name = std::move(name);
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
bool Graph<T>::is_scalar_constant(NodeId id, T v) const {
  const Node<T>& n = node(id);
  return n.kind == NodeKind::constant && n.shape.empty() && n.value() == v;
}

template <class T>
bool Graph<T>::same_runtime_shape(NodeId a, NodeId b) const {
  const Shape& sa = node(a).shape;
  const Shape& sb = node(b).shape;
  if (sa != sb) return false;
  if (std::find(sa.begin(), sa.end(), open) == sa.end()) return true;
  auto root = [this](NodeId id) {
    for (;;) {
      const Node<T>& n = nodes_[id];
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
  Node<T>& n = nodes_[e.id()];
  if (n.kind != NodeKind::parameter && n.kind != NodeKind::constant) {
    throw GraphError("value(): " + describe(e.id()) + " is not a parameter or constant");
  }
  return n.value;
}

template <class T>
Expr<T> Graph<T>::add_node(Node<T> n) {
  if (nodes_.size() >= std::numeric_limits<NodeId>::max()) {
    throw GraphError("graph is full (" + std::to_string(nodes_.size()) + " nodes)");
  }
  if (n.shape.size() > max_rank) {
    throw ShapeError("rank " + std::to_string(n.shape.size()) + " of shape " + shape_str(n.shape) +
                     " exceeds the supported maximum " + std::to_string(max_rank));
  }
  nodes_.push_back(std::move(n));
  return Expr<T>(this, static_cast<NodeId>(nodes_.size() - 1));
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
  Node<T> n;
  n.kind = NodeKind::input;
  n.shape = std::move(shape);
  n.name = std::move(name);
  n.dtype = dtype;
  return add_node(std::move(n));
}

template <class T>
Expr<T> Graph<T>::parameter(std::string name, xt::xarray<T> value) {
  Node<T> n;
  n.kind = NodeKind::parameter;
  n.shape = shape_of(value);
  n.name = std::move(name);
  n.value = std::move(value);
  return add_node(std::move(n));
}

template <class T>
Expr<T> Graph<T>::constant(xt::xarray<T> value, std::string name) {
  if (value.dimension() == 0 && name.empty()) return scalar(value());
  Node<T> n;
  n.kind = NodeKind::constant;
  n.shape = shape_of(value);
  n.name = std::move(name);
  n.value = std::move(value);
  return add_node(std::move(n));
}

template <class T>
Expr<T> Graph<T>::scalar(T v) {
  // Scalars are interned by bit pattern, so every "2" in a formula is one node and
  // identical expressions over it merge.
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  Attrs key;
  key.ints = {static_cast<Dim>(bits)};
  std::size_t h = node_hash<T>(nullptr, {}, key);
  auto [lo, hi] = interned_->equal_range(h);
  for (auto it = lo; it != hi; ++it) {
    const Node<T>& n = nodes_[it->second];
    if (n.kind == NodeKind::constant && n.shape.empty() && n.name.empty() &&
        std::memcmp(n.value.data(), &v, sizeof(T)) == 0) {
      return Expr<T>(this, it->second);
    }
  }
  Node<T> n;
  n.kind = NodeKind::constant;
  n.value = xt::xarray<T>(v);
  Expr<T> e = add_node(std::move(n));
  interned_->emplace(h, e.id());
  return e;
}

template <class T>
Expr<T> Graph<T>::apply(const Op<T>& op, std::vector<NodeId> inputs, Attrs attrs) {
  // Operand shapes go to a reused scratch list, so building a million-node graph does not
  // allocate a list per node. It is only read before simplify(), which may re-enter apply().
  std::vector<Shape>& shapes = scratch_shapes_;
  shapes.resize(inputs.size());
  bool all_constant = !inputs.empty();
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Node<T>& n = node(inputs[k]);
    shapes[k].assign(n.shape.begin(), n.shape.end());
    all_constant = all_constant && n.kind == NodeKind::constant;
  }
  Shape out;
  try {
    out = op.infer_shape(shapes, attrs);
  } catch (const std::invalid_argument& e) {
    std::string msg = std::string(op.name()) + ": " + e.what() + "; operands:";
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      msg += (k ? ", " : " ") + describe(inputs[k]);
    }
    throw ShapeError(msg);
  }
  if (Expr<T> s = op.simplify(*this, inputs, attrs)) return s;

  if (all_constant) {
    std::vector<ConstTensor<T>> in;
    for (NodeId i : inputs) {
      const Node<T>& n = nodes_[i];
      in.push_back({n.value.data(), n.shape, n.value.size()});
    }
    std::vector<std::size_t> ushape(out.begin(), out.end());
    xt::xarray<T> value = xt::xarray<T>::from_shape(ushape);
    op.forward(in, Tensor<T>{value.data(), out, value.size()}, attrs);
    return constant(std::move(value));
  }

  std::size_t h = node_hash<T>(&op, inputs, attrs);
  auto [lo, hi] = interned_->equal_range(h);
  for (auto it = lo; it != hi; ++it) {
    const Node<T>& n = nodes_[it->second];
    if (n.op == &op && n.inputs == inputs && n.attrs == attrs) return Expr<T>(this, it->second);
  }
  Node<T> n;
  n.kind = NodeKind::op;
  n.op = &op;
  n.inputs = std::move(inputs);
  n.attrs = std::move(attrs);
  n.shape = std::move(out);
  Expr<T> e = add_node(std::move(n));
  interned_->emplace(h, e.id());
  return e;
}

template class Op<float>;
template class Op<double>;
template class Graph<float>;
template class Graph<double>;

}  // namespace xgrad
