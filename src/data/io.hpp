// Internal helpers of the data module: errors that name the file and position, element
// type names, an owning file descriptor, exact positioned reads, and gzip decompression.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "xgrad/data/dataset.hpp"
#include "xgrad/graph.hpp"

namespace xgrad::data::detail {

/// Throws DataError "path: where: what" (where may be empty).
[[noreturn]] void fail(const std::string& path, const std::string& where, const std::string& what);
/// e.what() without the "xgrad: " every Error starts with, to put into another message.
std::string message_of(const std::exception& e);
/// "byte N" for messages.
std::string at_byte(std::uint64_t offset);
/// strerror for errno value e.
std::string errno_text(int e);
/// Name of an element type of a batch ("float64", "int64"...), for messages.
template <Element U>
const char* element_name() {
  return dtype_name(dtype_of<U>());
}

/// An owning, read-only file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

/// Opens path for reading (DataError naming the path and the reason on failure); also
/// returns its size. Directories are refused.
Fd open_read(const std::string& path, std::uint64_t& size);
/// Reads exactly n bytes at offset (retrying short reads); DataError naming the byte
/// offset when the file ends early or the read fails.
void pread_exact(int fd, const std::string& path, std::uint64_t offset, std::size_t n, void* dst);
/// Reads exactly n bytes at offset if they are all in the page cache, without waiting for
/// the disk (preadv2 with RWF_NOWAIT); false when some are not, the kernel cannot tell,
/// or the read fails (pread_exact then reads them and reports errors).
bool pread_cached(int fd, std::uint64_t offset, std::size_t n, void* dst);
/// Asks the kernel to start reading bytes [offset, offset + n) into the page cache in the
/// background (posix_fadvise WILLNEED), so that many reads can be in flight at once.
void will_need(int fd, std::uint64_t offset, std::size_t n);
/// True when the first bytes are the gzip magic number 1f 8b.
bool is_gzip(const std::byte* head, std::size_t n);
/// The whole decompressed content of a gzip file (one or more members), inflated in-process
/// by zlib. DataError naming the file and byte for corrupt, truncated or trailing data.
std::vector<std::byte> gunzip(const std::string& path);

}  // namespace xgrad::data::detail
