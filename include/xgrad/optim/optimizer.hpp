/// @file optimizer.hpp
/// @brief The Optimizer base class: parameters, per-parameter state, options shared by
/// every optimizer, and step(), which updates parameter values in place.
///
/// The loop a learner writes:
/// @code
/// auto grads = xgrad::grad(loss, {w, b});
/// auto f = xgrad::compile({loss, grads[0], grads[1]});
/// xgrad::optim::Adam<double> opt({w, b}, 0.01);
/// for (int i = 0; i < 1000; ++i) opt.step(f.run({{X, x_data}}), 1);  // gradients from 1
/// @endcode
///
/// A new optimizer overrides one method, update(), which changes one parameter given its
/// value, its gradient (already clipped, negated for maximize and L2-decayed), its state
/// and the learning rate. The built-in optimizers (optimizers.hpp) are written that way,
/// and this header brings what such a rule needs: xt::xarray, xtensor's math functions
/// and xt::noalias.
#pragma once

#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>
// What an update rule is written with (see Optimizer::update), so that a user optimizer
// including only this header compiles as the documentation writes it.
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "xgrad/graph.hpp"
#include "xgrad/optim/schedule.hpp"

namespace xgrad::optim {

/// Named tensors and scalars an optimizer keeps for one parameter (a momentum buffer,
/// Adam's moments...). Public so checkpoints can copy it out and put it back.
template <class T>
struct ParamState {
  std::map<std::string, xt::xarray<T>, std::less<>> tensors;  ///< Named tensors.
  std::map<std::string, double, std::less<>> scalars;         ///< Named scalars.

  /// True when a tensor of that name exists.
  bool has(std::string_view name) const { return tensors.find(name) != tensors.end(); }
  /// The named tensor, created as zeros shaped like `like` on first use (later calls do
  /// not allocate). Throws ShapeError when an existing tensor has another shape.
  xt::xarray<T>& tensor(std::string_view name, const xt::xarray<T>& like);
  /// The named scalar, created with value init on first use.
  double& scalar(std::string_view name, double init = 0);
};

/// Everything an optimizer needs to resume: for checkpoints (copy out, put back).
template <class T>
struct OptimizerState {
  std::size_t steps = 0;              ///< Updates made.
  std::size_t epoch = 0;              ///< Current epoch (fed to the schedule).
  std::vector<ParamState<T>> params;  ///< Per-parameter state, in parameter order.
  ScheduleState schedule;             ///< The schedule's own state (reduce-on-plateau).
};

/// Options every optimizer shares. The gradient g of each parameter p goes through, in
/// order: clipping by global norm, clipping by value, negation (maximize), L2 weight
/// decay g += weight_decay * p; then decoupled decay p *= 1 - lr * decoupled_weight_decay;
/// then the optimizer's update rule. This is PyTorch's order (clip_grad_norm_ /
/// clip_grad_value_ before step(); maximize and weight_decay inside it; AdamW's decay).
struct Options {
  bool maximize = false;              ///< Gradient ascent: follow +g instead of -g.
  double weight_decay = 0;            ///< L2 penalty coefficient, added to the gradient.
  double decoupled_weight_decay = 0;  ///< Decoupled decay (AdamW): p *= 1 - lr * this.
  /// When > 0, rescale all gradients together by clip_norm / (norm + 1e-6) whenever
  /// their global Euclidean norm exceeds it (torch.nn.utils.clip_grad_norm_).
  double clip_norm = 0;
  /// When > 0, clamp each gradient element to [-clip_value, clip_value].
  double clip_value = 0;
  /// By default a NaN or Inf loss (or gradient norm) throws ValueError naming the step
  /// before any parameter changes; true skips the check and updates anyway.
  bool allow_nonfinite = false;
};

/// What an update rule knows about the current step besides the parameter itself.
template <class T>
struct StepContext {
  T lr;               ///< Learning rate of this step, from the schedule.
  std::size_t step;   ///< Number of this update, from 1 (Adam's t).
  std::size_t epoch;  ///< Current epoch.
  std::size_t index;  ///< Position of the parameter in the optimizer's list.
};

/// Sum of squares of n elements, accumulated in double in four independent partial sums
/// (vectorisable; the serial sum's dependency chain cost 0.1 ms per step of an MLP). A long
/// array is cut into at most 64 blocks whose bounds depend on n alone and summed on the
/// thread pool, so the result is the same bits at every thread count.
template <class T>
double sum_of_squares(const T* data, std::size_t n);

/// Sum of squares of all elements of all tensors: the squared global_norm(), for tests of
/// finiteness that need no square root.
template <class T>
double sum_of_squares(std::span<const xt::xarray<T>> tensors) {
  double s = 0;
  for (const auto& t : tensors) s += sum_of_squares(t.data(), t.size());
  return s;
}

/// Euclidean norm of all elements of all tensors, accumulated in double: |g| for one
/// scalar, the norm of the whole gradient vector otherwise (the note's stopping test).
template <class T>
double global_norm(std::span<const xt::xarray<T>> tensors) {
  return std::sqrt(sum_of_squares(tensors));
}

/// Global norm of outputs[first], outputs[first + 1], ... (the gradients of a run, or a
/// whole vector of gradients with first = 0).
template <class T>
double global_norm(const std::vector<xt::xarray<T>>& outputs, std::size_t first = 0) {
  if (first > outputs.size()) first = outputs.size();
  return global_norm(std::span<const xt::xarray<T>>(outputs).subspan(first));
}

/// Base of every optimizer: holds the parameter nodes, their state, the step counter, the
/// learning-rate schedule and the shared Options, and applies updates in place.
/// Steady-state steps do not allocate (buffers are sized at the first step).
template <class T>
class Optimizer {
 public:
  virtual ~Optimizer();

