// Learning-rate schedules (see include/xgrad/optim/schedule.hpp for the formulas).
#include "xgrad/optim/schedule.hpp"

#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

#include "num.hpp"
#include "xgrad/error.hpp"

namespace xgrad::optim {

using detail::num;

namespace {

void check_rate(const char* who, const char* what, double v) {
  if (!(v >= 0) || !std::isfinite(v)) {
    throw ValueError(std::string(who) + ": " + what + " = " + num(v) +
                     " must be finite and not negative");
  }
}

void check_positive(const char* who, const char* what, std::size_t v) {
  if (v == 0) throw ValueError(std::string(who) + ": " + what + " must be at least 1");
}

/// A rule whose clone() is its copy constructor.
template <class Derived>
class Cloneable : public LrRule {
 public:
  std::unique_ptr<LrRule> clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }
};

class Constant final : public Cloneable<Constant> {
 public:
  explicit Constant(double lr) : lr_(lr) { check_rate("constant schedule", "lr", lr); }
  double lr(std::size_t, std::size_t) const override { return lr_; }
  std::string describe() const override { return "constant(" + num(lr_) + ")"; }
  bool constant() const override { return true; }

 private:
  double lr_;
};

class StepDecay final : public Cloneable<StepDecay> {
 public:
  StepDecay(double lr0, std::size_t step_size, double gamma)
      : lr0_(lr0), step_size_(step_size), gamma_(gamma) {
    check_rate("step_decay", "lr0", lr0);
    check_positive("step_decay", "step_size", step_size);
    check_rate("step_decay", "gamma", gamma);
  }
  double lr(std::size_t t, std::size_t) const override {
    return lr0_ * std::pow(gamma_, static_cast<double>(t / step_size_));
  }
  std::string describe() const override {
    return "step_decay(lr0=" + num(lr0_) + ", step_size=" + std::to_string(step_size_) +
           ", gamma=" + num(gamma_) + ")";
  }

 private:
  double lr0_;
  std::size_t step_size_;
  double gamma_;
};

class Exponential final : public Cloneable<Exponential> {
 public:
  Exponential(double lr0, double gamma) : lr0_(lr0), gamma_(gamma) {
    check_rate("exponential", "lr0", lr0);
    check_rate("exponential", "gamma", gamma);
  }
  double lr(std::size_t t, std::size_t) const override {
    return lr0_ * std::pow(gamma_, static_cast<double>(t));
  }
  std::string describe() const override {
    return "exponential(lr0=" + num(lr0_) + ", gamma=" + num(gamma_) + ")";
  }

 private:
  double lr0_, gamma_;
};

class InverseTime final : public Cloneable<InverseTime> {
 public:
  InverseTime(double lr0, double k) : lr0_(lr0), k_(k) {
    check_rate("inverse_time", "lr0", lr0);
    check_rate("inverse_time", "k", k);
  }
  double lr(std::size_t t, std::size_t) const override {
    return lr0_ / (1 + k_ * static_cast<double>(t));
  }
  std::string describe() const override {
    return "inverse_time(lr0=" + num(lr0_) + ", k=" + num(k_) + ")";
  }

 private:
  double lr0_, k_;
};

class Polynomial final : public Cloneable<Polynomial> {
 public:
  Polynomial(double lr0, std::size_t total, double power, double end_lr)
      : lr0_(lr0), total_(total), power_(power), end_(end_lr) {
    check_rate("polynomial", "lr0", lr0);
    check_positive("polynomial", "total", total);
    check_rate("polynomial", "power", power);
    check_rate("polynomial", "end_lr", end_lr);
  }
  double lr(std::size_t t, std::size_t) const override {
    double frac = static_cast<double>(std::min(t, total_)) / static_cast<double>(total_);
    return (lr0_ - end_) * std::pow(1 - frac, power_) + end_;
  }
  std::string describe() const override {
    return "polynomial(lr0=" + num(lr0_) + ", total=" + std::to_string(total_) +
           ", power=" + num(power_) + ", end_lr=" + num(end_) + ")";
  }

 private:
  double lr0_;
  std::size_t total_;
  double power_, end_;
};

double cosine_at(double lr0, double min_lr, double t, double period) {
  return min_lr + (lr0 - min_lr) * (1 + std::cos(std::numbers::pi * t / period)) / 2;
}

class Cosine final : public Cloneable<Cosine> {
 public:
  Cosine(double lr0, std::size_t period, double min_lr) : lr0_(lr0), period_(period), min_(min_lr) {
    check_rate("cosine", "lr0", lr0);
    check_positive("cosine", "period", period);
    check_rate("cosine", "min_lr", min_lr);
  }
  double lr(std::size_t t, std::size_t) const override {
    if (t >= period_) return min_;
    return cosine_at(lr0_, min_, static_cast<double>(t), static_cast<double>(period_));
  }
  std::string describe() const override {
    return "cosine(lr0=" + num(lr0_) + ", period=" + std::to_string(period_) +
           ", min_lr=" + num(min_) + ")";
  }

