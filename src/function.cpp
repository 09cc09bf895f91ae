// Compiled execution. Planning (shapes, buffer offsets) happens when input shapes change;
// a run with unchanged shapes only binds pointers and calls kernels, so it allocates
// nothing.
#include "xgrad/function.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <map>

#include "kernels/loops.hpp"
#include "topo.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad {

template <class T>
struct Function<T>::Impl {
  enum : std::uint8_t {
    kOp = 1,        // an op result (not an input, parameter or constant)
    kConcrete = 2,  // the declared (static) shape has no open dimension
    kChanged = 4,   // the run-time shape differs from the declared one
    kAlias = 8,     // shares the buffer of another slot (a copy that was not needed)
  };
  struct Slot {
    T* data = nullptr;
    std::size_t size = 0;       // run-time element count
    const Dim* dims = nullptr;  // run-time shape: the node's own (declared) shape unless
    std::uint32_t rank = 0;     //   kChanged, then in a Bound, a leaf shape or the pool
    std::uint8_t flags = 0;
    std::span<const Dim> shape() const { return {dims, rank}; }
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
    std::uint32_t pos;           // slot of the input node
    const void* data = nullptr;  // null for an empty value: `given` says whether bound
    bool given = false;
    DType dtype = DType::float64;
    std::vector<T> converted;  // integer inputs, converted to T once per run
    Shape shape;               // run-time shape of the last binding
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
  std::vector<Shape> leaf_shapes;     // their run-time shapes, parallel to leaves
  std::vector<Bound> bound;
  std::vector<std::uint32_t> out_pos;
  // ---- execution schedule: single steps and row-tiled groups (see plan_groups)
  enum class Role : std::uint8_t { rows, alias, sum, mean, matmul_acc, sum_rows };
  struct Tile {  // a slot read or written a block of rows at a time
    std::uint32_t slot;
    std::size_t row;            // elements per row
    bool full = false;          // the rows live in the slot's own buffer
    std::int32_t same_as = -1;  // an alias member's output: the tile it shares
    T* scratch = nullptr;       // else a block of rows x row elements
    std::array<Dim, max_rank> dims{};
    std::uint32_t rank = 0;
  };
  struct Member {
    std::uint32_t step;
    Role role;
    std::uint32_t arg_begin;  // into Group::arg_tile, one per operand (-1: whole slot)
    std::int32_t out_tile;    // rows / alias roles
    double acc = 0;           // sum / mean roles
    bool matmul = false;      // the step is a MatmulOp
  };
  /// An operand or result of a member, resolved for one run: its block at row r0 starts
  /// at base + r0 * step (step 0: the same scratch rows every block, or a whole operand)
  /// and holds rows * row elements (row 0: a whole operand of `whole` elements).
  struct Ref {
    T* base = nullptr;
    std::size_t step = 0;
    std::size_t row = 0;
    std::size_t whole = 0;
    const Dim* dims = nullptr;
    std::uint32_t rank = 0;
    T* at(std::size_t r0) const { return base + r0 * step; }
    std::size_t size(std::size_t rows) const { return row ? rows * row : whole; }
  };
  /// How a member runs on a block: through the op's forward(), or by a kernel called
  /// directly, since on a block of a few rows forward()'s dispatch costs as much as the
  /// work (84 ns a block against 37 on the regression of bench/w2_full_linreg).
  enum class Kernel : std::uint8_t {
    forward,
    dots,
    axpys,
    sum,
    sum_rows,
    unary,
    binary,
    scalar_a,
    scalar_b
  };
  struct Call {
    const Step* st = nullptr;
    Member* m = nullptr;
    Kernel kernel = Kernel::forward;
    std::uint32_t nin = 0;
    std::array<Ref, 2> in{};  // group members are unary, binary, matmuls and reductions
    Ref out{};
    const MapKernels<T>* map = nullptr;
  };
  struct Group {
    std::size_t n = 0;     // rows in all
    std::size_t rows = 0;  // rows per tile
    std::vector<Member> members;
    std::vector<Tile> tiles;
    std::vector<std::int32_t> arg_tile;
    std::vector<std::uint32_t> pre;  // steps hoisted before the group
    std::size_t streamed = 0;        // bytes of operands read by rows from outside
    std::vector<Call> calls;         // the members that run, resolved once per run
  };
  struct Unit {
    bool group;
    std::uint32_t index;  // step or group
  };
  std::vector<Group> groups;
  std::vector<Unit> units;             // what execute() runs, in order
  std::vector<std::uint32_t> aliased;  // steps that do not run: their output shares a buffer
  std::vector<Dim> pool;               // run-time shapes of op results that differ from declared
  std::vector<Shape> scratch;          // operand shapes for infer_shape
  std::vector<xt::xarray<T>> results;
  std::vector<T> arena;
  std::size_t plans = 0;
  bool planned = false;

