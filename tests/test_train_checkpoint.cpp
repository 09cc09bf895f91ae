// Checkpoints: round trips, exact resume (after an epoch and inside one, with shuffling,
// prefetch and dropout), and the errors of files that do not fit.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <sstream>
#include <string_view>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace data = xgrad::data;
namespace nn = xgrad::nn;
namespace optim = xgrad::optim;
namespace train = xgrad::train;
namespace fs = std::filesystem;
using xgrad::Expr;
using xgrad::Graph;
using xgrad_test::contains;

namespace {

data::TensorDataset<double, std::int64_t> classes() {
  std::mt19937 rng(11);
  std::normal_distribution<double> n(0, 1);
  xt::xarray<double> x = xt::zeros<double>({230, 4});
  xt::xarray<std::int64_t> y = xt::zeros<std::int64_t>({230});
  for (std::size_t i = 0; i < 230; ++i) {
    for (std::size_t j = 0; j < 4; ++j) x(i, j) = n(rng);
    y(i) = (x(i, 0) + x(i, 1) > 0) + (x(i, 2) > 0.5);
  }
  return {x, y};
}

// A model, its optimizer and trainer, built alike each time (only the initial weights'
// `seed` differs).
struct TrainRun {
  Graph<double> g;
  Expr<double> x = g.input("x", {xgrad::open, 4});
  Expr<double> y = g.input("y", {xgrad::open}, xgrad::DType::int64);
  nn::Sequential<double> model{g};
  std::unique_ptr<optim::Adam<double>> adam;
  std::unique_ptr<train::Trainer<double>> trainer;

  explicit TrainRun(std::uint64_t seed, std::size_t hidden = 8,
                    std::shared_ptr<train::Replicas<double>> replicas = nullptr,
                    std::vector<std::shared_ptr<train::Metric<double>>> metrics = {
                        train::accuracy<double>()}) {
    model.add<nn::Linear>(4, hidden, nn::LinearOptions{.seed = seed});
    model.add<nn::ReLU>();
    model.add<nn::Dropout>(0.3, 77);  // the mask seed is part of the model's code
    model.add<nn::Linear>(hidden, 3, nn::LinearOptions{.seed = seed + 2});
    auto task = train::supervised<double>(
        model, x, y, [](Expr<double> p, Expr<double> t) { return xgrad::cross_entropy(p, t); });
    adam = std::make_unique<optim::Adam<double>>(model.parameters(), optim::cosine(0.01, 60, 1e-4));
    trainer = std::make_unique<train::Trainer<double>>(
        task, *adam,
        train::TrainerOptions<double>{.metrics = std::move(metrics),
                                      .replicas = std::move(replicas)});
  }
  std::vector<xt::xarray<double>> values() {
    std::vector<xt::xarray<double>> v;
    for (const auto& s : model.state()) v.push_back(g.value(s.node));
    return v;
  }
};

// A regression MLP with dropout on the same features (target: a function of them), with
// MAE and R^2; built alike each time but for the initial weights' seed.
struct RegressionRun {
  Graph<double> g;
  Expr<double> x = g.input("x", {xgrad::open, 4});
  Expr<double> y = g.input("y", {xgrad::open, 1});
  nn::Sequential<double> model{g};
  std::unique_ptr<optim::Adam<double>> adam;
  std::unique_ptr<train::Trainer<double>> trainer;

  explicit RegressionRun(std::uint64_t seed) {
    model.add<nn::Linear>(4, 8, nn::LinearOptions{.seed = seed});
    model.add<nn::Tanh>();
    model.add<nn::Dropout>(0.2, 78);
    model.add<nn::Linear>(8, 1, nn::LinearOptions{.seed = seed + 2});
    auto task = train::supervised<double>(
        model, x, y, [](Expr<double> p, Expr<double> t) { return xgrad::mse(p, t); });
    adam = std::make_unique<optim::Adam<double>>(model.parameters(), 0.01);
    trainer = std::make_unique<train::Trainer<double>>(
        task, *adam,
        train::TrainerOptions<double>{.metrics = {train::mae<double>(), train::r2<double>()}});
  }
  std::vector<xt::xarray<double>> values() {
    std::vector<xt::xarray<double>> v;
    for (const auto& s : model.state()) v.push_back(g.value(s.node));
    return v;
  }
};

data::TensorDataset<double> regression_set() {
  const auto c = classes();
  xt::xarray<double> x = c.features(), y = xt::zeros<double>({x.shape(0), std::size_t{1}});
  for (std::size_t i = 0; i < x.shape(0); ++i)
    y(i, 0) = std::sin(x(i, 0)) + 0.5 * x(i, 1) * x(i, 2);
  return {x, y};
}

bool same_bytes(const std::vector<xt::xarray<double>>& a,
                const std::vector<xt::xarray<double>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].shape() != b[i].shape() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(double)) != 0) {
      return false;
    }
  }
  return true;
}

