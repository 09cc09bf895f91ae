// Buffers. Outputs write straight into the result arrays; a copy whose output has its
// operand's size (reshape, squeeze, sum_to between equal shapes...) is not executed and
// its output shares the operand's buffer; other intermediates share one arena, each block
// reused once its last reader has run. A row-tiled group is known here only by its
// GroupBuffers: what it reads, which results need full buffers, and the blocks of rows it
// needs for the time it runs.
#include <bit>
#include <map>

#include "plan.hpp"

namespace xgrad::exec {

namespace {

constexpr std::size_t kAlign = 64;

/// Free blocks of one arena region by length, each length with a stack of offsets: best
/// fit is one lower_bound, so planning stays O(n log n) for graphs of hundreds of
/// thousands of nodes, and a length whose stack runs empty keeps its entry (no allocation
/// churn when blocks of one size are freed and taken in turn). The list of the length last
/// used is found without a tree search.
struct Pool {
  std::map<std::size_t, detail::AppendArray<std::size_t>> free_blocks;  // length -> offsets
  std::size_t hot_len = 0;
  detail::AppendArray<std::size_t>* hot = nullptr;
  std::size_t top = 0;

  // The exact fits of the hot length inline, the searches out of line: a plan of a
  // hundred thousand scalars takes and frees one length all the time.
  void release(std::size_t len, std::size_t off) {
    if (hot && len == hot_len) {
      hot->push_back(off);
    } else {
      release_other(len, off);
    }
  }
  std::size_t allocate(std::size_t need) {
    if (hot && need == hot_len && !hot->empty()) {  // an exact fit is the best fit
      std::size_t off = hot->back();
      hot->pop_back();
      return off;
    }
    return allocate_other(need);
  }
  [[gnu::noinline]] void release_other(std::size_t len, std::size_t off) {
    hot_len = len;
    hot = &free_blocks[len];
    hot->push_back(off);
  }
  [[gnu::noinline]] std::size_t allocate_other(std::size_t need) {
    for (auto it = free_blocks.lower_bound(need); it != free_blocks.end(); ++it) {
      if (it->second.empty()) continue;
      std::size_t off = it->second.back();
      it->second.pop_back();
      if (std::size_t rest = it->first - need) release(rest, off + need);
      return off;
    }
    std::size_t off = top;
    top += need;
    return off;
  }
};

/// Two regions: blocks of a cache line and more, each starting on a cache line, and
/// smaller values (scalars, short vectors) packed at their natural alignment after them,
/// so a chain of a hundred thousand live scalars takes 8 bytes each, not 64.
template <class T>
struct Arena {
  static constexpr std::size_t kSmall = std::size_t{1} << 63;  // offset flag: small region
  const std::size_t quantum = std::max<std::size_t>(1, kAlign / sizeof(T));
  Pool big, small;

