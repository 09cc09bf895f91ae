// A run: every unit of the schedule in order, a step through the kernel plan_calls() chose
// or its op's forward() on whole arrays, a row-tiled group through tiling.cpp. Errors from
// a kernel are re-thrown naming the node that was running.
#include <cstring>

#include "../kernels/loops.hpp"
#include "plan.hpp"
#include "thread_pool.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad::exec {

template <class T>
void Plan<T>::run_forward(const Step<T>& st, Slot<T>& o) {
  for (std::uint32_t k = 0; k < st.in_count; ++k) {
    const Slot<T>& s = slots[step_inputs[st.in_begin + k]];
    args[k] = ConstTensor<T>{s.data, s.shape(), s.size};
  }
  st.op->forward(std::span<const ConstTensor<T>>(args.data(), st.in_count),
                 Tensor<T>{o.data, o.shape(), o.size}, *st.attrs);
}

namespace {

/// Runs one step into its output slot o as Step::call says. In the executor's loop (one
/// call site): a call per step would cost more than the small steps it runs.
template <class T>
inline void run_step(Plan<T>& p, const Step<T>& st, Slot<T>& o) {
  const std::uint32_t* in = &p.step_inputs[st.in_begin];
  auto data = [&](std::uint32_t k) -> const T* { return p.slots[in[k]].data; };
  // Large maps in parts of the flat range, as the elementwise ops' forward() splits them;
  // the part count of a small one was decided when planning.
  auto flat = [&](auto&& part) {
    if (st.one_part) return part(std::size_t{0}, o.size);
    parallel_for_work(o.size, 1.0, kMinPartWork,
                      [&](std::size_t b, std::size_t e, std::size_t) { part(b, e - b); });
  };
  switch (st.call) {
    case Call::unary:
      return flat([&](std::size_t b, std::size_t n) {
        st.map->unary(data(0) + b, o.data + b, n, *st.attrs);
      });
    case Call::binary:
      return flat([&](std::size_t b, std::size_t n) {
        st.map->binary(data(0) + b, data(1) + b, o.data + b, n);
      });
    case Call::scalar_a:
      return flat([&](std::size_t b, std::size_t n) {
        st.map->scalar_a(data(0)[0], data(1) + b, o.data + b, n);
      });
    case Call::scalar_b:
      return flat([&](std::size_t b, std::size_t n) {
        st.map->scalar_b(data(0) + b, data(1)[0], o.data + b, n);
      });
    case Call::dots:
    case Call::axpys: {
      const T* A = data(st.matrix_first ? 0 : 1);
      const T* v = data(st.matrix_first ? 1 : 0);
      if (st.call == Call::dots) return kernels::gemv_dots(A, st.rows, st.cols, v, T(0), o.data);
      return kernels::gemv_axpys(A, st.rows, st.cols, v, T(0), o.data);
    }
    case Call::sum:
    case Call::mean: {
      const std::size_t n = p.slots[in[0]].size;
      const double acc = detail::sum_in_order(data(0), n);
      // The mean divides by the count in T, as the op does.
      o.data[0] =
          static_cast<T>(st.call == Call::sum ? acc : acc / static_cast<double>(static_cast<T>(n)));
      return;
    }
    case Call::forward:
      return p.run_forward(st, o);
  }
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
      Slot<T>& o = slots[st.out];
      run_step(*this, st, o);
      check_values(st, o.data, o.size);
    }
  } catch (const ShapeError& e) {
    throw ShapeError("while running " + g->describe(current->id) + ": " + e.message());
  } catch (const ValueError& e) {
    if (std::string(e.what()).find("check_finite") != std::string::npos) throw;
    throw ValueError("while running " + g->describe(current->id) + ": " + e.message());
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
