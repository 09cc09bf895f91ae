// Shared by the libFuzzer targets: the readers take paths, so each input is written to a
// file of this process first; and the one rule every target checks, that an input either
// is accepted or raises an xgrad::Error.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <numeric>
#include <string>
#include <vector>
#include <xgrad/data/array_file.hpp>
#include <xgrad/error.hpp>

namespace xgrad_fuzz {

/// The files write_input made, removed when the process exits (libFuzzer ends a run of
/// -max_total_time or -runs with exit()), so that fuzzing leaves no file behind.
struct InputFiles {
  std::vector<std::string> paths;
  ~InputFiles() {
    for (const std::string& p : paths) std::remove(p.c_str());
  }
};

/// A file of this process (one per target and suffix), rewritten for each input.
inline std::string write_input(const std::uint8_t* data, std::size_t size, const char* suffix) {
  static InputFiles made;
  const char* dir = std::getenv("TMPDIR");
  const std::string path = std::string(dir && *dir ? dir : "/tmp") + "/xgrad-fuzz-" +
                           std::to_string(::getpid()) + suffix;
  if (std::find(made.paths.begin(), made.paths.end(), path) == made.paths.end()) {
    made.paths.push_back(path);
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::perror(path.c_str());
    std::abort();
  }
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

/// Runs fn; an xgrad::Error is an accepted answer, any other exception is a finding.
template <class Fn>
void expect_only_xgrad_errors(Fn&& fn) {
  try {
    fn();
  } catch (const xgrad::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception that is not an xgrad::Error: %s\n", e.what());
    std::abort();
  }
}

/// Reads every row of f as double, unless the header promises more than 2^20 elements (a
/// valid header may promise more than a test should allocate; the truncated files among
/// the bounded inputs still reach the reader's end-of-file checks). False when skipped.
inline bool read_all(const xgrad::data::ArrayFile& f) {
  constexpr std::size_t limit = std::size_t{1} << 20;
  if (f.rows() > limit || (f.rows() > 0 && f.row_elements() > limit / f.rows())) return false;
  std::vector<std::size_t> rows(f.rows());
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  std::vector<double> out(rows.size() * f.row_elements());
  f.gather<double>(rows, out.data());
  return true;
}

}  // namespace xgrad_fuzz
