// The layers of layers.hpp.
#include "xgrad/nn/layers.hpp"

#include <algorithm>
#include <cmath>

#include "xgrad/nn/init.hpp"
#include "xgrad/ops.hpp"

namespace xgrad::nn {

template <class T>
Linear<T>::Linear(Graph<T>& g, std::size_t in, std::size_t out, LinearOptions o)
    : Module<T>(g), in_(in), out_(out) {
  if (in == 0 || out == 0) {
    throw ValueError("nn::Linear: in_features " + std::to_string(in) + " and out_features " +
                     std::to_string(out) + " must both be positive");
  }
  // One seed for the layer, split into two streams for weight and bias.
  const std::uint64_t seed = o.seed ? *o.seed : next_seed();
  xt::xarray<T> w = xt::xarray<T>::from_shape({out, in});
  init::kaiming_uniform(w, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", seed);
  weight_ = this->register_parameter("weight", std::move(w));
  if (o.bias) {
    xt::xarray<T> b = xt::xarray<T>::from_shape({out});
    const double bound = 1 / std::sqrt(static_cast<double>(in));
    init::uniform(b, -bound, bound, seed ^ 0xb1a5b1a5b1a5b1a5ULL);
    bias_ = this->register_parameter("bias", std::move(b));
  }
}

template <class T>
Expr<T> Linear<T>::forward(Expr<T> x) {
  const Shape& s = x.shape();
  if (s.empty() || (s.back() != open && static_cast<std::size_t>(s.back()) != in_)) {
    throw ShapeError("nn::Linear(" + std::to_string(in_) + " -> " + std::to_string(out_) +
                     "): input " + x.graph().describe(x.id()) + " must have " +
                     std::to_string(in_) + " features in its last axis");
  }
  Expr<T> y =
      s.size() <= 2
          ? matmul(x, weight_, false, true)
          : reshape(matmul(reshape(x, {-1, static_cast<Dim>(in_)}), weight_, false, true), [&] {
              Shape o(s.begin(), s.end());
              o.back() = static_cast<Dim>(out_);
              return o;
            }());
  return bias_ ? y + bias_ : y;
}

template <class T>
Expr<T> Flatten<T>::forward(Expr<T> x) {
  const Shape& s = x.shape();
  const Dim r = static_cast<Dim>(s.size());
  const Dim start = start_ < 0 ? start_ + r : start_;
  if (start < 0 || start >= std::max<Dim>(r, 1)) {
    throw ShapeError("nn::Flatten: start_dim " + std::to_string(start_) + " is out of range for " +
                     x.graph().describe(x.id()));
  }
  Shape out(s.begin(), s.begin() + start);
  Dim merged = 1;
  for (Dim i = start; i < r; ++i) {
    if (s[static_cast<std::size_t>(i)] == open) {
      throw ShapeError("nn::Flatten: axis " + std::to_string(i) + " of " +
                       x.graph().describe(x.id()) + " is open; only leading axes may be open");
    }
    merged *= s[static_cast<std::size_t>(i)];
  }
  out.push_back(merged);
  // An open leading axis becomes the inferred one.
  for (Dim& d : out) {
    if (d == open) d = -1;
  }
  return reshape(x, out);
}

template <class T>
Dropout<T>::Dropout(Graph<T>& g, double p, std::optional<std::uint64_t> seed)
    : Module<T>(g), p_(p), seed_(seed ? *seed : next_seed()) {
  if (!(p >= 0 && p < 1)) {
    throw ValueError("nn::Dropout: p " + std::to_string(p) + " must lie in [0, 1)");
  }
  step_ = this->register_buffer("step", xt::xarray<T>(T(0)));
}

template <class T>
Expr<T> Dropout<T>::forward(Expr<T> x) {
  if (!this->training() || p_ == 0) return x;
  auto it = std::find(inputs_.begin(), inputs_.end(), x.id());
  const auto k = static_cast<std::uint64_t>(it - inputs_.begin());
  if (it == inputs_.end()) inputs_.push_back(x.id());
  // Streams after the first: splitmix64 steps from the seed, unrelated to one another.
  std::uint64_t seed = seed_;
  if (k) {
    seed += k * 0x9E3779B97F4A7C15ULL;
    seed = (seed ^ (seed >> 30)) * 0xBF58476D1CE4E5B9ULL;
    seed = (seed ^ (seed >> 27)) * 0x94D049BB133111EBULL;
    seed ^= seed >> 31;
  }
  this->set_update(step_, wrapping_increment(step_));
  return dropout(x, p_, seed, step_);
}

template <class T>
ReLU<T>::ReLU(Graph<T>& g) : Lambda<T>(g, [](Expr<T> x) { return relu(x); }) {}
template <class T>
Tanh<T>::Tanh(Graph<T>& g) : Lambda<T>(g, [](Expr<T> x) { return tanh(x); }) {}
template <class T>
Sigmoid<T>::Sigmoid(Graph<T>& g) : Lambda<T>(g, [](Expr<T> x) { return sigmoid(x); }) {}

template <class T>
LeakyReLU<T>::LeakyReLU(Graph<T>& g, double negative_slope) : Module<T>(g), slope_(negative_slope) {
  if (!(std::isfinite(negative_slope) && negative_slope >= 0)) {
    throw ValueError("nn::LeakyReLU: negative_slope " + std::to_string(negative_slope) +
                     " is not a finite non-negative number");
  }
}
template <class T>
Expr<T> LeakyReLU<T>::forward(Expr<T> x) {
  return leaky_relu(x, static_cast<T>(slope_));
}
template <class T>
Expr<T> GELU<T>::forward(Expr<T> x) {
  return gelu(x, approximate_);
}

template <class T>
Expr<T> Sequential<T>::forward(Expr<T> x) {
  for (const auto& m : layers_) x = (*m)(x);
  return x;
}

template <class T>
Module<T>& Sequential<T>::operator[](std::size_t i) const {
  if (i >= layers_.size()) {
    throw ValueError("nn::Sequential: layer " + std::to_string(i) + " of " +
                     std::to_string(layers_.size()));
  }
  return *layers_[i];
}

#define XGRAD_INSTANTIATE(T)   \
  template class Linear<T>;    \
  template class Flatten<T>;   \
  template class Dropout<T>;   \
  template class ReLU<T>;      \
  template class Tanh<T>;      \
  template class Sigmoid<T>;   \
  template class LeakyReLU<T>; \
  template class GELU<T>;      \
  template class Sequential<T>;
XGRAD_INSTANTIATE(float)
XGRAD_INSTANTIATE(double)

}  // namespace xgrad::nn
