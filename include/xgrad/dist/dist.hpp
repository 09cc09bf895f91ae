/// @file dist.hpp
/// @brief Data-parallel training over MPI (target xgrad::dist): a Session for MPI's
/// lifetime, the parameters broadcast from rank 0, and one averaging allreduce of a step's
/// outputs per step, so that every rank takes the step of the whole global batch.
///
/// The explicit loop on R processes (`mpirun -np R ./train`) differs from the one-process
/// loop in three lines: the session, the sharded loader and the averaged outputs.
/// @code
/// int main(int argc, char** argv) {
///   xgrad::dist::Session mpi(argc, argv);
///   return mpi.run([&] {
///     // ... the graph, step = compile({loss, grads...}), opt = SGD(params, lr) ...
///     xgrad::dist::broadcast_parameters(mpi, params);           // every rank starts equal
///     xgrad::dist::GradientAverager<double> avg(mpi);
///     DataLoader loader(data, mpi.shard({.batch_size = 64, .seed = 1}));  // 64 per rank
///     for (const auto& batch : loader.epoch(e))
///       opt.step(avg.average(step.run(batch.feeds(X, y))), 1);  // the one extra call
///     mpi.log() << "loss " << avg.results()[0]() << "\n";        // printed by rank 0 only
///   });
/// }
/// @endcode
/// Through Trainer::fit the same is one option, `.replicas =
/// std::make_shared<xgrad::dist::DataParallel<T>>(mpi)` (see DataParallel).
///
/// No MPI header is included here: MPI stays an implementation detail of src/dist/.
#pragma once

#include <cstddef>
#include <exception>
#include <ostream>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/data/loader.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/train/replicas.hpp"

namespace xgrad::dist {

/// MPI for the lifetime of the object (MPI_Init_thread on construction, MPI_Finalize on
/// destruction); one per process, made before any other xgrad::dist call. Failures end
/// every rank instead of leaving the others blocked in a collective: run() turns an
/// exception into abort() with the rank and its message, an exception escaping
/// everything (std::terminate) aborts the same way, and a Session destroyed while an
/// exception unwinds aborts instead of finalizing (MPI_Finalize would wait for ranks that
/// are waiting for this one).
class Session {
 public:
  /// Initialises MPI with the program's arguments (MPI may remove its own).
  Session(int& argc, char**& argv);
  /// Initialises MPI without arguments.
  Session();
  /// Finalizes MPI (or aborts every rank when an exception is unwinding; see the class).
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// This process's number, 0 .. size() - 1.
  int rank() const { return rank_; }
  /// Number of processes.
  int size() const { return size_; }
  /// True on rank 0, the rank that logs, plots and writes checkpoints.
  bool is_root() const { return rank_ == 0; }

  /// Waits until every rank has reached the barrier (before rank 0 reads what all wrote).
  void barrier() const;
  /// The sum over ranks of each value, in place on every rank (one allreduce).
  void sum(std::span<double> values) const;
  /// The sum over ranks of one value.
  double sum(double local) const;
  /// The mean over ranks of one value: a loss or metric for reporting.
  double mean(double local) const;
  /// Checks that every rank passes the same value (a parameter count, a number of
  /// batches): throws ValueError naming what, the minimum and the maximum otherwise, on
  /// every rank alike.
  void check_same(std::string_view what, std::size_t value) const;

  /// std::cout on rank 0, a stream that discards everything on the other ranks: logging
  /// and progress appear once.
  std::ostream& log() const;
  /// Prints "xgrad::dist: rank R of S: message" to stderr and ends every rank of the job
  /// with exit code `code` (MPI_Abort): the way out of a failure on one rank.
  [[noreturn]] void abort(std::string_view message, int code = 1) const;

  /// Runs body; an exception it throws ends every rank through abort() with its what().
  /// Returns body's result (0 for a void body), so `return mpi.run(...)` ends main.
  template <class F>
  int run(F&& body) const {
    try {
      if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
        body();
        return 0;
      } else {
        return static_cast<int>(body());
      }
    } catch (const std::exception& e) {
      abort(e.what());
    } catch (...) {
      abort("an exception not derived from std::exception");
    }
  }

  /// The loader settings with this rank's shard: shards = size(), shard = rank(). The
  /// batch size stays the local one, so the global batch is size() * batch_size.
  data::LoaderOptions shard(data::LoaderOptions options) const {
    options.shards = static_cast<std::size_t>(size_);
    options.shard = static_cast<std::size_t>(rank_);
    return options;
  }

 private:
  void init(int* argc, char*** argv);
  int rank_ = 0, size_ = 1;
  int unwinding_at_start_ = 0;  // std::uncaught_exceptions() when constructed
};

/// Overwrites every parameter's value with rank 0's (one broadcast per parameter), so that
/// all ranks start from the same point whatever seed each used. Throws ValueError, on every
/// rank, when the ranks' parameter counts or sizes differ (different models).
template <class T>
void broadcast_parameters(const Session& session, const std::vector<Expr<T>>& params);

