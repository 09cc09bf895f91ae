// Formulas (to_string) and Graphviz drawings (to_dot), including a real render with dot.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace {

using xgrad::Graph;

using xgrad_test::contains;

TEST(PrintFormula, DerivativeOfSeedPolynomial) {
  Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(1.5));
  auto f = xgrad::pow(x, 2.0) + 2.0 * x + 3.0;
  EXPECT_EQ(xgrad::to_string(f), "x^2 + 2*x + 3");
  auto df = xgrad::grad(f, {x})[0];
  EXPECT_EQ(xgrad::to_string(df), "2*x + 2");

  // x*x and square(x) give the same printed derivative.
  auto f2 = x * x + 2.0 * x + 3.0;
  EXPECT_EQ(xgrad::to_string(xgrad::grad(f2, {x})[0]), "2*x + 2");
  auto f3 = xgrad::square(x) + 2.0 * x + 3.0;
  EXPECT_EQ(xgrad::to_string(xgrad::grad(f3, {x})[0]), "2*x + 2");
  // The same holds for an input instead of a parameter.
  auto u = g.input("u", {});
  EXPECT_EQ(xgrad::to_string(xgrad::grad(xgrad::pow(u, 2.0) + 2.0 * u + 3.0, {u})[0]), "2*u + 2");
}

TEST(PrintFormula, PrecedenceAndParentheses) {
  Graph<double> g;
  auto a = g.input("a", {});
  auto b = g.input("b", {});
  auto c = g.input("c", {});
  EXPECT_EQ(xgrad::to_string((a + b) * c), "(a + b)*c");
  EXPECT_EQ(xgrad::to_string(c * (a + b)), "c*(a + b)");
  EXPECT_EQ(xgrad::to_string(a + b * c), "a + b*c");
  EXPECT_EQ(xgrad::to_string(a * b + c), "a*b + c");
  EXPECT_EQ(xgrad::to_string(a - (b - c)), "a - (b - c)");
  EXPECT_EQ(xgrad::to_string((a - b) - c), "a - b - c");
  EXPECT_EQ(xgrad::to_string(a - (b + c)), "a - (b + c)");
  EXPECT_EQ(xgrad::to_string(a + (b + c)), "a + b + c");
  EXPECT_EQ(xgrad::to_string(-(a + b)), "-(a + b)");
  EXPECT_EQ(xgrad::to_string(-(a * b)), "-a*b");  // -(a*b) = (-a)*b: no parentheses
  EXPECT_EQ(xgrad::to_string(-a), "-a");
  EXPECT_EQ(xgrad::to_string(a / (b * c)), "a/(b*c)");
  EXPECT_EQ(xgrad::to_string(a / (b / c)), "a/(b/c)");
  EXPECT_EQ(xgrad::to_string((a / b) / c), "a/b/c");
  EXPECT_EQ(xgrad::to_string(xgrad::pow(a + b, 2.0)), "(a + b)^2");
  EXPECT_EQ(xgrad::to_string(xgrad::pow(a * b, 3.0)), "(a*b)^3");
  EXPECT_EQ(xgrad::to_string(xgrad::exp(a + b)), "exp(a + b)");
  EXPECT_EQ(xgrad::to_string(xgrad::sin(a) * xgrad::cos(b)), "sin(a)*cos(b)");
  EXPECT_EQ(xgrad::to_string(3.0 * a), "3*a");
  EXPECT_EQ(xgrad::to_string(a * 3.0), "3*a");  // scalars move to the left
  EXPECT_EQ(xgrad::to_string(a + 1.5), "a + 1.5");
  EXPECT_EQ(xgrad::to_string(2.0 + a), "a + 2");  // constants move to the right of a sum
}

