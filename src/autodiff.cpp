// Reverse accumulation over a topological order; every adjoint is a graph node.
#include "xgrad/autodiff.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "topo.hpp"
#include "xgrad/ops.hpp"

namespace xgrad {
namespace {

template <class T>
Expr<T> zeros_for(Expr<T> x) {
  const Shape& s = x.shape();
  if (std::find(s.begin(), s.end(), open) != s.end()) return zeros_like(x);
  std::vector<std::size_t> us(s.begin(), s.end());
  return x.graph().constant(xt::xarray<T>(xt::zeros<T>(us)));
}

/// Sum of the gradient contributions a node received: repeated terms become c*term and
/// constants go last, so formulas read "2*x + 2".
template <class T>
Expr<T> total(std::vector<Expr<T>>& parts) {
  if (parts.empty()) return {};
  if (parts.size() == 1) return parts[0];
  std::vector<std::pair<Expr<T>, int>> terms;
  for (const Expr<T>& p : parts) {
    auto it = std::find_if(terms.begin(), terms.end(), [&](const auto& t) { return t.first == p; });
    if (it != terms.end()) {
      ++it->second;
    } else {
      terms.emplace_back(p, 1);
    }
  }
  std::stable_partition(terms.begin(), terms.end(),
                        [](const auto& t) { return !t.first.graph().is_constant(t.first.id()); });
  Expr<T> sum;
  for (auto& [e, c] : terms) {
    Expr<T> term = c == 1 ? e : mul(e.graph().scalar(static_cast<T>(c)), e);
    sum = sum ? add(sum, term) : term;
  }
  return sum;
}

template <class T>
std::vector<Expr<T>> reverse_mode(Expr<T> y, const std::vector<Expr<T>>& xs, Expr<T> seed,
                                  GradOptions opts) {
  Graph<T>& g = y.graph("grad (the differentiated node)");
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const Expr<T>& x = xs[k];
    x.graph("grad (variable " + std::to_string(k) + ")");
    if (&x.graph() != &g) {
      throw GraphError("grad: variable " + std::to_string(k) + " " + x.graph().describe(x.id()) +
                       " belongs to another graph than " + g.describe(y.id()));
    }
  }
  NodeId root = y.id();
  detail::big_vector<NodeId> order = detail::topo_order(g, std::span<const NodeId>(&root, 1));
  // Only nodes up to the root matter (the rest cannot reach it); one flag byte and one
  // adjoint id per node keep these arrays small for graphs of a million nodes.
  enum : std::uint8_t { kIsX = 1, kRel = 2, kReached = 4 };
  const std::size_t n = static_cast<std::size_t>(root) + 1;
  detail::big_vector<std::uint8_t> flag(n, 0);
  for (const Expr<T>& x : xs) {
    if (x.id() < n) flag[x.id()] |= kIsX;
  }
  for (NodeId id : order) {
    bool r = flag[id] & kIsX;
    for (NodeId in : detail::GraphAccess::inputs(g, id)) r = r || (flag[in] & kRel);
    flag[id] |= static_cast<std::uint8_t>(kReached | (r ? kRel : 0));
  }
  // Contributions are collected and summed when their node is reached: by then every
  // consumer (later in the order) has contributed. Most nodes get exactly one, kept
  // inline; only the others pay for a list.
  constexpr NodeId kNoAdj = ~NodeId{0};
  detail::big_vector<NodeId> adj(n, kNoAdj);
  std::unordered_map<NodeId, std::vector<Expr<T>>> more;
  adj[root] = seed.id();
  std::vector<Expr<T>> grads;
  std::unique_ptr<bool[]> wanted;  // not a vector<bool>: rules read it as a span
  std::size_t wanted_cap = 0;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    NodeId id = *it;
    if (!(flag[id] & kRel)) continue;
    // Most graphs have few nodes with several contributions: no hash per node then.
    if (auto m = more.empty() ? more.end() : more.find(id); m != more.end()) {
      m->second.insert(m->second.begin(), Expr<T>(&g, adj[id]));
      adj[id] = total(m->second).id();
      more.erase(m);
    }
    if (adj[id] == kNoAdj) continue;
    const Node<T>& node = g.node(id);
    if (node.kind != NodeKind::op) continue;
    // Operands that lead to no x are not wanted, so rules skip building gradients nobody
    // will read (the gradient of a data matrix, of labels).
    const std::size_t k = node.inputs.size();
    grads.assign(k, Expr<T>());
    if (wanted_cap < k) {
      wanted_cap = std::max<std::size_t>(k, 2 * wanted_cap);
      wanted = std::make_unique<bool[]>(wanted_cap);
    }
    for (std::size_t i = 0; i < k; ++i) wanted[i] = (flag[node.inputs[i]] & kRel) != 0;
    node.op->backward(node, Expr<T>(&g, id), Expr<T>(&g, adj[id]),
                      std::span<const bool>(wanted.get(), k), grads);
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      NodeId in = node.inputs[i];
      if (!grads[i] || !(flag[in] & kRel)) continue;
      if (&grads[i].graph() != &g) {
        throw GraphError("grad: the rule of '" + std::string(node.op->name()) +
                         "' gave a node of another graph");
      }
      const Shape& gs = grads[i].shape();
      const Shape& xs_ = g.node(in).shape;
      if (gs.size() != xs_.size()) {
        throw GraphError("grad: the rule of '" + std::string(node.op->name()) + "' gave operand " +
                         std::to_string(i) + " a gradient of shape " + shape_str(gs) + " for " +
                         g.describe(in));
      }
      if (adj[in] == kNoAdj) {
        adj[in] = grads[i].id();
      } else {
        more[in].push_back(grads[i]);
      }
    }
  }
  std::vector<Expr<T>> out;
  out.reserve(xs.size());
  for (const Expr<T>& x : xs) {
    if (x.id() < n && adj[x.id()] != kNoAdj) {
      out.push_back(Expr<T>(&g, adj[x.id()]));
    } else if ((x.id() < n && (flag[x.id()] & kReached)) || opts.allow_unconnected) {
      out.push_back(zeros_for(x));  // connected only through zero-gradient ops
    } else {
      throw GraphError("grad: " + g.describe(y.id()) + " does not depend on " + g.describe(x.id()) +
                       " (set GradOptions::allow_unconnected to get zeros instead)");
    }
  }
  return out;
}

}  // namespace

