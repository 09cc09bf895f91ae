// The .npy header: parsing (ArrayFile::open_npy, .npz members) and writing (NpyWriter,
// NpzWriter), in one place.
#include "npy_format.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xgrad::data::detail {

namespace {

// --- .npy header -------------------------------------------------------------------------

// A cursor over the header text of a .npy file, reporting errors at file byte offsets.
class HeaderParser {
 public:
  HeaderParser(const ArrayFile::Impl& f, std::string_view text, std::uint64_t base)
      : f_(f), s_(text), base_(base) {}

  [[noreturn]] void error(const std::string& what) const {
    fail(f_.path, f_.at(base_ + pos_), "header: " + what);
  }
  void ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool peek(char c) {
    ws();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c, const char* what) {
    if (!peek(c)) error(std::string("expected ") + what + found());
    ++pos_;
  }
  std::string found() const {
    if (pos_ >= s_.size()) return ", found the end of the header";
    const char c = s_[pos_];
    if (std::isprint(static_cast<unsigned char>(c))) return std::string(", found '") + c + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(c));
    return std::string(", found byte 0x") + buf;
  }
  std::string string_literal(const char* what) {
    ws();
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) {
      error(std::string("expected ") + what + " (a quoted string)" + found());
    }
    const char q = s_[pos_++];
    const std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      if (s_[pos_] == '\\' || s_[pos_] == '\n') error("expected a plain string literal" + found());
      ++pos_;
    }
    if (pos_ >= s_.size()) error(std::string("expected the closing quote of ") + what + found());
    return std::string(s_.substr(start, pos_++ - start));
  }
  bool boolean() {
    ws();
    for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      const std::size_t n = std::strlen(word);
      if (s_.substr(pos_, n) == word) {
        pos_ += n;
        return value;
      }
    }
    error("expected True or False for 'fortran_order'" + found());
  }
  std::vector<std::size_t> tuple() {
    expect('(', "'(' to start the shape tuple");
    std::vector<std::size_t> dims;
    while (!peek(')')) {
      ws();
      const std::size_t start = pos_;
      std::uint64_t v = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        if (__builtin_mul_overflow(v, 10u, &v) ||
            __builtin_add_overflow(v, unsigned(s_[pos_] - '0'), &v)) {
          error("shape dimension too large");
        }
        ++pos_;
      }
      if (pos_ == start) error("expected a non-negative integer dimension in 'shape'" + found());
      if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;  // Python 2 longs
      dims.push_back(static_cast<std::size_t>(v));
      if (peek(',')) {
        ++pos_;
      } else if (!peek(')')) {
        error("expected ',' or ')' in 'shape'" + found());
      }
    }
    ++pos_;
    return dims;
  }
  bool at_end() {
    ws();
    return pos_ >= s_.size();
  }
  char next() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip() { ++pos_; }
  std::uint64_t offset() const { return base_ + pos_; }

 private:
  const ArrayFile::Impl& f_;
  std::string_view s_;
  std::uint64_t base_;
  std::size_t pos_ = 0;
};

StoredFormat parse_descr(const std::string& d, const HeaderParser& p) {
  const std::string expected =
      "unsupported dtype '" + d +
      "': expected a plain integer or float dtype such as '<f8', '<f4', '<i8', '<i4' or '|u1'";
  if (d.size() < 3) p.error(expected);
  const char order = d[0], kind = d[1];
  const std::string bytes = d.substr(2);
  if (order != '<' && order != '>' && order != '|' && order != '=') p.error(expected);
  StoredFormat f;
  f.big_endian = order == '>' || (order == '=' && std::endian::native == std::endian::big);
  static const std::pair<const char*, Stored> table[] = {
      {"i1", Stored::int8},   {"u1", Stored::uint8},  {"i2", Stored::int16},
      {"u2", Stored::uint16}, {"i4", Stored::int32},  {"u4", Stored::uint32},
      {"i8", Stored::int64},  {"u8", Stored::uint64}, {"f4", Stored::float32},
      {"f8", Stored::float64}};
  const std::string code = std::string(1, kind) + bytes;
  auto it = std::find_if(std::begin(table), std::end(table),
                         [&](const auto& e) { return code == e.first; });
  if (it == std::end(table)) p.error(expected);
  f.type = it->second;
  if (order == '|' && f.size() != 1) p.error(expected + " ('|' is for 1-byte types)");
  return f;
}

}  // namespace