struct StopAfter : train::Callback<double> {
  std::size_t left;
  explicit StopAfter(std::size_t n) : left(n) {}
  void on_batch_end(train::Trainer<double>& t) override {
    if (left > 0 && --left == 0) t.stop("interrupted");
  }
};

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const xgrad::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Stands in for `size` processes that all compute what this one does (identical copies):
// a combine averages to the outputs themselves and sums to size times them. Counts the
// collective calls.
struct Copies : train::Replicas<double> {
  std::size_t n, me;
  std::size_t combines = 0, sums = 0, broadcasts = 0, barriers = 0;
  std::vector<xt::xarray<double>> out;
  Copies(std::size_t size, std::size_t rank) : n(size), me(rank) {}
  std::size_t size() const override { return n; }
  std::size_t rank() const override { return me; }
  const std::vector<xt::xarray<double>>& combine(train::Phase,
                                                 const std::vector<xt::xarray<double>>& outputs,
                                                 std::size_t first, std::size_t last) override {
    ++combines;
    out = outputs;
    for (std::size_t i = first; i < last; ++i) out[i] *= static_cast<double>(n);
    return out;
  }
  void sum(std::span<double> values) override {
    ++sums;
    for (double& v : values) v *= static_cast<double>(n);
  }
  void check_same(std::string_view, std::size_t) override {}
  void broadcast(const std::vector<Expr<double>>&) override { ++broadcasts; }
  void barrier() override { ++barriers; }
};

fs::path scratch(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("xgrad_ckpt_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// The columns of two histories that differ in some bit, all but "seconds" (the clock's);
// "(columns)" when their columns or lengths differ.
std::vector<std::string> differing_columns(const train::History& a, const train::History& b) {
  if (a.columns() != b.columns() || a.size() != b.size()) return {"(columns)"};
  std::vector<std::string> out;
  for (const auto& c : a.columns()) {
    const auto x = a.column(c), y = b.column(c);
    if (c != "seconds" && std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) != 0) {
      out.push_back(c);
    }
  }
  return out;
}

// Runs make(1) stopped after stop_at updates, with ModelCheckpoint after every one, then
// make(99) (other weights) resumed from its latest checkpoint, to `epochs` epochs; returns
// the resumed run.
template <class Run, class L>
std::unique_ptr<Run> stop_and_resume(const std::function<std::unique_ptr<Run>(std::uint64_t)>& make,
                                     const data::DataLoader<double, L>& loader, std::size_t epochs,
                                     std::size_t stop_at, const std::string& name) {
  const fs::path dir = scratch(name);
  {
    auto first = make(1);
    first->trainer->add(std::make_shared<StopAfter>(stop_at));
    first->trainer->add(std::make_shared<train::ModelCheckpoint<double>>(
        train::CheckpointOptions{.directory = dir.string(), .every_steps = 1, .keep_last = 2}));
    first->trainer->fit(loader, {.epochs = epochs});
    EXPECT_EQ(first->adam->steps(), stop_at);
  }
  auto resumed = make(99);
  const std::string latest = train::latest_checkpoint(dir.string());
  EXPECT_FALSE(latest.empty());
  train::load_checkpoint(*resumed->trainer, latest);
  EXPECT_EQ(resumed->adam->steps(), stop_at);
  resumed->trainer->fit(loader, {.epochs = epochs});
  fs::remove_all(dir);
  return resumed;
}

// A copy of checkpoint `from` at `to` with its JSON edited and some arrays replaced.
void rewrite(const std::string& from, const std::string& to,
             const std::function<void(nlohmann::json&)>& edit,
             const std::map<std::string, xt::xarray<double>>& arrays = {}) {
  const auto f = data::NpzFile::open(from);
  nlohmann::json doc = nlohmann::json::parse(f.read_text("checkpoint.json"));
  edit(doc);
  data::NpzWriter w(to);
  for (const auto& e : f.entries()) {
    if (!e.is_array) continue;
    const auto it = arrays.find(e.name);
    w.add(e.name, it == arrays.end() ? f.read<double>(e.name) : it->second);
  }
  w.add_text("checkpoint.json", doc.dump(1));
  w.commit();
}

// A user metric written as metrics.hpp's example, without state() and restore().
struct MeanPrediction : train::Metric<double> {
  std::string name() const override { return "mean_prediction"; }
  std::vector<Expr<double>> statistics(Expr<double> p, Expr<double>) const override {
    return {xgrad::sum(p)};
  }
  void reset() override {
    total_ = 0;
    rows_ = 0;
  }
  void accumulate(std::span<const xt::xarray<double>> s, std::size_t rows) override {
    total_ += s[0]();
    rows_ += rows;
  }
  double value() const override { return total_ / static_cast<double>(rows_); }
  std::unique_ptr<Metric> clone() const override { return std::make_unique<MeanPrediction>(*this); }
  double total_ = 0;
  std::size_t rows_ = 0;
};

}  // namespace

