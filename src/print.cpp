// Formulas and Graphviz drawings. Both walk a topological order, never recursion, so
// very deep graphs print without exhausting the stack.
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

template <class T>
std::string leaf_text(const Graph<T>& g, NodeId id) {
  const Node<T>& n = g.node(id);
  if (!n.name.empty()) return n.name;
  if (n.kind == NodeKind::constant) {
    if (n.value.size() == 1) return number(n.value.data()[0]);
    return "const" + shape_str(n.shape);
  }
  return "#" + std::to_string(id);
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
std::string dot_of(const Graph<T>& g, const std::vector<NodeId>& ids) {
  std::vector<std::uint32_t> index(g.size(), 0);
  for (std::size_t i = 0; i < ids.size(); ++i) index[ids[i]] = static_cast<std::uint32_t>(i);
  using BG = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
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
    for (NodeId in : n.inputs) boost::add_edge(index[in], index[id], bg);
  }
  std::ostringstream os;
  boost::write_graphviz(os, bg, [&](std::ostream& out, BG::vertex_descriptor v) {
    out << "[label=\"" << labels[v] << "\", shape=" << shapes[v] << "]";
  });
  return os.str();
}

}  // namespace

template <class T>
std::string to_string(Expr<T> e) {
  const Graph<T>& g = e.graph("to_string");
  NodeId root = e.id();
  std::vector<NodeId> order = detail::topo_order(g, std::span<const NodeId>(&root, 1));
  std::vector<std::string> text(g.size());
  std::vector<int> prec(g.size(), 100);
  std::vector<std::string> args;
  auto formula = [&](const Node<T>& n) {
    int p = n.op->precedence();
    args.clear();
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      NodeId in = n.inputs[i];
      bool paren = p < 100 && (prec[in] < p || (i > 0 && prec[in] == p && !n.op->associative()) ||
                               (i == 0 && prec[in] == p && p >= 30));
      args.push_back(paren ? "(" + text[in] + ")" : text[in]);
    }
    return n.op->format(args, n.attrs);
  };
  for (NodeId id : order) {
    const Node<T>& n = g.node(id);
    if (n.kind != NodeKind::op) {
      text[id] = leaf_text(g, id);
      if (n.kind == NodeKind::constant && n.name.empty() && n.value.size() == 1 &&
          n.value.data()[0] < 0) {
        prec[id] = 25;  // a negative number binds like a unary minus
      }
      continue;
    }
    text[id] = n.name.empty() ? formula(n) : n.name;
    prec[id] = n.name.empty() ? n.op->precedence() : 100;
  }
  // The root shows its formula even when named.
  const Node<T>& r = g.node(root);
  return r.kind == NodeKind::op && !r.name.empty() ? formula(r) : text[root];
}

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

template std::string to_string(Expr<float>);
template std::string to_string(Expr<double>);
template std::string to_dot(Expr<float>);
template std::string to_dot(Expr<double>);
template std::string to_dot(const Graph<float>&);
template std::string to_dot(const Graph<double>&);

}  // namespace xgrad
