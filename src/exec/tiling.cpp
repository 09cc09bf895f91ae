// Row-tiled groups. Steps whose operands and results share a leading extent n (the rows
// of a large input) run block of rows by block of rows: a chain such as X @ w - y, its
// square, the mean, and X^T @ (...) for the gradient reads each block of X from memory
// once and finds it in cache for the later steps, instead of streaming all of X for each
// product. Members: elementwise ops and broadcasts over rows (operands are the same rows,
// or broadcast along them), X @ W with W whole, copies between equal sizes (shared
// tiles), and reductions over the rows that accumulate block by block: sums and means of
// all elements, X^T @ G, sum_to(G, shape(b)) for a row b. Steps that read no member's
// values (shapes are known) are hoisted before the group; a step that needs a finished
// member (a reduction's value, a whole tiled result) ends the group.
//
// Planning is two passes over the schedule (GroupPlanner): which steps join which group,
// then each group's tiles, block size and buffer needs. Running a group (run_group,
// tiling_run.cpp) resolves each member's operands once, then calls each member's kernel on
// every block.
#include "tiling.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include "../kernels/loops.hpp"
#include "thread_pool.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad::exec {

namespace {

// A group streams operands of at least this many bytes...
constexpr std::size_t kTileMinStreamBytes = std::size_t{2} << 20;
// ...in blocks of rows whose operands and results take a fraction of the level-1 data
// cache (unless CompileOptions::tile_bytes says otherwise), so that a block read from
// memory by one step is still in that cache for the next, and the stream of the next
// block's rows is not left idle for long while a block is computed from cache. Smaller
// blocks pay the per-block cost of the executor more often. Measured best: 16 KiB on a
// Xeon's 48 KiB cache, 6 KiB on the 32 KiB of Zen 3 (docs/benchmarks.md).
std::size_t tile_bytes_for_cache() {
  static const std::size_t bytes = [] {
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);  // 0 or -1 where unknown
    return l1 > 0 && l1 < (48 << 10) ? std::size_t{6} << 10 : std::size_t{16} << 10;
  }();
  return bytes;
}
// Groups with matrix-matrix products take larger blocks, within the level-2 cache: BLAS
// is slow on a few rows.
constexpr std::size_t kGemmTileBytes = std::size_t{256} << 10;

using tiling::Call;
using tiling::Group;
using tiling::Kernel;
using tiling::Member;
using tiling::Ref;
using tiling::Role;
using tiling::Tile;

}  // namespace

template <class T>
void RowGroupsDelete<T>::operator()(RowGroups<T>* r) const noexcept {
  delete r;
}

namespace {

/// The planner's state between its two passes: the group each result belongs to and
/// whether it is final only after the last block.
template <class T>
class GroupPlanner {
 public:
  GroupPlanner(Plan<T>& p, std::vector<Group<T>>& groups)
      : p_(p), groups_(groups), gid_(p.slots.size(), -1), reduced_(p.slots.size(), 0) {}

  /// First pass: every step becomes a unit of its own, joins the open group, or is
  /// hoisted before it.
  void schedule() {
    for (std::size_t si = 0; si < p_.steps.size(); ++si) place(static_cast<std::uint32_t>(si));
    close();
  }

  /// Second pass: each group's tiles, block size and buffer needs.
  void lay_out() {
    const std::vector<std::uint32_t> unit_of = last_readers();
    p_.group_buffers.resize(groups_.size());
    for (const Unit& u : p_.units) {
      if (!u.group) continue;
      Group<T>& gr = groups_[u.index];
      const auto id = static_cast<std::int32_t>(u.index);
      lay_out_tiles(gr, id, unit_of);
      gr.rows = block_rows(gr);
      gr.parts = exec::parts_for(gr.n);
      gr.calls.reserve(gr.parts * gr.members.size());
      gr.dims.resize(gr.parts * gr.tiles.size());
      gr.failed.assign(gr.parts, nullptr);
      p_.group_buffers[u.index] = buffer_needs(gr, id);
      p_.tiled_steps += gr.members.size();
    }
  }

