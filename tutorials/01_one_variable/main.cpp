// Tutorial 1: the derivative of a function of one variable, and gradient descent.
//
// The lecture note's first example: f(x) = x^2 + 2x + 3, minimised from a start x0 drawn
// uniformly from [-2, 2] with learning rate 1e-2, stopping once |f'(x)| <= 1e-5. xgrad
// builds f' as a graph and prints it as a formula; the limit definition of the derivative
// is computed numerically beside it; gradient ascent on -f finds the same point.
// README.md walks through this file step by step.
//
// Usage: 01_one_variable [--every K] [--seed S]
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
  auto f = xgrad::pow(x, 2.0) + 2.0 * x + 3.0;
  auto df = xgrad::grad(f, {x})[0];  // a new node of the same graph, not a number
  std::cout << "f(x)  = " << xgrad::to_string(f) << "\n"
            << "f'(x) = " << xgrad::to_string(df) << "\n";
  auto fn = xgrad::compile({f, df});  // compile once, then run as often as needed
  // [end]

  // [limit]
  auto eval_at = [&](double at) {
    g.value(x)() = at;  // the parameter's value lives in the graph
    return fn.run();    // {f(at), f'(at)}
  };
  const double x1 = 1.0;
  const double f1 = eval_at(x1)[0](), autodiff = eval_at(x1)[1]();
  std::cout << "\nf'(1) by autodiff: " << autodiff << "\n"
            << "       h    (f(1+h) - f(1)) / h    error\n";
  std::vector<double> hs, errors;
  for (int k = 1; k <= 13; ++k) {
    const double h = std::pow(10.0, -k);
    const double quotient = (eval_at(x1 + h)[0]() - f1) / h;
    hs.push_back(h);
    errors.push_back(std::abs(quotient - autodiff));
    std::cout << std::setw(8) << h << "    " << std::setw(19) << std::left << quotient << std::right
              << "    " << errors.back() << "\n";
  }
  // [end]

  // [start]
  std::mt19937 rng(seed);
  const double x0 = -2.0 + 4.0 * (rng() / 4294967296.0);  // uniform in [-2, 2)
  std::cout << "\nstart: x0 = " << x0 << "\n";
  // [end]

  // [descent]
  const double lr = 1e-2, eps = 1e-5;
  g.value(x)() = x0;
  double grad = fn.run()[1]();
  std::vector<double> path_x{x0}, path_f{fn.run()[0]()};
  int iterations = 0;
  while (std::abs(grad) > eps) {
    g.value(x)() -= lr * grad;  // x <- x - lr * f'(x)
    const auto& out = fn.run();
    grad = out[1]();
    ++iterations;
    path_x.push_back(g.value(x)());
    path_f.push_back(out[0]());
    if (iterations % every == 0) {
      std::cout << "iteration " << iterations << ": x = " << g.value(x)() << ", f'(x) = " << grad
                << "\n";
    }
  }
  // [end]

  // [summary]
  const double x_min = g.value(x)(), f_min = fn.run()[0]();
  // f'(x_k) = 2 (x_k + 1) shrinks by (1 - 2 lr) per step: the first k with
  // |2 (x0 + 1)| (1 - 2 lr)^k <= eps.
  const int closed_form =
      static_cast<int>(std::ceil(std::log(eps / std::abs(2 * (x0 + 1))) / std::log(1 - 2 * lr)));
  std::cout << "function: " << xgrad::to_string(f) << "\n"
            << "iterations: " << iterations << " (closed form: " << closed_form << ")\n"
            << "minimum: (" << x_min << ", " << f_min << ")\n";
  // [end]

  // [ascent]
  auto neg_f = -f;
  auto d_neg_f = xgrad::grad(neg_f, {x})[0];
  auto fn_neg = xgrad::compile({neg_f, d_neg_f});
  g.value(x)() = x0;
  double ascent_grad = fn_neg.run()[1]();
  int ascent_iterations = 0;
  while (std::abs(ascent_grad) > eps) {
    g.value(x)() += lr * ascent_grad;  // x <- x + lr * (-f)'(x): ascent
    ascent_grad = fn_neg.run()[1]();
    ++ascent_iterations;
  }
  const double x_max = g.value(x)(), neg_f_max = fn_neg.run()[0]();
  std::cout << "\n(-f)'(x) = " << xgrad::to_string(d_neg_f) << "\n"
            << "maximum of -f: (" << x_max << ", " << neg_f_max << ") after " << ascent_iterations
            << " iterations\n";

  g.value(x)() = x0;  // ascent on f itself: f has no maximum, x runs away
  for (int k = 0; k < 300; ++k) g.value(x)() += lr * fn.run()[1]();
  std::cout << "ascent on f itself, 300 steps: x = " << g.value(x)() << ", f(x) = " << fn.run()[0]()
            << "\n";
  // [end]

  // [plots]
  std::cout << "\n";
  figures::Plot descent{
      .name = "descent",
      .settings = {"set xlabel 'x'", "set ylabel 'f(x)'", "set xrange [-2.2:2.2]",
                   "set title 'Gradient descent on f(x) = x^2 + 2x + 3'"},
      .series = {{"iterates (x_k, f(x_k))", path_x, path_f, "points pt 7 ps 0.5"}},
      .extra_terms = {"x**2 + 2*x + 3 title 'f(x)' lw 2"}};
  figures::Plot quotient{.name = "difference_quotient",
                         .settings = {"set logscale xy", "set format xy '10^{%L}'",
                                      "set xlabel 'h'", "set ylabel '|quotient - autodiff|'",
                                      "set title 'Error of (f(1+h) - f(1)) / h'"},
                         .series = {{"error", hs, errors, "linespoints pt 7"}}};
  check(figures::draw(descent) && figures::draw(quotient), "plots drawn");
  // [end]

  // [checks]
  check(xgrad::to_string(df) == "2*x + 2", "f'(x) printed as 2*x + 2");
  check(std::abs(errors[0] - 0.1) < 1e-9, "error of the quotient is h for h = 0.1");
  check(*std::min_element(errors.begin(), errors.end()) < 1e-7, "the quotient reaches 1e-7");
  check(errors.back() > 1e-5, "rounding spoils the quotient for h = 1e-13");
  check(std::abs(iterations - closed_form) <= 1, "iteration count matches the closed form");
  check(std::abs(x_min + 1) <= eps / 2 && std::abs(f_min - 2) < 1e-10, "minimum at (-1, 2)");
  check(ascent_iterations == iterations && std::abs(x_max - x_min) < 1e-12,
        "ascent on -f retraces descent on f");
  check(std::abs(neg_f_max + 2) < 1e-10, "maximum of -f is -2");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
