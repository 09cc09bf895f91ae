// .npy files: the library's writer and reader round-trip every supported dtype, files
// written by NumPy read back equal (when python3 has numpy), NpyDataset reads only the
// rows asked for, and every malformed, truncated or random input gives a DataError that
// names the file and the byte offset.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/xgrad.hpp>

#include "data_test_util.hpp"

namespace {

namespace fs = std::filesystem;
using xgrad::data::ArrayFile;
using xgrad::data::DataError;
using xgrad::data::NpyDataset;
using xgrad::data::NpyWriter;
using xgrad::data::Stored;

using xgrad_test::contains;
using xgrad_test::python_with_numpy;
using xgrad_test::read_bytes;
using xgrad_test::TempDir;
using xgrad_test::write_bytes;

// A .npy file with this header dictionary (padded as NumPy pads it) and raw data.
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t pre = major == 1 ? 10 : 12;
  std::size_t total = (pre + dict.size() + 1 + 63) / 64 * 64;
  const std::size_t hlen = total - pre;
  std::string h("\x93NUMPY", 6);
  h += char(major);
  h += '\0';
  for (std::size_t i = 0; i < pre - 8; ++i) h += char((hlen >> (8 * i)) & 0xff);
  h += dict;
  h.append(total - h.size() - 1, ' ');
  h += '\n';
  return h + data;
}

template <class U>
std::string raw(const std::vector<U>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(U));
}

// Opening (and reading every row of) a file either works or throws DataError naming it.
void expect_clean_outcome(const std::string& path) {
  try {
    const ArrayFile f = ArrayFile::open_npy(path);
    std::vector<std::size_t> rows(f.rows());
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
    std::vector<double> out(rows.size() * f.row_elements());
    f.gather<double>(rows, out.data());
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
  }
}

template <class U>
void round_trip(const TempDir& dir, std::vector<std::size_t> shape) {
  std::mt19937_64 rng(shape.size() * 31 + sizeof(U));
  auto a = xt::xarray<U>::from_shape(shape);
  for (auto& v : a) v = static_cast<U>(std::int64_t(rng() % 2001) - 1000) / U(4);
  const std::string p = dir.file("rt.npy");
  xgrad::data::save_npy(p, a);
  const auto b = xgrad::data::load_npy<U>(p);
  ASSERT_EQ(b.shape(), a.shape());
  if (a.size() > 0) {
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(U)));
  }
  // Converted on reading to double, too.
  const auto d = xgrad::data::load_npy<double>(p);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(d.data()[i], double(a.data()[i]));
}

TEST(NpyRoundTrip, EveryDtypeAndShape) {
  TempDir dir;
  const std::vector<std::vector<std::size_t>> shapes = {{1},    {7},    {4, 3}, {3, 2, 2},
                                                        {1, 1}, {0, 3}, {5, 0}};
  for (const auto& s : shapes) {
    round_trip<float>(dir, s);
    round_trip<double>(dir, s);
    round_trip<std::int32_t>(dir, s);
    round_trip<std::int64_t>(dir, s);
  }
  // Smaller stored types are read and widened.
  xt::xarray<std::uint8_t> u8 = {{0, 255}, {7, 128}};
  xgrad::data::save_npy(dir.file("u8.npy"), u8);
  EXPECT_EQ(xgrad::data::load_npy<std::int32_t>(dir.file("u8.npy")),
            (xt::xarray<std::int32_t>{{0, 255}, {7, 128}}));
  // Bytes to floating point take a vectorised path: rows longer than a vector, every
  // value, signed and unsigned.
  xt::xarray<std::uint8_t> u8_long = xt::xarray<std::uint8_t>::from_shape({3, 97});
  xt::xarray<std::int8_t> i8_long = xt::xarray<std::int8_t>::from_shape({3, 97});
  for (std::size_t k = 0; k < u8_long.size(); ++k) {
    u8_long.data()[k] = static_cast<std::uint8_t>(k * 7 + 3);
    i8_long.data()[k] = static_cast<std::int8_t>(static_cast<int>(k * 11 % 256) - 128);
  }
  xgrad::data::save_npy(dir.file("u8_long.npy"), u8_long);
  xgrad::data::save_npy(dir.file("i8_long.npy"), i8_long);
  const auto u8f = xgrad::data::load_npy<float>(dir.file("u8_long.npy"));
  const auto i8d = xgrad::data::load_npy<double>(dir.file("i8_long.npy"));
  ASSERT_EQ(u8f.size(), u8_long.size());
  ASSERT_EQ(i8d.size(), i8_long.size());
  for (std::size_t k = 0; k < u8_long.size(); ++k) {
    EXPECT_EQ(u8f.data()[k], static_cast<float>(u8_long.data()[k])) << k;
    EXPECT_EQ(i8d.data()[k], static_cast<double>(i8_long.data()[k])) << k;
  }
  xt::xarray<std::int16_t> i16 = {-300, 300};
  xgrad::data::save_npy(dir.file("i16.npy"), i16);
  EXPECT_EQ(xgrad::data::load_npy<float>(dir.file("i16.npy")), (xt::xarray<float>{-300, 300}));
}