  void plan();
  void plan_shapes();
  void plan_groups(const std::vector<int>& out_index);
  void plan_buffers();
  void resolve_calls(Group& gr);
  void run_group(Group& gr, const Step*& current);
  /// With check_finite: throws naming the step and the flat index (from `first`) of the
  /// first non-finite value among data[0, n).
  void check_values(const Step& st, const T* data, std::size_t n, std::size_t first = 0) const {
    if (!opts.check_finite) return;
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(data[i])) {
        throw ValueError("check_finite: " + g->describe(st.id) + " produced " +
                         std::to_string(data[i]) + " at flat index " + std::to_string(first + i));
      }
    }
  }
  void bind(std::span<const Feed<T>> feeds);
  void bind_and_plan(std::span<const Feed<T>> feeds);
  void execute();
  std::span<const Dim> declared(std::uint32_t p) const { return g->node(order[p]).shape; }
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
  m.order = detail::execution_order(*m.g, roots);
  const std::size_t n = m.order.size();
  // Positions by node id, over the id range the order spans.
  std::vector<std::uint32_t> pos(
      n ? static_cast<std::size_t>(*std::max_element(m.order.begin(), m.order.end())) + 1 : 0, 0);
  m.slots.resize(n);
  m.steps.reserve(n);
  std::size_t max_in = 0, op_ranks = 0;
  for (std::size_t p = 0; p < n; ++p) {
    NodeId id = m.order[p];
    pos[id] = static_cast<std::uint32_t>(p);
    const Node<T>& nd = m.g->node(id);
    typename Impl::Slot& s = m.slots[p];
    s.dims = nd.shape.data();
    s.rank = static_cast<std::uint32_t>(nd.shape.size());
    if (std::find(nd.shape.begin(), nd.shape.end(), open) == nd.shape.end()) {
      s.flags |= Impl::kConcrete;
      s.size = shape_size(nd.shape);
    }
    switch (nd.kind) {
      case NodeKind::input:
        m.inputs.push_back(Expr<T>(m.g, id));
        m.bound.push_back({static_cast<std::uint32_t>(p), nullptr, false, nd.dtype, {}, {}});
        break;
      case NodeKind::parameter:
      case NodeKind::constant:
        m.leaves.push_back(static_cast<std::uint32_t>(p));
        break;
      case NodeKind::op: {
        s.flags |= Impl::kOp;
        typename Impl::Step st{nd.op,
                               &nd.attrs,
                               id,
                               static_cast<std::uint32_t>(p),
                               static_cast<std::uint32_t>(m.step_inputs.size()),
                               static_cast<std::uint32_t>(nd.inputs.size())};
        for (NodeId in : nd.inputs) m.step_inputs.push_back(pos[in]);
        max_in = std::max(max_in, nd.inputs.size());
        op_ranks += nd.shape.size();
        m.steps.push_back(st);
        break;
      }
    }
  }
  m.leaf_shapes.resize(m.leaves.size());
  m.pool.reserve(op_ranks);  // room for every run-time shape of the usual rank
  m.args.resize(max_in);
  m.scratch.resize(max_in);
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

template <class A, class B>
bool same_dims(const A& a, const B& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](auto x, auto y) {
           return static_cast<Dim>(x) == static_cast<Dim>(y);
         });
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

/// Free blocks of one arena region by length, each length with a stack of offsets: best
/// fit is one lower_bound, so planning stays O(n log n) for graphs of hundreds of
/// thousands of nodes, and a length whose stack runs empty keeps its entry (no allocation
/// churn when blocks of one size are freed and taken in turn). The list of the length last
/// used is found without a tree search.
struct Pool {
  std::map<std::size_t, std::vector<std::size_t>> free_blocks;  // length -> offsets
  std::size_t hot_len = 0;
  std::vector<std::size_t>* hot = nullptr;
  std::size_t top = 0;

  std::vector<std::size_t>& list_of(std::size_t len) {
    if (hot && len == hot_len) return *hot;
    hot_len = len;
    hot = &free_blocks[len];
    return *hot;
  }
  void release(std::size_t len, std::size_t off) { list_of(len).push_back(off); }
  std::size_t allocate(std::size_t need) {
    if (hot && need == hot_len && !hot->empty()) {  // an exact fit is the best fit
      std::size_t off = hot->back();
      hot->pop_back();
      return off;
    }
    for (auto it = free_blocks.lower_bound(need); it != free_blocks.end(); ++it) {
      if (it->second.empty()) continue;
      std::size_t off = it->second.back();
      it->second.pop_back();
      if (std::size_t rest = it->first - need) release(rest, off + need);
      return off;
    }
    std::size_t off = top;
    top += need;
    return off;
  }
};

/// Calls f(k, slot) for each operand k of step st whose value forward() reads: all but
/// OpTraits::shape_operand, which needs no buffer and, in a row-tiled group, no finished
/// value (shapes are known when planning).
template <class T, class Step, class F>
void for_value_operands(const Step& st, const std::vector<std::uint32_t>& step_inputs,
                        const OpTraits<T>& tr, F&& f) {
  for (std::uint32_t k = 0; k < st.in_count; ++k) {
    if (static_cast<int>(k) != tr.shape_operand) f(k, step_inputs[st.in_begin + k]);
  }
}

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
  for (Bound& b : bound) b.given = false;
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
    it->given = true;
    it->dtype = v.dtype();
    if (!same_dims(it->shape, vs)) {
      it->shape.assign(vs.begin(), vs.end());
      reshape = true;
    }
  }
  for (const Bound& b : bound) {
    if (!b.given) {
      throw BindingError("run: input " + g->describe(order[b.pos]) + " is not bound");
    }
  }
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    const xt::xarray<T>& v = g->node(order[leaves[i]]).value;
    if (!same_dims(leaf_shapes[i], v.shape())) {
      leaf_shapes[i].assign(v.shape().begin(), v.shape().end());
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
  plan_shapes();
  plan_buffers();
  planned = true;
}