 private:
  double lr0_;
  std::size_t period_;
  double min_;
};

class CosineRestarts final : public Cloneable<CosineRestarts> {
 public:
  CosineRestarts(double lr0, std::size_t period, std::size_t mult, double min_lr)
      : lr0_(lr0), period_(period), mult_(mult), min_(min_lr) {
    check_rate("cosine_restarts", "lr0", lr0);
    check_positive("cosine_restarts", "period", period);
    check_positive("cosine_restarts", "mult", mult);
    check_rate("cosine_restarts", "min_lr", min_lr);
  }
  double lr(std::size_t t, std::size_t) const override {
    std::size_t len = period_;
    if (mult_ == 1) {
      t %= len;
    } else {
      while (t >= len) {
        t -= len;
        len *= mult_;
      }
    }
    return cosine_at(lr0_, min_, static_cast<double>(t), static_cast<double>(len));
  }
  std::string describe() const override {
    return "cosine_restarts(lr0=" + num(lr0_) + ", period=" + std::to_string(period_) +
           ", mult=" + std::to_string(mult_) + ", min_lr=" + num(min_) + ")";
  }

 private:
  double lr0_;
  std::size_t period_, mult_;
  double min_;
};

class Warmup final : public Cloneable<Warmup> {
 public:
  Warmup(std::size_t steps, Schedule after, double start)
      : steps_(steps), after_(std::move(after)), start_(start) {
    check_positive("linear_warmup", "steps", steps);
    if (!(start >= 0 && start <= 1)) {
      throw ValueError("linear_warmup: start_factor = " + num(start) + " must lie in [0, 1]");
    }
  }
  double lr(std::size_t t, std::size_t epoch) const override {
    if (t >= steps_) return after_(t - steps_, epoch);
    double frac = static_cast<double>(t) / static_cast<double>(steps_);
    return after_(0, epoch) * (start_ + (1 - start_) * frac);
  }
  void report(double loss) override { after_.report(loss); }
  ScheduleState state() const override { return after_.state(); }
  void set_state(const ScheduleState& s) override { after_.set_state(s); }
  std::string describe() const override {
    return "linear_warmup(steps=" + std::to_string(steps_) + ", start_factor=" + num(start_) +
           ", then " + after_.describe() + ")";
  }

 private:
  std::size_t steps_;
  Schedule after_;
  double start_;
};

class Sequential final : public Cloneable<Sequential> {
 public:
  Sequential(std::vector<Schedule> parts, std::vector<std::size_t> milestones)
      : parts_(std::move(parts)), milestones_(std::move(milestones)) {
    if (parts_.empty()) throw ValueError("sequential: no schedules given");
    if (milestones_.size() + 1 != parts_.size()) {
      throw ValueError("sequential: " + std::to_string(parts_.size()) + " schedules need " +
                       std::to_string(parts_.size() - 1) + " milestones, got " +
                       std::to_string(milestones_.size()));
    }
    for (std::size_t i = 1; i < milestones_.size(); ++i) {
      if (milestones_[i] <= milestones_[i - 1]) {
        throw ValueError("sequential: milestones must be strictly increasing (" +
                         std::to_string(milestones_[i - 1]) + " then " +
                         std::to_string(milestones_[i]) + ")");
      }
    }
  }
  double lr(std::size_t t, std::size_t epoch) const override {
    std::size_t i = 0, start = 0;
    while (i < milestones_.size() && t >= milestones_[i]) start = milestones_[i++];
    return parts_[i](t - start, epoch);
  }
  void report(double loss) override {
    for (auto& p : parts_) p.report(loss);
  }
  ScheduleState state() const override {
    ScheduleState out;
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      for (const auto& [k, v] : parts_[i].state()) out[std::to_string(i) + "." + k] = v;
    }
    return out;
  }
  void set_state(const ScheduleState& s) override {
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      ScheduleState mine;
      std::string prefix = std::to_string(i) + ".";
      for (const auto& [k, v] : s) {
        if (k.starts_with(prefix)) mine[k.substr(prefix.size())] = v;
      }
      parts_[i].set_state(mine);
    }
  }
  std::string describe() const override {
    std::string s = "sequential(";
    for (std::size_t i = 0; i < parts_.size(); ++i) {
      if (i > 0) s += ", at " + std::to_string(milestones_[i - 1]) + ": ";
      s += parts_[i].describe();
    }
    return s + ")";
  }

 private:
  std::vector<Schedule> parts_;
  std::vector<std::size_t> milestones_;
};

class ByEpoch final : public Cloneable<ByEpoch> {
 public:
  explicit ByEpoch(Schedule s) : s_(std::move(s)) {}
  double lr(std::size_t, std::size_t epoch) const override { return s_(epoch, epoch); }
  void report(double loss) override { s_.report(loss); }
  ScheduleState state() const override { return s_.state(); }
  void set_state(const ScheduleState& s) override { s_.set_state(s); }
  std::string describe() const override { return "by_epoch(" + s_.describe() + ")"; }

 private:
  Schedule s_;
};

class Custom final : public Cloneable<Custom> {
 public:
  Custom(std::function<double(std::size_t, std::size_t)> f, std::string d)
      : f_(std::move(f)), d_(std::move(d)) {
    if (!f_) throw ValueError("custom schedule: empty function");
  }
  double lr(std::size_t t, std::size_t epoch) const override { return f_(t, epoch); }
  std::string describe() const override { return d_; }