// A 0-d array (shape ()) round-trips: save_npy writes it, load_npy reads it back as
// shape (), and the datasets, which need rows, refuse it by name.
TEST(NpyRoundTrip, ZeroDimensionalArrays) {
  TempDir dir;
  const std::string p = dir.file("scalar.npy");
  xgrad::data::save_npy(p, xt::xarray<double>(2.5));
  EXPECT_TRUE(contains(read_bytes(p), "'shape': (), }"));
  const auto back = xgrad::data::load_npy<double>(p);
  EXPECT_EQ(back.dimension(), 0u);
  EXPECT_EQ(back(), 2.5);
  const ArrayFile f = ArrayFile::open_npy(p);
  EXPECT_TRUE(f.shape().empty());
  EXPECT_EQ(f.rows(), 1u);
  EXPECT_EQ(f.row_elements(), 1u);
  xgrad::data::save_npy(dir.file("i.npy"), xt::xarray<std::int64_t>(-7));
  EXPECT_EQ(xgrad::data::load_npy<float>(dir.file("i.npy"))(), -7.0f);
  xgrad::data::save_npy(dir.file("rows.npy"), xt::xarray<double>{1, 2});
  for (auto [features, targets] :
       {std::pair{p, dir.file("rows.npy")}, std::pair{dir.file("rows.npy"), p}}) {
    try {
      NpyDataset<double> ds(features, targets);
      FAIL() << "0-d dataset file accepted";
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), p + ": 0-d array: expected at least 1 dimension")) << e.what();
    }
  }
}

TEST(NpyRoundTrip, HeaderIsWhatNumPyWrites) {
  TempDir dir;
  xgrad::data::save_npy(dir.file("a.npy"), xt::xarray<double>::from_shape({4, 3}));
  const std::string b = read_bytes(dir.file("a.npy"));
  ASSERT_EQ(b.size(), 128u + 96);
  EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_EQ(std::size_t(std::uint8_t(b[8])) | (std::size_t(std::uint8_t(b[9])) << 8), 118u);
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }";
  EXPECT_EQ(b.substr(10, dict.size()), dict);
  EXPECT_EQ(b.find_first_not_of(' ', 10 + dict.size()), 127u);  // space padding
  EXPECT_EQ(b[127], '\n');
  xgrad::data::save_npy(dir.file("b.npy"), xt::xarray<std::int32_t>{1, 2, 3});
  EXPECT_TRUE(contains(read_bytes(dir.file("b.npy")),
                       "'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"));
}

