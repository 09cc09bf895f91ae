// Every error xgrad raises: its type, that it derives from xgrad::Error, and that its
// message names what a user needs to find the problem (op, node names, shapes).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>
#include <xgrad/xgrad.hpp>

namespace {

using xgrad::Graph;

static_assert(std::is_base_of_v<xgrad::Error, xgrad::ShapeError>);
static_assert(std::is_base_of_v<xgrad::Error, xgrad::BindingError>);
static_assert(std::is_base_of_v<xgrad::Error, xgrad::ValueError>);
static_assert(std::is_base_of_v<xgrad::Error, xgrad::GraphError>);
static_assert(std::is_base_of_v<std::runtime_error, xgrad::Error>);

/// Message check in the style of EXPECT_THAT(msg, HasSubstr(sub)), without gmock.
::testing::AssertionResult HasSubstr(const std::string& msg, const std::string& sub) {
  if (msg.find(sub) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "message \"" << msg << "\" lacks \"" << sub << "\"";
}

/// Runs f, expects an exception of type E, and returns its message. Also checks that E
/// is caught through the common base xgrad::Error.
template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const xgrad::Error& base) {
    const E* e = dynamic_cast<const E*>(&base);
    EXPECT_NE(e, nullptr) << "wrong error type, message: " << base.what();
    std::string msg = base.what();
    EXPECT_TRUE(HasSubstr(msg, "xgrad: "));
    return msg;
  } catch (const std::exception& other) {
    ADD_FAILURE() << "not an xgrad::Error: " << other.what();
    return {};
  }
  ADD_FAILURE() << "no exception thrown";
  return {};
}

// Every error says where it comes from; message() is the text without that prefix, as
// messages that quote another error use it.
TEST(ErrorsBase, MessageIsWhatWithoutThePrefix) {
  try {
    Graph<double> g;
    auto a = g.input("a", {2});
    auto b = g.input("b", {3});
    (void)(a + b);
    FAIL() << "no error";
  } catch (const xgrad::ShapeError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("xgrad: ", 0), 0u) << what;
    EXPECT_EQ(e.message(), what.substr(7));
    EXPECT_NE(e.message().find("add"), std::string::npos) << e.message();
  }
  EXPECT_EQ(xgrad::ValueError("a label out of range").message(), "a label out of range");
}

TEST(ErrorsShape, AddMismatchNamesOpShapesAndNodes) {
  Graph<double> g;
  auto a = g.input("a", {2, 3});
  auto b = g.input("b", {4});
  std::string msg = message_of<xgrad::ShapeError>([&] { (void)(a + b); });
  EXPECT_TRUE(HasSubstr(msg, "add"));
  EXPECT_TRUE(HasSubstr(msg, "(2, 3)"));
  EXPECT_TRUE(HasSubstr(msg, "(4,)"));
  EXPECT_TRUE(HasSubstr(msg, "'a'"));
  EXPECT_TRUE(HasSubstr(msg, "'b'"));
  // Nothing was added to the graph.
  std::size_t n = g.size();
  EXPECT_THROW((void)(a * b), xgrad::ShapeError);
  EXPECT_EQ(g.size(), n);
}

TEST(ErrorsShape, MatmulInnerDimension) {
  Graph<double> g;
  auto A = g.input("A", {2, 3});
  auto B = g.input("B", {4, 5});
  std::string msg = message_of<xgrad::ShapeError>([&] { (void)xgrad::matmul(A, B); });
  EXPECT_TRUE(HasSubstr(msg, "matmul"));
  EXPECT_TRUE(HasSubstr(msg, "inner"));
  EXPECT_TRUE(HasSubstr(msg, "3 vs 4"));
  EXPECT_TRUE(HasSubstr(msg, "'A'"));
  EXPECT_TRUE(HasSubstr(msg, "'B'"));
  // With the transpose flag the fitting product builds; a batch of matrices on the left
  // does too (a shared right matrix), but not on the right, nor a 4-d operand.
  EXPECT_NO_THROW((void)xgrad::matmul(A, g.input("C", {2, 7}), true));
  auto T3 = g.input("T3", {2, 2, 2});
  EXPECT_NO_THROW((void)xgrad::matmul(T3, A));
  EXPECT_THROW((void)xgrad::matmul(A, T3), xgrad::ShapeError);
  EXPECT_THROW((void)xgrad::matmul(g.input("T4", {2, 2, 2, 2}), A), xgrad::ShapeError);
}

