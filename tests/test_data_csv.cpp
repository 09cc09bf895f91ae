// CSV files: header detection, column choice by name or position, delimiters, quoting,
// and a DataError naming the file, line and field for every malformed input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/xgrad.hpp>

#include "data_test_util.hpp"

namespace {

using xgrad::data::CsvDataset;
using xgrad::data::CsvHeader;
using xgrad::data::CsvOptions;
using xgrad::data::DataError;

using xgrad_test::contains;
using xgrad_test::TempDir;

// The DataError message of reading a file, or "no error".
std::string error_of(const std::string& path, const CsvOptions& o = {}) {
  try {
    CsvDataset<double> d(path, o);
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}

TEST(CsvRead, HeaderAutomaticPresentAbsent) {
  TempDir dir;
  const auto with = dir.write("with.csv", "x1,x2,y\n1,2,3\n4,5,6\n");
  CsvDataset<double> a(with);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a.features(), (xt::xarray<double>{{1, 2}, {4, 5}}));
  EXPECT_EQ(a.targets(), (xt::xarray<double>{3, 6}));
  EXPECT_EQ(a.feature_names(), (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(a.target_names(), (std::vector<std::string>{"y"}));

  const auto without = dir.write("without.csv", "1,2,3\n4,5,6\n");
  CsvDataset<double> b(without);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.feature_names(), (std::vector<std::string>{"column 0", "column 1"}));
  // A numeric first row is data unless the options say it is a header.
  CsvDataset<double> c(without, CsvOptions().header(CsvHeader::present));
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.target_names(), (std::vector<std::string>{"3"}));
  // Told there is no header, a header row is a non-numeric field on line 1.
  const std::string m = error_of(with, CsvOptions().header(CsvHeader::absent));
  EXPECT_TRUE(contains(m, with + ": line 1, field 1 (column 0): 'x1': expected a number")) << m;
}

TEST(CsvRead, ColumnsByNameAndPositionAndIntegerTargets) {
  TempDir dir;
  const auto p = dir.write("iris.csv",
                           "id,sepal,petal,name,label\n"
                           "a1,5.1,1.4,setosa,0\n"
                           "a2,7.0,4.7,versicolor,1\n"
                           "a3,6.3,6.0,virginica,2\n");
  // Text columns may exist when not selected.
  CsvDataset<float, std::int64_t> d(p,
                                    CsvOptions().features({"sepal", "petal"}).targets({"label"}));
  EXPECT_EQ(d.features(), (xt::xarray<float>{{5.1f, 1.4f}, {7.0f, 4.7f}, {6.3f, 6.0f}}));
  EXPECT_EQ(d.targets(), (xt::xarray<std::int64_t>{0, 1, 2}));
  CsvDataset<double> pos(p, CsvOptions().features({2}).targets({-1, 1}));
  EXPECT_EQ(pos.features(), xt::reshape_view(xt::xarray<double>{1.4, 4.7, 6.0}, {3, 1}));
  EXPECT_EQ(pos.targets(), (xt::xarray<double>{{0, 5.1}, {1, 7.0}, {2, 6.3}}));
  EXPECT_EQ(pos.target_names(), (std::vector<std::string>{"label", "sepal"}));
  const std::string twice = error_of(p, CsvOptions().features({1, 2}).targets({-1, 1}));
  EXPECT_TRUE(contains(twice, "column 'sepal' (position 1) selected twice")) << twice;
  // Whole numbers are required for integer targets.
  const auto frac = dir.write("frac.csv", "x,y\n1,0\n2,1.5\n");
  try {
    CsvDataset<double, std::int64_t> bad(frac);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), frac + ": line 3, column 'y': value 1.5")) << e.what();
    EXPECT_TRUE(contains(e.what(), "whole number")) << e.what();
  }
  const auto big = dir.write("big.csv", "x,y\n1,3000000000\n");
  EXPECT_THROW((CsvDataset<double, std::int32_t>(big)), DataError);
  CsvDataset<double, std::int64_t> ok(big);
  EXPECT_EQ(ok.targets()(0), 3000000000);
}

