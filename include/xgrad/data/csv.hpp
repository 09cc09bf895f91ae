/// @file csv.hpp
/// @brief CsvDataset: numeric columns of a delimited text file, loaded into memory.
///
/// @code
/// // price.csv: "area;rooms;id;price" then rows; features area and rooms, target price.
/// xgrad::data::CsvDataset<double> data(
///     "price.csv",
///     xgrad::data::CsvOptions().delimiter(';').features({"area", "rooms"}).targets({"price"}));
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "xgrad/data/dataset.hpp"

namespace xgrad::data {

/// Whether the first row of a CSV file names the columns.
enum class CsvHeader : std::uint8_t {
  automatic,  ///< A header when some field of the first row is not a number.
  present,    ///< The first row is a header.
  absent      ///< Every row is data.
};

/// A column of a CSV file, by 0-based position or by header name.
class CsvColumn {
 public:
  /// Column at this position.
  CsvColumn(std::size_t index) : id_(index) {}  // NOLINT(google-explicit-constructor)
  /// Column at this position (so that {0, 1} reads as positions); negative positions
  /// count from the end, -1 being the last column.
  CsvColumn(int index)
      : id_(static_cast<std::size_t>(static_cast<std::ptrdiff_t>(index))) {}  // NOLINT
  /// Column with this header name.
  CsvColumn(std::string name) : id_(std::move(name)) {}  // NOLINT
  /// Column with this header name.
  CsvColumn(const char* name) : id_(std::string(name)) {}  // NOLINT
  /// True for a column given by name.
  bool by_name() const { return std::holds_alternative<std::string>(id_); }
  /// The position (when not by name); negative positions wrap around as size_t.
  std::size_t index() const { return std::get<std::size_t>(id_); }
  /// The name (when by name).
  const std::string& name() const { return std::get<std::string>(id_); }

 private:
  std::variant<std::size_t, std::string> id_;
};

/// Options of CsvDataset and read_csv, set by chained calls:
/// `CsvOptions().delimiter(';').targets({"price"})`.
class CsvOptions {
 public:
  /// Field separator (default ','; a tab for TSV).
  CsvOptions& delimiter(char c) {
    delimiter_ = c;
    return *this;
  }
  /// Whether the first row names the columns (default CsvHeader::automatic).
  CsvOptions& header(CsvHeader h) {
    header_ = h;
    return *this;
  }
  /// Lines skipped at the start of the file, whatever they hold, before the header or the
  /// first data row (default 0). scikit-learn's bundled data files, for one, start with a
  /// line of counts before the header. Line numbers in messages still count every line.
  CsvOptions& skip_rows(std::size_t n) {
    skip_rows_ = n;
    return *this;
  }
  /// Feature columns in order (default: every column that is not a target).
  CsvOptions& features(std::vector<CsvColumn> columns) {
    features_ = std::move(columns);
    return *this;
  }
  /// Target columns in order (default: the last column).
  CsvOptions& targets(std::vector<CsvColumn> columns) {
    targets_ = std::move(columns);
    return *this;
  }
  /// The field separator.
  char delimiter() const { return delimiter_; }
  /// The header setting.
  CsvHeader header() const { return header_; }
  /// The number of leading lines skipped.
  std::size_t skip_rows() const { return skip_rows_; }
  /// The feature columns (empty: all but the targets).
  const std::vector<CsvColumn>& features() const { return features_; }
  /// The target columns.
  const std::vector<CsvColumn>& targets() const { return targets_; }

 private:
  char delimiter_ = ',';
  CsvHeader header_ = CsvHeader::automatic;
  std::size_t skip_rows_ = 0;
  std::vector<CsvColumn> features_;
  std::vector<CsvColumn> targets_ = {CsvColumn(-1)};
};

/// The selected columns of a CSV file as numbers, row-major (features then targets).
struct CsvTable {
  std::vector<std::string> feature_names;  ///< Header names (or "column N") of features.
  std::vector<std::string> target_names;   ///< Header names (or "column N") of targets.
  std::size_t rows = 0;                    ///< Data rows.
  std::vector<std::size_t> lines;          ///< 1-based line number of each data row.
  std::vector<double> features;            ///< rows x feature_names.size() values.
  std::vector<double> targets;             ///< rows x target_names.size() values.
};

/// Reads the selected columns of a CSV file. Fields are trimmed of spaces; a field may be
/// double-quoted (with "" for a quote); blank lines and a final newline are skipped; LF,
/// CRLF and CR-only (old Mac) line ends are accepted; a UTF-8 byte-order mark at the start
/// is dropped; unselected columns may hold anything. Numbers are parsed as by strtod in
/// the C locale (also nan and inf).
/// Throws DataError naming the file and line (and column) for: a missing or empty file,
/// a header without data rows, a row with another number of fields than the first, a
/// selected field that is empty, not a number or out of the range of double (such as
/// 1e400), an unknown column name or position, or a column selected twice. When a row
/// splits into one field but holds a ';', tab, '|' or ',' the message names that likely
/// delimiter.
CsvTable read_csv(const std::string& path, const CsvOptions& options = {});

/// The selected columns of a CSV file as in-memory tensors (see read_csv): features
/// (n, feature columns) and targets (n), or (n, k) for several target columns. For
/// integer T or L the values must be whole numbers within range.
template <Element T, Element L = T>
class CsvDataset : public TensorDataset<T, L> {
 public:
  /// Reads the file; throws DataError as read_csv does.
  explicit CsvDataset(const std::string& path, const CsvOptions& options = {});

  /// Names of the feature columns.
  const std::vector<std::string>& feature_names() const { return feature_names_; }
  /// Names of the target columns.
  const std::vector<std::string>& target_names() const { return target_names_; }

 private:
  CsvDataset(CsvTable t, const std::string& path);
  std::vector<std::string> feature_names_, target_names_;
};

}  // namespace xgrad::data
