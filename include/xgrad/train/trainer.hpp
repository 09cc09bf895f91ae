/// @file train/trainer.hpp
/// @brief Trainer: the seed's loop (run, step, repeat) written once, with metrics,
/// validation, schedules, stopping rules and callbacks.
///
/// @code
/// model.train();  // or build the Task by hand for a plain graph
/// auto task = xgrad::train::supervised(model, x, labels, [](auto p, auto y) {
///   return xgrad::cross_entropy(p, y);
/// });
/// xgrad::optim::Adam<float> adam(model.parameters(), 1e-3);
/// xgrad::train::Trainer<float> trainer(task, adam, {.metrics =
/// {xgrad::train::accuracy<float>()}});
/// trainer.add(std::make_shared<xgrad::train::ProgressBar<float>>());
/// const auto& history = trainer.fit(loader, {.epochs = 10, .validation = &val_loader});
/// @endcode
/// What fit runs per batch is exactly the explicit loop: `out = step.run(batch.feeds(x,
/// y)); opt.step(out, first_grad);`, plus a sum per metric statistic. On several
/// processes (TrainerOptions::replicas, train/replicas.hpp) `out` is first combined over
/// them, as `avg.average(step.run(...))` is in xgrad::dist's explicit loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "xgrad/data/loader.hpp"
#include "xgrad/function.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/nn/module.hpp"
#include "xgrad/optim/optimizer.hpp"
#include "xgrad/optim/stopping.hpp"
#include "xgrad/train/callback.hpp"
#include "xgrad/train/checkpoint.hpp"
#include "xgrad/train/history.hpp"
#include "xgrad/train/metrics.hpp"
#include "xgrad/train/replicas.hpp"