TEST(CsvRead, DelimitersQuotesLineEndsAndBlankLines) {
  TempDir dir;
  const auto semi = dir.write("semi.csv", "a;b\r\n1,5;2\r\n\r\n  3 ; +4e1 \r\n\n");
  // ';' separates, so "1,5" is one field and not a number.
  EXPECT_TRUE(contains(error_of(semi, CsvOptions().delimiter(';')), "'1,5': expected a number"));
  const auto semi2 = dir.write("semi2.csv", "a;b\r\n1.5;2\r\n\r\n  3 ; +4e1 \r\n\n");
  CsvDataset<double> s(semi2, CsvOptions().delimiter(';'));
  ASSERT_EQ(s.features().shape(), (xt::xarray<double>::shape_type{2, 1}));
  EXPECT_EQ(s.features()(0, 0), 1.5);
  EXPECT_EQ(s.features()(1, 0), 3.0);
  EXPECT_EQ(s.targets(), (xt::xarray<double>{2, 40}));
  const auto tab = dir.write("tab.tsv", "x\ty\n1\t-2\n");
  CsvDataset<double> t(tab, CsvOptions().delimiter('\t'));
  EXPECT_EQ(t.targets(), (xt::xarray<double>{-2}));
  const auto quoted = dir.write("q.csv", "\"size, m2\",\"say \"\"hi\"\"\",y\n\"12\",3,\"4\"\n");
  CsvDataset<double> q(quoted, CsvOptions().features({"size, m2"}).targets({"y"}));
  ASSERT_EQ(q.features().shape(), (xt::xarray<double>::shape_type{1, 1}));
  EXPECT_EQ(q.features()(0, 0), 12.0);
  EXPECT_EQ(q.targets(), (xt::xarray<double>{4}));
  const auto special = dir.write("nan.csv", "1,nan\n2,inf\n3,-1e-310\n");
  CsvDataset<double> sp(special);
  EXPECT_TRUE(std::isnan(sp.targets()(0)));
  EXPECT_TRUE(std::isinf(sp.targets()(1)));
  EXPECT_EQ(sp.targets()(2), -1e-310);
}

TEST(CsvErrors, NameTheFileLineFieldAndWhatWasExpected) {
  TempDir dir;
  struct Case {
    std::string text;
    CsvOptions options;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"a,b,c\n1,2,3\n4,5\n", {}, "line 3: 2 fields: expected 3 (as in line 1)"},
      {"a,b,c\n1,2,3\n4,5,6,7\n", {}, "line 3: 4 fields: expected 3"},
      {"a,b,c\n1,2,3\n4,x5,6\n", {}, "line 3, field 2 ('b'): 'x5': expected a number"},
      {"a,b,c\n1,2,3\n4,,6\n", {}, "line 3, field 2 ('b'): empty field: expected a number"},
      {"a,b,c\n1,2,3\n4,5,6,\n", {}, "line 3: 4 fields"},
      {"1,2\n3,4e\n", {}, "line 2, field 2 (column 1): '4e': expected a number"},
      {"1,2\n3,0x10\n", {}, "'0x10': expected a number"},
      {"", {}, "empty file: expected a header or data rows"},
      {"\n  \n\n", {}, "only blank lines"},
      {"a,b\n", {}, "line 1: a header and no data rows"},
      {"a,b\n1,2\n", CsvOptions().targets({"c"}),
       "line 1: unknown column 'c': expected one of 'a', 'b'"},
      {"1,2\n", CsvOptions().header(CsvHeader::absent).targets({"b"}), "selected by name"},
      {"a,b\n1,2\n", CsvOptions().targets({5}), "column position 5: expected 0 to 1"},
      {"a,b\n1,2\n", CsvOptions().targets({-3}), "column position -3"},
      {"a,b\n1,2\n", CsvOptions().features({"a"}).targets({"a"}),
       "column 'a' (position 0) selected twice"},
      {"a\n1\n", {}, "no feature columns"},
      {"a,b\n\"1,2\n", {}, "line 2, character 1: unterminated quoted field"},
      {"a,b\n\"1\"x,2\n", {}, "line 2, character 4: expected the delimiter ','"},
  };
  for (const auto& c : cases) {
    const auto p = dir.write("bad.csv", c.text);
    const std::string m = error_of(p, c.options);
    EXPECT_TRUE(contains(m, p + ": ")) << m;
    EXPECT_TRUE(contains(m, c.expect)) << "input: " << c.text << "\n  -> " << m;
  }
  EXPECT_TRUE(contains(error_of(dir.write("ok.csv", "1,2\n") + ".missing"), "cannot open"));
  EXPECT_TRUE(contains(error_of("/"), "directory"));
}

