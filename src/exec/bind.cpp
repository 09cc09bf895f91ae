// Binding: checks each fed value against its input node (graph, kind, dtype, layout,
// shape), points the input slots at the values (integer values converted to T into a
// buffer sized by the plan), and re-plans only when some shape changed.
#include <algorithm>
#include <limits>

#include "plan.hpp"
#include "xgrad/threads.hpp"

namespace xgrad::exec {

namespace {

template <class S>
std::string dims_str(const S& s) {
  Shape d(s.begin(), s.end());
  return shape_str(d);
}

// shape_overflows() for a bound value's extents, without copying them (binding must not
// allocate).
bool overflows(std::span<const std::size_t> s) {
  Dim n = 1;
  for (std::size_t d : s) {
    if (d == 0) continue;
    if (d > static_cast<std::size_t>(std::numeric_limits<Dim>::max()) ||
        __builtin_mul_overflow(n, static_cast<Dim>(d), &n)) {
      return true;
    }
  }
  return false;
}

}  // namespace

template <class T>
void Plan<T>::bind(std::span<const Feed<T>> feeds) {
  try {
    bind_and_plan(feeds);
  } catch (...) {
    // A failed binding or plan may have left shapes half updated: plan afresh next time.
    planned = false;
    throw;
  }
}

template <class T>
bool Plan<T>::bind_same(std::span<const Feed<T>> feeds) {
  if (!planned || feeds.size() != last_feeds.size()) return false;
  // Pointers are taken as the checks pass: when one fails, the full binding rebinds all.
  for (std::size_t k = 0; k < feeds.size(); ++k) {
    const Feed<T>& f = feeds[k];
    const auto [id, bi] = last_feeds[k];
    if (!f.input.valid() || &f.input.graph() != g || f.input.id() != id) return false;
    if (bi == kUnused) continue;
    Bound<T>& b = bound[bi];
    const TensorArg& v = f.value;
    if (v.dtype() != b.dtype || !v.row_major() || !same_dims(b.shape, v.shape())) return false;
    b.data = v.data();
  }
  return true;
}

template <class T>
void Plan<T>::bind_and_plan(std::span<const Feed<T>> feeds) {
  if (graph_alive.expired()) {
    throw GraphError("run: the graph this Function was compiled from has been destroyed");
  }
  // A new thread count re-plans too: row-tiled groups keep blocks and partial sums per thread.
  bool reshape = !planned || threads != num_threads();
  if (!bind_same(feeds)) {
    last_feeds.clear();
    for (Bound<T>& b : bound) b.given = false;
    for (std::size_t k = 0; k < feeds.size(); ++k) {
      const Feed<T>& f = feeds[k];
      if (!f.input.valid()) {
        throw BindingError("run: binding " + std::to_string(k) +
                           " names an invalid (empty) Expr handle instead of an input");
      }
      if (&f.input.graph() != g) {
        throw BindingError("run: binding " + std::to_string(k) +
                           " names a node of another graph than the Function's");
      }
      const Node<T>& n = g->node(f.input.id());
      for (std::size_t j = 0; j < k; ++j) {
        if (feeds[j].input == f.input) {
          throw BindingError("run: input " + g->describe(f.input.id()) +
                             " is bound twice (bindings " + std::to_string(j) + " and " +
                             std::to_string(k) + ")");
        }
      }
      if (n.kind != NodeKind::input) {
        throw BindingError("run: " + g->describe(f.input.id()) +
                           " is not an input; only inputs take values per run");
      }
      auto it = std::find_if(bound.begin(), bound.end(),
                             [&](const Bound<T>& b) { return order[b.pos] == f.input.id(); });
      if (it == bound.end()) {  // an input these outputs do not use
        last_feeds.emplace_back(f.input.id(), kUnused);
        continue;
      }
      const TensorArg& v = f.value;
      bool int_input = n.dtype == DType::int32 || n.dtype == DType::int64;
      bool int_value = v.dtype() == DType::int32 || v.dtype() == DType::int64;
      if (int_input ? !int_value : v.dtype() != n.dtype) {
        throw BindingError("run: input " + g->describe(f.input.id()) + " expects " +
                           dtype_name(n.dtype) + " values, got " + dtype_name(v.dtype()));
      }
      if (!v.row_major()) {
        throw BindingError("run: the value for input " + g->describe(f.input.id()) +
                           " is not row-major; evaluate it into an xt::xarray first");
      }
      auto vs = v.shape();
      bool fits = vs.size() == n.shape.size();
      for (std::size_t i = 0; fits && i < vs.size(); ++i) {
        fits = n.shape[i] == open || n.shape[i] == static_cast<Dim>(vs[i]);
      }
      if (!fits) {
        throw BindingError("run: input " + g->describe(f.input.id()) +
                           " cannot take a value of shape " + dims_str(vs));
      }
      if (overflows(vs)) {
        throw BindingError("run: input " + g->describe(f.input.id()) + ": the element count of " +
                           dims_str(vs) + " overflows a 64-bit index");
      }
      it->data = v.data();
      it->given = true;
      it->dtype = v.dtype();
      if (!same_dims(it->shape, vs)) {
        it->shape.assign(vs.begin(), vs.end());
        reshape = true;
      }
      last_feeds.emplace_back(f.input.id(), static_cast<std::uint32_t>(it - bound.begin()));
    }
    for (const Bound<T>& b : bound) {
      if (!b.given) {
        last_feeds.clear();
        throw BindingError("run: input " + g->describe(order[b.pos]) + " is not bound");
      }
    }
  }
  // Planning sets only the op results' pointers, so the leaves' can be taken first.
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    const xt::xarray<T>& v = *leaf_values[i];
    if (!same_dims(leaf_shapes[i], v.shape())) {
      leaf_shapes[i].assign(v.shape().begin(), v.shape().end());
      reshape = true;
    }
    slots[leaves[i]].data = const_cast<T*>(v.data());
  }
  if (reshape) plan();
  for (Bound<T>& b : bound) {
    Slot<T>& s = slots[b.pos];
    if (b.dtype == dtype_of<T>()) {
      s.data = const_cast<T*>(static_cast<const T*>(b.data));
      if (opts.check_finite) check_input(b.pos, s.data, s.size);
      continue;
    }
    s.data = b.converted.data();
    for (std::size_t i = 0; i < s.size; ++i) {
      s.data[i] = b.dtype == DType::int32
                      ? static_cast<T>(static_cast<const std::int32_t*>(b.data)[i])
                      : static_cast<T>(static_cast<const std::int64_t*>(b.data)[i]);
    }
  }
}

template <class T>
void Plan<T>::check_input(std::uint32_t pos, const T* data, std::size_t n) const {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) {
      throw ValueError("check_finite: the value bound to input " + g->describe(order[pos]) +
                       " holds " + std::to_string(data[i]) + " at flat index " + std::to_string(i));
    }
  }
}

template void Plan<float>::bind(std::span<const Feed<float>>);
template void Plan<double>::bind(std::span<const Feed<double>>);

}  // namespace xgrad::exec
