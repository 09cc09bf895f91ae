// Running a row-tiled group (planned by tiling.cpp): each member's operands and kernel are
// resolved once per run, then every part (one range of rows per thread) runs its blocks of
// rows, and the parts' partial accumulators are added in part order after the group.
#include <algorithm>
#include <array>
#include <stdexcept>

#include "../kernels/loops.hpp"
#include "thread_pool.hpp"
#include "tiling.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad::exec {

namespace {

using tiling::Call;
using tiling::Group;
using tiling::Kernel;
using tiling::Member;
using tiling::Ref;
using tiling::Role;
using tiling::Tile;

}  // namespace

namespace {

// Operands and results of the members of a group for this run (inputs are rebound between
// runs), and the kernel each member runs on a block, for every part: parts read and write
// their own rows of full buffers, blocks of their own, and partial accumulators.
template <class T>
void resolve_calls(Plan<T>& p, Group<T>& gr, const GroupBuffers<T>& gb) {
  gr.calls.clear();
  const std::size_t ntiles = gr.tiles.size();
  for (std::size_t part = 0; part < gr.parts; ++part) {
    for (std::size_t ti = 0; ti < ntiles; ++ti) {
      gr.dims[part * ntiles + ti] = gr.tiles[ti].dims;
      gr.dims[part * ntiles + ti][0] = static_cast<Dim>(gr.rows);
    }
  }
  auto tile_ref = [&](std::int32_t ti, std::size_t part) {
    const Tile* t = &gr.tiles[static_cast<std::size_t>(ti)];
    Ref<T> r;
    r.dims = gr.dims[part * ntiles + static_cast<std::size_t>(ti)].data();
    r.rank = t->rank;
    r.row = t->row;
    while (t->same_as >= 0) t = &gr.tiles[static_cast<std::size_t>(t->same_as)];
    r.base = t->full ? p.slots[t->slot].data
                     : gb.blocks[part * gr.blocks_per_part + static_cast<std::size_t>(t->block)];
    r.step = t->full ? t->row : 0;
    return r;
  };
  auto slot_ref = [&](const Slot<T>& s) {
    Ref<T> r;
    r.base = s.data;
    r.whole = s.size;
    r.dims = s.dims;
    r.rank = s.rank;
    return r;
  };
  for (Member& m : gr.members) {
    if (m.role == Role::alias) continue;
    Slot<T>& o = p.slots[p.steps[m.step].out];
    if (m.role == Role::matmul_acc) {
      std::fill(o.data, o.data + o.size, T(0));
      for (std::size_t part = 1; part < gr.parts; ++part) {
        T* b = gb.blocks[static_cast<std::size_t>(m.partial_block) + part - 1];
        std::fill(b, b + o.size, T(0));
      }
    }
    // Same size every run: no allocation.
    if (m.role == Role::sum_rows) m.row_acc.assign(gr.parts * o.size, 0.0);
  }
  for (std::size_t part = 0; part < gr.parts; ++part) {
    for (Member& m : gr.members) {
      if (m.role == Role::alias) continue;
      const Step<T>& st = p.steps[m.step];
      Call<T> c;
      c.st = &st;
      c.m = &m;
      c.nin = st.in_count;
      if (c.nin > c.in.size()) {  // plan_groups admits no such member
        throw std::logic_error("row tiling: " + p.g->describe(st.id) + " has " +
                               std::to_string(c.nin) + " operands");
      }
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        std::int32_t ti = gr.arg_tile[m.arg_begin + k];
        c.in[k] = ti >= 0 ? tile_ref(ti, part) : slot_ref(p.slots[p.step_inputs[st.in_begin + k]]);
      }
      Slot<T>& o = p.slots[st.out];
      c.out = m.role == Role::rows ? tile_ref(m.out_tile, part) : slot_ref(o);
      if (m.role == Role::matmul_acc && part > 0)
        c.out.base = gb.blocks[static_cast<std::size_t>(m.partial_block) + part - 1];
      if (m.role == Role::sum_rows) c.row_acc = m.row_acc.data() + part * o.size;
      // Matrix-vector products by the kernels the matmul op itself would pick.
      const bool gemv = m.matmul && c.in[0].rank == 2 && c.in[0].row && c.in[1].rank == 1 &&
                        kernels::gemv_own<T>(c.in[0].row);
      if (m.role == Role::rows && gemv && !matmul_attrs(*st.attrs).transpose_a)
        c.kernel = Kernel::dots;
      if (m.role == Role::matmul_acc && gemv) c.kernel = Kernel::axpys;
      if (m.role == Role::sum || m.role == Role::mean) c.kernel = Kernel::sum;
      if (m.role == Role::sum_rows) c.kernel = Kernel::sum_rows;
      const MapKernels<T>& mk = st.traits->map;
      if (m.role == Role::rows && !m.matmul && (mk.unary || mk.binary)) {
        // Operands of the output's rows, or a single value: the op's loops without its
        // broadcast dispatch. Anything else (a broadcast row) goes through forward().
        c.map = &mk;
        auto rowwise = [&](const Ref<T>& r) { return r.row && r.row == c.out.row; };
        auto scalar = [&](const Ref<T>& r) { return !r.row && r.whole == 1; };
        if (c.nin == 1 && rowwise(c.in[0]) && c.map->unary) c.kernel = Kernel::unary;
        if (c.nin == 2 && c.map->binary) {
          if (rowwise(c.in[0]) && rowwise(c.in[1])) c.kernel = Kernel::binary;
          if (scalar(c.in[0]) && rowwise(c.in[1])) c.kernel = Kernel::scalar_a;
          if (rowwise(c.in[0]) && scalar(c.in[1])) c.kernel = Kernel::scalar_b;
        }
      }
      gr.calls.push_back(c);
    }
    if (part == 0) gr.calls_per_part = gr.calls.size();
  }
}

