/// @file function.hpp
/// @brief Compiled execution: compile once, run many times without per-step allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>
#include <xtensor/xlayout.hpp>

#include "xgrad/graph.hpp"

namespace xgrad {

/// A borrowed, type-erased view of a dense row-major value bound to an input. Nothing is
/// copied: the value must stay alive while the run that uses it executes.
class TensorArg {
 public:
  /// Binds an xtensor container (xarray, xtensor, adaptors) of float, double, int32 or int64.
  template <class C>
  requires requires(const C& c) {
    c.data();
    c.shape();
    c.layout();
  }
  TensorArg(const C& c)  // NOLINT(google-explicit-constructor): bindings read like a map.
      : data_(c.data()),
        shape_(c.shape().data()),
        rank_(c.shape().size()),
        dtype_(dtype_of<std::remove_cv_t<typename C::value_type>>()),
        row_major_(c.layout() == xt::layout_type::row_major || c.dimension() <= 1) {}
  /// Binds a std::vector as a 1-d value.
  template <class U>
  TensorArg(const std::vector<U>& v)  // NOLINT(google-explicit-constructor)
      : data_(v.data()), rank_(1), dtype_(dtype_of<U>()), inline_shape_(v.size()) {}
  /// Binds a 0-d value.
  TensorArg(double v) : rank_(0), dtype_(DType::float64), inline_f64_(v) {}  // NOLINT
  /// Binds a 0-d value.
  TensorArg(float v) : rank_(0), dtype_(DType::float32), inline_f32_(v) {}  // NOLINT

  /// First element.
  const void* data() const {
    if (rank_ == 0 && !data_) {
      return dtype_ == DType::float64 ? static_cast<const void*>(&inline_f64_)
                                      : static_cast<const void*>(&inline_f32_);
    }
    return data_;
  }
  /// Extents.
  std::span<const std::size_t> shape() const { return {shape_ ? shape_ : &inline_shape_, rank_}; }
  /// Element type.
  DType dtype() const { return dtype_; }
  /// False for column-major or strided layouts, which a binding rejects.
  bool row_major() const { return row_major_; }

 private:
  const void* data_ = nullptr;
  const std::size_t* shape_ = nullptr;
  std::size_t rank_ = 0;
  DType dtype_ = DType::float64;
  bool row_major_ = true;
  std::size_t inline_shape_ = 0;
  double inline_f64_ = 0;
  float inline_f32_ = 0;
};

/// One binding of a run: an input node and the value it takes.
template <class T>
struct Feed {
  Expr<T> input;    ///< The input node.
  TensorArg value;  ///< Its value for this run.
};

/// Options of compile().
struct CompileOptions {
  /// Check every node's output for NaN or Inf and throw ValueError at the first one,
  /// naming the node and its op (costs one pass over each result).
  bool check_finite = false;
  /// Run chains over the rows of a large input (at least 2 MiB) block of rows by block of
  /// rows, so that X @ w - y, its loss and X^T @ (...) read X from memory once per run.
  /// Off: every step runs over whole arrays (the reference the tiled results are tested
  /// against).
  bool tile_rows = true;
  /// Bytes of operands and results per block of rows when tiling. 0: a fraction of the
  /// level-1 data cache, 6 KiB or 16 KiB (smaller blocks pay more for the executor, larger
  /// ones leave memory idle while a block is computed from cache), or 256 KiB where the
  /// chain has a matrix-matrix product (BLAS is slow on few rows); docs/benchmarks.md has
  /// the measurements behind both.
  std::size_t tile_bytes = 0;
  /// Run a step whose shapes lead forward() straight to one kernel (a same-shape map, a
  /// small matrix-vector product, a whole-tensor sum) by calling that kernel, decided once
  /// per plan instead of on every run. Off: every step goes through Op::forward (the
  /// reference these calls are tested against; both give the same bits).
  bool direct_calls = true;
};

/// State a compiled Function writes back after each run: `target` (a parameter node, such
/// as a module's buffer) takes the value `value` computed during the run. Batch norm's
/// running statistics and dropout's step counter change this way, inside the compiled
/// step: no rebuild, no extra run, no allocation.
///
/// `value` is a node of the target's graph whose static shape fits the target's value
/// (same rank, equal extents where the value's are known). The Function computes every
/// update's value with its outputs, in the same plan, and only after all of them are
/// computed copies each value into g.value(target), in the order given: every node read
/// during a run, outputs and other update values alike, sees the values from before the
/// run. A run that throws writes nothing.
template <class T>
struct Update {
  Expr<T> target;  ///< The parameter node that receives the value.
  Expr<T> value;   ///< The node whose value it receives.
};

/// A compiled set of outputs: the reachable subgraph in topological order with planned
/// buffers. Runs with same-shaped inputs do not allocate; a new input shape re-plans.
///
/// Threads: one Function must not run in two threads at once (a run writes its buffers
/// and results); several Functions of one graph may, while nothing changes the graph and
/// none has updates; Functions of different graphs are independent (docs/design.md,
/// "Threads").
template <class T>
class Function {
 public:
  /// Compiles the given outputs (any nodes of one graph) and the updates written after
  /// each run (see Update). Throws GraphError when an update's target is not a parameter
  /// of the outputs' graph, or is the target of two updates, and ShapeError when a value's
  /// static shape cannot fit its target's; both name the nodes. Outputs may be empty when
  /// there are updates.
  explicit Function(std::vector<Expr<T>> outputs, CompileOptions opts = {},
                    std::vector<Update<T>> updates = {});
  ~Function();
  /// Moves the compiled plan.
  Function(Function&&) noexcept;
  /// Moves the compiled plan.
  Function& operator=(Function&&) noexcept;