TEST(Checkpoint, ResumeAfterAnEpochAndInsideOneIsBitExact) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 16, .seed = 3, .prefetch = 2});
  const std::function<std::unique_ptr<TrainRun>(std::uint64_t)> make = [](std::uint64_t seed) {
    return std::make_unique<TrainRun>(
        seed, 8, nullptr,
        std::vector<std::shared_ptr<train::Metric<double>>>{
            train::accuracy<double>(), train::top_k_accuracy<double>(2),
            std::make_shared<train::ConfusionMatrix<double>>(3)});
  };
  const auto whole = make(1);
  whole->trainer->fit(loader, {.epochs = 4});
  ASSERT_EQ(whole->adam->steps(), 4 * loader.num_batches());

  // Stopped after epoch 1 + 1 batch, after epoch 2 + 9 batches and after epoch 2; each
  // resumed from a fresh process-like start: new graph, other initial weights, loaded
  // checkpoint. Every column, the training metrics' too, equals the whole run's.
  for (std::size_t stop_at :
       {loader.num_batches() + 1, 2 * loader.num_batches() + 9, 2 * loader.num_batches()}) {
    const auto resumed = stop_and_resume(make, loader, 4, stop_at, "resume");
    EXPECT_EQ(resumed->adam->steps(), whole->adam->steps());
    EXPECT_TRUE(same_bytes(resumed->values(), whole->values())) << "stopped at " << stop_at;
    EXPECT_EQ(resumed->trainer->history().size(), 4u);
    EXPECT_TRUE(resumed->trainer->history().has("top2_accuracy"));
    EXPECT_EQ(differing_columns(resumed->trainer->history(), whole->trainer->history()),
              std::vector<std::string>{})
        << "stopped at " << stop_at;
  }
}

TEST(Checkpoint, RegressionMetricsResumeInsideAnEpochBitExact) {
  const auto set = regression_set();
  data::DataLoader<double> loader(set, {.batch_size = 16, .seed = 6});
  const std::function<std::unique_ptr<RegressionRun>(std::uint64_t)> make = [](std::uint64_t seed) {
    return std::make_unique<RegressionRun>(seed);
  };
  const auto whole = make(1);
  whole->trainer->fit(loader, {.epochs = 3});
  const auto resumed = stop_and_resume(make, loader, 3, loader.num_batches() + 6, "regression");
  EXPECT_TRUE(same_bytes(resumed->values(), whole->values()));
  EXPECT_TRUE(resumed->trainer->history().has("r2"));
  EXPECT_EQ(differing_columns(resumed->trainer->history(), whole->trainer->history()),
            std::vector<std::string>{});
}