TEST(NpyRoundTrip, Versions2And3BigEndianAndKeyOrder) {
  TempDir dir;
  const std::vector<double> v = {1.5, -2, 3};
  write_bytes(dir.file("v2.npy"),
              npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", raw(v), 2));
  EXPECT_EQ(xgrad::data::load_npy<double>(dir.file("v2.npy")), (xt::xarray<double>{1.5, -2, 3}));
  write_bytes(
      dir.file("v3.npy"),
      npy_bytes("{\"shape\": (1, 3), \"descr\": \"<f8\", \"fortran_order\": False}", raw(v), 3));
  EXPECT_EQ(xgrad::data::load_npy<double>(dir.file("v3.npy")), (xt::xarray<double>{{1.5, -2, 3}}));
  // Big-endian data are swapped.
  std::string be;
  for (std::int32_t x : {1, -2, 70000}) {
    for (int k = 3; k >= 0; --k) be += char((std::uint32_t(x) >> (8 * k)) & 0xff);
  }
  write_bytes(dir.file("be.npy"),
              npy_bytes("{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }", be));
  EXPECT_EQ(xgrad::data::load_npy<std::int64_t>(dir.file("be.npy")),
            (xt::xarray<std::int64_t>{1, -2, 70000}));
  // A 1-d array may say fortran_order True (it is both orders).
  write_bytes(dir.file("f1.npy"),
              npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (3,), }", raw(v)));
  EXPECT_EQ(xgrad::data::load_npy<double>(dir.file("f1.npy")).size(), 3u);
}

TEST(NpyRoundTrip, FilesWrittenByNumPyReadBackEqualAndViceVersa) {
  const std::string py = python_with_numpy();
  if (py.empty()) GTEST_SKIP() << "python3 with numpy not found (apt-get install python3-numpy)";
  TempDir dir;
  const std::string script = dir.file("make.py");
  write_bytes(script,
              "import numpy as np, sys\n"
              "d = sys.argv[1]\n"
              "np.save(d + '/f4.npy', (np.arange(12, dtype=np.float32) / 4).reshape(3, 4))\n"
              "np.save(d + '/f8.npy', np.array([0.1, -2.5, 1e300, 5e-324]))\n"
              "np.save(d + '/i4.npy', np.arange(-6, 6, dtype=np.int32).reshape(2, 3, 2))\n"
              "np.save(d + '/i8.npy', np.array([[2**62, -2**62], [1, 2]], dtype=np.int64))\n"
              "np.save(d + '/be.npy', np.array([1.25, -3.5], dtype='>f8'))\n"
              "np.save(d + '/u1.npy', np.array([[0, 255]], dtype=np.uint8))\n"
              "np.save(d + '/fo.npy', np.asfortranarray(np.ones((2, 3))))\n"
              "with open(d + '/v2.npy', 'wb') as f:\n"
              "    np.lib.format.write_array(f, np.arange(5.0), version=(2, 0))\n"
              "a = np.load(d + '/ours.npy')\n"
              "assert a.dtype == np.float64 and a.shape == (2, 3), (a.dtype, a.shape)\n"
              "assert (a == np.array([[1, 2, 3], [4, 5, 6.5]])).all(), a\n"
              "b = np.load(d + '/ours_i8.npy')\n"
              "assert b.dtype == np.int64 and list(b) == [-1, 2**40], b\n");
  xgrad::data::save_npy(dir.file("ours.npy"), xt::xarray<double>{{1, 2, 3}, {4, 5, 6.5}});
  xgrad::data::save_npy(dir.file("ours_i8.npy"),
                        xt::xarray<std::int64_t>{-1, std::int64_t{1} << 40});
  ASSERT_EQ(std::system((py + " " + script + " " + dir.path()).c_str()), 0) << "numpy side failed";

  EXPECT_EQ(
      xgrad::data::load_npy<float>(dir.file("f4.npy")),
      (xt::xarray<float>{{0, .25f, .5f, .75f}, {1, 1.25f, 1.5f, 1.75f}, {2, 2.25f, 2.5f, 2.75f}}));
  const auto f8 = xgrad::data::load_npy<double>(dir.file("f8.npy"));
  EXPECT_EQ(f8, (xt::xarray<double>{0.1, -2.5, 1e300, 5e-324}));
  auto i4 = xgrad::data::load_npy<std::int32_t>(dir.file("i4.npy"));
  ASSERT_EQ(i4.shape(), (xt::xarray<std::int32_t>::shape_type{2, 3, 2}));
  EXPECT_EQ(i4(1, 2, 1), 5);
  EXPECT_EQ(i4(0, 0, 0), -6);
  EXPECT_EQ(xgrad::data::load_npy<std::int64_t>(dir.file("i8.npy")),
            (xt::xarray<std::int64_t>{{std::int64_t{1} << 62, -(std::int64_t{1} << 62)}, {1, 2}}));
  EXPECT_EQ(xgrad::data::load_npy<double>(dir.file("be.npy")), (xt::xarray<double>{1.25, -3.5}));
  EXPECT_EQ(xgrad::data::load_npy<std::int64_t>(dir.file("u1.npy")),
            (xt::xarray<std::int64_t>{{0, 255}}));
  EXPECT_EQ(xgrad::data::load_npy<double>(dir.file("v2.npy")), (xt::xarray<double>{0, 1, 2, 3, 4}));
  try {
    xgrad::data::load_npy<double>(dir.file("fo.npy"));
    FAIL() << "Fortran order accepted";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "C-order")) << e.what();
  }
  // int64 values beyond int32 are refused, naming the byte offset.
  try {
    xgrad::data::load_npy<std::int32_t>(dir.file("i8.npy"));
    FAIL() << "overflow accepted";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "byte 128")) << e.what();
    EXPECT_TRUE(contains(e.what(), "int32")) << e.what();
  }
}

