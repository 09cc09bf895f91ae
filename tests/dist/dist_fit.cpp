// Trainer::fit with xgrad::dist::DataParallel under mpirun (tests/dist/CMakeLists.txt runs
// it on 1, 2 and 3 ranks):
//   dist_fit all     fit on R ranks (local batch B / R) against fit in one process (batch B):
//                    parameters, history, validation and metrics (MAE, RMSE, R^2, accuracy,
//                    a confusion matrix) to rounding; parameters and history bit-identical
//                    across ranks; early stopping at the same epoch; a checkpoint written by
//                    rank 0 mid-run (the run stopped by one rank only) resumed on R ranks
//                    equals the uninterrupted run bit for bit, and one process refuses it;
//                    printing and files on rank 0 only
//   dist_fit throw   rank 1 throws inside fit, at its 3rd batch
//   dist_fit nan     the last rank's loss turns NaN at the 3rd step
// Exit code 0 when every check passed; each failed check prints "CHECK FAILED".
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <xgrad/dist/dist.hpp>
#include <xgrad/xgrad.hpp>
#include <xtensor/xview.hpp>

namespace data = xgrad::data;
namespace dist = xgrad::dist;
namespace optim = xgrad::optim;
namespace train = xgrad::train;
namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(const dist::Session& mpi, bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::cout << "rank " << mpi.rank() << ": CHECK FAILED: " << what << std::endl;
  }
}

// 96 training and 48 validation rows (divisible by 1, 2, 3), 4 features; a regression
// target and 3 classes cut from it.
constexpr std::size_t kTrain = 96, kVal = 48, kIn = 4, kHidden = 8, kGlobalBatch = 12;

struct Sets {
  data::TensorDataset<double> train, val;
  data::TensorDataset<double, std::int64_t> train_classes, val_classes;
};

Sets make_sets() {
  std::mt19937 rng(7);
  std::normal_distribution<double> u(0.0, 1.0);
  const std::size_t n = kTrain + kVal;
  xt::xarray<double> X = xt::zeros<double>({n, kIn}), y = xt::zeros<double>({n});
  xt::xarray<std::int64_t> c = xt::zeros<std::int64_t>({n});
  for (std::size_t i = 0; i < n; ++i) {
    double t = 0.3;
    for (std::size_t j = 0; j < kIn; ++j) {
      X(i, j) = u(rng);
      t += std::sin(double(j + 1) * X(i, j));
    }
    y(i) = t;
    c(i) = t < -0.2 ? 0 : (t < 0.8 ? 1 : 2);
  }
  auto rows = [](const auto& a, std::size_t from, std::size_t to) {
    using A = std::decay_t<decltype(a)>;
    return A(xt::view(a, xt::range(from, to)));
  };
  return {data::TensorDataset<double>(rows(X, 0, kTrain), rows(y, 0, kTrain)),
          data::TensorDataset<double>(rows(X, kTrain, n), rows(y, kTrain, n)),
          data::TensorDataset<double, std::int64_t>(rows(X, 0, kTrain), rows(c, 0, kTrain)),
          data::TensorDataset<double, std::int64_t>(rows(X, kTrain, n), rows(c, kTrain, n))};
}

xt::xarray<double> draw(std::mt19937& rng, std::vector<std::size_t> shape) {
  std::normal_distribution<double> u(0.0, 0.5);
  xt::xarray<double> a = xt::zeros<double>(shape);
  for (auto& v : a) v = u(rng);
  return a;
}

// A 4-8-1 tanh MLP regression with Adam and MAE, RMSE, R^2, trained by a Trainer; `seed`
// draws the initial weights (fit gives every rank rank 0's).
struct Regression {
  xgrad::Graph<double> g;
  xgrad::Expr<double> X = g.input("X", {xgrad::open, static_cast<xgrad::Dim>(kIn)});
  xgrad::Expr<double> y = g.input("y", {xgrad::open});
  std::vector<xgrad::Expr<double>> params;
  std::optional<optim::Adam<double>> adam;
  std::optional<train::Trainer<double>> trainer;

