// Compilation (the reachable subgraph as a flat list of steps) and the order of the
// planning passes. Planning happens when input shapes change; a run with unchanged shapes
// only binds pointers and calls kernels, so it allocates nothing. A run is bind(),
// execute(), then write_updates() (Function::run).
#include "plan.hpp"

#include "../topo.hpp"
#include "xgrad/threads.hpp"

namespace xgrad::exec {

template <class T>
Plan<T>::Plan(std::vector<Expr<T>> outs, CompileOptions options, std::vector<Update<T>> ups) {
  if (outs.empty() && ups.empty()) throw GraphError("compile: no outputs");
  for (std::size_t k = 0; k < outs.size(); ++k) {
    if (!outs[k].valid()) {
      throw GraphError("compile: output " + std::to_string(k) +
                       " is an invalid (empty) Expr handle (a gradient that does not exist?)");
    }
  }
  for (std::size_t k = 0; k < ups.size(); ++k) {
    if (!ups[k].target.valid() || !ups[k].value.valid()) {
      throw GraphError("compile: update " + std::to_string(k) +
                       " holds an invalid (empty) Expr handle");
    }
  }
  g = outs.empty() ? &ups[0].target.graph() : &outs[0].graph();
  graph_alive = g->liveness();
  std::vector<NodeId> roots;
  for (std::size_t k = 0; k < outs.size(); ++k) {
    const Expr<T>& e = outs[k];
    if (&e.graph() != g) {
      throw GraphError("compile: output " + std::to_string(k) + " " + e.graph().describe(e.id()) +
                       " belongs to another graph than output 0 " + g->describe(outs[0].id()));
    }
    roots.push_back(e.id());
  }
  outputs = std::move(outs);
  updates = std::move(ups);
  check_updates();
  for (const Update<T>& u : updates) roots.push_back(u.value.id());
  opts = options;
  order = detail::execution_order(*g, roots);
  const std::size_t n = order.size();
  // Positions by node id, over the id range the order spans.
  detail::big_vector<std::uint32_t> pos(
      n ? static_cast<std::size_t>(*std::max_element(order.begin(), order.end())) + 1 : 0, 0);
  slots.resize(n);
  steps.reserve(n);
  std::size_t max_in = 0, op_ranks = 0;
  for (std::size_t p = 0; p < n; ++p) {
    NodeId id = order[p];
    pos[id] = static_cast<std::uint32_t>(p);
    const Node<T>& nd = g->node(id);
    Slot<T>& s = slots[p];
    s.dims = nd.shape.data();
    s.rank = static_cast<std::uint32_t>(nd.shape.size());
    if (std::find(nd.shape.begin(), nd.shape.end(), open) == nd.shape.end()) {
      s.flags |= kConcrete;
      s.size = shape_size(nd.shape);
    }
    switch (nd.kind) {
      case NodeKind::input:
        inputs.push_back(Expr<T>(g, id));
        bound.push_back({static_cast<std::uint32_t>(p), nullptr, false, nd.dtype, {}, {}});
        break;
      case NodeKind::parameter:
      case NodeKind::constant:
        leaves.push_back(static_cast<std::uint32_t>(p));
        break;
      case NodeKind::op: {
        s.flags |= kOp;
        Step<T> st{nd.op,
                   &nd.op->traits(),
                   &nd.attrs,
                   id,
                   static_cast<std::uint32_t>(p),
                   static_cast<std::uint32_t>(step_inputs.size()),
                   static_cast<std::uint32_t>(nd.inputs.size())};
        for (NodeId in : nd.inputs) step_inputs.push_back(pos[in]);
        max_in = std::max(max_in, nd.inputs.size());
        op_ranks += nd.shape.size();
        steps.push_back(st);
        break;
      }
    }
  }
  leaf_shapes.resize(leaves.size());
  for (std::uint32_t p : leaves) leaf_values.push_back(&g->node(order[p]).value.get());
  pool.reserve(op_ranks);  // room for every run-time shape of the usual rank
  args.resize(max_in);
  operand_shapes.resize(max_in);
  for (const Expr<T>& e : outputs) out_pos.push_back(pos[e.id()]);
  for (const Update<T>& u : updates) out_pos.push_back(pos[u.value.id()]);
  out_index.assign(n, -1);
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    if (out_index[out_pos[k]] < 0) out_index[out_pos[k]] = static_cast<int>(k);
  }
  results.resize(outputs.size());
  update_values.resize(updates.size());
}

// Shapes first (every later pass sizes things by them), then the schedule, whose units
// decide when each buffer is last read, then the buffers, then how each step is called.
template <class T>
void Plan<T>::plan() {
  ++plans;
  threads = num_threads();
  plan_shapes();
  units.clear();
  group_buffers.clear();
  tiled_steps = 0;
  if (!opts.tile_rows || !plan_groups(*this)) schedule_steps();
  plan_buffers();
  plan_calls();
  planned = true;
}

template <class T>
void Plan<T>::schedule_steps() {
  units.reserve(steps.size());
  for (std::size_t st = 0; st < steps.size(); ++st)
    units.push_back({false, static_cast<std::uint32_t>(st)});
}

template struct Plan<float>;
template struct Plan<double>;

}  // namespace xgrad::exec
