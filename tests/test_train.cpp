// xgrad::train: the Trainer's loop against the hand-written one, metrics against hand
// computations, callbacks, and resuming in the middle of an epoch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace data = xgrad::data;
namespace nn = xgrad::nn;
namespace optim = xgrad::optim;
namespace train = xgrad::train;
using xgrad::Expr;
using xgrad::Graph;
using xgrad_test::contains;

namespace {

// y = 3 x0 - 2 x1 + 1 + noise: 200 rows.
data::TensorDataset<double> regression_data() {
  std::mt19937 rng(3);
  std::normal_distribution<double> n(0, 1);
  xt::xarray<double> x = xt::zeros<double>({200, 2}), y = xt::zeros<double>({200});
  for (std::size_t i = 0; i < 200; ++i) {
    x(i, 0) = n(rng);
    x(i, 1) = n(rng);
    y(i) = 3 * x(i, 0) - 2 * x(i, 1) + 1 + 0.1 * n(rng);
  }
  return {x, y};
}

// Three Gaussian blobs in 2-d, labels 0..2: 300 rows.
data::TensorDataset<float, std::int64_t> blobs(std::uint32_t seed = 5) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 0.6f);
  const float cx[3] = {-2, 2, 0}, cy[3] = {0, 0, 2.5f};
  xt::xarray<float> x = xt::zeros<float>({300, 2});
  xt::xarray<std::int64_t> y = xt::zeros<std::int64_t>({300});
  for (std::size_t i = 0; i < 300; ++i) {
    const std::size_t c = i % 3;
    x(i, 0) = cx[c] + n(rng);
    x(i, 1) = cy[c] + n(rng);
    y(i) = static_cast<std::int64_t>(c);
  }
  return {x, y};
}

struct Linreg {
  Graph<double> g;
  Expr<double> x = g.input("x", {xgrad::open, 2});
  Expr<double> y = g.input("y", {xgrad::open});
  Expr<double> w = g.parameter("w", xt::zeros<double>({2}));
  Expr<double> b = g.parameter("b", xt::xarray<double>(0.0));
  Expr<double> pred = xgrad::matmul(x, w) + b;
  Expr<double> loss = xgrad::mse(pred, y);
};

struct Net : nn::Module<float> {
  nn::Linear<float> fc1, fc2;
  explicit Net(Graph<float>& g)
      : Module(g), fc1(g, 2, 16, {.seed = 1}), fc2(g, 16, 3, {.seed = 2}) {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  Expr<float> forward(Expr<float> x) override { return fc2(xgrad::relu(fc1(x))); }
};

Expr<float> ce(Expr<float> p, Expr<float> y) { return xgrad::cross_entropy(p, y); }

// Records the hooks in order.
struct Recorder : train::Callback<double> {
  std::vector<std::string> calls;
  void on_train_begin(train::Trainer<double>&) override { calls.push_back("train_begin"); }
  void on_epoch_begin(train::Trainer<double>& t) override {
    calls.push_back("epoch_begin " + std::to_string(t.epoch()));
  }
  void on_batch_begin(train::Trainer<double>&) override { calls.push_back("batch_begin"); }
  void on_batch_end(train::Trainer<double>& t) override {
    calls.push_back("batch_end " + std::to_string(t.batch()));
  }
  void on_epoch_end(train::Trainer<double>& t) override {
    calls.push_back("epoch_end " + std::to_string(t.history().size()));
  }
  void on_train_end(train::Trainer<double>&) override { calls.push_back("train_end"); }
};

// Stops the run after a given number of batches in total.
struct StopAfter : train::Callback<double> {
  std::size_t left;
  explicit StopAfter(std::size_t n) : left(n) {}
  void on_batch_end(train::Trainer<double>& t) override {
    if (--left == 0) t.stop("test stop");
  }
};

}  // namespace

