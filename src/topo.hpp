// Reachability and topological order of the nodes a set of roots depends on. Internal to
// src/.
#pragma once

#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/topological_sort.hpp>
#include <iterator>
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

/// The edges of execution_order's reversed graph, sorted by source, as an input iterator:
/// vertex 0 -> every vertex, then vertex i + 1 (node reach[i]) -> each of its operands.
/// Iterators compare by the number of edges before them.
template <class T>
class ReversedEdges {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = std::pair<std::uint32_t, std::uint32_t>;
  using difference_type = std::ptrdiff_t;
  using pointer = const value_type*;
  using reference = const value_type&;

  /// The first edge (count 0), or an end (count: the number of edges).
  ReversedEdges(const Graph<T>& g, const big_vector<NodeId>& reach,
                const big_vector<std::uint32_t>& index, std::size_t count)
      : g_(&g), reach_(&reach), index_(&index), count_(count) {
    if (count == 0 && !reach.empty()) e_ = {0, 1};
  }
  reference operator*() const { return e_; }
  pointer operator->() const { return &e_; }
  ReversedEdges& operator++() {
    ++count_;
    if (count_ < reach_->size()) {  // the root's edges
      e_.second = static_cast<std::uint32_t>(count_ + 1);
      return *this;
    }
    if (in_ != in_end_) ++in_;
    while (in_ == in_end_ && node_ < reach_->size()) {  // the next node with operands
      std::span<const NodeId> in = GraphAccess::inputs(*g_, (*reach_)[node_++]);
      in_ = in.data();
      in_end_ = in.data() + in.size();
    }
    if (in_ != in_end_) e_ = {static_cast<std::uint32_t>(node_), (*index_)[*in_] + 1};
    return *this;
  }
  bool operator==(const ReversedEdges& o) const { return count_ == o.count_; }
  bool operator!=(const ReversedEdges& o) const { return count_ != o.count_; }

 private:
  const Graph<T>* g_;
  const big_vector<NodeId>* reach_;
  const big_vector<std::uint32_t>* index_;
  std::size_t count_;
  std::size_t node_ = 0;  // the next node whose operands come
  const NodeId* in_ = nullptr;
  const NodeId* in_end_ = nullptr;
  value_type e_{0, 0};
};

/// The order a compiled Function executes in: the reachable nodes ordered by Boost.Graph's
/// topological_sort (graph algorithms come from Boost, which also rejects a cycle should
/// one ever appear). The sort runs on the reversed edges (node -> operand): listed node by
/// node they are already sorted by source, so the compressed-sparse-row graph is built in
/// one pass without sorting, and the DFS finishing order of the reversed graph is directly
/// an order with operands first.
///
/// Vertex 0 is an extra root with an edge to every node, in increasing id order. Boost's DFS
/// then makes one search, from it, instead of one per node (each search allocates its own
/// stack): a node's operands have smaller ids, so each node is entered with its operands
/// finished, and the stack never holds more than the root and one node, however deep the
/// graph. The root finishes last and is dropped.
template <class T>
big_vector<NodeId> execution_order(const Graph<T>& g, std::span<const NodeId> roots) {
  big_vector<NodeId> reach = topo_order(g, roots);
  if (reach.empty()) return reach;
  big_vector<std::uint32_t> index(static_cast<std::size_t>(reach.back()) + 1, 0);
  std::size_t n_edges = reach.size();  // the root's
  for (std::size_t i = 0; i < reach.size(); ++i) {
    index[reach[i]] = static_cast<std::uint32_t>(i);
    n_edges += GraphAccess::inputs(g, reach[i]).size();
  }
  // Node i of reach is vertex i + 1. The edges are generated in order as the graph reads
  // them, and their count is given: no edge list is stored, and the graph's arrays are
  // sized once.
  ReversedEdges<T> first(g, reach, index, 0), last(g, reach, index, n_edges);
  using BG =
      boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, boost::no_property,
                                         boost::no_property, std::uint32_t, std::uint32_t>;
  BG reversed(boost::edges_are_sorted, first, last, static_cast<std::uint32_t>(reach.size() + 1),
              static_cast<std::uint32_t>(n_edges));
  big_vector<std::uint32_t> finished;
  finished.reserve(reach.size() + 1);
  boost::topological_sort(reversed, std::back_inserter(finished));
  big_vector<NodeId> order;
  order.reserve(reach.size());
  for (std::uint32_t v : finished) {
    if (v != 0) order.push_back(reach[v - 1]);
  }
  return order;
}

}  // namespace xgrad::detail
