// NpyWriter: .npy files written to a temporary file, then renamed into place; temporaries
// that killed saves of the same target left behind are removed by the next save.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io.hpp"
#include "xgrad/data/npy.hpp"

namespace xgrad::data {

using detail::errno_text;
using detail::fail;

namespace {

constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

std::string header_text(StoredFormat f, const std::vector<std::size_t>& shape) {
  std::string dict = "{'descr': '" + f.descr() + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) dict += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  return dict;
}

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

void write_all(int fd, const std::string& path, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(path, "", "write error: " + errno_text(errno));
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

// Removes the temporaries "<target>.tmp.<pid>.<n>" that a save of the same target left
// behind when its process was killed (a rename never happened): those of processes that no
// longer exist. Temporaries of live processes, this one included, may belong to a save
// still running and are kept. Best effort: errors leave the files alone.
void remove_stale_temporaries(const std::string& target) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path t(target);
  const fs::path dir = t.has_parent_path() ? t.parent_path() : fs::path(".");
  const std::string prefix = t.filename().string() + ".tmp.";
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());  // "<pid>.<n>"
    const std::size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos) continue;
    if (rest.find_first_not_of("0123456789.") != std::string::npos) continue;
    if (rest.find('.', dot + 1) != std::string::npos || dot + 1 == rest.size()) continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or unknown)
    std::error_code rm;
    fs::remove(it->path(), rm);
  }
}

}  // namespace

NpyWriter::NpyWriter(std::string path, Stored type, std::vector<std::size_t> shape)
    : path_(std::move(path)), type_(type) {
  const StoredFormat f{type, false};
  expected_ = f.size();
  for (std::size_t d : shape) {
    if (__builtin_mul_overflow(expected_, std::uint64_t{d}, &expected_)) {
      fail(path_, "", "shape too large: expected an array that fits in 2^64 bytes");
    }
  }
  remove_stale_temporaries(path_);
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; fd_ < 0; ++attempt) {
    tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100)) {
      fail(path_, "", "cannot create the temporary file " + tmp_ + ": " + errno_text(errno));
    }
  }
  try {
    buffer_.reserve(kBufferBytes);
    const std::string h = npy_header(f, shape);
    write_bytes_raw(h.data(), h.size());
  } catch (...) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    throw;
  }
}

NpyWriter::~NpyWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void NpyWriter::write_bytes_raw(const void* data, std::size_t bytes) {
  if (committed_) fail(path_, "", "write after commit(): expected no more data");
  const auto* p = static_cast<const std::byte*>(data);
  if (buffer_.size() + bytes > kBufferBytes) flush_buffer();
  if (bytes >= kBufferBytes) {
    write_all(fd_, tmp_, p, bytes);
  } else {
    buffer_.insert(buffer_.end(), p, p + bytes);
  }
}

void NpyWriter::write_bytes(const void* data, std::size_t bytes) {
  if (bytes > expected_ - written_) {
    fail(path_, "",
         "writing " + std::to_string(bytes) + " more bytes after " + std::to_string(written_) +
             ": expected " + std::to_string(expected_) + " data bytes in all (the shape's size)");
  }
  write_bytes_raw(data, bytes);
  written_ += bytes;
}

void NpyWriter::flush_buffer() {
  if (!buffer_.empty()) write_all(fd_, tmp_, buffer_.data(), buffer_.size());
  buffer_.clear();
}

void NpyWriter::throw_type_mismatch(StoredFormat got) const {
  fail(path_, "",
       "writing " + got.descr() + " elements: expected " + StoredFormat{type_, false}.descr() +
           " (the file's dtype)");
}

void NpyWriter::commit() {
  if (committed_) return;
  if (written_ != expected_) {
    fail(path_, "",
         "commit() after " + std::to_string(written_) + " data bytes: expected " +
             std::to_string(expected_) + " (the shape's size)");
  }
  flush_buffer();
  if (::fsync(fd_) != 0) fail(path_, "", "fsync of " + tmp_ + " failed: " + errno_text(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail(path_, "", "close of " + tmp_ + " failed: " + errno_text(errno));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    fail(path_, "", "cannot rename " + tmp_ + " into place: " + errno_text(errno));
  }
  committed_ = true;
}

}  // namespace xgrad::data
