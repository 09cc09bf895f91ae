// Matrix products through BLAS (xtensor-blas's cxxblas bindings over OpenBLAS) and axis
// permutation.
#include <xtensor-blas/xblas.hpp>

#include "common.hpp"
#include "gemv.hpp"

namespace xgrad {
namespace detail {
namespace {

using cxxblas::StorageOrder;
using cxxblas::Transpose;

/// Product of 1-d and 2-d operands; flag / flag2 transpose a 2-d left / right operand.
template <class T>
class MatmulOp final : public Op<T>, public MatmulMarker {
 public:
  std::string_view name() const override { return "matmul"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    const Shape& x = in[0];
    const Shape& y = in[1];
    if (x.empty() || y.empty() || x.size() > 2 || y.size() > 2) {
      throw std::invalid_argument("operands must be 1-d or 2-d, got " + shape_str(x) + " and " +
                                  shape_str(y));
    }
    if ((a.flag && x.size() != 2) || (a.flag2 && y.size() != 2)) {
      throw std::invalid_argument("transpose flags apply to 2-d operands only");
    }
    Dim m = x.size() == 2 ? (a.flag ? x[1] : x[0]) : 0;
    Dim kx = x.size() == 2 ? (a.flag ? x[0] : x[1]) : x[0];
    Dim ky = y.size() == 2 ? (a.flag2 ? y[1] : y[0]) : y[0];
    Dim n = y.size() == 2 ? (a.flag2 ? y[0] : y[1]) : 0;
    if (kx != ky && kx != open && ky != open) {
      throw std::invalid_argument(
          "inner dimensions differ: " + shape_str(x) + (a.flag ? "^T" : "") + " @ " + shape_str(y) +
          (a.flag2 ? "^T" : "") + " (" + std::to_string(kx) + " vs " + std::to_string(ky) + ")");
    }
    Shape out;
    if (x.size() == 2) out.push_back(m);
    if (y.size() == 2) out.push_back(n);
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    product(in[0], in[1], out, a, T(0));
  }
  /// out = op(x) @ op(y) + beta * out.
  static void product(const ConstTensor<T>& x, const ConstTensor<T>& y, Tensor<T> out,
                      const Attrs& a, T beta) {
    using I = xt::blas_index_t;
    if (x.shape.size() == 1 && y.shape.size() == 1) {
      T r = 0;
      cxxblas::dot<I>(static_cast<I>(x.size), x.data, 1, y.data, 1, r);
      out.data[0] = r + beta * out.data[0];
      return;
    }
    if (out.size == 0) return;
    auto empty_product = [&] {
      if (beta == T(0)) std::fill(out.data, out.data + out.size, T(0));
    };
    if (y.shape.size() == 1 || x.shape.size() == 1) {
      // Matrix-vector in either order is one gemv on the 2-d operand.
      bool left = x.shape.size() == 2;
      const ConstTensor<T>& A = left ? x : y;
      const ConstTensor<T>& v = left ? y : x;
      bool trans = left ? a.flag : !a.flag2;
      I rows = static_cast<I>(A.shape[0]), cols = static_cast<I>(A.shape[1]);
      if (rows * cols == 0) return empty_product();
      if (gemv_own<T>(static_cast<std::size_t>(cols))) {
        auto r = static_cast<std::size_t>(rows), c = static_cast<std::size_t>(cols);
        return trans ? gemv_axpys(A.data, r, c, v.data, beta, out.data)
                     : gemv_dots(A.data, r, c, v.data, beta, out.data);
      }
      cxxblas::gemv<I>(StorageOrder::RowMajor, trans ? Transpose::Trans : Transpose::NoTrans, rows,
                       cols, T(1), A.data, std::max<I>(cols, 1), v.data, 1, beta, out.data, 1);
      return;
    }
    I m = static_cast<I>(out.shape[0]), n = static_cast<I>(out.shape[1]);
    I k = static_cast<I>(a.flag ? x.shape[0] : x.shape[1]);
    if (k == 0) return empty_product();
    cxxblas::gemm<I>(StorageOrder::RowMajor, a.flag ? Transpose::Trans : Transpose::NoTrans,
                     a.flag2 ? Transpose::Trans : Transpose::NoTrans, m, n, k, T(1), x.data,
                     std::max<I>(static_cast<I>(x.shape[1]), 1), y.data,
                     std::max<I>(static_cast<I>(y.shape[1]), 1), beta, out.data, std::max<I>(n, 1));
  }
  void backward(const Node<T>& nd, Expr<T> out, Expr<T> g, std::span<Expr<T>> gr) const override {
    Expr<T> A = arg(out, nd, 0), B = arg(out, nd, 1);
    bool ta = nd.attrs.flag, tb = nd.attrs.flag2;
    // Only the gradients autodiff asks for: the one of a data operand is never built.
    const bool want_a = wants_grad<T>(gr, 0), want_b = wants_grad<T>(gr, 1);
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
    return args[0] + (a.flag ? "^T" : "") + " @ " + args[1] + (a.flag2 ? "^T" : "");
  }
  int precedence() const override { return 20; }

