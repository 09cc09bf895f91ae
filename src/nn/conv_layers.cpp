// The layers of nn/conv.hpp.
#include <cmath>

#include "xgrad/nn/conv.hpp"
#include "xgrad/nn/init.hpp"
#include "xgrad/ops.hpp"

namespace xgrad::nn {

template <class T>
Conv2d<T>::Conv2d(Graph<T>& g, std::size_t in, std::size_t out, std::array<std::size_t, 2> k,
                  Conv2dOptions o)
    : Module<T>(g), geometry_{o.stride, o.padding, o.dilation} {
  if (in == 0 || out == 0 || k[0] == 0 || k[1] == 0) {
    throw ValueError("nn::Conv2d: channels (" + std::to_string(in) + " -> " + std::to_string(out) +
                     ") and window (" + std::to_string(k[0]) + " x " + std::to_string(k[1]) +
                     ") must be positive");
  }
  const std::uint64_t seed = o.seed ? *o.seed : next_seed();
  xt::xarray<T> w = xt::xarray<T>::from_shape({out, in, k[0], k[1]});
  init::kaiming_uniform(w, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", seed);
  weight_ = this->register_parameter("weight", std::move(w));
  if (o.bias) {
    xt::xarray<T> b = xt::xarray<T>::from_shape({out});
    const double bound = 1 / std::sqrt(static_cast<double>(in * k[0] * k[1]));
    init::uniform(b, -bound, bound, seed ^ 0xb1a5b1a5b1a5b1a5ULL);
    bias_ = this->register_parameter("bias", std::move(b));
  }
}

template <class T>
Expr<T> Conv2d<T>::forward(Expr<T> x) {
  return bias_ ? conv2d_bias(x, weight_, bias_, geometry_) : conv2d(x, weight_, geometry_);
}

template class Conv2d<float>;
template class Conv2d<double>;
template class MaxPool2d<float>;
template class MaxPool2d<double>;
template class AvgPool2d<float>;
template class AvgPool2d<double>;

}  // namespace xgrad::nn
