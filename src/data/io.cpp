#include "io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "xgrad/data/dataset.hpp"

namespace xgrad::data::detail {

void fail(const std::string& path, const std::string& where, const std::string& what) {
  throw DataError(path + ": " + (where.empty() ? "" : where + ": ") + what);
}

std::string message_of(const std::exception& e) {
  const auto* x = dynamic_cast<const Error*>(&e);
  return x ? x->message() : e.what();
}

std::string at_byte(std::uint64_t offset) { return "byte " + std::to_string(offset); }

std::string errno_text(int e) { return std::strerror(e); }

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Fd open_read(const std::string& path, std::uint64_t& size) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) fail(path, "", "cannot open for reading: " + errno_text(errno));
  Fd f(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(path, "", "cannot stat: " + errno_text(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "", "is a directory: expected a file");
  size = static_cast<std::uint64_t>(st.st_size);
  return f;
}

void pread_exact(int fd, const std::string& path, std::uint64_t offset, std::size_t n, void* dst) {
  auto* p = static_cast<char*>(dst);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(path, at_byte(offset + done), "read error: " + errno_text(errno));
    }
    if (r == 0) {
      fail(path, at_byte(offset + done),
           "unexpected end of file: expected " + std::to_string(n - done) +
               " more bytes (the file shrank after it was opened)");
    }
    done += static_cast<std::size_t>(r);
  }
}

bool pread_cached(int fd, std::uint64_t offset, std::size_t n, void* dst) {
#ifdef RWF_NOWAIT
  // Off for good once the kernel or file system refuses the flag.
  static std::atomic<bool> supported{true};
  if (!supported.load(std::memory_order_relaxed)) return false;
  iovec v{dst, n};
  const ssize_t r = ::preadv2(fd, &v, 1, static_cast<off_t>(offset), RWF_NOWAIT);
  if (r < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
    supported.store(false, std::memory_order_relaxed);
  }
  return r >= 0 && static_cast<std::size_t>(r) == n;
#else
  (void)fd, (void)offset, (void)n, (void)dst;
  return false;
#endif
}

void will_need(int fd, std::uint64_t offset, std::size_t n) {
  (void)::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(n), POSIX_FADV_WILLNEED);
}

bool is_gzip(const std::byte* head, std::size_t n) {
  return n >= 2 && head[0] == std::byte{0x1f} && head[1] == std::byte{0x8b};
}

std::vector<std::byte> gunzip(const std::string& path) {
  std::uint64_t size = 0;
  Fd fd = open_read(path, size);
  std::vector<unsigned char> in(std::min<std::uint64_t>(size, 1u << 20));
  std::vector<std::byte> out;
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) fail(path, "", "zlib initialisation failed");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};
  // Output grows by chunks of about 4x the compressed size, 16 KiB to 1 MiB: small files
  // cost no megabyte each, large ones few calls.
  const std::size_t chunk = static_cast<std::size_t>(
      std::clamp<std::uint64_t>(4 * std::min<std::uint64_t>(size, 1u << 20), 1u << 14, 1u << 20));
  std::uint64_t pos = 0;  // compressed bytes consumed from the file so far
  bool stream_end = false;
  while (true) {
    if (zs.avail_in == 0) {
      if (pos == size) break;
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), size - pos));
      pread_exact(fd.get(), path, pos, n, in.data());
      pos += n;
      zs.next_in = in.data();
      zs.avail_in = static_cast<uInt>(n);
    }
    if (stream_end) {
      // Another gzip member may follow (as gzip -dc accepts); anything else is garbage.
      const std::uint64_t at = pos - zs.avail_in;
      if (zs.next_in[0] != 0x1f) {
        fail(path, at_byte(at), "trailing bytes after the gzip stream: expected end of file");
      }
      inflateReset(&zs);
      stream_end = false;
    }
    const std::size_t old = out.size();
    out.resize(old + chunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + old);
    zs.avail_out = static_cast<uInt>(chunk);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(old + (chunk - zs.avail_out));
    if (rc == Z_STREAM_END) {
      stream_end = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      fail(path, at_byte(pos - zs.avail_in),
           std::string("corrupt gzip data (") + (zs.msg ? zs.msg : "zlib error") +
               "): expected a valid deflate stream");
    }
  }
  if (!stream_end) {
    fail(path, at_byte(size), "truncated gzip stream: expected more compressed data");
  }
  return out;
}

}  // namespace xgrad::data::detail