 private:
  std::function<double(std::size_t, std::size_t)> f_;
  std::string d_;
};

class Plateau final : public Cloneable<Plateau> {
 public:
  Plateau(double lr0, PlateauOptions o) : lr_(lr0), o_(o) {
    check_rate("reduce_on_plateau", "lr0", lr0);
    check_rate("reduce_on_plateau", "threshold", o.threshold);
    check_rate("reduce_on_plateau", "min_lr", o.min_lr);
    if (!(o.factor > 0 && o.factor < 1)) {
      throw ValueError("reduce_on_plateau: factor = " + num(o.factor) + " must lie in (0, 1)");
    }
  }
  double lr(std::size_t, std::size_t) const override { return lr_; }
  // PyTorch ReduceLROnPlateau.step(metrics), mode "min", threshold_mode "rel".
  void report(double loss) override {
    if (loss < best_ * (1 - o_.threshold)) {
      best_ = loss;
      bad_ = 0;
    } else {
      ++bad_;
    }
    if (cooldown_left_ > 0) {
      --cooldown_left_;
      bad_ = 0;
    }
    if (bad_ > static_cast<double>(o_.patience)) {
      double next = std::max(lr_ * o_.factor, o_.min_lr);
      if (lr_ - next > 1e-8) lr_ = next;
      cooldown_left_ = static_cast<double>(o_.cooldown);
      bad_ = 0;
    }
  }
  ScheduleState state() const override {
    return {{"lr", lr_}, {"best", best_}, {"bad", bad_}, {"cooldown_left", cooldown_left_}};
  }
  void set_state(const ScheduleState& s) override {
    auto get = [&](const char* k, double& v) {
      auto it = s.find(k);
      if (it == s.end()) {
        throw ValueError(std::string("reduce_on_plateau: state lacks '") + k + "'");
      }
      v = it->second;
    };
    get("lr", lr_);
    get("best", best_);
    get("bad", bad_);
    get("cooldown_left", cooldown_left_);
  }
  std::string describe() const override {
    return "reduce_on_plateau(lr=" + num(lr_) + ", factor=" + num(o_.factor) +
           ", patience=" + std::to_string(o_.patience) + ")";
  }

 private:
  double lr_;
  PlateauOptions o_;
  double best_ = std::numeric_limits<double>::infinity();
  double bad_ = 0;
  double cooldown_left_ = 0;
};

}  // namespace

void LrRule::report(double) {}
void LrRule::set_state(const ScheduleState&) {}

Schedule::Schedule(double lr) : rule_(std::make_unique<Constant>(lr)) {}
Schedule::Schedule(std::unique_ptr<LrRule> rule) : rule_(std::move(rule)) {
  if (!rule_) throw ValueError("Schedule: null rule");
}
Schedule::Schedule(const Schedule& o) : rule_(o.rule_ ? o.rule_->clone() : nullptr) {}
Schedule& Schedule::operator=(const Schedule& o) {
  if (this != &o) rule_ = o.rule_ ? o.rule_->clone() : nullptr;
  return *this;
}
Schedule::~Schedule() = default;

Schedule constant(double lr) { return Schedule(lr); }
Schedule step_decay(double lr0, std::size_t step_size, double gamma) {
  return Schedule(std::make_unique<StepDecay>(lr0, step_size, gamma));
}
Schedule exponential(double lr0, double gamma) {
  return Schedule(std::make_unique<Exponential>(lr0, gamma));
}
Schedule inverse_time(double lr0, double k) {
  return Schedule(std::make_unique<InverseTime>(lr0, k));
}
Schedule polynomial(double lr0, std::size_t total, double power, double end_lr) {
  return Schedule(std::make_unique<Polynomial>(lr0, total, power, end_lr));
}
Schedule cosine(double lr0, std::size_t period, double min_lr) {
  return Schedule(std::make_unique<Cosine>(lr0, period, min_lr));
}
Schedule cosine_restarts(double lr0, std::size_t period, std::size_t mult, double min_lr) {
  return Schedule(std::make_unique<CosineRestarts>(lr0, period, mult, min_lr));
}
Schedule linear_warmup(std::size_t steps, Schedule after, double start_factor) {
  return Schedule(std::make_unique<Warmup>(steps, std::move(after), start_factor));
}
Schedule sequential(std::vector<Schedule> parts, std::vector<std::size_t> milestones) {
  return Schedule(std::make_unique<Sequential>(std::move(parts), std::move(milestones)));
}
Schedule by_epoch(Schedule s) { return Schedule(std::make_unique<ByEpoch>(std::move(s))); }
Schedule custom(std::function<double(std::size_t, std::size_t)> f, std::string description) {
  return Schedule(std::make_unique<Custom>(std::move(f), std::move(description)));
}
Schedule reduce_on_plateau(double lr0, PlateauOptions opts) {
  return Schedule(std::make_unique<Plateau>(lr0, opts));
}

}  // namespace xgrad::optim
