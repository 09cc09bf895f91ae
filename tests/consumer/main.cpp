// Smallest real use of an installed xgrad: d/dx (x^2 + 2x + 3) at x = 3 is 8.
#include <iostream>
#include <xgrad/io.hpp>  // prints arrays with operator<<
#include <xgrad/xgrad.hpp>

int main() {
  xgrad::Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(3.0));
  auto y = x * x + 2.0 * x + 3.0;
  auto dy = xgrad::grad(y, {x})[0];
  std::cout << xgrad::to_string(dy) << " = " << xgrad::eval(dy) << "\n";
  return xgrad::eval(dy)() == 8.0 ? 0 : 1;
}