TEST(PrintFormula, MatmulTransposeAndReductions) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto beta = g.parameter("beta", xt::xarray<double>{1, 2, 3});
  auto y = g.input("y", {xgrad::open});
  EXPECT_EQ(xgrad::to_string(xgrad::matmul(X, beta)), "X @ beta");
  EXPECT_EQ(xgrad::to_string(y - xgrad::matmul(X, beta)), "y - X @ beta");
  auto W = g.input("W", {3, 3});
  EXPECT_EQ(xgrad::to_string(xgrad::matmul(W, W, true, false)), "W^T @ W");
  EXPECT_EQ(xgrad::to_string(xgrad::sum(X)), "sum(X)");
  EXPECT_EQ(xgrad::to_string(xgrad::sum(X, {1})), "sum(X, axes=(1,))");
  EXPECT_EQ(xgrad::to_string(xgrad::transpose(W)), "W^T");
}

TEST(PrintFormula, LeakyReluShowsItsSlope) {
  Graph<double> g;
  auto x = g.input("x", {3});
  EXPECT_EQ(xgrad::to_string(xgrad::leaky_relu(x)), "leaky_relu(x, 0.01)");
  EXPECT_EQ(xgrad::to_string(xgrad::leaky_relu(x, 0.2) + 1.0), "leaky_relu(x, 0.2) + 1");
  EXPECT_EQ(xgrad::to_string(2.0 * xgrad::leaky_relu(-x, 0.5)), "2*leaky_relu(-x, 0.5)");
  // Its derivative is a node of its own, with the same slope.
  auto w = g.parameter("w", xt::xarray<double>{1, 2, 3});
  auto d = xgrad::grad(xgrad::sum(xgrad::leaky_relu(w, 0.2)), {w})[0];
  EXPECT_EQ(xgrad::to_string(d), "leaky_step(w, 0.2)");
  // A float slope prints as written, not as its double expansion.
  Graph<float> gf;
  auto xf = gf.input("x", {3});
  EXPECT_EQ(xgrad::to_string(xgrad::leaky_relu(xf)), "leaky_relu(x, 0.01)");
  EXPECT_EQ(xgrad::to_string(xgrad::leaky_relu(xf, 0.3f)), "leaky_relu(x, 0.3)");
}

TEST(PrintFormula, NamedNodes) {
  Graph<double> g;
  auto a = g.input("a", {});
  auto b = g.input("b", {});
  auto c = g.input("c", {});
  auto t = (a + b).named("t");
  // A named intermediate is printed by its name.
  EXPECT_EQ(xgrad::to_string(t * c), "t*c");
  // The root shows its formula even when named.
  EXPECT_EQ(xgrad::to_string(t), "a + b");
  auto r = ((a - b) * c).named("r");
  EXPECT_EQ(xgrad::to_string(r), "(a - b)*c");
  EXPECT_EQ(xgrad::to_string((-(a * c)).named("n")), "-a*c");
}

TEST(PrintFormula, UnnamedLeaves) {
  Graph<double> g;
  auto x = g.input("", {2});
  auto c = g.constant(xt::xarray<double>{1, 2}, "");
  std::string s = xgrad::to_string(x * c);
  EXPECT_TRUE(contains(s, "#" + std::to_string(x.id()))) << s;
  EXPECT_TRUE(contains(s, "const(2,)")) << s;
}