  /// One update from the gradients, in parameter order (one per parameter).
  void step(std::span<const xt::xarray<T>> grads);
  /// One update from the outputs of a run whose gradients start at first_grad:
  /// opt.step(f.run(feeds), 1) for f = compile({loss, g0, g1...}). Extra outputs after
  /// the gradients are ignored.
  void step(const std::vector<xt::xarray<T>>& outputs, std::size_t first_grad);
  /// One update given the loss too: the loss is checked for NaN/Inf (see
  /// Options::allow_nonfinite) and reported to the schedule (reduce-on-plateau) after the
  /// rate of this step has been taken.
  void step(T loss, std::span<const xt::xarray<T>> grads);
  /// step(loss, gradients) with the gradients at outputs[first_grad...]:
  /// `const auto& out = f.run(); opt.step(out[0](), out, 1);`.
  void step(T loss, const std::vector<xt::xarray<T>>& outputs, std::size_t first_grad);

  /// Reports a loss to the schedule without updating (for an epoch's validation loss).
  void report(double loss);

  /// The optimizer's name, used in error messages ("Adam").
  const std::string& name() const { return name_; }
  /// The parameter nodes, in the order gradients are expected.
  const std::vector<Expr<T>>& parameters() const { return params_; }
  /// Number of parameters.
  std::size_t size() const { return params_.size(); }
  /// Updates made so far.
  std::size_t steps() const { return steps_; }
  /// Current epoch (a schedule input; the optimizer never changes it).
  std::size_t epoch() const { return epoch_; }
  /// Sets the epoch, e.g. at the start of each pass over the data.
  void set_epoch(std::size_t e) { epoch_ = e; }
  /// The learning rate the next step will use.
  double lr() const;
  /// The learning rate the last step used (NaN before the first step).
  double last_lr() const { return last_lr_; }
  /// Global norm of the last step's gradients before clipping (NaN before the first).
  double last_grad_norm() const { return std::sqrt(last_grad_sq_); }
  /// The learning-rate schedule.
  const Schedule& schedule() const { return schedule_; }
  /// Replaces the schedule (a number is a constant rate).
  void set_schedule(Schedule s);
  /// The shared options.
  const Options& options() const { return opts_; }
  /// Replaces the shared options (validated).
  void set_options(const Options& o);