  std::size_t rounded(std::size_t n) const {
    return std::max<std::size_t>(1, (n + quantum - 1) / quantum) * quantum;
  }
  std::size_t allocate(std::size_t n, std::size_t* len) {
    if (n >= quantum) {
      *len = rounded(n);
      return big.allocate(*len);
    }
    *len = std::bit_ceil(std::max<std::size_t>(n, 1));
    return small.allocate(*len) | kSmall;
  }
  void release(std::size_t len, std::size_t off) {
    if (off & kSmall) {
      small.release(len, off & ~kSmall);
    } else {
      big.release(len, off);
    }
  }
};

}  // namespace

template <class T>
void Plan<T>::plan_buffers() {
  // Per slot: its buffer's owner (itself, or the slot an alias reads), the last unit that
  // reads it, and its block while it is live: one array filled in one pass, since a plan of
  // half a million scalars spends as much on initialising scratch arrays as on the blocks.
  struct Buf {
    Buf() {}  // set by the loop below, without a zeroing pass first
    std::uint32_t owner, last_use;
    std::size_t offset, length;
  };
  detail::big_vector<Buf> buf(slots.size());
  for (std::size_t p = 0; p < slots.size(); ++p) {
    slots[p].flags &= static_cast<std::uint8_t>(~kAlias);
    Buf& b = buf[p];
    b.owner = static_cast<std::uint32_t>(p);
    b.last_use = 0;
    b.offset = b.length = 0;
  }
  // What each unit reads, through aliases.
  auto for_reads = [&](const Unit& u, auto&& f) {
    if (u.group) {
      for (std::uint32_t p : group_buffers[u.index].reads) f(buf[p].owner);
      return;
    }
    const Step<T>& st = steps[u.index];
    for_value_operands(st, step_inputs, *st.traits,
                       [&](std::uint32_t, std::uint32_t p) { f(buf[p].owner); });
  };
  // Copies that need no buffer of their own leave the schedule; each remaining unit is the
  // last reader of its operands so far (units run in order, so the last one seen stays).
  aliased.clear();
  {
    std::uint32_t kept = 0;
    for (const Unit& u : units) {
      if (!u.group) {
        const Step<T>& st = steps[u.index];
        Slot<T>& o = slots[st.out];
        if (out_index[st.out] < 0 && st.in_count >= 1 &&
            slots[step_inputs[st.in_begin]].size == o.size && st.traits->copy_when_same_size) {
          o.flags |= kAlias;
          buf[st.out].owner = buf[step_inputs[st.in_begin]].owner;
          aliased.push_back(u.index);
          continue;
        }
      }
      for_reads(u, [&](std::uint32_t b) { buf[b].last_use = kept; });
      units[kept++] = u;
    }
    units.resize(kept);
  }
  Arena<T> arena_plan;
  auto define = [&](std::uint32_t o) {
    if (out_index[o] < 0 && !(slots[o].flags & kAlias))
      buf[o].offset = arena_plan.allocate(slots[o].size, &buf[o].length);
  };
  detail::big_vector<std::size_t> block_offsets;            // of every group's blocks, in order
  std::vector<std::pair<std::size_t, std::size_t>> blocks;  // a group's: offset, length
  for (std::size_t u = 0; u < units.size(); ++u) {
    if (!units[u].group) {
      define(steps[units[u].index].out);
    } else {
      blocks.clear();
      for (const auto& need : group_buffers[units[u].index].needs) {
        if (need.slot != GroupBuffers<T>::kBlock) {
          define(need.slot);
          continue;
        }
        std::size_t len = 0;
        blocks.emplace_back(arena_plan.allocate(need.elements, &len), len);
        block_offsets.push_back(blocks.back().first);
      }
      for (auto [off, len] : blocks) arena_plan.release(len, off);
    }
    for_reads(units[u], [&](std::uint32_t b) {
      if (buf[b].length && buf[b].last_use == u) {
        arena_plan.release(buf[b].length, buf[b].offset);
        buf[b].length = 0;
      }
    });
  }
  const std::size_t big_top = arena_plan.rounded(arena_plan.big.top);
  try {
    arena.assign(big_top + arena_plan.small.top + arena_plan.quantum, T(0));
  } catch (const std::exception&) {  // bad_alloc, or length_error beyond max_size()
    allocation_failed("intermediate buffers", big_top + arena_plan.small.top, largest_step());
  }
  // Align the arena base so every block starts on a cache line.
  T* base = arena.data() +
            (kAlign - reinterpret_cast<std::uintptr_t>(arena.data()) % kAlign) % kAlign / sizeof(T);
  auto at = [&](std::size_t off) {
    return off & Arena<T>::kSmall ? base + big_top + (off & ~Arena<T>::kSmall) : base + off;
  };
  for (const Step<T>& st : steps) {
    Slot<T>& o = slots[st.out];
    if (out_index[st.out] >= 0) {
      xt::xarray<T>& r = result(static_cast<std::size_t>(out_index[st.out]));
      if (!same_dims(o.shape(), r.shape())) {
        std::vector<std::size_t> us(o.dims, o.dims + o.rank);
        try {
          r.resize(us);
        } catch (const std::exception&) {
          allocation_failed("the output", o.size, st.out);
        }
      }
      o.data = r.data();
    } else if (!(o.flags & kAlias)) {
      o.data = at(buf[st.out].offset);
    }
  }
  std::size_t next_block = 0;
  for (const Unit& u : units) {
    if (!u.group) continue;
    GroupBuffers<T>& gb = group_buffers[u.index];
    gb.blocks.clear();
    for (const auto& need : gb.needs) {
      if (need.slot == GroupBuffers<T>::kBlock)
        gb.blocks.push_back(at(block_offsets[next_block++]));
    }
  }
  for (std::size_t k = 0; k < out_pos.size(); ++k) {
    const Slot<T>& s = slots[out_pos[k]];
    if (!(s.flags & kOp) || out_index[out_pos[k]] != static_cast<int>(k)) {
      std::vector<std::size_t> us(s.dims, s.dims + s.rank);
      try {
        result(k).resize(us);
      } catch (const std::exception&) {
        allocation_failed("the output", s.size, out_pos[k]);
      }
    }
  }
}

template <class T>
std::uint32_t Plan<T>::largest_step() const {
  std::uint32_t best = 0;
  for (const Step<T>& st : steps) {
    if (out_index[st.out] < 0 && slots[st.out].size >= slots[best].size) best = st.out;
  }
  return best;
}

template <class T>
void Plan<T>::allocation_failed(const char* what, std::size_t elements, std::uint32_t p) const {
  std::string msg = std::string("planning buffers: ") + what + " (" +
                    bytes_str(elements, sizeof(T)) + ") could not be allocated";
  if (p < slots.size()) {
    msg += what == std::string("the output") ? "; the node is " : "; the largest is ";
    msg += g->describe(order[p]) + " with run-time shape " + shape_str(slots[p].shape()) + ", " +
           bytes_str(slots[p].size, sizeof(T));
  }
  throw AllocationError(msg);
}

template void Plan<float>::plan_buffers();
template void Plan<double>::plan_buffers();

}  // namespace xgrad::exec