TEST(ErrorsShape, RuntimeMismatchNamesOpAndRuntimeShapes) {
  Graph<double> g;
  auto a = g.input("a", {xgrad::open, 3});
  auto b = g.input("b", {xgrad::open, 3});
  auto s = (a + b).named("s");  // fine statically: both batches are open
  auto f = xgrad::compile({xgrad::sum(s)});
  xt::xarray<double> av = xt::ones<double>({2, 3});
  xt::xarray<double> bv = xt::ones<double>({5, 3});
  std::string msg = message_of<xgrad::ShapeError>([&] { f.run({{a, av}, {b, bv}}); });
  EXPECT_TRUE(HasSubstr(msg, "add"));
  EXPECT_TRUE(HasSubstr(msg, "'s'"));
  EXPECT_TRUE(HasSubstr(msg, "'a'"));
  EXPECT_TRUE(HasSubstr(msg, "'b'"));
  EXPECT_TRUE(HasSubstr(msg, "(2, 3)"));
  EXPECT_TRUE(HasSubstr(msg, "(5, 3)"));
  // The same mismatch fails again.
  msg = message_of<xgrad::ShapeError>([&] { f.run({{a, av}, {b, bv}}); });
  EXPECT_TRUE(HasSubstr(msg, "(5, 3)"));
  // Matching batches still run afterwards.
  xt::xarray<double> bv2 = xt::ones<double>({2, 3});
  EXPECT_DOUBLE_EQ(f.run({{a, av}, {b, bv2}})[0](), 12.0);
}

TEST(ErrorsShape, RuntimeMatmulAndCrossEntropyRows) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, xgrad::open});
  auto w = g.input("w", {xgrad::open});
  auto f = xgrad::compile({xgrad::matmul(X, w).named("Xw")});
  xt::xarray<double> xv = xt::ones<double>({2, 3});
  xt::xarray<double> wv = xt::ones<double>({4});
  std::string msg = message_of<xgrad::ShapeError>([&] { f.run({{X, xv}, {w, wv}}); });
  EXPECT_TRUE(HasSubstr(msg, "matmul"));
  EXPECT_TRUE(HasSubstr(msg, "'Xw'"));
  EXPECT_TRUE(HasSubstr(msg, "(2, 3)"));
  EXPECT_TRUE(HasSubstr(msg, "(4,)"));

  auto logits = g.input("logits", {xgrad::open, 3});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto fc = xgrad::compile({xgrad::cross_entropy(logits, labels).named("ce")});
  xt::xarray<double> lv = xt::zeros<double>({2, 3});
  std::vector<std::int64_t> yv = {0, 1, 2};
  msg = message_of<xgrad::ShapeError>([&] { fc.run({{logits, lv}, {labels, yv}}); });
  EXPECT_TRUE(HasSubstr(msg, "cross_entropy"));
  EXPECT_TRUE(HasSubstr(msg, "'ce'"));
  EXPECT_TRUE(HasSubstr(msg, "(3,)"));
}

TEST(ErrorsBinding, UnboundInputNamesIt) {
  Graph<double> g;
  auto a = g.input("alpha", {2});
  auto b = g.input("beta_in", {2});
  auto f = xgrad::compile({a * b});
  xt::xarray<double> av = {1.0, 2.0};
  std::string msg = message_of<xgrad::BindingError>([&] { f.run({{a, av}}); });
  EXPECT_TRUE(HasSubstr(msg, "'beta_in'"));
  EXPECT_TRUE(HasSubstr(msg, "not bound"));
  msg = message_of<xgrad::BindingError>([&] { f.run(); });
  EXPECT_TRUE(HasSubstr(msg, "not bound"));
}

