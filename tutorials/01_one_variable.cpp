// Tutorial 1: gradient descent on a function of one variable.
//
// The lecture note's first example: f(x) = x^2 + 2x + 3, start at x0 drawn uniformly
// from [-2, 2], learning rate 1e-2, stop once |f'(x)| <= 1e-5. The derivative is not
// written by hand: xgrad builds it as a graph and prints it as a formula. The minimum is
// at (-1, 2).
//
// Run with --verbose to print every iteration (the note prints each one).
#include <cmath>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <random>
#include <xgrad/xgrad.hpp>

int main(int argc, char** argv) {
  bool verbose = argc > 1 && std::strcmp(argv[1], "--verbose") == 0;

  // A fixed seed makes the run reproducible; change it to start elsewhere.
  std::mt19937 rng(7);
  double x0 = std::uniform_real_distribution<double>(-2.0, 2.0)(rng);

  xgrad::Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(x0));
  auto f = xgrad::pow(x, 2.0) + 2.0 * x + 3.0;
  auto df = xgrad::grad(f, {x})[0];  // a graph node, not a number
  std::cout << "f(x)  = " << xgrad::to_string(f) << "\n";
  std::cout << "f'(x) = " << xgrad::to_string(df) << "\n";

  // Compile once; every iteration then only runs the plan.
  auto step = xgrad::compile({f, df});
  const double lr = 1e-2, eps = 1e-5;
  int it = 0;
  double grad = step.run()[1]();
  std::cout << std::setprecision(8);
  while (std::abs(grad) > eps) {
    g.value(x) -= lr * grad;  // x <- x - lr * f'(x)
    grad = step.run()[1]();
    ++it;
    if (verbose || it <= 3 || it % 100 == 0) {
      std::cout << "iteration " << it << ": x = " << g.value(x)() << ", f'(x) = " << grad << "\n";
    }
  }
  double xm = g.value(x)(), fm = step.run()[0]();
  std::cout << "function: " << xgrad::to_string(f) << "\n"
            << "start x0 = " << x0 << ", iterations: " << it << "\n"
            << "minimum: (" << xm << ", " << fm << ")\n";
  // The tutorial doubles as a test: it fails if descent did not reach (-1, 2).
  return (std::abs(xm + 1) < 1e-5 && std::abs(fm - 2) < 1e-9) ? 0 : 1;
}
