// libFuzzer target: the .npy reader (ArrayFile::open_npy, whole-array reads and load_npy)
// over arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <xgrad/data/array_file.hpp>
#include <xgrad/data/npy.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = xgrad_fuzz::write_input(data, size, ".npy");
  xgrad_fuzz::expect_only_xgrad_errors([&] {
    const auto f = xgrad::data::ArrayFile::open_npy(path);
    // load_npy too only where read_all found the array small enough to allocate.
    if (!xgrad_fuzz::read_all(f)) return;
    (void)xgrad::data::load_npy<double>(path);
  });
  return 0;
}