TEST(Trainer, EqualsTheHandWrittenLoopBitForBit) {
  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 32, .seed = 9});
  Linreg by_hand, fitted;
  {
    optim::Momentum<double> opt({by_hand.w, by_hand.b}, 0.05);
    std::vector<Expr<double>> outs{by_hand.loss};
    for (auto d : xgrad::grad(by_hand.loss, {by_hand.w, by_hand.b})) outs.push_back(d);
    auto step = xgrad::compile(outs);
    for (std::size_t e = 0; e < 3; ++e) {
      opt.set_epoch(e);
      for (const auto& batch : loader.epoch(e))
        opt.step(step.run(batch.feeds(by_hand.x, by_hand.y)), 1);
    }
  }
  optim::Momentum<double> opt({fitted.w, fitted.b}, 0.05);
  train::Trainer<double> t({.x = fitted.x, .y = fitted.y, .loss = fitted.loss}, opt);
  const auto& h = t.fit(loader, {.epochs = 3});
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(opt.steps(), 3 * loader.num_batches());
  const auto& a = by_hand.g.value(by_hand.w);
  const auto& b = fitted.g.value(fitted.w);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)), 0);
  EXPECT_EQ(by_hand.g.value(by_hand.b)(), fitted.g.value(fitted.b)());
  EXPECT_LT(h.last("loss"), h.column("loss").front());
}

TEST(Trainer, HooksRunInOrder) {
  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 100});
  Linreg m;
  optim::SGD<double> opt({m.w, m.b}, 0.1);
  train::Trainer<double> t({.x = m.x, .y = m.y, .loss = m.loss}, opt);
  auto rec = std::make_shared<Recorder>();
  t.add(rec);
  t.fit(loader, {.epochs = 2});
  const std::vector<std::string> want = {
      "train_begin", "epoch_begin 0", "batch_begin",   "batch_end 1", "batch_begin",
      "batch_end 2", "epoch_end 1",   "epoch_begin 1", "batch_begin", "batch_end 1",
      "batch_begin", "batch_end 2",   "epoch_end 2",   "train_end"};
  EXPECT_EQ(rec->calls, want);
}

TEST(Trainer, ModuleWithValidationAndMetrics) {
  const auto set = blobs(), val = blobs(8);
  data::DataLoader<float, std::int64_t> loader(set, {.batch_size = 30, .seed = 1});
  data::DataLoader<float, std::int64_t> val_loader(val, {.batch_size = 64, .shuffle = false});
  Graph<float> g;
  auto x = g.input("x", {xgrad::open, 2});
  auto y = g.input("y", {xgrad::open}, xgrad::DType::int64);
  Net net(g);
  auto task = train::supervised<float>(net, x, y, ce);
  optim::Adam<float> adam(net.parameters(), 0.02);
  train::Trainer<float> t(task, adam, {.metrics = {train::accuracy<float>()}});
  const auto& h = t.fit(loader, {.epochs = 8, .validation = &val_loader});
  for (const char* c : {"epoch", "loss", "accuracy", "lr", "val_loss", "val_accuracy", "seconds"}) {
    EXPECT_TRUE(h.has(c)) << c;
  }
  EXPECT_GT(h.last("val_accuracy"), 0.9);

  // val_accuracy against argmax computed by hand over the evaluation graph's logits.
  auto predict = xgrad::compile({task.eval_output});
  std::size_t correct = 0;
  const auto& logits = predict.run({{x, val.features()}})[0];
  for (std::size_t i = 0; i < val.size(); ++i) {
    std::size_t best = 0;
    for (std::size_t c = 1; c < 3; ++c) best = logits(i, c) > logits(i, best) ? c : best;
    correct += static_cast<std::int64_t>(best) == val.targets()(i);
  }
  EXPECT_DOUBLE_EQ(t.evaluate(val_loader).get("accuracy"), double(correct) / val.size());
  EXPECT_DOUBLE_EQ(h.last("val_accuracy"), double(correct) / val.size());
}

