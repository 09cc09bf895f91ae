// Workload 7: forward mode. jvp(y, x, u) by the double-VJP construction against the
// reverse pass it is built from and against forming the Jacobian, on a two-layer network
// y = tanh(W2 @ tanh(W1 @ x)) with x of size D, a hidden layer of size D and M outputs.
//
// Variants (compiled once; one run each, A B C D A B C D ...; min / median in microseconds):
//   forward   y alone (what forward rules would add their tangent pass to)
//   vjp       y and J^T w for a cotangent w: one backward pass
//   jvp       y and J u through the double-VJP construction
//   jacobian  y and the (M, D) Jacobian (M backward passes), then J u on top
// Node counts of each graph are printed too.
//
//   w7_jvp [D] [M] [REPS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>
#include <xgrad/xgrad.hpp>
#include <xtensor/xrandom.hpp>

int main(int argc, char** argv) {
  const long D = argc > 1 ? std::atol(argv[1]) : 512;
  const long M = argc > 2 ? std::atol(argv[2]) : 16;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 21;
  xt::random::seed(7);
  xgrad::Graph<double> g;
  auto W1 = g.parameter("W1", xt::random::randn<double>({D, D}) / std::sqrt(double(D)));
  auto W2 = g.parameter("W2", xt::random::randn<double>({M, D}) / std::sqrt(double(D)));
  auto x = g.parameter("x", xt::random::randn<double>({D}));
  auto u = g.input("u", {D});
  auto w = g.input("w", {M});
  auto y = xgrad::tanh(xgrad::matmul(W2, xgrad::tanh(xgrad::matmul(W1, x))));
  std::size_t n0 = g.size();
  auto vjp = xgrad::grad(y, {x}, w)[0];
  std::size_t n1 = g.size();
  auto jv = xgrad::jvp(y, x, u);
  std::size_t n2 = g.size();
  auto jac = xgrad::jacobian(y, x);
  auto jac_u = xgrad::matmul(jac, u);
  std::size_t n3 = g.size();
  std::printf("nodes: y %zu, vjp +%zu, jvp +%zu, jacobian +%zu (D %ld, M %ld)\n", n0, n1 - n0,
              n2 - n1, n3 - n2, D, M);
  const xt::xarray<double> uv = xt::random::randn<double>({D});
  const xt::xarray<double> wv = xt::random::randn<double>({M});
  std::vector<xgrad::Function<double>> fns;
  fns.push_back(xgrad::compile({y}));
  fns.push_back(xgrad::compile({y, vjp}));
  fns.push_back(xgrad::compile({y, jv}));
  fns.push_back(xgrad::compile({y, jac_u}));
  const char* names[] = {"forward", "vjp", "jvp", "jacobian"};
  const auto& a = fns[2].run({{u, uv}});
  const xt::xarray<double> jv_val = a[1];
  const auto& b = fns[3].run({{u, uv}});
  const double diff = xt::amax(xt::abs(jv_val - b[1]))();
  std::printf("max |jvp - J u| = %.3g\n", diff);
  if (!(diff < 1e-10)) return 1;
  std::vector<std::vector<double>> us(4);
  for (int r = 0; r < reps + 1; ++r) {
    for (int k = 0; k < 4; ++k) {
      auto t0 = std::chrono::steady_clock::now();
      (void)fns[k].run({{u, uv}, {w, wv}});
      double us_ =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) us[k].push_back(us_);  // the first round warms up
    }
  }
  for (int k = 0; k < 4; ++k) {
    std::sort(us[k].begin(), us[k].end());
    std::printf("| %-8s | %9.1f | %9.1f |\n", names[k], us[k].front(), us[k][us[k].size() / 2]);
  }
  return 0;
}
