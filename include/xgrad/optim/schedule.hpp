/// @file schedule.hpp
/// @brief Learning-rate schedules: a Schedule maps (step, epoch) to a learning rate.
///
/// Steps count optimizer updates from 0 (the first update uses the rate at step 0).
/// Built-in schedules follow PyTorch's torch.optim.lr_scheduler closed forms unless noted;
/// they compose: linear_warmup(10, cosine(0.1, 90)) warms up, then anneals.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace xgrad::optim {

/// Named scalars a stateful schedule (reduce-on-plateau) keeps, for checkpoints.
using ScheduleState = std::map<std::string, double>;

/// One learning-rate rule. Subclass it to write a schedule of your own and wrap it in a
/// Schedule; for a stateless rule, custom() with a function is shorter.
class LrRule {
 public:
  virtual ~LrRule() = default;
  /// The learning rate for update number step (0-based) during the given epoch.
  virtual double lr(std::size_t step, std::size_t epoch) const = 0;
  /// Receives a reported loss (only reduce-on-plateau reacts; the default ignores it).
  virtual void report(double loss);
  /// A deep copy (schedules are values).
  virtual std::unique_ptr<LrRule> clone() const = 0;
  /// Internal state for checkpoints; empty for stateless rules.
  virtual ScheduleState state() const { return {}; }
  /// Restores what state() returned.
  virtual void set_state(const ScheduleState& s);
  /// A short description such as "cosine(lr0=0.1, period=100, min_lr=0)".
  virtual std::string describe() const = 0;
  /// True when lr() is the same at every step and epoch and report() changes nothing (a
  /// constant rate): optimizers then take the rate once instead of asking every step.
  virtual bool constant() const { return false; }
};

/// A learning-rate schedule with value semantics. A plain number converts to a constant
/// schedule, so optimizers accept `0.01` wherever a Schedule is expected.
class Schedule {
 public:
  /// The constant rate lr; lr must be finite and not negative.
  Schedule(double lr);  // NOLINT(google-explicit-constructor): `Adam<double> opt(ps, 0.01)`.
  /// Wraps a user-written rule (must not be null).
  explicit Schedule(std::unique_ptr<LrRule> rule);
  /// Deep copy.
  Schedule(const Schedule& o);
  /// Deep copy.
  Schedule& operator=(const Schedule& o);
  /// Moves the rule.
  Schedule(Schedule&&) noexcept = default;
  /// Moves the rule.
  Schedule& operator=(Schedule&&) noexcept = default;
  ~Schedule();

  /// The learning rate for update number step (0-based) during epoch.
  double operator()(std::size_t step, std::size_t epoch = 0) const {
    return rule_->lr(step, epoch);
  }
  /// Feeds a loss to stateful rules (reduce-on-plateau).
  void report(double loss) { rule_->report(loss); }
  /// State for checkpoints (empty for stateless schedules).
  ScheduleState state() const { return rule_->state(); }
  /// Restores what state() returned.
  void set_state(const ScheduleState& s) { rule_->set_state(s); }
  /// A short description, for logs.
  std::string describe() const { return rule_->describe(); }
  /// Whether the rate never changes (see LrRule::constant).
  bool constant() const { return rule_->constant(); }
  /// The wrapped rule.
  const LrRule& rule() const { return *rule_; }

 private:
  std::unique_ptr<LrRule> rule_;
};

/// lr at every step.
Schedule constant(double lr);
/// lr0 * gamma^floor(t / step_size) (PyTorch StepLR).
Schedule step_decay(double lr0, std::size_t step_size, double gamma = 0.1);
/// lr0 * gamma^t (PyTorch ExponentialLR).
Schedule exponential(double lr0, double gamma);
/// lr0 / (1 + k t): the classic inverse-time decay (Keras InverseTimeDecay, not staircase).
Schedule inverse_time(double lr0, double k);
/// (lr0 - end_lr) * (1 - min(t, total) / total)^power + end_lr (TensorFlow
/// PolynomialDecay; with end_lr = 0 it is PyTorch PolynomialLR).
Schedule polynomial(double lr0, std::size_t total, double power = 1, double end_lr = 0);
/// min_lr + (lr0 - min_lr) (1 + cos(pi t / period)) / 2 for t < period, then min_lr
/// (PyTorch CosineAnnealingLR's closed form, held at min_lr after the period).
Schedule cosine(double lr0, std::size_t period, double min_lr = 0);
/// Cosine annealing with warm restarts (SGDR; PyTorch CosineAnnealingWarmRestarts): the
/// first cycle lasts period steps, each next one mult times longer; t restarts at 0.
Schedule cosine_restarts(double lr0, std::size_t period, std::size_t mult = 1, double min_lr = 0);
/// Linear warm-up over the first `steps` updates, then `after` shifted to start at 0:
/// lr(t) = after(0) * (start_factor + (1 - start_factor) t / steps) for t < steps, else
/// after(t - steps). start_factor 0 is Hugging Face's get_linear_schedule_with_warmup.
Schedule linear_warmup(std::size_t steps, Schedule after, double start_factor = 0);
/// Runs schedules one after another: parts[i] takes over at milestones[i-1] (strictly
/// increasing step counts, one fewer than parts) and sees t - milestone (PyTorch
/// SequentialLR). Reported losses go to every part.
Schedule sequential(std::vector<Schedule> parts, std::vector<std::size_t> milestones);
/// Drives s by the epoch instead of the step: lr(step, epoch) = s(epoch, epoch).
Schedule by_epoch(Schedule s);
/// A user function of (step, epoch); its results are checked by the optimizer.
Schedule custom(std::function<double(std::size_t step, std::size_t epoch)> f,
                std::string description = "custom");

/// Options of reduce_on_plateau (PyTorch ReduceLROnPlateau, mode "min", relative threshold).
struct PlateauOptions {
  double factor = 0.1;        ///< Multiplier applied at each reduction, in (0, 1).
  std::size_t patience = 10;  ///< Reports without improvement tolerated before reducing.
  double threshold = 1e-4;    ///< Improvement means loss < best * (1 - threshold).
  std::size_t cooldown = 0;   ///< Reports ignored after a reduction.
  double min_lr = 0;          ///< The rate never drops below this.
};
/// Starts at lr0 and multiplies the rate by factor once more than `patience` consecutive
/// reported losses failed to improve on the best one (see PlateauOptions). Losses arrive
/// through Schedule::report, Optimizer::report or an Optimizer::step given the loss.
Schedule reduce_on_plateau(double lr0, PlateauOptions opts = {});

}  // namespace xgrad::optim
