// Tutorial 7: a custom op with its gradient rule.
//
// The Huber loss, written as a user class implementing xgrad::Op<T> (shape rule, forward
// kernel, gradient rule, printed form, executor traits) and added to graphs through
// Graph::apply, exactly like the built-in ops. Its gradient rule is verified with
// xgrad::check_gradients (which also catches a deliberately wrong rule), its graph is
// drawn with Graphviz, and it is put to work: a line fit that outliers cannot drag away,
// and a large regression step where it runs block of rows by block of rows.
// README.md walks through this file step by step.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
#include <xgrad/io.hpp>  // prints arrays with operator<<
#include <xgrad/xgrad.hpp>

#include "cli.hpp"
#include "figures.hpp"

// [op]
// huber(r, delta) = r^2 / 2                 where |r| <= delta,
//                   delta * (|r| - delta/2)  elsewhere, element by element.
// Quadratic near 0 like squared error, linear far out like |r|: large residuals count
// less. Its derivative is clamp(r, -delta, delta).
template <class T>
class HuberOp : public xgrad::Op<T> {
 public:
  std::string_view name() const override { return "huber"; }

  // One operand of any shape (open dimensions included); the result has its shape.
  xgrad::Shape infer_shape(std::span<const xgrad::Shape> in, const xgrad::Attrs& a) const override {
    if (in.size() != 1) throw std::invalid_argument("expected 1 operand");
    if (!(a.real > 0)) throw std::invalid_argument("delta must be > 0");
    return in[0];
  }

  // The kernel: raw pointers into buffers the compiled Function planned; no allocation.
  void forward(std::span<const xgrad::ConstTensor<T>> in, xgrad::Tensor<T> out,
               const xgrad::Attrs& a) const override {
    loop(in[0].data, out.data, out.size, a);
  }
  // The loop itself, element by element, as a plain function the executor can call too.
  static void loop(const T* r, T* y, std::size_t n, const xgrad::Attrs& a) {
    const T delta = static_cast<T>(a.real);
    for (std::size_t i = 0; i < n; ++i) {
      const T ar = std::abs(r[i]);
      y[i] = ar <= delta ? r[i] * r[i] / 2 : delta * (ar - delta / 2);
    }
  }

  // The gradient rule, written with graph builders: for the incoming gradient g of the
  // output, the operand's gradient is g * clamp(r, -delta, delta). Being a graph, it can
  // be compiled, printed, drawn and differentiated again.
  void backward(const xgrad::Node<T>& node, xgrad::Expr<T> /*out*/, xgrad::Expr<T> g,
                std::span<const bool> /*wanted*/, std::span<xgrad::Expr<T>> grads) const override {
    const xgrad::Expr<T> r = g.graph().expr(node.inputs[0]);
    const T delta = static_cast<T>(node.attrs.real);
    grads[0] = g * xgrad::clamp(r, -delta, delta);
  }

  // "huber(y - x, 1)" in formulas.
  std::string format(std::span<const std::string> args, const xgrad::Attrs& a) const override {
    std::ostringstream s;
    s << "huber(" << args[0] << ", " << a.real << ")";
    return s.str();
  }

  // The output always has the operand's shape: lets gradient rules skip no-op reshapes.
  int shape_source(const xgrad::Node<T>&, const xgrad::Graph<T>&) const override { return 0; }

  // What the executor may assume (the default: nothing). Elementwise: any block of rows
  // of the output comes from the same rows of the operand, so on a large input huber may
  // run block by block with the steps around it, calling `loop` on each block.
  const xgrad::OpTraits<T>& traits() const override {
    static const xgrad::OpTraits<T> t{.rows = xgrad::RowRole::elementwise, .map = {.unary = &loop}};
    return t;
  }
};

// The builder users call, like xgrad::relu(x). The op object is stateless and must
// outlive every graph that uses it, hence static; delta travels in the node's attributes.
template <class T>
xgrad::Expr<T> huber(xgrad::Expr<T> r, double delta = 1.0) {
  static const HuberOp<T> op;
  xgrad::Attrs attrs;
  attrs.real = delta;
  return r.graph().apply(op, {r.id()}, attrs);
}
// [end]

