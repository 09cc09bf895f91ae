// Matrix products through BLAS (xtensor-blas's cxxblas bindings over OpenBLAS), with the
// matrix-vector cases on the prefetching kernels of gemv.cpp where they apply.
#include <algorithm>
#include <xtensor-blas/xblas.hpp>

#include "xgrad/kernels.hpp"

namespace xgrad::kernels {

template <class T>
void matmul(const ConstTensor<T>& x, const ConstTensor<T>& y, Tensor<T> out, bool transpose_x,
            bool transpose_y, T beta) {
  using cxxblas::StorageOrder;
  using cxxblas::Transpose;
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
    const bool left = x.shape.size() == 2;
    const ConstTensor<T>& A = left ? x : y;
    const ConstTensor<T>& v = left ? y : x;
    const bool trans = left ? transpose_x : !transpose_y;
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
  I k = static_cast<I>(transpose_x ? x.shape[0] : x.shape[1]);
  if (k == 0) return empty_product();
  cxxblas::gemm<I>(StorageOrder::RowMajor, transpose_x ? Transpose::Trans : Transpose::NoTrans,
                   transpose_y ? Transpose::Trans : Transpose::NoTrans, m, n, k, T(1), x.data,
                   std::max<I>(static_cast<I>(x.shape[1]), 1), y.data,
                   std::max<I>(static_cast<I>(y.shape[1]), 1), beta, out.data, std::max<I>(n, 1));
}

template void matmul(const ConstTensor<float>&, const ConstTensor<float>&, Tensor<float>, bool,
                     bool, float);
template void matmul(const ConstTensor<double>&, const ConstTensor<double>&, Tensor<double>, bool,
                     bool, double);

}  // namespace xgrad::kernels
