// The built-in update rules (formulas in include/xgrad/optim/optimizers.hpp). Each one is
// an Optimizer::update override, written against the same interface a user optimizer uses.
// Lazy xtensor expressions assigned through xt::noalias keep steps allocation-free.
#include "xgrad/optim/optimizers.hpp"

#include <cmath>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xoperation.hpp>

#include "../exec/thread_pool.hpp"
#include "../kernels/loops.hpp"
#include "xgrad/error.hpp"

namespace xgrad::optim {

template <class T>
void GradientDescent<T>::update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>&,
                                const StepContext<T>& ctx) {
  // A kernel loop: xtensor's expression assignment costs more than the update itself for
  // the small parameters of overhead-bound steps (workload 1), and -O2 alone would leave
  // the loop scalar for the large ones (workload 3). A large parameter is updated on the
  // thread pool: per element, so the bits do not depend on the split.
  T* v = value.data();
  const T* g = grad.data();
  const T lr = ctx.lr;
  const auto rule = [lr](T p, T d) { return p - lr * d; };
  const std::size_t n = value.size();
  // A short parameter goes straight to map2's short loop, without the split's bookkeeping.
  if (n < xgrad::detail::kShortMap) return xgrad::detail::map2(v, g, v, n, rule);
  exec::parallel_for_work(n, 2, exec::kMinPartWork, [&](std::size_t b, std::size_t e, std::size_t) {
    xgrad::detail::map2(v + b, g + b, v + b, e - b, rule);
  });
}

template <class T>
Momentum<T>::Momentum(std::string name, std::vector<Expr<T>> params, Schedule lr,
                      MomentumConfig cfg, Options opts)
    : Optimizer<T>(std::move(name), std::move(params), std::move(lr), opts), cfg_(cfg) {
  this->check_range("momentum", cfg.momentum, 0, 1, false, true);
  this->check_range("dampening", cfg.dampening, 0, 1);
}

namespace {

/// The heavy-ball buffer of PyTorch's SGD: b = g at the first step, else
/// b = mu b + (1 - dampening) g.
template <class T>
xt::xarray<T>& momentum_buffer(ParamState<T>& state, const xt::xarray<T>& grad,
                               const MomentumConfig& cfg) {
  bool first = !state.has("momentum_buffer");
  xt::xarray<T>& b = state.tensor("momentum_buffer", grad);
  if (first) {
    xt::noalias(b) = grad;
  } else {
    xt::noalias(b) = static_cast<T>(cfg.momentum) * b + static_cast<T>(1 - cfg.dampening) * grad;
  }
  return b;
}

}  // namespace

template <class T>
void Momentum<T>::update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
                         const StepContext<T>& ctx) {
  xt::xarray<T>& b = momentum_buffer(state, grad, cfg_);
  xt::noalias(value) -= ctx.lr * b;
}

template <class T>
Nesterov<T>::Nesterov(std::vector<Expr<T>> params, Schedule lr, MomentumConfig cfg, Options opts)
    : Momentum<T>("Nesterov", std::move(params), std::move(lr), cfg, opts) {
  if (cfg.dampening != 0) {
    throw ValueError("Nesterov: dampening = " + std::to_string(cfg.dampening) +
                     " must be 0 (as in PyTorch)");
  }
}

template <class T>
void Nesterov<T>::update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
                         const StepContext<T>& ctx) {
  xt::xarray<T>& b = momentum_buffer(state, grad, this->cfg_);
  xt::noalias(value) -= ctx.lr * (grad + static_cast<T>(this->cfg_.momentum) * b);
}

template <class T>
AdaGrad<T>::AdaGrad(std::vector<Expr<T>> params, Schedule lr, AdaGradConfig cfg, Options opts)
    : Optimizer<T>("AdaGrad", std::move(params), std::move(lr), opts), cfg_(cfg) {
  this->check_range("lr_decay", cfg.lr_decay, 0, HUGE_VAL, false, true);
  this->check_range("initial_accumulator", cfg.initial_accumulator, 0, HUGE_VAL, false, true);
  this->check_range("eps", cfg.eps, 0, HUGE_VAL, true, true);  // eps = 0 divides by zero
}

template <class T>
void AdaGrad<T>::update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
                        const StepContext<T>& ctx) {
  bool first = !state.has("sum");
  xt::xarray<T>& s = state.tensor("sum", grad);
  if (first && cfg_.initial_accumulator != 0) s.fill(static_cast<T>(cfg_.initial_accumulator));
  const T clr = ctx.lr / static_cast<T>(1 + static_cast<double>(ctx.step - 1) * cfg_.lr_decay);
  xt::noalias(s) += grad * grad;
  xt::noalias(value) -= clr * grad / (xt::sqrt(s) + static_cast<T>(cfg_.eps));
}