TEST(Metrics, AgainstHandComputations) {
  // Logits chosen so that predictions are 0, 2, 1, 1 against labels 0, 1, 1, 2.
  xt::xarray<float> logits = {{3, 1, 2}, {0, 1, 2}, {0, 5, 1}, {1, 4, 3}};
  xt::xarray<std::int64_t> labels = {0, 1, 1, 2};
  data::TensorDataset<float, std::int64_t> set(logits, labels);
  data::DataLoader<float, std::int64_t> loader(set, {.batch_size = 3, .shuffle = false});
  Graph<float> g;
  auto x = g.input("x", {xgrad::open, 3});
  auto y = g.input("y", {xgrad::open}, xgrad::DType::int64);
  auto w = g.parameter("w", xt::xarray<float>(1.0f));
  auto out = x * w;
  optim::SGD<float> opt({w}, 0.0);
  train::Trainer<float> t({.x = x, .y = y, .loss = xgrad::cross_entropy(out, y), .output = out},
                          opt);
  train::Accuracy<float> acc;
  train::TopKAccuracy<float> top2(2);
  train::ConfusionMatrix<float> cm(3);
  t.evaluate(loader, {&acc, &top2, &cm});
  EXPECT_DOUBLE_EQ(acc.value(), 0.5);
  // Top-2: row 1 (label 1: logits 0 1 2, second) yes; row 3 (label 2: 3 is second) yes.
  EXPECT_DOUBLE_EQ(top2.value(), 1.0);
  EXPECT_EQ(top2.name(), "top2_accuracy");
  xt::xarray<double> want = {{1, 0, 0}, {0, 1, 1}, {0, 1, 0}};
  EXPECT_EQ(cm.matrix(), want);
  EXPECT_DOUBLE_EQ(cm.value(), 0.5);
}

TEST(Metrics, RegressionAgainstHandComputations) {
  xt::xarray<double> pred = {1, 2, 4, 3}, target = {1, 3, 2, 3};
  data::TensorDataset<double> set(pred, target);
  data::DataLoader<double> loader(set, {.batch_size = 3, .shuffle = false});
  Graph<double> g;
  auto x = g.input("x", {xgrad::open});
  auto y = g.input("y", {xgrad::open});
  auto w = g.parameter("w", xt::xarray<double>(1.0));
  auto out = x * w;
  optim::SGD<double> opt({w}, 0.0);
  train::Trainer<double> t({.x = x, .y = y, .loss = xgrad::mse(out, y), .output = out}, opt);
  train::RegressionMetric<double> mae(train::Regression::mae), rmse(train::Regression::rmse),
      r2(train::Regression::r2);
  t.evaluate(loader, {&mae, &rmse, &r2});
  // Errors 0, -1, 2, 0; targets mean 2.25, SS_tot = 1.5625 + 0.5625 + 0.0625 + 0.5625.
  EXPECT_DOUBLE_EQ(mae.value(), 0.75);
  EXPECT_DOUBLE_EQ(rmse.value(), std::sqrt(5.0 / 4));
  EXPECT_NEAR(r2.value(), 1 - 5.0 / 2.75, 1e-12);
}

