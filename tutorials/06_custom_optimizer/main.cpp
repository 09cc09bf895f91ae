// Tutorial 6: a custom optimizer and a custom learning-rate schedule.
//
// Both are written here, in the tutorial's own file, against xgrad's public interface: an
// optimizer is one update rule on xgrad::optim::Optimizer, a schedule is one rate rule on
// xgrad::optim::LrRule. They race the built-in optimizers and schedules on one task, the
// lecture note's linear regression (X = [[1,1],[1,2],[2,2],[2,3]] plus a column of ones,
// y = X @ [1, 2] + 3, beta starting at [10.1, 15.1, -6.5]).
// README.md walks through this file step by step.
//
// Usage: 06_custom_optimizer [--every K]
//   --every K  print every K-th step of the first run (default 0: none)
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include <xgrad/io.hpp>  // prints arrays with operator<<
#include <xgrad/xgrad.hpp>

#include "cli.hpp"
#include "figures.hpp"

namespace optim = xgrad::optim;

// [lion]
// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the step is
// the SIGN of an interpolation between the momentum m and the new gradient g, so every
// coordinate moves by exactly lr:
//   p <- p - lr * sign(beta1 * m + (1 - beta1) * g)
//   m <- beta2 * m + (1 - beta2) * g
template <class T>
class Lion : public optim::Optimizer<T> {
 public:
  Lion(std::vector<xgrad::Expr<T>> params, optim::Schedule lr, double beta1 = 0.9,
       double beta2 = 0.99)
      : optim::Optimizer<T>("Lion", std::move(params), std::move(lr)),
        beta1_(static_cast<T>(beta1)),
        beta2_(static_cast<T>(beta2)) {
    this->check_range("beta1", beta1, 0, 1, false, true);  // 0 <= beta1 < 1
    this->check_range("beta2", beta2, 0, 1, false, true);
  }

 protected:
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, optim::ParamState<T>& state,
              const optim::StepContext<T>& ctx) override {
    xt::xarray<T>& m = state.tensor("exp_avg", value);  // zeros at the first step
    xt::noalias(value) -= ctx.lr * xt::sign(beta1_ * m + (1 - beta1_) * grad);
    xt::noalias(m) = beta2_ * m + (1 - beta2_) * grad;
  }

 private:
  T beta1_, beta2_;
};
// [end]

// [schedule]
// "Bold driver" (Battiti 1989): after each step, grow the rate by 5% if the loss went
// down, halve it if the loss went up. A stateful rule: the optimizer reports each loss.
class BoldDriver : public optim::LrRule {
 public:
  BoldDriver(double lr0, double up = 1.05, double down = 0.5) : lr_(lr0), up_(up), down_(down) {}
  double lr(std::size_t /*step*/, std::size_t /*epoch*/) const override { return lr_; }
  void report(double loss) override {
    if (loss > last_)
      lr_ *= down_;  // overshot: back off
    else
      lr_ *= up_;  // still going down: speed up
    last_ = loss;
  }
  std::unique_ptr<optim::LrRule> clone() const override {
    return std::make_unique<BoldDriver>(*this);
  }
  optim::ScheduleState state() const override { return {{"lr", lr_}, {"last", last_}}; }
  void set_state(const optim::ScheduleState& s) override {
    lr_ = s.at("lr");
    last_ = s.at("last");
  }
  std::string describe() const override { return "bold_driver(lr=" + std::to_string(lr_) + ")"; }

 private:
  double lr_, up_, down_;
  double last_ = std::numeric_limits<double>::infinity();
};

optim::Schedule bold_driver(double lr0) {
  return optim::Schedule(std::make_unique<BoldDriver>(lr0));
}
// [end]

// [task]
// The note's regression as a graph: loss = ||y - X beta||^2 / 2, gradient -X^T (y - X beta).
struct Regression {
  xt::xarray<double> X = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
  xt::xarray<double> y = {6, 8, 9, 11};
  xgrad::Graph<double> g;
  xgrad::Expr<double> Xi = g.input("X", {xgrad::open, 3});
  xgrad::Expr<double> yi = g.input("y", {xgrad::open});
  xgrad::Expr<double> beta = g.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  xgrad::Expr<double> loss = xgrad::sum(xgrad::square(yi - xgrad::matmul(Xi, beta))) / 2.0;
  xgrad::Function<double> f = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});

  const std::vector<xt::xarray<double>>& run() { return f.run({{Xi, X}, {yi, y}}); }
  double error() {  // max |beta - [1, 2, 3]|
    return xt::amax(xt::abs(g.value(beta) - xt::xarray<double>{1, 2, 3}))();
  }
};
// [end]