 private:
  const Slot<T>& slot(std::uint32_t p) const { return p_.slots[p]; }
  std::uint32_t operand(const Step<T>& st, std::uint32_t k) const {
    return p_.step_inputs[st.in_begin + k];
  }
  Dim rows_of(std::uint32_t p) const { return slot(p).rank ? slot(p).dims[0] : Dim{-1}; }
  bool member(std::uint32_t p) const { return cur_ >= 0 && gid_[p] == cur_; }

  void place(std::uint32_t si) {
    const Step<T>& st = p_.steps[si];
    const OpTraits<T>& tr = *st.traits;
    if (cur_ >= 0 && tr.shape_only) return hoist(si);  // reads shapes only
    Role role{};
    std::size_t streamed = 0;
    if (cur_ >= 0 && role_in(st, tr, static_cast<Dim>(open_group().n), role, streamed))
      return join(si, tr, role, streamed);
    if (cur_ >= 0 && !reads_member(st, tr)) return hoist(si);
    close();
    // A group starts at a step over the rows of a large operand it streams.
    const Slot<T>& os = slot(st.out);
    const bool starts = os.rank >= 1 && os.dims[0] >= 64 &&
                        role_in(st, tr, os.dims[0], role, streamed) && role == Role::rows &&
                        streamed >= kTileMinStreamBytes;
    if (!starts) {
      p_.units.push_back({false, si});
      return;
    }
    groups_.emplace_back();
    groups_.back().n = static_cast<std::size_t>(os.dims[0]);
    cur_ = static_cast<std::int32_t>(groups_.size() - 1);
    join(si, tr, role, streamed);
  }

  Group<T>& open_group() { return groups_[static_cast<std::size_t>(cur_)]; }
  void hoist(std::uint32_t si) { open_group().pre.push_back(si); }
  void join(std::uint32_t si, const OpTraits<T>& tr, Role role, std::size_t streamed) {
    Group<T>& gr = open_group();
    gr.members.push_back({si, role, 0, -1, tr.rows == RowRole::matmul});
    gr.streamed += streamed;
    const std::uint32_t o = p_.steps[si].out;
    gid_[o] = cur_;
    reduced_[o] = role != Role::rows && role != Role::alias;
  }

  /// Ends the open group: it runs as one if it pays, else its members run alone.
  void close() {
    if (cur_ < 0) return;
    Group<T>& gr = open_group();
    for (std::uint32_t st : gr.pre) p_.units.push_back({false, st});
    if (gr.members.size() >= 2 && gr.streamed >= kTileMinStreamBytes) {
      p_.units.push_back({true, static_cast<std::uint32_t>(cur_)});
    } else {
      for (const Member& m : gr.members) {
        p_.units.push_back({false, m.step});
        gid_[p_.steps[m.step].out] = -1;
      }
      groups_.pop_back();
    }
    cur_ = -1;
  }

  bool reads_member(const Step<T>& st, const OpTraits<T>& tr) const {
    bool any = false;
    for_value_operands(st, p_.step_inputs, tr,
                       [&](std::uint32_t, std::uint32_t p) { any = any || member(p); });
    return any;
  }
  bool reads_reduced(const Step<T>& st, const OpTraits<T>& tr) const {
    bool any = false;
    for_value_operands(st, p_.step_inputs, tr, [&](std::uint32_t, std::uint32_t p) {
      any = any || (member(p) && reduced_[p]);
    });
    return any;
  }

  /// Operand p has the same n rows as the output and the given rank, and is not a
  /// finished reduction; what it streams from outside the group is added up.
  bool by_rows(std::uint32_t p, std::uint32_t rank, Dim n, std::size_t& streamed) const {
    if (slot(p).rank != rank || rows_of(p) != n) return false;
    if (!member(p)) streamed += slot(p).size * sizeof(T);
    return !member(p) || !reduced_[p];
  }

