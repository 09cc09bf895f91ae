// IDX files (the MNIST format), plain and gzip-compressed: every IDX element type, the
// real Fashion-MNIST data set from Debian's dataset-fashion-mnist package, and a
// DataError naming the file and byte offset for every malformed or random input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/xgrad.hpp>

#include "data_test_util.hpp"

namespace {

namespace fs = std::filesystem;
using xgrad::data::ArrayFile;
using xgrad::data::DataError;
using xgrad::data::IdxDataset;
using xgrad::data::IdxOptions;

using xgrad_test::contains;
using xgrad_test::read_bytes;
using xgrad_test::TempDir;

// An IDX file: magic 00 00 type ndims, big-endian dims, then the (big-endian) data.
std::string idx_bytes(unsigned char type, const std::vector<std::uint32_t>& dims,
                      const std::string& data) {
  std::string b = {'\0', '\0', char(type), char(dims.size())};
  for (std::uint32_t d : dims) {
    for (int k = 3; k >= 0; --k) b += char((d >> (8 * k)) & 0xff);
  }
  return b + data;
}

template <class U>
std::string big_endian(const std::vector<U>& v) {
  std::string out;
  for (U x : v) {
    unsigned char b[sizeof(U)];
    std::memcpy(b, &x, sizeof(U));
    for (std::size_t k = sizeof(U); k-- > 0;) out += char(b[k]);
  }
  return out;
}

// path.gz: the file compressed by zlib.
std::string gzip(const std::string& path) {
  xgrad_test::write_bytes(path + ".gz", xgrad_test::gzip_bytes(read_bytes(path)));
  return path + ".gz";
}

// 3 images of 2x3 pixels and 3 labels, as MNIST stores them.
struct Tiny {
  std::string images, labels;
};
Tiny tiny(const TempDir& dir) {
  std::string px;
  for (int i = 0; i < 18; ++i) px += char(i * 15);
  return {dir.write("img.idx", idx_bytes(0x08, {3, 2, 3}, px)),
          dir.write("lab.idx", idx_bytes(0x08, {3}, std::string("\x07\x00\x09", 3)))};
}

TEST(IdxRead, ImagesAndLabelsPlainAndGzipped) {
  TempDir dir;
  const Tiny t = tiny(dir);
  IdxDataset<float, std::int64_t> d(t.images, t.labels);
  ASSERT_EQ(d.size(), 3u);
  auto b = d.gather(std::vector<std::size_t>{2, 0});
  ASSERT_EQ(b.features.shape(), (xt::xarray<float>::shape_type{2, 2, 3}));
  EXPECT_EQ(b.features(0, 0, 0), 180.f);
  EXPECT_EQ(b.features(0, 1, 2), 255.f);
  EXPECT_EQ(b.features(1, 0, 1), 15.f);
  EXPECT_EQ(b.targets, (xt::xarray<std::int64_t>{9, 7}));
  EXPECT_FALSE(d.features_file().in_memory());

  const std::string gi = gzip(t.images), gl = gzip(t.labels);
  IdxDataset<double, std::int32_t> z(gi, gl, IdxOptions().scale(1.0 / 255).flatten(true));
  EXPECT_TRUE(z.features_file().in_memory());
  const auto c = z.gather(std::vector<std::size_t>{2});
  ASSERT_EQ(c.features.shape(), (xt::xarray<double>::shape_type{1, 6}));
  EXPECT_DOUBLE_EQ(c.features(0, 5), 1.0);
  EXPECT_DOUBLE_EQ(c.features(0, 0), 180.0 / 255);
  EXPECT_EQ(c.targets(0), 9);
  // Integer features cannot be scaled.
  EXPECT_THROW((IdxDataset<std::int32_t>(gi, gl, IdxOptions().scale(0.5))), DataError);
}

TEST(IdxRead, EveryElementTypeIsBigEndian) {
  TempDir dir;
  const auto i8 = dir.write("i8", idx_bytes(0x09, {3}, std::string("\xff\x00\x7f", 3)));
  EXPECT_EQ(ArrayFile::open_idx(i8).shape(), (std::vector<std::size_t>{3}));
  struct Case {
    std::string path;
    std::vector<double> want;
  };
  const std::vector<Case> cases = {
      {i8, {-1, 0, 127}},
      {dir.write("i16", idx_bytes(0x0B, {2}, big_endian<std::int16_t>({-300, 1000}))),
       {-300, 1000}},
      {dir.write("i32", idx_bytes(0x0C, {2}, big_endian<std::int32_t>({-70000, 1 << 30}))),
       {-70000, 1 << 30}},
      {dir.write("f32", idx_bytes(0x0D, {2}, big_endian<float>({1.5f, -0.25f}))), {1.5, -0.25}},
      {dir.write("f64", idx_bytes(0x0E, {2}, big_endian<double>({1e300, -2.5}))), {1e300, -2.5}},
  };
  for (const auto& c : cases) {
    const ArrayFile f = ArrayFile::open_idx(c.path);
    std::vector<double> got(c.want.size());
    f.gather<double>(std::vector<std::size_t>{0, 1}, got.data());
    EXPECT_EQ(std::vector<double>(got.begin(), got.begin() + 2),
              std::vector<double>(c.want.begin(), c.want.begin() + 2))
        << c.path;
  }
  // Float labels are refused for integer targets.
  const auto img = dir.write("img", idx_bytes(0x08, {2, 1}, std::string("\x01\x02", 2)));
  try {
    IdxDataset<float, std::int64_t> d(img, cases[3].path);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "expected an integer dtype for targets")) << e.what();
  }
}