TEST(NpyDataset, TwoFilesOrColumnsOfOneFile) {
  TempDir dir;
  const std::size_t n = 50;
  xt::xarray<double> table = xt::xarray<double>::from_shape({n, 5});
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t c = 0; c < 5; ++c) table(i, c) = double(10 * i + c);
  }
  xt::xarray<std::int64_t> labels = xt::xarray<std::int64_t>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) labels(i) = std::int64_t(i % 7);
  xgrad::data::save_npy(dir.file("table.npy"), table);
  xgrad::data::save_npy(dir.file("labels.npy"), labels);

  NpyDataset<float, std::int64_t> two(dir.file("table.npy"), dir.file("labels.npy"));
  ASSERT_EQ(two.size(), n);
  const std::vector<std::size_t> idx = {49, 3, 4, 5, 3, 0, 17};  // unordered, runs, repeats
  const auto b = two.gather(idx);
  ASSERT_EQ(b.features.shape(), (xt::xarray<float>::shape_type{7, 5}));
  for (std::size_t k = 0; k < idx.size(); ++k) {
    for (std::size_t c = 0; c < 5; ++c) EXPECT_EQ(b.features(k, c), float(10 * idx[k] + c));
    EXPECT_EQ(b.targets(k), std::int64_t(idx[k] % 7));
  }
  NpyDataset<double> cols(dir.file("table.npy"), {0, 1, 3}, {4});
  const auto c = cols.gather(idx);
  ASSERT_EQ(c.features.shape(), (xt::xarray<double>::shape_type{7, 3}));
  ASSERT_EQ(c.targets.shape(), (xt::xarray<double>::shape_type{7}));
  for (std::size_t k = 0; k < idx.size(); ++k) {
    EXPECT_EQ(c.features(k, 0), double(10 * idx[k] + 0));
    EXPECT_EQ(c.features(k, 1), double(10 * idx[k] + 1));
    EXPECT_EQ(c.features(k, 2), double(10 * idx[k] + 3));
    EXPECT_EQ(c.targets(k), double(10 * idx[k] + 4));
  }
  // A run longer than the copies done element by element (copy_columns' memcpy per row).
  NpyDataset<double> wide(dir.file("table.npy"), {0, 1, 2, 3, 4}, {0});
  const auto w = wide.gather(idx);
  for (std::size_t k = 0; k < idx.size(); ++k) {
    for (std::size_t j = 0; j < 5; ++j) EXPECT_EQ(w.features(k, j), double(10 * idx[k] + j));
    EXPECT_EQ(w.targets(k), double(10 * idx[k]));
  }
  // The same columns converted to float (not a plain copy of the stored doubles).
  NpyDataset<float> fcols(dir.file("table.npy"), {0, 1, 3}, {4});
  const auto fc = fcols.gather(idx);
  for (std::size_t k = 0; k < idx.size(); ++k) {
    for (std::size_t j = 0; j < 3; ++j) EXPECT_EQ(double(fc.features(k, j)), c.features(k, j));
    EXPECT_EQ(double(fc.targets(k)), c.targets(k));
  }
  NpyDataset<double> two_targets(dir.file("table.npy"), {2}, {4, 0});
  const auto d = two_targets.gather(std::vector<std::size_t>{6});
  EXPECT_EQ(d.targets, (xt::xarray<double>{{64, 60}}));

  // Through the loader, an epoch covers every row once.
  xgrad::data::DataLoader loader(cols, {.batch_size = 8, .shuffle = true, .seed = 2});
  std::vector<int> seen(n, 0);
  for (const auto& batch : loader.epoch(0)) {
    for (std::size_t k = 0; k < batch.size(); ++k) {
      ++seen[batch.indices[k]];
      EXPECT_EQ(batch.features(k, 0), double(10 * batch.indices[k]));
    }
  }
  for (int s : seen) EXPECT_EQ(s, 1);
}