// The lecture note's gradients print as the note derives them (issue 17). Before: the
// half sum of squares gave "X^T @ sum_to(-(y - X @ beta), shape(X @ beta))", the MSE
// "X^T @ sum_to(1/size(square(X @ beta - y))*2*(X @ beta - y), shape(X @ beta))".
TEST(PrintFormula, SeedGradientsReadLikeTheNote) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto y = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  auto pred = xgrad::matmul(X, beta);
  auto half_sse = xgrad::sum(xgrad::square(y - pred)) / 2.0;
  auto sse = xgrad::sum(xgrad::square(y - pred));
  auto mse = xgrad::mse(pred, y);
  auto rmse = xgrad::rmse(pred, y);
  auto d = [&](xgrad::Expr<double> f) { return xgrad::to_string(xgrad::grad(f, {beta})[0]); };
  EXPECT_EQ(xgrad::to_string(half_sse), "sum(square(y - X @ beta))/2");
  EXPECT_EQ(d(half_sse), "-X^T @ (y - X @ beta)");
  EXPECT_EQ(d(sse), "-2 * X^T @ (y - X @ beta)");
  EXPECT_EQ(xgrad::to_string(mse), "mean(square(y - X @ beta))");
  EXPECT_EQ(d(mse), "-2/n * X^T @ (y - X @ beta)");
  EXPECT_EQ(d(xgrad::mean(xgrad::square(y - pred))), "-2/n * X^T @ (y - X @ beta)");
  EXPECT_EQ(xgrad::to_string(rmse), "norm(y - X @ beta)/sqrt(n)");
  // ||r|| sqrt(n) = n rmse: the note's -X^T (y - X beta) / (n ||y - X beta|| / sqrt(n)).
  EXPECT_EQ(d(rmse), "-X^T @ (y - X @ beta) / (sqrt(n)*norm(y - X @ beta))");
  // The derivative of -f: "a + -b" reads "a - b". Before: "-2*x + -2".
  auto x = g.parameter("x", xt::xarray<double>(1.5));
  auto f = xgrad::pow(x, 2.0) + 2.0 * x + 3.0;
  EXPECT_EQ(xgrad::to_string(xgrad::grad(-f, {x})[0]), "-2*x - 2");
  // Only printing is simplified: the graph still holds the sum_to node.
  EXPECT_TRUE(contains(xgrad::to_dot(xgrad::grad(half_sse, {beta})[0]), "sum_to"));
}

TEST(PrintFormula, IdentitiesAndFactors) {
  Graph<double> g;
  auto a = g.input("a", {});
  auto b = g.input("b", {});
  auto v = g.input("v", {3});
  auto u = g.input("u", {xgrad::open, 3});
  EXPECT_EQ(xgrad::to_string(a - (-b)), "a + b");  // double negation
  EXPECT_EQ(xgrad::to_string(-(-(a * b))), "a*b");
  EXPECT_EQ(xgrad::to_string(-(2.0 * (3.0 * v))), "-6*v");
  EXPECT_EQ(xgrad::to_string(xgrad::broadcast_to(v, {3})), "v");
  EXPECT_EQ(xgrad::to_string(xgrad::broadcast_to(v, {2, 3})), "broadcast(v, (2, 3))");
  EXPECT_EQ(xgrad::to_string(xgrad::sum_to_like(u, v)), "sum_to(u, shape(v))");
  EXPECT_EQ(xgrad::to_string(xgrad::size_of(u)), "3*n");
  EXPECT_EQ(xgrad::to_string(xgrad::size_of(u, {0})), "n");
  EXPECT_EQ(xgrad::to_string(v / 3.0), "v/3");
  EXPECT_EQ(xgrad::to_string(xgrad::matmul(u, v) * (1.0 / 3.0)), "1/3 * u @ v");
}

TEST(PrintLatex, Formulas) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto y = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  auto pred = xgrad::matmul(X, beta);
  auto half_sse = xgrad::sum(xgrad::square(y - pred)) / 2.0;
  auto d = [&](xgrad::Expr<double> f) { return xgrad::to_latex(xgrad::grad(f, {beta})[0]); };
  EXPECT_EQ(xgrad::to_latex(half_sse), "\\frac{\\operatorname{sum}((y - X \\beta)^{2})}{2}");
  EXPECT_EQ(d(half_sse), "-X^\\top (y - X \\beta)");
  EXPECT_EQ(d(xgrad::mse(pred, y)), "-\\frac{2}{n} X^\\top (y - X \\beta)");
  auto rmse = xgrad::rmse(pred, y);
  EXPECT_EQ(xgrad::to_latex(rmse), "\\frac{\\lVert y - X \\beta \\rVert}{\\sqrt{n}}");
  EXPECT_EQ(d(rmse), "-\\frac{X^\\top (y - X \\beta)}{\\sqrt{n} \\lVert y - X \\beta \\rVert}");
  auto a = g.input("a", {});
  auto b = g.input("b", {});
  auto W1 = g.input("W1", {2, 2});
  auto lr = g.input("learning_rate", {});
  EXPECT_EQ(xgrad::to_latex(xgrad::pow(a + b, 2.0) + xgrad::exp(a)), "(a + b)^{2} + \\exp(a)");
  EXPECT_EQ(xgrad::to_latex(xgrad::matmul(W1, W1, true, false)), "W_{1}^\\top W_{1}");
  EXPECT_EQ(xgrad::to_latex(lr * xgrad::abs(a)),
            "\\mathrm{learning\\_rate} \\cdot \\lvert a \\rvert");
  EXPECT_EQ(xgrad::to_latex(xgrad::leaky_relu(a, 0.2)), "\\operatorname{leaky\\_relu}(a, 0.2)");
  EXPECT_EQ(xgrad::to_latex(a / (b * b)), "\\frac{a}{b \\cdot b}");
}

