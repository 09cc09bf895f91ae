// One compiled run of the seed's linear-regression step (X 4x3 with the bias column,
// loss and gradient), against the same step written by hand with plain loops.
// Prints nanoseconds per step (median of repeated batches) and the ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include <xgrad/xgrad.hpp>

namespace {

template <class F>
double median_ns(F&& f, int reps_per_batch, int batches) {
  std::vector<double> t;
  for (int b = 0; b < batches; ++b) {
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps_per_batch; ++r) f();
    auto t1 = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / reps_per_batch);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main() {
  xt::xarray<double> X = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
  xt::xarray<double> y = {6, 8, 9, 11};

  xgrad::Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, 3});
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  auto loss = 0.5 * xgrad::sum(xgrad::square(yi - xgrad::matmul(Xi, beta)));
  auto gb = xgrad::grad(loss, {beta})[0];
  auto step = xgrad::compile({loss, gb});
  volatile double sink = 0;
  double t_xgrad = median_ns([&] { sink = sink + step.run({{Xi, X}, {yi, y}})[1](0); }, 20000, 25);

  double b[3] = {10.1, 15.1, -6.5}, grad[3];
  double t_hand = median_ns(
      [&] {
        double l = 0;
        grad[0] = grad[1] = grad[2] = 0;
        for (int i = 0; i < 4; ++i) {
          double r = y(i) - (X(i, 0) * b[0] + X(i, 1) * b[1] + X(i, 2) * b[2]);
          l += 0.5 * r * r;
          for (int j = 0; j < 3; ++j) grad[j] -= X(i, j) * r;
        }
        sink = sink + grad[0] + l;
      },
      200000, 25);

  std::printf("steps per run        : %zu ops\n", step.num_steps());
  std::printf("xgrad compiled step  : %8.1f ns\n", t_xgrad);
  std::printf("hand-written loop    : %8.1f ns\n", t_hand);
  std::printf("ratio xgrad / hand   : %8.1f x\n", t_xgrad / t_hand);
  return 0;
}