// A user metric without state(), and a version 1 file (before metric states), resumed
// inside an epoch: the metrics without a saved state report NaN for that epoch only.
TEST(Checkpoint, MetricsWithoutAStateAreNaNForTheResumedEpoch) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 16, .seed = 3});
  const std::function<std::unique_ptr<TrainRun>(std::uint64_t)> make = [](std::uint64_t seed) {
    return std::make_unique<TrainRun>(
        seed, 8, nullptr,
        std::vector<std::shared_ptr<train::Metric<double>>>{train::accuracy<double>(),
                                                            std::make_shared<MeanPrediction>()});
  };
  const auto whole = make(1);
  whole->trainer->fit(loader, {.epochs = 3});
  const std::size_t stop_at = loader.num_batches() + 4;  // inside epoch 1
  const auto resumed = stop_and_resume(make, loader, 3, stop_at, "user");
  EXPECT_TRUE(same_bytes(resumed->values(), whole->values()));
  const auto& h = resumed->trainer->history();
  EXPECT_EQ(differing_columns(h, whole->trainer->history()),
            std::vector<std::string>{"mean_prediction"});
  const auto user = h.column("mean_prediction"),
             want = whole->trainer->history().column("mean_prediction");
  EXPECT_EQ(user[0], want[0]);
  EXPECT_TRUE(std::isnan(user[1]));
  EXPECT_EQ(user[2], want[2]);

  // Version 1: no metric states; loaded, with NaN training metrics for the resumed epoch.
  const fs::path dir = scratch("version1");
  const std::string v2 = (dir / "v2.npz").string(), v1 = (dir / "v1.npz").string();
  {
    TrainRun first(1);
    first.trainer->add(std::make_shared<StopAfter>(stop_at));
    first.trainer->fit(loader, {.epochs = 3});
    train::save_checkpoint(*first.trainer, v2);
  }
  rewrite(v2, v1, [](nlohmann::json& doc) {
    doc["version"] = 1;
    doc["position"].erase("metrics");
  });
  TrainRun plain(1), old(99);
  plain.trainer->fit(loader, {.epochs = 3});
  train::load_checkpoint(*old.trainer, v1);
  old.trainer->fit(loader, {.epochs = 3});
  EXPECT_TRUE(same_bytes(old.values(), plain.values()));
  EXPECT_EQ(differing_columns(old.trainer->history(), plain.trainer->history()),
            std::vector<std::string>{"accuracy"});
  EXPECT_TRUE(std::isnan(old.trainer->history().column("accuracy")[1]));
  EXPECT_EQ(old.trainer->history().column("loss"), plain.trainer->history().column("loss"));
  fs::remove_all(dir);
}

TEST(Checkpoint, MetricStatesThatDoNotFitAreRefusedByName) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 16, .seed = 3});
  using Metrics = std::vector<std::shared_ptr<train::Metric<double>>>;
  const fs::path dir = scratch("metric_errors");
  const std::string inside = (dir / "inside.npz").string(), end = (dir / "end.npz").string();
  {
    TrainRun first(1, 8, nullptr, {train::accuracy<double>()});
    first.trainer->fit(loader, {.epochs = 1});
    train::save_checkpoint(*first.trainer, end);
    first.trainer->add(std::make_shared<StopAfter>(3));
    first.trainer->fit(loader, {.epochs = 2});
    ASSERT_EQ(first.trainer->examples(), 3 * 16u);
    train::save_checkpoint(*first.trainer, inside);
  }
  // Other metrics, fewer, more: refused inside an epoch, nothing written.
  for (const auto& [metrics, want] : std::vector<std::pair<Metrics, std::string>>{
           {{train::top_k_accuracy<double>(2)},
            "(accuracy) in the file, (top2_accuracy) in the trainer"},
           {{}, "(accuracy) in the file, () in the trainer"},
           {{train::accuracy<double>(), std::make_shared<train::ConfusionMatrix<double>>(3)},
            "(accuracy) in the file, (accuracy, confusion_accuracy) in the trainer"}}) {
    TrainRun other(5, 8, nullptr, metrics);
    const auto before = other.values();
    const std::string m = message_of([&] { train::load_checkpoint(*other.trainer, inside); });
    EXPECT_TRUE(contains(m, inside)) << m;
    EXPECT_TRUE(contains(m, "other training metrics")) << m;
    EXPECT_TRUE(contains(m, want)) << m;
    EXPECT_TRUE(same_bytes(before, other.values())) << "nothing written on error";
    EXPECT_EQ(other.adam->steps(), 0u);
    // At an epoch's end the metrics start afresh: other ones are fine.
    train::load_checkpoint(*other.trainer, end);
    EXPECT_EQ(other.adam->steps(), loader.num_batches());
  }
  // A state of another size (as a confusion matrix of other classes would have).
  const std::string bad = (dir / "bad.npz").string();
  rewrite(inside, bad, [](nlohmann::json&) {}, {{"metrics.0", xt::xarray<double>{1, 2, 3}}});
  TrainRun same(5);
  const std::string m = message_of([&] { train::load_checkpoint(*same.trainer, bad); });
  EXPECT_TRUE(contains(m, bad)) << m;
  EXPECT_TRUE(contains(m, "'accuracy': train::Accuracy::restore: a state of 3 numbers, expected 2"))
      << m;
  EXPECT_EQ(same.adam->steps(), 0u);
  train::load_checkpoint(*same.trainer, inside);  // the good file still loads into it
  EXPECT_EQ(same.trainer->examples(), 3 * 16u);
  fs::remove_all(dir);
}