  Regression(unsigned seed, std::shared_ptr<train::Replicas<double>> replicas) {
    std::mt19937 rng(seed);
    auto W1 = g.parameter("W1", draw(rng, {kIn, kHidden}));
    auto b1 = g.parameter("b1", draw(rng, {kHidden}));
    auto W2 = g.parameter("W2", draw(rng, {kHidden}));
    auto b2 = g.parameter("b2", xt::xarray<double>(0.0));
    params = {W1, b1, W2, b2};
    auto pred = xgrad::matmul(xgrad::tanh(xgrad::matmul(X, W1) + b1), W2) + b2;
    adam.emplace(params, 0.02);
    trainer.emplace(
        train::Task<double>{.x = X, .y = y, .loss = xgrad::mse(pred, y), .output = pred}, *adam,
        train::TrainerOptions<double>{
            .metrics = {train::mae<double>(), train::rmse<double>(), train::r2<double>()},
            .replicas = std::move(replicas)});
  }
  std::vector<xt::xarray<double>> values() {
    std::vector<xt::xarray<double>> v;
    for (const auto& p : params) v.push_back(g.value(p));
    return v;
  }
};

// A linear softmax classifier of the 3 classes with SGD and accuracy.
struct Classifier {
  xgrad::Graph<double> g;
  xgrad::Expr<double> X = g.input("X", {xgrad::open, static_cast<xgrad::Dim>(kIn)});
  xgrad::Expr<double> y = g.input("y", {xgrad::open}, xgrad::DType::int64);
  xgrad::Expr<double> W, b;
  std::optional<optim::SGD<double>> sgd;
  std::optional<train::Trainer<double>> trainer;

  Classifier(unsigned seed, std::shared_ptr<train::Replicas<double>> replicas) {
    std::mt19937 rng(seed);
    W = g.parameter("W", draw(rng, {kIn, 3}));
    b = g.parameter("b", draw(rng, {3}));
    auto logits = xgrad::matmul(X, W) + b;
    sgd.emplace(std::vector{W, b}, 0.3);
    trainer.emplace(
        train::Task<double>{
            .x = X, .y = y, .loss = xgrad::cross_entropy(logits, y), .output = logits},
        *sgd,
        train::TrainerOptions<double>{.metrics = {train::accuracy<double>()},
                                      .replicas = std::move(replicas)});
  }
};

double max_abs_diff(const std::vector<xt::xarray<double>>& a,
                    const std::vector<xt::xarray<double>>& b) {
  double d = a.size() == b.size() ? 0 : INFINITY;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d = std::max(d, double(xt::amax(xt::abs(a[i] - b[i]))()));
  }
  return d;
}

// Largest relative difference of two histories over every column but "seconds" (each
// process's own clock); infinite when the columns or lengths differ.
double history_diff(const train::History& a, const train::History& b) {
  if (a.columns() != b.columns() || a.size() != b.size()) return INFINITY;
  double d = 0;
  for (const auto& c : a.columns()) {
    if (c == "seconds") continue;
    const auto x = a.column(c), y = b.column(c);
    for (std::size_t i = 0; i < x.size(); ++i) {
      d = std::max(d, std::abs(x[i] - y[i]) / std::max(1.0, std::abs(y[i])));
    }
  }
  return d;
}

// The bytes of every value, and the history's figures (not "seconds"), in one vector.
std::vector<double> fingerprint(const std::vector<xt::xarray<double>>& values,
                                const train::History& h) {
  std::vector<double> f;
  for (const auto& v : values) f.insert(f.end(), v.begin(), v.end());
  for (const auto& c : h.columns()) {
    if (c == "seconds") continue;
    const auto col = h.column(c);
    f.insert(f.end(), col.begin(), col.end());
  }
  return f;
}

// True on every rank when every rank's vector has rank 0's bytes.
bool same_on_all_ranks(const std::vector<double>& mine) {
  std::vector<double> root = mine;
  MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  int same = std::memcmp(root.data(), mine.data(), mine.size() * sizeof(double)) == 0;
  MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return same == 1;
}