// Each built-in metric: state() after a batch, restored into a fresh copy, gives the same
// value and, after one more batch into both, the same state as the original; a state of
// another size is refused naming the metric.
TEST(Metrics, StateRoundTripContinuesExactly) {
  struct Case {
    std::shared_ptr<train::Metric<double>> metric;
    std::vector<xt::xarray<double>> first, second;  // two batches' statistics
    std::size_t rows_first, rows_second;
  };
  const std::vector<Case> cases = {
      {train::accuracy<double>(), {xt::xarray<double>(3.0)}, {xt::xarray<double>(1.0)}, 4, 5},
      {train::top_k_accuracy<double>(2),
       {xt::xarray<double>(2.0)},
       {xt::xarray<double>(5.0)},
       3,
       6},
      {std::make_shared<train::ConfusionMatrix<double>>(3),
       {xt::xarray<double>{{1, 2, 0}, {0, 1, 0}, {3, 0, 1}}},
       {xt::xarray<double>{{0, 0, 1}, {1, 1, 0}, {0, 0, 2}}},
       8,
       5},
      {train::mae<double>(),
       {xt::xarray<double>(2.5), xt::xarray<double>(3.25), xt::xarray<double>(4.0),
        xt::xarray<double>(9.5), xt::xarray<double>(4.0)},
       {xt::xarray<double>(1.0), xt::xarray<double>(0.75), xt::xarray<double>(-2.0),
        xt::xarray<double>(3.0), xt::xarray<double>(2.0)},
       4,
       2},
  };
  for (const auto& c : cases) {
    const std::string name = c.metric->name();
    auto a = c.metric->clone(), b = c.metric->clone();
    a->reset();
    b->reset();
    const auto fresh = b->state();
    a->accumulate(c.first, c.rows_first);
    const auto s = a->state();
    ASSERT_TRUE(s.has_value()) << name;
    EXPECT_NE(*s, *fresh) << name << ": the state holds the batch";
    b->restore(*s);
    EXPECT_EQ(b->state(), s) << name;
    EXPECT_EQ(b->value(), a->value()) << name;
    a->accumulate(c.second, c.rows_second);
    b->accumulate(c.second, c.rows_second);
    EXPECT_EQ(b->state(), a->state()) << name;
    EXPECT_EQ(b->value(), a->value()) << name;

    std::vector<double> longer = *s;
    longer.push_back(1);
    try {
      b->restore(longer);
      ADD_FAILURE() << name << ": no error";
    } catch (const xgrad::ValueError& e) {
      EXPECT_TRUE(contains(e.what(), "::restore: a state of " + std::to_string(longer.size()) +
                                         " numbers, expected " + std::to_string(s->size())))
          << e.what();
    }
    EXPECT_EQ(b->state(), a->state()) << name << ": unchanged by a refused state";
  }
  // The confusion matrix's state is its counts row by row.
  train::ConfusionMatrix<double> cm(3);
  cm.accumulate(cases[2].first, 8);
  const auto counts = cm.state().value();
  EXPECT_EQ(counts[1], 2.0);
  EXPECT_EQ(counts[6], 3.0);
  // Row counts must be whole and not negative.
  train::Accuracy<double> acc;
  EXPECT_THROW(acc.restore(std::vector<double>{1, 2.5}), xgrad::ValueError);
  EXPECT_THROW(acc.restore(std::vector<double>{1, -1}), xgrad::ValueError);
}

// A user metric written without state() and restore() compiles, saves nothing and refuses
// a state; a trainer resumed inside an epoch without it reports NaN until the epoch ends.
TEST(Metrics, UserMetricsWithoutStateReportNaNWhenResumedInsideAnEpoch) {
  struct Sum : train::Metric<double> {
    std::string name() const override { return "sum"; }
    std::vector<Expr<double>> statistics(Expr<double> p, Expr<double>) const override {
      return {xgrad::sum(p)};
    }
    void reset() override { total = 0; }
    void accumulate(std::span<const xt::xarray<double>> s, std::size_t) override {
      total += s[0]();
    }
    double value() const override { return total; }
    std::unique_ptr<Metric> clone() const override { return std::make_unique<Sum>(*this); }
    double total = 0;
  };
  Sum sum;
  EXPECT_FALSE(sum.state().has_value());
  try {
    sum.restore(std::vector<double>{1});
    ADD_FAILURE() << "no error";
  } catch (const xgrad::ValueError& e) {
    EXPECT_TRUE(contains(e.what(), "'sum' does not save its state")) << e.what();
  }

  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 50, .shuffle = false});
  Linreg m;
  optim::SGD<double> opt({m.w, m.b}, 0.01);
  train::Trainer<double> t({.x = m.x, .y = m.y, .loss = m.loss, .output = m.pred}, opt,
                           {.metrics = {std::make_shared<Sum>(), train::mae<double>()}});
  ASSERT_EQ(t.train_metrics().size(), 2u);
  t.set_position(0, 2, 10.0, 100, {std::nullopt, std::vector<double>{40, 0, 0, 0, 100}});
  t.fit(loader, {.epochs = 2});
  EXPECT_TRUE(std::isnan(t.history().column("sum")[0]));
  EXPECT_FALSE(std::isnan(t.history().column("sum")[1]));
  EXPECT_FALSE(std::isnan(t.history().column("mae")[0]));
  // One state per training metric, or none.
  EXPECT_THROW(t.set_position(0, 1, 1.0, 50, {std::nullopt}), xgrad::ValueError);
  EXPECT_THROW(t.set_position(0, 1, 1.0, 50, {std::nullopt, std::vector<double>{1}}),
               xgrad::ValueError);
  EXPECT_EQ(t.epoch(), 2u) << "a refused position changes nothing";
}