TEST(ErrorsBinding, WrongDtype) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto f = xgrad::compile({x * 2.0});
  xt::xarray<float> xf = {1.f, 2.f};
  std::string msg = message_of<xgrad::BindingError>([&] { f.run({{x, xf}}); });
  EXPECT_TRUE(HasSubstr(msg, "'x'"));
  EXPECT_TRUE(HasSubstr(msg, "float64"));
  EXPECT_TRUE(HasSubstr(msg, "float32"));

  std::vector<std::int64_t> xi = {1, 2};
  msg = message_of<xgrad::BindingError>([&] { f.run({{x, xi}}); });
  EXPECT_TRUE(HasSubstr(msg, "int64"));

  // Integer inputs take integers only.
  auto labels = g.input("labels", {2}, xgrad::DType::int64);
  auto fl = xgrad::compile({labels * 1.5});
  xt::xarray<double> ld = {0.0, 1.0};
  msg = message_of<xgrad::BindingError>([&] { fl.run({{labels, ld}}); });
  EXPECT_TRUE(HasSubstr(msg, "'labels'"));
  EXPECT_TRUE(HasSubstr(msg, "int64"));
  EXPECT_TRUE(HasSubstr(msg, "float64"));
}

TEST(ErrorsBinding, WrongRankOrExtent) {
  Graph<double> g;
  auto x = g.input("x", {xgrad::open, 3});
  auto f = xgrad::compile({xgrad::sum(x)});
  xt::xarray<double> v1 = {1.0, 2.0, 3.0};
  std::string msg = message_of<xgrad::BindingError>([&] { f.run({{x, v1}}); });
  EXPECT_TRUE(HasSubstr(msg, "'x'"));
  EXPECT_TRUE(HasSubstr(msg, "(3,)"));
  EXPECT_TRUE(HasSubstr(msg, "(?, 3)"));

  xt::xarray<double> v24 = xt::ones<double>({2, 4});
  msg = message_of<xgrad::BindingError>([&] { f.run({{x, v24}}); });
  EXPECT_TRUE(HasSubstr(msg, "(2, 4)"));

  msg = message_of<xgrad::BindingError>([&] { f.run({{x, 1.0}}); });
  EXPECT_TRUE(HasSubstr(msg, "()"));
}

// After a good run, a run whose plan fails must not leave the old plan looking valid for
// the new shapes.
TEST(ErrorsShape, FailedPlanIsNotReused) {
  Graph<double> g;
  auto a = g.input("a", {xgrad::open, 3});
  auto b = g.input("b", {xgrad::open, 3});
  auto f = xgrad::compile({xgrad::sum(a + b)});
  xt::xarray<double> a2 = xt::ones<double>({2, 3});
  xt::xarray<double> b5 = xt::ones<double>({5, 3});
  EXPECT_DOUBLE_EQ(f.run({{a, a2}, {b, a2}})[0](), 12.0);
  EXPECT_THROW(f.run({{a, a2}, {b, b5}}), xgrad::ShapeError);
  EXPECT_THROW(f.run({{a, a2}, {b, b5}}), xgrad::ShapeError);  // not a stale plan
  EXPECT_DOUBLE_EQ(f.run({{a, a2}, {b, a2}})[0](), 12.0);
}

