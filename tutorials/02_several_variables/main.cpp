// Tutorial 2: functions of several variables, partial derivatives and the gradient vector.
//
// The lecture note's second example: f(x, y) = x^2 + 2y^2, minimised from a start drawn
// uniformly from [-2, 2]^2 with learning rate 1e-2, stopping once the NORM of the gradient
// is at most 1e-5. The partial derivatives come from xgrad and, beside them, from the
// definition with unit vectors e_i. The descent path is plotted over the contour lines of f.
// README.md walks through this file step by step.
//
// Usage: 02_several_variables [--every K] [--seed S]
//   --every K  print every K-th iteration (default 1: every one, as the note does)
//   --seed S   seed of the random start (default 7)
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <random>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "cli.hpp"
#include "figures.hpp"

int main(int argc, char** argv) {
  int every = 1;
  unsigned seed = 7;
  if (!cli::parse(argc, argv,
                  {{"--every", "K", [&](const char* v) { every = std::max(1, std::atoi(v)); }},
                   {"--seed", "S", [&](const char* v) {
                      seed = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
                    }}})) {
    return 2;
  }
  bool ok = true;
  const auto check = cli::checker(ok);
  std::cout << std::setprecision(10);

  // [function]
  xgrad::Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(0.0));
  auto y = g.parameter("y", xt::xarray<double>(0.0));
  auto f = xgrad::pow(x, 2.0) + 2.0 * xgrad::pow(y, 2.0);
  auto partials = xgrad::grad(f, {x, y});  // {df/dx, df/dy}: the gradient vector
  std::cout << "f(x, y) = " << xgrad::to_string(f) << "\n"
            << "df/dx = " << xgrad::to_string(partials[0]) << "\n"
            << "df/dy = " << xgrad::to_string(partials[1]) << "\n";
  auto fn = xgrad::compile({f, partials[0], partials[1]});
  // [end]

  // [partials]
  const std::vector<xgrad::Expr<double>> vars{x, y};  // the point p = (x, y)
  g.value(x)() = 1.0;
  g.value(y)() = 1.0;
  const auto at = fn.run();  // a copy: {f(p), df/dx(p), df/dy(p)}
  const double h = 1e-6;
  std::cout << "\nat p = (1, 1):\n";
  for (std::size_t i = 0; i < vars.size(); ++i) {
    g.value(vars[i])() += h;  // p + h e_i: only coordinate i moves
    const double quotient = (fn.run()[0]() - at[0]()) / h;
    g.value(vars[i])() -= h;  // back to p
    const double central = xgrad::numeric_gradient(f, vars[i])();
    std::cout << "  d/d" << vars[i].name() << ": (f(p + h e_" << i << ") - f(p)) / h = " << quotient
              << ", central difference = " << central << ", autodiff = " << at[i + 1]() << "\n";
    check(std::abs(quotient - at[i + 1]()) < 1e-4 && std::abs(central - at[i + 1]()) < 1e-7,
          "difference quotients agree with autodiff");
  }
  std::cout << "  gradient vector: (" << at[1]() << ", " << at[2]() << ")\n";
  // [end]

  // [start]
  std::mt19937 rng(seed);
  const double x0 = -2.0 + 4.0 * (rng() / 4294967296.0);  // uniform in [-2, 2)
  const double y0 = -2.0 + 4.0 * (rng() / 4294967296.0);
  std::cout << "\nstart: (x0, y0) = (" << x0 << ", " << y0 << ")\n";
  // [end]

  // [descent]
  const double lr = 1e-2, eps = 1e-5;
  g.value(x)() = x0;
  g.value(y)() = y0;
  auto norm_of = [](const std::vector<xt::xarray<double>>& out) {
    return std::sqrt(out[1]() * out[1]() + out[2]() * out[2]());  // ||(df/dx, df/dy)||
  };
  const auto& first = fn.run();
  double grad_x = first[1](), grad_y = first[2](), norm = norm_of(first);
  std::vector<double> path_x{x0}, path_y{y0};
  int iterations = 0;
  while (norm > eps) {
    g.value(x)() -= lr * grad_x;  // every variable moves at once,
    g.value(y)() -= lr * grad_y;  // with the partials of the same point
    const auto& out = fn.run();
    grad_x = out[1]();
    grad_y = out[2]();
    norm = norm_of(out);
    ++iterations;
    path_x.push_back(g.value(x)());
    path_y.push_back(g.value(y)());
    if (iterations % every == 0) {
      std::cout << "iteration " << iterations << ": (x, y) = (" << g.value(x)() << ", "
                << g.value(y)() << "), |grad| = " << norm << "\n";
    }
  }
  // [end]

  // [summary]
  // Closed form: x_k = x0 (1 - 2 lr)^k and y_k = y0 (1 - 4 lr)^k; the gradient is
  // (2 x_k, 4 y_k). The loop stops at the first k where its norm is <= eps.
  int closed_form = 0;
  while (std::hypot(2 * x0 * std::pow(1 - 2 * lr, closed_form),
                    4 * y0 * std::pow(1 - 4 * lr, closed_form)) > eps) {
    ++closed_form;
  }
  const double f_min = fn.run()[0]();
  std::cout << "function: " << xgrad::to_string(f) << "\n"
            << "iterations: " << iterations << " (closed form: " << closed_form << ")\n"
            << "minimum: (" << g.value(x)() << ", " << g.value(y)() << "), f = " << f_min << "\n";
  // [end]

  // [plot]
  figures::Plot contours{
      .name = "descent_path",
      .settings = {"set view map", "set contour base",
                   "set cntrparam levels discrete 0.125, 0.5, 1, 2, 4, 8",
                   "set isosamples 120, 120", "set xrange [-2:2]", "set yrange [-2:2]",
                   "set size ratio -1", "set xlabel 'x'", "set ylabel 'y'", "set key outside",
                   "set title 'Gradient descent on f(x, y) = x^2 + 2y^2'"},
      .series = {{"path", path_x, path_y, "linespoints pt 7 ps 0.3 lc rgb 'black' nocontour"}},
      .extra_terms = {"x**2 + 2*y**2 nosurface title 'contours of f'"},
      .command = "splot",
      .width = 760,
      .height = 600};
  check(figures::draw(contours), "plot drawn");
  // [end]

  // [checks]
  check(xgrad::to_string(partials[0]) == "2*x" && xgrad::to_string(partials[1]) == "4*y",
        "partials printed as 2*x and 4*y");
  check(std::abs(iterations - closed_form) <= 1, "iteration count matches the closed form");
  check(norm <= eps && std::abs(g.value(x)()) <= eps / 2 && std::abs(g.value(y)()) <= eps / 4,
        "minimum at (0, 0)");
  check(f_min < 1e-10, "f = 0 at the minimum");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