// Rows gathered in any order, with repeats, runs, neighbours a few rows apart (read
// together) and rows far apart, from rows narrower and wider than a page; from the page
// cache and from a file just dropped from it (read after asking the kernel for every
// span at once); and a visitor that reads rows of another file while it visits.
TEST(NpyDataset, GathersAnyRowsInAnyOrderCachedOrNot) {
  TempDir dir;
  std::mt19937_64 rng(11);
  for (const std::size_t cols : {std::size_t{4}, std::size_t{1000}}) {
    SCOPED_TRACE("row of " + std::to_string(cols) + " float64");
    const std::size_t n = cols == 4 ? 20000 : 300;
    xt::xarray<double> a = xt::xarray<double>::from_shape({n, cols});
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = double(i);
    const std::string path = dir.file("rows" + std::to_string(cols) + ".npy");
    xgrad::data::save_npy(path, a);
    const ArrayFile f = ArrayFile::open_npy(path);
    for (int round = 0; round < 40; ++round) {
      if (round % 10 == 0) {  // out of the page cache (clean pages only: sync first)
        const int fd = ::open(path.c_str(), O_RDONLY);
        ASSERT_GE(fd, 0);
        ::fdatasync(fd);
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
      }
      std::vector<std::size_t> idx;
      const std::size_t m = 1 + rng() % 300;
      while (idx.size() < m) {
        const std::size_t r = rng() % n;
        switch (rng() % 4) {
          case 0:  // a run
            for (std::size_t t = 0; t < 1 + rng() % 9 && r + t < n; ++t) idx.push_back(r + t);
            break;
          case 1:  // a repeat of an earlier row, or a close neighbour of it
            idx.push_back(idx.empty() ? r : std::min(n - 1, idx[rng() % idx.size()] + rng() % 3));
            break;
          default:
            idx.push_back(r);
        }
      }
      std::vector<double> got(idx.size() * cols, -1);
      f.gather<double>(idx, got.data());
      for (std::size_t k = 0; k < idx.size(); ++k) {
        for (std::size_t c = 0; c < cols; c += cols / 4) {
          ASSERT_EQ(got[k * cols + c], double(idx[k] * cols + c)) << "k " << k << " row " << idx[k];
        }
      }
    }
  }
  const ArrayFile small = ArrayFile::open_npy(dir.file("rows4.npy"));
  const ArrayFile wide = ArrayFile::open_npy(dir.file("rows1000.npy"));
  const std::vector<std::size_t> outer = {5, 6, 7, 100, 2}, inner = {299, 0, 1};
  std::size_t visited = 0;
  small.visit_rows(outer, [&](std::size_t k, const std::byte* row) {
    double v;
    std::memcpy(&v, row, sizeof v);
    EXPECT_EQ(v, double(outer[k] * 4));
    std::vector<double> w(inner.size() * 1000);
    wide.gather<double>(inner, w.data());
    for (std::size_t j = 0; j < inner.size(); ++j) EXPECT_EQ(w[j * 1000], double(inner[j] * 1000));
    std::memcpy(&v, row, sizeof v);  // the outer row is intact after the nested read
    EXPECT_EQ(v, double(outer[k] * 4));
    ++visited;
  });
  EXPECT_EQ(visited, outer.size());
}

TEST(NpyDataset, ReadsOnlyTheRequestedRowsOfAHugeFile) {
  // A 16 GiB sparse file: gathering a few rows must neither read nor map the rest.
  TempDir dir;
  const std::string p = dir.file("huge.npy");
  const std::size_t rows = std::size_t{1} << 29, cols = 4;
  const std::string head =
      npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                    ", " + std::to_string(cols) + "), }",
                "");
  write_bytes(p, head);
  const int fd = ::open(p.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const off_t size = off_t(head.size() + rows * cols * 8);
  if (::ftruncate(fd, size) != 0) {
    ::close(fd);
    GTEST_SKIP() << "this file system cannot hold a 16 GiB sparse file";
  }
  const std::vector<std::size_t> marked = {0, 12345678, rows - 1};
  for (std::size_t r : marked) {
    const double v[4] = {double(r), 1, 2, 3};
    ASSERT_EQ(::pwrite(fd, v, sizeof v, off_t(head.size() + r * cols * 8)), ssize_t(sizeof v));
  }
  ::close(fd);
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  NpyDataset<double> data(p, {0, 1, 2}, {3});
  ASSERT_EQ(data.size(), rows);
  xgrad::data::DataLoader loader(data, {.batch_size = 64, .shuffle = true, .seed = 1});
  for (std::size_t b = 0; b < 200; ++b) (void)loader.batch(0, b);
  const auto m = data.gather(marked);
  for (std::size_t k = 0; k < marked.size(); ++k) EXPECT_EQ(m.features(k, 0), double(marked[k]));
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KiB of peak memory grew";
}

