// Compiled execution. Planning (shapes, buffer offsets) happens when input shapes change;
// a run with unchanged shapes only binds pointers and calls kernels, so it allocates
// nothing.
#include "xgrad/function.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "topo.hpp"

namespace xgrad {

template <class T>
struct Function<T>::Impl {
  struct Slot {
    T* data = nullptr;
    Shape shape;
    std::size_t size = 0;
  };
  struct Step {
    const Op<T>* op;
    const Attrs* attrs;
    NodeId id;
    std::uint32_t out;
    std::uint32_t in_begin;
    std::uint32_t in_count;
  };
  struct Bound {
    std::uint32_t pos;  // slot of the input node
    const void* data = nullptr;
    DType dtype = DType::float64;
    std::vector<T> converted;  // integer inputs, converted to T once per run
  };

  Graph<T>* g = nullptr;
  std::vector<Expr<T>> outputs;
  std::vector<Expr<T>> inputs;
  CompileOptions opts;
  std::vector<NodeId> order;
  std::vector<Slot> slots;
  std::vector<Step> steps;
  std::vector<std::uint32_t> step_inputs;
  std::vector<ConstTensor<T>> args;
  std::vector<std::uint32_t> leaves;  // parameter and constant slots
  std::vector<Bound> bound;
  std::vector<std::uint32_t> out_pos;
  std::vector<xt::xarray<T>> results;
  std::vector<T> arena;
  std::size_t plans = 0;
  bool planned = false;

  void plan();
  void bind(std::span<const Feed<T>> feeds);
  void bind_and_plan(std::span<const Feed<T>> feeds);
  void execute();
};

template <class T>
Function<T>::Function(std::vector<Expr<T>> outputs, CompileOptions opts)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (outputs.empty()) throw GraphError("compile: no outputs");
  m.g = &outputs[0].graph();
  std::vector<NodeId> roots;
  for (const Expr<T>& e : outputs) {
    if (&e.graph() != m.g) throw GraphError("compile: outputs belong to different graphs");
    roots.push_back(e.id());
  }
  m.outputs = std::move(outputs);
  m.opts = opts;
  m.order = detail::topo_order(*m.g, roots);
  std::vector<std::uint32_t> pos(m.g->size(), 0);
  m.slots.resize(m.order.size());
  std::size_t max_in = 0;
  for (std::size_t p = 0; p < m.order.size(); ++p) {
    NodeId id = m.order[p];
    pos[id] = static_cast<std::uint32_t>(p);
    const Node<T>& n = m.g->node(id);
    switch (n.kind) {
      case NodeKind::input:
        m.inputs.push_back(m.g->expr(id));
        m.bound.push_back({static_cast<std::uint32_t>(p), nullptr, n.dtype, {}});
        break;
      case NodeKind::parameter:
      case NodeKind::constant:
        m.leaves.push_back(static_cast<std::uint32_t>(p));
        break;
      case NodeKind::op: {
        typename Impl::Step s{n.op,
                              &n.attrs,
                              id,
                              static_cast<std::uint32_t>(p),
                              static_cast<std::uint32_t>(m.step_inputs.size()),
                              static_cast<std::uint32_t>(n.inputs.size())};
        for (NodeId in : n.inputs) m.step_inputs.push_back(pos[in]);
        max_in = std::max(max_in, n.inputs.size());
        m.steps.push_back(s);
        break;
      }
    }
  }
  m.args.resize(max_in);
  for (const Expr<T>& e : m.outputs) m.out_pos.push_back(pos[e.id()]);
  m.results.resize(m.outputs.size());
}

template <class T>
Function<T>::~Function() = default;
template <class T>
Function<T>::Function(Function&&) noexcept = default;
template <class T>
Function<T>& Function<T>::operator=(Function&&) noexcept = default;

namespace {

template <class S>
bool same_dims(const Shape& a, const S& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](Dim x, auto y) { return x == static_cast<Dim>(y); });
}

template <class S>
std::string dims_str(const S& s) {
  Shape d(s.begin(), s.end());
  return shape_str(d);
}

std::string strip_prefix(const char* what) {
  std::string s = what;
  return s.rfind("xgrad: ", 0) == 0 ? s.substr(7) : s;
}

constexpr std::size_t kAlign = 64;

}  // namespace

template <class T>
void Function<T>::Impl::bind(std::span<const Feed<T>> feeds) {
  try {
    bind_and_plan(feeds);
  } catch (...) {
    // A failed binding or plan may have left shapes half updated: plan afresh next time.
    planned = false;
    throw;
  }
}