void parse_npy(ArrayFile::Impl& f) {
  const std::string& path = f.path;
  if (f.file_size == 0)
    fail(path, "", "empty file: expected a .npy file (magic string \\x93NUMPY)");
  unsigned char pre[12] = {};
  const std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(f.file_size, 12));
  f.need(have);
  f.read(0, have, pre);
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  for (std::size_t i = 0; i < 6; ++i) {
    if (i >= have) fail(path, at_byte(i), "truncated header: expected the magic string \\x93NUMPY");
    if (pre[i] != magic[i]) {
      fail(path, at_byte(i), "expected the .npy magic string \\x93NUMPY: not a .npy file");
    }
  }
  if (have < 8)
    fail(path, at_byte(have), "truncated header: expected the format version (2 bytes)");
  const unsigned major = pre[6];
  if (major < 1 || major > 3) {
    fail(path, at_byte(6),
         "format version " + std::to_string(major) + "." + std::to_string(pre[7]) +
             ": expected version 1, 2 or 3");
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  if (have < 8 + len_bytes) {
    fail(path, at_byte(have),
         "truncated header: expected the " + std::to_string(len_bytes) + "-byte header length");
  }
  std::uint64_t hlen = 0;
  for (std::size_t i = 0; i < len_bytes; ++i) hlen |= std::uint64_t{pre[8 + i]} << (8 * i);
  const std::uint64_t start = 8 + len_bytes;
  if (hlen > f.file_size - start) {
    fail(path, at_byte(f.file_size),
         "truncated header: expected " + std::to_string(hlen) + " header bytes from " +
             at_byte(start) + ", the file has " + std::to_string(f.file_size - start));
  }
  if (hlen > (std::uint64_t{1} << 24)) {
    fail(path, at_byte(8), "header length " + std::to_string(hlen) + ": expected at most 16 MiB");
  }
  std::string text(static_cast<std::size_t>(hlen), '\0');
  f.need(start + hlen);
  f.read(start, text.size(), text.data());
  HeaderParser p(f, text, start);
  p.expect('{', "'{' to start the header dictionary");
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  while (!p.peek('}')) {
    const std::string key = p.string_literal("a dictionary key");
    p.expect(':', "':' after the key");
    if (key == "descr") {
      if (p.peek('[')) p.error("structured dtype: expected a plain integer or float dtype string");
      f.format = parse_descr(p.string_literal("the dtype string"), p);
      have_descr = true;
    } else if (key == "fortran_order") {
      fortran = p.boolean();
      have_order = true;
    } else if (key == "shape") {
      f.shape = p.tuple();
      have_shape = true;
    } else {
      p.error("unexpected key '" + key + "': expected 'descr', 'fortran_order' or 'shape'");
    }
    if (p.peek(',')) {
      p.skip();
    } else if (!p.peek('}')) {
      p.error("expected ',' or '}' in the header dictionary" + p.found());
    }
  }
  p.skip();
  if (!p.at_end()) p.error("expected only padding after the header dictionary" + p.found());
  if (!have_descr || !have_order || !have_shape) {
    p.error(std::string("missing key '") +
            (!have_descr   ? "descr"
             : !have_order ? "fortran_order"
                           : "shape") +
            "': expected 'descr', 'fortran_order' and 'shape'");
  }
  if (fortran && f.shape.size() > 1) {
    fail(path, f.at(start), "header: fortran_order is True: expected a C-order (row-major) array");
  }
  f.finish(start + hlen, "from the header");
}

// --- .npy header writing -----------------------------------------------------------------

namespace {

std::string header_text(StoredFormat f, const std::vector<std::size_t>& shape) {
  std::string dict = "{'descr': '" + f.descr() + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) dict += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  return dict;
}

}  // namespace

// The whole header: magic, version, length, dictionary padded with spaces and ended by a
// newline so that the data start at a multiple of 64 bytes, as NumPy writes it.
std::string npy_header(StoredFormat f, const std::vector<std::size_t>& shape) {
  const std::string dict = header_text(f, shape);
  for (unsigned major : {1u, 2u}) {
    const std::size_t pre = major == 1 ? 10 : 12;
    std::size_t total = pre + dict.size() + 1;
    total = (total + 63) / 64 * 64;
    const std::size_t hlen = total - pre;
    if (major == 1 && hlen > 0xffff) continue;
    std::string h("\x93NUMPY", 6);
    h += static_cast<char>(major);
    h += '\0';
    for (std::size_t i = 0; i < pre - 8; ++i) h += static_cast<char>((hlen >> (8 * i)) & 0xff);
    h += dict;
    h.append(total - h.size() - 1, ' ');
    h += '\n';
    return h;
  }
  return {};  // unreachable: version 2 holds 4 GiB headers
}

}  // namespace xgrad::data::detail
