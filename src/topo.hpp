// Reachability and topological order of the nodes a set of roots depends on. Internal to
// src/.
#pragma once

#include <boost/graph/graph_traits.hpp>
#include <boost/graph/topological_sort.hpp>
#include <boost/property_map/property_map.hpp>
#include <iterator>
#include <memory>
#include <span>
#include <vector>

#include "huge_pages.hpp"
#include "xgrad/graph.hpp"

namespace xgrad::detail {

/// The graph's packed operand lists, for sweeps over many nodes.
struct GraphAccess {
  /// Operands of node id (valid until the graph grows).
  template <class T>
  static std::span<const NodeId> inputs(const Graph<T>& g, NodeId id) {
    std::size_t b = g.in_begin_[id];
    std::size_t e = id + 1 < g.in_begin_.size() ? g.in_begin_[id + 1] : g.in_ids_.size();
    return {g.in_ids_.data() + b, e - b};
  }
};

/// Nodes the roots depend on (roots included), inputs before the nodes that use them.
/// A node's inputs always have smaller ids (Graph::apply only refers to existing nodes),
/// so increasing id order is a topological order: one backward sweep from the largest
/// root marks what is reachable, and the marked ids in increasing order are the answer.
/// No recursion and no stack, and only the packed operand lists are read, so chains of
/// millions of nodes cost one pass over a few bytes per node.
template <class T>
big_vector<NodeId> topo_order(const Graph<T>& g, std::span<const NodeId> roots) {
  if (roots.empty()) return {};
  NodeId top = 0;
  for (NodeId r : roots) {
    g.node(r);  // bounds check
    top = std::max(top, r);
  }
  big_vector<char> seen(static_cast<std::size_t>(top) + 1, 0);
  for (NodeId r : roots) seen[r] = 1;
  std::size_t count = 0;
  for (std::size_t id = top + 1; id-- > 0;) {
    if (!seen[id]) continue;
    ++count;
    for (NodeId in : GraphAccess::inputs(g, static_cast<NodeId>(id))) seen[in] = 1;
  }
  big_vector<NodeId> order;
  order.reserve(count);
  for (std::size_t id = 0; id <= top; ++id) {
    if (seen[id]) order.push_back(static_cast<NodeId>(id));
  }
  return order;
}

/// The reversed graph (node -> operand) of the nodes in `reach`, seen through Boost.Graph's
/// VertexListGraph and IncidenceGraph concepts: Boost's algorithms walk the graph's own
/// packed operand lists, and nothing is copied into a Boost graph type. Vertices are node
/// ids plus one extra root (`root`, past every id) with an edge to every node of `reach`.
template <class T>
struct OperandGraph {
  const Graph<T>* g;
  const big_vector<NodeId>* reach;  ///< increasing ids
  NodeId root;

  /// An edge: (source, target).
  struct Edge {
    NodeId source = 0, target = 0;
    bool operator==(const Edge&) const = default;
  };
  /// The out-edges of one vertex: its source and a walk over its targets.
  class OutEdges {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Edge;
    using difference_type = std::ptrdiff_t;
    using pointer = const Edge*;
    using reference = Edge;
    OutEdges() = default;
    OutEdges(NodeId source, const NodeId* p) : source_(source), p_(p) {}
    Edge operator*() const { return {source_, *p_}; }
    OutEdges& operator++() {
      ++p_;
      return *this;
    }
    OutEdges operator++(int) {
      OutEdges o = *this;
      ++p_;
      return o;
    }
    bool operator==(const OutEdges& o) const { return p_ == o.p_; }

   private:
    NodeId source_ = 0;
    const NodeId* p_ = nullptr;
  };
  /// The vertices: the root, then `reach` in order.
  class Vertices {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = NodeId;
    using difference_type = std::ptrdiff_t;
    using pointer = const NodeId*;
    using reference = NodeId;
    Vertices() = default;
    Vertices(const OperandGraph* og, std::size_t i) : og_(og), i_(i) {}
    NodeId operator*() const { return i_ == 0 ? og_->root : (*og_->reach)[i_ - 1]; }
    Vertices& operator++() {
      ++i_;
      return *this;
    }
    Vertices operator++(int) {
      Vertices o = *this;
      ++i_;
      return o;
    }
    bool operator==(const Vertices& o) const { return i_ == o.i_; }

