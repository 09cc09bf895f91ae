// The layers of nn/norm.hpp.
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
template class Embedding<float>;
template class Embedding<double>;

}  // namespace xgrad::nn
