// Updates (xgrad::Update): state a run writes back into parameter values. Their values are
// results of the plan like the outputs (plan.cpp appends them), so each has a buffer of its
// own that no later step reuses; writing them only after execute() has finished is what
// lets every step of the run read the values from before it. Same shapes make the write a
// copy, so a run still allocates nothing.
#include <cstring>

#include "plan.hpp"

namespace xgrad::exec {

template <class T>
void Plan<T>::check_updates() const {
  for (std::size_t k = 0; k < updates.size(); ++k) {
    const Update<T>& u = updates[k];
    const std::string which = "compile: update " + std::to_string(k);
    if (!u.target.valid() || !u.value.valid()) {
      throw GraphError(which + " has an invalid (empty) target or value");
    }
    if (&u.target.graph() != g || &u.value.graph() != g) {
      throw GraphError(which + ": its target and value must belong to the outputs' graph");
    }
    const Node<T>& t = g->node(u.target.id());
    if (t.kind != NodeKind::parameter) {
      throw GraphError(which + ": the target " + g->describe(u.target.id()) +
                       " is not a parameter; only parameters (module buffers) hold state");
    }
    for (std::size_t j = 0; j < k; ++j) {
      if (updates[j].target == u.target) {
        throw GraphError(which + ": the target " + g->describe(u.target.id()) +
                         " is already the target of update " + std::to_string(j));
      }
    }
    const Shape& vs = g->node(u.value.id()).shape;
    const auto& ts = t.value.shape();
    bool fits = vs.size() == ts.size();
    for (std::size_t i = 0; fits && i < vs.size(); ++i)
      fits = vs[i] == open || vs[i] == static_cast<Dim>(ts[i]);
    if (!fits) {
      throw ShapeError(which + ": the value " + g->describe(u.value.id()) +
                       " cannot fit the target " + g->describe(u.target.id()) + " whose value is " +
                       shape_str(Shape(ts.begin(), ts.end())));
    }
  }
}

template <class T>
void Plan<T>::write_updates() {
  // All shapes first: a mismatch leaves every target as it was.
  for (std::size_t k = 0; k < updates.size(); ++k) {
    const xt::xarray<T>& v = update_values[k];
    const xt::xarray<T>& t = g->node(updates[k].target.id()).value;
    if (!same_dims(v.shape(), t.shape())) {
      throw ShapeError("run: update " + std::to_string(k) + ": the value " +
                       g->describe(updates[k].value.id()) + " has shape " +
                       shape_str(Shape(v.shape().begin(), v.shape().end())) +
                       " at run time, the target " + g->describe(updates[k].target.id()) +
                       " holds " + shape_str(Shape(t.shape().begin(), t.shape().end())));
    }
  }
  for (std::size_t k = 0; k < updates.size(); ++k) {
    const xt::xarray<T>& v = update_values[k];
    if (v.size()) std::memcpy(g->value(updates[k].target).data(), v.data(), v.size() * sizeof(T));
  }
}

template void Plan<float>::check_updates() const;
template void Plan<double>::check_updates() const;
template void Plan<float>::write_updates();
template void Plan<double>::write_updates();

}  // namespace xgrad::exec
