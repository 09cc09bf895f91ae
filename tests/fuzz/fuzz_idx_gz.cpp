// libFuzzer target: IDX content behind a valid gzip stream. The input is the IDX file,
// compressed here (zlib, gzip framing) before it is read, so the fuzzer mutates the IDX
// structure while the reader goes through its in-memory (decompressed) path; broken gzip
// streams themselves are fuzz_idx's part.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <xgrad/data/array_file.hpp>

#include "fuzz_util.hpp"

namespace {

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    std::abort();
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(size)) + 32);
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = static_cast<uInt>(size);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> z = gzip(data, size);
  const std::string path = xgrad_fuzz::write_input(z.data(), z.size(), ".idx.gz");
  xgrad_fuzz::expect_only_xgrad_errors([&] {
    const auto f = xgrad::data::ArrayFile::open_idx(path);
    if (!xgrad_fuzz::read_all(f)) return;
  });
  return 0;
}
