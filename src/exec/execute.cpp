// A run: every unit of the schedule in order, a step through its op's forward() on whole
// arrays, a row-tiled group through tiling.cpp. Errors from a kernel are re-thrown naming
// the node that was running.
#include <cstring>

#include "plan.hpp"

namespace xgrad::exec {

namespace {

std::string strip_prefix(const char* what) {
  std::string s = what;
  return s.rfind("xgrad: ", 0) == 0 ? s.substr(7) : s;
}

}  // namespace

template <class T>
void Plan<T>::execute() {
  // Alias outputs take their operand's buffer, which is only known once inputs are bound.
  for (std::uint32_t si : aliased)
    slots[steps[si].out].data = slots[step_inputs[steps[si].in_begin]].data;
  const Step<T>* current = nullptr;
  try {
    for (const Unit& u : units) {
      if (u.group) {
        run_group(*this, u.index, current);
        continue;
      }
      const Step<T>& st = steps[u.index];
      current = &st;
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        const Slot<T>& s = slots[step_inputs[st.in_begin + k]];
        args[k] = ConstTensor<T>{s.data, s.shape(), s.size};
      }
      Slot<T>& o = slots[st.out];
      st.op->forward(std::span<const ConstTensor<T>>(args.data(), st.in_count),
                     Tensor<T>{o.data, o.shape(), o.size}, *st.attrs);
      check_values(st, o.data, o.size);
    }
  } catch (const ShapeError& e) {
    throw ShapeError("while running " + g->describe(current->id) + ": " + strip_prefix(e.what()));
  } catch (const ValueError& e) {
    if (std::string(e.what()).find("check_finite") != std::string::npos) throw;
    throw ValueError("while running " + g->describe(current->id) + ": " + strip_prefix(e.what()));
  }
  // Results that are not op results (inputs, parameters, repeated results) are copied.
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    const Slot<T>& s = slots[out_pos[k]];
    xt::xarray<T>& r = result(k);
    if (r.data() != s.data && s.size) std::memcpy(r.data(), s.data, s.size * sizeof(T));
  }
}

template void Plan<float>::execute();
template void Plan<double>::execute();

}  // namespace xgrad::exec
