// A 1024^3 matrix product through xgrad's matmul (BLAS via xtensor-blas), in GFLOP/s,
// to show the BLAS really linked is an optimised one (reference BLAS manages ~1).
#include <chrono>
#include <cstdio>
#include <random>
#include <xgrad/xgrad.hpp>

int main() {
  const std::size_t n = 1024;
  std::mt19937 rng(1);
  std::normal_distribution<double> dist;
  xt::xarray<double> a = xt::xarray<double>::from_shape({n, n});
  xt::xarray<double> b = xt::xarray<double>::from_shape({n, n});
  for (auto& v : a) v = dist(rng);
  for (auto& v : b) v = dist(rng);
  xgrad::Graph<double> g;
  auto A = g.input("A", {xgrad::Dim(n), xgrad::Dim(n)});
  auto B = g.input("B", {xgrad::Dim(n), xgrad::Dim(n)});
  auto f = xgrad::compile({xgrad::matmul(A, B)});
  f.run({{A, a}, {B, b}});  // plan + warm-up
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f.run({{A, a}, {B, b}});
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  double gflops = 2.0 * n * n * n / best / 1e9;
  std::printf("dgemm %zux%zux%zu via xgrad::matmul: %.3f s, %.1f GFLOP/s\n", n, n, n, best, gflops);
  return 0;
}