// Graphviz source of the seed's loss: node names, op names and shapes appear.
std::string seed_dot(Graph<double>& g) {
  auto X = g.input("X", {xgrad::open, 3});
  auto y = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  auto resid = (y - xgrad::matmul(X, beta)).named("residual");
  auto loss = (xgrad::sum(xgrad::square(resid)) / 2.0).named("loss");
  return xgrad::to_dot(loss);
}

TEST(PrintDot, ContainsNamesOpsAndShapes) {
  Graph<double> g;
  std::string dot = seed_dot(g);
  EXPECT_EQ(dot.rfind("digraph", 0), 0u) << dot;
  for (const char* part : {"X", "beta", "residual", "loss", "input", "parameter", "matmul", "sub",
                           "square", "sum", "div", "(?, 3)", "(3,)", "(?,)", "()", "->"}) {
    EXPECT_TRUE(contains(dot, part)) << "missing " << part << " in\n" << dot;
  }
  // Only the subgraph the node depends on is drawn.
  auto unrelated = g.input("unrelated_input", {7});
  (void)xgrad::exp(unrelated);
  std::string sub = xgrad::to_dot(g.expr(static_cast<xgrad::NodeId>(g.size() - 1)));
  EXPECT_FALSE(contains(sub, "beta")) << sub;
  std::string all = xgrad::to_dot(g);
  EXPECT_TRUE(contains(all, "unrelated_input"));
  EXPECT_TRUE(contains(all, "beta"));
  EXPECT_TRUE(contains(all, "exp"));
}

TEST(PrintDot, LeakyReluShowsItsSlope) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto y = xgrad::leaky_relu(x, 0.2).named("h");
  std::string dot = xgrad::to_dot(y);
  EXPECT_TRUE(contains(dot, "leaky_relu(0.2) (2,)")) << dot;
  EXPECT_TRUE(contains(xgrad::to_dot(xgrad::leaky_relu(x)), "leaky_relu(0.01)"));
  // Other ops keep their plain names.
  EXPECT_TRUE(contains(xgrad::to_dot(xgrad::relu(x)), "relu (2,)"));
  Graph<float> gf;
  auto xf = gf.input("x", {2});
  EXPECT_TRUE(contains(xgrad::to_dot(xgrad::leaky_relu(xf)), "leaky_relu(0.01)"));
}

TEST(PrintDot, MarksTransposedMatmulOperands) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto r = g.input("r", {xgrad::open});
  std::string dot = xgrad::to_dot(xgrad::matmul(X, r, true, false));
  EXPECT_TRUE(contains(dot, "matmul(a^T @ b)")) << dot;
  EXPECT_TRUE(contains(dot, "0->2 [label=\"T\"")) << dot;
  EXPECT_TRUE(contains(dot, "1->2 ;")) << dot;  // r enters as it is
  std::string plain = xgrad::to_dot(xgrad::matmul(X, g.input("w", {3})));
  EXPECT_FALSE(contains(plain, "label=\"T\"")) << plain;
  EXPECT_TRUE(contains(plain, "matmul (?,)")) << plain;
}

