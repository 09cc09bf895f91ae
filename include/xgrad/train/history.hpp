/// @file train/history.hpp
/// @brief Named values of a training run: Logs (the values of the moment) and History
/// (one row of them per epoch).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace xgrad::train {

/// Named numbers in the order they were first set ("loss", "accuracy", "val_loss"...), so
/// that progress lines and CSV columns read in a stable, meaningful order.
class Logs {
 public:
  /// Sets (or adds) a value.
  void set(const std::string& name, double value);
  /// True when a value of that name is present.
  bool has(const std::string& name) const;
  /// The value; throws ValueError naming the missing entry and the ones present.
  double get(const std::string& name) const;
  /// Removes every value.
  void clear() { entries_.clear(); }
  /// @cond TRIVIAL
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  /// @endcond

 private:
  std::vector<std::pair<std::string, double>> entries_;
};

/// One row of Logs per epoch. Columns appear in first-seen order; a value missing from a
/// row (a validation metric in an epoch without validation) reads as NaN.
class History {
 public:
  /// An empty history.
  History() = default;
  /// A history of these columns and rows (each row one value per column, NaN for
  /// missing); throws ValueError when a row's length differs from the columns'.
  History(std::vector<std::string> columns, std::vector<std::vector<double>> rows);
  /// Appends an epoch's row.
  void append(const Logs& row);
  /// Number of rows (epochs recorded).
  std::size_t size() const { return rows_.size(); }
  /// True before the first epoch ends.
  bool empty() const { return rows_.empty(); }
  /// Column names, in first-seen order.
  const std::vector<std::string>& columns() const { return columns_; }
  /// True when some row has that column.
  bool has(const std::string& column) const;
  /// A column over all rows; throws ValueError naming an unknown column.
  std::vector<double> column(const std::string& column) const;
  /// The value of a column in the last row; throws ValueError when empty or unknown.
  double last(const std::string& column) const;
  /// Every row, one value per column (NaN where missing).
  const std::vector<std::vector<double>>& rows() const { return rows_; }
  /// Row i as Logs (NaN entries left out).
  Logs row(std::size_t i) const;
  /// Writes the history as CSV: a header, then one line per row, at full precision.
  void write_csv(std::ostream& os) const;
  /// Drops rows from index n on (a resumed run restarts from its checkpoint's epoch).
  void truncate(std::size_t n);

 private:
  std::size_t index(const std::string& column) const;
  std::vector<std::string> columns_;
  std::vector<std::vector<double>> rows_;  // rows_[i][j]: column j of row i, NaN when absent
};

}  // namespace xgrad::train