// The largest value over the ranks (NaN counts as infinite).
double worst(double local) {
  double w = std::isnan(local) ? INFINITY : local;
  MPI_Allreduce(MPI_IN_PLACE, &w, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return w;
}

struct StopAfter : train::Callback<double> {
  std::size_t left;
  explicit StopAfter(std::size_t n) : left(n) {}
  void on_batch_end(train::Trainer<double>& t) override {
    if (left > 0 && --left == 0) t.stop("interrupted");
  }
};

// fit on R ranks against fit in one process with the global batch.
void check_equal_to_one_process(const dist::Session& mpi, const Sets& sets) {
  const std::size_t R = mpi.size();
  const std::size_t epochs = 6;
  Regression one(0, nullptr);  // one process, batch B, every rank computes it alone
  {
    data::DataLoader<double> loader(sets.train, {.batch_size = kGlobalBatch, .seed = 5});
    data::DataLoader<double> val(sets.val, {.batch_size = 10, .shuffle = false});
    one.trainer->fit(loader, {.epochs = epochs, .validation = &val});
  }
  auto replicas = std::make_shared<dist::DataParallel<double>>(mpi);
  // Rank 0 starts from the one-process run's weights, the others from their own: fit gives
  // them rank 0's.
  Regression many(mpi.is_root() ? 0 : 100 + mpi.rank(), replicas);
  data::DataLoader<double> loader(sets.train,
                                  mpi.shard({.batch_size = kGlobalBatch / R, .seed = 5}));
  data::DataLoader<double> val(sets.val, mpi.shard({.batch_size = 7, .shuffle = false}));
  many.trainer->fit(loader, {.epochs = epochs, .validation = &val});

  const double dp = worst(max_abs_diff(many.values(), one.values()));
  const double dh = worst(history_diff(many.trainer->history(), one.trainer->history()));
  mpi.log() << "fit, " << R << " ranks x batch " << kGlobalBatch / R << " vs 1 process x batch "
            << kGlobalBatch << ", " << epochs << " epochs of Adam: max |parameter difference| "
            << dp << ", max relative history difference " << dh << "\n";
  check(mpi, dp < 1e-12, "fit on R ranks equals fit in one process (parameters)");
  check(mpi, dh < 1e-12, "fit on R ranks equals fit in one process (history)");
  check(mpi, many.trainer->history().has("val_r2") && many.trainer->history().has("rmse"),
        "history has the metrics and the validation columns");
  check(mpi, replicas->averager().steps() == epochs * kTrain / kGlobalBatch,
        "one combine per training step");
  check(mpi, same_on_all_ranks(fingerprint(many.values(), many.trainer->history())),
        "parameters and history bit-identical across ranks");

  // Trainer::evaluate on every rank's shard: the figures of the whole validation set.
  const auto v1 = one.trainer->evaluate(data::DataLoader<double>(sets.val, {.batch_size = 48}));
  const auto vr = many.trainer->evaluate(val);
  check(mpi,
        std::abs(v1.get("loss") - vr.get("loss")) < 1e-12 &&
            std::abs(v1.get("r2") - vr.get("r2")) < 1e-12,
        "evaluate over the shards equals evaluate over the whole set");
}

// Classification: accuracy in the history, a confusion matrix's counts.
void check_classification(const dist::Session& mpi, const Sets& sets) {
  const std::size_t R = mpi.size();
  Classifier one(0, nullptr);
  data::DataLoader<double, std::int64_t> l1(sets.train_classes,
                                            {.batch_size = kGlobalBatch, .seed = 2});
  data::DataLoader<double, std::int64_t> v1(sets.val_classes, {.batch_size = 16, .shuffle = false});
  one.trainer->fit(l1, {.epochs = 3, .validation = &v1});
  Classifier many(mpi.is_root() ? 0 : 9 + mpi.rank(),
                  std::make_shared<dist::DataParallel<double>>(mpi));
  data::DataLoader<double, std::int64_t> lr(sets.train_classes,
                                            mpi.shard({.batch_size = kGlobalBatch / R, .seed = 2}));
  data::DataLoader<double, std::int64_t> vr(sets.val_classes,
                                            mpi.shard({.batch_size = 16 / R, .shuffle = false}));
  many.trainer->fit(lr, {.epochs = 3, .validation = &vr});
  const double dh = worst(history_diff(many.trainer->history(), one.trainer->history()));
  check(mpi, dh < 1e-12, "classifier: history (loss, accuracy, val_accuracy) as in one process");

  train::ConfusionMatrix<double> cm1(3), cmr(3);
  one.trainer->evaluate(v1, {&cm1});
  many.trainer->evaluate(vr, {&cmr});
  check(mpi, cmr.matrix() == cm1.matrix() && xt::sum(cmr.matrix())() == double(kVal),
        "confusion matrix over the shards counts every validation row once");
  mpi.log() << "classifier, " << R << " ranks: val_accuracy "
            << many.trainer->history().last("val_accuracy") << " (1 process "
            << one.trainer->history().last("val_accuracy") << "), confusion matrix total "
            << xt::sum(cmr.matrix())() << "\n";
}

// Early stopping decides from the combined figures: the same epoch on every rank, the
// epoch one process stops at.
void check_early_stopping(const dist::Session& mpi, const Sets& sets) {
  const std::size_t R = mpi.size();
  const train::EarlyStoppingOptions es{.monitor = "val_loss", .patience = 2, .min_delta = 0.01};
  Regression one(0, nullptr);
  one.trainer->add(std::make_shared<train::EarlyStopping<double>>(es));
  data::DataLoader<double> l1(sets.train, {.batch_size = kGlobalBatch, .seed = 5});
  data::DataLoader<double> v1(sets.val, {.batch_size = 48});
  one.trainer->fit(l1, {.epochs = 60, .validation = &v1});
  Regression many(0, std::make_shared<dist::DataParallel<double>>(mpi));
  many.trainer->add(std::make_shared<train::EarlyStopping<double>>(es));
  data::DataLoader<double> lr(sets.train, mpi.shard({.batch_size = kGlobalBatch / R, .seed = 5}));
  data::DataLoader<double> vr(sets.val, mpi.shard({.batch_size = 48 / R}));
  many.trainer->fit(lr, {.epochs = 60, .validation = &vr});
  const std::size_t epochs = many.trainer->history().size();
  mpi.log() << "early stopping after " << epochs << " epochs on " << R
            << " ranks (1 process: " << one.trainer->history().size()
            << "): " << many.trainer->stop_reason() << "\n";
  check(mpi, one.trainer->history().size() < 60, "early stopping stops the one-process run");
  check(mpi, epochs == one.trainer->history().size(), "early stopping at the one-process epoch");
  check(mpi, mpi.sum(double(epochs)) == double(epochs * R), "early stopping: same epoch on all");
  check(mpi, same_on_all_ranks(fingerprint(many.values(), {})),
        "restored best weights equal on all ranks");
}

// A run stopped by one rank inside an epoch, its last checkpoint (written by rank 0)
// resumed on R ranks, against the uninterrupted run.
void check_resume(const dist::Session& mpi, const Sets& sets) {
  const std::size_t R = mpi.size();
  const fs::path dir = fs::temp_directory_path() / ("xgrad_dist_fit_" + std::to_string(R));
  if (mpi.is_root()) fs::remove_all(dir);
  mpi.barrier();
  data::DataLoader<double> loader(sets.train,
                                  mpi.shard({.batch_size = kGlobalBatch / R, .seed = 5}));
  data::DataLoader<double> val(sets.val, mpi.shard({.batch_size = 8, .shuffle = false}));
  const train::FitOptions<double, double> fit{.epochs = 4, .validation = &val};
  const std::size_t per_epoch = loader.num_batches();

  Regression whole(0, std::make_shared<dist::DataParallel<double>>(mpi));
  whole.trainer->fit(loader, fit);

  const std::size_t stop_at = per_epoch + 3;  // inside epoch 2
  {
    Regression first(0, std::make_shared<dist::DataParallel<double>>(mpi));
    // Only the last rank stops: the others learn of it before their next update.
    if (mpi.rank() == mpi.size() - 1) first.trainer->add(std::make_shared<StopAfter>(stop_at));
    first.trainer->add(std::make_shared<train::ModelCheckpoint<double>>(
        train::CheckpointOptions{.directory = dir.string(), .every_steps = 2, .keep_last = 2}));
    first.trainer->fit(loader, fit);
    check(mpi, first.adam->steps() == stop_at, "a stop on one rank stops every rank there");
    check(mpi, first.trainer->stopped(), "every rank reports the stop");
    // A checkpoint of this exact position, besides ModelCheckpoint's every 2 steps.
    train::save_checkpoint(*first.trainer, (dir / "stopped.npz").string());
  }
  for (const std::string& name :
       {train::latest_checkpoint(dir.string()), (dir / "stopped.npz").string()}) {
    check(mpi, fs::exists(name), "checkpoint " + name + " is complete when every rank goes on");
    Regression resumed(55 + mpi.rank(), std::make_shared<dist::DataParallel<double>>(mpi));
    train::load_checkpoint(*resumed.trainer, name);
    resumed.trainer->fit(loader, fit);
    // The checkpoint holds the training metrics' sums of the partial epoch (the same on
    // every rank, combined each batch): every column equals the uninterrupted run's.
    const bool params = max_abs_diff(resumed.values(), whole.values()) == 0;
    const bool history =
        fingerprint({}, resumed.trainer->history()) == fingerprint({}, whole.trainer->history());
    mpi.log() << "resumed from " << fs::path(name).filename().string() << " on " << R
              << " ranks: parameters " << (params ? "bit-identical" : "DIFFERENT")
              << " to the uninterrupted run, history (training metrics included) "
              << (history ? "identical" : "DIFFERENT") << "\n";
    check(mpi, params && history, "resumed run equals the uninterrupted run bit for bit");
  }

  // Another number of processes is refused, naming both counts.
  Regression alone(0, nullptr);
  std::string message = "(no error)";
  try {
    train::load_checkpoint(*alone.trainer, (dir / "stopped.npz").string());
  } catch (const xgrad::Error& e) {
    message = e.what();
  }
  const std::string want = "checkpoint of a run on " + std::to_string(R) +
                           " processes, this run has 1 process: resume it on " + std::to_string(R) +
                           " processes";
  check(mpi, R == 1 || message.find(want) != std::string::npos,
        "resume on another number of processes refused: " + message);
  mpi.log() << "loaded by 1 process: " << (R == 1 ? "accepted (same count)" : message) << "\n";
  mpi.barrier();
  if (mpi.is_root()) fs::remove_all(dir);
}

// Printing and files on rank 0 only.
void check_rank0_output(const dist::Session& mpi, const Sets& sets) {
  const std::size_t R = mpi.size();
  const fs::path dir = fs::temp_directory_path() / ("xgrad_dist_fit_out_" + std::to_string(R));
  if (mpi.is_root()) fs::remove_all(dir);
  mpi.barrier();
  if (mpi.is_root()) fs::create_directories(dir);
  mpi.barrier();
  std::ostringstream progress;
  const std::string mine = "rank" + std::to_string(mpi.rank());
  Regression model(0, std::make_shared<dist::DataParallel<double>>(mpi));
  model.trainer->add(std::make_shared<train::ProgressBar<double>>(
      train::ProgressOptions{.out = &progress, .terminal = false}));
  model.trainer->add(std::make_shared<train::CsvLogger<double>>((dir / (mine + ".csv")).string()));
  model.trainer->add(std::make_shared<train::HistoryPlot<double>>(
      (dir / mine).string(), std::vector<std::string>{"loss"}));
  data::DataLoader<double> loader(sets.train,
                                  mpi.shard({.batch_size = kGlobalBatch / R, .seed = 5}));
  model.trainer->fit(loader, {.epochs = 2});
  const bool root = mpi.is_root();
  const std::string text = progress.str();
  check(mpi, root ? text.find("epoch 2/2 ") != std::string::npos : text.empty(),
        "progress printed by rank 0 only: '" + text + "'");
  check(mpi, fs::exists(dir / (mine + ".csv")) == root, "CSV history written by rank 0 only");
  check(mpi, fs::exists(dir / (mine + "_loss.gp")) == root, "plot written by rank 0 only");
  if (root) std::cout << "rank 0's progress:\n" << text;
  mpi.barrier();
  if (root) fs::remove_all(dir);
}

// Fails on one rank at its 3rd batch inside fit: an exception, or a NaN in its data.
void fail_in_fit(const dist::Session& mpi, Sets sets, bool nan) {
  const int bad = nan ? mpi.size() - 1 : 1;
  data::DataLoader<double> probe(sets.train, mpi.shard({.batch_size = 4, .seed = 5}));
  if (nan && mpi.rank() == bad) {  // a NaN target in this rank's 3rd batch
    xt::xarray<double> y = sets.train.targets();
    y(probe.batch_indices(0, 2)[0]) = std::nan("");
    sets.train = data::TensorDataset<double>(sets.train.features(), y);
  }
  data::DataLoader<double> loader(sets.train, mpi.shard({.batch_size = 4, .seed = 5}));
  struct Throw : train::Callback<double> {
    void on_batch_begin(train::Trainer<double>& t) override {
      if (t.batch() == 2) throw std::runtime_error("failed on purpose in fit at batch 3");
    }
  };
  Regression model(0, std::make_shared<dist::DataParallel<double>>(mpi));
  if (!nan && mpi.rank() == bad) model.trainer->add(std::make_shared<Throw>());
  model.trainer->fit(loader, {.epochs = 100});
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "all";
  int rc = 0;
  bool root = false;
  {
    dist::Session mpi(argc, argv);
    root = mpi.is_root();
    rc = mpi.run([&] {
      const Sets sets = make_sets();
      if (mode == "throw" || mode == "nan") {
        fail_in_fit(mpi, sets, mode == "nan");
        mpi.log() << "completed normally\n";
        return 0;
      }
      check_equal_to_one_process(mpi, sets);
      check_classification(mpi, sets);
      check_early_stopping(mpi, sets);
      check_resume(mpi, sets);
      check_rank0_output(mpi, sets);
      return mpi.sum(double(failures)) == 0 ? 0 : 1;
    });
  }
  // After MPI_Finalize, so that nothing of the job follows it; the exit code decides.
  if (root) std::cout << (rc == 0 ? "all checks passed" : "SOME CHECKS FAILED") << std::endl;
  std::fflush(stdout);
  return rc;
}
