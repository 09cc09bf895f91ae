// Learning-rate schedules: exact sequences of every built-in schedule and combinator,
// reduce-on-plateau driven by reported losses, how optimizers consume schedules, state
// for checkpoints, user rules and bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace {

namespace opt = xgrad::optim;
using xgrad::Graph;

using xgrad_test::contains;

/// lr at steps 0, 1, ... n - 1 (epoch 0).
std::vector<double> sequence(const opt::Schedule& s, std::size_t n) {
  std::vector<double> out;
  for (std::size_t t = 0; t < n; ++t) out.push_back(s(t));
  return out;
}

void expect_sequence(const opt::Schedule& s, const std::vector<double>& want) {
  auto got = sequence(s, want.size());
  for (std::size_t t = 0; t < want.size(); ++t) {
    EXPECT_NEAR(got[t], want[t], 1e-15) << s.describe() << " at step " << t;
  }
}

const double c45 = (1 + std::cos(std::numbers::pi / 4)) / 2;  // cosine at a quarter
const double c135 = (1 + std::cos(3 * std::numbers::pi / 4)) / 2;

TEST(Schedule, ConstantAndPlainNumbers) {
  expect_sequence(opt::constant(0.1), {0.1, 0.1, 0.1});
  opt::Schedule s = 0.25;  // a number converts to a constant schedule
  EXPECT_DOUBLE_EQ(s(1000, 7), 0.25);
  EXPECT_EQ(s.describe(), "constant(0.25)");
}

TEST(Schedule, StepDecay) {
  expect_sequence(opt::step_decay(1.0, 2, 0.5), {1, 1, 0.5, 0.5, 0.25, 0.25, 0.125});
}

TEST(Schedule, Exponential) {
  expect_sequence(opt::exponential(0.1, 0.5), {0.1, 0.05, 0.025, 0.0125});
}

TEST(Schedule, InverseTime) {
  expect_sequence(opt::inverse_time(1.0, 0.5), {1, 1 / 1.5, 1 / 2.0, 1 / 2.5, 1 / 3.0});
}

TEST(Schedule, Polynomial) {
  expect_sequence(opt::polynomial(1.0, 4), {1, 0.75, 0.5, 0.25, 0, 0});
  // (1 - 0.1) (1 - t/4)^2 + 0.1
  expect_sequence(opt::polynomial(1.0, 4, 2, 0.1), {1, 0.60625, 0.325, 0.15625, 0.1, 0.1});
}

TEST(Schedule, CosineAnnealing) {
  expect_sequence(opt::cosine(1.0, 4), {1, c45, 0.5, c135, 0, 0});
  expect_sequence(opt::cosine(1.0, 2, 0.5), {1, 0.75, 0.5, 0.5});
}

TEST(Schedule, CosineWithRestarts) {
  expect_sequence(opt::cosine_restarts(1.0, 2), {1, 0.5, 1, 0.5, 1});
  // Cycles of 2, 4, 8 steps.
  expect_sequence(opt::cosine_restarts(1.0, 2, 2), {1, 0.5, 1, c45, 0.5, c135, 1});
}

TEST(Schedule, LinearWarmup) {
  expect_sequence(opt::linear_warmup(4, 0.8), {0, 0.2, 0.4, 0.6, 0.8, 0.8});
  expect_sequence(opt::linear_warmup(4, 0.8, 0.5), {0.4, 0.5, 0.6, 0.7, 0.8});
}

TEST(Schedule, WarmupThenCosine) {
  expect_sequence(opt::linear_warmup(2, opt::cosine(1.0, 4)), {0, 0.5, 1, c45, 0.5, c135, 0, 0});
}

TEST(Schedule, Sequential) {
  auto s = opt::sequential({0.1, opt::exponential(1.0, 0.5), 0.01}, {2, 4});
  expect_sequence(s, {0.1, 0.1, 1, 0.5, 0.01, 0.01});
  EXPECT_TRUE(contains(s.describe(), "at 2: exponential")) << s.describe();
}

