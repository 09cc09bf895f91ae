// What the libFuzzer targets of tests/fuzz found, replayed through the public API so a
// regression fails in every build, not only in the fuzzing one. The crashing inputs
// themselves are in the seed corpora (tests/fuzz/corpus/<target>/).
#include <gtest/gtest.h>

#include <xgrad/data/array_file.hpp>
#include <xgrad/data/npy.hpp>
#include <xgrad/xgrad.hpp>

#include "data_test_util.hpp"
#include "test_util.hpp"

namespace {

using xgrad_test::contains;

// fuzz_graph: broadcast_to with an open (-1) extent in its static target was accepted and
// reached the buffer planner as a negative size (an allocation of 2^64 - 144 bytes).
TEST(FuzzFindings, BroadcastToAnOpenExtentIsAShapeError) {
  xgrad::Graph<double> g;
  auto p = g.parameter("p", xt::xarray<double>{1.0, 2.0, 3.0});
  try {
    xgrad::broadcast_to(p, {2, xgrad::open});
    ADD_FAILURE() << "accepted an open extent";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "broadcast_to")) << e.what();
    EXPECT_TRUE(contains(e.what(), "open extent")) << e.what();
  }
  EXPECT_EQ(xgrad::eval(xgrad::broadcast_to(p, {2, 3})).shape(0), 2u);
}

// fuzz_graph: unsqueeze with an empty axis list read it as "every axis" and turned a
// (4, 1, 0, 3) operand into (1, 1, 1, 1), one element copied out of an empty buffer.
TEST(FuzzFindings, UnsqueezeWithoutAxesKeepsTheShape) {
  xgrad::Graph<double> g;
  auto empty = g.parameter("e", xt::zeros<double>({4, 1, 0, 3}));
  EXPECT_EQ(xgrad::unsqueeze(empty, {}).shape(), (xgrad::Shape{4, 1, 0, 3}));
  EXPECT_EQ(xgrad::eval(xgrad::unsqueeze(empty, {})).size(), 0u);
  auto p = g.parameter("p", xt::xarray<double>{{1.0, 2.0}});
  EXPECT_EQ(xgrad::eval(xgrad::unsqueeze(p, {})), p.graph().value(p));
  EXPECT_EQ(xgrad::unsqueeze(p, {0}).shape(), (xgrad::Shape{1, 1, 2}));
}

// fuzz_graph: pad_like checked only the padded axis, so a block narrower than ref on
// another axis was copied past its end (heap-buffer-overflow).
TEST(FuzzFindings, PadLikeChecksEveryAxis) {
  xgrad::Graph<double> g;
  auto block = g.parameter("block", xt::zeros<double>({2, 1}));
  auto ref = g.parameter("ref", xt::zeros<double>({4, 3}));
  EXPECT_THROW(xgrad::pad_like(block, ref, 0, 1), xgrad::ShapeError);
  auto x = g.input("x", {xgrad::open, xgrad::open});  // checked only at run time
  auto r = g.input("r", {xgrad::open, 3});
  auto f = xgrad::compile({xgrad::pad_like(x, r, 0, 0)});
  const xt::xarray<double> xv = xt::ones<double>({1, 1}), rv = xt::zeros<double>({2, 3});
  try {
    f.run({{x, xv}, {r, rv}});
    ADD_FAILURE() << "a (1, 1) block accepted into (2, 3) along axis 0";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "does not fit")) << e.what();
  }
  const auto ok =
      xgrad::eval(xgrad::pad_like(g.parameter("b", xt::ones<double>({2, 3})), ref, 0, 1));
  EXPECT_EQ(ok(0, 0), 0.0);
  EXPECT_EQ(ok(1, 2), 1.0);
}

// fuzz_graph: transpose axes below -rank (still negative after the builder added the rank
// once) passed the permutation check and indexed before the shape.
TEST(FuzzFindings, TransposeAxesBelowMinusRankAreRefused) {
  xgrad::Graph<double> g;
  auto p = g.parameter("p", xt::zeros<double>({2, 3}));
  EXPECT_THROW(xgrad::transpose(p, {-4, 1}), xgrad::ShapeError);
  EXPECT_EQ(xgrad::transpose(p, {-1, -2}).shape(), (xgrad::Shape{3, 2}));
}

