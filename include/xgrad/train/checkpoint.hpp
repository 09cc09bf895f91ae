/// @file train/checkpoint.hpp
/// @brief Checkpoints that resume a run bit for bit, and the ModelCheckpoint callback.
///
/// A checkpoint is one NumPy .npz archive (data::NpzWriter, written atomically):
/// - `model.<name>`: every parameter and buffer of Trainer::state(), so that
///   `nn::load(model, path, {.prefix = "model."})` reads a model from it;
/// - `optimizer.<i>.<tensor>`: each parameter's optimizer tensors (moments, momentum);
/// - `history`: the history's rows (epochs x columns, float64);
/// - `metrics.<i>`: in a checkpoint inside an epoch, training metric i's Metric::state()
///   (float64): its sums over the epoch's batches so far;
/// - `checkpoint.json`: format name and version, element type, the number of processes
///   that trained (Trainer::processes, 1 without replicas), the position (epoch, next
///   batch, the partial epoch's loss sum and examples; inside an epoch, the training
///   metrics' names and whether each saved its state), the optimizer's name, step count, epoch,
///   scalars and schedule state, the history's columns, the state's names and shapes, and the
///   user's extras.
/// Everything else a run draws from is a function of what is saved: the loader's order
/// of (seed, epoch), dropout masks of (seed, a step buffer in the state). So a run
/// resumed from a checkpoint, with the same loader options and model code, continues
/// exactly as the uninterrupted run, every history column included. Not saved: a
/// StoppingRule's own window and clock, and the partial sums of a user metric that does
/// not implement Metric::state(): resumed inside an epoch, it reports NaN for that epoch
/// (as do all training metrics of a version 1 checkpoint, which predates their states).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xgrad/train/callback.hpp"

namespace xgrad::train {

/// User values saved with a checkpoint and returned when it is loaded.
struct Extras {
  std::map<std::string, double> numbers = {};       ///< Named numbers (NaN and infinities kept).
  std::map<std::string, std::string> strings = {};  ///< Named strings.
};

/// Version of the checkpoint layout this build writes; it reads this one and every
/// earlier one (version 1 lacks the training metrics' states).
inline constexpr int checkpoint_version = 2;

/// Writes everything t needs to continue to `path`, atomically: the previous file stays
/// intact if anything fails. Throws data::DataError naming the path. With replicas,
/// collective: rank 0 writes (every process holds the same state), and no process
/// returns before the file is complete.
template <class T>
void save_checkpoint(const Trainer<T>& t, const std::string& path, const Extras& extras = {});

/// Restores a checkpoint into t (state values, optimizer state, position, history) and
/// returns its extras; the next fit() continues where the saved run was. Checks all
/// before writing anything: a file that is not a checkpoint, of a newer version or
/// another element type, a truncated or corrupt file, one of another model (names,
/// shapes, the optimizer or its parameter count differ), or one taken inside an epoch
/// whose training metrics' states do not fit t's (other metrics, in another order, or of
/// other sizes) throws data::DataError naming the file and every difference. A checkpoint
/// at an epoch's end may be loaded with other metrics: they start afresh. With replicas,
/// every process loads the file, and a checkpoint of a run on another number of
/// processes is refused naming both numbers.
template <class T>
Extras load_checkpoint(Trainer<T>& t, const std::string& path);

/// The newest checkpoint ModelCheckpoint wrote in `directory` (highest step), or "" when
/// there is none.
std::string latest_checkpoint(const std::string& directory);

/// Options of ModelCheckpoint.
struct CheckpointOptions {
  /// Folder of the checkpoints (created if missing): step-NNNNNNNNN.npz (the step count) and
  /// best.npz.
  std::string directory = "checkpoints";
  /// Write after every this many epochs (0: never at epoch ends).
  std::size_t every_epochs = 1;
  /// Also write after every this many updates (0: never inside an epoch).
  std::size_t every_steps = 0;
  /// Numbered checkpoints kept; older ones are removed (0 keeps all).
  std::size_t keep_last = 3;
  /// Also keep best.npz: the checkpoint of the epoch with the best monitored value.
  bool keep_best = false;
  /// The quantity keep_best watches.
  std::string monitor = "val_loss";
  /// Whether larger is better; by default true for names containing "acc" or "r2".
  std::optional<bool> maximize = std::nullopt;
};

/// Saves checkpoints during fit: every N epochs or steps, keeping the last K, and the
/// best one.
template <class T>
class ModelCheckpoint : public Callback<T> {
 public:
  /// Checkpoints with the given options.
  explicit ModelCheckpoint(CheckpointOptions options = {});
  /// @cond TRIVIAL
  void on_train_begin(Trainer<T>& t) override;
  void on_batch_end(Trainer<T>& t) override;
  void on_epoch_end(Trainer<T>& t) override;
  /// @endcond
  /// Paths written, oldest first, still on disk (best.npz not included).
  const std::vector<std::string>& kept() const { return kept_; }
  /// Best monitored value so far (NaN before the first epoch).
  double best() const { return best_; }

 private:
  void write(Trainer<T>& t);
  CheckpointOptions opts_;
  bool maximize_;
  double best_;
  std::vector<std::string> kept_;
};

extern template class ModelCheckpoint<float>;
extern template class ModelCheckpoint<double>;

}  // namespace xgrad::train