// A binding error raised after an earlier feed of the same run changed shape must not
// leave the Function believing it is planned for that shape.
TEST(ErrorsBinding, FailedBindingDoesNotCorruptThePlan) {
  Graph<double> g;
  auto x = g.input("x", {xgrad::open});
  auto s = g.input("s", {});
  auto y = x * s;
  auto f = xgrad::compile({y, xgrad::sum(y)});
  std::vector<double> x2 = {1.0, 2.0};
  std::vector<double> x5 = {1.0, 2.0, 3.0, 4.0, 5.0};
  EXPECT_EQ(f.run({{x, x2}, {s, 2.0}})[0], (xt::xarray<double>{2.0, 4.0}));
  EXPECT_THROW(f.run({{x, x5}, {s, 2.0f}}), xgrad::BindingError);  // wrong dtype for s
  const auto& r = f.run({{x, x5}, {s, 2.0}});
  EXPECT_EQ(r[0], (xt::xarray<double>{2.0, 4.0, 6.0, 8.0, 10.0}));
  EXPECT_DOUBLE_EQ(r[1](), 30.0);
}

// Runs that repeat the last binding's inputs skip the checks that binding passed: every
// check must still fire when anything about the feeds differs from the good runs before.
TEST(ErrorsBinding, ChecksStillRunAfterGoodRuns) {
  Graph<double> g, other;
  auto x = g.input("x", {xgrad::open, 2});
  auto s = g.input("s", {});
  auto unused = g.input("unused", {1});
  auto y = xgrad::sum(x) * s;
  auto f = xgrad::compile({y});
  auto ox = other.input("x", {xgrad::open, 2});
  xt::xarray<double> x12 = {{1.0, 2.0}}, x22 = {{1.0, 2.0}, {3.0, 4.0}}, u = {0.0};
  xt::xarray<double, xt::layout_type::column_major> cm = {{1, 2}, {3, 4}};
  xt::xarray<float> xf = {{1.f, 2.f}};
  auto good = [&] {
    EXPECT_DOUBLE_EQ(f.run({{x, x12}, {s, 2.0}})[0](), 6.0);
    EXPECT_DOUBLE_EQ(f.run({{x, x12}, {s, 2.0}})[0](), 6.0);
  };
  good();
  EXPECT_THROW(f.run({{x, xf}, {s, 2.0}}), xgrad::BindingError);  // dtype
  good();
  EXPECT_TRUE(HasSubstr(message_of<xgrad::BindingError>([&] {
                          f.run({{x, cm}, {s, 2.0}});
                        }),
                        "row-major"));
  good();
  EXPECT_THROW(f.run({{x, x12}, {s, 2.0f}}), xgrad::BindingError);  // dtype of the scalar
  good();
  EXPECT_THROW(f.run({{ox, x12}, {s, 2.0}}), xgrad::BindingError);  // another graph
  good();
  EXPECT_THROW(f.run({{x, x12}, {x, x12}}), xgrad::BindingError);  // bound twice
  good();
  EXPECT_THROW(f.run({{x, x12}, {xgrad::Expr<double>(), 2.0}}), xgrad::BindingError);  // invalid
  good();
  EXPECT_THROW(f.run({{x, x12}}), xgrad::BindingError);  // s unbound
  good();
  EXPECT_THROW(f.run({{x, u}, {s, 2.0}}), xgrad::BindingError);  // rank
  good();
  // Same inputs in another order, an extra input the outputs do not read, a new shape.
  EXPECT_DOUBLE_EQ(f.run({{s, 3.0}, {x, x12}})[0](), 9.0);
  EXPECT_DOUBLE_EQ(f.run({{s, 3.0}, {unused, u}, {x, x22}})[0](), 30.0);
  EXPECT_DOUBLE_EQ(f.run({{s, 3.0}, {unused, u}, {x, x22}})[0](), 30.0);
  EXPECT_THROW(f.run({{s, 3.0}, {unused, u}, {x, xf}}), xgrad::BindingError);
  good();

  // Integer inputs convert the new values every run, whichever integer type they come in.
  auto labels = g.input("labels", {2}, xgrad::DType::int64);
  auto fl = xgrad::compile({xgrad::sum(labels * 1.5)});
  std::vector<std::int64_t> l64 = {1, 2};
  std::vector<std::int32_t> l32 = {3, 4};
  EXPECT_DOUBLE_EQ(fl.run({{labels, l64}})[0](), 4.5);
  l64 = {2, 2};
  EXPECT_DOUBLE_EQ(fl.run({{labels, l64}})[0](), 6.0);
  EXPECT_DOUBLE_EQ(fl.run({{labels, l32}})[0](), 10.5);
  EXPECT_DOUBLE_EQ(fl.run({{labels, l64}})[0](), 6.0);
}