template <class T>
RMSProp<T>::RMSProp(std::vector<Expr<T>> params, Schedule lr, RMSPropConfig cfg, Options opts)
    : Optimizer<T>("RMSProp", std::move(params), std::move(lr), opts), cfg_(cfg) {
  this->check_range("alpha", cfg.alpha, 0, 1);
  this->check_range("eps", cfg.eps, 0, HUGE_VAL, true, true);  // eps = 0 divides by zero
  this->check_range("momentum", cfg.momentum, 0, 1, false, true);
}

template <class T>
void RMSProp<T>::update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
                        const StepContext<T>& ctx) {
  const T alpha = static_cast<T>(cfg_.alpha), eps = static_cast<T>(cfg_.eps);
  xt::xarray<T>& v = state.tensor("square_avg", grad);
  xt::noalias(v) = alpha * v + (1 - alpha) * grad * grad;
  auto step_with = [&](auto&& denom) {
    if (cfg_.momentum > 0) {
      xt::xarray<T>& b = state.tensor("momentum_buffer", grad);
      xt::noalias(b) = static_cast<T>(cfg_.momentum) * b + grad / denom;
      xt::noalias(value) -= ctx.lr * b;
    } else {
      xt::noalias(value) -= ctx.lr * grad / denom;
    }
  };
  if (cfg_.centered) {
    xt::xarray<T>& a = state.tensor("grad_avg", grad);
    xt::noalias(a) = alpha * a + (1 - alpha) * grad;
    step_with(xt::sqrt(v - a * a) + eps);
  } else {
    step_with(xt::sqrt(v) + eps);
  }
}

template <class T>
Adam<T>::Adam(std::string name, std::vector<Expr<T>> params, Schedule lr, AdamConfig cfg,
              Options opts)
    : Optimizer<T>(std::move(name), std::move(params), std::move(lr), opts), cfg_(cfg) {
  this->check_range("beta1", cfg.beta1, 0, 1, false, true);
  this->check_range("beta2", cfg.beta2, 0, 1, false, true);
  this->check_range("eps", cfg.eps, 0, HUGE_VAL, true, true);  // eps = 0 divides by zero
}

template <class T>
void Adam<T>::update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
                     const StepContext<T>& ctx) {
  const T b1 = static_cast<T>(cfg_.beta1), b2 = static_cast<T>(cfg_.beta2);
  xt::xarray<T>& m = state.tensor("exp_avg", grad);
  xt::xarray<T>& v = state.tensor("exp_avg_sq", grad);
  xt::noalias(m) = b1 * m + (1 - b1) * grad;
  xt::noalias(v) = b2 * v + (1 - b2) * grad * grad;
  const double t = static_cast<double>(ctx.step);
  const T step_size = static_cast<T>(ctx.lr / (1 - std::pow(cfg_.beta1, t)));
  const T bc2_sqrt = static_cast<T>(std::sqrt(1 - std::pow(cfg_.beta2, t)));
  const T eps = static_cast<T>(cfg_.eps);
  if (cfg_.amsgrad) {
    xt::xarray<T>& vmax = state.tensor("max_exp_avg_sq", grad);
    xt::noalias(vmax) = xt::maximum(vmax, v);
    xt::noalias(value) -= step_size * m / (xt::sqrt(vmax) / bc2_sqrt + eps);
  } else {
    xt::noalias(value) -= step_size * m / (xt::sqrt(v) / bc2_sqrt + eps);
  }
}

namespace {
Options with_decoupled(Options o, double wd) {
  o.decoupled_weight_decay = wd;
  return o;
}
}  // namespace

template <class T>
AdamW<T>::AdamW(std::vector<Expr<T>> params, Schedule lr, AdamConfig cfg, double weight_decay,
                Options opts)
    : Adam<T>("AdamW", std::move(params), std::move(lr), cfg, with_decoupled(opts, weight_decay)) {}

template class GradientDescent<float>;
template class GradientDescent<double>;
template class SGD<float>;
template class SGD<double>;
template class Momentum<float>;
template class Momentum<double>;
template class Nesterov<float>;
template class Nesterov<double>;
template class AdaGrad<float>;
template class AdaGrad<double>;
template class RMSProp<float>;
template class RMSProp<double>;
template class Adam<float>;
template class Adam<double>;
template class AdamW<float>;
template class AdamW<double>;

}  // namespace xgrad::optim
