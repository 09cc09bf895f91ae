// The parameter broadcast and the averaging allreduce (include/xgrad/dist/dist.hpp), for
// float and double.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "xgrad/dist/dist.hpp"
#include "xgrad/error.hpp"

namespace xgrad::dist {

namespace {

template <class T>
MPI_Datatype mpi_type() {
  return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

// MPI counts are int: a buffer is exchanged in pieces of at most 2^30 values.
constexpr std::size_t kPiece = std::size_t{1} << 30;

}  // namespace

template <class T>
void broadcast_parameters(const Session& session, const std::vector<Expr<T>>& params) {
  std::size_t total = 0;
  for (const auto& p : params) total += p.graph().value(p).size();
  session.check_same("broadcast_parameters: the number of parameters", params.size());
  session.check_same("broadcast_parameters: the number of parameter values", total);
  for (const auto& p : params) {
    xt::xarray<T>& v = p.graph().value(p);
    session.check_same("broadcast_parameters: the size of parameter '" + p.name() + "'", v.size());
    for (std::size_t at = 0; at < v.size(); at += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, v.size() - at));
      if (MPI_Bcast(v.data() + at, n, mpi_type<T>(), 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
        throw Error("xgrad::dist::broadcast_parameters: MPI_Bcast failed");
      }
    }
  }
}

template <class T>
GradientAverager<T>::GradientAverager(const Session& session, AverageOptions options)
    : session_(&session), opts_(options) {}

template <class T>
const std::vector<xt::xarray<T>>& GradientAverager<T>::reduce(
    const std::vector<xt::xarray<T>>& outputs, std::size_t sums_first, std::size_t sums_last) {
  ++steps_;
  // Shapes: kept from the last call unless they changed (then results are reshaped once).
  if (results_.size() != outputs.size()) results_.resize(outputs.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (!std::equal(results_[i].shape().begin(), results_[i].shape().end(),
                    outputs[i].shape().begin(), outputs[i].shape().end())) {
      results_[i].resize(outputs[i].shape());
    }
    total += outputs[i].size();
  }
  if (buffer_.size() != total) {
    // Once, not per step (a second collective per step): ranks whose outputs differ in
    // size would otherwise meet in an allreduce of different lengths.
    session_->check_same("GradientAverager: the number of values averaged", total);
    buffer_.resize(total);
  }

  T* at = buffer_.data();
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const T* src = outputs[i].data();
    const std::size_t n = outputs[i].size();
    if (opts_.check_finite) {
      for (std::size_t j = 0; j < n; ++j) {
        if (!std::isfinite(src[j])) {
          throw ValueError("xgrad::dist::GradientAverager: step " + std::to_string(steps_) +
                           ": output " + std::to_string(i) + " has a non-finite value (" +
                           std::to_string(src[j]) + " at element " + std::to_string(j) +
                           (i == 0 ? ", the loss" : "") + ") on rank " +
                           std::to_string(session_->rank()));
        }
      }
    }
    at = std::copy(src, src + n, at);
  }
  for (std::size_t off = 0; off < total; off += kPiece) {
    const int n = static_cast<int>(std::min(kPiece, total - off));
    if (MPI_Allreduce(MPI_IN_PLACE, buffer_.data() + off, n, mpi_type<T>(), MPI_SUM,
                      MPI_COMM_WORLD) != MPI_SUCCESS) {
      throw Error("xgrad::dist::GradientAverager: MPI_Allreduce failed");
    }
  }
  const T mean = T(1) / static_cast<T>(session_->size());
  const T* from = buffer_.data();
  for (std::size_t i = 0; i < results_.size(); ++i) {
    auto& r = results_[i];
    const T scale = i >= sums_first && i < sums_last ? T(1) : mean;
    T* dst = r.data();
    for (std::size_t j = 0; j < r.size(); ++j) dst[j] = from[j] * scale;
    from += r.size();
  }
  return results_;
}

template void broadcast_parameters<float>(const Session&, const std::vector<Expr<float>>&);
template void broadcast_parameters<double>(const Session&, const std::vector<Expr<double>>&);
template class GradientAverager<float>;
template class GradientAverager<double>;

}  // namespace xgrad::dist
