/// @file train/callback.hpp
/// @brief The Callback interface: code fit() runs at the start and end of the run, of each
/// epoch and of each batch, with the Trainer to read its state and to stop it.
///
/// A user callback overrides the hooks it needs:
/// @code
/// struct PrintLr : xgrad::train::Callback<float> {
///   void on_epoch_end(xgrad::train::Trainer<float>& t) override {
///     std::cout << "lr " << t.optimizer().last_lr() << "\n";
///   }
/// };
/// @endcode
#pragma once

namespace xgrad::train {

template <class T>
class Trainer;

/// Hooks run by Trainer::fit. Each receives the trainer: its epoch, step, logs and
/// history, its optimizer and parameters, and stop() to end the run after the current
/// batch.
template <class T>
class Callback {
 public:
  virtual ~Callback() = default;
  /// Before the first epoch (also of a resumed run).
  virtual void on_train_begin(Trainer<T>&) {}
  /// Before the epoch's first batch.
  virtual void on_epoch_begin(Trainer<T>&) {}
  /// Before a batch's run.
  virtual void on_batch_begin(Trainer<T>&) {}
  /// After a batch's run, before the optimizer's step: batch_loss() is known, and a
  /// stop() here skips the update. With replicas (TrainerOptions::replicas) the processes
  /// agree after this hook: a stop() on any of them skips the update on all; a stop()
  /// in a later hook stops all before the next batch's update (or at the epoch's end).
  virtual void on_before_step(Trainer<T>&) {}
  /// After a batch's update; logs() hold the epoch's running training values.
  virtual void on_batch_end(Trainer<T>&) {}
  /// After the epoch's validation; logs() hold the epoch's row, already in history().
  virtual void on_epoch_end(Trainer<T>&) {}
  /// After the last epoch, or once stopped.
  virtual void on_train_end(Trainer<T>&) {}
};

}  // namespace xgrad::train
