// Internal to src/data/: files replaced atomically (the .npy and .npz writers). The data
// go to a temporary file beside the target, named target + ".tmp.<pid>.<n>"; committing
// fsyncs it once, renames it over the target and fsyncs the directory, so a reader (or a
// crash) sees the old file or the new one, never a mixture.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace xgrad::data::detail {

/// Creates a new temporary file for `target` (O_EXCL) and returns its descriptor; sets
/// tmp to its path. First removes the temporaries of `target` that processes no longer
/// running left behind (a killed save). DataError naming the target when the directory is
/// missing or not writable.
int create_temp(const std::string& target, std::string& tmp);
/// fsync of fd, close (fd becomes -1), rename of tmp over target, fsync of the directory.
/// DataError naming the target on any failure; the target is unchanged unless the
/// rename succeeded.
void commit_temp(int& fd, const std::string& tmp, const std::string& target);
/// Writes n bytes at the current position (retrying short writes); DataError naming path.
void write_all(int fd, const std::string& path, const void* data, std::size_t n);
/// Writes n bytes at offset (retrying short writes); DataError naming path.
void write_all_at(int fd, const std::string& path, std::uint64_t offset, const void* data,
                  std::size_t n);

}  // namespace xgrad::data::detail
