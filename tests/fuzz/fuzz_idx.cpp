// libFuzzer target: the IDX reader (ArrayFile::open_idx and whole-array reads) over
// arbitrary bytes, plain or gzip-compressed: the seed corpus holds both, so corrupt,
// truncated and multi-member gzip streams are fuzzed here as well.
#include <cstddef>
#include <cstdint>
#include <xgrad/data/array_file.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = xgrad_fuzz::write_input(data, size, ".idx");
  xgrad_fuzz::expect_only_xgrad_errors([&] {
    const auto f = xgrad::data::ArrayFile::open_idx(path);
    if (!xgrad_fuzz::read_all(f)) return;
  });
  return 0;
}
