// Graphviz drawings (formulas are in print/formula.cpp). The walk is a topological order,
// never recursion, so very deep graphs draw without exhausting the stack.
#include "xgrad/print.hpp"

// GCC 12 reports a false -Wmaybe-uninitialized inside Boost's edge iterators (a
// boost::optional it cannot see through) when write_graphviz is inlined. (Clang has no
// such warning and would warn about the unknown name.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/graphviz.hpp>
#include <charconv>
#include <sstream>

#include "topo.hpp"

namespace xgrad {
namespace {

template <class T>
std::string number(T v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// Text safe inside a quoted Graphviz string: quotes and backslashes are escaped.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

template <class T>
std::vector<NodeId> all_ids(const Graph<T>& g) {
  std::vector<NodeId> ids(g.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<NodeId>(i);
  return ids;
}

template <class T>
std::string dot_of(const Graph<T>& g, std::span<const NodeId> ids) {
  std::vector<std::uint32_t> index(g.size(), 0);
  for (std::size_t i = 0; i < ids.size(); ++i) index[ids[i]] = static_cast<std::uint32_t>(i);
  // An edge carries a mark when its operand enters a matrix product transposed.
  struct Edge {
    bool transposed = false;
  };
  using BG =
      boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, boost::no_property, Edge>;
  BG bg(ids.size());
  std::vector<std::string> labels, shapes;
  for (NodeId id : ids) {
    const Node<T>& n = g.node(id);
    std::string what;
    switch (n.kind) {
      case NodeKind::input:
        what = "input";
        break;
      case NodeKind::parameter:
        what = "parameter";
        break;
      case NodeKind::constant:
        what = "constant";
        break;
      case NodeKind::op:
        what = n.op->label(n.attrs);
        break;
    }
    std::string label = n.name.empty() ? "#" + std::to_string(id) : n.name;
    if (n.kind == NodeKind::constant && n.name.empty() && n.value.size() == 1) {
      label = number(n.value.data()[0]);
    }
    labels.push_back(escape(label) + "\\n" + escape(what + " " + shape_str(n.shape)));
    shapes.push_back(n.kind == NodeKind::op ? "ellipse" : "box");
    bool mm = n.kind == NodeKind::op && n.op->traits().rows == RowRole::matmul;
    const MatmulAttrs m = mm ? matmul_attrs(n.attrs) : MatmulAttrs{};
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      bool t = i == 0 ? m.transpose_a : i == 1 && m.transpose_b;
      boost::add_edge(index[n.inputs[i]], index[id], Edge{t}, bg);
    }
  }
  std::ostringstream os;
  boost::write_graphviz(
      os, bg,
      [&](std::ostream& out, typename BG::vertex_descriptor v) {
        out << "[label=\"" << labels[v] << "\", shape=" << shapes[v] << "]";
      },
      [&](std::ostream& out, typename BG::edge_descriptor e) {
        if (bg[e].transposed) out << "[label=\"T\", style=bold, color=blue, fontcolor=blue]";
      });
  return os.str();
}

}  // namespace

template <class T>
std::string to_dot(Expr<T> e) {
  NodeId root = e.id();
  return dot_of(e.graph("to_dot"),
                detail::topo_order(e.graph(), std::span<const NodeId>(&root, 1)));
}

template <class T>
std::string to_dot(const Graph<T>& g) {
  return dot_of(g, all_ids(g));
}

template std::string to_dot(Expr<float>);
template std::string to_dot(Expr<double>);
template std::string to_dot(const Graph<float>&);
template std::string to_dot(const Graph<double>&);

}  // namespace xgrad
