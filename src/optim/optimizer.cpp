// The Optimizer base: validation, gradient transformations shared by every optimizer,
// state for checkpoints (see include/xgrad/optim/optimizer.hpp).
#include "xgrad/optim/optimizer.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "../exec/thread_pool.hpp"
#include "../kernels/loops.hpp"
#include "num.hpp"
#include "xgrad/error.hpp"

namespace xgrad::optim {

using detail::num;

namespace {

template <class S>
std::string dims(const S& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + ")";
}

// A loop of its own: std::equal on two shapes becomes a call of memcmp, which costs more
// than comparing the one or two extents of a small parameter (a check of every step).
template <class A, class B>
bool equal_shape(const A& a, const B& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

void check_options(const std::string& who, const Options& o) {
  auto nonneg = [&](const char* what, double v) {
    if (!(v >= 0) || !std::isfinite(v)) {
      throw ValueError(who + ": option " + what + " = " + num(v) +
                       " must be finite and not negative");
    }
  };
  nonneg("weight_decay", o.weight_decay);
  nonneg("decoupled_weight_decay", o.decoupled_weight_decay);
  nonneg("clip_norm", o.clip_norm);
  nonneg("clip_value", o.clip_value);
}

}  // namespace

namespace {

/// Sum of squares of n elements in eight partial sums of double: one AVX2 register of four
/// doubles twice over.
template <class T>
double sum_of_squares_serial(const T* data, std::size_t n) {
  return xgrad::detail::sum_in_lanes<double, 8>(
      data, n, [](T v) { return static_cast<double>(v) * static_cast<double>(v); });
}

// A long array is summed in kMaxBlocks blocks whose bounds depend on n only, each block's
// sum kept and the block sums added in order: which thread sums a block never changes the
// result, so the norm is the same bits at every thread count.
constexpr std::size_t kBlockElements = 16384, kMaxBlocks = 64;

// The blocked sum of a long array, out of line so that the short case below inlines into
// Optimizer::apply.
template <class T>
[[gnu::noinline]] double sum_of_squares_long(const T* data, std::size_t n) {
  const std::size_t blocks = std::clamp<std::size_t>(n / kBlockElements, 1, kMaxBlocks);
  if (blocks == 1) return sum_of_squares_serial(data, n);
  std::array<double, kMaxBlocks> sums;
  exec::parallel_for_work(blocks, static_cast<double>(n / blocks), exec::kMinPartWork,
                          [&](std::size_t b, std::size_t e, std::size_t) {
                            for (std::size_t k = b; k < e; ++k) {
                              const std::size_t lo = exec::part_begin(n, blocks, k);
                              const std::size_t hi = exec::part_begin(n, blocks, k + 1);
                              sums[k] = sum_of_squares_serial(data + lo, hi - lo);
                            }
                          });
  double s = 0;
  for (std::size_t k = 0; k < blocks; ++k) s += sums[k];
  return s;
}

}  // namespace

template <class T>
double sum_of_squares(const T* data, std::size_t n) {
  if (n >= 8) return sum_of_squares_long(data, n);
  // sum_of_squares_serial's first partial sum alone (the others stay 0 and add nothing),
  // without the call into a kernel clone that costs more than these few elements.
  double s = 0;
  for (std::size_t i = 0; i < n; ++i)
    s += static_cast<double>(data[i]) * static_cast<double>(data[i]);
  return s;
}
template double sum_of_squares(const float*, std::size_t);
template double sum_of_squares(const double*, std::size_t);

template <class T>
xt::xarray<T>& ParamState<T>::tensor(std::string_view name, const xt::xarray<T>& like) {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    it = tensors.emplace(std::string(name), xt::xarray<T>(xt::zeros<T>(like.shape()))).first;
  } else if (!equal_shape(it->second.shape(), like.shape())) {
    throw ShapeError("optimizer state '" + std::string(name) + "' has shape " +
                     dims(it->second.shape()) + " but the parameter has shape " +
                     dims(like.shape()));
  }
  return it->second;
}

template <class T>
double& ParamState<T>::scalar(std::string_view name, double init) {
  auto it = scalars.find(name);
  if (it == scalars.end()) it = scalars.emplace(std::string(name), init).first;
  return it->second;
}

template <class T>
Optimizer<T>::Optimizer(std::string name, std::vector<Expr<T>> params, Schedule lr, Options opts)
    : name_(std::move(name)), params_(std::move(params)), schedule_(std::move(lr)), opts_(opts) {
  if (params_.empty()) throw ValueError(name_ + ": the parameter list is empty");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Expr<T>& p = params_[i];
    if (!p.valid()) {
      throw GraphError(name_ + ": parameter " + std::to_string(i) +
                       " is an invalid (empty) Expr handle");
    }
    if (&p.graph() != &params_[0].graph()) {
      throw GraphError(name_ + ": parameter " + std::to_string(i) + " " +
                       p.graph().describe(p.id()) + " belongs to another graph than parameter 0");
    }
    if (p.node().kind != NodeKind::parameter) {
      throw GraphError(name_ + ": " + p.graph().describe(p.id()) + " (position " +
                       std::to_string(i) +
                       ") is not a parameter node; create trainable values with "
                       "Graph::parameter");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (params_[j] == p) {
        throw ValueError(name_ + ": " + p.graph().describe(p.id()) + " appears twice (positions " +
                         std::to_string(j) + " and " + std::to_string(i) + ")");
      }
    }
  }
  check_options(name_, opts_);
  graph_alive_ = params_[0].graph().liveness();
  for (const Expr<T>& p : params_) values_.push_back(&p.graph().value(p));
  state_.resize(params_.size());
  work_.resize(params_.size());
  checked_lr(0);
  refresh_plain();
}