/// Part `part` of a group: rows [begin, end), block by block. A block of a few rows costs
/// little more than its members' calls, so the loop keeps to them: the member that threw
/// is found by the handler, and the finiteness check is compiled in or out.
template <class T, bool Check>
void run_part(Plan<T>& p, Group<T>& gr, std::size_t part, std::size_t begin, std::size_t end,
              const Step<T>*& current) {
  const std::size_t ntiles = gr.tiles.size();
  Call<T>* const calls = gr.calls.data() + part * gr.calls_per_part;
  Call<T>* const last = calls + gr.calls_per_part;
  Call<T>* c = calls;
  try {
    for (std::size_t r0 = begin; r0 < end; r0 += gr.rows) {
      const std::size_t rows = std::min(gr.rows, end - r0);
      if (rows != gr.rows) {  // the part's last block
        for (std::size_t ti = 0; ti < ntiles; ++ti)
          gr.dims[part * ntiles + ti][0] = static_cast<Dim>(rows);
      }
      for (c = calls; c != last; ++c) {
        switch (c->kernel) {
          case Kernel::dots:
            kernels::gemv_dots<T>(c->in[0].at(r0), rows, c->in[0].row, c->in[1].base, T(0),
                                  c->out.at(r0));
            break;
          case Kernel::axpys:
            // The block of A is in cache by now (A @ x read it); when A streams from memory,
            // its next block is prefetched meanwhile (docs/benchmarks.md, workload 2 on Zen 3).
            kernels::gemv_axpys<T>(
                c->in[0].at(r0), rows, c->in[0].row, c->in[1].at(r0), T(1), c->out.base,
                c->in[0].step && r0 + 2 * rows <= end ? c->in[0].at(r0 + rows) : nullptr);
            continue;
          case Kernel::sum:
            // In double and in row-major order, as the reduction over the whole array sums
            // each part: tiled and untiled runs give the same value.
            c->acc = xgrad::detail::sum_in_order(c->in[0].at(r0), c->in[0].size(rows), c->acc);
            continue;
          case Kernel::sum_rows: {
            // Row after row, in double, as sum_to over the whole array adds each part's rows;
            // the result is written once the last block is in.
            const T* x = c->in[0].at(r0);
            const std::size_t len = c->in[0].row;
            double* acc = c->row_acc;
            for (std::size_t r = 0; r < rows; ++r, x += len) xgrad::detail::accumulate(x, acc, len);
            continue;
          }
          case Kernel::unary:
            c->map->unary(c->in[0].at(r0), c->out.at(r0), c->out.size(rows), *c->st->attrs);
            break;
          case Kernel::binary:
            c->map->binary(c->in[0].at(r0), c->in[1].at(r0), c->out.at(r0), c->out.size(rows));
            break;
          case Kernel::scalar_a:
            c->map->scalar_a(c->in[0].base[0], c->in[1].at(r0), c->out.at(r0), c->out.size(rows));
            break;
          case Kernel::scalar_b:
            c->map->scalar_b(c->in[0].at(r0), c->in[1].base[0], c->out.at(r0), c->out.size(rows));
            break;
          case Kernel::forward: {
            std::array<ConstTensor<T>, 2> a;
            for (std::uint32_t k = 0; k < c->nin; ++k) {
              const Ref<T>& r = c->in[k];
              a[k] = ConstTensor<T>{r.at(r0), {r.dims, r.rank}, r.size(rows)};
            }
            Tensor<T> out{c->out.at(r0), {c->out.dims, c->out.rank}, c->out.size(rows)};
            if (c->m->role == Role::matmul_acc) {
              const MatmulAttrs ma = matmul_attrs(*c->st->attrs);
              kernels::matmul(a[0], a[1], out, ma.transpose_a, ma.transpose_b, T(1));
              continue;
            }
            c->st->op->forward(std::span<const ConstTensor<T>>(a.data(), c->nin), out,
                               *c->st->attrs);
            break;
          }
        }
        if constexpr (Check)
          p.check_values(*c->st, c->out.at(r0), c->out.size(rows), r0 * c->out.row);
      }
    }
  } catch (...) {
    current = c->st;
    throw;
  }
}

}  // namespace