// Run-time shapes of every slot. When no operand of a step changed shape, its output has
// its declared shape (infer_shape gave it for exactly those operands at build time) and
// nothing is computed or stored: graphs with static shapes plan in one cheap pass.
template <class T>
void Function<T>::Impl::plan_shapes() {
  auto set_leaf = [&](Slot& s, std::uint32_t p, const Shape& rt) {
    s.dims = rt.data();
    s.rank = static_cast<std::uint32_t>(rt.size());
    s.size = shape_size(rt);
    std::span<const Dim> d = declared(p);
    bool same = std::equal(rt.begin(), rt.end(), d.begin(), d.end());
    s.flags = static_cast<std::uint8_t>(same ? (s.flags & ~kChanged) : (s.flags | kChanged));
  };
  for (Bound& b : bound) {
    set_leaf(slots[b.pos], b.pos, b.shape);
    if (b.dtype != dtype_of<T>()) b.converted.resize(slots[b.pos].size);
  }
  for (std::size_t i = 0; i < leaves.size(); ++i)
    set_leaf(slots[leaves[i]], leaves[i], leaf_shapes[i]);

  pool.clear();
  std::vector<std::pair<std::uint32_t, std::size_t>> pooled;  // slot, offset in pool
  for (const Step& st : steps) {
    Slot& o = slots[st.out];
    bool changed_in = false;
    for (std::uint32_t k = 0; k < st.in_count; ++k)
      changed_in = changed_in || (slots[step_inputs[st.in_begin + k]].flags & kChanged);
    if (!changed_in && (o.flags & kConcrete)) {
      if (o.flags & kChanged) {  // back to the declared shape after a change
        std::span<const Dim> d = declared(st.out);
        o.dims = d.data();
        o.rank = static_cast<std::uint32_t>(d.size());
        o.size = shape_size(d);
        o.flags &= static_cast<std::uint8_t>(~kChanged);
      }
      continue;
    }
    for (std::uint32_t k = 0; k < st.in_count; ++k) {
      std::span<const Dim> d = slots[step_inputs[st.in_begin + k]].shape();
      scratch[k].assign(d.begin(), d.end());
    }
    Shape out;
    try {
      out = st.op->infer_shape(std::span<const Shape>(scratch.data(), st.in_count), *st.attrs);
    } catch (const std::invalid_argument& e) {
      std::string msg = std::string(st.op->name()) + " at " + g->describe(st.id) + ": " + e.what() +
                        "; operands at run time:";
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        std::uint32_t p = step_inputs[st.in_begin + k];
        msg += (k ? ", " : " ") + g->describe(order[p]) + " = " + shape_str(slots[p].shape());
      }
      throw ShapeError(msg);
    }
    std::span<const Dim> d = declared(st.out);
    o.size = shape_size(out);
    o.rank = static_cast<std::uint32_t>(out.size());
    if (std::equal(out.begin(), out.end(), d.begin(), d.end())) {
      o.dims = d.data();
      o.flags &= static_cast<std::uint8_t>(~kChanged);
    } else {
      // Later steps read this shape during this loop: point at the pool now, and re-point
      // every pooled shape whenever the pool moves.
      const Dim* before = pool.data();
      pooled.emplace_back(st.out, pool.size());
      pool.insert(pool.end(), out.begin(), out.end());
      if (pool.data() != before) {
        for (auto [p, off] : pooled) slots[p].dims = pool.data() + off;
      }
      o.dims = pool.data() + pooled.back().second;
      o.flags |= kChanged;
    }
  }
}

namespace {

// Row tiling: a group streams operands of at least this many bytes...
constexpr std::size_t kTileMinStreamBytes = std::size_t{2} << 20;
// ...in blocks of rows whose operands and results take about this many bytes (unless
// CompileOptions::tile_bytes says otherwise), so that a block read from memory by one step
// is still in the level-1 cache (48 KiB on current x86 cores) for the next, and the
// stream of the next block's rows (prefetched by the gemv kernels) is not left idle for
// long while a block is computed from cache. On the 100000 x 100 regression, A B A B in
// one process: 16 and 24 KiB 3.71-3.73 ms per step, 40 KiB 3.86, 8 KiB 3.98; at 8 KiB
// and below the per-block cost of the executor dominates.
constexpr std::size_t kTileBytes = std::size_t{16} << 10;
// Groups with matrix-matrix products take larger blocks, within the level-2 cache: BLAS
// is slow on a few rows. A layer 784 -> 16 in float with its gradients, 100000 rows: 118
// ms per run in 16 KiB blocks, 98 in 64 KiB, 95 in 256 KiB (untiled: 144 ms and 19 MB).
constexpr std::size_t kGemmTileBytes = std::size_t{256} << 10;

}  // namespace