template <class T>
void Optimizer<T>::refresh_plain() {
  plain_ = schedule_.constant() && opts_.clip_norm == 0 && opts_.clip_value == 0 &&
           opts_.weight_decay == 0 && opts_.decoupled_weight_decay == 0 && !opts_.maximize;
  if (plain_) plain_lr_ = checked_lr(0);
}

template <class T>
Optimizer<T>::~Optimizer() = default;

template <class T>
void Optimizer<T>::check_range(const char* what, double v, double lo, double hi, bool open_lo,
                               bool open_hi) const {
  bool ok = (open_lo ? v > lo : v >= lo) && (open_hi ? v < hi : v <= hi);
  if (!ok) {
    throw ValueError(name_ + ": " + what + " = " + num(v) + " must lie in " +
                     (open_lo ? "(" : "[") + num(lo) + ", " + num(hi) + (open_hi ? ")" : "]"));
  }
}

template <class T>
double Optimizer<T>::checked_lr(std::size_t step) const {
  const double lr = schedule_(step, epoch_);
  if (!(lr >= 0) || !std::isfinite(lr)) fail_lr(step, lr);
  return lr;
}

template <class T>
void Optimizer<T>::fail_lr(std::size_t step, double lr) const {
  throw ValueError(name_ + ": learning rate " + num(lr) + " for step " + std::to_string(step + 1) +
                   " (schedule step " + std::to_string(step) +
                   ") is negative, NaN or infinite; schedule " + schedule_.describe());
}

template <class T>
double Optimizer<T>::lr() const {
  return checked_lr(steps_);
}

template <class T>
void Optimizer<T>::set_schedule(Schedule s) {
  std::swap(schedule_, s);
  try {
    checked_lr(steps_);
  } catch (...) {
    std::swap(schedule_, s);
    throw;
  }
  refresh_plain();
}

template <class T>
void Optimizer<T>::set_options(const Options& o) {
  check_options(name_, o);
  opts_ = o;
  refresh_plain();
}