TEST(NpyDataset, RefusesMismatchesAndLossyDtypes) {
  TempDir dir;
  xgrad::data::save_npy(dir.file("x.npy"), xt::xarray<double>::from_shape({4, 2}));
  xgrad::data::save_npy(dir.file("y3.npy"), xt::xarray<double>::from_shape({3}));
  xgrad::data::save_npy(dir.file("y4.npy"), xt::xarray<double>::from_shape({4}));
  xgrad::data::save_npy(dir.file("empty.npy"), xt::xarray<double>::from_shape({0, 2}));
  xgrad::data::save_npy(dir.file("cube.npy"), xt::xarray<double>::from_shape({2, 2, 2}));
  auto message = [](auto&& make) {
    try {
      make();
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  using D = NpyDataset<double>;
  EXPECT_TRUE(
      contains(message([&] { D(dir.file("x.npy"), dir.file("y3.npy")); }), "expected as many"));
  EXPECT_TRUE(contains(message([&] { D(dir.file("empty.npy"), dir.file("y4.npy")); }), "no rows"));
  EXPECT_TRUE(contains(message([&] { D(dir.file("cube.npy"), {0}, {1}); }), "expected 2"));
  EXPECT_TRUE(contains(message([&] { D(dir.file("x.npy"), {0}, {2}); }), "column 2"));
  const std::string lossy =
      message([&] { NpyDataset<double, std::int64_t>(dir.file("x.npy"), dir.file("y4.npy")); });
  EXPECT_TRUE(contains(lossy, "y4.npy")) << lossy;
  EXPECT_TRUE(contains(lossy, "expected an integer dtype for targets")) << lossy;
  EXPECT_TRUE(
      contains(message([&] { D(dir.file("missing.npy"), dir.file("y4.npy")); }), "cannot open"));
  EXPECT_TRUE(contains(message([&] { D(dir.path(), dir.file("y4.npy")); }), "directory"));
  D ok(dir.file("x.npy"), dir.file("y4.npy"));
  EXPECT_TRUE(contains(message([&] { ok.gather(std::vector<std::size_t>{4}); }), "out of range"));
}

// Rows are checked run by run when read from the file: every position of a bad index in
// a run (its start, its middle, its end, a run that would wrap past SIZE_MAX) is caught, and
// the message names the first bad index.
TEST(NpyDataset, GatherNamesTheFirstIndexOutOfRange) {
  TempDir dir;
  xt::xarray<double> x = xt::arange<double>(20);
  x.reshape({5, 4});
  xgrad::data::save_npy(dir.file("x.npy"), x);
  xgrad::data::save_npy(dir.file("y.npy"), xt::xarray<double>{0, 1, 2, 3, 4});
  const NpyDataset<double> columns(dir.file("x.npy"), {0, 1, 2}, {3});
  const NpyDataset<double> files(dir.file("x.npy"), dir.file("y.npy"));
  const ArrayFile file = ArrayFile::open_npy(dir.file("x.npy"));
  constexpr std::size_t kMax = SIZE_MAX;
  const std::vector<std::pair<std::vector<std::size_t>, std::size_t>> bad = {
      {{5}, 5},
      {{0, 1, 2, 3, 4, 5}, 5},
      {{5, 6, 7}, 5},
      {{3, 4, 5, 1}, 5},
      {{1, 7, 2}, 7},
      {{2, kMax, 0}, kMax},
      {{kMax, 0, 1}, kMax},
      {{4, 9, 0, 8}, 9},
      {{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 6}, 6}};
  for (const auto& c : bad) {
    // Not a structured binding: Clang 14 cannot capture those in lambdas.
    const std::vector<std::size_t>& idx = c.first;
    const std::string want = "index " + std::to_string(c.second) + " out of range";
    auto message = [&](auto&& gather) {
      try {
        gather();
      } catch (const DataError& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    };
    const std::string m1 = message([&] { (void)columns.gather(idx); });
    const std::string m2 = message([&] { (void)files.gather(idx); });
    std::vector<double> out(4 * idx.size());
    const std::string m3 = message([&] { file.gather<double>(idx, out.data()); });
    for (const std::string& m : {m1, m2, m3}) {
      EXPECT_TRUE(contains(m, want)) << m;
      EXPECT_TRUE(contains(m, "x.npy")) << m;
    }
  }
  // Runs up to the last row, in any order, read back the rows asked for.
  const std::vector<std::size_t> good = {3, 4, 0, 1, 2, 4, 4, 0};
  const auto b = columns.gather(good);
  for (std::size_t k = 0; k < good.size(); ++k) {
    for (std::size_t j = 0; j < 3; ++j) EXPECT_EQ(b.features(k, j), x(good[k], j));
    EXPECT_EQ(b.targets(k), x(good[k], 3));
  }
}

TEST(NpyErrors, EveryTruncationOfAValidFile) {
  TempDir dir;
  xgrad::data::save_npy(dir.file("ok.npy"), xt::xarray<std::int32_t>{{1, 2}, {3, 4}});
  const std::string good = read_bytes(dir.file("ok.npy"));
  const std::string p = dir.file("cut.npy");
  for (std::size_t len = 0; len < good.size(); ++len) {
    write_bytes(p, good.substr(0, len));
    try {
      ArrayFile::open_npy(p);
      FAIL() << "a file cut to " << len << " bytes was accepted";
    } catch (const DataError& e) {
      const std::string m = e.what();
      EXPECT_TRUE(contains(m, p)) << m;
      EXPECT_TRUE(len == 0 ? contains(m, "empty file") : contains(m, "byte ")) << m;
      if (len > 0 && len < 6) {
        EXPECT_TRUE(contains(m, "magic")) << m;
      } else if (len >= 10 && len < 128) {
        EXPECT_TRUE(contains(m, "truncated header")) << m;
      } else if (len >= 128) {
        EXPECT_TRUE(contains(m, "truncated data")) << m;
      }
    }
  }
  write_bytes(p, good + "x");
  try {
    ArrayFile::open_npy(p);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "byte 144: expected the end of the file")) << e.what();
  }
}

TEST(NpyErrors, CorruptHeadersNameTheOffsetAndWhatWasExpected) {
  TempDir dir;
  const std::string p = dir.file("bad.npy");
  const std::string data(24, '\0');
  struct Case {
    std::string dict, expect;
  };
  const std::vector<Case> cases = {
      {"{'descr': '<c16', 'fortran_order': False, 'shape': (3,), }", "unsupported dtype '<c16'"},
      {"{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", "unsupported dtype '<f2'"},
      {"{'descr': '|f8', 'fortran_order': False, 'shape': (3,), }", "1-byte types"},
      {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (3,), }", "structured dtype"},
      {"{'descr': '<f8', 'fortran_order': True, 'shape': (3, 1), }", "C-order"},
      {"{'descr': '<f8', 'fortran_order': Maybe, 'shape': (3,), }", "True or False"},
      {"{'descr': '<f8', 'fortran_order': False, }", "missing key 'shape'"},
      {"{'descr': '<f8', 'shape': (3,), }", "missing key 'fortran_order'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': 1}", "unexpected key 'x'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }", "non-negative integer"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (3 4), }", "expected ',' or ')'"},
      // 0-d: one element, so the 24 data bytes are too many.
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (), }", "after the 8 data bytes"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", "too large"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
       "truncated data"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), } junk", "only padding"},
      {"['descr', '<f8']", "expected '{'"},
      {"{'descr: '<f8'}", "expected ':'"},
      {"{'descr': '<f8' 'fortran_order': False}", "expected ',' or '}'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", "truncated data"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", "expected the end of the file"},
  };
  for (const auto& c : cases) {
    write_bytes(p, npy_bytes(c.dict, data));
    try {
      ArrayFile::open_npy(p);
      ADD_FAILURE() << "accepted: " << c.dict;
    } catch (const DataError& e) {
      const std::string m = e.what();
      EXPECT_TRUE(contains(m, c.expect)) << c.dict << "\n  -> " << m;
      EXPECT_TRUE(contains(m, p + ": byte ")) << m;
    }
  }
  // Magic and version.
  std::string b = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", data);
  b[1] = 'X';
  write_bytes(p, b);
  EXPECT_THROW(ArrayFile::open_npy(p), DataError);
  b[1] = 'N';
  b[6] = 9;
  write_bytes(p, b);
  try {
    ArrayFile::open_npy(p);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "byte 6: format version 9.0: expected version 1, 2 or 3"))
        << e.what();
  }
}

