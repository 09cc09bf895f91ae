// The compiled plan every pass of the executor reads and writes: a slot per node (its
// run-time shape and buffer), the op nodes as steps in topological order, the bound
// inputs, and the schedule a run executes (units: single steps and row-tiled groups).
// Keeping the data in one place and the passes in their own files (plan.cpp lists their
// order) lets each pass be read without the others. Internal to src/.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../huge_pages.hpp"
#include "xgrad/function.hpp"

namespace xgrad::exec {

/// Slot flags.
enum : std::uint8_t {
  kOp = 1,        ///< an op result (not an input, parameter or constant)
  kConcrete = 2,  ///< the declared (static) shape has no open dimension
  kChanged = 4,   ///< the run-time shape differs from the declared one
  kAlias = 8,     ///< shares the buffer of another slot (a copy that was not needed)
};

/// A node's value during a run.
template <class T>
struct Slot {
  T* data = nullptr;
  std::size_t size = 0;       // run-time element count
  const Dim* dims = nullptr;  // run-time shape: the node's own (declared) shape unless
  std::uint32_t rank = 0;     //   kChanged, then in a Bound, a leaf shape or the pool
  std::uint8_t flags = 0;
  std::span<const Dim> shape() const { return {dims, rank}; }
};

/// How execute() runs a step (calls.cpp): a direct call of the kernel forward() would reach
/// for these operands, decided once per plan, or forward() itself.
enum class Call : std::uint8_t {
  forward,   ///< Op::forward on views of the operands
  unary,     ///< MapKernels::unary, operand of the output's size
  binary,    ///< MapKernels::binary, both operands of the output's size
  scalar_a,  ///< MapKernels::scalar_a, operand 0 a single value
  scalar_b,  ///< MapKernels::scalar_b, operand 1 a single value
  dots,      ///< kernels::gemv_dots (GemvForm::dots)
  axpys,     ///< kernels::gemv_axpys (GemvForm::axpys)
  sum,       ///< the whole-tensor sum in one part
  mean,      ///< the whole-tensor mean in one part
};

/// An op node: what to call and where its operands (Plan::step_inputs) and result live.
template <class T>
struct Step {
  const Op<T>* op;
  const OpTraits<T>* traits;  // op->traits(), read once: the passes consult it per step
  const Attrs* attrs;
  NodeId id;
  std::uint32_t out;
  std::uint32_t in_begin;
  std::uint32_t in_count;
  // Filled by plan_calls().
  Call call = Call::forward;
  bool matrix_first = true;            // dots, axpys: operand 0 is the matrix
  bool one_part = false;               // the elementwise calls: too small to split
  const MapKernels<T>* map = nullptr;  // the elementwise calls
  std::size_t rows = 0, cols = 0;      // dots, axpys: the matrix
};

/// An input node and its value in the current run.
template <class T>
struct Bound {
  std::uint32_t pos;           // slot of the input node
  const void* data = nullptr;  // null for an empty value: `given` says whether bound
  bool given = false;
  DType dtype = DType::float64;
  std::vector<T> converted;  // integer inputs, converted to T once per run
  Shape shape;               // run-time shape of the last binding
};

/// What execute() runs next: one step, or a row-tiled group (tiling.cpp).
struct Unit {
  bool group;
  std::uint32_t index;  // into Plan::steps or Plan::group_buffers
};

template <class T>
struct Plan;

// ---- Row tiling (CompileOptions::tile_rows, tiling.cpp): the only entry points the other
// passes use. Without it, the schedule is schedule_steps(): every step a unit.

/// What a row-tiled group needs from the buffer pass, so that pass knows groups only as
/// lists of slots and block sizes.
template <class T>
struct GroupBuffers {
  static constexpr std::uint32_t kBlock = ~std::uint32_t{0};
  /// A result that needs its full buffer (a reduction, a result read after the group),
  /// or (slot kBlock) a block of `elements` that lives only while the group runs. The
  /// order is the order of allocation, which decides the offsets.
  struct Need {
    std::uint32_t slot;
    std::size_t elements;
  };
  std::vector<std::uint32_t> reads;  // slots the members read from outside the group
  std::vector<Need> needs;
  std::vector<T*> blocks;  // filled by the buffer pass, one per block need, in order
};

/// The row-tiled groups of a plan (tiling.hpp, private to tiling.cpp).
template <class T>
struct RowGroups;
/// Frees RowGroups where its type is complete.
template <class T>
struct RowGroupsDelete {
  void operator()(RowGroups<T>* r) const noexcept;
};
/// Owner of a plan's RowGroups.
template <class T>
using RowGroupsPtr = std::unique_ptr<RowGroups<T>, RowGroupsDelete<T>>;

/// Schedules p.steps into p.units, chains over the rows of a large operand as groups, and
/// fills p.group_buffers (one per group) and p.tiled_steps. Runs after the shapes pass and
/// before the buffer pass. Returns false, leaving p.units alone, when no input, parameter
/// or constant is large enough for tiling to pay.
template <class T>
bool plan_groups(Plan<T>& p);

/// Runs group `group` block of rows by block of rows; `current` follows the member running
/// (for error messages).
template <class T>
void run_group(Plan<T>& p, std::uint32_t group, const Step<T>*& current);

// ----

/// Calls f(k, slot) for each operand k of step st whose value forward() reads: all but
/// OpTraits::shape_operand, which needs no buffer and, in a row-tiled group, no finished
/// value (shapes are known when planning).
template <class T, class F>
void for_value_operands(const Step<T>& st, const detail::big_vector<std::uint32_t>& step_inputs,
                        const OpTraits<T>& tr, F&& f) {
  for (std::uint32_t k = 0; k < st.in_count; ++k) {
    if (static_cast<int>(k) != tr.shape_operand) f(k, step_inputs[st.in_begin + k]);
  }
}

/// Equal extents, whatever the integer types.
template <class A, class B>
bool same_dims(const A& a, const B& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](auto x, auto y) {
           return static_cast<Dim>(x) == static_cast<Dim>(y);
         });
}