TEST(Metrics, RefuseShapesThatWouldBroadcast) {
  Graph<double> g;
  auto p = g.input("p", {xgrad::open, 1});
  auto y = g.input("y", {xgrad::open});
  train::RegressionMetric<double> mae(train::Regression::mae);
  try {
    mae.statistics(p, y);
    FAIL() << "no error";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "(?, 1)")) << e.what();
    EXPECT_TRUE(contains(e.what(), "squeeze")) << e.what();
  }
}

TEST(Trainer, StopAndResumeInsideAnEpochEqualsAnUninterruptedRun) {
  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 16, .seed = 4, .prefetch = 2});
  Linreg whole, split;
  optim::Adam<double> o1({whole.w, whole.b}, 0.05), o2({split.w, split.b}, 0.05);
  train::Trainer<double> t1({.x = whole.x, .y = whole.y, .loss = whole.loss}, o1);
  t1.fit(loader, {.epochs = 3});
  train::Trainer<double> t2({.x = split.x, .y = split.y, .loss = split.loss}, o2);
  t2.add(std::make_shared<StopAfter>(loader.num_batches() + 5));
  t2.fit(loader, {.epochs = 3});
  EXPECT_EQ(t2.stop_reason(), "test stop");
  EXPECT_EQ(t2.epoch(), 1u);
  EXPECT_EQ(t2.batch(), 5u);
  t2.fit(loader, {.epochs = 3});  // StopAfter's count is spent: runs to the end
  EXPECT_EQ(o2.steps(), o1.steps());
  EXPECT_EQ(split.g.value(split.w), whole.g.value(whole.w));
  EXPECT_EQ(t2.history().size(), 3u);
  EXPECT_EQ(t2.history().last("loss"), t1.history().last("loss"));
}

TEST(Callbacks, EarlyStoppingStopsAndRestoresTheBestWeights) {
  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 50, .seed = 2});
  Linreg m;
  optim::SGD<double> opt({m.w, m.b}, 0.05);
  train::Trainer<double> t({.x = m.x, .y = m.y, .loss = m.loss}, opt);
  // The loss falls every epoch, so with maximize the first epoch stays the best.
  auto es = std::make_shared<train::EarlyStopping<double>>(
      train::EarlyStoppingOptions{.monitor = "loss", .maximize = true, .patience = 2});
  struct Snapshot : train::Callback<double> {
    xt::xarray<double> first;
    void on_epoch_end(train::Trainer<double>& t) override {
      if (t.history().size() == 1) first = t.state()[0].node.graph().value(t.state()[0].node);
    }
  };
  auto snap = std::make_shared<Snapshot>();
  t.add(snap).add(es);
  const auto& h = t.fit(loader, {.epochs = 10});
  EXPECT_EQ(h.size(), 3u);
  EXPECT_TRUE(contains(t.stop_reason(), "did not improve for 2 epochs")) << t.stop_reason();
  EXPECT_EQ(es->best_epoch(), 1u);
  EXPECT_EQ(m.g.value(m.w), snap->first);
}

