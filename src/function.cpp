// Compiled execution: Function is a handle on an exec::Plan. The passes that build and
// run the plan live in src/exec/ (plan.cpp lists their order).
#include "xgrad/function.hpp"

#include "exec/plan.hpp"

namespace xgrad {

template <class T>
struct Function<T>::Impl : exec::Plan<T> {
  using exec::Plan<T>::Plan;
};

template <class T>
Function<T>::Function(std::vector<Expr<T>> outputs, CompileOptions opts,
                      std::vector<Update<T>> updates)
    : impl_(std::make_unique<Impl>(std::move(outputs), opts, std::move(updates))) {}

template <class T>
Function<T>::~Function() = default;
template <class T>
Function<T>::Function(Function&&) noexcept = default;
template <class T>
Function<T>& Function<T>::operator=(Function&&) noexcept = default;

template <class T>
const std::vector<xt::xarray<T>>& Function<T>::run(std::initializer_list<Feed<T>> feeds) {
  return run(std::span<const Feed<T>>(feeds.begin(), feeds.size()));
}

template <class T>
const std::vector<xt::xarray<T>>& Function<T>::run(std::span<const Feed<T>> feeds) {
  impl_->bind(feeds);
  impl_->execute();
  if (!impl_->updates.empty()) impl_->write_updates();  // a call per run counts in tiny steps
  return impl_->results;
}

template <class T>
const std::vector<xt::xarray<T>>& Function<T>::results() const {
  return impl_->results;
}
template <class T>
const std::vector<Expr<T>>& Function<T>::outputs() const {
  return impl_->outputs;
}
template <class T>
const std::vector<Update<T>>& Function<T>::updates() const {
  return impl_->updates;
}
template <class T>
const std::vector<Expr<T>>& Function<T>::inputs() const {
  return impl_->inputs;
}
template <class T>
std::size_t Function<T>::num_steps() const {
  return impl_->steps.size();
}
template <class T>
std::size_t Function<T>::plan_count() const {
  return impl_->plans;
}
template <class T>
std::size_t Function<T>::workspace_bytes() const {
  return impl_->arena.size() * sizeof(T);
}
template <class T>
std::size_t Function<T>::tiled_groups() const {
  return impl_->group_buffers.size();
}
template <class T>
std::size_t Function<T>::tiled_steps() const {
  return impl_->tiled_steps;
}

template <class T>
std::size_t Function<T>::direct_steps() const {
  return impl_->direct_steps;
}

template class Function<float>;
template class Function<double>;

}  // namespace xgrad
