// Logs and History: named values of a run, in first-seen order.
#include "xgrad/train/history.hpp"

#include <cmath>
#include <iomanip>
#include <limits>
#include <ostream>

#include "xgrad/error.hpp"

namespace xgrad::train {

namespace {

std::string listed(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

}  // namespace

void Logs::set(const std::string& name, double value) {
  for (auto& [n, v] : entries_) {
    if (n == name) {
      v = value;
      return;
    }
  }
  entries_.emplace_back(name, value);
}

bool Logs::has(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e.first == name) return true;
  }
  return false;
}

double Logs::get(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& [n, v] : entries_) {
    if (n == name) return v;
    names.push_back(n);
  }
  throw ValueError("train::Logs: no value named '" + name + "' (present: " + listed(names) + ")");
}

History::History(std::vector<std::string> columns, std::vector<std::vector<double>> rows)
    : columns_(std::move(columns)), rows_(std::move(rows)) {
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i].size() != columns_.size()) {
      throw ValueError("train::History: row " + std::to_string(i) + " has " +
                       std::to_string(rows_[i].size()) + " values for " +
                       std::to_string(columns_.size()) + " columns");
    }
  }
}

void History::append(const Logs& row) {
  std::vector<double> r(columns_.size(), std::numeric_limits<double>::quiet_NaN());
  for (const auto& [name, v] : row) {
    std::size_t j = 0;
    while (j < columns_.size() && columns_[j] != name) ++j;
    if (j == columns_.size()) {
      columns_.push_back(name);
      for (auto& old : rows_) old.push_back(std::numeric_limits<double>::quiet_NaN());
      r.push_back(v);
    } else {
      r[j] = v;
    }
  }
  rows_.push_back(std::move(r));
}

std::size_t History::index(const std::string& column) const {
  for (std::size_t j = 0; j < columns_.size(); ++j) {
    if (columns_[j] == column) return j;
  }
  throw ValueError("train::History: no column '" + column + "' (columns: " + listed(columns_) +
                   ")");
}

bool History::has(const std::string& column) const {
  for (const auto& c : columns_) {
    if (c == column) return true;
  }
  return false;
}

std::vector<double> History::column(const std::string& column) const {
  const std::size_t j = index(column);
  std::vector<double> out;
  out.reserve(rows_.size());
  for (const auto& r : rows_) out.push_back(r[j]);
  return out;
}

double History::last(const std::string& column) const {
  const std::size_t j = index(column);
  if (rows_.empty()) throw ValueError("train::History: no epoch recorded yet");
  return rows_.back()[j];
}

Logs History::row(std::size_t i) const {
  if (i >= rows_.size()) {
    throw ValueError("train::History: row " + std::to_string(i) + " of " +
                     std::to_string(rows_.size()));
  }
  Logs l;
  for (std::size_t j = 0; j < columns_.size(); ++j) {
    if (!std::isnan(rows_[i][j])) l.set(columns_[j], rows_[i][j]);
  }
  return l;
}

void History::write_csv(std::ostream& os) const {
  for (std::size_t j = 0; j < columns_.size(); ++j) os << (j ? "," : "") << columns_[j];
  os << "\n";
  const auto old = os.precision(std::numeric_limits<double>::max_digits10);
  for (const auto& r : rows_) {
    for (std::size_t j = 0; j < r.size(); ++j) {
      if (j) os << ",";
      if (!std::isnan(r[j])) os << r[j];
    }
    os << "\n";
  }
  os.precision(old);
}

void History::truncate(std::size_t n) {
  if (n < rows_.size()) rows_.resize(n);
}

}  // namespace xgrad::train