TEST(Callbacks, TerminateOnNaNAndTimeBudget) {
  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 20});
  {
    Linreg m;
    optim::SGD<double> opt({m.w, m.b}, 50.0);  // diverges
    train::Trainer<double> t({.x = m.x, .y = m.y, .loss = m.loss}, opt);
    t.add(std::make_shared<train::TerminateOnNaN<double>>());
    t.fit(loader, {.epochs = 50});
    EXPECT_TRUE(contains(t.stop_reason(), "loss is")) << t.stop_reason();
    EXPECT_LT(t.epoch(), 50u);
    EXPECT_TRUE(xt::all(xt::isfinite(m.g.value(m.w)))) << "the bad step was not applied";
  }
  {
    Linreg m;
    optim::SGD<double> opt({m.w, m.b}, 0.01);
    train::Trainer<double> t({.x = m.x, .y = m.y, .loss = m.loss}, opt);
    t.add(std::make_shared<train::TimeBudget<double>>(0.0));
    t.fit(loader, {.epochs = 5});
    EXPECT_EQ(opt.steps(), 1u);
    EXPECT_TRUE(contains(t.stop_reason(), "time budget")) << t.stop_reason();
  }
}

TEST(Callbacks, StoppingRuleOfTheSeed) {
  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 200, .shuffle = false});
  Linreg m;
  optim::GradientDescent<double> opt({m.w, m.b}, 0.2);
  train::Trainer<double> t({.x = m.x, .y = m.y, .loss = m.loss}, opt);
  t.fit(loader, {.epochs = 100000, .stopping = optim::grad_norm_below(1e-6)});
  EXPECT_TRUE(contains(t.stop_reason(), "gradient norm")) << t.stop_reason();
  EXPECT_NEAR(m.g.value(m.w)(0), 3.0, 0.05);
  EXPECT_NEAR(m.g.value(m.w)(1), -2.0, 0.05);
}

TEST(Callbacks, ProgressBarAndCsvLogger) {
  const auto set = regression_data();
  data::DataLoader<double> loader(set, {.batch_size = 40});
  Linreg m;
  optim::SGD<double> opt({m.w, m.b}, 0.05);
  train::Trainer<double> t({.x = m.x, .y = m.y, .loss = m.loss}, opt);
  std::ostringstream plain, tty;
  t.add(std::make_shared<train::ProgressBar<double>>(train::ProgressOptions{.out = &plain}));
  t.add(std::make_shared<train::ProgressBar<double>>(
      train::ProgressOptions{.out = &tty, .terminal = true, .interval = 0}));
  t.add(std::make_shared<train::CsvLogger<double>>("train_test_history.csv"));
  t.fit(loader, {.epochs = 2});
  const std::string p = plain.str();
  EXPECT_EQ(std::count(p.begin(), p.end(), '\n'), 2) << p;
  EXPECT_TRUE(contains(p, "epoch 2/2 5 batches")) << p;
  EXPECT_TRUE(contains(p, "loss ")) << p;
  EXPECT_EQ(p.find('\r'), std::string::npos);
  EXPECT_TRUE(contains(tty.str(), "\repoch 1/2 [")) << tty.str();
  EXPECT_TRUE(contains(tty.str(), "ETA")) << tty.str();
  std::ifstream csv("train_test_history.csv");
  std::string header, row1, row2, extra;
  std::getline(csv, header);
  std::getline(csv, row1);
  std::getline(csv, row2);
  EXPECT_EQ(header, "epoch,loss,lr,seconds");
  EXPECT_EQ(row1.substr(0, 2), "1,");
  EXPECT_EQ(row2.substr(0, 2), "2,");
  EXPECT_FALSE(std::getline(csv, extra));
}

TEST(History, ColumnsAndMissingValues) {
  train::History h;
  train::Logs a, b;
  a.set("epoch", 1);
  a.set("loss", 0.5);
  b.set("epoch", 2);
  b.set("loss", 0.25);
  b.set("val_loss", 0.3);
  h.append(a);
  h.append(b);
  EXPECT_EQ(h.columns(), (std::vector<std::string>{"epoch", "loss", "val_loss"}));
  EXPECT_TRUE(std::isnan(h.column("val_loss")[0]));
  EXPECT_EQ(h.last("val_loss"), 0.3);
  EXPECT_THROW(h.column("accuracy"), xgrad::ValueError);
  std::ostringstream os;
  h.write_csv(os);
  EXPECT_EQ(os.str(), "epoch,loss,val_loss\n1,0.5,\n2,0.25,0.29999999999999999\n");
}
