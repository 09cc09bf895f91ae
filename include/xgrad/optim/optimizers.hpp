/// @file optimizers.hpp
/// @brief The built-in optimizers, each one update rule on the public Optimizer interface.
///
/// Update rules follow PyTorch's torch.optim (version 2.x) documentation, with g the
/// gradient after the shared transformations of Options (clipping, maximize, L2 decay),
/// lr the scheduled rate and t the update number from 1:
/// - GradientDescent / SGD: p -= lr g.
/// - Momentum (heavy ball, torch SGD with momentum): b = g at t = 1, else
///   b = mu b + (1 - dampening) g; p -= lr b.
/// - Nesterov (torch SGD nesterov=True): b as Momentum; p -= lr (g + mu b).
/// - AdaGrad: clr = lr / (1 + (t - 1) lr_decay); s += g^2; p -= clr g / (sqrt(s) + eps).
/// - RMSProp: v = alpha v + (1 - alpha) g^2; centered: a = alpha a + (1 - alpha) g and
///   d = sqrt(v - a^2) + eps, else d = sqrt(v) + eps; with momentum mu > 0:
///   b = mu b + g / d, p -= lr b; else p -= lr g / d.
/// - Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2 (amsgrad: vmax = max(vmax, v),
///   used for v below); p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// - AdamW: p *= 1 - lr wd (decoupled), then the Adam update.
#pragma once

#include <string>
#include <vector>

#include "xgrad/optim/optimizer.hpp"

namespace xgrad::optim {

/// Plain gradient descent, the lecture note's update p <- p - lr g, meant for full-batch
/// gradients. Options::maximize turns it into gradient ascent.
template <class T>
class GradientDescent : public Optimizer<T> {
 public:
  /// Gradient descent over params with rate (or schedule) lr.
  GradientDescent(std::vector<Expr<T>> params, Schedule lr, Options opts = {})
      : GradientDescent("GradientDescent", std::move(params), std::move(lr), opts) {}

 protected:
  /// For subclasses that only rename it (SGD).
  GradientDescent(std::string name, std::vector<Expr<T>> params, Schedule lr, Options opts)
      : Optimizer<T>(std::move(name), std::move(params), std::move(lr), opts) {}
  /// p -= lr g.
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
              const StepContext<T>& ctx) override;
};

/// Stochastic gradient descent: the same update as GradientDescent, fed minibatch
/// gradients (the name says how it is used, and appears in messages).
template <class T>
class SGD : public GradientDescent<T> {
 public:
  /// SGD over params with rate (or schedule) lr.
  SGD(std::vector<Expr<T>> params, Schedule lr, Options opts = {})
      : GradientDescent<T>("SGD", std::move(params), std::move(lr), opts) {}
};

/// Hyper-parameters of Momentum and Nesterov.
struct MomentumConfig {
  double momentum = 0.9;  ///< mu, in [0, 1).
  double dampening = 0;   ///< Scales the new gradient by 1 - dampening (0 for Nesterov).
};

/// Heavy-ball momentum (Polyak), PyTorch's SGD with momentum: state "momentum_buffer".
template <class T>
class Momentum : public Optimizer<T> {
 public:
  /// Momentum over params with rate (or schedule) lr.
  Momentum(std::vector<Expr<T>> params, Schedule lr, MomentumConfig cfg = {}, Options opts = {})
      : Momentum("Momentum", std::move(params), std::move(lr), cfg, opts) {}
  /// The hyper-parameters.
  const MomentumConfig& config() const { return cfg_; }

 protected:
  /// For Nesterov, which shares the buffer.
  Momentum(std::string name, std::vector<Expr<T>> params, Schedule lr, MomentumConfig cfg,
           Options opts);
  /// b = g (first step) or mu b + (1 - dampening) g; p -= lr b.
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
              const StepContext<T>& ctx) override;
  /// The hyper-parameters.
  MomentumConfig cfg_;
};

/// Nesterov momentum in PyTorch's form (SGD nesterov=True): p -= lr (g + mu b).
template <class T>
class Nesterov : public Momentum<T> {
 public:
  /// Nesterov over params with rate (or schedule) lr; dampening must be 0.
  Nesterov(std::vector<Expr<T>> params, Schedule lr, MomentumConfig cfg = {}, Options opts = {});

 protected:
  /// b as Momentum; p -= lr (g + mu b).
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
              const StepContext<T>& ctx) override;
};