   private:
    const OperandGraph* og_ = nullptr;
    std::size_t i_ = 0;
  };

  // What boost::graph_traits reads.
  using vertex_descriptor = NodeId;
  using edge_descriptor = Edge;
  using out_edge_iterator = OutEdges;
  using vertex_iterator = Vertices;
  using directed_category = boost::directed_tag;
  using edge_parallel_category = boost::allow_parallel_edge_tag;
  struct traversal_category : boost::incidence_graph_tag, boost::vertex_list_graph_tag {};
  using vertices_size_type = std::size_t;
  using edges_size_type = std::size_t;
  using degree_size_type = std::size_t;
  static NodeId null_vertex() { return ~NodeId{0}; }

  /// The targets of vertex v's out-edges.
  std::span<const NodeId> targets(NodeId v) const {
    if (v == root) return {reach->data(), reach->size()};
    return GraphAccess::inputs(*g, v);
  }
};

/// @cond BOOST_GRAPH_INTERFACE
template <class T>
std::pair<typename OperandGraph<T>::Vertices, typename OperandGraph<T>::Vertices> vertices(
    const OperandGraph<T>& og) {
  return {{&og, 0}, {&og, og.reach->size() + 1}};
}
template <class T>
std::size_t num_vertices(const OperandGraph<T>& og) {
  return og.reach->size() + 1;
}
template <class T>
std::pair<typename OperandGraph<T>::OutEdges, typename OperandGraph<T>::OutEdges> out_edges(
    NodeId v, const OperandGraph<T>& og) {
  std::span<const NodeId> t = og.targets(v);
  return {{v, t.data()}, {v, t.data() + t.size()}};
}
template <class T>
std::size_t out_degree(NodeId v, const OperandGraph<T>& og) {
  return og.targets(v).size();
}
template <class T>
NodeId source(typename OperandGraph<T>::Edge e, const OperandGraph<T>&) {
  return e.source;
}
template <class T>
NodeId target(typename OperandGraph<T>::Edge e, const OperandGraph<T>&) {
  return e.target;
}
/// @endcond

/// The order a compiled Function executes in: the reachable nodes ordered by Boost.Graph's
/// topological_sort (graph algorithms come from Boost, which also rejects a cycle should
/// one ever appear). The sort runs on the reversed edges (node -> operand), read in place
/// from the graph's operand lists (OperandGraph), so the DFS finishing order is directly an
/// order with operands first.
///
/// The extra root has an edge to every node, in increasing id order. Boost's DFS then makes
/// one search, from it, instead of one per node (each search allocates its own stack): a
/// node's operands have smaller ids, so each node is entered with its operands finished,
/// and the stack never holds more than the root and one node, however deep the graph. The
/// root finishes last and is dropped.
template <class T>
big_vector<NodeId> execution_order(const Graph<T>& g, std::span<const NodeId> roots) {
  big_vector<NodeId> reach = topo_order(g, roots);
  if (reach.empty()) return reach;
  const OperandGraph<T> og{&g, &reach, static_cast<NodeId>(reach.back() + 1)};
  // Colours indexed by id, left uninitialised: the search whitens every vertex of `reach`
  // (and the root) before it starts, and no edge leads anywhere else.
  // On the allocator of the graph's arrays: a block this size comes back from the graph
  // compiled before instead of being faulted in afresh.
  using Colors = HugePageAllocator<boost::default_color_type>;
  const std::size_t n_colors = static_cast<std::size_t>(og.root) + 1;
  const auto free_colors = [n_colors](boost::default_color_type* p) {
    Colors().deallocate(p, n_colors);
  };
  std::unique_ptr<boost::default_color_type[], decltype(free_colors)> colors(
      Colors().allocate(n_colors), free_colors);
  auto color =
      boost::make_iterator_property_map(colors.get(), boost::typed_identity_property_map<NodeId>());
  big_vector<NodeId> finished;
  finished.reserve(reach.size() + 1);
  boost::topological_sort(og, std::back_inserter(finished), boost::color_map(color));
  finished.pop_back();  // the root
  return finished;
}

}  // namespace xgrad::detail