/// Settings of a GradientAverager.
struct AverageOptions {
  /// Before the allreduce, check that every value this rank contributes is finite, and
  /// throw ValueError naming the rank, the output and the step otherwise: a NaN loss or
  /// gradient is reported by the rank where it arose (run() then ends the job). Off, a NaN
  /// spreads to every rank's average instead.
  bool check_finite = true;
};

/// Averages a step's outputs over the ranks in one allreduce: the loss, the metrics and
/// every gradient, packed into one buffer. Each rank's gradient is the mean over its local
/// batch, so the average of R equal-sized shards is the mean over the global batch: the
/// gradient one process would compute on all of it, up to rounding. The buffer and the
/// results are sized by the first call and reused: later calls with outputs of the same
/// shapes allocate nothing (a change of shape, rare, resizes them).
template <class T>
class GradientAverager {
 public:
  /// An averager over session's ranks.
  explicit GradientAverager(const Session& session, AverageOptions options = {});

  /// The mean over ranks of each of outputs (laid out like them, so opt.step(result, 1)
  /// takes it where it took the run's outputs). Every rank must call it with outputs of the
  /// same shapes, once per step. The reference stays valid until the next call.
  const std::vector<xt::xarray<T>>& average(const std::vector<xt::xarray<T>>& outputs) {
    return reduce(outputs, 0, 0);
  }
  /// Like average(), in the same one allreduce, except that outputs [sums_first,
  /// sums_last) are summed over the ranks instead of averaged: counts and sums that a
  /// metric combines (what Trainer::fit exchanges through DataParallel).
  const std::vector<xt::xarray<T>>& reduce(const std::vector<xt::xarray<T>>& outputs,
                                           std::size_t sums_first, std::size_t sums_last);
  /// The last average().
  const std::vector<xt::xarray<T>>& results() const { return results_; }
  /// Values exchanged per step (the packed buffer's length).
  std::size_t packed_size() const { return buffer_.size(); }
  /// Calls of average() so far.
  std::size_t steps() const { return steps_; }

 private:
  const Session* session_;
  AverageOptions opts_;
  std::vector<T> buffer_;
  std::vector<xt::xarray<T>> results_;
  std::size_t steps_ = 0;
};

/// Data parallelism for Trainer::fit: set it as TrainerOptions::replicas on every rank,
/// give each rank its shard of the data, and fit() trains as on one process with the
/// global batch (see train/replicas.hpp for what fit then does):
/// @code
/// xgrad::train::Trainer<float> trainer(task, adam, {.metrics = {xgrad::train::accuracy<float>()},
///     .replicas = std::make_shared<xgrad::dist::DataParallel<float>>(mpi)});
/// trainer.add(std::make_shared<xgrad::train::ProgressBar<float>>());  // prints on rank 0
/// DataLoader loader(data, mpi.shard({.batch_size = 64, .seed = 1}));
/// DataLoader val(test, mpi.shard({.batch_size = 256, .shuffle = false}));
/// trainer.fit(loader, {.epochs = 10, .validation = &val});
/// @endcode
/// A training step exchanges its loss, metric statistics and gradients in one allreduce
/// (a GradientAverager's, with its NaN check), plus one allreduce of one value in which
/// the ranks agree whether to stop; each validation batch its loss and statistics.
template <class T>
class DataParallel : public train::Replicas<T> {
 public:
  /// The ranks of session; options apply to the averaging of every batch.
  explicit DataParallel(const Session& session, AverageOptions options = {})
      : session_(&session), step_(session, options), eval_(session, options) {}
  /// @cond TRIVIAL
  std::size_t size() const override { return static_cast<std::size_t>(session_->size()); }
  std::size_t rank() const override { return static_cast<std::size_t>(session_->rank()); }
  const std::vector<xt::xarray<T>>& combine(train::Phase phase,
                                            const std::vector<xt::xarray<T>>& outputs,
                                            std::size_t sums_first,
                                            std::size_t sums_last) override {
    return (phase == train::Phase::training ? step_ : eval_).reduce(outputs, sums_first, sums_last);
  }
  void sum(std::span<double> values) override { session_->sum(values); }
  void check_same(std::string_view what, std::size_t value) override {
    session_->check_same(what, value);
  }
  void broadcast(const std::vector<Expr<T>>& nodes) override {
    broadcast_parameters(*session_, nodes);
  }
  void barrier() override { session_->barrier(); }
  /// @endcond
  /// The averager of the training steps (its steps() and packed_size()).
  const GradientAverager<T>& averager() const { return step_; }

 private:
  const Session* session_;
  GradientAverager<T> step_, eval_;  // each keeps the buffer of its layout
};

/// @cond TRIVIAL
extern template void broadcast_parameters<float>(const Session&, const std::vector<Expr<float>>&);
extern template void broadcast_parameters<double>(const Session&, const std::vector<Expr<double>>&);
extern template class GradientAverager<float>;
extern template class GradientAverager<double>;
/// @endcond

}  // namespace xgrad::dist
