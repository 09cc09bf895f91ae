// Matrix products (kernels in src/kernels/), batches of them, outer products and axis
// permutation.
#include "common.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad {
namespace detail {
namespace {

/// The vector-Jacobian products of Y = op(A) @ op(B) for matrices, or for batches of them
/// (the same formulas, since matmul multiplies batches matrix by matrix).
template <class T>
Expr<T> matrix_grad_a(Expr<T> B, Expr<T> g, bool ta, bool tb) {
  if (!ta) return matmul(g, B, false, !tb);  // G op(B)^T
  return matmul(B, g, tb, true);             // (G op(B)^T)^T = op(B) G^T
}
template <class T>
Expr<T> matrix_grad_b(Expr<T> A, Expr<T> g, bool ta, bool tb) {
  if (!tb) return matmul(A, g, !ta, false);  // op(A)^T G
  return matmul(g, A, true, ta);             // (op(A)^T G)^T = G^T op(A)
}

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
      if (want_a) gr[0] = matrix_grad_a(B, g, ta, tb);
      if (want_b) gr[1] = matrix_grad_b(A, g, ta, tb);
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

/// A batch of matrix products over a leading axis: (b, m, k) @ (b, k, n) -> (b, m, n), or
/// (b, m, k) @ (k, n) with the right operand shared by the batch (a Linear layer over a
/// sequence). The transposes of matmul_attrs() swap the last two axes of an operand. A
/// separate op from MatmulOp, whose RowRole::matmul tells the executor's row tiling that
/// its operands are 1-d or 2-d; this one runs whole arrays.
template <class T>
class BatchMatmulOp final : public Op<T> {
 public:
  std::string_view name() const override { return "matmul"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const Shape &x = in[0], &y = in[1];
    const auto [ta, tb] = matmul_attrs(a);
    if (x.size() != 3 || (y.size() != 3 && y.size() != 2)) {
      throw std::invalid_argument(
          "a batched product takes a (b, m, k) left operand and a (b, k, n) or shared (k, n) "
          "right operand, got " +
          shape_str(x) + " and " + shape_str(y));
    }
    const std::size_t o = y.size() - 2;  // first matrix axis of y
    if (y.size() == 3 && x[0] != y[0] && x[0] != open && y[0] != open) {
      throw std::invalid_argument("batch sizes differ: " + shape_str(x) + " and " + shape_str(y));
    }
    Dim kx = ta ? x[1] : x[2], ky = tb ? y[o + 1] : y[o];
    if (kx != ky && kx != open && ky != open) {
      throw std::invalid_argument("inner dimensions differ: " + shape_str(x) + (ta ? "^T" : "") +
                                  " @ " + shape_str(y) + (tb ? "^T" : "") + " (" +
                                  std::to_string(kx) + " vs " + std::to_string(ky) + ")");
    }
    Dim b = x[0] == open && y.size() == 3 ? y[0] : x[0];
    return {b, ta ? x[2] : x[1], tb ? y[o] : y[o + 1]};
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const auto [ta, tb] = matmul_attrs(a);
    const ConstTensor<T>&x = in[0], &y = in[1];
    const bool shared = y.shape.size() == 2;
    const std::size_t batch = x.shape[0];
    std::array<Dim, 2> xs{x.shape[1], x.shape[2]}, os{out.shape[1], out.shape[2]};
    std::span<const Dim> ys = y.shape.subspan(y.shape.size() - 2);
    if (shared && !ta) {  // one product: the batch's rows stacked, (b*m, k) @ (k, n)
      xs[0] *= static_cast<Dim>(batch);
      os[0] *= static_cast<Dim>(batch);
      kernels::matmul<T>({x.data, xs, x.size}, y, {out.data, os, out.size}, false, tb, T(0));
      return;
    }
    const std::size_t sx = batch ? x.size / batch : 0, so = batch ? out.size / batch : 0;
    const std::size_t sy = shared ? 0 : (batch ? y.size / batch : 0);
    const std::size_t ny = shared ? y.size : sy;
    for (std::size_t i = 0; i < batch; ++i) {
      kernels::matmul<T>({x.data + i * sx, xs, sx}, {y.data + i * sy, ys, ny},
                         {out.data + i * so, os, so}, ta, tb, T(0));
    }
  }
  void backward(const Node<T>& nd, Expr<T> out, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    Expr<T> A = arg(out, nd, 0), B = arg(out, nd, 1);
    const auto [ta, tb] = matmul_attrs(nd.attrs);
    gr[0] = gr[1] = Expr<T>();
    if (B.rank() == 3) {
      if (wanted[0]) gr[0] = matrix_grad_a(B, g, ta, tb);
      if (wanted[1]) gr[1] = matrix_grad_b(A, g, ta, tb);
      return;
    }
    // Shared B: A's gradient is per matrix, with B on the right ((G_i op(B)^T)^T when A
    // enters transposed); B's sums the batch's contributions.
    if (wanted[0]) {
      gr[0] = ta ? transpose(matmul(g, B, false, !tb), {0, 2, 1}) : matmul(g, B, false, !tb);
    }
    if (wanted[1]) {
      const Dim k = A.shape()[2], n = g.shape()[2];
      if (!ta && k != open && n != open) {  // the batch's rows stacked: one product
        Expr<T> A2 = reshape(A, {-1, k}), G2 = reshape(g, {-1, n});
        gr[1] = tb ? matmul(G2, A2, true, false) : matmul(A2, G2, true, false);
      } else {
        gr[1] = sum(matrix_grad_b(A, g, ta, tb), {0});
      }
    }
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    const MatmulAttrs m = matmul_attrs(a);
    return args[0] + (m.transpose_a ? "^T" : "") + " @ " + args[1] + (m.transpose_b ? "^T" : "");
  }
  std::string label(const Attrs&) const override { return "matmul (batched)"; }
  int precedence() const override { return 20; }
};

/// The outer product of two vectors: (m), (n) -> (m, n).
template <class T>
class OuterOp final : public Op<T> {
 public:
  std::string_view name() const override { return "outer"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    if (in[0].size() != 1 || in[1].size() != 1) {
      throw std::invalid_argument("operands must be vectors, got " + shape_str(in[0]) + " and " +
                                  shape_str(in[1]));
    }
    return {in[0][0], in[1][0]};
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs&) const override {
    const T *u = in[0].data, *v = in[1].data;
    const std::size_t m = in[0].size, n = in[1].size;
    for (std::size_t i = 0; i < m; ++i) {
      for (std::size_t j = 0; j < n; ++j) out.data[i * n + j] = u[i] * v[j];
    }
  }
  void backward(const Node<T>& nd, Expr<T> out, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    if (wanted[0]) gr[0] = matmul(g, arg(out, nd, 1));  // G v
    if (wanted[1]) gr[1] = matmul(arg(out, nd, 0), g);  // u^T G
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
    for (Dim p : perm) {
      // The builder counted negative axes from the end once; what is still negative was
      // beyond -rank and would index before the shape.
      if (p < 0 || p >= static_cast<Dim>(in[0].size())) {
        throw std::invalid_argument("permutation " + shape_str(perm) +
                                    " has an axis out of range for rank " +
                                    std::to_string(in[0].size()));
      }
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
  const Attrs at = to_attrs(MatmulAttrs{transpose_a, transpose_b});
  // Invalid handles go to make(), which names the op and the operand.
  if (a && b && (a.rank() > 2 || b.rank() > 2)) {
    return detail::make<detail::BatchMatmulOp<T>>({a, b}, at);
  }
  return detail::make<detail::MatmulOp<T>>({a, b}, at);
}
template <class T>
Expr<T> outer(Expr<T> a, Expr<T> b) {
  return detail::make<detail::OuterOp<T>>({a, b});
}

template <class T>
Expr<T> transpose(Expr<T> x, std::vector<Dim> perm) {
  x.graph("transpose");  // names the op when x is an invalid handle
  if (perm.empty()) {
    for (std::size_t i = x.rank(); i-- > 0;) perm.push_back(static_cast<Dim>(i));
  }
  for (Dim& p : perm) {
    // NumPy accepts axes counted from the end; an axis out of range stays as given, so
    // the error reports what the caller wrote.
    if (p < 0 && p >= -static_cast<Dim>(x.rank())) p += static_cast<Dim>(x.rank());
  }
  bool identity = true;
  for (std::size_t i = 0; i < perm.size(); ++i)
    identity = identity && perm[i] == static_cast<Dim>(i);
  if (identity && perm.size() == x.rank()) return x;
  return detail::make<detail::TransposeOp<T>>({x}, to_attrs(detail::TransposeAttrs{perm}));
}

XGRAD_LINALG_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
