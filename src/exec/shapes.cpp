// Run-time shapes of every slot. When no operand of a step changed shape, its output has
// its declared shape (infer_shape gave it for exactly those operands at build time) and
// nothing is computed or stored: graphs with static shapes plan in one cheap pass.
#include "plan.hpp"

namespace xgrad::exec {

template <class T>
void Plan<T>::plan_shapes() {
  auto set_leaf = [&](Slot<T>& s, std::uint32_t p, const Shape& rt) {
    s.dims = rt.data();
    s.rank = static_cast<std::uint32_t>(rt.size());
    s.size = shape_size(rt);
    std::span<const Dim> d = declared(p);
    bool same = std::equal(rt.begin(), rt.end(), d.begin(), d.end());
    s.flags = static_cast<std::uint8_t>(same ? (s.flags & ~kChanged) : (s.flags | kChanged));
  };
  for (Bound<T>& b : bound) {
    set_leaf(slots[b.pos], b.pos, b.shape);
    if (b.dtype != dtype_of<T>()) b.converted.resize(slots[b.pos].size);
  }
  for (std::size_t i = 0; i < leaves.size(); ++i)
    set_leaf(slots[leaves[i]], leaves[i], leaf_shapes[i]);

  pool.clear();
  std::vector<std::pair<std::uint32_t, std::size_t>> pooled;  // slot, offset in pool
  for (const Step<T>& st : steps) {
    Slot<T>& o = slots[st.out];
    bool changed_in = false;
    for (std::uint32_t k = 0; k < st.in_count; ++k)
      changed_in = changed_in || (slots[step_inputs[st.in_begin + k]].flags & kChanged);
    if (!changed_in && (o.flags & kConcrete)) {
      if (o.flags & kChanged) {  // back to the declared shape after a change
        std::span<const Dim> d = declared(st.out);
        o.dims = d.data();
        o.rank = static_cast<std::uint32_t>(d.size());
        o.size = shape_size(d);
        o.flags &= static_cast<std::uint8_t>(~kChanged);
      }
      continue;
    }
    for (std::uint32_t k = 0; k < st.in_count; ++k) {
      std::span<const Dim> d = slots[step_inputs[st.in_begin + k]].shape();
      operand_shapes[k].assign(d.begin(), d.end());
    }
    auto fail = [&](const std::string& why) {
      std::string msg = std::string(st.op->name()) + " at " + g->describe(st.id) + ": " + why +
                        "; operands at run time:";
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        std::uint32_t p = step_inputs[st.in_begin + k];
        msg += (k ? ", " : " ") + g->describe(order[p]) + " = " + shape_str(slots[p].shape());
      }
      throw ShapeError(msg);
    };
    Shape out;
    try {
      out =
          st.op->infer_shape(std::span<const Shape>(operand_shapes.data(), st.in_count), *st.attrs);
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
    if (shape_overflows(out)) {
      fail("the element count of shape " + shape_str(out) + " overflows a 64-bit index");
    }
    std::span<const Dim> d = declared(st.out);
    o.size = shape_size(out);
    o.rank = static_cast<std::uint32_t>(out.size());
    if (std::equal(out.begin(), out.end(), d.begin(), d.end())) {
      o.dims = d.data();
      o.flags &= static_cast<std::uint8_t>(~kChanged);
    } else {
      // Later steps read this shape during this loop: point at the pool now, and re-point
      // every pooled shape whenever the pool moves.
      const Dim* before = pool.data();
      pooled.emplace_back(st.out, pool.size());
      pool.insert(pool.end(), out.begin(), out.end());
      if (pool.data() != before) {
        for (auto [p, off] : pooled) slots[p].dims = pool.data() + off;
      }
      o.dims = pool.data() + pooled.back().second;
      o.flags |= kChanged;
    }
  }
}

template void Plan<float>::plan_shapes();
template void Plan<double>::plan_shapes();

}  // namespace xgrad::exec