// Row-tiled groups. Steps whose operands and results share a leading extent n (the rows
// of a large input) run block of rows by block of rows: a chain such as X @ w - y, its
// square, the mean, and X^T @ (...) for the gradient reads each block of X from memory
// once and finds it in cache for the later steps, instead of streaming all of X for each
// product. Members: elementwise ops and broadcasts over rows (operands are the same rows,
// or broadcast along them), X @ W with W whole, copies between equal sizes (shared
// tiles), and reductions over the rows that accumulate block by block: sums and means of
// all elements, X^T @ G, sum_to(G, shape(b)) for a row b. Steps that read no member's
// values (shapes are known) are hoisted before the group; a step that needs a finished
// member (a reduction's value, a whole tiled result) ends the group.
template <class T>
void Function<T>::Impl::plan_groups(const std::vector<int>& out_index) {
  groups.clear();
  units.clear();
  bool worth = false;
  for (const Bound& b : bound)
    worth = worth || slots[b.pos].size * sizeof(T) >= kTileMinStreamBytes;
  for (std::uint32_t p : leaves) worth = worth || slots[p].size * sizeof(T) >= kTileMinStreamBytes;
  if (!worth || !opts.tile_rows) {
    for (std::size_t st = 0; st < steps.size(); ++st)
      units.push_back({false, static_cast<std::uint32_t>(st)});
    return;
  }
  std::vector<std::int32_t> gid(slots.size(), -1);  // group a slot is a member result of
  std::vector<std::uint8_t> reduced(slots.size(), 0);
  std::int32_t cur = -1;  // open group
  auto rows_of = [&](std::uint32_t p) { return slots[p].rank ? slots[p].dims[0] : Dim{-1}; };
  auto flush = [&] {
    if (cur < 0) return;
    Group& gr = groups[static_cast<std::size_t>(cur)];
    for (std::uint32_t st : gr.pre) units.push_back({false, st});
    if (gr.members.size() >= 2 && gr.streamed >= kTileMinStreamBytes) {
      units.push_back({true, static_cast<std::uint32_t>(cur)});
    } else {
      for (const Member& m : gr.members) units.push_back({false, m.step});
      gr.members.clear();
    }
    cur = -1;
  };
  for (std::size_t si = 0; si < steps.size(); ++si) {
    const Step& st = steps[si];
    const std::uint32_t o = st.out;
    const OpTraits<T>& tr = st.op->traits();
    auto in = [&](std::uint32_t k) { return step_inputs[st.in_begin + k]; };
    auto member = [&](std::uint32_t p) { return cur >= 0 && gid[p] == cur; };
    bool reads_member = false, reads_reduced = false;
    for_value_operands(st, step_inputs, tr, [&](std::uint32_t, std::uint32_t p) {
      reads_member = reads_member || member(p);
      reads_reduced = reads_reduced || (member(p) && reduced[p]);
    });
    if (cur >= 0 && tr.shape_only) {  // reads shapes only: may run before the group
      groups[static_cast<std::size_t>(cur)].pre.push_back(static_cast<std::uint32_t>(si));
      continue;
    }
    // Role of this step in a group over n rows, or none.
    auto role_in = [&](Dim n, Role* role, std::size_t* streamed) {
      *streamed = 0;
      if (reads_reduced || n <= 0) return false;
      const Slot& os = slots[o];
      auto tiled = [&](std::uint32_t p, std::uint32_t rank) {  // the same rows as the output
        if (slots[p].rank != rank || rows_of(p) != n) return false;
        if (!member(p)) *streamed += slots[p].size * sizeof(T);
        return !member(p) || !reduced[p];
      };
      if (tr.copy_when_same_size && st.in_count >= 1 && member(in(0)) && !reduced[in(0)] &&
          slots[in(0)].size == os.size && os.rank >= 1 && os.dims[0] == n) {
        *role = Role::alias;  // (reads_reduced, checked above, covers the other operands)
        return true;
      }
      if (tr.rows == RowRole::elementwise) {
        // Every operand read is the same rows, or a whole value repeated along them.
        if (os.rank == 0 || os.dims[0] != n) return false;
        bool fits = true;
        for_value_operands(st, step_inputs, tr, [&](std::uint32_t, std::uint32_t p) {
          const bool whole = !member(p) && (slots[p].rank < os.rank || rows_of(p) == 1);
          fits = fits && (whole || tiled(p, os.rank));
        });
        if (!fits) return false;
        *role = Role::rows;
        return true;
      }
      if (tr.rows == RowRole::sum_to && st.in_count == 2 && slots[in(0)].rank >= 2 &&
          tiled(in(0), slots[in(0)].rank) &&
          os.size == slots[in(0)].size / static_cast<std::size_t>(n) &&
          detail::is_row_of(os.shape(), slots[in(0)].shape())) {
        *role = Role::sum_rows;  // the rows summed into one: a bias gradient
        return true;
      }
      if (tr.rows == RowRole::matmul && st.in_count == 2) {
        const MatmulAttrs a = matmul_attrs(*st.attrs);
        if (!a.transpose_a && os.rank >= 1 && os.dims[0] == n && tiled(in(0), 2) &&
            !member(in(1))) {
          *role = Role::rows;
          return true;
        }
        if (a.transpose_a && !a.transpose_b && tiled(in(0), 2) &&
            (tiled(in(1), 1) || tiled(in(1), 2))) {
          *role = Role::matmul_acc;
          return true;
        }
        return false;
      }
      if ((tr.rows == RowRole::sum || tr.rows == RowRole::mean) && st.in_count == 1 &&
          os.rank == 0 && os.size == 1 && tiled(in(0), slots[in(0)].rank) &&
          slots[in(0)].rank >= 1) {
        *role = tr.rows == RowRole::sum ? Role::sum : Role::mean;
        return true;
      }
      return false;
    };
    Role role{};
    std::size_t streamed = 0;
    if (cur >= 0 &&
        role_in(static_cast<Dim>(groups[static_cast<std::size_t>(cur)].n), &role, &streamed)) {
      // joins the open group
    } else if (cur >= 0 && !reads_member) {
      groups[static_cast<std::size_t>(cur)].pre.push_back(static_cast<std::uint32_t>(si));
      continue;
    } else {
      flush();
      // A group starts at a step over the rows of a large operand it streams.
      const Slot& os = slots[o];
      bool starts = os.rank >= 1 && os.dims[0] >= 64 && role_in(os.dims[0], &role, &streamed) &&
                    role == Role::rows && streamed >= kTileMinStreamBytes;
      if (!starts) {
        units.push_back({false, static_cast<std::uint32_t>(si)});
        continue;
      }
      groups.emplace_back();
      groups.back().n = static_cast<std::size_t>(os.dims[0]);
      cur = static_cast<std::int32_t>(groups.size() - 1);
    }
    Group& gr = groups[static_cast<std::size_t>(cur)];
    gr.members.push_back(
        {static_cast<std::uint32_t>(si), role, 0, -1, 0, tr.rows == RowRole::matmul});
    gr.streamed += streamed;
    gid[o] = cur;
    reduced[o] = role != Role::rows && role != Role::alias;
  }
  flush();

  // Tiles of each group that runs as one: a rows x row block per slot read or written by
  // rows; results read after the group (or returned) keep a full buffer.
  std::vector<std::uint32_t> unit_of(slots.size(), ~std::uint32_t{0});  // last reader
  for (std::size_t u = 0; u < units.size(); ++u) {
    auto read = [&](const Step& st) {
      for_value_operands(st, step_inputs, st.op->traits(), [&](std::uint32_t, std::uint32_t p) {
        unit_of[p] = static_cast<std::uint32_t>(u);
      });
    };
    if (!units[u].group) {
      // A step that reads shapes only (size, zeros_like) needs no buffer of its operand.
      if (!steps[units[u].index].op->traits().shape_only) read(steps[units[u].index]);
    } else {
      for (const Member& m : groups[units[u].index].members) {
        const Step& st = steps[m.step];
        for_value_operands(st, step_inputs, st.op->traits(), [&](std::uint32_t, std::uint32_t p) {
          if (gid[p] != static_cast<std::int32_t>(units[u].index))
            unit_of[p] = static_cast<std::uint32_t>(u);
        });
      }
    }
  }
  for (std::size_t u = 0; u < units.size(); ++u) {
    if (!units[u].group) continue;
    Group& gr = groups[units[u].index];
    const std::int32_t id = static_cast<std::int32_t>(units[u].index);
    std::vector<std::pair<std::uint32_t, std::int32_t>> index;  // slot -> tile
    auto tile_of = [&](std::uint32_t p) -> std::int32_t {
      for (auto [q, t] : index) {
        if (q == p) return t;
      }
      return -1;
    };
    auto add_tile = [&](std::uint32_t p, bool full) {
      Tile t;
      t.slot = p;
      t.row = slots[p].size / gr.n;
      t.full = full;
      t.rank = slots[p].rank;
      std::copy(slots[p].dims, slots[p].dims + slots[p].rank, t.dims.begin());
      gr.tiles.push_back(t);
      index.emplace_back(p, static_cast<std::int32_t>(gr.tiles.size() - 1));
      return static_cast<std::int32_t>(gr.tiles.size() - 1);
    };
    for (Member& m : gr.members) {
      const Step& st = steps[m.step];
      m.arg_begin = static_cast<std::uint32_t>(gr.arg_tile.size());
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        std::uint32_t p = step_inputs[st.in_begin + k];
        std::int32_t t = tile_of(p);
        const OpTraits<T>& tr = st.op->traits();
        bool rows_operand =
            static_cast<int>(k) != tr.shape_operand &&
            (gid[p] == id
                 ? !reduced[p]
                 : slots[p].rank >= 1 && rows_of(p) == static_cast<Dim>(gr.n) &&
                       (m.role != Role::rows || tr.rows != RowRole::matmul || k == 0) &&
                       (tr.rows != RowRole::elementwise || slots[p].rank == slots[st.out].rank));
        if (t < 0 && rows_operand) t = add_tile(p, gid[p] != id);
        gr.arg_tile.push_back(rows_operand ? t : -1);
      }
      if (m.role == Role::rows || m.role == Role::alias) {
        bool escapes = out_index[st.out] >= 0 || unit_of[st.out] != ~std::uint32_t{0};
        if (m.role == Role::alias && escapes) m.role = Role::rows;  // copy into its full buffer
        m.out_tile = add_tile(st.out, escapes);
        if (m.role == Role::alias)
          gr.tiles[static_cast<std::size_t>(m.out_tile)].same_as = gr.arg_tile[m.arg_begin];
      }
    }
    std::size_t row_bytes = 0;
    for (const Tile& t : gr.tiles) row_bytes += t.row * sizeof(T);
    bool gemm = false;  // a product with a matrix right operand (X @ W, X^T @ G)
    for (const Member& m : gr.members) {
      const Step& st = steps[m.step];
      gemm = gemm || (m.matmul && slots[step_inputs[st.in_begin + 1]].rank == 2);
    }
    const std::size_t tile_bytes = opts.tile_bytes ? opts.tile_bytes
                                   : gemm          ? kGemmTileBytes
                                                   : kTileBytes;
    std::size_t rows =
        std::clamp<std::size_t>(tile_bytes / std::max<std::size_t>(row_bytes, 1), 1, gr.n);
    gr.rows = rows >= 16 ? rows / 8 * 8 : rows;
    gr.calls.reserve(gr.members.size());
  }
}