template <class T>
void Function<T>::Impl::bind_and_plan(std::span<const Feed<T>> feeds) {
  for (Bound& b : bound) b.data = nullptr;
  bool reshape = !planned;
  for (const Feed<T>& f : feeds) {
    if (&f.input.graph() != g) throw BindingError("run: a bound node belongs to another graph");
    const Node<T>& n = g->node(f.input.id());
    if (n.kind != NodeKind::input) {
      throw BindingError("run: " + g->describe(f.input.id()) +
                         " is not an input; only inputs take values per run");
    }
    auto it = std::find_if(bound.begin(), bound.end(),
                           [&](const Bound& b) { return order[b.pos] == f.input.id(); });
    if (it == bound.end()) continue;  // an input these outputs do not use
    const TensorArg& v = f.value;
    bool int_input = n.dtype == DType::int32 || n.dtype == DType::int64;
    bool int_value = v.dtype() == DType::int32 || v.dtype() == DType::int64;
    if (int_input ? !int_value : v.dtype() != n.dtype) {
      throw BindingError("run: input " + g->describe(f.input.id()) + " expects " +
                         dtype_name(n.dtype) + " values, got " + dtype_name(v.dtype()));
    }
    if (!v.row_major()) {
      throw BindingError("run: the value for input " + g->describe(f.input.id()) +
                         " is not row-major; evaluate it into an xt::xarray first");
    }
    auto vs = v.shape();
    bool fits = vs.size() == n.shape.size();
    for (std::size_t i = 0; fits && i < vs.size(); ++i) {
      fits = n.shape[i] == open || n.shape[i] == static_cast<Dim>(vs[i]);
    }
    if (!fits) {
      throw BindingError("run: input " + g->describe(f.input.id()) +
                         " cannot take a value of shape " + dims_str(vs));
    }
    it->data = v.data();
    it->dtype = v.dtype();
    if (!same_dims(slots[it->pos].shape, vs)) {
      slots[it->pos].shape.assign(vs.begin(), vs.end());
      reshape = true;
    }
  }
  for (const Bound& b : bound) {
    if (!b.data) {
      throw BindingError("run: input " + g->describe(order[b.pos]) + " is not bound");
    }
  }
  for (std::uint32_t p : leaves) {
    const xt::xarray<T>& v = g->node(order[p]).value;
    if (!same_dims(slots[p].shape, v.shape())) {
      slots[p].shape.assign(v.shape().begin(), v.shape().end());
      reshape = true;
    }
  }
  if (reshape) plan();
  for (std::uint32_t p : leaves) slots[p].data = const_cast<T*>(g->node(order[p]).value.data());
  for (Bound& b : bound) {
    Slot& s = slots[b.pos];
    if (b.dtype == dtype_of<T>()) {
      s.data = const_cast<T*>(static_cast<const T*>(b.data));
      continue;
    }
    s.data = b.converted.data();
    for (std::size_t i = 0; i < s.size; ++i) {
      s.data[i] = b.dtype == DType::int32
                      ? static_cast<T>(static_cast<const std::int32_t*>(b.data)[i])
                      : static_cast<T>(static_cast<const std::int64_t*>(b.data)[i]);
    }
  }
}