TEST(NpyFuzz, RandomBytesAndMutationsGiveOnlyDataErrors) {
  TempDir dir;
  xt::xarray<double> a = xt::xarray<double>::from_shape({3, 2});
  xgrad::data::save_npy(dir.file("seed.npy"), a);
  const std::string good = read_bytes(dir.file("seed.npy"));
  const std::string p = dir.file("fuzz.npy");
  std::mt19937_64 rng(2024);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string b;
    switch (iter % 4) {
      case 0: {  // random bytes
        b.resize(rng() % 300);
        for (char& c : b) c = char(rng());
        break;
      }
      case 1: {  // a valid magic and version, then random bytes
        b = good.substr(0, 8 + rng() % 3);
        const std::size_t n = rng() % 200;
        for (std::size_t i = 0; i < n; ++i) b += char(rng());
        break;
      }
      case 2: {  // a valid file with a few bytes changed
        b = good;
        for (int k = 0, m = 1 + int(rng() % 4); k < m; ++k) b[rng() % b.size()] = char(rng());
        break;
      }
      default: {  // header text with random characters from its own alphabet
        std::string alphabet = "{}():,' <>|=fiuc0123456789 descr shape fortran_order True False\n";
        std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
        for (int k = 0, m = 1 + int(rng() % 3); k < m; ++k)
          dict[rng() % dict.size()] = alphabet[rng() % alphabet.size()];
        b = npy_bytes(dict, std::string(48, '\0'));
      }
    }
    write_bytes(p, b);
    expect_clean_outcome(p);
  }
}