// Buffers. Outputs write straight into the result arrays; a copy whose output has its
// operand's size (reshape, squeeze, sum_to between equal shapes...) is not executed and
// its output shares the operand's buffer; other intermediates share one arena, each block
// reused once its last reader has run. Tiles of a row-tiled group that nothing reads
// after it take a block of rows only, for the time of the group.
template <class T>
void Function<T>::Impl::plan_buffers() {
  std::vector<int> out_index(slots.size(), -1);
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    if (out_index[out_pos[k]] < 0) out_index[out_pos[k]] = static_cast<int>(k);
  }
  plan_groups(out_index);
  // Buffer owner of each slot: itself, or the slot an alias reads.
  std::vector<std::uint32_t> owner(slots.size());
  for (std::size_t p = 0; p < slots.size(); ++p) owner[p] = static_cast<std::uint32_t>(p);
  aliased.clear();
  for (Slot& sl : slots) sl.flags &= static_cast<std::uint8_t>(~kAlias);
  {
    std::size_t kept = 0;
    for (const Unit& u : units) {
      if (!u.group) {
        const Step& st = steps[u.index];
        Slot& o = slots[st.out];
        if (out_index[st.out] < 0 && st.in_count >= 1 &&
            slots[step_inputs[st.in_begin]].size == o.size && st.op->traits().copy_when_same_size) {
          o.flags |= kAlias;
          owner[st.out] = owner[step_inputs[st.in_begin]];
          aliased.push_back(u.index);
          continue;
        }
      }
      units[kept++] = u;
    }
    units.resize(kept);
  }
  // What each unit reads (through aliases), writes into full buffers, and needs only
  // while it runs (tiles).
  auto for_reads = [&](const Unit& u, auto&& f) {
    if (!u.group) {
      const Step& st = steps[u.index];
      for_value_operands(st, step_inputs, st.op->traits(),
                         [&](std::uint32_t, std::uint32_t p) { f(owner[p]); });
      return;
    }
    const Group& gr = groups[u.index];
    for (const Member& m : gr.members) {
      const Step& st = steps[m.step];
      for_value_operands(st, step_inputs, st.op->traits(), [&](std::uint32_t, std::uint32_t p) {
        bool inside = false;
        for (const Member& m2 : gr.members) inside = inside || steps[m2.step].out == p;
        if (!inside) f(owner[p]);
      });
    }
  };
  std::vector<std::uint32_t> last_use(slots.size(), 0);
  for (std::size_t u = 0; u < units.size(); ++u) {
    for_reads(units[u], [&](std::uint32_t b) {
      last_use[b] = std::max(last_use[b], static_cast<std::uint32_t>(u));
    });
  }
  // Two regions: blocks of a cache line and more, each starting on a cache line, and
  // smaller values (scalars, short vectors) packed at their natural alignment after them,
  // so a chain of a hundred thousand live scalars takes 8 bytes each, not 64.
  const std::size_t quantum = std::max<std::size_t>(1, kAlign / sizeof(T));
  constexpr std::size_t kSmall = std::size_t{1} << 63;  // offset flag: in the small region
  Pool big, small;
  auto rounded = [&](std::size_t n) {
    return std::max<std::size_t>(1, (n + quantum - 1) / quantum) * quantum;
  };
  auto allocate = [&](std::size_t n, std::size_t* len) {
    if (n >= quantum) {
      *len = rounded(n);
      return big.allocate(*len);
    }
    *len = std::bit_ceil(std::max<std::size_t>(n, 1));
    return small.allocate(*len) | kSmall;
  };
  auto release = [&](std::size_t len, std::size_t off) {
    if (off & kSmall) {
      small.release(len, off & ~kSmall);
    } else {
      big.release(len, off);
    }
  };
  std::vector<std::size_t> offset(slots.size(), 0);
  std::vector<std::size_t> length(slots.size(), 0);
  auto define = [&](std::uint32_t o) {
    if (out_index[o] < 0 && !(slots[o].flags & kAlias))
      offset[o] = allocate(slots[o].size, &length[o]);
  };
  std::vector<std::pair<std::size_t, std::size_t>> tile_blocks;  // group, tile -> offset
  std::vector<std::size_t> tile_offsets;
  for (std::size_t u = 0; u < units.size(); ++u) {
    std::vector<std::pair<std::size_t, std::size_t>> scratch;  // offset, length
    if (!units[u].group) {
      define(steps[units[u].index].out);
    } else {
      Group& gr = groups[units[u].index];
      for (const Member& m : gr.members) {
        std::uint32_t o = steps[m.step].out;
        if (m.role != Role::rows && m.role != Role::alias) define(o);
      }
      for (Tile& t : gr.tiles) {
        if (t.full && slots[t.slot].flags & kOp) {
          bool member_result = false;
          for (const Member& m : gr.members)
            member_result = member_result || steps[m.step].out == t.slot;
          if (member_result) define(t.slot);
        } else if (!t.full && t.same_as < 0) {
          std::size_t len = 0;
          std::size_t off = allocate(gr.rows * t.row, &len);
          scratch.emplace_back(off, len);
          tile_blocks.emplace_back(units[u].index, static_cast<std::size_t>(&t - gr.tiles.data()));
          tile_offsets.push_back(scratch.back().first);
        }
      }
    }
    for (auto [off, len] : scratch) release(len, off);
    for_reads(units[u], [&](std::uint32_t b) {
      if (length[b] && last_use[b] == u) {
        release(length[b], offset[b]);
        length[b] = 0;
      }
    });
  }
  const std::size_t big_top = rounded(big.top);
  arena.assign(big_top + small.top + quantum, T(0));
  // Align the arena base so every block starts on a cache line.
  T* base = arena.data() +
            (kAlign - reinterpret_cast<std::uintptr_t>(arena.data()) % kAlign) % kAlign / sizeof(T);
  auto at = [&](std::size_t off) {
    return off & kSmall ? base + big_top + (off & ~kSmall) : base + off;
  };
  for (const Step& st : steps) {
    Slot& o = slots[st.out];
    if (out_index[st.out] >= 0) {
      xt::xarray<T>& r = results[static_cast<std::size_t>(out_index[st.out])];
      if (!same_dims(o.shape(), r.shape())) {
        std::vector<std::size_t> us(o.dims, o.dims + o.rank);
        r.resize(us);
      }
      o.data = r.data();
    } else if (!(o.flags & kAlias)) {
      o.data = at(offset[st.out]);
    }
  }
  for (std::size_t i = 0; i < tile_blocks.size(); ++i) {
    groups[tile_blocks[i].first].tiles[tile_blocks[i].second].scratch = at(tile_offsets[i]);
  }
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    const Slot& s = slots[out_pos[k]];
    if (!(s.flags & kOp) || out_index[out_pos[k]] != static_cast<int>(k)) {
      std::vector<std::size_t> us(s.dims, s.dims + s.rank);
      results[k].resize(us);
    }
  }
}