// [broken]
// The same op with a typical mistake in its gradient rule: the clamp is forgotten, so the
// rule is that of r^2 / 2 everywhere.
template <class T>
class BrokenHuberOp : public HuberOp<T> {
 public:
  void backward(const xgrad::Node<T>& node, xgrad::Expr<T>, xgrad::Expr<T> g,
                std::span<const bool> /*wanted*/, std::span<xgrad::Expr<T>> grads) const override {
    grads[0] = g * g.graph().expr(node.inputs[0]);
  }
};
// [end]

int main() {
  bool ok = true;
  const auto check = cli::checker(ok);
  std::cout << std::setprecision(6);

  // [use]
  xgrad::Graph<double> g;
  auto r = g.parameter("r", xt::xarray<double>{-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.5});
  auto h = huber(r, 1.0);
  auto dh = xgrad::grad(xgrad::sum(h), {r})[0];
  std::cout << "h = " << xgrad::to_string(h) << "\ndh/dr = " << xgrad::to_string(dh) << "\n"
            << "r          = " << g.value(r) << "\n"
            << "huber(r, 1) = " << xgrad::eval(h) << "\n"
            << "gradient    = " << xgrad::eval(dh) << "\n";
  // [end]

  // [gradcheck]
  auto z = g.parameter("z", xt::xarray<double>{{-2.7, -0.8, 0.1}, {0.6, 1.4, 3.3}});
  auto w = g.input("w", {2, 3});
  auto y = huber(z * w, 1.0);  // not a scalar: checked through sum(y * random weights)
  const xt::xarray<double> w_value = {{0.5, -1.0, 2.0}, {1.5, 0.7, -0.3}};
  const auto first = xgrad::check_gradients(y, {z}, {{w, w_value}});
  std::cout << "\nfirst derivative:  " << first.summary() << "\n";
  auto dy = xgrad::grad(xgrad::sum(y), {z})[0];  // the gradient is a graph, so...
  const auto second = xgrad::check_gradients(dy, {z}, {{w, w_value}});  // ...check its own
  std::cout << "second derivative: " << second.summary() << "\n";
  check(first.ok && second.ok, "huber's gradient rule agrees with finite differences");
  // [end]

  // [catch]
  static const BrokenHuberOp<double> broken_op;
  xgrad::Attrs delta_1;
  delta_1.real = 1.0;
  auto broken = g.apply(broken_op, {(z * w).id()}, delta_1);
  const auto caught = xgrad::check_gradients(broken, {z}, {{w, w_value}});
  std::cout << "broken rule:       " << caught.summary() << "\n";
  check(!caught.ok, "the checker catches the broken rule");
  // [end]

  // [errors]
  try {
    huber(r, -1.0);
  } catch (const xgrad::ShapeError& e) {
    std::cout << "\nhuber(r, -1) throws: " << e.what() << "\n";
  }
  // [end]

  // [fit]
  // A line y = 2x + 1 with a little noise, and 5 of 40 points replaced by outliers.
  const std::size_t n = 40;
  xt::xarray<double> xs = xt::zeros<double>({n}), ys = xt::zeros<double>({n});
  for (std::size_t i = 0; i < n; ++i) {
    xs(i) = 0.25 * double(i);
    ys(i) = 2 * xs(i) + 1 + 0.3 * std::sin(1.7 * double(i));  // deterministic "noise"
    if (i % 8 == 5) ys(i) += 25;                              // outliers far above
  }
  xgrad::Graph<double> fg;
  auto x_in = fg.input("x", {xgrad::open});
  auto y_in = fg.input("y", {xgrad::open});
  auto slope = fg.parameter("a", xt::xarray<double>(0.0));
  auto intercept = fg.parameter("b", xt::xarray<double>(0.0));
  auto residual = y_in - (slope * x_in + intercept);
  auto squared_loss = xgrad::mean(xgrad::square(residual));
  auto huber_loss = xgrad::mean(huber(residual, 1.0));
  std::cout << "\nsquared loss = " << xgrad::to_string(squared_loss)
            << "\nhuber loss   = " << xgrad::to_string(huber_loss) << "\n";

  auto fit = [&](xgrad::Expr<double> loss) {
    fg.value(slope)() = 0;
    fg.value(intercept)() = 0;
    auto grads = xgrad::grad(loss, {slope, intercept});
    auto step = xgrad::compile({loss, grads[0], grads[1]});
    xgrad::optim::Adam<double> adam({slope, intercept}, 0.05);
    for (int t = 0; t < 5000; ++t) adam.step(step.run({{x_in, xs}, {y_in, ys}}), 1);
    return std::pair{fg.value(slope)(), fg.value(intercept)()};
  };
  const auto [a2, b2] = fit(squared_loss);
  const auto [ah, bh] = fit(huber_loss);
  std::cout << "true line:          y = 2x + 1\n"
            << "squared-error fit:  y = " << a2 << "x + " << b2 << "\n"
            << "huber fit:          y = " << ah << "x + " << bh << "\n";
  // [end]

  // [tiling]
  // A residual over 20000 rows of 16 features: X takes 2.6 MB, enough for row tiling.
  const std::size_t rows = 20000, cols = 16;
  xt::xarray<double> X_value = xt::zeros<double>({rows, cols}), t_value = xt::zeros<double>({rows});
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < cols; ++j)
      X_value(i, j) = std::sin(0.37 * double(i) + 1.3 * double(j));
    t_value(i) = 3 * std::cos(0.11 * double(i));
  }
  xgrad::Graph<double> tg;
  auto X = tg.input("X", {xgrad::open, static_cast<xgrad::Dim>(cols)});
  auto t = tg.input("t", {xgrad::open});
  auto beta = tg.parameter("beta", xt::xarray<double>(0.5 * xt::ones<double>({cols})));
  auto big_loss = xgrad::sum(huber(xgrad::matmul(X, beta) - t, 1.0));
  auto big_grad = xgrad::grad(big_loss, {beta})[0];
  auto tiled = xgrad::compile({big_loss, big_grad});
  xgrad::CompileOptions whole_arrays;
  whole_arrays.tile_rows = false;
  auto untiled = xgrad::compile({big_loss, big_grad}, whole_arrays);
  const auto& by_blocks = tiled.run({{X, X_value}, {t, t_value}});
  const auto& by_arrays = untiled.run({{X, X_value}, {t, t_value}});
  const double difference = std::max(xt::amax(xt::abs(by_blocks[0] - by_arrays[0]))(),
                                     xt::amax(xt::abs(by_blocks[1] - by_arrays[1]))());
  std::cout << "\nrow-tiled: " << tiled.tiled_steps() << " of " << tiled.num_steps()
            << " steps; largest difference to the untiled run: " << difference << "\n";
  check(tiled.tiled_steps() == tiled.num_steps() && difference < 1e-9,
        "huber runs in the row-tiled group");
  // [end]

  // [draw]
  check(
      figures::draw_graph("huber_loss", xgrad::to_dot(huber_loss)) &&
          figures::draw_graph("huber_gradient", xgrad::to_dot(xgrad::grad(huber_loss, {slope})[0])),
      "graphs drawn");
  std::vector<double> px(xs.begin(), xs.end()), py(ys.begin(), ys.end());
  figures::Plot plot{
      .name = "robust_fit",
      .settings = {"set xlabel 'x'", "set ylabel 'y'", "set key top left",
                   "set title 'Fitting a line through 5 outliers'"},
      .series = {{"data", px, py, "points pt 7"}},
      .extra_terms = {
          std::to_string(a2) + "*x + " + std::to_string(b2) + " title 'squared error' lw 2",
          std::to_string(ah) + "*x + " + std::to_string(bh) + " title 'huber' lw 2"}};
  check(figures::draw(plot), "plot drawn");
  // [end]

  // [checks]
  check(std::abs(ah - 2) < 0.05 && std::abs(bh - 1) < 0.3, "huber fit near y = 2x + 1");
  check(std::abs(b2 - 1) > 2, "squared-error fit dragged by the outliers");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
