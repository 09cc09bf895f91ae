/// @file array_file.hpp
/// @brief ArrayFile: a dense array stored in a file (.npy or IDX) as fixed-size rows,
/// read row by row with positioned reads, so memory is bounded by what is requested.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "xgrad/data/dataset.hpp"

namespace xgrad::data {

/// Element types an array file may store.
enum class Stored : std::uint8_t {
  int8,
  uint8,
  int16,
  uint16,
  int32,
  uint32,
  int64,
  uint64,
  float32,
  float64
};

/// How elements are laid out in a file: the type and the byte order.
struct StoredFormat {
  Stored type = Stored::float64;  ///< Element type.
  bool big_endian = false;        ///< Byte order (IDX files are big-endian).

  /// Bytes per element.
  std::size_t size() const;
  /// True for float32 and float64.
  bool is_float() const { return type == Stored::float32 || type == Stored::float64; }
  /// NumPy's descr string: "<f8", ">i4", "|u1"...
  std::string descr() const;
  /// Same type and byte order.
  bool operator==(const StoredFormat&) const = default;
};

/// The Stored tag of a C++ arithmetic type (int8_t ... double).
template <class U>
constexpr Stored stored_of() {
  if constexpr (std::is_same_v<U, std::int8_t>)
    return Stored::int8;
  else if constexpr (std::is_same_v<U, std::uint8_t>)
    return Stored::uint8;
  else if constexpr (std::is_same_v<U, std::int16_t>)
    return Stored::int16;
  else if constexpr (std::is_same_v<U, std::uint16_t>)
    return Stored::uint16;
  else if constexpr (std::is_same_v<U, std::int32_t>)
    return Stored::int32;
  else if constexpr (std::is_same_v<U, std::uint32_t>)
    return Stored::uint32;
  else if constexpr (std::is_same_v<U, std::int64_t>)
    return Stored::int64;
  else if constexpr (std::is_same_v<U, std::uint64_t>)
    return Stored::uint64;
  else if constexpr (std::is_same_v<U, float>)
    return Stored::float32;
  else {
    static_assert(std::is_same_v<U, double>, "stored_of: unsupported element type");
    return Stored::float64;
  }
}

/// A dense array in a file, seen as rows: the first dimension indexes rows and the rest
/// is the shape of one row. Opening reads and checks the header and the file size only;
/// rows are read on demand with pread(), so reading a batch touches that batch's bytes.
/// A gzip-compressed file is decompressed into memory when opened (IDX only), in-process
/// by zlib (no gzip program is run). Copies
/// share the open file; reading is thread-safe.
class ArrayFile {
 public:
  /// Opens a NumPy .npy file (format versions 1, 2 and 3; C order; integer or floating
  /// dtypes of either byte order; any rank, 0-d included). Throws DataError naming the file, the
  /// byte offset and what was expected for a missing, empty, truncated or malformed file.
  static ArrayFile open_npy(const std::string& path);
  /// Opens an IDX file (the MNIST format), plain or gzip-compressed (detected from the
  /// content; several concatenated gzip members read as one file). Throws DataError like
  /// open_npy, and for a corrupt or truncated gzip stream or bytes after it, naming the
  /// file and the compressed byte offset.
  static ArrayFile open_idx(const std::string& path);

  /// The file's path.
  const std::string& path() const;
  /// The array's shape (empty for a 0-d array).
  const std::vector<std::size_t>& shape() const;
  /// How elements are stored.
  StoredFormat format() const;
  /// Number of rows (shape()[0]; 1 for a 0-d array, read as one row of one element).
  std::size_t rows() const;
  /// Elements per row (product of shape()[1:]).
  std::size_t row_elements() const;
  /// Bytes per row.
  std::size_t row_bytes() const;
  /// Offset of the first data byte in the (decompressed) file.
  std::uint64_t data_offset() const;
  /// True when the data were decompressed into memory.
  bool in_memory() const;

