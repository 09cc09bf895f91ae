// gzip-compressed IDX files, decompressed in-process by zlib: a valid stream reads exactly
// as the raw file (one member or several, across the reader's output blocks), no gzip
// program is needed, and corrupt, truncated or trailing data is a DataError naming the
// file, the byte and what was wrong.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>

#include "data_test_util.hpp"

namespace {

using xgrad::data::ArrayFile;
using xgrad::data::DataError;
using xgrad_test::contains;
using xgrad_test::gzip_bytes;
using xgrad_test::TempDir;

// An IDX file of n random 8-bit images of h x w pixels.
std::string images(std::size_t n, std::uint32_t h, std::uint32_t w, unsigned seed) {
  std::string b = {'\0', '\0', '\x08', '\x03'};
  for (std::uint32_t d : {static_cast<std::uint32_t>(n), h, w}) {
    for (int k = 3; k >= 0; --k) b += char((d >> (8 * k)) & 0xff);
  }
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < n * h * w; ++i) b += char(rng() % 7 == 0 ? rng() : i % 251);
  return b;
}

// Every element of the file, as read by gather.
std::vector<double> all_rows(const ArrayFile& f) {
  std::vector<std::size_t> rows(f.rows());
  std::iota(rows.begin(), rows.end(), std::size_t{0});
  std::vector<double> out(rows.size() * f.row_elements());
  f.gather<double>(rows, out.data());
  return out;
}

// The DataError message of opening path as IDX, or "no error".
std::string error_of(const std::string& path) {
  try {
    ArrayFile::open_idx(path);
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}

TEST(GzipIdx, ValidStreamsReadExactlyAsTheRawFile) {
  TempDir dir;
  // 1.2 MiB decompressed: several of the reader's output blocks (16 KiB to 1 MiB).
  for (std::size_t n : {std::size_t{3}, std::size_t{300}}) {
    const std::string raw = images(n, 64, 64, static_cast<unsigned>(n));
    const auto plain = dir.write("img.idx", raw);
    const ArrayFile p = ArrayFile::open_idx(plain);
    const std::vector<double> want = all_rows(p);
    for (int level : {1, 9}) {
      const auto gz = dir.write("img.idx.gz", gzip_bytes(raw, level));
      const ArrayFile z = ArrayFile::open_idx(gz);
      EXPECT_TRUE(z.in_memory());
      EXPECT_EQ(z.shape(), p.shape());
      EXPECT_EQ(all_rows(z), want) << n << " images, level " << level;
    }
    // Two members one after the other (as gzip -dc and cat a.gz b.gz make): one file.
    const std::size_t cut = raw.size() / 3;
    const auto two =
        dir.write("two.idx.gz", gzip_bytes(raw.substr(0, cut)) + gzip_bytes(raw.substr(cut)));
    EXPECT_EQ(all_rows(ArrayFile::open_idx(two)), want);
  }
}

TEST(GzipIdx, NeedsNoGzipProgram) {
  TempDir dir;
  const std::string raw = images(4, 5, 6, 1);
  const auto gz = dir.write("img.gz", gzip_bytes(raw));
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  ::setenv("PATH", dir.path().c_str(), 1);  // a directory without any program
  std::vector<double> got;
  std::string error;
  try {
    got = all_rows(ArrayFile::open_idx(gz));
  } catch (const DataError& e) {
    error = e.what();
  }
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(error, "");
  EXPECT_EQ(got, all_rows(ArrayFile::open_idx(dir.write("img.idx", raw))));
}

TEST(GzipIdx, TruncatedStreamsNameTheFileAndTheEnd) {
  TempDir dir;
  const std::string z = gzip_bytes(images(20, 8, 8, 2));
  // Cut in the header, in the deflate data, in the CRC and in the length trailer.
  for (std::size_t len : {std::size_t{2}, std::size_t{9}, std::size_t{40}, z.size() / 2,
                          z.size() - 8, z.size() - 5, z.size() - 1}) {
    const auto p = dir.write("cut.gz", z.substr(0, len));
    const std::string m = error_of(p);
    EXPECT_TRUE(contains(m, p + ": byte " + std::to_string(len) +
                                ": truncated gzip stream: expected more compressed data"))
        << "cut to " << len << ": " << m;
  }
}

TEST(GzipIdx, CorruptStreamsNameTheFileAndWhatZlibFound) {
  TempDir dir;
  const std::string raw = images(20, 8, 8, 3);
  const std::string z = gzip_bytes(raw, 9);
  // A changed deflate byte: a bad code, or data that fails the CRC-32 check.
  std::size_t accepted = 0;
  for (std::size_t i = 10; i < z.size(); ++i) {
    std::string bad = z;
    bad[i] = char(bad[i] ^ 0x5a);
    const auto p = dir.write("bad.gz", bad);
    try {
      const ArrayFile f = ArrayFile::open_idx(p);
      // Only the padding bits of the last deflate byte may change unnoticed.
      EXPECT_EQ(f.shape(), (std::vector<std::size_t>{20, 8, 8})) << "byte " << i;
      ++accepted;
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), p + ": ")) << e.what();
      EXPECT_TRUE(contains(e.what(), "gzip")) << "byte " << i << ": " << e.what();
    }
  }
  EXPECT_LE(accepted, 1u);
  std::string crc = z;
  crc[z.size() - 6] = char(crc[z.size() - 6] ^ 1);  // the stored CRC-32
  const std::string m = error_of(dir.write("crc.gz", crc));
  EXPECT_TRUE(contains(m, "corrupt gzip data (incorrect data check)")) << m;
  std::string method = z;
  method[2] = 7;  // compression method other than deflate
  EXPECT_TRUE(contains(error_of(dir.write("method.gz", method)), "corrupt gzip data"));
}

TEST(GzipIdx, TrailingBytesAfterTheStreamAreRefused) {
  TempDir dir;
  const std::string z = gzip_bytes(images(2, 3, 3, 4));
  const auto p = dir.write("trail.gz", z + "junk");
  EXPECT_TRUE(contains(error_of(p), p + ": byte " + std::to_string(z.size()) +
                                        ": trailing bytes after the gzip stream"))
      << error_of(p);
  // A second member cut short is a truncated stream, not trailing bytes.
  const auto q = dir.write("half.gz", z + z.substr(0, 12));
  EXPECT_TRUE(contains(error_of(q), "truncated gzip stream")) << error_of(q);
}

}  // namespace