TEST(NpyWriter, CommitsAtomicallyAndCleansUp) {
  TempDir dir;
  const std::string p = dir.file("target.npy");
  xgrad::data::save_npy(p, xt::xarray<double>{1, 2, 3});
  const std::string before = read_bytes(p);
  auto files = [&] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++n;
    return n;
  };
  {
    NpyWriter w(p, Stored::float64, {4});
    const std::vector<double> v = {9, 9};
    w.write(std::span<const double>(v));
    EXPECT_EQ(read_bytes(p), before);  // the target is untouched while writing
    EXPECT_EQ(files(), 2u);            // the temporary file sits beside it
    try {
      w.commit();
      FAIL() << "commit with missing data";
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), "commit() after 16 data bytes: expected 32")) << e.what();
    }
    const std::vector<float> wrong = {1};
    EXPECT_THROW(w.write(std::span<const float>(wrong)), DataError);
    const std::vector<double> too_many = {1, 2, 3};
    EXPECT_THROW(w.write(std::span<const double>(too_many)), DataError);
  }  // abandoned: the temporary file is removed, the target unchanged
  EXPECT_EQ(read_bytes(p), before);
  EXPECT_EQ(files(), 1u);

  // Written in pieces, larger than the writer's buffer, then committed.
  {
    const std::size_t rows = 70000;
    NpyWriter w(p, Stored::float64, {rows, 3});
    std::vector<double> piece;
    for (std::size_t r = 0; r < rows; r += 1000) {
      piece.clear();
      for (std::size_t i = r; i < r + 1000; ++i)
        piece.insert(piece.end(), {double(i), 0.5, -double(i)});
      w.write(std::span<const double>(piece));
    }
    w.commit();
    EXPECT_EQ(w.written_bytes(), w.expected_bytes());
  }
  EXPECT_EQ(files(), 1u);
  const auto back = xgrad::data::load_npy<double>(p);
  ASSERT_EQ(back.shape(0), 70000u);
  EXPECT_EQ(back(69999, 2), -69999.0);
  EXPECT_THROW(NpyWriter(dir.file("no/such/dir.npy"), Stored::float64, {1}), DataError);
}

}  // namespace