  /// State of parameter i (bounds-checked).
  ParamState<T>& param_state(std::size_t i);
  /// State of parameter i (bounds-checked).
  const ParamState<T>& param_state(std::size_t i) const;
  /// A copy of everything needed to resume (step count, epoch, per-parameter and schedule
  /// state). Parameter values are not included: they live in the graph.
  OptimizerState<T> state() const;
  /// Restores a state() copy; the number of parameters must match.
  void load_state(OptimizerState<T> s);
  /// Forgets all state and the step count (keeps schedule and options).
  void reset();

 protected:
  /// Validates the parameters (non-empty, distinct parameter nodes of one graph), the
  /// schedule's first rate and the options; name appears in every error message.
  Optimizer(std::string name, std::vector<Expr<T>> params, Schedule lr, Options opts = {});
  /// Copies the optimizer, state included (for subclasses that want to be copyable).
  Optimizer(const Optimizer&) = default;
  /// Copies the optimizer, state included.
  Optimizer& operator=(const Optimizer&) = default;

  /// The update rule: changes value (the parameter, in place; use xt::noalias to avoid
  /// temporaries) from grad, keeping whatever it needs in state. grad is already clipped,
  /// negated under maximize and L2-decayed, so a rule always descends.
  virtual void update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
                      const StepContext<T>& ctx) = 0;

  /// Throws ValueError "<name>: <what> = <v> must ..." unless lo <= v (or lo < v when
  /// open) and v < hi (or <= when !open_hi); for validating hyper-parameters.
  void check_range(const char* what, double v, double lo, double hi, bool open_lo = false,
                   bool open_hi = false) const;

 private:
  void apply(double loss, bool has_loss, std::span<const xt::xarray<T>> grads);
  // What apply() found wrong; fail_step() throws the error that names it.
  enum class Failure { count, graph, shape, loss, norm };
  [[noreturn, gnu::cold, gnu::noinline]] void fail_step(Failure check, double loss, double sq,
                                                        std::span<const xt::xarray<T>> grads) const;
  // The option transforms (clipping, decay, maximize) and the update, when !plain_; out of
  // apply(), whose frame they would otherwise enlarge for every plain step.
  [[gnu::noinline]] void apply_options(double sq, double lr, std::size_t t,
                                       std::span<const xt::xarray<T>> grads);
  // update() of parameter i, naming the parameter in a ShapeError from its state.
  void update_param(std::size_t i, xt::xarray<T>& value, const xt::xarray<T>& grad, double lr,
                    std::size_t t);
  double checked_lr(std::size_t step) const;
  [[noreturn, gnu::cold, gnu::noinline]] void fail_lr(std::size_t step, double lr) const;
  // Sets plain_: no option transforms the gradient or the parameter, and the rate is
  // constant (plain_lr_), so apply() skips both per step (overhead-bound steps, workload 1).
  void refresh_plain();
  void check_grad_range(std::size_t outputs, std::size_t first_grad) const;
  // Whether outputs [first_grad, first_grad + parameters) exist (without the sum, which
  // wraps for a first_grad near SIZE_MAX); check_grad_range throws when not.
  bool grads_fit(std::size_t outputs, std::size_t first_grad) const {
    return first_grad <= outputs && params_.size() <= outputs - first_grad;
  }
  std::string param_name(std::size_t i) const;

  std::string name_;
  std::vector<Expr<T>> params_;
  // The parameters' values: a parameter's array lives as long as its graph and never
  // moves, so step() reaches it without a node lookup per parameter.
  std::vector<xt::xarray<T>*> values_;
  std::weak_ptr<const void> graph_alive_;  // expires with the parameters' graph
  Schedule schedule_;
  Options opts_;
  std::vector<ParamState<T>> state_;
  std::vector<xt::xarray<T>> work_;  // transformed gradients, reused between steps
  std::size_t steps_ = 0;
  std::size_t epoch_ = 0;
  double last_lr_ = std::numeric_limits<double>::quiet_NaN();
  // The squared global norm: the square root is taken only where the norm is used (clipping,
  // messages, last_grad_norm()), not on every step.
  double last_grad_sq_ = std::numeric_limits<double>::quiet_NaN();
  bool plain_ = false;
  double plain_lr_ = 0;
};

extern template struct ParamState<float>;
extern template struct ParamState<double>;
extern template class Optimizer<float>;
extern template class Optimizer<double>;

}  // namespace xgrad::optim
