// Checkpoints: round trips, exact resume (after an epoch and inside one, with shuffling,
// prefetch and dropout), and the errors of files that do not fit.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
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
                    std::shared_ptr<train::Replicas<double>> replicas = nullptr) {
    model.add<nn::Linear>(4, hidden, nn::LinearOptions{.seed = seed});
    model.add<nn::ReLU>();
    model.add<nn::Dropout>(0.3, 77);  // the mask seed is part of the model's code
    model.add<nn::Linear>(hidden, 3, nn::LinearOptions{.seed = seed + 2});
    auto task = train::supervised<double>(
        model, x, y, [](Expr<double> p, Expr<double> t) { return xgrad::cross_entropy(p, t); });
    adam = std::make_unique<optim::Adam<double>>(model.parameters(), optim::cosine(0.01, 60, 1e-4));
    trainer = std::make_unique<train::Trainer<double>>(
        task, *adam,
        train::TrainerOptions<double>{.metrics = {train::accuracy<double>()},
                                      .replicas = std::move(replicas)});
  }
  std::vector<xt::xarray<double>> values() {
    std::vector<xt::xarray<double>> v;
    for (const auto& s : model.state()) v.push_back(g.value(s.node));
    return v;
  }
};

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

}  // namespace

TEST(Checkpoint, ResumeAfterAnEpochAndInsideOneIsBitExact) {
  const auto set = classes();
  data::DataLoader<double, std::int64_t> loader(set, {.batch_size = 16, .seed = 3, .prefetch = 2});
  TrainRun whole(1);
  whole.trainer->fit(loader, {.epochs = 4});
  ASSERT_EQ(whole.adam->steps(), 4 * loader.num_batches());

  // Stopped after epoch 1 + 1 batch and after epoch 2 + 9 batches; each resumed from a
  // fresh process-like start: new graph, other initial weights, loaded checkpoint.
  for (std::size_t stop_at :
       {loader.num_batches() + 1, 2 * loader.num_batches() + 9, 2 * loader.num_batches()}) {
    const fs::path dir = scratch("resume" + std::to_string(stop_at));
    {
      TrainRun first(1);
      first.trainer->add(std::make_shared<StopAfter>(stop_at));
      first.trainer->add(std::make_shared<train::ModelCheckpoint<double>>(
          train::CheckpointOptions{.directory = dir.string(), .every_steps = 1, .keep_last = 2}));
      first.trainer->fit(loader, {.epochs = 4});
      ASSERT_EQ(first.adam->steps(), stop_at);
    }
    TrainRun resumed(99);  // other weights and dropout seeds...
    const std::string latest = train::latest_checkpoint(dir.string());
    ASSERT_FALSE(latest.empty());
    train::load_checkpoint(*resumed.trainer, latest);  // ...replaced
    EXPECT_EQ(resumed.adam->steps(), stop_at);
    resumed.trainer->fit(loader, {.epochs = 4});
    EXPECT_EQ(resumed.adam->steps(), whole.adam->steps());
    EXPECT_TRUE(same_bytes(resumed.values(), whole.values())) << "stopped at " << stop_at;
    EXPECT_EQ(resumed.trainer->history().size(), 4u);
    EXPECT_EQ(resumed.trainer->history().column("loss"), whole.trainer->history().column("loss"));
    fs::remove_all(dir);
  }
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

  // Another version.
  const std::string v2 = (dir / "v2.npz").string();
  {
    const auto f = data::NpzFile::open(path);
    std::string doc = f.read_text("checkpoint.json");
    const auto at = doc.find("\"version\": 1");
    ASSERT_NE(at, std::string::npos) << doc;
    doc.replace(at, 12, "\"version\": 2");
    data::NpzWriter w(v2);
    for (const auto& e : f.entries()) {
      if (e.is_array) w.add(e.name, f.read<double>(e.name));
    }
    w.add_text("checkpoint.json", doc);
    w.commit();
  }
  m = message_of([&] { train::load_checkpoint(*a.trainer, v2); });
  EXPECT_TRUE(contains(m, "version 2, this build reads 1")) << m;
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