/// The dot executable: $XGRAD_DOT when set (the ctest entry sets it), else /usr/bin/dot.
std::string dot_program() {
  if (const char* p = std::getenv("XGRAD_DOT"); p && *p) return p;
  return "/usr/bin/dot";
}

/// Writes src to a fresh temporary .dot file, renders it as SVG and returns the SVG text;
/// fails the test on a non-zero exit code.
std::string render(const std::string& src, const std::string& tag) {
  static std::atomic<int> counter{0};
  namespace fs = std::filesystem;
  fs::path dir = fs::path(::testing::TempDir()) /
                 ("xgrad_dot_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::create_directories(dir);
  fs::path in = dir / (tag + ".dot");
  fs::path out = dir / (tag + ".svg");
  {
    std::ofstream f(in);
    f << src;
  }
  std::string cmd = "\"" + dot_program() + "\" -Tsvg \"" + in.string() + "\" -o \"" + out.string() +
                    "\" 2>\"" + (dir / "err.txt").string() + "\"";
  int rc = std::system(cmd.c_str());
  std::ifstream errf(dir / "err.txt");
  std::stringstream err;
  err << errf.rdbuf();
  EXPECT_EQ(rc, 0) << "dot failed on\n" << src << "\nstderr: " << err.str();
  std::ifstream svgf(out);
  std::stringstream svg;
  svg << svgf.rdbuf();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return svg.str();
}

bool dot_available() {
  std::error_code ec;
  return std::filesystem::exists(dot_program(), ec);
}

TEST(PrintDot, RendersWithGraphviz) {
  if (!dot_available()) {
    if (std::getenv("XGRAD_REQUIRE_DOT")) FAIL() << "dot not found at " << dot_program();
    GTEST_SKIP() << "Graphviz dot not installed at " << dot_program();
  }
  Graph<double> g;
  std::string svg = render(seed_dot(g), "seed_loss");
  EXPECT_TRUE(contains(svg, "<svg")) << svg.substr(0, 200);
  EXPECT_TRUE(contains(svg, "residual"));
  EXPECT_TRUE(contains(svg, "matmul"));
  // The whole-graph drawing, with a gradient added, renders too.
  auto beta = g.expr(2);
  ASSERT_EQ(beta.name(), "beta");
  auto loss = g.expr(static_cast<xgrad::NodeId>(g.size() - 1));
  ASSERT_EQ(loss.name(), "loss");
  (void)xgrad::grad(loss, {beta});
  EXPECT_TRUE(contains(render(xgrad::to_dot(g), "whole"), "<svg"));
}

TEST(PrintDot, NamesWithQuotesAndBackslashesRender) {
  if (!dot_available()) {
    if (std::getenv("XGRAD_REQUIRE_DOT")) FAIL() << "dot not found at " << dot_program();
    GTEST_SKIP() << "Graphviz dot not installed at " << dot_program();
  }
  Graph<double> g;
  auto a = g.input("say \"hi\"", {2});
  auto b = g.input("path\\to", {2});
  auto s = (a + b).named("total {x} <y> ;");
  std::string svg = render(xgrad::to_dot(s), "quotes");
  EXPECT_TRUE(contains(svg, "<svg"));
  EXPECT_TRUE(contains(svg, "hi"));

  // A backslash right before a quote: the quote's escape must not be consumed.
  Graph<double> g2;
  auto c = g2.input("odd\\\"name", {2});
  std::string dot = xgrad::to_dot(xgrad::exp(c));
  namespace fs = std::filesystem;
  fs::path dir = fs::path(::testing::TempDir()) / ("xgrad_dot_bq_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "bq.dot");
    f << dot;
  }
  std::string cmd = "\"" + dot_program() + "\" -Tsvg \"" + (dir / "bq.dot").string() + "\" -o \"" +
                    (dir / "bq.svg").string() + "\" 2>/dev/null";
  int rc = std::system(cmd.c_str());
  std::error_code ec;
  fs::remove_all(dir, ec);
  EXPECT_EQ(rc, 0) << "invalid Graphviz for a name with a backslash before a quote:\n" << dot;
}

}  // namespace