template <class T>
void run_group(Plan<T>& p, std::uint32_t group, const Step<T>*& current) {
  Group<T>& gr = p.row_groups->groups[group];
  resolve_calls(p, gr, p.group_buffers[group]);
  std::fill(gr.failed.begin(), gr.failed.end(), nullptr);
  try {
    exec::parallel_for(gr.n, gr.parts, true, [&](std::size_t b, std::size_t e, std::size_t part) {
      const Step<T>* cur = nullptr;
      try {
        if (p.opts.check_finite) {
          run_part<T, true>(p, gr, part, b, e, cur);
        } else {
          run_part<T, false>(p, gr, part, b, e, cur);
        }
      } catch (...) {
        gr.failed[part] = cur;
        throw;
      }
    });
  } catch (...) {
    // The pool rethrows the exception of the first failing part: name its member.
    for (const Step<T>* f : gr.failed) {
      if (f) {
        current = f;
        break;
      }
    }
    throw;
  }
  // Results accumulated over the blocks are final only now: the parts' partial results
  // added in part order, set and checked.
  for (std::size_t ci = 0; ci < gr.calls_per_part; ++ci) {
    const Member& m = *gr.calls[ci].m;
    if (m.role == Role::rows || m.role == Role::alias) continue;
    const Step<T>& st = p.steps[m.step];
    current = &st;
    Slot<T>& o = p.slots[st.out];
    if (m.role == Role::sum || m.role == Role::mean) {
      double acc = 0;
      for (std::size_t part = 0; part < gr.parts; ++part)
        acc += gr.calls[part * gr.calls_per_part + ci].acc;
      double total = static_cast<double>(p.slots[p.step_inputs[st.in_begin]].size);
      o.data[0] = static_cast<T>(m.role == Role::mean ? acc / total : acc);
    }
    if (m.role == Role::sum_rows) {
      for (std::size_t i = 0; i < o.size; ++i) {
        double acc = 0;
        for (std::size_t part = 0; part < gr.parts; ++part) acc += m.row_acc[part * o.size + i];
        o.data[i] = static_cast<T>(acc);
      }
    }
    if (m.role == Role::matmul_acc) {
      const GroupBuffers<T>& gb = p.group_buffers[group];
      for (std::size_t part = 1; part < gr.parts; ++part) {
        const T* b = gb.blocks[static_cast<std::size_t>(m.partial_block) + part - 1];
        for (std::size_t i = 0; i < o.size; ++i) o.data[i] += b[i];
      }
    }
    p.check_values(st, o.data, o.size);
  }
}

template void run_group(Plan<float>&, std::uint32_t, const Step<float>*&);
template void run_group(Plan<double>&, std::uint32_t, const Step<double>*&);

}  // namespace xgrad::exec