template <class T>
std::string Optimizer<T>::param_name(std::size_t i) const {
  const std::string& n = params_[i].name();
  return (n.empty() ? "#" + std::to_string(i) : "'" + n + "'") + " (position " + std::to_string(i) +
         ")";
}

template <class T>
void Optimizer<T>::check_grad_range(std::size_t outputs, std::size_t first_grad) const {
  if (grads_fit(outputs, first_grad)) return;
  throw ValueError(name_ + ": step() expects " + std::to_string(params_.size()) +
                   " gradients starting at output " + std::to_string(first_grad) +
                   ", but the run has only " + std::to_string(outputs) + " outputs");
}

template <class T>
void Optimizer<T>::step(std::span<const xt::xarray<T>> grads) {
  apply(0, false, grads);
}

template <class T>
void Optimizer<T>::step(const std::vector<xt::xarray<T>>& outputs, std::size_t first_grad) {
  if (!grads_fit(outputs.size(), first_grad)) check_grad_range(outputs.size(), first_grad);
  apply(0, false, std::span<const xt::xarray<T>>(outputs).subspan(first_grad, params_.size()));
}

template <class T>
void Optimizer<T>::step(T loss, std::span<const xt::xarray<T>> grads) {
  apply(static_cast<double>(loss), true, grads);
}

template <class T>
void Optimizer<T>::step(T loss, const std::vector<xt::xarray<T>>& outputs, std::size_t first_grad) {
  if (!grads_fit(outputs.size(), first_grad)) check_grad_range(outputs.size(), first_grad);
  apply(static_cast<double>(loss), true,
        std::span<const xt::xarray<T>>(outputs).subspan(first_grad, params_.size()));
}

template <class T>
void Optimizer<T>::report(double loss) {
  if (!opts_.allow_nonfinite && !std::isfinite(loss)) {
    throw ValueError(name_ + ": reported loss is " + num(loss) + " after " +
                     std::to_string(steps_) + " steps (Options::allow_nonfinite to continue)");
  }
  schedule_.report(loss);
}

template <class T>
void Optimizer<T>::fail_step(Failure check, double loss, double sq,
                             std::span<const xt::xarray<T>> grads) const {
  const std::string unchanged =
      "; parameters were left unchanged (set Options::allow_nonfinite to continue)";
  const std::string at = " at step " + std::to_string(steps_ + 1);
  if (check == Failure::count) {
    throw ValueError(name_ + ": step() got " + std::to_string(grads.size()) + " gradients for " +
                     std::to_string(params_.size()) + " parameters");
  }
  if (check == Failure::graph) {
    throw GraphError(name_ + ": step() after the graph of its parameters was destroyed");
  }
  if (check == Failure::shape) {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& v = *values_[i];
      if (!equal_shape(grads[i].shape(), v.shape())) {
        throw ShapeError(name_ + ": the gradient for parameter " + param_name(i) + " has shape " +
                         dims(grads[i].shape()) + " but the parameter has shape " +
                         dims(v.shape()));
      }
    }
  }
  if (check == Failure::loss) throw ValueError(name_ + ": loss is " + num(loss) + at + unchanged);
  throw ValueError(name_ + ": gradient norm is " + num(std::sqrt(sq)) + at + unchanged);
}

template <class T>
void Optimizer<T>::apply(double loss, bool has_loss, std::span<const xt::xarray<T>> grads) {
  // Everything is checked before the first parameter changes. The messages are built out of
  // line (fail_step): for small parameters this function's frame is part of every step.
  if (grads.size() != params_.size()) fail_step(Failure::count, loss, 0, grads);
  if (graph_alive_.expired()) fail_step(Failure::graph, loss, 0, grads);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!equal_shape(grads[i].shape(), values_[i]->shape()))
      fail_step(Failure::shape, loss, 0, grads);
  }
  const std::size_t t = steps_ + 1;  // this update's number
  if (has_loss && !opts_.allow_nonfinite && !std::isfinite(loss)) {
    fail_step(Failure::loss, loss, 0, grads);
  }
  const double sq = sum_of_squares(grads);  // the squared global norm
  if (!opts_.allow_nonfinite && !std::isfinite(sq)) fail_step(Failure::norm, loss, sq, grads);
  const double lr = plain_ ? plain_lr_ : checked_lr(steps_);
  if (has_loss) schedule_.report(loss);

  if (plain_) {
    for (std::size_t i = 0; i < params_.size(); ++i) update_param(i, *values_[i], grads[i], lr, t);
  } else {
    apply_options(sq, lr, t, grads);
  }
  steps_ = t;
  last_lr_ = lr;
  last_grad_sq_ = sq;
}