  /// Copies rows [first, first + count) as stored (raw bytes) into out.
  void read_rows(std::size_t first, std::size_t count, std::byte* out) const;
  /// Calls visit(k, row bytes) for each k with the stored bytes of row rows[k]. Reads
  /// adjacent requested rows with one read (in file order) through a buffer of at most
  /// max(4 MiB, one row), so memory stays bounded by the request.
  template <class F>
  void visit_rows(std::span<const std::size_t> rows, F&& visit) const {
    const std::size_t rb = row_bytes();
    visit_row_runs(rows, [&](std::size_t k, std::size_t count, const std::byte* bytes) {
      for (std::size_t t = 0; t < count; ++t) visit(k + t, bytes + t * rb);
    });
  }
  /// visit_rows by runs: calls visit(k, count, bytes) for requested rows k .. k + count - 1
  /// that follow each other in the file (rows[k + t] == rows[k] + t), their stored bytes
  /// one row after another, so that a caller's per-row work runs in a loop of its own
  /// rather than behind a call per row (a streamed epoch of short rows).
  template <class F>
  void visit_row_runs(std::span<const std::size_t> rows, F&& visit) const {
    using Fn = std::remove_reference_t<F>;
    visit_rows_impl(
        rows,
        [](void* ctx, std::size_t k, std::size_t count, const std::byte* bytes) {
          (*static_cast<Fn*>(ctx))(k, count, bytes);
        },
        const_cast<void*>(static_cast<const void*>(std::addressof(visit))));
  }
  /// Converts count elements of a row (stored bytes, from element first) to U. Throws
  /// DataError naming the file and byte offset for an integer that does not fit in U.
  template <Element U>
  void convert(const std::byte* row, std::size_t row_index, std::size_t first, std::size_t count,
               U* out) const;
  /// True when the elements are stored as U in this machine's byte order: converting them
  /// to U is a plain copy.
  template <Element U>
  bool stores_as() const {
    const StoredFormat f = format();
    return f.type == stored_of<U>() &&
           (f.size() == 1 || f.big_endian == (std::endian::native == std::endian::big));
  }
  /// Throws DataError when the stored elements cannot be converted to U without losing
  /// their meaning (floating-point data to integer U); `role` says what U is for.
  template <Element U>
  void require_convertible(const std::string& role) const;
  /// The requested rows converted to U, row after row, into out (rows.size() *
  /// row_elements() elements). Throws DataError for a row out of range.
  template <Element U>
  void gather(std::span<const std::size_t> rows, U* out) const;

  /// @cond INTERNAL
  struct Impl;
  static ArrayFile from_impl(std::shared_ptr<const Impl> impl);  // src/data/ only
                                                                 /// @endcond

 private:
  explicit ArrayFile(std::shared_ptr<const Impl> impl);
  using Visitor = void (*)(void*, std::size_t, std::size_t, const std::byte*);
  void visit_rows_impl(std::span<const std::size_t> rows, Visitor f, void* ctx) const;
  std::shared_ptr<const Impl> impl_;
};

/// @cond INTERNAL
extern template void ArrayFile::convert<float>(const std::byte*, std::size_t, std::size_t,
                                               std::size_t, float*) const;
extern template void ArrayFile::convert<double>(const std::byte*, std::size_t, std::size_t,
                                                std::size_t, double*) const;
extern template void ArrayFile::convert<std::int32_t>(const std::byte*, std::size_t, std::size_t,
                                                      std::size_t, std::int32_t*) const;
extern template void ArrayFile::convert<std::int64_t>(const std::byte*, std::size_t, std::size_t,
                                                      std::size_t, std::int64_t*) const;
extern template void ArrayFile::require_convertible<float>(const std::string&) const;
extern template void ArrayFile::require_convertible<double>(const std::string&) const;
extern template void ArrayFile::require_convertible<std::int32_t>(const std::string&) const;
extern template void ArrayFile::require_convertible<std::int64_t>(const std::string&) const;
extern template void ArrayFile::gather<float>(std::span<const std::size_t>, float*) const;
extern template void ArrayFile::gather<double>(std::span<const std::size_t>, double*) const;
extern template void ArrayFile::gather<std::int32_t>(std::span<const std::size_t>,
                                                     std::int32_t*) const;
extern template void ArrayFile::gather<std::int64_t>(std::span<const std::size_t>,
                                                     std::int64_t*) const;
/// @endcond

}  // namespace xgrad::data