/// A compiled Function's state. Built once by the constructor; plan() re-runs the planning
/// passes when shapes change; bind(), execute() and write_updates() make a run.
template <class T>
struct Plan {
  Plan(std::vector<Expr<T>> outputs, CompileOptions opts,
       std::vector<Update<T>> updates);  // plan.cpp

  Graph<T>* g = nullptr;
  std::weak_ptr<const void> graph_alive;  // expires with the graph (Graph::liveness)
  std::vector<Expr<T>> outputs;
  std::vector<Update<T>> updates;
  std::vector<Expr<T>> inputs;
  CompileOptions opts;
  detail::big_vector<NodeId> order;
  detail::big_vector<Slot<T>> slots;
  detail::big_vector<Step<T>> steps;
  detail::big_vector<std::uint32_t> step_inputs;
  std::vector<ConstTensor<T>> args;   // operands of the step being run
  std::vector<std::uint32_t> leaves;  // parameter and constant slots
  std::vector<Shape> leaf_shapes;     // their run-time shapes, parallel to leaves
  // Their values, parallel to leaves: a parameter's or constant's array is created with
  // its node and never moves, so a run reads it without a node lookup.
  std::vector<const xt::xarray<T>*> leaf_values;
  std::vector<Bound<T>> bound;
  // The feeds of the last successful binding, in order: each input's id and its index in
  // `bound` (kUnused: an input these outputs do not read). A run whose feeds name the same
  // inputs in the same order, with the dtypes and shapes bound last time, has passed every
  // check already and only takes the new data pointers (bind.cpp).
  static constexpr std::uint32_t kUnused = ~std::uint32_t{0};
  std::vector<std::pair<NodeId, std::uint32_t>> last_feeds;
  // Results: the user's outputs, then the update values (computed as outputs, so each
  // keeps a buffer of its own until the run ends), numbered in that order.
  std::vector<std::uint32_t> out_pos;  // slot of each result
  detail::big_vector<int> out_index;   // per slot: the first result it is, or -1

