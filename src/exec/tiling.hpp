// What a row-tiled group is: its members, the tiles they read and write a block of rows
// at a time, and the calls a run resolves for them. Private to tiling.cpp, which plans
// groups, and tiling_run.cpp, which runs them; the other passes see a group only through
// plan.hpp's GroupBuffers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "plan.hpp"

namespace xgrad::exec {

namespace tiling {

/// A member's part in its group.
enum class Role : std::uint8_t {
  rows,        // its output's rows from the same rows of its operands
  alias,       // a copy between equal sizes: its output tile is its operand's
  sum,         // the sum of all elements, accumulated block by block
  mean,        // the same, divided by the count after the last block
  matmul_acc,  // X^T @ G accumulated into the whole result
  sum_rows,    // the rows summed into one (sum_to over the rows: a bias gradient)
};

struct Tile {  // a slot read or written a block of rows at a time
  std::uint32_t slot;
  std::size_t row;            // elements per row
  bool full = false;          // the rows live in the slot's own buffer
  std::int32_t same_as = -1;  // an alias member's output: the tile it shares
  std::int32_t block = -1;    // else its rows x row elements in GroupBuffers::blocks
  std::array<Dim, max_rank> dims{};
  std::uint32_t rank = 0;
};

struct Member {
  std::uint32_t step;
  Role role;
  std::uint32_t arg_begin;  // into Group::arg_tile, one per operand (-1: whole slot)
  std::int32_t out_tile;    // rows / alias roles
  bool matmul = false;      // the op's RowRole is matmul
  // sum_rows role: the row sums of each part, in double as sum_to adds them.
  std::vector<double> row_acc{};
  // matmul_acc role: the first of the parts - 1 partial results of parts 1, 2... in
  // GroupBuffers::blocks (part 0 accumulates into the result itself).
  std::int32_t partial_block = -1;
};

/// An operand or result of a member, resolved for one run: its block at row r0 starts
/// at base + r0 * step (step 0: the same scratch rows every block, or a whole operand)
/// and holds rows * row elements (row 0: a whole operand of `whole` elements).
template <class T>
struct Ref {
  T* base = nullptr;
  std::size_t step = 0;
  std::size_t row = 0;
  std::size_t whole = 0;
  const Dim* dims = nullptr;
  std::uint32_t rank = 0;
  T* at(std::size_t r0) const { return base + r0 * step; }
  std::size_t size(std::size_t rows) const { return row ? rows * row : whole; }
};

/// How a member runs on a block: through the op's forward(), or by a kernel called
/// directly, since on a block of a few rows forward()'s dispatch costs as much as the
/// work.
enum class Kernel : std::uint8_t {
  forward,
  dots,
  axpys,
  sum,
  sum_rows,
  unary,
  binary,
  scalar_a,
  scalar_b
};

template <class T>
struct Call {
  const Step<T>* st = nullptr;
  Member* m = nullptr;
  Kernel kernel = Kernel::forward;
  std::uint32_t nin = 0;
  std::array<Ref<T>, 2> in{};  // group members are unary, binary, matmuls and reductions
  Ref<T> out{};
  const MapKernels<T>* map = nullptr;
  double acc = 0;             // sum / mean roles: this part's sum
  double* row_acc = nullptr;  // sum_rows role: this part's row sums
};

template <class T>
struct Group {
  std::size_t n = 0;     // rows in all
  std::size_t rows = 0;  // rows per block
  std::vector<Member> members;
  std::vector<Tile> tiles;
  std::vector<std::int32_t> arg_tile;
  std::vector<std::uint32_t> pre;  // steps hoisted before the group
  std::size_t streamed = 0;        // bytes of operands read by rows from outside
  // Parts: the rows are split into `parts` ranges (exec::part_begin), one per thread, each
  // run block by block with blocks of its own; accumulated results add the parts' partial
  // results in part order after the last block.
  std::size_t parts = 1;
  std::size_t blocks_per_part = 0;              // block needs of one part
  std::vector<std::array<Dim, max_rank>> dims;  // per part, per tile: its block's extents
  std::vector<Call<T>> calls;                   // per part, the members that run
  std::size_t calls_per_part = 0;
  std::vector<const Step<T>*> failed;  // per part: the member that threw
};

}  // namespace tiling

template <class T>
struct RowGroups {
  std::vector<tiling::Group<T>> groups;  // parallel to Plan::group_buffers
};

}  // namespace xgrad::exec