  /// Binds the inputs, executes, writes the updates, and returns the outputs (valid until
  /// the next run; the updates' values are not among them). An update value whose shape
  /// at run time differs from its target's value raises ShapeError, naming both nodes and
  /// shapes, before any target is written.
  const std::vector<xt::xarray<T>>& run(std::initializer_list<Feed<T>> feeds = {});
  /// Same as run() with feeds in a span.
  const std::vector<xt::xarray<T>>& run(std::span<const Feed<T>> feeds);
  /// Outputs of the last run.
  const std::vector<xt::xarray<T>>& results() const;
  /// The compiled outputs.
  const std::vector<Expr<T>>& outputs() const;
  /// The compiled updates, in the order they are written.
  const std::vector<Update<T>>& updates() const;
  /// Inputs the outputs depend on; each must be bound in every run.
  const std::vector<Expr<T>>& inputs() const;
  /// Number of op nodes executed per run.
  std::size_t num_steps() const;
  /// How many times buffers were planned (1 after the first run while shapes stay).
  std::size_t plan_count() const;
  /// Bytes of intermediate buffers after buffer reuse.
  std::size_t workspace_bytes() const;
  /// Row-tiled groups in the current plan (CompileOptions::tile_rows): 0 before the first
  /// run, with tiling off, or when no input is large enough. For tests and tuning.
  std::size_t tiled_groups() const;
  /// Steps placed in the current plan's row-tiled groups; the other steps run one by one
  /// over whole arrays. An op joins a group only through what its Op::traits() declares.
  std::size_t tiled_steps() const;
  /// Steps the current plan runs by direct kernel calls (CompileOptions::direct_calls)
  /// rather than through Op::forward; steps of row-tiled groups are not counted.
  std::size_t direct_steps() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Compiles outputs, and the updates each run writes, into a Function. A training step
/// of a model with running statistics:
/// @code
/// model.train();
/// auto loss = xgrad::cross_entropy(model(x), labels);
/// std::vector<xgrad::Expr<float>> outs{loss};
/// for (auto d : xgrad::grad(loss, model.parameters())) outs.push_back(d);
/// auto step = xgrad::compile(outs, {}, model.updates());
/// @endcode
template <class T>
Function<T> compile(std::vector<Expr<T>> outputs, CompileOptions opts = {},
                    std::vector<Update<T>> updates = {}) {
  return Function<T>(std::move(outputs), opts, std::move(updates));
}

/// Compiles a braced list of outputs: compile({loss, grad}), compile({loss}, {}, updates).
template <class T>
Function<T> compile(std::initializer_list<Expr<T>> outputs, CompileOptions opts = {},
                    std::vector<Update<T>> updates = {}) {
  return Function<T>(std::vector<Expr<T>>(outputs), opts, std::move(updates));
}

/// One-off evaluation of a node (compiles, runs once).
template <class T>
xt::xarray<T> eval(Expr<T> e, std::initializer_list<Feed<T>> feeds = {}) {
  Function<T> f({e});
  return f.run(feeds)[0];
}

extern template class Function<float>;
extern template class Function<double>;

}  // namespace xgrad