TEST(Checkpoint, RoundTripOfStateOptimizerHistoryAndExtras) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 32, .seed = 5});
  const fs::path dir = scratch("roundtrip");
  const std::string path = (dir / "c.npz").string();
  TrainRun a(1);
  a.trainer->fit(loader, {.epochs = 2});
  train::save_checkpoint(
      *a.trainer, path,
      {.numbers = {{"best", 0.25}, {"nan", std::nan("")}}, .strings = {{"note", "hello"}}});
  TrainRun b(7);
  const train::Extras ex = train::load_checkpoint(*b.trainer, path);
  EXPECT_EQ(ex.numbers.at("best"), 0.25);
  EXPECT_TRUE(std::isnan(ex.numbers.at("nan")));
  EXPECT_EQ(ex.strings.at("note"), "hello");
  EXPECT_TRUE(same_bytes(a.values(), b.values()));
  const auto sa = a.adam->state(), sb = b.adam->state();
  EXPECT_EQ(sa.steps, sb.steps);
  ASSERT_EQ(sa.params.size(), sb.params.size());
  for (std::size_t i = 0; i < sa.params.size(); ++i) {
    EXPECT_EQ(sa.params[i].scalars, sb.params[i].scalars);
    for (const auto& [name, v] : sa.params[i].tensors) EXPECT_EQ(sb.params[i].tensors.at(name), v);
  }
  EXPECT_EQ(b.trainer->history().columns(), a.trainer->history().columns());
  EXPECT_EQ(b.trainer->history().column("accuracy"), a.trainer->history().column("accuracy"));
  // The model part is a model file under "model.".
  TrainRun c(8);
  auto report = nn::load(c.model, path, {.prefix = "model."});
  EXPECT_TRUE(report.complete()) << report.to_string();
  EXPECT_TRUE(same_bytes(a.values(), c.values()));
  fs::remove_all(dir);
}

TEST(Checkpoint, FilesThatDoNotFitAreRefusedByName) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 64});
  const fs::path dir = scratch("errors");
  const std::string path = (dir / "c.npz").string();
  TrainRun a(1);
  a.trainer->fit(loader, {.epochs = 1});
  train::save_checkpoint(*a.trainer, path);

  TrainRun wider(1, 16);  // hidden layer of 16: other shapes
  const auto before = wider.values();
  std::string m = message_of([&] { train::load_checkpoint(*wider.trainer, path); });
  EXPECT_TRUE(contains(m, path)) << m;
  EXPECT_TRUE(contains(m, "another model")) << m;
  EXPECT_TRUE(contains(m, "'0.weight' has shape (8, 4) in the file, (16, 4) in the model")) << m;
  EXPECT_TRUE(same_bytes(before, wider.values())) << "nothing written on error";

  // Truncated: the first half of the file.
  const std::string cut = (dir / "cut.npz").string();
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  m = message_of([&] { train::load_checkpoint(*a.trainer, cut); });
  EXPECT_TRUE(contains(m, cut)) << m;

  // A model file is not a checkpoint.
  const std::string model_file = (dir / "model.npz").string();
  nn::save(a.model, model_file);
  m = message_of([&] { train::load_checkpoint(*a.trainer, model_file); });
  EXPECT_TRUE(contains(m, "not an xgrad checkpoint")) << m;

  // A newer version.
  const std::string v3 = (dir / "v3.npz").string();
  rewrite(path, v3, [](nlohmann::json& doc) {
    ASSERT_EQ(doc["version"], train::checkpoint_version);
    doc["version"] = 3;
  });
  m = message_of([&] { train::load_checkpoint(*a.trainer, v3); });
  EXPECT_TRUE(contains(m, "version 3, this build reads versions 1 to 2")) << m;
  fs::remove_all(dir);
}