/// Hyper-parameters of AdaGrad.
struct AdaGradConfig {
  double lr_decay = 0;             ///< clr = lr / (1 + (t - 1) lr_decay).
  double initial_accumulator = 0;  ///< Starting value of the sum of squares.
  double eps = 1e-10;              ///< Added to the denominator; > 0 and finite.
};

/// AdaGrad (Duchi et al. 2011, PyTorch's form): state "sum".
template <class T>
class AdaGrad : public Optimizer<T> {
 public:
  /// AdaGrad over params with rate (or schedule) lr.
  AdaGrad(std::vector<Expr<T>> params, Schedule lr, AdaGradConfig cfg = {}, Options opts = {});
  /// The hyper-parameters.
  const AdaGradConfig& config() const { return cfg_; }

 protected:
  /// s += g^2; p -= clr g / (sqrt(s) + eps).
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
              const StepContext<T>& ctx) override;

 private:
  AdaGradConfig cfg_;
};

/// Hyper-parameters of RMSProp.
struct RMSPropConfig {
  double alpha = 0.99;    ///< Smoothing constant of the squared-gradient average.
  double eps = 1e-8;      ///< Added to the denominator; > 0 and finite.
  double momentum = 0;    ///< Momentum on the normalised step (0: none).
  bool centered = false;  ///< Normalise by the variance estimate instead of the 2nd moment.
};

/// RMSProp (Hinton's lecture 6e, PyTorch's form): state "square_avg", "grad_avg"
/// (centered), "momentum_buffer" (momentum > 0).
template <class T>
class RMSProp : public Optimizer<T> {
 public:
  /// RMSProp over params with rate (or schedule) lr.
  RMSProp(std::vector<Expr<T>> params, Schedule lr, RMSPropConfig cfg = {}, Options opts = {});
  /// The hyper-parameters.
  const RMSPropConfig& config() const { return cfg_; }

 protected:
  /// See the file comment.
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
              const StepContext<T>& ctx) override;

 private:
  RMSPropConfig cfg_;
};

/// Hyper-parameters of Adam and AdamW.
struct AdamConfig {
  double beta1 = 0.9;    ///< Decay of the first-moment average, in [0, 1).
  double beta2 = 0.999;  ///< Decay of the second-moment average, in [0, 1).
  double eps = 1e-8;     ///< Added to the denominator; > 0 and finite.
  bool amsgrad = false;  ///< Use the running maximum of the second moment (Reddi et al.).
};

/// Adam (Kingma & Ba 2015, PyTorch's form with bias correction): state "exp_avg",
/// "exp_avg_sq" and, with amsgrad, "max_exp_avg_sq".
template <class T>
class Adam : public Optimizer<T> {
 public:
  /// Adam over params with rate (or schedule) lr.
  Adam(std::vector<Expr<T>> params, Schedule lr, AdamConfig cfg = {}, Options opts = {})
      : Adam("Adam", std::move(params), std::move(lr), cfg, opts) {}
  /// The hyper-parameters.
  const AdamConfig& config() const { return cfg_; }

 protected:
  /// For AdamW, which only adds decoupled weight decay.
  Adam(std::string name, std::vector<Expr<T>> params, Schedule lr, AdamConfig cfg, Options opts);
  /// See the file comment.
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, ParamState<T>& state,
              const StepContext<T>& ctx) override;

 private:
  AdamConfig cfg_;
};

/// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay
/// p *= 1 - lr weight_decay before each update. weight_decay (default 0.01, PyTorch's)
/// sets Options::decoupled_weight_decay.
template <class T>
class AdamW : public Adam<T> {
 public:
  /// AdamW over params with rate (or schedule) lr.
  AdamW(std::vector<Expr<T>> params, Schedule lr, AdamConfig cfg = {}, double weight_decay = 0.01,
        Options opts = {});
};

extern template class GradientDescent<float>;
extern template class GradientDescent<double>;
extern template class SGD<float>;
extern template class SGD<double>;
extern template class Momentum<float>;
extern template class Momentum<double>;
extern template class Nesterov<float>;
extern template class Nesterov<double>;
extern template class AdaGrad<float>;
extern template class AdaGrad<double>;
extern template class RMSProp<float>;
extern template class RMSProp<double>;
extern template class Adam<float>;
extern template class Adam<double>;
extern template class AdamW<float>;
extern template class AdamW<double>;

}  // namespace xgrad::optim