  // Schedule (plan_groups or schedule_steps, then plan_buffers).
  detail::big_vector<Unit> units;              // what execute() runs, in order
  std::vector<GroupBuffers<T>> group_buffers;  // per row-tiled group
  RowGroupsPtr<T> row_groups;                  // tiling.cpp's own state
  std::size_t tiled_steps = 0;                 // members of the row-tiled groups
  std::size_t direct_steps = 0;                // units run by direct calls (plan_calls)
  std::vector<std::uint32_t> aliased;          // steps that do not run: their output
                                               //   shares its operand's buffer
  std::vector<Dim> pool;                       // run-time shapes that differ from declared
  std::vector<Shape> operand_shapes;           // for infer_shape
  std::vector<xt::xarray<T>> results;          // the user's outputs
  std::vector<xt::xarray<T>> update_values;    // the updates' values, after them
  detail::big_vector<T> arena;
  std::size_t plans = 0;
  bool planned = false;
  int threads = 0;  // num_threads() when planned: row-tiled groups keep blocks per thread

  /// Binds the feeds (and leaf values), re-planning when a shape changed (bind.cpp).
  void bind(std::span<const Feed<T>> feeds);
  /// The planning passes, in order (plan.cpp).
  void plan();
  /// Run-time shapes (shapes.cpp).
  void plan_shapes();
  /// Every step a unit of its own: the schedule without row tiling (plan.cpp).
  void schedule_steps();
  /// Aliases, arena offsets and result arrays for the schedule (buffers.cpp).
  void plan_buffers();
  /// How each step runs: Step::call and what it needs (calls.cpp).
  void plan_calls();
  /// Runs the schedule (execute.cpp).
  void execute();
  /// Runs step st into its output slot o through Op::forward (execute.cpp); out of the
  /// executor's loop, whose direct calls need fewer registers.
  [[gnu::noinline]] void run_forward(const Step<T>& st, Slot<T>& o);
  /// Copies each update's value into its target, after a successful execute()
  /// (updates.cpp).
  void write_updates();

  /// Result k: an output, or (k >= outputs.size()) an update's value.
  xt::xarray<T>& result(std::size_t k) {
    return k < results.size() ? results[k] : update_values[k - results.size()];
  }

  std::span<const Dim> declared(std::uint32_t p) const { return g->node(order[p]).shape; }
  /// With check_finite: throws naming the step and the flat index (from `first`) of the
  /// first non-finite value among data[0, n).
  void check_values(const Step<T>& st, const T* data, std::size_t n, std::size_t first = 0) const {
    if (opts.check_finite) find_nonfinite(st, data, n, first);
  }

 private:
  // check_values() with the option on, out of the executor's loop.
  void find_nonfinite(const Step<T>& st, const T* data, std::size_t n, std::size_t first) const {
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(data[i])) {
        throw ValueError("check_finite: " + g->describe(st.id) + " produced " +
                         std::to_string(data[i]) + " at flat index " + std::to_string(first + i));
      }
    }
  }

  void bind_and_plan(std::span<const Feed<T>> feeds);
  /// Binds feeds that repeat the last binding's inputs, dtypes and shapes; false (nothing
  /// bound) when they do not.
  bool bind_same(std::span<const Feed<T>> feeds);
  /// The slot of the step with the largest intermediate result (for messages).
  std::uint32_t largest_step() const;
  /// Throws AllocationError: `what` needed `elements` values; slot p is the node to name.
  [[noreturn]] void allocation_failed(const char* what, std::size_t elements,
                                      std::uint32_t p) const;
  /// With check_finite: throws naming the input at slot pos and the first non-finite
  /// element of its bound value (bind.cpp).
  void check_input(std::uint32_t pos, const T* data, std::size_t n) const;
  /// The compile-time checks of the updates (updates.cpp).
  void check_updates() const;
};

}  // namespace xgrad::exec