// Operands and results of the members of a group for this run (inputs are rebound between
// runs), and the kernel each member runs on a block.
template <class T>
void Function<T>::Impl::resolve_calls(Group& gr) {
  gr.calls.clear();
  for (Tile& t : gr.tiles) t.dims[0] = static_cast<Dim>(gr.rows);
  auto tile_ref = [&](std::int32_t ti) {
    const Tile* t = &gr.tiles[static_cast<std::size_t>(ti)];
    Ref r;
    r.dims = t->dims.data();
    r.rank = t->rank;
    r.row = t->row;
    while (t->same_as >= 0) t = &gr.tiles[static_cast<std::size_t>(t->same_as)];
    r.base = t->full ? slots[t->slot].data : t->scratch;
    r.step = t->full ? t->row : 0;
    return r;
  };
  auto slot_ref = [&](const Slot& s) {
    Ref r;
    r.base = s.data;
    r.whole = s.size;
    r.dims = s.dims;
    r.rank = s.rank;
    return r;
  };
  for (Member& m : gr.members) {
    m.acc = 0;
    if (m.role == Role::alias) continue;
    const Step& st = steps[m.step];
    Call c;
    c.st = &st;
    c.m = &m;
    c.nin = st.in_count;
    if (c.nin > c.in.size()) {  // plan_groups admits no such member
      throw std::logic_error("row tiling: " + g->describe(st.id) + " has " + std::to_string(c.nin) +
                             " operands");
    }
    for (std::uint32_t k = 0; k < st.in_count; ++k) {
      std::int32_t ti = gr.arg_tile[m.arg_begin + k];
      c.in[k] = ti >= 0 ? tile_ref(ti) : slot_ref(slots[step_inputs[st.in_begin + k]]);
    }
    Slot& o = slots[st.out];
    c.out = m.role == Role::rows ? tile_ref(m.out_tile) : slot_ref(o);
    if (m.role == Role::matmul_acc || m.role == Role::sum_rows)
      std::fill(o.data, o.data + o.size, T(0));
    // Matrix-vector products by the kernels MatmulOp itself would pick.
    const bool gemv = m.matmul && c.in[0].rank == 2 && c.in[0].row && c.in[1].rank == 1 &&
                      kernels::gemv_own<T>(c.in[0].row);
    if (m.role == Role::rows && gemv && !matmul_attrs(*st.attrs).transpose_a)
      c.kernel = Kernel::dots;
    if (m.role == Role::matmul_acc && gemv) c.kernel = Kernel::axpys;
    if (m.role == Role::sum || m.role == Role::mean) c.kernel = Kernel::sum;
    if (m.role == Role::sum_rows) c.kernel = Kernel::sum_rows;
    const MapKernels<T>& mk = st.op->traits().map;
    if (m.role == Role::rows && !m.matmul && (mk.unary || mk.binary)) {
      // Operands of the output's rows, or a single value: the op's loops without its
      // broadcast dispatch. Anything else (a broadcast row) goes through forward().
      c.map = &mk;
      auto rowwise = [&](const Ref& r) { return r.row && r.row == c.out.row; };
      auto scalar = [&](const Ref& r) { return !r.row && r.whole == 1; };
      if (c.nin == 1 && rowwise(c.in[0]) && c.map->unary) c.kernel = Kernel::unary;
      if (c.nin == 2 && c.map->binary) {
        if (rowwise(c.in[0]) && rowwise(c.in[1])) c.kernel = Kernel::binary;
        if (scalar(c.in[0]) && rowwise(c.in[1])) c.kernel = Kernel::scalar_a;
        if (rowwise(c.in[0]) && scalar(c.in[1])) c.kernel = Kernel::scalar_b;
      }
    }
    gr.calls.push_back(c);
  }
}