  /// The role step st would have in a group over n rows, if any.
  bool role_in(const Step<T>& st, const OpTraits<T>& tr, Dim n, Role& role,
               std::size_t& streamed) const {
    streamed = 0;
    if (reads_reduced(st, tr) || n <= 0) return false;
    const Slot<T>& os = slot(st.out);
    if (tr.copy_when_same_size && st.in_count >= 1 && member(operand(st, 0)) &&
        !reduced_[operand(st, 0)] && slot(operand(st, 0)).size == os.size && os.rank >= 1 &&
        os.dims[0] == n) {
      role = Role::alias;  // (reads_reduced, checked above, covers the other operands)
      return true;
    }
    switch (tr.rows) {
      case RowRole::elementwise:
        role = Role::rows;
        return elementwise_fits(st, tr, n, streamed);
      case RowRole::sum_to:
        role = Role::sum_rows;
        return sums_rows(st, n, streamed);
      case RowRole::matmul:
        return matmul_role(st, n, role, streamed);
      case RowRole::sum:
      case RowRole::mean: {
        role = tr.rows == RowRole::sum ? Role::sum : Role::mean;
        if (st.in_count != 1) return false;
        const std::uint32_t x = operand(st, 0);
        return os.rank == 0 && os.size == 1 && by_rows(x, slot(x).rank, n, streamed) &&
               slot(x).rank >= 1;
      }
      case RowRole::none:
        return false;
    }
    return false;
  }

  // Every operand read is the same rows, or a whole value repeated along them.
  bool elementwise_fits(const Step<T>& st, const OpTraits<T>& tr, Dim n,
                        std::size_t& streamed) const {
    const Slot<T>& os = slot(st.out);
    if (os.rank == 0 || os.dims[0] != n) return false;
    bool fits = true;
    for_value_operands(st, p_.step_inputs, tr, [&](std::uint32_t, std::uint32_t p) {
      const bool whole = !member(p) && (slot(p).rank < os.rank || rows_of(p) == 1);
      fits = fits && (whole || by_rows(p, os.rank, n, streamed));
    });
    return fits;
  }

  // sum_to(G, shape(b)) for a row b of G: the rows summed into one.
  bool sums_rows(const Step<T>& st, Dim n, std::size_t& streamed) const {
    if (st.in_count != 2) return false;
    const Slot<T>& os = slot(st.out);
    const std::uint32_t x = operand(st, 0);
    return slot(x).rank >= 2 && by_rows(x, slot(x).rank, n, streamed) &&
           os.size == slot(x).size / static_cast<std::size_t>(n) &&
           detail::is_row_of(os.shape(), slot(x).shape());
  }

  // X @ W by rows with W whole, or X^T @ G accumulated over the rows.
  bool matmul_role(const Step<T>& st, Dim n, Role& role, std::size_t& streamed) const {
    if (st.in_count != 2) return false;
    const MatmulAttrs a = matmul_attrs(*st.attrs);
    const Slot<T>& os = slot(st.out);
    const std::uint32_t x = operand(st, 0), y = operand(st, 1);
    if (!a.transpose_a && os.rank >= 1 && os.dims[0] == n && by_rows(x, 2, n, streamed) &&
        !member(y)) {
      role = Role::rows;
      return true;
    }
    if (a.transpose_a && !a.transpose_b && by_rows(x, 2, n, streamed) &&
        (by_rows(y, 1, n, streamed) || by_rows(y, 2, n, streamed))) {
      role = Role::matmul_acc;
      return true;
    }
    return false;
  }