TEST(ErrorsBinding, ColumnMajorValueIsRejected) {
  Graph<double> g;
  auto x = g.input("x", {2, 2});
  auto f = xgrad::compile({xgrad::sum(x)});
  xt::xarray<double, xt::layout_type::column_major> cm = {{1, 2}, {3, 4}};
  std::string msg = message_of<xgrad::BindingError>([&] { f.run({{x, cm}}); });
  EXPECT_TRUE(HasSubstr(msg, "row-major"));
}

TEST(ErrorsBinding, BindingAParameterOrOpThrows) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto w = g.parameter("w", xt::xarray<double>{1.0, 2.0});
  auto y = (x * w).named("y");
  auto f = xgrad::compile({y});
  xt::xarray<double> v = {1.0, 1.0};
  std::string msg = message_of<xgrad::BindingError>([&] { f.run({{x, v}, {w, v}}); });
  EXPECT_TRUE(HasSubstr(msg, "'w'"));
  EXPECT_TRUE(HasSubstr(msg, "not an input"));
  msg = message_of<xgrad::BindingError>([&] { f.run({{x, v}, {y, v}}); });
  EXPECT_TRUE(HasSubstr(msg, "'y'"));
}

TEST(ErrorsValue, CrossEntropyLabelOutOfRangeNamesNode) {
  Graph<double> g;
  auto logits = g.input("logits", {xgrad::open, 3});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto ce = xgrad::cross_entropy(logits, labels).named("ce_loss");
  auto f = xgrad::compile({ce});
  xt::xarray<double> z = {{1, 2, 3}, {0, 0, 0}};
  std::vector<std::int64_t> bad = {0, 3};
  std::string msg = message_of<xgrad::ValueError>([&] { f.run({{logits, z}, {labels, bad}}); });
  EXPECT_TRUE(HasSubstr(msg, "'ce_loss'"));
  EXPECT_TRUE(HasSubstr(msg, "cross_entropy"));
  EXPECT_TRUE(HasSubstr(msg, "label 3"));
  EXPECT_TRUE(HasSubstr(msg, "row 1"));
  EXPECT_TRUE(HasSubstr(msg, "[0, 3)"));

  std::vector<std::int64_t> neg = {-1, 0};
  msg = message_of<xgrad::ValueError>([&] { f.run({{logits, z}, {labels, neg}}); });
  EXPECT_TRUE(HasSubstr(msg, "label -1"));

  std::vector<std::int64_t> good = {2, 0};
  double expect =
      (std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0 + std::log(3.0)) / 2;
  EXPECT_NEAR(f.run({{logits, z}, {labels, good}})[0](), expect, 1e-12);
}

TEST(ErrorsValue, OneHotAndOtherDomains) {
  Graph<double> g;
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto oh = xgrad::one_hot(labels, 2).named("oh");
  auto f = xgrad::compile({oh});
  std::vector<std::int64_t> bad = {0, 2};
  std::string msg = message_of<xgrad::ValueError>([&] { f.run({{labels, bad}}); });
  EXPECT_TRUE(HasSubstr(msg, "'oh'"));

  msg = message_of<xgrad::ValueError>([&] { (void)xgrad::one_hot(labels, 0); });
  EXPECT_TRUE(HasSubstr(msg, "depth"));
  auto x = g.input("x", {2});
  msg = message_of<xgrad::ValueError>([&] { (void)xgrad::clamp(x, 1.0, -1.0); });
  EXPECT_TRUE(HasSubstr(msg, "'x'"));
  message_of<xgrad::ValueError>([&] { (void)xgrad::concatenate<double>({}); });
}

