// read_csv and CsvDataset: the selected numeric columns of a delimited text file.
#include "xgrad/data/csv.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "instantiate.hpp"
#include "io.hpp"

namespace xgrad::data {

using detail::element_name;
using detail::fail;

namespace {

std::string line_at(std::size_t line) { return "line " + std::to_string(line); }

bool is_space(char c, char delim) { return c != delim && (c == ' ' || c == '\t'); }

std::string_view trim(std::string_view s, char delim) {
  while (!s.empty() && is_space(s.front(), delim)) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back(), delim)) s.remove_suffix(1);
  return s;
}

// Splits one line into fields; a field may be double-quoted with "" for a quote.
void split(std::string_view line, char delim, std::vector<std::string>& out,
           const std::string& path, std::size_t line_no) {
  out.clear();
  std::size_t i = 0;
  while (true) {
    while (i < line.size() && is_space(line[i], delim)) ++i;
    std::string field;
    if (i < line.size() && line[i] == '"') {
      const std::size_t open = i++;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field += line[i++];
      }
      if (!closed) {
        fail(path, line_at(line_no) + ", character " + std::to_string(open + 1),
             "unterminated quoted field: expected a closing '\"' on the same line");
      }
      while (i < line.size() && is_space(line[i], delim)) ++i;
      if (i < line.size() && line[i] != delim) {
        fail(path, line_at(line_no) + ", character " + std::to_string(i + 1),
             std::string("expected the delimiter '") + delim + "' after a quoted field");
      }
    } else {
      const std::size_t start = i;
      while (i < line.size() && line[i] != delim) ++i;
      field = std::string(trim(line.substr(start, i - start), delim));
    }
    out.push_back(std::move(field));
    if (i >= line.size()) break;
    ++i;  // the delimiter; a delimiter at the end of the line leaves an empty last field
  }
}

enum class Parsed : std::uint8_t { number, not_a_number, out_of_range };

// A number as strtod reads it in the C locale; beyond double's range is out_of_range,
// below its smallest denormal it rounds to (signed) zero as strtod does.
Parsed parse_number(std::string_view s, double& v) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+' || s.front() == ' ') return Parsed::not_a_number;
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (r.ptr != end) return Parsed::not_a_number;
  if (r.ec == std::errc()) return Parsed::number;
  if (r.ec != std::errc::result_out_of_range) return Parsed::not_a_number;
  // Overflow or underflow? long double's wider exponent settles most cases exactly.
  long double wide = 0;
  if (std::from_chars(s.data(), end, wide).ec == std::errc()) {
    if (std::fabs(wide) > std::numeric_limits<double>::max()) return Parsed::out_of_range;
    v = static_cast<double>(wide);
    return Parsed::number;
  }
  const bool negative_exponent = s.find("e-") != s.npos || s.find("E-") != s.npos;
  if (!negative_exponent) return Parsed::out_of_range;
  v = s.front() == '-' ? -0.0 : 0.0;
  return Parsed::number;
}

// The delimiters a file is likely to use instead, for the hint of a row read as one field.
std::string delimiter_hint(std::string_view line, char delim) {
  char best = 0;
  std::size_t best_count = 0;
  for (const char c : {';', '\t', '|', ','}) {
    if (c == delim) continue;
    const auto n = static_cast<std::size_t>(std::count(line.begin(), line.end(), c));
    if (n > best_count) {
      best = c;
      best_count = n;
    }
  }
  if (best == 0) return "";
  auto name = [](char c) { return c == '\t' ? std::string("tab") : std::string("'") + c + "'"; };
  const std::string shown = name(best);
  const std::string code = best == '\t' ? "'\\t'" : shown;
  return "; the row is one field with delimiter " + name(delim) + " but holds " +
         std::to_string(best_count) + " " + shown + ": a " + shown +
         "-separated file? (CsvOptions().delimiter(" + code + "))";
}

// The next line of text ending in LF, CRLF or a lone CR (old Mac files), advancing pos;
// false at the end of the text.
bool next_line(std::string_view text, std::size_t& pos, std::string_view& line) {
  if (pos >= text.size()) return false;
  const std::size_t end = text.find_first_of("\r\n", pos);
  if (end == text.npos) {
    line = text.substr(pos);
    pos = text.size();
    return true;
  }
  line = text.substr(pos, end - pos);
  pos = end + 1;
  if (text[end] == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
  return true;
}

}  // namespace