  /// Per slot, the last unit that reads it from outside the group that computes it.
  std::vector<std::uint32_t> last_readers() const {
    std::vector<std::uint32_t> unit_of(p_.slots.size(), ~std::uint32_t{0});
    for (std::size_t u = 0; u < p_.units.size(); ++u) {
      const auto un = static_cast<std::uint32_t>(u);
      if (!p_.units[u].group) {
        // A step that reads shapes only (size, zeros_like) needs no buffer of its operand.
        const Step<T>& st = p_.steps[p_.units[u].index];
        if (st.traits->shape_only) continue;
        for_value_operands(st, p_.step_inputs, *st.traits,
                           [&](std::uint32_t, std::uint32_t p) { unit_of[p] = un; });
        continue;
      }
      const auto id = static_cast<std::int32_t>(p_.units[u].index);
      for (const Member& m : groups_[p_.units[u].index].members) {
        const Step<T>& st = p_.steps[m.step];
        for_value_operands(st, p_.step_inputs, *st.traits, [&](std::uint32_t, std::uint32_t p) {
          if (gid_[p] != id) unit_of[p] = un;
        });
      }
    }
    return unit_of;
  }

  /// Whether member m reads operand k (slot p) a block of rows at a time.
  bool reads_by_rows(const Group<T>& gr, std::int32_t id, const Member& m, std::uint32_t k,
                     std::uint32_t p) const {
    const Step<T>& st = p_.steps[m.step];
    const OpTraits<T>& tr = *st.traits;
    if (static_cast<int>(k) == tr.shape_operand) return false;
    if (gid_[p] == id) return !reduced_[p];
    return slot(p).rank >= 1 && rows_of(p) == static_cast<Dim>(gr.n) &&
           (m.role != Role::rows || tr.rows != RowRole::matmul || k == 0) &&
           (tr.rows != RowRole::elementwise || slot(p).rank == slot(st.out).rank);
  }

  // A rows x row block per slot read or written by rows; results read after the group
  // (or returned) keep a full buffer.
  void lay_out_tiles(Group<T>& gr, std::int32_t id, const std::vector<std::uint32_t>& unit_of) {
    std::vector<std::pair<std::uint32_t, std::int32_t>> index;  // slot -> tile
    auto tile_of = [&](std::uint32_t p) -> std::int32_t {
      for (auto [q, t] : index) {
        if (q == p) return t;
      }
      return -1;
    };
    auto add_tile = [&](std::uint32_t p, bool full) {
      Tile t;
      t.slot = p;
      t.row = slot(p).size / gr.n;
      t.full = full;
      t.rank = slot(p).rank;
      std::copy(slot(p).dims, slot(p).dims + slot(p).rank, t.dims.begin());
      gr.tiles.push_back(t);
      index.emplace_back(p, static_cast<std::int32_t>(gr.tiles.size() - 1));
      return static_cast<std::int32_t>(gr.tiles.size() - 1);
    };
    for (Member& m : gr.members) {
      const Step<T>& st = p_.steps[m.step];
      m.arg_begin = static_cast<std::uint32_t>(gr.arg_tile.size());
      for (std::uint32_t k = 0; k < st.in_count; ++k) {
        const std::uint32_t p = operand(st, k);
        std::int32_t t = tile_of(p);
        const bool rows_operand = reads_by_rows(gr, id, m, k, p);
        if (t < 0 && rows_operand) t = add_tile(p, gid_[p] != id);
        gr.arg_tile.push_back(rows_operand ? t : -1);
      }
      if (m.role == Role::rows || m.role == Role::alias) {
        bool escapes = p_.out_index[st.out] >= 0 || unit_of[st.out] != ~std::uint32_t{0};
        if (m.role == Role::alias && escapes) m.role = Role::rows;  // copy into its full buffer
        m.out_tile = add_tile(st.out, escapes);
        if (m.role == Role::alias)
          gr.tiles[static_cast<std::size_t>(m.out_tile)].same_as = gr.arg_tile[m.arg_begin];
      }
    }
  }