// fuzz_graph (tests/fuzz/findings/graph-broadcast_to-empty-batch): broadcast_like(x, ref)
// with ref (1, 3) and an input x of open batch extent, run with a batch of 0 rows, read
// x's (null) data: the run-time shapes were checked only in the static (broadcast_to) form.
TEST(FuzzFindings, BroadcastLikeOfAnEmptyBatchIsAShapeError) {
  xgrad::Graph<double> g;
  auto x = g.input("x", {xgrad::open, 3});
  auto ref = g.parameter("ref", xt::zeros<double>({1, 3}));
  auto f = xgrad::compile({xgrad::broadcast_like(x, ref)});
  const xt::xarray<double> empty = xt::zeros<double>({0, 3});
  EXPECT_THROW(f.run({{x, empty}}), xgrad::ShapeError);
}

// fuzz_graph (tests/fuzz/findings/graph-scatter_add_rows-row-count): scatter_add_rows
// checked only the ranks of its rows and reference, so rows narrower than the reference's
// rows, or fewer rows than indices, were read past their end.
TEST(FuzzFindings, ScatterAddRowsRefusesRowsThatDoNotFit) {
  xgrad::Graph<double> g;
  auto ref = g.parameter("ref", xt::zeros<double>({4, 3}));
  auto idx = g.constant(xt::xarray<double>{0, 2});
  EXPECT_THROW(xgrad::scatter_add_rows(g.parameter("narrow", xt::zeros<double>({2, 2})), idx, ref),
               xgrad::ShapeError);
  EXPECT_THROW(xgrad::scatter_add_rows(g.parameter("few", xt::zeros<double>({1, 3})), idx, ref),
               xgrad::ShapeError);
  auto x = g.input("x", {xgrad::open, 3});
  auto f = xgrad::compile({xgrad::scatter_add_rows(x, idx, ref)});
  EXPECT_THROW(f.run({{x, xt::xarray<double>(xt::zeros<double>({1, 3}))}}), xgrad::ShapeError);
  const auto& out = f.run({{x, xt::xarray<double>(xt::ones<double>({2, 3}))}});
  EXPECT_EQ(out[0](2, 1), 1.0);
  EXPECT_EQ(out[0](1, 1), 0.0);
}

// fuzz_npy: a (2, 0) file has rows of no bytes; gathering them passed the (null) start of
// the empty data region and output to memcpy, which a null pointer may not reach even for
// 0 bytes (UBSan). Rows of no elements are gathered as nothing, in every read path.
TEST(FuzzFindings, RowsOfNoElementsGatherAsNothing) {
  xgrad_test::TempDir dir;
  const std::string p = dir.file("empty_rows.npy");
  xgrad::data::save_npy(p, xt::xarray<double>(xt::zeros<double>({2, 0})));
  const auto f = xgrad::data::ArrayFile::open_npy(p);
  ASSERT_EQ(f.rows(), 2u);
  EXPECT_EQ(f.row_elements(), 0u);
  const std::vector<std::size_t> rows{0, 1, 1, 0};
  f.gather<double>(rows, nullptr);  // nothing to write: no output buffer needed
  f.gather<float>(rows, nullptr);   // the converting path too
  EXPECT_THROW(f.gather<double>(std::vector<std::size_t>{2}, nullptr), xgrad::data::DataError);
  EXPECT_EQ(xgrad::data::load_npy<double>(p).shape(), (std::vector<std::size_t>{2, 0}));
  const std::string t = dir.file("targets.npy");
  xgrad::data::save_npy(t, xt::xarray<double>{1.0, 2.0});
  const xgrad::data::NpyDataset<double> ds(p, t);
  const auto batch = ds.gather(rows);
  EXPECT_EQ(batch.features.shape(), (std::vector<std::size_t>{4, 0}));
  EXPECT_EQ(batch.targets, (xt::xarray<double>{1.0, 2.0, 2.0, 1.0}));
}

// fuzz_npy: load_npy of a (0, 10000004272) header sized its read buffer for one row (80 GB)
// although there are no rows to read: an allocation failure instead of an empty array.
TEST(FuzzFindings, NoRowsOfHugeRowsLoadWithoutABuffer) {
  xgrad_test::TempDir dir;
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 10000004272), }";
  header.resize(117, ' ');
  header += '\n';
  const std::string p = dir.write("huge_rows.npy", std::string("\x93NUMPY\x01\x00", 8) +
                                                       std::string(1, char(header.size())) +
                                                       std::string(1, '\0') + header);
  const auto f = xgrad::data::ArrayFile::open_npy(p);
  EXPECT_EQ(f.rows(), 0u);
  EXPECT_EQ(f.row_elements(), 10000004272u);
  const auto a = xgrad::data::load_npy<double>(p);
  EXPECT_EQ(a.shape(), (std::vector<std::size_t>{0, 10000004272}));
  EXPECT_EQ(a.size(), 0u);
}

}  // namespace