template <class T>
void Function<T>::Impl::run_group(Group& gr, const Step*& current) {
  resolve_calls(gr);
  const bool check = opts.check_finite;
  for (std::size_t r0 = 0; r0 < gr.n; r0 += gr.rows) {
    const std::size_t rows = std::min(gr.rows, gr.n - r0);
    if (rows != gr.rows) {  // the last block
      for (Tile& t : gr.tiles) t.dims[0] = static_cast<Dim>(rows);
    }
    for (Call& c : gr.calls) {
      current = c.st;
      const std::size_t n = c.out.size(rows);
      switch (c.kernel) {
        case Kernel::dots:
          kernels::gemv_dots<T>(c.in[0].at(r0), rows, c.in[0].row, c.in[1].base, T(0),
                                c.out.at(r0));
          break;
        case Kernel::axpys:
          kernels::gemv_axpys<T>(c.in[0].at(r0), rows, c.in[0].row, c.in[1].at(r0), T(1),
                                 c.out.base);
          continue;
        case Kernel::sum: {
          // In double and in row-major order, as the reduction over the whole array sums:
          // tiled and untiled runs give the same value.
          const T* x = c.in[0].at(r0);
          double acc = c.m->acc;
          for (std::size_t i = 0, len = c.in[0].size(rows); i < len; ++i)
            acc += static_cast<double>(x[i]);
          c.m->acc = acc;
          continue;
        }
        case Kernel::sum_rows: {
          // Row after row into the result, in T, as sum_to over the whole array adds them.
          const T* x = c.in[0].at(r0);
          const std::size_t len = c.in[0].row;
          T* acc = c.out.base;
          for (std::size_t r = 0; r < rows; ++r, x += len) {
            for (std::size_t j = 0; j < len; ++j) acc[j] += x[j];
          }
          continue;
        }
        case Kernel::unary:
          c.map->unary(c.in[0].at(r0), c.out.at(r0), n, *c.st->attrs);
          break;
        case Kernel::binary:
          c.map->binary(c.in[0].at(r0), c.in[1].at(r0), c.out.at(r0), n);
          break;
        case Kernel::scalar_a:
          c.map->scalar_a(c.in[0].base[0], c.in[1].at(r0), c.out.at(r0), n);
          break;
        case Kernel::scalar_b:
          c.map->scalar_b(c.in[0].at(r0), c.in[1].base[0], c.out.at(r0), n);
          break;
        case Kernel::forward: {
          std::array<ConstTensor<T>, 2> a;
          for (std::uint32_t k = 0; k < c.nin; ++k) {
            const Ref& r = c.in[k];
            a[k] = ConstTensor<T>{r.at(r0), {r.dims, r.rank}, r.size(rows)};
          }
          Tensor<T> out{c.out.at(r0), {c.out.dims, c.out.rank}, n};
          if (c.m->role == Role::matmul_acc) {
            const MatmulAttrs ma = matmul_attrs(*c.st->attrs);
            kernels::matmul(a[0], a[1], out, ma.transpose_a, ma.transpose_b, T(1));
            continue;
          }
          c.st->op->forward(std::span<const ConstTensor<T>>(a.data(), c.nin), out, *c.st->attrs);
          break;
        }
      }
      if (check) check_values(*c.st, c.out.at(r0), n, r0 * c.out.row);
    }
  }
  // Results accumulated over the blocks are final only now: set and check them.
  for (Member& m : gr.members) {
    if (m.role == Role::rows || m.role == Role::alias) continue;
    const Step& st = steps[m.step];
    current = &st;
    Slot& o = slots[st.out];
    if (m.role == Role::sum || m.role == Role::mean) {
      double total = static_cast<double>(slots[step_inputs[st.in_begin]].size);
      o.data[0] = static_cast<T>(m.role == Role::mean ? m.acc / total : m.acc);
    }
    check_values(st, o.data, o.size);
  }
}

template <class T>
void Function<T>::Impl::execute() {
  // Alias outputs take their operand's buffer, which is only known once inputs are bound.
  for (std::uint32_t si : aliased)
    slots[steps[si].out].data = slots[step_inputs[steps[si].in_begin]].data;
  const Step* current = nullptr;
  try {
    for (const Unit& u : units) {
      if (u.group) {
        run_group(groups[u.index], current);
        continue;
      }
      const Step& st = steps[u.index];
      current = &st;
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        const Slot& s = slots[step_inputs[st.in_begin + k]];
        args[k] = ConstTensor<T>{s.data, s.shape(), s.size};
      }
      Slot& o = slots[st.out];
      st.op->forward(std::span<const ConstTensor<T>>(args.data(), st.in_count),
                     Tensor<T>{o.data, o.shape(), o.size}, *st.attrs);
      check_values(st, o.data, o.size);
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
