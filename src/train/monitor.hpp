// Internal to src/train/: how callbacks that watch a logged quantity (EarlyStopping,
// ModelCheckpoint's best) decide its direction and what counts as an improvement, so
// that both read "val_accuracy" or "loss" alike.
#pragma once

#include <cmath>
#include <optional>
#include <string>

namespace xgrad::train::detail {

/// The user's choice, else true for names containing "acc" or "r2" (accuracies, R^2).
inline bool larger_is_better(const std::string& monitor, std::optional<bool> maximize) {
  return maximize.value_or(monitor.find("acc") != std::string::npos ||
                           monitor.find("r2") != std::string::npos);
}

/// True when v (not NaN) beats best by more than min_delta, or there is no best yet.
inline bool improves(double v, double best, bool maximize, double min_delta = 0) {
  if (std::isnan(v)) return false;
  return std::isnan(best) || (maximize ? v > best + min_delta : v < best - min_delta);
}

}  // namespace xgrad::train::detail
