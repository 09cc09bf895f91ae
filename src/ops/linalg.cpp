// Matrix products (kernels in src/kernels/) and axis permutation.
#include "common.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad {
namespace detail {
namespace {

/// Product of 1-d and 2-d operands, either 2-d one possibly transposed (matmul_attrs()).
template <class T>
class MatmulOp final : public Op<T> {
 public:
  const OpTraits<T>& traits() const override {
    static const OpTraits<T> t{.rows = RowRole::matmul};
    return t;
  }
  std::string_view name() const override { return "matmul"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const Shape& x = in[0];
    const Shape& y = in[1];
    const auto [ta, tb] = matmul_attrs(a);
    if (x.empty() || y.empty() || x.size() > 2 || y.size() > 2) {
      throw std::invalid_argument("operands must be 1-d or 2-d, got " + shape_str(x) + " and " +
                                  shape_str(y));
    }
    if ((ta && x.size() != 2) || (tb && y.size() != 2)) {
      throw std::invalid_argument("transpose flags apply to 2-d operands only");
    }
    Dim m = x.size() == 2 ? (ta ? x[1] : x[0]) : 0;
    Dim kx = x.size() == 2 ? (ta ? x[0] : x[1]) : x[0];
    Dim ky = y.size() == 2 ? (tb ? y[1] : y[0]) : y[0];
    Dim n = y.size() == 2 ? (tb ? y[0] : y[1]) : 0;
    if (kx != ky && kx != open && ky != open) {
      throw std::invalid_argument("inner dimensions differ: " + shape_str(x) + (ta ? "^T" : "") +
                                  " @ " + shape_str(y) + (tb ? "^T" : "") + " (" +
                                  std::to_string(kx) + " vs " + std::to_string(ky) + ")");
    }
    Shape out;
    if (x.size() == 2) out.push_back(m);
    if (y.size() == 2) out.push_back(n);
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const MatmulAttrs m = matmul_attrs(a);
    kernels::matmul(in[0], in[1], out, m.transpose_a, m.transpose_b, T(0));
  }
  void backward(const Node<T>& nd, Expr<T> out, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    Expr<T> A = arg(out, nd, 0), B = arg(out, nd, 1);
    const auto [ta, tb] = matmul_attrs(nd.attrs);
    // Only the gradients autodiff asks for: the one of a data operand is never built.
    const bool want_a = wanted[0], want_b = wanted[1];
    gr[0] = gr[1] = Expr<T>();
    std::size_t ra = A.rank(), rb = B.rank();
    if (ra == 1 && rb == 1) {  // dot
      if (want_a) gr[0] = g * B;
      if (want_b) gr[1] = g * A;
    } else if (ra == 2 && rb == 2) {
      if (!ta && !tb) {
        if (want_a) gr[0] = matmul(g, B, false, true);
        if (want_b) gr[1] = matmul(A, g, true, false);
      } else if (ta && !tb) {
        if (want_a) gr[0] = matmul(B, g, false, true);
        if (want_b) gr[1] = matmul(A, g, false, false);
      } else if (!ta && tb) {
        if (want_a) gr[0] = matmul(g, B, false, false);
        if (want_b) gr[1] = matmul(g, A, true, false);
      } else {
        if (want_a) gr[0] = matmul(B, g, true, true);
        if (want_b) gr[1] = matmul(g, A, true, true);
      }
    } else if (ra == 2) {  // y = op(A) v
      if (want_a) gr[0] = ta ? outer_product(B, g) : outer_product(g, B);
      if (want_b) gr[1] = matmul(A, g, !ta, false);
    } else {  // y = v op(B)
      if (want_a) gr[0] = matmul(B, g, tb, false);
      if (want_b) gr[1] = tb ? outer_product(g, A) : outer_product(A, g);
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const MatmulAttrs m = matmul_attrs(a);
    return args[0] + (m.transpose_a ? "^T" : "") + " @ " + args[1] + (m.transpose_b ? "^T" : "");
  }
  // Drawings name the transposed operand: matmul(a^T @ b).
  std::string label(const Attrs& a) const override {
    const MatmulAttrs m = matmul_attrs(a);
    if (!m.transpose_a && !m.transpose_b) return "matmul";
    return std::string("matmul(a") + (m.transpose_a ? "^T" : "") + " @ b" +
           (m.transpose_b ? "^T" : "") + ")";
  }
  int precedence() const override { return 20; }

 private:
  static Expr<T> outer_product(Expr<T> u, Expr<T> v) {
    return matmul(unsqueeze(u, {1}), unsqueeze(v, {0}));
  }
};

/// Axis permutation.
template <class T>
class TransposeOp final : public Op<T> {
 public:
  std::string_view name() const override { return "transpose"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const std::vector<Dim>& perm = transpose_attrs(a).perm;
    if (perm.size() != in[0].size()) {
      throw std::invalid_argument("permutation " + shape_str(perm) + " does not match rank " +
                                  std::to_string(in[0].size()));
    }
    std::vector<Dim> sorted = norm_axes(perm, in[0].size());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i] != static_cast<Dim>(i)) {
        throw std::invalid_argument("invalid permutation " + shape_str(perm));
      }
    }
    Shape out;
    for (Dim p : perm) out.push_back(in[0][static_cast<std::size_t>(p)]);
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    std::size_t r = out.shape.size();
    std::array<std::ptrdiff_t, max_rank> contiguous{}, si{}, so{};
    broadcast_strides(in[0].shape, in[0].shape, contiguous.data());
    const std::vector<Dim>& perm = transpose_attrs(a).perm;
    for (std::size_t i = 0; i < r; ++i) si[i] = contiguous[static_cast<std::size_t>(perm[i])];
    broadcast_strides(out.shape, out.shape, so.data());
    const T* x = in[0].data;
    strided_loop<2>(out.shape, {si.data(), so.data()},
                    [&](const auto& off, const auto& st, std::size_t n) {
                      T* o = out.data + off[1];
                      for (std::size_t j = 0; j < n; ++j) o[j] = x[off[0] + j * st[0]];
                    });
  }
  void backward(const Node<T>& n, Expr<T>, Expr<T> g, std::span<const bool>,
                std::span<Expr<T>> gr) const override {
    const std::vector<Dim>& perm = transpose_attrs(n.attrs).perm;
    std::vector<Dim> inv(perm.size());
    for (std::size_t i = 0; i < inv.size(); ++i)
      inv[static_cast<std::size_t>(perm[i])] = static_cast<Dim>(i);
    gr[0] = transpose(g, inv);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const std::vector<Dim>& perm = transpose_attrs(a).perm;
    if (perm.size() == 2) return args[0] + "^T";
    return "transpose(" + args[0] + ", " + shape_str(perm) + ")";
  }
  int precedence() const override { return 30; }
};

}  // namespace

}  // namespace detail

template <class T>
Expr<T> matmul(Expr<T> a, Expr<T> b, bool transpose_a, bool transpose_b) {
  return detail::make<detail::MatmulOp<T>>({a, b}, to_attrs(MatmulAttrs{transpose_a, transpose_b}));
}

template <class T>
Expr<T> transpose(Expr<T> x, std::vector<Dim> perm) {
  if (perm.empty()) {
    for (std::size_t i = x.rank(); i-- > 0;) perm.push_back(static_cast<Dim>(i));
  }
  for (Dim& p : perm) {
    if (p < 0) p += static_cast<Dim>(x.rank());  // NumPy accepts axes counted from the end
  }
  bool identity = true;
  for (std::size_t i = 0; i < perm.size(); ++i)
    identity = identity && perm[i] == static_cast<Dim>(i);
  if (identity && perm.size() == x.rank()) return x;
  return detail::make<detail::TransposeOp<T>>({x}, to_attrs(detail::TransposeAttrs{perm}));
}

XGRAD_LINALG_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
