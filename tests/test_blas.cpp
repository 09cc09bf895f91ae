// The BLAS behind matmul is OpenBLAS, and its products agree with naive loops.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <xgrad/xgrad.hpp>

extern "C" char* openblas_get_config();

namespace {

using xgrad::Graph;

TEST(Blas, LinkedLibraryIsOpenBLAS) {
  const char* cfg = openblas_get_config();
  ASSERT_NE(cfg, nullptr);
  EXPECT_NE(std::string(cfg).find("OpenBLAS"), std::string::npos) << cfg;
}

xt::xarray<double> random_matrix(std::size_t r, std::size_t c, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  xt::xarray<double> m = xt::zeros<double>({r, c});
  for (auto& v : m) v = u(rng);
  return m;
}

// (A or A^T) @ (B or B^T) by three loops.
xt::xarray<double> naive(const xt::xarray<double>& A, const xt::xarray<double>& B, bool ta,
                         bool tb) {
  std::size_t m = ta ? A.shape(1) : A.shape(0), k = ta ? A.shape(0) : A.shape(1);
  std::size_t n = tb ? B.shape(0) : B.shape(1);
  xt::xarray<double> C = xt::zeros<double>({m, n});
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::size_t p = 0; p < k; ++p) s += (ta ? A(p, i) : A(i, p)) * (tb ? B(j, p) : B(p, j));
      C(i, j) = s;
    }
  }
  return C;
}

double max_abs_diff(const xt::xarray<double>& a, const xt::xarray<double>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a.flat(i) - b.flat(i)));
  return d;
}

TEST(Blas, Matmul64MatchesNaiveProduct) {
  xt::xarray<double> A = random_matrix(64, 64, 1);
  xt::xarray<double> B = random_matrix(64, 64, 2);
  Graph<double> g;
  auto a = g.input("A", {64, 64});
  auto b = g.input("B", {64, 64});
  auto f = xgrad::compile({xgrad::matmul(a, b), xgrad::matmul(a, b, true, false),
                           xgrad::matmul(a, b, false, true), xgrad::matmul(a, b, true, true)});
  const auto& r = f.run({{a, A}, {b, B}});
  EXPECT_LT(max_abs_diff(r[0], naive(A, B, false, false)), 1e-12);
  EXPECT_LT(max_abs_diff(r[1], naive(A, B, true, false)), 1e-12);
  EXPECT_LT(max_abs_diff(r[2], naive(A, B, false, true)), 1e-12);
  EXPECT_LT(max_abs_diff(r[3], naive(A, B, true, true)), 1e-12);
}

// Column matrix (n, 1) and the same values as a 1-d vector.
xt::xarray<double> as_vector(const xt::xarray<double>& column) {
  xt::xarray<double> v = xt::zeros<double>({column.size()});
  for (std::size_t i = 0; i < column.size(); ++i) v(i) = column.flat(i);
  return v;
}

TEST(Blas, RectangularMatrixVectorAndDot) {
  xt::xarray<double> A = random_matrix(37, 53, 3);
  xt::xarray<double> X1 = random_matrix(53, 1, 4);
  xt::xarray<double> Z1 = random_matrix(37, 1, 5);
  xt::xarray<double> v53 = as_vector(X1), v37 = as_vector(Z1);
  Graph<double> g;
  auto a = g.input("A", {xgrad::open, 53});
  auto x = g.input("x", {53});
  auto z = g.input("z", {xgrad::open});
  auto f = xgrad::compile(
      {xgrad::matmul(a, x), xgrad::matmul(z, a), xgrad::matmul(a, z, true), xgrad::matmul(x, x)});
  const auto& r = f.run({{a, A}, {x, v53}, {z, v37}});
  EXPECT_LT(max_abs_diff(r[0], as_vector(naive(A, X1, false, false))), 1e-12);
  EXPECT_LT(max_abs_diff(r[1], as_vector(naive(A, Z1, true, false))), 1e-12);
  EXPECT_LT(max_abs_diff(r[2], as_vector(naive(A, Z1, true, false))), 1e-12);
  double dot = 0;
  for (std::size_t i = 0; i < 53; ++i) dot += v53(i) * v53(i);
  EXPECT_NEAR(r[3](), dot, 1e-12);
}

TEST(Blas, SinglePrecisionMatmul) {
  xt::xarray<double> A = random_matrix(16, 24, 6);
  xt::xarray<double> B = random_matrix(24, 8, 7);
  xt::xarray<float> Af = xt::cast<float>(A);
  xt::xarray<float> Bf = xt::cast<float>(B);
  Graph<float> g;
  auto a = g.input("A", {16, 24});
  auto b = g.input("B", {24, 8});
  auto r = xgrad::eval(xgrad::matmul(a, b), {{a, Af}, {b, Bf}});
  xt::xarray<double> expect = naive(xt::cast<double>(Af), xt::cast<double>(Bf), false, false);
  EXPECT_LT(max_abs_diff(xt::cast<double>(r), expect), 1e-5);
}

}  // namespace