// [race]
struct Result {
  std::string name;
  std::size_t steps_to_1e6 = 0;  // first step with error < 1e-6 (0: never)
  double final_error = 0;        // error after the budget
  double final_lr = 0;           // the rate of the last step
  std::vector<double> steps, errors;
};

// Runs `budget` updates of the optimizer on its Regression and records the error.
Result race(const std::string& name, Regression& r, optim::Optimizer<double>& opt,
            std::size_t budget, int every = 0) {
  Result res;
  res.name = name;
  for (std::size_t t = 1; t <= budget; ++t) {
    const auto& out = r.run();
    opt.step(out[0](), out, 1);  // loss, then the gradients from output 1
    const double err = r.error();
    if (res.steps_to_1e6 == 0 && err < 1e-6) res.steps_to_1e6 = t;
    res.steps.push_back(double(t));
    res.errors.push_back(std::max(err, 1e-16));  // log plots cannot show 0
    if (every > 0 && t % every == 0) {
      std::cout << "  step " << t << ": lr " << opt.last_lr() << ", loss " << out[0]() << ", error "
                << err << "\n";
    }
  }
  res.final_error = r.error();
  res.final_lr = opt.last_lr();
  return res;
}
// [end]

int main(int argc, char** argv) {
  int every = 0;
  if (!cli::parse(argc, argv,
                  {{"--every", "K", [&](const char* v) { every = std::max(0, std::atoi(v)); }}})) {
    return 2;
  }
  bool ok = true;
  const auto check = cli::checker(ok);
  std::cout << std::setprecision(4);

  // [first-step]
  {
    Regression r;
    Lion<double> lion({r.beta}, 0.01);
    const xt::xarray<double> before = r.g.value(r.beta);
    const xt::xarray<double> grad = r.run()[1];
    lion.step(r.run(), 1);
    // m starts at 0, so the first step is -lr * sign(g): every coordinate moves by 0.01.
    const xt::xarray<double> expected = before - 0.01 * xt::sign(grad);
    std::cout << "Lion's first step: beta " << before << " -> " << r.g.value(r.beta) << "\n";
    check(xt::amax(xt::abs(r.g.value(r.beta) - expected))() < 1e-15, "Lion's first step");
    check(lion.param_state(0).has("exp_avg"), "Lion keeps its momentum in the state");
  }
  // [end]

  // [schedule-values]
  {
    optim::Schedule s = bold_driver(0.01);
    for (double loss : {5.0, 4.0, 3.0, 3.5, 2.0}) s.report(loss);  // down, down, down, up, down
    std::cout << s.describe() << " after losses 5, 4, 3, 3.5, 2\n";
    check(std::abs(s(0) - 0.01 * 1.05 * 1.05 * 1.05 * 0.5 * 1.05) < 1e-15, "bold driver's rate");
  }
  // [end]

  // [builtin]
  const std::size_t budget = 20000;
  std::vector<Result> builtin;
  {
    Regression r;
    optim::GradientDescent<double> opt({r.beta}, 0.01);  // the note's loop
    if (every > 0) std::cout << "GradientDescent, lr 0.01:\n";
    builtin.push_back(race("GradientDescent, lr 0.01", r, opt, budget, every));
  }
  {
    Regression r;
    optim::Momentum<double> opt({r.beta}, 0.01, {.momentum = 0.9});
    builtin.push_back(race("Momentum 0.9, lr 0.01", r, opt, budget));
  }
  {
    Regression r;
    optim::Nesterov<double> opt({r.beta}, 0.01, {.momentum = 0.9});
    builtin.push_back(race("Nesterov 0.9, lr 0.01", r, opt, budget));
  }
  {
    Regression r;
    optim::AdaGrad<double> opt({r.beta}, 1.0);
    builtin.push_back(race("AdaGrad, lr 1", r, opt, budget));
  }
  {
    Regression r;
    optim::RMSProp<double> opt({r.beta}, 0.01);
    builtin.push_back(race("RMSProp, lr 0.01", r, opt, budget));
  }
  {
    Regression r;
    optim::Adam<double> opt({r.beta}, 0.1);
    builtin.push_back(race("Adam, lr 0.1", r, opt, budget));
  }
  // [end]

  // [custom]
  std::vector<Result> custom;
  {
    Regression r;
    optim::GradientDescent<double> opt({r.beta}, bold_driver(0.01));
    custom.push_back(race("GradientDescent, bold_driver(0.01)", r, opt, budget));
  }
  {
    Regression r;
    optim::Momentum<double> opt({r.beta}, bold_driver(0.01), {.momentum = 0.9});
    custom.push_back(race("Momentum 0.9, bold_driver(0.01)", r, opt, budget));
  }
  {
    Regression r;
    optim::RMSProp<double> opt({r.beta}, bold_driver(0.01));
    custom.push_back(race("RMSProp, bold_driver(0.01)", r, opt, budget));
  }
  {
    Regression r;
    optim::Adam<double> opt({r.beta}, bold_driver(0.1));
    custom.push_back(race("Adam, bold_driver(0.1)", r, opt, budget));
  }
  {
    Regression r;
    Lion<double> opt({r.beta}, 0.003);
    custom.push_back(race("Lion, lr 0.003", r, opt, budget));
  }
  {
    Regression r;
    Lion<double> opt({r.beta}, optim::custom([](std::size_t t, std::size_t) {
                       return 0.01 * std::pow(0.9997, double(t));  // a stateless rule, inline
                     }));
    custom.push_back(race("Lion, 0.01 * 0.9997^t (lambda)", r, opt, budget));
  }
  {
    Regression r;
    Lion<double> opt({r.beta}, optim::cosine(0.01, budget));
    custom.push_back(race("Lion, cosine(0.01)", r, opt, budget));
  }
  {
    Regression r;
    Lion<double> opt({r.beta}, bold_driver(0.003));
    custom.push_back(race("Lion, bold_driver(0.003)", r, opt, budget));
  }
  // [end]

  // [table]
  for (const auto* group : {&builtin, &custom}) {
    std::cout << "\n"
              << std::left << std::setw(36) << "optimizer, schedule" << std::right << std::setw(15)
              << "steps to 1e-6" << std::setw(19) << "error at 20000" << std::setw(15)
              << "final lr\n";
    for (const auto& res : *group) {
      std::cout << std::left << std::setw(36) << res.name << std::right << std::setw(15)
                << (res.steps_to_1e6 ? std::to_string(res.steps_to_1e6) : "-") << std::setw(19)
                << res.final_error << std::setw(14) << res.final_lr << "\n";
    }
  }
  // [end]

  // [plot]
  for (const auto* group : {&builtin, &custom}) {
    const bool first = group == &builtin;
    figures::Plot plot{
        .name = first ? "builtin" : "custom",
        .settings = {"set logscale y", "set format y '%.0e'", "set xlabel 'step'",
                     "set ylabel 'max |beta - [1, 2, 3]|'", "set key outside right",
                     "set yrange [1e-16:100]", "set xtics 5000",
                     first ? "set title 'Built-in optimizers on the note''s regression'"
                           : "set title 'Bold driver and Lion on the note''s regression'"},
        .width = 1100,
        .enhanced = false};  // names with '_' and '^' print as they are
    for (const auto& res : *group) plot.series.push_back({res.name, res.steps, res.errors});
    check(figures::draw(plot), "plot drawn");
  }
  // [end]

  // [checks]
  auto find = [&](const std::string& prefix) {
    for (const auto* group : {&builtin, &custom}) {
      for (const auto& r : *group) {
        if (r.name.rfind(prefix, 0) == 0) return r;
      }
    }
    throw std::logic_error("no result named " + prefix);
  };
  for (const auto& name : {"GradientDescent, lr", "Momentum 0.9, lr", "Nesterov", "Adam, lr"}) {
    check(find(name).final_error < 1e-6, std::string(name) + " converges");
  }
  check(find("Momentum 0.9, lr").steps_to_1e6 < find("GradientDescent, lr").steps_to_1e6 / 10,
        "momentum is 10 times faster than plain descent");
  check(find("RMSProp, lr").final_error > 1e-3, "constant-rate RMSProp stalls");
  check(find("GradientDescent, bold").steps_to_1e6 < find("GradientDescent, lr").steps_to_1e6 / 5,
        "bold driver: plain descent 5 times faster");
  check(find("Adam, bold").steps_to_1e6 < find("Adam, lr").steps_to_1e6 / 2,
        "bold driver: Adam 2 times faster");
  check(find("RMSProp, bold").final_error < 1e-12, "bold driver: RMSProp converges");
  check(find("Lion, lr").final_error > 1e-3, "constant-rate Lion stalls");
  check(find("Lion, cosine").final_error < 1e-5, "decaying rates take Lion closer");
  check(find("Lion, bold").final_lr < 1e-10 && find("Lion, bold").final_error > 1,
        "bold driver's rate collapses under Lion");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