TEST(Schedule, ByEpoch) {
  auto s = opt::by_epoch(opt::step_decay(1.0, 1, 0.5));
  EXPECT_DOUBLE_EQ(s(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(s(57, 0), 1.0);
  EXPECT_DOUBLE_EQ(s(57, 1), 0.5);
  EXPECT_DOUBLE_EQ(s(3, 3), 0.125);
}

TEST(Schedule, UserFunction) {
  auto s = opt::custom([](std::size_t t, std::size_t e) { return 1.0 / double(t + 1) + double(e); },
                       "one over t plus epoch");
  EXPECT_DOUBLE_EQ(s(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(s(3, 2), 2.25);
  EXPECT_EQ(s.describe(), "one over t plus epoch");
}

TEST(Schedule, ReduceOnPlateauExactSequence) {
  auto s = opt::reduce_on_plateau(
      1.0, {.factor = 0.5, .patience = 2, .threshold = 0, .cooldown = 1, .min_lr = 0.2});
  const std::vector<double> losses = {10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
  // By PyTorch's rule: a reduction once 3 (> patience) reports fail to improve; a cooldown
  // report is not counted; the floor 0.2 stops the halving.
  const std::vector<double> want = {1,    1,    1,    1,   0.5, 0.5, 0.5, 0.5, 0.25,
                                    0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2};
  for (std::size_t i = 0; i < losses.size(); ++i) {
    s.report(losses[i]);
    EXPECT_DOUBLE_EQ(s(i), want[i]) << "after report " << i + 1;
  }
}

TEST(Schedule, ReduceOnPlateauRelativeThreshold) {
  auto s = opt::reduce_on_plateau(1.0, {.factor = 0.1, .patience = 0, .threshold = 0.1});
  s.report(10);   // best 10
  s.report(9.5);  // not below 10 * 0.9: counts as no improvement -> reduce (patience 0)
  EXPECT_DOUBLE_EQ(s(0), 0.1);
  s.report(8.0);  // improves on 10 * 0.9
  EXPECT_DOUBLE_EQ(s(0), 0.1);
}

TEST(Schedule, CopiesAreIndependent) {
  auto a = opt::reduce_on_plateau(1.0, {.factor = 0.5, .patience = 0});
  a.report(1);
  auto b = a;
  b.report(2);
  EXPECT_DOUBLE_EQ(b(0), 0.5);
  EXPECT_DOUBLE_EQ(a(0), 1.0);
}

TEST(Schedule, StateRoundTripThroughCombinators) {
  auto s = opt::sequential({opt::linear_warmup(2, opt::reduce_on_plateau(1.0, {.patience = 0})),
                            opt::reduce_on_plateau(0.5, {.patience = 0})},
                           {10});
  s.report(3);
  s.report(4);  // both plateau rules reduce
  auto st = s.state();
  EXPECT_DOUBLE_EQ(st.at("0.lr"), 0.1);
  EXPECT_DOUBLE_EQ(st.at("1.lr"), 0.05);
  auto fresh = opt::sequential({opt::linear_warmup(2, opt::reduce_on_plateau(1.0, {.patience = 0})),
                                opt::reduce_on_plateau(0.5, {.patience = 0})},
                               {10});
  fresh.set_state(st);
  EXPECT_EQ(fresh.state(), st);
  EXPECT_DOUBLE_EQ(fresh(2), 0.1);
  EXPECT_DOUBLE_EQ(fresh(10), 0.05);
  auto plateau = opt::reduce_on_plateau(1.0);
  EXPECT_THROW(plateau.set_state({{"lr", 1.0}}), xgrad::ValueError);
}

/// A user-written rule: halves the rate every time a loss above 1 is reported.
class HalveOnHighLoss final : public opt::LrRule {
 public:
  double lr(std::size_t, std::size_t) const override { return lr_; }
  void report(double loss) override {
    if (loss > 1) lr_ /= 2;
  }
  std::unique_ptr<opt::LrRule> clone() const override {
    return std::make_unique<HalveOnHighLoss>(*this);
  }
  std::string describe() const override { return "halve-on-high-loss"; }

 private:
  double lr_ = 0.4;
};

TEST(Schedule, UserRuleSubclass) {
  opt::Schedule s(std::make_unique<HalveOnHighLoss>());
  s.report(2);
  s.report(0.5);
  EXPECT_DOUBLE_EQ(s(0), 0.2);
  EXPECT_EQ(s.describe(), "halve-on-high-loss");
  EXPECT_TRUE(s.state().empty());
}

TEST(Schedule, BadArguments) {
  auto msg = [](auto f) {
    try {
      f();
    } catch (const xgrad::ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_TRUE(contains(msg([] { opt::step_decay(0.1, 0); }), "step_decay: step_size"));
  EXPECT_TRUE(contains(msg([] { opt::cosine(-1, 10); }), "cosine: lr0 = -1"));
  EXPECT_TRUE(contains(msg([] { opt::exponential(0.1, std::nan("")); }), "gamma = nan"));
  EXPECT_TRUE(contains(msg([] { opt::polynomial(0.1, 0); }), "total"));
  EXPECT_TRUE(contains(msg([] { opt::cosine_restarts(0.1, 5, 0); }), "mult"));
  EXPECT_TRUE(contains(msg([] { opt::linear_warmup(5, 0.1, 2); }), "start_factor"));
  EXPECT_TRUE(contains(msg([] { opt::sequential({0.1, 0.2}, {}); }), "need 1 milestones"));
  EXPECT_TRUE(contains(msg([] { opt::sequential({0.1, 0.2, 0.3}, {5, 5}); }), "increasing"));
  EXPECT_TRUE(contains(msg([] { opt::sequential({}, {}); }), "no schedules"));
  EXPECT_TRUE(contains(msg([] { opt::reduce_on_plateau(0.1, {.factor = 1}); }), "factor"));
  EXPECT_TRUE(contains(msg([] { opt::custom(nullptr); }), "empty function"));
  EXPECT_TRUE(contains(msg([] { opt::Schedule s(-0.5); }), "lr = -0.5"));
  EXPECT_TRUE(contains(msg([] { opt::Schedule s{std::unique_ptr<opt::LrRule>()}; }), "null"));
}

// ---------------------------------------------------------------------------------------
// Optimizers consume schedules: step t uses the rate at t, epochs come from set_epoch,
// losses given to step() drive reduce-on-plateau.

struct Line {
  Graph<double> g;
  xgrad::Expr<double> x = g.parameter("x", xt::xarray<double>(0.0));
  xgrad::Expr<double> loss = 3.0 * x;  // gradient 3 everywhere
  xgrad::Function<double> f = xgrad::compile({loss, xgrad::grad(loss, {x})[0]});
};

TEST(ScheduleInOptimizer, EachStepUsesTheScheduledRate) {
  Line l;
  auto s = opt::linear_warmup(2, opt::step_decay(0.4, 2, 0.5));
  opt::SGD<double> o({l.x}, s);
  double x = 0;
  for (std::size_t t = 0; t < 7; ++t) {
    EXPECT_DOUBLE_EQ(o.lr(), s(t));
    o.step(l.f.run(), 1);
    EXPECT_DOUBLE_EQ(o.last_lr(), s(t));
    x -= s(t) * 3;
    EXPECT_NEAR(l.g.value(l.x)(), x, 1e-15);
  }
}

TEST(ScheduleInOptimizer, EpochComesFromSetEpoch) {
  Line l;
  opt::SGD<double> o({l.x}, opt::by_epoch(opt::exponential(1.0, 0.1)));
  o.step(l.f.run(), 1);
  EXPECT_DOUBLE_EQ(o.last_lr(), 1.0);
  o.set_epoch(2);
  EXPECT_EQ(o.epoch(), 2u);
  o.step(l.f.run(), 1);
  EXPECT_NEAR(o.last_lr(), 0.01, 1e-17);
}

TEST(ScheduleInOptimizer, PlateauDrivenByTheLossGivenToStep) {
  Line l;
  opt::SGD<double> o({l.x}, opt::reduce_on_plateau(1.0, {.factor = 0.5, .patience = 1}));
  std::vector<double> rates;
  for (int i = 0; i < 6; ++i) {
    const auto& out = l.f.run();
    o.step(5.0, out, 1);  // a loss that never improves
    rates.push_back(o.last_lr());
  }
  // The rate of a step is taken before its loss is reported.
  EXPECT_EQ(rates, (std::vector<double>{1, 1, 1, 0.5, 0.5, 0.25}));
  // report() feeds an epoch-level loss without stepping.
  o.report(5.0);
  o.report(5.0);
  EXPECT_DOUBLE_EQ(o.lr(), 0.125);
  EXPECT_THROW(o.report(std::nan("")), xgrad::ValueError);
}

}  // namespace
