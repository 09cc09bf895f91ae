/// @file train/replicas.hpp
/// @brief Replicas: the processes that train one model together (data parallelism), as
/// Trainer::fit sees them. The training library has only this interface and never needs
/// MPI; xgrad::dist::DataParallel (include/xgrad/dist/dist.hpp) implements it over MPI.
///
/// With TrainerOptions::replicas set, on every process of the job:
/// - fit() starts by giving every process rank 0's parameters and buffers, and checks
///   that the processes agree on the loader's batches, the position and the step count;
/// - each batch's outputs are combined before the update: the loss and the gradients
///   averaged, the metrics' statistics summed, in one exchange; so the update, the loss,
///   the metrics and the history are the same on every process: those of the global batch;
/// - validation runs on each process's shard and is combined the same way;
/// - a stop() on any process stops every process at the same batch;
/// - only rank 0 prints (ProgressBar), writes files (CsvLogger, HistoryPlot,
///   save_checkpoint, ModelCheckpoint), the others waiting until a checkpoint is complete;
///   a checkpoint records the number of processes and resumes only on as many.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/graph.hpp"

namespace xgrad::train {

/// What a combined batch's outputs are: a training step's (loss, statistics, gradients)
/// or an evaluation's (loss, statistics).
enum class Phase { training, evaluation };

/// The processes that train one model together; every call is collective: each process
/// makes the same calls in the same order. Set in TrainerOptions::replicas.
template <class T>
class Replicas {
 public:
  virtual ~Replicas() = default;
  /// Number of processes.
  virtual std::size_t size() const = 0;
  /// This process's number, 0 .. size() - 1; rank 0 prints and writes files.
  virtual std::size_t rank() const = 0;
  /// A batch's outputs combined over the processes, laid out like them: outputs
  /// [sums_first, sums_last) summed (the metrics' statistics: counts and sums), the others
  /// averaged (the loss and the gradients: means over equal local batches average to the
  /// mean over the global batch). The reference stays valid until the next call of the
  /// same phase.
  virtual const std::vector<xt::xarray<T>>& combine(Phase phase,
                                                    const std::vector<xt::xarray<T>>& outputs,
                                                    std::size_t sums_first,
                                                    std::size_t sums_last) = 0;
  /// The sum over the processes of each value, in place.
  virtual void sum(std::span<double> values) = 0;
  /// Throws an Error on every process when the processes' values differ, naming what
  /// and the values.
  virtual void check_same(std::string_view what, std::size_t value) = 0;
  /// Gives every node rank 0's value.
  virtual void broadcast(const std::vector<Expr<T>>& nodes) = 0;
  /// Waits until every process has reached it.
  virtual void barrier() = 0;
};

}  // namespace xgrad::train