CsvTable read_csv(const std::string& path, const CsvOptions& options) {
  const char delim = options.delimiter();
  if (delim == '"' || delim == '\n' || delim == '\r' || delim == ' ' || delim == '\0') {
    fail(path, "",
         std::string("delimiter '") + delim +
             "': expected a character other than space, quote and line ends");
  }
  std::uint64_t size = 0;
  const detail::Fd fd = detail::open_read(path, size);  // clear errors: missing, directory
  if (size > std::numeric_limits<std::size_t>::max() / 2) fail(path, "", "file too large");
  std::string content(static_cast<std::size_t>(size), '\0');
  detail::pread_exact(fd.get(), path, 0, content.size(), content.data());
  std::string_view text = content;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte-order mark

  CsvTable t;
  std::vector<std::string> fields;
  std::vector<std::string> names;
  std::vector<std::size_t> fcols, tcols;
  std::size_t ncols = 0, first_line = 0, line_no = 0, text_pos = 0;
  bool have_layout = false;
  std::string_view line, first_row;

  auto resolve = [&](const std::vector<CsvColumn>& cols, bool header,
                     std::vector<std::size_t>& out) {
    for (const CsvColumn& c : cols) {
      std::size_t pos;
      if (c.by_name()) {
        if (!header) {
          fail(path, line_at(first_line),
               "column '" + c.name() + "' selected by name: expected a header row naming it" +
                   (options.header() == CsvHeader::absent ? " (the options say header = absent)"
                                                          : " (the first row is all numbers)"));
        }
        auto it = std::find(names.begin(), names.end(), c.name());
        if (it == names.end()) {
          std::string all;
          for (const auto& n : names) all += (all.empty() ? "'" : ", '") + n + "'";
          fail(path, line_at(first_line),
               "unknown column '" + c.name() + "': expected one of " + all +
                   (ncols == 1 ? delimiter_hint(first_row, delim) : ""));
        }
        pos = static_cast<std::size_t>(it - names.begin());
      } else {
        pos = c.index();
        const auto signed_pos = static_cast<std::ptrdiff_t>(pos);
        if (signed_pos < 0 && -signed_pos <= static_cast<std::ptrdiff_t>(ncols))
          pos = ncols - static_cast<std::size_t>(-signed_pos);
        if (pos >= ncols) {
          fail(path, line_at(first_line),
               "column position " + std::to_string(signed_pos) + ": expected 0 to " +
                   std::to_string(ncols - 1) + " (or -1 to -" + std::to_string(ncols) +
                   "), the row has " + std::to_string(ncols) + " fields");
        }
      }
      out.push_back(pos);
    }
  };

  auto column_name = [&](std::size_t c) {
    return c < names.size() ? "'" + names[c] + "'" : "column " + std::to_string(c);
  };

  // The first skip_rows lines are skipped whatever they hold.
  while (line_no < options.skip_rows() && next_line(text, text_pos, line)) ++line_no;
  const std::size_t skipped = line_no;

  while (next_line(text, text_pos, line)) {
    ++line_no;
    if (trim(line, delim).empty()) continue;
    split(line, delim, fields, path, line_no);

    if (!have_layout) {
      have_layout = true;
      first_line = line_no;
      first_row = line;
      ncols = fields.size();
      bool header = options.header() == CsvHeader::present;
      // Positions can be resolved before knowing whether this row is a header.
      const bool any_named = std::any_of(options.features().begin(), options.features().end(),
                                         [](const CsvColumn& c) { return c.by_name(); }) ||
                             std::any_of(options.targets().begin(), options.targets().end(),
                                         [](const CsvColumn& c) { return c.by_name(); });
      if (options.header() == CsvHeader::automatic) {
        if (any_named) {
          header = true;
        } else {
          // A header when a field that will be read as a number is not one.
          std::vector<std::size_t> sel;
          resolve(options.targets(), false, sel);
          if (options.features().empty()) {
            for (std::size_t c = 0; c < ncols; ++c) sel.push_back(c);
          } else {
            resolve(options.features(), false, sel);
          }
          double v;
          for (std::size_t c : sel)
            header |= parse_number(trim(fields[c], delim), v) == Parsed::not_a_number;
        }
      }
      if (header) names = fields;
      resolve(options.targets(), header, tcols);
      if (options.features().empty()) {
        for (std::size_t c = 0; c < ncols; ++c) {
          if (std::find(tcols.begin(), tcols.end(), c) == tcols.end()) fcols.push_back(c);
        }
      } else {
        resolve(options.features(), header, fcols);
      }
      if (fcols.empty()) {
        fail(path, line_at(first_line),
             "no feature columns: expected at least one column besides the " +
                 std::to_string(tcols.size()) + " target column(s) among " + std::to_string(ncols) +
                 (ncols == 1 ? delimiter_hint(first_row, delim) : ""));
      }
      std::vector<std::size_t> all = fcols;
      all.insert(all.end(), tcols.begin(), tcols.end());
      for (std::size_t i = 0; i < all.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
          if (all[i] == all[j]) {
            fail(path, line_at(first_line),
                 "column " + column_name(all[i]) + " (position " + std::to_string(all[i]) +
                     ") selected twice: expected each column at most once among features and "
                     "targets");
          }
        }
      }
      for (std::size_t c : fcols)
        t.feature_names.push_back(c < names.size() ? names[c] : "column " + std::to_string(c));
      for (std::size_t c : tcols)
        t.target_names.push_back(c < names.size() ? names[c] : "column " + std::to_string(c));
      if (header) continue;
    }

    if (fields.size() != ncols) {
      fail(path, line_at(line_no),
           std::to_string(fields.size()) + " fields: expected " + std::to_string(ncols) +
               " (as in line " + std::to_string(first_line) + ") with delimiter '" + delim + "'");
    }
    auto read = [&](const std::vector<std::size_t>& cols, std::vector<double>& out) {
      for (std::size_t c : cols) {
        const std::string_view f = trim(fields[c], delim);
        double v = 0;
        auto where = [&] {
          return line_at(line_no) + ", field " + std::to_string(c + 1) + " (" + column_name(c) +
                 ")";
        };
        if (f.empty()) fail(path, where(), "empty field: expected a number");
        const Parsed parsed = parse_number(f, v);
        if (parsed != Parsed::number) {
          std::string shown(f.substr(0, 40));
          for (char& ch : shown) {
            if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f)
              ch = '?';
          }
          shown = "'" + shown + (f.size() > 40 ? "...'" : "'");
          if (parsed == Parsed::out_of_range) {
            fail(path, where(),
                 shown +
                     ": number out of range: expected a magnitude of at most 1.8e308 "
                     "(the largest float64)");
          }
          fail(path, where(), shown + ": expected a number");
        }
        out.push_back(v);
      }
    };
    read(fcols, t.features);
    read(tcols, t.targets);
    t.lines.push_back(line_no);
    ++t.rows;
  }
  if (!have_layout) {
    if (skipped > 0 && line_no == skipped) {
      fail(path, "",
           std::to_string(skipped) +
               " line(s) skipped (skip_rows) and nothing after them: "
               "expected a header or data rows");
    }
    fail(path, "",
         size == 0 ? "empty file: expected a header or data rows"
                   : "only blank lines: expected a header or data rows");
  }
  if (t.rows == 0) {
    fail(path, line_at(first_line), "a header and no data rows: expected at least one data row");
  }
  return t;
}