TEST(IdxErrors, TruncationsCorruptHeadersAndMismatches) {
  TempDir dir;
  const Tiny t = tiny(dir);
  const std::string good = read_bytes(t.images);
  for (std::size_t len = 0; len < good.size(); ++len) {
    const auto p = dir.write("cut.idx", good.substr(0, len));
    try {
      ArrayFile::open_idx(p);
      FAIL() << "accepted a file cut to " << len << " bytes";
    } catch (const DataError& e) {
      const std::string m = e.what();
      EXPECT_TRUE(contains(m, p + ": ")) << m;
      if (len == 0) {
        EXPECT_TRUE(contains(m, "empty file")) << m;
      } else if (len < 16) {
        EXPECT_TRUE(contains(m, "truncated header")) << m;
        EXPECT_TRUE(contains(m, "byte " + std::to_string(len))) << m;
      } else {
        EXPECT_TRUE(contains(m, "byte " + std::to_string(len) + ": truncated data")) << m;
      }
    }
  }
  struct Case {
    std::string bytes, expect;
  };
  const std::vector<Case> cases = {
      {std::string("\x01\x00\x08\x01\x00\x00\x00\x01\x05", 9),
       "byte 0: expected the IDX magic number 00 00"},
      {std::string("\x00\x00\x07\x01\x00\x00\x00\x01\x05", 9),
       "byte 2: unknown IDX type code 0x07"},
      {std::string("\x00\x00\x08\x00", 4), "byte 3: 0 dimensions"},
      {good + "zz", "byte 34: expected the end of the file"},
      {idx_bytes(0x0E, {0xffffffff, 0xffffffff, 0xffffffff}, ""),
       "byte 16: truncated data: expected more than 2^64"},
  };
  for (const auto& c : cases) {
    const auto p = dir.write("bad.idx", c.bytes);
    try {
      ArrayFile::open_idx(p);
      ADD_FAILURE() << "accepted: " << c.expect;
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), p + ": " + c.expect)) << e.what();
    }
  }
  const auto two = dir.write("two.idx", idx_bytes(0x08, {2}, "ab"));
  EXPECT_THROW((IdxDataset<float, std::int64_t>(t.images, two)), DataError);
  const auto none = dir.write("none.idx", idx_bytes(0x08, {0, 5}, ""));
  EXPECT_THROW((IdxDataset<float, std::int64_t>(none, none)), DataError);
  EXPECT_THROW((IdxDataset<float, std::int64_t>(dir.file("missing"), t.labels)), DataError);

  // Gzip: cut or corrupted streams are errors, not shorter data sets.
  const std::string gz = gzip(t.images);
  const std::string zbytes = read_bytes(gz);
  for (std::size_t len :
       {std::size_t{2}, std::size_t{10}, zbytes.size() / 2, zbytes.size() - 4, zbytes.size() - 1}) {
    const auto p = dir.write("cut.gz", zbytes.substr(0, len));
    try {
      ArrayFile::open_idx(p);
      ADD_FAILURE() << "accepted gzip cut to " << len;
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), p + ": ")) << e.what();
      EXPECT_TRUE(contains(e.what(), "gzip")) << e.what();
    }
  }
  std::string flipped = zbytes;
  flipped[12] = char(flipped[12] ^ 0x5a);
  EXPECT_THROW(ArrayFile::open_idx(dir.write("flip.gz", flipped)), DataError);
}