TEST(CsvRead, ByteOrderMarkIsDroppedFromTheFirstName) {
  TempDir dir;
  const auto p = dir.write("bom.csv",
                           "\xEF\xBB\xBF"
                           "area,price\n1,2\n3,4\n");
  CsvDataset<double> d(p, CsvOptions().features({"area"}).targets({"price"}));
  EXPECT_EQ(d.feature_names(), (std::vector<std::string>{"area"}));
  ASSERT_EQ(d.features().shape(), (xt::xarray<double>::shape_type{2, 1}));
  EXPECT_EQ(d.features()(1, 0), 3.0);
  // Without a header, the mark does not make the first field "not a number".
  const auto q = dir.write("bom_data.csv",
                           "\xEF\xBB\xBF"
                           "1,2\n3,4\n");
  EXPECT_EQ(CsvDataset<double>(q).size(), 2u);
}

TEST(CsvRead, CrOnlyLineEndsAndMixedLineEndsCountLines) {
  TempDir dir;
  const auto p = dir.write("mac.csv", "a,b,y\r1,2,3\r4,5,6\r");
  CsvDataset<double> d(p);
  EXPECT_EQ(d.size(), 2u);
  EXPECT_EQ(d.targets(), (xt::xarray<double>{3, 6}));
  // LF, CRLF and CR in one file: every line end counts once in the line numbers.
  const auto mixed = dir.write("mixed.csv", "a,b,y\r\n1,2,3\r4,5,6\n7,x,9\r");
  EXPECT_TRUE(contains(error_of(mixed), mixed + ": line 4, field 2 ('b'): 'x': expected a number"))
      << error_of(mixed);
  const auto cr_blank = dir.write("cr_blank.csv", "a,y\r\r1,2\r\r");
  EXPECT_EQ(CsvDataset<double>(cr_blank).size(), 1u);
}

TEST(CsvErrors, NumbersOutOfRangeAreNamedSo) {
  TempDir dir;
  for (const std::string big : {"1e400", "-1e400", "+2e308"}) {
    const auto p = dir.write("big.csv", "a,y\n1,2\n" + big + ",3\n");
    const std::string m = error_of(p);
    EXPECT_TRUE(contains(m, p + ": line 3, field 1 ('a'): '" + big + "': number out of range"))
        << m;
  }
  // Below the smallest denormal a number rounds to zero, as strtod and NumPy read it.
  const auto tiny = dir.write("tiny.csv", "a,y\n1e-400,1\n-1e-400,2\n");
  CsvDataset<double> t(tiny);
  EXPECT_EQ(t.features()(0, 0), 0.0);
  EXPECT_TRUE(std::signbit(t.features()(1, 0)));
  // Within double but beyond float: refused for float features, naming line and column.
  const auto wide = dir.write("wide.csv", "a,y\n1e39,1\n");
  try {
    CsvDataset<float> f(wide);
    ADD_FAILURE() << "1e39 accepted as float";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), wide + ": line 2, column 'a': value 1e+39")) << e.what();
    EXPECT_TRUE(contains(e.what(), "range of float32")) << e.what();
  }
  EXPECT_EQ(CsvDataset<double>(wide).features()(0, 0), 1e39);
}

TEST(CsvErrors, OneFieldRowsHintAtTheLikelyDelimiter) {
  TempDir dir;
  const auto semi = dir.write("semi.csv", "area;rooms;price\n1;2;3\n");
  std::string m = error_of(semi);
  EXPECT_TRUE(contains(m, semi + ": line 1: no feature columns")) << m;
  EXPECT_TRUE(contains(m, "holds 2 ';': a ';'-separated file? (CsvOptions().delimiter(';'))")) << m;
  m = error_of(semi, CsvOptions().targets({"price"}));
  EXPECT_TRUE(contains(m, "unknown column 'price'")) << m;
  EXPECT_TRUE(contains(m, "';'-separated file?")) << m;
  const auto tab = dir.write("tab.csv", "a\tb\n1\t2\n");
  m = error_of(tab);
  EXPECT_TRUE(contains(m, "a tab-separated file? (CsvOptions().delimiter('\\t'))")) << m;
  // Read with ';', a comma file gets the comma hint.
  const auto comma = dir.write("comma.csv", "a,b\n1,2\n");
  m = error_of(comma, CsvOptions().delimiter(';'));
  EXPECT_TRUE(contains(m, "a ','-separated file?")) << m;
  // No other delimiter in sight: no hint.
  m = error_of(dir.write("one.csv", "a\n1\n"));
  EXPECT_TRUE(contains(m, "no feature columns")) << m;
  EXPECT_FALSE(contains(m, "separated")) << m;
}

