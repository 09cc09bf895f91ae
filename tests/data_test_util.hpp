// Helpers shared by the data-file tests (test_data_csv.cpp, test_data_idx.cpp,
// test_data_npy.cpp, test_data_gzip.cpp): a scratch directory, byte-exact file reading and
// writing, gzip compression (and, through test_util.hpp, the substring test for error
// messages).
#pragma once

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "test_util.hpp"

namespace xgrad_test {

/// The bytes of a file, to compare what a writer produced.
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Replaces a file by these bytes, removing it first (rewriting a truncated file is slow on ext4).
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::remove(path.c_str());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

/// The python3 that has numpy: $XGRAD_PYTHON when set (the ctest entry sets it), else
/// python3 on PATH or /usr/bin/python3 (PATH may hold one without numpy); empty if none.
inline std::string python_with_numpy() {
  std::vector<std::string> candidates = {"python3", "/usr/bin/python3"};
  if (const char* p = std::getenv("XGRAD_PYTHON"); p && *p) candidates = {p};
  for (const std::string& py : candidates) {
    const std::string cmd = "'" + py + "' -c 'import numpy' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return "'" + py + "'";
  }
  return {};
}

/// bytes compressed as one gzip member (zlib; no gzip program needed), at the given level.
inline std::string gzip_bytes(const std::string& bytes, int level = Z_DEFAULT_COMPRESSION) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
  std::string out(deflateBound(&zs, static_cast<uLong>(bytes.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
  return out;
}

/// A fresh directory under $TMPDIR (else /tmp), removed with its content: no files left behind.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/xgrad_data_XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Writes the file `name` in this directory (see write_bytes); returns its path.
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = file(name);
    write_bytes(p, bytes);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace xgrad_test
