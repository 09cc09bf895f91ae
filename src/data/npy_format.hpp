// Internal to src/data/: ArrayFile's state, shared by the .npy and IDX parsers
// (array_file.cpp, npy_format.cpp) and the .npz reader, and the .npy header code that
// the .npy and .npz writers and readers share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
#include <xtensor/xarray.hpp>

#include "io.hpp"
#include "xgrad/data/array_file.hpp"

namespace xgrad::data {

/// @cond INTERNAL
struct ArrayFile::Impl {
  std::string path;
  std::vector<std::size_t> shape;
  StoredFormat format;
  std::uint64_t offset = 0;
  std::size_t rows = 0, row_elements = 1, row_bytes = 0;
  detail::Fd fd;
  std::uint64_t file_size = 0;
  std::vector<std::byte> memory;  // decompressed content (gzip, or an .npz member)
  bool in_memory = false;
  std::string where_prefix;  // "" or "decompressed " for offsets in messages
  // Set while memory holds only the start of a streamed source (an .npz member whose
  // header is read at open): appends to memory until it holds bytes [0, end).
  std::function<void(std::vector<std::byte>&, std::uint64_t)> fill;

  // Makes sure bytes [0, end) can be read (a no-op unless the source is streamed).
  void need(std::uint64_t end) {
    if (fill && memory.size() < end) fill(memory, end);
  }

  std::string at(std::uint64_t off) const { return where_prefix + detail::at_byte(off); }
  void read(std::uint64_t off, std::size_t n, void* dst) const {
    if (in_memory) {
      std::memcpy(dst, memory.data() + off, n);
    } else {
      detail::pread_exact(fd.get(), path, off, n, dst);
    }
  }
  // Sets shape-derived sizes and checks that the data exactly fill the rest of the file.
  void finish(std::uint64_t data_offset, const std::string& what) {
    offset = data_offset;
    rows = shape.empty() ? 1 : shape[0];  // a 0-d array is one row of one element
    std::string dims = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
      dims += (i ? ", " : "") + std::to_string(shape[i]);
    }
    dims += shape.size() == 1 ? ",)" : ")";
    std::uint64_t elems = 1, rb = 0, total = 0;
    bool overflow = false;
    for (std::size_t i = 1; i < shape.size(); ++i) {
      overflow |= __builtin_mul_overflow(elems, std::uint64_t{shape[i]}, &elems);
    }
    overflow |= __builtin_mul_overflow(elems, std::uint64_t{format.size()}, &rb);
    overflow |= __builtin_mul_overflow(rb, std::uint64_t{rows}, &total);
    const std::uint64_t avail = file_size - data_offset;
    const std::string array = "shape " + dims + " of " + format.descr() + " (" + what + ")";
    if (overflow || total > avail) {
      detail::fail(path, at(file_size),
                   "truncated data: expected " +
                       (overflow ? std::string("more than 2^64") : std::to_string(total)) +
                       " data bytes for " + array + ", the file has " + std::to_string(avail));
    }
    if (total < avail) {
      detail::fail(path, at(data_offset + total),
                   "expected the end of the file after the " + std::to_string(total) +
                       " data bytes of " + array + ", the file has " +
                       std::to_string(avail - total) + " more bytes");
    }
    row_elements = static_cast<std::size_t>(elems);
    row_bytes = static_cast<std::size_t>(rb);
  }
};
/// @endcond

namespace detail {

/// Reads and checks the .npy header of f (magic, version, dictionary) and sets its shape,
/// format and data offset; DataError naming f.path and the byte offset otherwise.
void parse_npy(ArrayFile::Impl& f);
/// The complete .npy header (version 1.0, or 2.0 when needed) NumPy would write for an
/// array of this format and shape, padded so that the data start at a multiple of 64.
std::string npy_header(StoredFormat f, const std::vector<std::size_t>& shape);
/// The whole array of f converted to U (load_npy and NpzFile::read); refuses
/// floating-point data for integer U, naming `who`.
template <Element U>
xt::xarray<U> read_array(const ArrayFile& f, const std::string& who);

}  // namespace detail
}  // namespace xgrad::data