template <class T>
std::vector<Expr<T>> grad(Expr<T> y, const std::vector<Expr<T>>& xs, GradOptions opts) {
  const Shape& s = y.graph("grad (the differentiated node)").node(y.id()).shape;
  bool scalar = std::all_of(s.begin(), s.end(), [](Dim d) { return d == 1; });
  if (!scalar) {
    throw ShapeError("grad: " + y.graph().describe(y.id()) +
                     " is not a scalar; pass a cotangent of its shape for a vector-Jacobian "
                     "product, or reduce it first");
  }
  Expr<T> seed = y.graph().scalar(T(1));
  if (!s.empty()) {
    std::vector<std::size_t> us(s.begin(), s.end());
    seed = y.graph().constant(xt::xarray<T>(xt::ones<T>(us)));
  }
  return reverse_mode(y, xs, seed, opts);
}

template <class T>
std::vector<Expr<T>> grad(Expr<T> y, const std::vector<Expr<T>>& xs, Expr<T> cotangent,
                          GradOptions opts) {
  if (&cotangent.graph() != &y.graph()) throw GraphError("grad: cotangent from another graph");
  if (cotangent.shape() != y.shape()) {
    throw ShapeError("grad: cotangent " + y.graph().describe(cotangent.id()) +
                     " does not have the shape of " + y.graph().describe(y.id()));
  }
  return reverse_mode(y, xs, cotangent, opts);
}

template std::vector<Expr<float>> grad(Expr<float>, const std::vector<Expr<float>>&, GradOptions);
template std::vector<Expr<double>> grad(Expr<double>, const std::vector<Expr<double>>&,
                                        GradOptions);
template std::vector<Expr<float>> grad(Expr<float>, const std::vector<Expr<float>>&, Expr<float>,
                                       GradOptions);
template std::vector<Expr<double>> grad(Expr<double>, const std::vector<Expr<double>>&,
                                        Expr<double>, GradOptions);

}  // namespace xgrad