TEST(CsvRead, SkipRowsPassesALineOfCountsBeforeTheData) {
  TempDir dir;
  // scikit-learn's layout: a line of counts and class names, then data (or a header).
  const auto p = dir.write("iris.csv",
                           "3,4,setosa,versicolor\n5.1,3.5,1.4,0.2,0\n"
                           "4.9,3.0,1.4,0.2,1\n4.7,3.2,1.3,0.2,2\n");
  CsvDataset<double, std::int64_t> d(p, CsvOptions().skip_rows(1));
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.features().shape(1), 4u);
  EXPECT_EQ(d.targets(), (xt::xarray<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(d.feature_names()[0], "column 0");
  // Skipped lines still count in the line numbers.
  const auto bad = dir.write("bad.csv", "2,1\nx,y\n1,2\n3,z\n");
  const std::string m = error_of(bad, CsvOptions().skip_rows(1));
  EXPECT_TRUE(contains(m, bad + ": line 4, field 2 ('y'): 'z': expected a number")) << m;
  // A header after the skipped line is recognised as usual.
  CsvDataset<double> h(dir.write("h.csv", "9,9,9\na,b,y\n1,2,3\n"), CsvOptions().skip_rows(1));
  EXPECT_EQ(h.target_names(), (std::vector<std::string>{"y"}));
  const std::string all = error_of(dir.write("short.csv", "a,b\n"), CsvOptions().skip_rows(2));
  EXPECT_TRUE(contains(all, "1 line(s) skipped (skip_rows) and nothing after them")) << all;
}

// scikit-learn's own files, from Debian's python3-sklearn package (deps.sh), when present.
TEST(CsvRead, ScikitLearnBundledFiles) {
  const std::string dir = "/usr/lib/python3/dist-packages/sklearn/datasets/data/";
  if (!std::filesystem::exists(dir + "iris.csv")) GTEST_SKIP() << "python3-sklearn not installed";
  CsvDataset<double, std::int64_t> iris(dir + "iris.csv", CsvOptions().skip_rows(1));
  EXPECT_EQ(iris.size(), 150u);
  EXPECT_EQ(iris.features().shape(1), 4u);
  EXPECT_EQ(iris.targets()(149), 2);
  if (std::filesystem::exists(dir + "boston_house_prices.csv")) {
    CsvDataset<double> boston(dir + "boston_house_prices.csv",
                              CsvOptions().skip_rows(1).targets({"MEDV"}));
    EXPECT_EQ(boston.size(), 506u);
    EXPECT_EQ(boston.feature_names()[0], "CRIM");
  }
}

TEST(CsvFuzz, RandomTextGivesDataOrDataErrors) {
  TempDir dir;
  std::mt19937_64 rng(77);
  const std::string alphabet = "0123456789,,,\n\n\"\" .-+eEnaif;\t\rx\0\xff";
  for (int iter = 0; iter < 1500; ++iter) {
    std::string text(rng() % 80, ' ');
    for (char& ch : text) ch = iter % 3 == 0 ? char(rng()) : alphabet[rng() % alphabet.size()];
    const auto p = dir.write("fuzz.csv", text);
    for (auto header : {CsvHeader::automatic, CsvHeader::absent}) {
      try {
        CsvDataset<double, std::int64_t> d(p, CsvOptions().header(header).targets({0}));
        ASSERT_GT(d.size(), 0u);
        ASSERT_EQ(d.features().shape(0), d.size());
      } catch (const DataError& e) {
        ASSERT_TRUE(contains(e.what(), p)) << e.what();
      }
    }
  }
}

}  // namespace