template <class T>
void Function<T>::Impl::plan() {
  ++plans;
  for (Slot& s : slots) s.size = shape_size(s.shape);
  for (Bound& b : bound) {
    if (b.dtype != dtype_of<T>()) b.converted.resize(slots[b.pos].size);
  }
  std::vector<Shape> in_shapes;
  for (const Step& st : steps) {
    in_shapes.clear();
    for (std::uint32_t k = 0; k < st.in_count; ++k)
      in_shapes.push_back(slots[step_inputs[st.in_begin + k]].shape);
    try {
      slots[st.out].shape = st.op->infer_shape(in_shapes, *st.attrs);
    } catch (const std::invalid_argument& e) {
      std::string msg = std::string(st.op->name()) + " at " + g->describe(st.id) + ": " + e.what() +
                        "; operands at run time:";
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        std::uint32_t p = step_inputs[st.in_begin + k];
        msg += (k ? ", " : " ") + g->describe(order[p]) + " = " + shape_str(slots[p].shape);
      }
      throw ShapeError(msg);
    }
    slots[st.out].size = shape_size(slots[st.out].shape);
  }
  // Outputs write straight into the result arrays; other intermediates share an arena,
  // each block reused once its last reader has run.
  std::vector<int> out_index(slots.size(), -1);
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    if (out_index[out_pos[k]] < 0) out_index[out_pos[k]] = static_cast<int>(k);
  }
  std::vector<std::size_t> last_use(slots.size(), 0);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    for (std::uint32_t k = 0; k < steps[s].in_count; ++k)
      last_use[step_inputs[steps[s].in_begin + k]] = s;
  }
  // Free blocks keyed by length: best fit is one lower_bound, so planning stays
  // O(n log n) for graphs of hundreds of thousands of nodes.
  std::multimap<std::size_t, std::size_t> free_blocks;  // length -> offset
  std::vector<std::size_t> offset(slots.size(), 0);
  std::vector<std::size_t> length(slots.size(), 0);
  std::size_t top = 0;
  const std::size_t quantum = std::max<std::size_t>(1, kAlign / sizeof(T));
  for (std::size_t s = 0; s < steps.size(); ++s) {
    std::uint32_t o = steps[s].out;
    if (out_index[o] < 0) {
      std::size_t need = (slots[o].size + quantum - 1) / quantum * quantum;
      auto best = free_blocks.lower_bound(need);
      length[o] = need;
      if (best != free_blocks.end()) {
        offset[o] = best->second;
        std::size_t rest = best->first - need, rest_off = best->second + need;
        free_blocks.erase(best);
        if (rest) free_blocks.emplace(rest, rest_off);
      } else {
        offset[o] = top;
        top += need;
      }
    }
    for (std::uint32_t k = 0; k < steps[s].in_count; ++k) {
      std::uint32_t p = step_inputs[steps[s].in_begin + k];
      bool arena_slot = g->node(order[p]).kind == NodeKind::op && out_index[p] < 0;
      if (arena_slot && last_use[p] == s && length[p]) {
        free_blocks.emplace(length[p], offset[p]);
        length[p] = 0;
      }
    }
  }
  arena.assign(top + quantum, T(0));
  // Align the arena base so every block starts on a cache line.
  std::size_t shift =
      (kAlign - reinterpret_cast<std::uintptr_t>(arena.data()) % kAlign) % kAlign / sizeof(T);
  for (const Step& st : steps) {
    std::uint32_t o = st.out;
    if (out_index[o] >= 0) {
      xt::xarray<T>& r = results[static_cast<std::size_t>(out_index[o])];
      std::vector<std::size_t> us(slots[o].shape.begin(), slots[o].shape.end());
      if (!same_dims(slots[o].shape, r.shape())) r.resize(us);
      slots[o].data = r.data();
    } else {
      slots[o].data = arena.data() + shift + offset[o];
    }
  }
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    bool op_result = g->node(order[out_pos[k]]).kind == NodeKind::op;
    if (!op_result || out_index[out_pos[k]] != static_cast<int>(k)) {
      std::vector<std::size_t> us(slots[out_pos[k]].shape.begin(), slots[out_pos[k]].shape.end());
      results[k].resize(us);
    }
  }
  planned = true;
}

template <class T>
void Function<T>::Impl::execute() {
  const Step* current = nullptr;
  try {
    for (const Step& st : steps) {
      current = &st;
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        const Slot& s = slots[step_inputs[st.in_begin + k]];
        args[k] = ConstTensor<T>{s.data, s.shape, s.size};
      }
      Slot& o = slots[st.out];
      st.op->forward(std::span<const ConstTensor<T>>(args.data(), st.in_count),
                     Tensor<T>{o.data, o.shape, o.size}, *st.attrs);
      if (opts.check_finite) {
        for (std::size_t i = 0; i < o.size; ++i) {
          if (!std::isfinite(o.data[i])) {
            throw ValueError("check_finite: " + g->describe(st.id) + " produced " +
                             std::to_string(o.data[i]) + " at flat index " + std::to_string(i));
          }
        }
      }
    }
  } catch (const ShapeError& e) {
    throw ShapeError("while running " + g->describe(current->id) + ": " + strip_prefix(e.what()));
  } catch (const ValueError& e) {
    if (std::string(e.what()).find("check_finite") != std::string::npos) throw;
    throw ValueError("while running " + g->describe(current->id) + ": " + strip_prefix(e.what()));
  }
  // Outputs that are not op results (inputs, parameters, repeated outputs) are copied.
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    const Slot& s = slots[out_pos[k]];
    if (results[k].data() != s.data && s.size)
      std::memcpy(results[k].data(), s.data, s.size * sizeof(T));
  }
}

template <class T>
const std::vector<xt::xarray<T>>& Function<T>::run(std::initializer_list<Feed<T>> feeds) {
  return run(std::span<const Feed<T>>(feeds.begin(), feeds.size()));
}

template <class T>
const std::vector<xt::xarray<T>>& Function<T>::run(std::span<const Feed<T>> feeds) {
  impl_->bind(feeds);
  impl_->execute();
  return impl_->results;
}

template <class T>
const std::vector<xt::xarray<T>>& Function<T>::results() const {
  return impl_->results;
}
template <class T>
const std::vector<Expr<T>>& Function<T>::outputs() const {
  return impl_->outputs;
}
template <class T>
const std::vector<Expr<T>>& Function<T>::inputs() const {
  return impl_->inputs;
}
template <class T>
std::size_t Function<T>::num_steps() const {
  return impl_->steps.size();
}
template <class T>
std::size_t Function<T>::plan_count() const {
  return impl_->plans;
}
template <class T>
std::size_t Function<T>::workspace_bytes() const {
  return impl_->arena.size() * sizeof(T);
}

template class Function<float>;
template class Function<double>;

}  // namespace xgrad