TEST(ErrorsShape, ReshapeIncompatibleSize) {
  Graph<double> g;
  auto x = g.input("x", {2, 3});
  std::string msg = message_of<xgrad::ShapeError>([&] { (void)xgrad::reshape(x, {4, 2}); });
  EXPECT_TRUE(HasSubstr(msg, "reshape"));
  EXPECT_TRUE(HasSubstr(msg, "(2, 3)"));
  EXPECT_TRUE(HasSubstr(msg, "(4, 2)"));
  EXPECT_TRUE(HasSubstr(msg, "'x'"));
  msg = message_of<xgrad::ShapeError>([&] { (void)xgrad::reshape(x, {-1, 4}); });
  EXPECT_TRUE(HasSubstr(msg, "reshape"));
  message_of<xgrad::ShapeError>([&] { (void)xgrad::reshape(x, {-1, -1}); });
  EXPECT_EQ(xgrad::reshape(x, {3, -1}).shape(), (xgrad::Shape{3, 2}));

  // With an open batch the element count is only checked at run time.
  auto b = g.input("b", {xgrad::open, 3});
  auto r = xgrad::reshape(b, {-1, 2}).named("r");
  auto f = xgrad::compile({r});
  xt::xarray<double> ok = xt::ones<double>({2, 3});
  EXPECT_EQ(f.run({{b, ok}})[0].shape(), (std::vector<std::size_t>{3, 2}));
  xt::xarray<double> odd = xt::ones<double>({3, 3});
  msg = message_of<xgrad::ShapeError>([&] { f.run({{b, odd}}); });
  EXPECT_TRUE(HasSubstr(msg, "reshape"));
  EXPECT_TRUE(HasSubstr(msg, "'r'"));
  EXPECT_TRUE(HasSubstr(msg, "(3, 3)"));
}

TEST(ErrorsShape, BadAxisForSum) {
  Graph<double> g;
  auto x = g.input("x", {2, 3});
  std::string msg = message_of<xgrad::ShapeError>([&] { (void)xgrad::sum(x, {2}); });
  EXPECT_TRUE(HasSubstr(msg, "sum"));
  EXPECT_TRUE(HasSubstr(msg, "axis 2"));
  EXPECT_TRUE(HasSubstr(msg, "rank 2"));
  EXPECT_TRUE(HasSubstr(msg, "'x'"));
  msg = message_of<xgrad::ShapeError>([&] { (void)xgrad::sum(x, {-3}); });
  EXPECT_TRUE(HasSubstr(msg, "axis -3"));
  msg = message_of<xgrad::ShapeError>([&] { (void)xgrad::mean(x, {0, -2}); });
  EXPECT_TRUE(HasSubstr(msg, "repeated"));
  message_of<xgrad::ShapeError>([&] { (void)xgrad::softmax(x, 5); });
  message_of<xgrad::ShapeError>([&] { (void)xgrad::max(x, {7}); });
  EXPECT_EQ(xgrad::sum(x, {-1}).shape(), (xgrad::Shape{2}));
}

TEST(ErrorsShape, GradOfNonScalarNeedsCotangent) {
  Graph<double> g;
  auto x = g.input("x", {3});
  auto y = (x * 2.0).named("y");
  std::string msg = message_of<xgrad::ShapeError>([&] { (void)xgrad::grad(y, {x}); });
  EXPECT_TRUE(HasSubstr(msg, "'y'"));
  EXPECT_TRUE(HasSubstr(msg, "not a scalar"));
  EXPECT_TRUE(HasSubstr(msg, "cotangent"));

  // A cotangent of the wrong shape is also a ShapeError; a right one works.
  auto c2 = g.constant(xt::xarray<double>{1.0, 1.0}, "c2");
  message_of<xgrad::ShapeError>([&] { (void)xgrad::grad(y, {x}, c2); });
  auto c3 = g.constant(xt::xarray<double>{1.0, 2.0, 3.0}, "c3");
  auto vjp = xgrad::grad(y, {x}, c3)[0];
  EXPECT_EQ(xgrad::eval(vjp, {{x, xt::xarray<double>{0, 0, 0}}}),
            (xt::xarray<double>{2.0, 4.0, 6.0}));
  // A (1, 1)-shaped y counts as a scalar.
  auto m = g.input("m", {1, 1});
  EXPECT_NO_THROW((void)xgrad::grad(m * 3.0, {m}));
}