namespace xgrad::train {

/// The graph fit trains: the inputs a batch binds, the loss, what metrics read, and the
/// evaluation-mode graph. Nodes left empty take the defaults given.
template <class T>
struct Task {
  Expr<T> x;                            ///< Input bound to each batch's features.
  Expr<T> y;                            ///< Input bound to each batch's targets.
  Expr<T> loss;                         ///< Scalar training loss (a mean over the batch).
  Expr<T> output = {};                  ///< Training-mode prediction, read by training metrics.
  Expr<T> eval_loss = {};               ///< Evaluation-mode loss (default: loss).
  Expr<T> eval_output = {};             ///< Evaluation-mode prediction (default: output).
  std::vector<Update<T>> updates = {};  ///< Buffer updates of the training step.
  /// Everything a checkpoint or a best-weights snapshot holds, by name (default: the
  /// optimizer's parameters under their node names, then the updates' targets).
  std::vector<nn::Named<T>> state = {};
};

/// A Task for a module trained on (x, y) with loss(prediction, target): the training
/// graph built in training mode (with the module's buffer updates), the evaluation graph
/// in evaluation mode, the state under the module's state_dict names. Leaves the module
/// in evaluation mode.
template <class T>
Task<T> supervised(nn::Module<T>& model, Expr<T> x, Expr<T> y,
                   const std::function<Expr<T>(Expr<T>, Expr<T>)>& loss);

/// Mean loss ("loss") and metrics of a task's evaluation graph (eval_loss, eval_output)
/// over a loader, compiled for this call: for a model without a trainer, such as one
/// loaded from a file. Instantiated for targets of type T and std::int64_t.
template <class T, class L>
Logs evaluate(const Task<T>& task, const data::DataLoader<T, L>& loader,
              const std::vector<std::shared_ptr<Metric<T>>>& metrics = {});

/// Options of a Trainer, fixed when it compiles its functions.
template <class T>
struct TrainerOptions {
  /// Metrics computed on validation data and, with train_metrics, on training batches.
  std::vector<std::shared_ptr<Metric<T>>> metrics = {};
  /// Also compute the metrics over each epoch's training batches (cheap: a few sums in
  /// the compiled step). They need Task::output.
  bool train_metrics = true;
  /// Options for both compiled functions.
  CompileOptions compile = {};
  /// The processes training this model together (data parallelism; see
  /// train/replicas.hpp), e.g. `std::make_shared<xgrad::dist::DataParallel<T>>(mpi)`.
  /// Null: this process alone.
  std::shared_ptr<Replicas<T>> replicas = nullptr;
};

/// Options of one fit() call.
template <class T, class L>
struct FitOptions {
  /// Epochs to run in total, counting those a resumed run already did.
  std::size_t epochs = 1;
  /// Data evaluated after each epoch (in evaluation mode), giving the "val_" columns.
  const data::DataLoader<T, L>* validation = nullptr;
  /// Checked before each update with the step, the loss and the gradient norm, as the
  /// seed's loop checks: a rule that holds ends the run.
  optim::Stopping stopping = {};
};

/// Compiles a Task's training and evaluation functions once and runs epochs of them with
/// an optimizer, feeding the schedule (epoch numbers; on plateau, the validation loss, or
/// the training loss without validation), recording a History and running callbacks.
template <class T>
class Trainer {
 public:
  /// Compiles the functions. Throws GraphError when the optimizer's parameters are not
  /// nodes of the task's graph, or x or y is not an input.
  Trainer(Task<T> task, optim::Optimizer<T>& optimizer, TrainerOptions<T> options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Adds a callback; callbacks run in the order added. Returns *this.
  Trainer& add(std::shared_ptr<Callback<T>> callback);

  /// Runs epochs from epoch() up to options.epochs (or until stopped) and returns the
  /// history. Instantiated for targets of type T and std::int64_t. With replicas, every
  /// process calls it with its shard of the data (Session::shard) and the same options.
  template <class L>
  const History& fit(const data::DataLoader<T, L>& train, const FitOptions<T, L>& options = {});

  /// Mean loss and metrics over a loader, in evaluation mode (metrics accumulate into
  /// clones, so the trainer's are untouched). Names: "loss" and each metric's name. With
  /// replicas, collective: each process evaluates its loader (its shard) and every process
  /// gets the figures over all shards.
  template <class L>
  Logs evaluate(const data::DataLoader<T, L>& loader);
  /// Accumulates extra metrics (a ConfusionMatrix you keep, say) over a loader in
  /// evaluation mode, compiling their statistics once per call. Needs Task::output. With
  /// replicas, collective, and every process's metrics hold the counts of all shards.
  template <class L>
  void evaluate(const data::DataLoader<T, L>& loader, const std::vector<Metric<T>*>& metrics);

  /// Ends the run after the current batch (callbacks call it); the reason is kept.
  void stop(std::string reason);
  /// True once stop() was called during the current fit.
  bool stopped() const { return !stop_reason_.empty(); }
  /// Why the last run stopped early ("" when it ran all its epochs).
  const std::string& stop_reason() const { return stop_reason_; }

  /// The epoch running or next to run, counted from 0.
  std::size_t epoch() const { return epoch_; }
  /// Epochs the current fit runs to (its options.epochs).
  std::size_t epochs() const { return epochs_; }
  /// The batch of the epoch running or next to run, counted from 0.
  std::size_t batch() const { return batch_; }
  /// Batches per epoch of the current fit's loader.
  std::size_t batches_per_epoch() const { return batches_; }
  /// Examples in the epoch's batches so far (of all processes, with replicas).
  std::size_t examples() const { return examples_; }
  /// The last batch's loss.
  double batch_loss() const { return batch_loss_; }
  /// Seconds since the current fit started.
  double elapsed() const;
  /// The current values: the epoch's running training loss and metrics during an epoch,
  /// the whole row (with validation) at its end.
  const Logs& logs() const { return logs_; }
  /// One row per finished epoch.
  const History& history() const { return history_; }
  /// One row per finished epoch (a resumed run restores it).
  History& history() { return history_; }
  /// The optimizer.
  optim::Optimizer<T>& optimizer() { return *opt_; }
  /// The optimizer.
  const optim::Optimizer<T>& optimizer() const { return *opt_; }
  /// The task as completed with its defaults.
  const Task<T>& task() const { return task_; }
  /// Parameters and buffers by name (Task::state).
  const std::vector<nn::Named<T>>& state() const { return task_.state; }
  /// The processes training together (TrainerOptions::replicas), null for one process.
  Replicas<T>* replicas() const { return options_.replicas.get(); }
  /// Number of processes training together (1 without replicas).
  std::size_t processes() const { return replicas() ? replicas()->size() : 1; }
  /// True on the process that prints and writes files: rank 0, or the only one.
  bool is_root() const { return !replicas() || replicas()->rank() == 0; }
  /// Sets where the next fit starts: epoch e, batch b (a resumed run), with the running
  /// training sums of the partial epoch so far: loss times rows, rows, and each training
  /// metric's Metric::state() in train_metrics() order. The metrics restart from those
  /// states; with examples > 0, one without a state (nullopt, or no states given) reports
  /// NaN until the epoch ends, since its sums over the epoch are unknown. Throws
  /// ValueError, changing nothing, when the states are not one per training metric or a
  /// metric refuses its state.
  void set_position(std::size_t epoch, std::size_t batch, double loss_sum = 0,
                    std::size_t examples = 0,
                    const std::vector<std::optional<std::vector<double>>>& metric_states = {});
  /// Sum over the epoch's batches so far of loss times rows (for checkpoints).
  double loss_sum() const { return loss_sum_; }
  /// The metrics accumulating over the epoch's training batches (clones of
  /// TrainerOptions::metrics; none without train_metrics), for checkpoints.
  std::vector<const Metric<T>*> train_metrics() const;

 private:
  struct Compiled;  // the two functions and the metrics' output positions
  template <class L>
  void run_epoch(const data::DataLoader<T, L>& train, const FitOptions<T, L>& options,
                 optim::Stopping& stopping);
  template <class Hook>
  void each(Hook hook);
  void agree_stop();

  Task<T> task_;
  optim::Optimizer<T>* opt_;
  TrainerOptions<T> options_;
  std::vector<std::unique_ptr<Metric<T>>> train_metrics_;
  std::vector<bool> unknown_;  // per training metric: resumed inside an epoch without its state
  std::vector<std::shared_ptr<Callback<T>>> callbacks_;
  std::unique_ptr<Compiled> fn_;
  History history_;
  Logs logs_;
  std::string stop_reason_;
  std::size_t epoch_ = 0, epochs_ = 0, batch_ = 0, batches_ = 0, examples_ = 0;
  double batch_loss_ = 0, loss_sum_ = 0;
  std::chrono::steady_clock::time_point start_{};
};

extern template class Trainer<float>;
extern template class Trainer<double>;
extern template Task<float> supervised(nn::Module<float>&, Expr<float>, Expr<float>,
                                       const std::function<Expr<float>(Expr<float>, Expr<float>)>&);
extern template Task<double> supervised(
    nn::Module<double>&, Expr<double>, Expr<double>,
    const std::function<Expr<double>(Expr<double>, Expr<double>)>&);

}  // namespace xgrad::train
