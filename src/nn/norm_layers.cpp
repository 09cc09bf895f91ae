// The layers of nn/norm.hpp.
#include <cmath>

#include "xgrad/nn/init.hpp"
#include "xgrad/nn/norm.hpp"
#include "xgrad/ops.hpp"

namespace xgrad::nn {

template <class T>
LayerNorm<T>::LayerNorm(Graph<T>& g, Shape shape, double eps, bool affine)
    : Module<T>(g), shape_(std::move(shape)), eps_(eps) {
  if (shape_.empty() || std::any_of(shape_.begin(), shape_.end(), [](Dim d) { return d < 1; })) {
    throw ValueError("nn::LayerNorm: normalised shape " + shape_str(shape_) +
                     " must be non-empty with positive extents");
  }
  if (affine) {
    std::vector<std::size_t> s(shape_.begin(), shape_.end());
    weight_ = this->register_parameter("weight", xt::ones<T>(s));
    bias_ = this->register_parameter("bias", xt::zeros<T>(s));
  }
}

template <class T>
Expr<T> LayerNorm<T>::forward(Expr<T> x) {
  const Shape& s = x.shape();
  if (s.size() < shape_.size() ||
      !std::equal(shape_.begin(), shape_.end(), s.end() - static_cast<Dim>(shape_.size()))) {
    throw ShapeError("nn::LayerNorm" + shape_str(shape_) + ": input " + x.graph().describe(x.id()) +
                     " must end in the normalised shape");
  }
  Expr<T> y = layer_norm(x, shape_.size(), eps_);
  return weight_ ? y * weight_ + bias_ : y;
}

template <class T>
BatchNorm<T>::BatchNorm(Graph<T>& g, std::size_t channels, const BatchNormOptions& o,
                        const char* name, std::size_t rank, std::size_t rank2)
    : Module<T>(g), channels_(channels), o_(o), name_(name), rank_(rank), rank2_(rank2) {
  if (channels == 0)
    throw ValueError(std::string(name) + ": the number of channels must be positive");
  if (!(o.eps > 0) || !std::isfinite(o.eps)) {
    throw ValueError(std::string(name) + ": eps " + std::to_string(o.eps) +
                     " must be positive and finite");
  }
  if (!(o.momentum >= 0 && o.momentum <= 1)) {
    throw ValueError(std::string(name) + ": momentum " + std::to_string(o.momentum) +
                     " must lie in [0, 1]");
  }
  const std::vector<std::size_t> c{channels};
  if (o.affine) {
    weight_ = this->register_parameter("weight", xt::ones<T>(c));
    bias_ = this->register_parameter("bias", xt::zeros<T>(c));
  }
  mean_ = this->register_buffer("running_mean", xt::zeros<T>(c));
  var_ = this->register_buffer("running_var", xt::ones<T>(c));
  count_ = this->register_buffer("num_batches_tracked", xt::xarray<T>(T(0)));
}

template <class T>
Expr<T> BatchNorm<T>::forward(Expr<T> x) {
  const Shape& s = x.shape();
  const Dim c = static_cast<Dim>(channels_);
  if ((s.size() != rank_ && s.size() != rank2_) || s[1] != c) {
    throw ShapeError(std::string(name_) + "(" + std::to_string(channels_) + "): input " +
                     x.graph().describe(x.id()) + " must have rank " + std::to_string(rank_) +
                     (rank2_ ? " or " + std::to_string(rank2_) : std::string()) + " and " +
                     std::to_string(channels_) + " channels in axis 1");
  }
  // Per-channel vectors broadcast against x as (c) for (n, c), (c, 1, ...) otherwise.
  Shape vs{c};
  vs.resize(s.size() - 1, 1);
  auto per_channel = [&](Expr<T> v) { return s.size() == 2 ? v : reshape(v, vs); };
  if (!this->training()) {
    // y = x * scale + shift, two passes over x instead of four.
    Expr<T> scale = T(1) / sqrt(var_ + static_cast<T>(o_.eps));
    if (weight_) scale = scale * weight_;
    Expr<T> shift = -(mean_ * scale);
    if (bias_) shift = shift + bias_;
    return x * per_channel(scale) + per_channel(shift);
  }
  std::vector<Dim> axes{0};
  Dim n = s[0];
  for (std::size_t i = 2; i < s.size(); ++i) {
    axes.push_back(static_cast<Dim>(i));
    n = n == open || s[i] == open ? open : n * s[i];
  }
  if (n == 1) {
    throw ValueError(std::string(name_) + ": input " + x.graph().describe(x.id()) +
                     " has one value per channel; training needs more to estimate a variance");
  }
  // The normalisation of batch_norm_batch_stats, with the statistics kept for the updates.
  Expr<T> mu = mean(x, axes, true);
  Expr<T> centred = x - mu;
  Expr<T> var = mean(square(centred), axes, true);
  Expr<T> y = centred / sqrt(var + static_cast<T>(o_.eps));
  if (weight_) y = y * per_channel(weight_) + per_channel(bias_);

  const T m = static_cast<T>(o_.momentum), keep = static_cast<T>(1 - o_.momentum);
  Expr<T> batch_var = reshape(var, {c});
  Expr<T> unbiased;
  if (n != open) {
    unbiased = batch_var * static_cast<T>(static_cast<double>(n) / static_cast<double>(n - 1));
  } else {
    Expr<T> count = size_of(x, axes);
    unbiased = safe_div(batch_var * count, count - T(1));
  }
  this->set_update(mean_, keep * mean_ + m * reshape(mu, {c}));
  this->set_update(var_, keep * var_ + m * unbiased);
  this->set_update(count_, wrapping_increment(count_));
  return y;
}

template <class T>
Embedding<T>::Embedding(Graph<T>& g, std::size_t count, std::size_t dim,
                        std::optional<std::uint64_t> seed)
    : Module<T>(g) {
  if (count == 0 || dim == 0) {
    throw ValueError("nn::Embedding: count " + std::to_string(count) + " and dim " +
                     std::to_string(dim) + " must be positive");
  }
  xt::xarray<T> w = xt::xarray<T>::from_shape({count, dim});
  init::normal(w, 0.0, 1.0, seed);
  weight_ = this->register_parameter("weight", std::move(w));
}

template <class T>
Expr<T> Embedding<T>::forward(Expr<T> indices) {
  if (indices.rank() != 1) {
    throw ShapeError("nn::Embedding: indices " + indices.graph().describe(indices.id()) +
                     " must be 1-d (flatten a batch of sequences first)");
  }
  return gather_rows(weight_, indices);
}

template class LayerNorm<float>;
template class LayerNorm<double>;
template class BatchNorm<float>;
template class BatchNorm<double>;
template class Embedding<float>;
template class Embedding<double>;

}  // namespace xgrad::nn