TEST(ErrorsGraph, UnconnectedGradient) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto z = g.parameter("z", xt::xarray<double>{1.0, 1.0});
  auto y = xgrad::sum(x * x).named("y");
  std::string msg = message_of<xgrad::GraphError>([&] { (void)xgrad::grad(y, {z}); });
  EXPECT_TRUE(HasSubstr(msg, "'y'"));
  EXPECT_TRUE(HasSubstr(msg, "'z'"));
  xgrad::GradOptions opts;
  opts.allow_unconnected = true;
  auto dz = xgrad::grad(y, {z}, opts)[0];
  EXPECT_EQ(xgrad::eval(dz), (xt::xarray<double>{0.0, 0.0}));
}

TEST(ErrorsGraph, MixingTwoGraphs) {
  Graph<double> g1, g2;
  auto a = g1.input("a", {2});
  auto b = g2.input("b", {2});
  std::string msg = message_of<xgrad::GraphError>([&] { (void)(a + b); });
  EXPECT_TRUE(HasSubstr(msg, "add"));
  EXPECT_TRUE(HasSubstr(msg, "different graphs"));
  message_of<xgrad::GraphError>([&] { (void)xgrad::matmul(a, b); });
  message_of<xgrad::GraphError>([&] { (void)xgrad::cross_entropy(a, b); });
  message_of<xgrad::GraphError>([&] { (void)xgrad::concatenate<double>({a, b}); });
  message_of<xgrad::GraphError>([&] { (void)xgrad::compile({a, b}); });
  message_of<xgrad::GraphError>([&] { (void)xgrad::grad(xgrad::sum(a), {b}); });
  message_of<xgrad::GraphError>(
      [&] { (void)g1.value(g2.parameter("p", xt::xarray<double>(1.0))); });
  auto f = xgrad::compile({a * 2.0});
  xt::xarray<double> v = {1.0, 2.0};
  msg = message_of<xgrad::BindingError>([&] { f.run({{a, v}, {b, v}}); });
  EXPECT_TRUE(HasSubstr(msg, "another graph"));
}

TEST(ErrorsGraph, CompileWithoutOutputsAndBadInputs) {
  Graph<double> g;
  message_of<xgrad::GraphError>([&] { (void)xgrad::compile(std::vector<xgrad::Expr<double>>{}); });
  std::string msg = message_of<xgrad::ShapeError>([&] { (void)g.input("bad", {-2, 3}); });
  EXPECT_TRUE(HasSubstr(msg, "'bad'"));
  msg = message_of<xgrad::ShapeError>(
      [&] { (void)g.input("deep", xgrad::Shape(xgrad::max_rank + 1, 1)); });
  EXPECT_TRUE(HasSubstr(msg, "rank"));
}

TEST(Errors, AllCatchableByBase) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto y = g.input("y", {3});
  EXPECT_THROW((void)(x + y), xgrad::Error);
  EXPECT_THROW((void)xgrad::sum(x, {4}), xgrad::Error);
  auto f = xgrad::compile({x * 2.0});
  EXPECT_THROW(f.run(), xgrad::Error);
  EXPECT_THROW((void)xgrad::grad(x * 2.0, {x}), xgrad::Error);
  EXPECT_THROW((void)xgrad::one_hot(x, -1), xgrad::Error);
  EXPECT_THROW(g.value(x), xgrad::Error);
  EXPECT_THROW((void)(x + y), std::runtime_error);
}

}  // namespace
