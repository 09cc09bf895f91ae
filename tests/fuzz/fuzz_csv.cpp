// libFuzzer target: read_csv and CsvDataset over arbitrary bytes. The first byte picks
// the options (delimiter, header mode, skipped lines, target column), the rest is the file.
#include <cstddef>
#include <cstdint>
#include <xgrad/data/csv.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t o = data[0];
  static const char delimiters[] = {',', ';', '\t', '|'};
  using xgrad::data::CsvHeader;
  static const CsvHeader headers[] = {CsvHeader::automatic, CsvHeader::present, CsvHeader::absent,
                                      CsvHeader::automatic};
  xgrad::data::CsvOptions opts;
  opts.delimiter(delimiters[o & 3]).header(headers[(o >> 2) & 3]).skip_rows((o >> 4) & 3);
  if (o & 0x40) opts.targets({0});
  const std::string path = xgrad_fuzz::write_input(data + 1, size - 1, ".csv");
  xgrad_fuzz::expect_only_xgrad_errors([&] {
    if (o & 0x80) {
      xgrad::data::CsvDataset<float, std::int64_t> d(path, opts);
      (void)d.size();
    } else {
      (void)xgrad::data::read_csv(path, opts);
    }
  });
  return 0;
}