 private:
  static Expr<T> outer_product(Expr<T> u, Expr<T> v) {
    return matmul(unsqueeze(u, {1}), unsqueeze(v, {0}));
  }
};

/// Axis permutation (ints = perm).
template <class T>
class TransposeOp final : public Op<T> {
 public:
  std::string_view name() const override { return "transpose"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs& a) const override {
    if (a.ints.size() != in[0].size()) {
      throw std::invalid_argument("permutation " + shape_str(a.ints) + " does not match rank " +
                                  std::to_string(in[0].size()));
    }
    std::vector<Dim> sorted = norm_axes(a.ints, in[0].size());
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i] != static_cast<Dim>(i)) {
        throw std::invalid_argument("invalid permutation " + shape_str(a.ints));
      }
    }
    Shape out;
    for (Dim p : a.ints) out.push_back(in[0][static_cast<std::size_t>(p)]);
    return out;
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    std::size_t r = out.shape.size();
    std::array<std::ptrdiff_t, max_rank> contiguous{}, si{}, so{};
    broadcast_strides(in[0].shape, in[0].shape, contiguous.data());
    for (std::size_t i = 0; i < r; ++i) si[i] = contiguous[static_cast<std::size_t>(a.ints[i])];
    broadcast_strides(out.shape, out.shape, so.data());
    const T* x = in[0].data;
    strided_loop<2>(out.shape, {si.data(), so.data()},
                    [&](const auto& off, const auto& st, std::size_t n) {
                      T* o = out.data + off[1];
                      for (std::size_t j = 0; j < n; ++j) o[j] = x[off[0] + j * st[0]];
                    });
  }
  void backward(const Node<T>& n, Expr<T>, Expr<T> g, std::span<Expr<T>> gr) const override {
    std::vector<Dim> inv(n.attrs.ints.size());
    for (std::size_t i = 0; i < inv.size(); ++i) {
      inv[static_cast<std::size_t>(n.attrs.ints[i])] = static_cast<Dim>(i);
    }
    gr[0] = transpose(g, inv);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    if (a.ints.size() == 2) return args[0] + "^T";
    return "transpose(" + args[0] + ", " + shape_str(a.ints) + ")";
  }
  int precedence() const override { return 30; }
};

}  // namespace

template <class T>
void matmul_accumulate(ConstTensor<T> a, ConstTensor<T> b, Tensor<T> out, const Attrs& attrs) {
  MatmulOp<T>::product(a, b, out, attrs, T(1));
}
template void matmul_accumulate(ConstTensor<float>, ConstTensor<float>, Tensor<float>,
                                const Attrs&);
template void matmul_accumulate(ConstTensor<double>, ConstTensor<double>, Tensor<double>,
                                const Attrs&);

}  // namespace detail

template <class T>
Expr<T> matmul(Expr<T> a, Expr<T> b, bool transpose_a, bool transpose_b) {
  Graph<T>& g = detail::same_graph("matmul", a, b);
  Attrs at;
  at.flag = transpose_a;
  at.flag2 = transpose_b;
  return g.apply(detail::instance<detail::MatmulOp<T>>(), {a.id(), b.id()}, std::move(at));
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
  Attrs a;
  a.ints = std::move(perm);
  return x.graph().apply(detail::instance<detail::TransposeOp<T>>(), {x.id()}, std::move(a));
}

template Expr<float> matmul(Expr<float>, Expr<float>, bool, bool);
template Expr<double> matmul(Expr<double>, Expr<double>, bool, bool);
template Expr<float> transpose(Expr<float>, std::vector<Dim>);
template Expr<double> transpose(Expr<double>, std::vector<Dim>);

}  // namespace xgrad
