// Reachability and topological order of the nodes a set of roots depends on, with
// Boost.Graph. Internal to src/.
#pragma once

#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <boost/graph/topological_sort.hpp>
#include <span>
#include <vector>

#include "xgrad/graph.hpp"

namespace xgrad::detail {

/// Nodes the roots depend on (roots included), inputs before the nodes that use them.
/// Reachability uses an explicit stack and Boost's DFS is iterative, so chains of
/// hundreds of thousands of nodes do not exhaust the call stack.
template <class T>
std::vector<NodeId> topo_order(const Graph<T>& g, std::span<const NodeId> roots) {
  std::vector<NodeId> reach;
  std::vector<char> seen(g.size(), 0);
  std::vector<NodeId> stack(roots.begin(), roots.end());
  while (!stack.empty()) {
    NodeId id = stack.back();
    stack.pop_back();
    if (seen[id]) continue;
    seen[id] = 1;
    reach.push_back(id);
    for (NodeId in : g.node(id).inputs) {
      if (!seen[in]) stack.push_back(in);
    }
  }
  std::vector<std::uint32_t> index(g.size(), 0);
  for (std::size_t i = 0; i < reach.size(); ++i) index[reach[i]] = static_cast<std::uint32_t>(i);
  // A compressed-sparse-row graph is built from one edge array: two allocations instead
  // of one per vertex, which matters for graphs of a million nodes.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> edges;
  for (NodeId id : reach) {
    for (NodeId in : g.node(id).inputs) edges.emplace_back(index[in], index[id]);
  }
  using BG =
      boost::compressed_sparse_row_graph<boost::directedS, boost::no_property, boost::no_property,
                                         boost::no_property, std::uint32_t, std::uint32_t>;
  BG bg(boost::edges_are_unsorted_multi_pass, edges.begin(), edges.end(), reach.size());
  std::vector<BG::vertex_descriptor> rev;
  rev.reserve(reach.size());
  boost::topological_sort(bg, std::back_inserter(rev));
  std::vector<NodeId> order;
  order.reserve(reach.size());
  for (auto it = rev.rbegin(); it != rev.rend(); ++it) order.push_back(reach[*it]);
  return order;
}

}  // namespace xgrad::detail
