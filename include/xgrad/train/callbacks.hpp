/// @file train/callbacks.hpp
/// @brief The built-in callbacks: progress display, CSV history, history plots, early
/// stopping, stopping on a non-finite loss, and a wall-clock budget. With replicas
/// (TrainerOptions::replicas) the ones that print or write act on rank 0 only.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/train/callback.hpp"

namespace xgrad::train {

/// Options of ProgressBar.
struct ProgressOptions {
  /// Where to write (std::cout when null).
  std::ostream* out = nullptr;
  /// Redraw in place; by default, when `out` is std::cout and standard output is a
  /// terminal. Otherwise one plain line per epoch is written (logs, CI).
  std::optional<bool> terminal = std::nullopt;
  /// Characters of the bar.
  std::size_t width = 30;
  /// Least seconds between two redraws on a terminal.
  double interval = 0.1;
};

/// "epoch 3/12 [#########.....] 215/430 5300 ex/s 0:04 ETA 0:04 loss 0.4321 accuracy
/// 0.8812": redrawn in place on a terminal; a plain summary line per epoch always.
template <class T>
class ProgressBar : public Callback<T> {
 public:
  /// A bar with the given options.
  explicit ProgressBar(ProgressOptions options = {});
  /// @cond TRIVIAL
  void on_epoch_begin(Trainer<T>& t) override;
  void on_batch_end(Trainer<T>& t) override;
  void on_epoch_end(Trainer<T>& t) override;
  /// @endcond

 private:
  std::ostream& out() const;
  ProgressOptions opts_;
  bool terminal_;
  double epoch_start_ = 0, last_draw_ = -1;
  std::size_t first_batch_ = 0, first_examples_ = 0;
};

/// Writes the history as CSV after every epoch (the whole file, replaced atomically), so
/// an interrupted run leaves a complete file.
template <class T>
class CsvLogger : public Callback<T> {
 public:
  /// Logs to `path`.
  explicit CsvLogger(std::string path) : path_(std::move(path)) {}
  /// @cond TRIVIAL
  void on_epoch_end(Trainer<T>& t) override;
  /// @endcond

 private:
  std::string path_;
};

/// At the end of the run, draws each quantity of the history over the epochs (training
/// and validation curves together: loss and val_loss, accuracy and val_accuracy...) as
/// STEM_QUANTITY.png and .svg with gnuplot, beside the gnuplot script STEM_QUANTITY.gp.
/// Without gnuplot it writes the scripts and one line saying how to install it.
template <class T>
class HistoryPlot : public Callback<T> {
 public:
  /// Plots named after `stem`; the quantities to draw (default: every column except
  /// epoch, lr and seconds, validation columns with their training ones).
  explicit HistoryPlot(std::string stem = "history", std::vector<std::string> quantities = {});
  /// @cond TRIVIAL
  void on_train_end(Trainer<T>& t) override;
  /// @endcond
  /// Image files written by the last run (empty without gnuplot).
  const std::vector<std::string>& images() const { return images_; }

 private:
  std::string stem_;
  std::vector<std::string> quantities_, images_;
};

/// Options of EarlyStopping.
struct EarlyStoppingOptions {
  /// The logged quantity watched after each epoch ("val_loss", "val_accuracy", "loss").
  std::string monitor = "val_loss";
  /// Whether larger is better; by default true for names containing "acc" or "r2".
  std::optional<bool> maximize = std::nullopt;
  /// Epochs without improvement tolerated before stopping.
  std::size_t patience = 5;
  /// Least change that counts as an improvement.
  double min_delta = 0;
  /// At the end, put back the parameters and buffers of the best epoch.
  bool restore_best = true;
};

/// Stops when the monitored quantity has not improved for `patience` epochs, and
/// optionally restores the best epoch's weights.
template <class T>
class EarlyStopping : public Callback<T> {
 public:
  /// Early stopping with the given options.
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  /// @cond TRIVIAL
  void on_train_begin(Trainer<T>& t) override;
  void on_epoch_end(Trainer<T>& t) override;
  void on_train_end(Trainer<T>& t) override;
  /// @endcond
  /// Best value seen (NaN before the first epoch).
  double best() const { return best_; }
  /// Epoch (from 1) of the best value, 0 before the first epoch.
  std::size_t best_epoch() const { return best_epoch_; }

 private:
  EarlyStoppingOptions opts_;
  bool maximize_;
  double best_;
  std::size_t best_epoch_ = 0, wait_ = 0;
  std::vector<xt::xarray<T>> best_values_;
};

/// Stops the run at the first batch whose loss is NaN or infinite, before that batch's
/// update reaches the parameters.
template <class T>
class TerminateOnNaN : public Callback<T> {
 public:
  /// @cond TRIVIAL
  void on_before_step(Trainer<T>& t) override;
  /// @endcond
};

/// Stops the run once it has taken `seconds` of wall-clock time (checked after each
/// batch).
template <class T>
class TimeBudget : public Callback<T> {
 public:
  /// A budget in seconds.
  explicit TimeBudget(double seconds) : seconds_(seconds) {}
  /// @cond TRIVIAL
  void on_batch_end(Trainer<T>& t) override;
  /// @endcond

 private:
  double seconds_;
};

extern template class ProgressBar<float>;
extern template class ProgressBar<double>;
extern template class CsvLogger<float>;
extern template class CsvLogger<double>;
extern template class HistoryPlot<float>;
extern template class HistoryPlot<double>;
extern template class EarlyStopping<float>;
extern template class EarlyStopping<double>;
extern template class TerminateOnNaN<float>;
extern template class TerminateOnNaN<double>;
extern template class TimeBudget<float>;
extern template class TimeBudget<double>;

}  // namespace xgrad::train