TEST(IdxFuzz, RandomBytesAndMutationsGiveOnlyDataErrors) {
  TempDir dir;
  const Tiny t = tiny(dir);
  const std::string good = read_bytes(t.images);
  const std::string gz = gzip(t.images);
  const std::string zgood = read_bytes(gz);
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 1200; ++iter) {
    std::string b;
    const int kind = iter % 4;
    if (kind == 0) {
      b.resize(rng() % 64);
      for (char& c : b) c = char(rng());
    } else if (kind == 1) {
      b = good;
      for (int k = 0, m = 1 + int(rng() % 3); k < m; ++k)
        b[rng() % 16] = char(rng() % 4 == 0 ? rng() : rng() % 5);
    } else if (kind == 2) {
      b = std::string("\0\0", 2) + char(rng() % 16) + char(rng() % 5);
      for (std::size_t n = rng() % 40; n > 0; --n) b += char(rng() % 3 ? 0 : rng());
    } else {
      b = zgood;
      b[2 + rng() % (b.size() - 2)] = char(rng());
    }
    const auto p = dir.write("fuzz.idx", b);
    try {
      const ArrayFile f = ArrayFile::open_idx(p);
      std::vector<std::size_t> rows(f.rows());
      for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
      std::vector<float> out(rows.size() * f.row_elements());
      f.gather<float>(rows, out.data());
    } catch (const DataError& e) {
      ASSERT_TRUE(contains(e.what(), p)) << e.what();
    }
  }
}

// Debian's dataset-fashion-mnist package.
const std::string kFashion = "/usr/share/datasets/fashion-mnist/";

TEST(IdxFashionMnist, LoadsTheDebianPackageAndTrainsAClassifier) {
  if (!fs::exists(kFashion + "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not found in " << kFashion
                 << ": install Debian's dataset-fashion-mnist (scripts/deps.sh does)";
  }
  using Fashion = IdxDataset<float, std::int64_t>;
  const auto opts = IdxOptions().scale(1.0 / 255).flatten(true);
  Fashion train(kFashion + "train-images-idx3-ubyte.gz", kFashion + "train-labels-idx1-ubyte.gz",
                opts);
  Fashion test(kFashion + "t10k-images-idx3-ubyte.gz", kFashion + "t10k-labels-idx1-ubyte.gz",
               opts);
  ASSERT_EQ(train.size(), 60000u);
  ASSERT_EQ(test.size(), 10000u);
  EXPECT_EQ(test.features_file().shape(), (std::vector<std::size_t>{10000, 28, 28}));
  // Balanced classes: 6000 and 1000 of each of the 10 labels, pixels in [0, 1].
  for (const auto* d : {&train, &test}) {
    std::vector<std::size_t> all(d->size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    std::vector<std::int64_t> labels(all.size());
    d->targets_file().gather<std::int64_t>(all, labels.data());
    for (std::int64_t c = 0; c < 10; ++c) {
      EXPECT_EQ(std::count(labels.begin(), labels.end(), c), std::ptrdiff_t(d->size() / 10));
    }
  }
  const auto first = test.gather(std::vector<std::size_t>{0});
  ASSERT_EQ(first.features.shape(), (xt::xarray<float>::shape_type{1, 784}));
  EXPECT_GE(xt::amin(first.features)(), 0.f);
  EXPECT_LE(xt::amax(first.features)(), 1.f);
  EXPECT_EQ(first.targets(0), 9);  // the test set starts with an ankle boot

  // One epoch of softmax regression on a seeded 20% of the training set, through the loader.
  const auto parts = xgrad::data::split(train, 0.2, 7);
  xgrad::Graph<float> g;
  auto x = g.input("x", {xgrad::open, 784});
  auto y = g.input("y", {xgrad::open}, xgrad::DType::int64);
  auto w = g.parameter("W", xt::zeros<float>({784, 10}));
  auto b = g.parameter("b", xt::zeros<float>({10}));
  auto logits = xgrad::matmul(x, w) + b;
  auto loss = xgrad::cross_entropy(logits, y);
  auto grads = xgrad::grad(loss, {w, b});
  auto step = xgrad::compile({loss, grads[0], grads[1]});
  xgrad::data::DataLoader loader(parts.validation, {.batch_size = 50, .shuffle = true, .seed = 1});
  std::size_t seen = 0;
  for (const auto& batch : loader.epoch(0)) {
    const auto& out = step.run(batch.feeds(x, y));
    g.value(w) -= 0.2f * out[1];
    g.value(b) -= 0.2f * out[2];
    seen += batch.size();
  }
  EXPECT_EQ(seen, 12000u);
  auto predict = xgrad::compile({logits});
  std::size_t right = 0;
  xgrad::data::DataLoader eval(test, {.batch_size = 1000, .shuffle = false});
  for (const auto& batch : eval.epoch(0)) {
    const auto& z = predict.run(batch.feeds(x))[0];
    for (std::size_t k = 0; k < batch.size(); ++k) {
      std::size_t guess = 0;  // argmax by hand: xt::argmax warns falsely under GCC 12 -O2
      for (std::size_t c = 1; c < 10; ++c) guess = z(k, c) > z(k, guess) ? c : guess;
      right += guess == std::size_t(batch.targets(k));
    }
  }
  std::printf("Fashion-MNIST test accuracy after one epoch on 12000 images: %.4f\n",
              double(right) / 10000);
  EXPECT_GT(double(right) / 10000, 0.70) << "test accuracy after one epoch on 12000 images";
}

}  // namespace