TEST(Checkpoint, ReplicasOfOneProcessChangeNothing) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 16, .seed = 3});
  data::DataLoader<double, std::int64_t> val(set, {.batch_size = 50, .shuffle = false});
  TrainRun plain(1);
  plain.trainer->fit(loader, {.epochs = 2, .validation = &val});
  auto one = std::make_shared<Copies>(1, 0);
  TrainRun with(1, 8, one);
  EXPECT_TRUE(with.trainer->is_root());
  EXPECT_EQ(with.trainer->processes(), 1u);
  with.trainer->fit(loader, {.epochs = 2, .validation = &val});
  EXPECT_TRUE(same_bytes(plain.values(), with.values()));
  for (const char* c : {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}) {
    EXPECT_EQ(with.trainer->history().column(c), plain.trainer->history().column(c)) << c;
  }
  // One combine per step and per validation batch; one stop agreement per step, after
  // on_train_begin and after each epoch; the state broadcast once per fit.
  const std::size_t steps = 2 * loader.num_batches();
  EXPECT_EQ(one->combines, steps + 2 * val.num_batches());
  EXPECT_EQ(one->sums, steps + 1 + 2);
  EXPECT_EQ(one->broadcasts, 1u);
}

TEST(Checkpoint, OnlyRankZeroPrintsAndWritesAndTheProcessCountIsKept) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 16, .seed = 3});
  TrainRun alone(1);
  alone.trainer->fit(loader, {.epochs = 2});
  for (std::size_t rank : {0u, 1u}) {
    const fs::path dir = scratch("rank" + std::to_string(rank));
    auto copies = std::make_shared<Copies>(2, rank);
    TrainRun run(1, 8, copies);
    EXPECT_EQ(run.trainer->is_root(), rank == 0);
    std::ostringstream progress;
    run.trainer->add(std::make_shared<train::ProgressBar<double>>(
        train::ProgressOptions{.out = &progress, .terminal = false}));
    run.trainer->add(std::make_shared<train::CsvLogger<double>>((dir / "h.csv").string()));
    run.trainer->add(std::make_shared<train::ModelCheckpoint<double>>(
        train::CheckpointOptions{.directory = (dir / "ckpt").string(), .keep_last = 0}));
    run.trainer->fit(loader, {.epochs = 2});
    // Two identical copies: the figures of one, the examples of both.
    EXPECT_TRUE(same_bytes(alone.values(), run.values()));
    EXPECT_EQ(run.trainer->history().column("accuracy"),
              alone.trainer->history().column("accuracy"));
    EXPECT_EQ(run.trainer->examples(), 2 * alone.trainer->examples());
    EXPECT_EQ(!progress.str().empty(), rank == 0) << progress.str();
    EXPECT_EQ(fs::exists(dir / "h.csv"), rank == 0);
    EXPECT_EQ(fs::exists(dir / "ckpt"), rank == 0);
    EXPECT_EQ(copies->barriers, 2u) << "a barrier after each checkpoint, on every rank";
    if (rank == 0) {
      const std::string path = train::latest_checkpoint((dir / "ckpt").string());
      ASSERT_FALSE(path.empty());
      const std::string m = message_of([&] { train::load_checkpoint(*alone.trainer, path); });
      EXPECT_TRUE(contains(m, path)) << m;
      EXPECT_TRUE(contains(m,
                           "checkpoint of a run on 2 processes, this run has 1 process: "
                           "resume it on 2 processes"))
          << m;
      TrainRun again(5, 8, std::make_shared<Copies>(2, 0));
      train::load_checkpoint(*again.trainer, path);
      EXPECT_TRUE(same_bytes(again.values(), run.values()));
      TrainRun three(5, 8, std::make_shared<Copies>(3, 1));
      EXPECT_TRUE(contains(message_of([&] { train::load_checkpoint(*three.trainer, path); }),
                           "on 2 processes, this run has 3 processes"));
    }
    fs::remove_all(dir);
  }
}
