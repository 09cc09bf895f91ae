/// @file node_inputs.hpp
/// @brief NodeId and NodeInputs, the small vector of a node's operand ids.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

namespace xgrad {

/// Index of a node inside its graph.
using NodeId = std::uint32_t;

/// The operand ids of a node: a read-only sequence of NodeId (range-for, size(),
/// operator[], comparison, conversion to std::vector and std::span). Up to three ids live
/// inline, so building a node with three or fewer operands allocates nothing for them.
class NodeInputs {
 public:
  using value_type = NodeId;             ///< Element type.
  using size_type = std::size_t;         ///< Size type.
  using const_iterator = const NodeId*;  ///< Iterator (read-only).
  using iterator = const NodeId*;        ///< Iterator (read-only).

  /// No operands.
  NodeInputs() = default;
  // Construction from ids, copy and move (a heap list is moved, not copied)
  /// @cond TRIVIAL
  NodeInputs(std::span<const NodeId> ids) { assign(ids); }  // NOLINT(google-explicit-constructor)
  NodeInputs(std::initializer_list<NodeId> ids)             // NOLINT(google-explicit-constructor)
      : NodeInputs(std::span<const NodeId>(ids.begin(), ids.size())) {}
  NodeInputs(const std::vector<NodeId>& ids)  // NOLINT(google-explicit-constructor)
      : NodeInputs(std::span<const NodeId>(ids)) {}
  NodeInputs(const NodeInputs& o) { assign(o); }
  NodeInputs(NodeInputs&& o) noexcept { steal(o); }
  NodeInputs& operator=(const NodeInputs& o) {
    if (this != &o) {
      release();
      assign(o);
    }
    return *this;
  }
  NodeInputs& operator=(NodeInputs&& o) noexcept {
    if (this != &o) {
      release();
      steal(o);
    }
    return *this;
  }
  /// @endcond
  ~NodeInputs() { release(); }

  // Sequence access (operator[] is unchecked)
  /// @cond TRIVIAL
  const NodeId* data() const { return size_ <= kInline ? inline_ : heap_; }
  const NodeId* begin() const { return data(); }
  const NodeId* end() const { return data() + size_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  NodeId operator[](std::size_t i) const { return data()[i]; }
  operator std::span<const NodeId>() const { return {data(), size_}; }  // NOLINT
  operator std::vector<NodeId>() const { return {begin(), end()}; }     // NOLINT
  /// @endcond
  // Equal when they hold the same ids in the same order
  /// @cond TRIVIAL
  friend bool operator==(const NodeInputs& a, const NodeInputs& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator==(const NodeInputs& a, const std::vector<NodeId>& b) {
    return a.size_ == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }
  /// @endcond

 private:
  static constexpr std::uint32_t kInline = 3;
  // Inline lists are copied element by element or whole: std::copy of a run-time count
  // becomes a call to memmove, which costs more than the few ids (every new node pays it).
  void assign(std::span<const NodeId> ids) {
    size_ = static_cast<std::uint32_t>(ids.size());
    if (size_ > kInline) {
      heap_ = new NodeId[size_];
      std::copy(ids.begin(), ids.end(), heap_);
      return;
    }
    for (std::uint32_t i = 0; i < kInline; ++i) inline_[i] = i < size_ ? ids[i] : 0;
  }
  void steal(NodeInputs& o) {
    size_ = o.size_;
    if (size_ > kInline) {
      heap_ = o.heap_;
    } else {
      std::copy(o.inline_, o.inline_ + kInline, inline_);
    }
    o.size_ = 0;
  }
  void release() {
    if (size_ > kInline) delete[] heap_;
    size_ = 0;
  }
  union {
    NodeId inline_[kInline] = {};
    NodeId* heap_;
  };
  std::uint32_t size_ = 0;
};

}  // namespace xgrad