namespace {

// The values v (rows x names, row-major) as an array (rows, names), or (rows) when
// squeezed to one column; integer U takes only whole numbers within its range.
template <class U>
xt::xarray<U> to_array(const std::string& path, const CsvTable& t, const std::vector<double>& v,
                       const std::vector<std::string>& names, bool squeeze) {
  std::vector<std::size_t> shape{t.rows};
  if (!(squeeze && names.size() == 1)) shape.push_back(names.size());
  auto a = xt::xarray<U>::from_shape(shape);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double x = v[i];
    auto refuse = [&](const std::string& expected) {
      char shown[32];  // the shortest text that reads back as x
      *std::to_chars(shown, shown + sizeof shown - 1, x).ptr = '\0';
      throw DataError(path + ": line " + std::to_string(t.lines[i / names.size()]) + ", column '" +
                      names[i % names.size()] + "': value " + shown + ": expected " + expected +
                      element_name<U>());
    };
    if constexpr (std::is_integral_v<U>) {
      // [min, -min) is exactly the range of U; NaN fails every comparison.
      const double lo = static_cast<double>(std::numeric_limits<U>::min());
      if (!(std::trunc(x) == x && x >= lo && x < -lo)) refuse("a whole number that fits in ");
    } else if constexpr (sizeof(U) < sizeof(double)) {
      // Converting a finite double beyond U's range is undefined; infinities stay.
      if (std::isfinite(x) && std::fabs(x) > static_cast<double>(std::numeric_limits<U>::max()))
        refuse("a magnitude within the range of ");
    }
    a.data()[i] = static_cast<U>(v[i]);
  }
  return a;
}

}  // namespace

template <Element T, Element L>
CsvDataset<T, L>::CsvDataset(const std::string& path, const CsvOptions& options)
    : CsvDataset(read_csv(path, options), path) {}

template <Element T, Element L>
CsvDataset<T, L>::CsvDataset(CsvTable t, const std::string& path)
    : TensorDataset<T, L>(to_array<T>(path, t, t.features, t.feature_names, false),
                          to_array<L>(path, t, t.targets, t.target_names, true)),
      feature_names_(std::move(t.feature_names)),
      target_names_(std::move(t.target_names)) {}

#define XGRAD_DATA_INSTANTIATE(T, L) template class CsvDataset<T, L>;
XGRAD_DATA_FOR_EACH_ELEMENT_PAIR(XGRAD_DATA_INSTANTIATE)
#undef XGRAD_DATA_INSTANTIATE

}  // namespace xgrad::data