template <class T>
void Optimizer<T>::apply_options(double sq, double lr, std::size_t t,
                                 std::span<const xt::xarray<T>> grads) {
  double scale = 1;
  if (opts_.clip_norm > 0) scale = std::min(1.0, opts_.clip_norm / (std::sqrt(sq) + 1e-6));
  if (opts_.maximize) scale = -scale;
  const bool transform = scale != 1 || opts_.clip_value > 0 || opts_.weight_decay > 0;
  const T cv = static_cast<T>(opts_.clip_value);
  const T wd = static_cast<T>(opts_.weight_decay);
  const T keep = static_cast<T>(1 - lr * opts_.decoupled_weight_decay);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    xt::xarray<T>& value = *values_[i];
    const xt::xarray<T>* grad = &grads[i];
    if (transform) {
      xt::xarray<T>& w = work_[i];
      if (scale != 1) {
        xt::noalias(w) = static_cast<T>(scale) * grads[i];
      } else {
        xt::noalias(w) = grads[i];
      }
      if (opts_.clip_value > 0) xt::noalias(w) = xt::clip(w, -cv, cv);
      if (opts_.weight_decay > 0) xt::noalias(w) += wd * value;
      grad = &w;
    }
    if (keep != 1) xt::noalias(value) *= keep;
    update_param(i, value, *grad, lr, t);
  }
}

template <class T>
void Optimizer<T>::update_param(std::size_t i, xt::xarray<T>& value, const xt::xarray<T>& grad,
                                double lr, std::size_t t) {
  try {
    update(value, grad, state_[i], StepContext<T>{static_cast<T>(lr), t, epoch_, i});
  } catch (const ShapeError& e) {  // ParamState::tensor: a state that does not fit
    throw ShapeError(name_ + ": parameter " + param_name(i) + ": " + e.message());
  }
}

template <class T>
ParamState<T>& Optimizer<T>::param_state(std::size_t i) {
  if (i >= state_.size()) {
    throw ValueError(name_ + ": no parameter " + std::to_string(i) + " (it has " +
                     std::to_string(state_.size()) + ")");
  }
  return state_[i];
}

template <class T>
const ParamState<T>& Optimizer<T>::param_state(std::size_t i) const {
  return const_cast<Optimizer*>(this)->param_state(i);
}

template <class T>
OptimizerState<T> Optimizer<T>::state() const {
  return OptimizerState<T>{steps_, epoch_, state_, schedule_.state()};
}

template <class T>
void Optimizer<T>::load_state(OptimizerState<T> s) {
  if (s.params.size() != params_.size()) {
    throw ValueError(name_ + ": the saved state holds " + std::to_string(s.params.size()) +
                     " parameters, the optimizer has " + std::to_string(params_.size()));
  }
  schedule_.set_state(s.schedule);
  state_ = std::move(s.params);
  steps_ = s.steps;
  epoch_ = s.epoch;
}

template <class T>
void Optimizer<T>::reset() {
  for (auto& s : state_) s = ParamState<T>{};
  steps_ = 0;
  last_lr_ = std::numeric_limits<double>::quiet_NaN();
  last_grad_sq_ = std::numeric_limits<double>::quiet_NaN();
}

template struct ParamState<float>;
template struct ParamState<double>;
template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace xgrad::optim
