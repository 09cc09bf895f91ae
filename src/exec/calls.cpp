// How each step runs: forward() re-decides on every call what its operands' shapes and the
// thread count already decided when planning (broadcasting, the matrix-vector kernel,
// the part count), at a cost that exceeds the work on small arrays (the seed's 4 x 3
// regression). Where that decision leads straight to one kernel, the step calls it
// directly, with forward()'s bits; everything else keeps forward().
#include "../kernels/loops.hpp"
#include "plan.hpp"
#include "thread_pool.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad::exec {

template <class T>
void Plan<T>::plan_calls() {
  // Only the steps run one by one: a row-tiled group's members and the aliased steps (in
  // no unit) never read Step::call.
  direct_steps = 0;
  if (!opts.direct_calls) return;  // every call stays Call::forward, as constructed
  for (const Unit& u : units) {
    if (u.group) continue;
    Step<T>& st = steps[u.index];
    st.call = Call::forward;
    const OpTraits<T>& tr = *st.traits;
    const Slot<T>& o = slots[st.out];
    if (tr.shape_only || tr.shape_operand >= 0 || o.size == 0) continue;
    const std::uint32_t* in = &step_inputs[st.in_begin];
    const std::size_t n0 = slots[in[0]].size;
    const std::size_t n1 = st.in_count > 1 ? slots[in[1]].size : 0;
    switch (tr.rows) {
      case RowRole::elementwise:
        // An operand of the output's element count has the output's shape up to leading
        // 1s (broadcasting only repeats), so the flat loops see the elements forward() does.
        st.map = &tr.map;
        st.one_part = parts_for_work(o.size, 1.0, kMinPartWork) == 1;
        if (st.in_count == 1 && tr.map.unary && n0 == o.size) st.call = Call::unary;
        if (st.in_count == 2 && tr.map.binary) {
          if (n0 == o.size && n1 == o.size) {
            st.call = Call::binary;
          } else if (n0 == 1 && n1 == o.size && tr.map.scalar_a) {
            st.call = Call::scalar_a;
          } else if (n1 == 1 && n0 == o.size && tr.map.scalar_b) {
            st.call = Call::scalar_b;
          }
        }
        break;
      case RowRole::matmul: {
        const MatmulAttrs ma = matmul_attrs(*st.attrs);
        const kernels::GemvForm f = kernels::gemv_form<T>(
            slots[in[0]].shape(), slots[in[1]].shape(), ma.transpose_a, ma.transpose_b);
        st.matrix_first = f.matrix_first;
        st.rows = f.rows;
        st.cols = f.cols;
        if (f.kind == kernels::GemvForm::dots) st.call = Call::dots;
        if (f.kind == kernels::GemvForm::axpys) st.call = Call::axpys;
        break;
      }
      case RowRole::sum:
      case RowRole::mean: {
        // The sum op's partition (exec::parts_for over the leading axis): one part sums in
        // order; more go through forward(). A mean of nothing is forward()'s error.
        const std::span<const Dim> s = slots[in[0]].shape();
        const std::size_t rows = s.empty() ? 1 : static_cast<std::size_t>(s[0]);
        if (o.size == 1 && parts_for(rows) == 1 && (tr.rows == RowRole::sum || n0 > 0))
          st.call = tr.rows == RowRole::sum ? Call::sum : Call::mean;
        break;
      }
      default:
        break;
    }
    if (st.call != Call::forward) ++direct_steps;
  }
}

template void Plan<float>::plan_calls();
template void Plan<double>::plan_calls();

}  // namespace xgrad::exec
