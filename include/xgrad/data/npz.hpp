/// @file npz.hpp
/// @brief NumPy .npz archives: NpzWriter (named arrays and text entries, written
/// atomically) and NpzFile (list, read and convert entries). Model files and checkpoints
/// are built on these two classes; docs/design.md ("Model files") describes the layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/data/array_file.hpp"
#include "xgrad/data/dataset.hpp"

namespace xgrad::data {

/// How NpzWriter stores its members.
struct NpzOptions {
  /// Deflate every member (numpy.savez_compressed); stored, as numpy.savez, by default.
  bool compress = false;
  /// zlib level 1 (fastest) to 9 (smallest) when compressing; 0 is zlib's default (6).
  int level = 0;
};

/// Writes a .npz archive that numpy.load reads: each array is a member "<name>.npy" (a
/// .npy file, so any Stored type and any rank, 0-d included), each text entry a member of
/// its own name, which numpy.load returns as bytes. Nothing reaches the target before
/// commit(): the archive is written to a temporary file beside it, fsynced once, renamed
/// over the target and the directory fsynced, so the previous file survives any failure.
/// A writer destroyed before commit() removes its temporary file; temporaries that a
/// killed process left beside the same target are removed when the next writer starts.
/// Members are copied when added and written by commit(), so memory holds one copy of
/// the archive's data. Member times are fixed (1980-01-01), so equal contents give equal
/// files.
class NpzWriter {
 public:
  /// Starts an archive for `path`. Throws DataError naming the path when its directory is
  /// missing or not writable.
  explicit NpzWriter(std::string path, NpzOptions options = {});
  /// Removes the temporary file unless committed.
  ~NpzWriter();
  NpzWriter(const NpzWriter&) = delete;
  NpzWriter& operator=(const NpzWriter&) = delete;

  /// Adds the array `name` (member name + ".npy") of this element type and shape from
  /// raw little-endian C-order element bytes. Throws DataError for an empty name, a name
  /// with a NUL byte, leading '/' or a ".." component, a name added before, or a byte
  /// count that does not match the shape.
  void add_bytes(const std::string& name, Stored type, const std::vector<std::size_t>& shape,
                 const void* data, std::size_t bytes);
  /// Adds an array of any element type stored_of() knows (row-major, any rank).
  template <class U>
  void add(const std::string& name, const xt::xarray<U>& a) {
    add_bytes(name, stored_of<U>(), std::vector<std::size_t>(a.shape().begin(), a.shape().end()),
              a.data(), a.size() * sizeof(U));
  }
  /// Adds a text entry (a JSON document, say) as the member `name`, which must not end in
  /// ".npy" (NumPy would take it for an array); names are checked as for add_bytes.
  void add_text(const std::string& name, std::string_view text);
  /// Writes the archive and replaces the target atomically (see the class). Throws
  /// DataError naming the target on any failure, leaving the previous file in place; a
  /// second commit() is a no-op, adding after commit() throws.
  void commit();

  /// The target path.
  const std::string& path() const;
  /// Entry names in the order added (arrays without ".npy").
  std::vector<std::string> names() const;

  /// @cond INTERNAL
  struct Impl;
  /// @endcond

 private:
  std::unique_ptr<Impl> impl_;
};

/// One member of an .npz archive, as NpzFile::open lists it.
struct NpzEntry {
  std::string name;       ///< Array name (member without ".npy") or the text member's name.
  std::string member;     ///< The zip member's name.
  bool is_array = false;  ///< A ".npy" member.
  StoredFormat format;    ///< Element type and byte order (arrays).
  std::vector<std::size_t> shape;  ///< Shape (arrays; empty for 0-d).
  std::uint64_t bytes = 0;         ///< Uncompressed size of the member.
  bool compressed = false;         ///< Deflated rather than stored.
  /// Why the array cannot be read (an unsupported dtype such as '|b1' or '<c8', a
  /// malformed header), or empty; reading the entry throws a DataError with this text.
  std::string error;
};

/// A .npz archive opened for reading: numpy.savez and numpy.savez_compressed files
/// (stored or deflated members, zip64 included) and NpzWriter's. Opening reads the zip
/// directory and each array's .npy header, so entries() gives every name, dtype and
/// shape; read() decompresses one member and converts it. Copies share the open archive;
/// reading is thread-safe (serialised).
class NpzFile {
 public:
  /// Opens the archive. Throws DataError naming the file for a missing, empty,
  /// truncated or corrupt archive (not a zip file, inconsistent directory).
  static NpzFile open(const std::string& path);

  /// The archive's path.
  const std::string& path() const;
  /// Every member, in archive order.
  const std::vector<NpzEntry>& entries() const;
  /// The entry named `name` (an array name or a text member), or nullptr.
  const NpzEntry* find(const std::string& name) const;
  /// The array `name` converted to U (floating-point data are refused for integer U).
  /// Throws DataError naming the file and the entry for a missing entry (listing those
  /// present), a text entry, an unreadable header, corrupt data (CRC) or a value that does
  /// not fit in U.
  template <Element U>
  xt::xarray<U> read(const std::string& name) const;
  /// The array `name` as an ArrayFile over its decompressed bytes (in memory), for row
  /// reads or conversions of part of it; errors as read().
  ArrayFile array(const std::string& name) const;
  /// The content of the text entry (or any member) `name` as bytes. Throws DataError
  /// naming the file and the entry when it is absent or corrupt.
  std::string read_text(const std::string& name) const;

  /// @cond INTERNAL
  struct Impl;
  /// @endcond

 private:
  explicit NpzFile(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

/// @cond INTERNAL
extern template xt::xarray<float> NpzFile::read<float>(const std::string&) const;
extern template xt::xarray<double> NpzFile::read<double>(const std::string&) const;
extern template xt::xarray<std::int32_t> NpzFile::read<std::int32_t>(const std::string&) const;
extern template xt::xarray<std::int64_t> NpzFile::read<std::int64_t>(const std::string&) const;
/// @endcond

}  // namespace xgrad::data
