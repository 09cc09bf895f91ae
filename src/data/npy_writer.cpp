// NpyWriter: .npy files written to a temporary file, then renamed into place
// (atomic_file.hpp).
#include <unistd.h>

#include <string>
#include <vector>

#include "atomic_file.hpp"
#include "io.hpp"
#include "npy_format.hpp"
#include "xgrad/data/npy.hpp"

namespace xgrad::data {

using detail::fail;
using detail::write_all;

namespace {

constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

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
  fd_ = detail::create_temp(path_, tmp_);
  try {
    buffer_.reserve(kBufferBytes);
    const std::string h = detail::npy_header(f, shape);
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
  detail::commit_temp(fd_, tmp_, path_);
  committed_ = true;
}

}  // namespace xgrad::data