  std::size_t block_rows(const Group<T>& gr) const {
    std::size_t row_bytes = 0;
    for (const Tile& t : gr.tiles) row_bytes += t.row * sizeof(T);
    bool gemm = false;  // a product with a matrix right operand (X @ W, X^T @ G)
    for (const Member& m : gr.members)
      gemm = gemm || (m.matmul && slot(operand(p_.steps[m.step], 1)).rank == 2);
    const std::size_t tile_bytes = p_.opts.tile_bytes ? p_.opts.tile_bytes
                                   : gemm             ? kGemmTileBytes
                                                      : tile_bytes_for_cache();
    const std::size_t rows =
        std::clamp<std::size_t>(tile_bytes / std::max<std::size_t>(row_bytes, 1), 1, gr.n);
    return rows >= 16 ? rows / 8 * 8 : rows;
  }

  // In the order the buffer pass allocates: reductions, then per tile a full buffer for
  // a result read after the group, or a block for rows that live only in the group; then
  // the blocks of parts 1, 2..., and the partial results of the parts of each X^T @ G.
  GroupBuffers<T> buffer_needs(Group<T>& gr, std::int32_t id) const {
    GroupBuffers<T> gb;
    for (const Member& m : gr.members) {
      const Step<T>& st = p_.steps[m.step];
      for_value_operands(st, p_.step_inputs, *st.traits, [&](std::uint32_t, std::uint32_t p) {
        if (gid_[p] != id) gb.reads.push_back(p);
      });
    }
    for (const Member& m : gr.members) {
      if (m.role != Role::rows && m.role != Role::alias)
        gb.needs.push_back({p_.steps[m.step].out, 0});
    }
    std::int32_t blocks = 0;
    for (Tile& t : gr.tiles) {
      if (t.full && (slot(t.slot).flags & kOp)) {
        if (gid_[t.slot] == id) gb.needs.push_back({t.slot, 0});
      } else if (!t.full && t.same_as < 0) {
        t.block = blocks++;
        gb.needs.push_back({GroupBuffers<T>::kBlock, gr.rows * t.row});
      }
    }
    gr.blocks_per_part = static_cast<std::size_t>(blocks);
    for (std::size_t part = 1; part < gr.parts; ++part) {
      for (const Tile& t : gr.tiles) {
        if (t.block >= 0) gb.needs.push_back({GroupBuffers<T>::kBlock, gr.rows * t.row});
      }
    }
    std::int32_t next = static_cast<std::int32_t>(gr.parts) * blocks;
    for (Member& m : gr.members) {
      if (m.role != Role::matmul_acc) continue;
      m.partial_block = next;
      for (std::size_t part = 1; part < gr.parts; ++part, ++next)
        gb.needs.push_back({GroupBuffers<T>::kBlock, slot(p_.steps[m.step].out).size});
    }
    return gb;
  }

  Plan<T>& p_;
  std::vector<Group<T>>& groups_;
  std::vector<std::int32_t> gid_;      // group a slot is a member result of
  std::vector<std::uint8_t> reduced_;  // a member result final only after the last block
  std::int32_t cur_ = -1;              // open group
};

}  // namespace

template <class T>
bool plan_groups(Plan<T>& p) {
  if (p.row_groups) p.row_groups->groups.clear();
  bool worth = false;
  for (const Bound<T>& b : p.bound)
    worth = worth || p.slots[b.pos].size * sizeof(T) >= kTileMinStreamBytes;
  for (std::uint32_t q : p.leaves)
    worth = worth || p.slots[q].size * sizeof(T) >= kTileMinStreamBytes;
  if (!worth) return false;
  if (!p.row_groups) p.row_groups.reset(new RowGroups<T>);
  GroupPlanner<T> planner(p, p.row_groups->groups);
  planner.schedule();
  planner.lay_out();
  return true;
}

template struct RowGroupsDelete<float>;
template struct RowGroupsDelete<double>;
template bool plan_groups(Plan<float>&);
template bool plan_groups(Plan<double>&);

}  // namespace xgrad::exec
