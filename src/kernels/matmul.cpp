// Matrix products through BLAS (xtensor-blas's cxxblas bindings over OpenBLAS), with the
// matrix-vector cases on the prefetching kernels of gemv.cpp where they apply. With more than
// one thread (xgrad/threads.hpp) the products are split here, each part a one-thread BLAS
// call or kernel on a block of the output: matrix-matrix products by rows of the output (by
// columns when it has more columns than rows, so the operand every part reads whole is the
// smaller one), A @ v by rows, A^T @ v by rows of A into partial vectors added in part order.
#include <algorithm>
#include <vector>
#include <xtensor-blas/xblas.hpp>

#include "../exec/thread_pool.hpp"
#include "xgrad/kernels.hpp"

namespace xgrad::kernels {
namespace {

using cxxblas::StorageOrder;
using cxxblas::Transpose;
using I = xt::blas_index_t;

// A part of a matrix-matrix product has at least this many floating-point operations (about
// 10 microseconds of one core's BLAS, several times a wake-up of the pool), or the product
// is not split. Small enough that LeNet-5's fully connected products split in two
// (docs/benchmarks.md).
constexpr double kMinGemmPartFlops = 1e6;

/// out[0, cols) accumulates A^T v in parts: part p of the rows of A goes to the output
/// itself (p = 0, with beta) or to a partial vector, and the partials are added in part order.
/// The partition depends on the thread count only, so a row-tiled group that accumulates the
/// same product block by block in the same parts (tiling.cpp) gives the same bits.
template <class T>
void axpys_parts(const T* A, std::size_t rows, std::size_t cols, const T* v, T beta, T* out) {
  const std::size_t parts = exec::parts_for(rows);
  if (parts == 1) return gemv_axpys(A, rows, cols, v, beta, out);
  thread_local std::vector<T> partial;
  if (partial.size() < (parts - 1) * cols) partial.resize((parts - 1) * cols);
  T* scratch = partial.data();
  const bool concurrent =
      2.0 * static_cast<double>(rows * cols) >= exec::kMinPartWork * static_cast<double>(parts);
  exec::parallel_for(rows, parts, concurrent, [&](std::size_t b, std::size_t e, std::size_t p) {
    if (p == 0) return gemv_axpys(A, e, cols, v, beta, out);
    gemv_axpys(A + b * cols, e - b, cols, v + b, T(0), scratch + (p - 1) * cols);
  });
  for (std::size_t p = 1; p < parts; ++p) {
    const T* s = scratch + (p - 1) * cols;
    for (std::size_t j = 0; j < cols; ++j) out[j] += s[j];
  }
}

}  // namespace

template <class T>
GemvForm gemv_form(std::span<const Dim> x, std::span<const Dim> y, bool transpose_x,
                   bool transpose_y) {
  GemvForm f;
  if (!(x.size() == 2 && y.size() == 1) && !(x.size() == 1 && y.size() == 2)) return f;
  // Matrix-vector in either order is one product on the 2-d operand.
  f.matrix_first = x.size() == 2;
  const std::span<const Dim> A = f.matrix_first ? x : y;
  const bool trans = f.matrix_first ? transpose_x : !transpose_y;
  f.rows = static_cast<std::size_t>(A[0]);
  f.cols = static_cast<std::size_t>(A[1]);
  if (f.rows * f.cols == 0 || !gemv_own<T>(f.cols)) return f;
  if (trans) {
    if (exec::parts_for(f.rows) == 1) f.kind = GemvForm::axpys;
  } else if (exec::parts_for_work(f.rows, 2.0 * static_cast<double>(f.cols), exec::kMinPartWork) ==
             1) {
    f.kind = GemvForm::dots;
  }
  return f;
}

template <class T>
void matmul(const ConstTensor<T>& x, const ConstTensor<T>& y, Tensor<T> out, bool transpose_x,
            bool transpose_y, T beta) {
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
    const GemvForm f = gemv_form<T>(x.shape, y.shape, transpose_x, transpose_y);
    const ConstTensor<T>& A = f.matrix_first ? x : y;
    const ConstTensor<T>& v = f.matrix_first ? y : x;
    if (f.kind == GemvForm::dots) return gemv_dots(A.data, f.rows, f.cols, v.data, beta, out.data);
    if (f.kind == GemvForm::axpys)
      return gemv_axpys(A.data, f.rows, f.cols, v.data, beta, out.data);
    const bool trans = f.matrix_first ? transpose_x : !transpose_y;
    const std::size_t rows = f.rows, cols = f.cols;
    if (rows * cols == 0) return empty_product();
    const double row_work = 2.0 * static_cast<double>(cols);
    if (gemv_own<T>(cols)) {
      if (trans) return axpys_parts(A.data, rows, cols, v.data, beta, out.data);
      exec::parallel_for_work(
          rows, row_work, exec::kMinPartWork, [&](std::size_t b, std::size_t e, std::size_t) {
            gemv_dots(A.data + b * cols, e - b, cols, v.data, beta, out.data + b);
          });
      return;
    }
    const I ld = static_cast<I>(std::max<std::size_t>(cols, 1));
    if (trans) {  // by columns of A: out[c0, c1) = A[:, c0:c1]^T v
      exec::parallel_for_work(cols, 2.0 * static_cast<double>(rows), exec::kMinPartWork,
                              [&](std::size_t b, std::size_t e, std::size_t) {
                                cxxblas::gemv<I>(StorageOrder::RowMajor, Transpose::Trans,
                                                 static_cast<I>(rows), static_cast<I>(e - b), T(1),
                                                 A.data + b, ld, v.data, 1, beta, out.data + b, 1);
                              });
      return;
    }
    exec::parallel_for_work(
        rows, row_work, exec::kMinPartWork, [&](std::size_t b, std::size_t e, std::size_t) {
          cxxblas::gemv<I>(StorageOrder::RowMajor, Transpose::NoTrans, static_cast<I>(e - b),
                           static_cast<I>(cols), T(1), A.data + b * cols, ld, v.data, 1, beta,
                           out.data + b, 1);
        });
    return;
  }
  const auto m = static_cast<std::size_t>(out.shape[0]), n = static_cast<std::size_t>(out.shape[1]);
  const auto k = static_cast<std::size_t>(transpose_x ? x.shape[0] : x.shape[1]);
  if (k == 0) return empty_product();
  const auto ldx = static_cast<std::size_t>(std::max<Dim>(x.shape[1], 1));
  const auto ldy = static_cast<std::size_t>(std::max<Dim>(y.shape[1], 1));
  const Transpose tx = transpose_x ? Transpose::Trans : Transpose::NoTrans;
  const Transpose ty = transpose_y ? Transpose::Trans : Transpose::NoTrans;
  auto gemm = [&](std::size_t rows, std::size_t cols, const T* a, const T* b, T* c) {
    cxxblas::gemm<I>(StorageOrder::RowMajor, tx, ty, static_cast<I>(rows), static_cast<I>(cols),
                     static_cast<I>(k), T(1), a, static_cast<I>(ldx), b, static_cast<I>(ldy), beta,
                     c, static_cast<I>(std::max<std::size_t>(n, 1)));
  };
  if (m >= n) {  // by rows of the output: rows of op(x)
    const double row_flops = 2.0 * static_cast<double>(n * k);
    exec::parallel_for_work(
        m, row_flops, kMinGemmPartFlops, [&](std::size_t b, std::size_t e, std::size_t) {
          gemm(e - b, n, x.data + (transpose_x ? b : b * ldx), y.data, out.data + b * n);
        });
    return;
  }
  const double col_flops = 2.0 * static_cast<double>(m * k);  // by columns: columns of op(y)
  exec::parallel_for_work(
      n, col_flops, kMinGemmPartFlops, [&](std::size_t b, std::size_t e, std::size_t) {
        gemm(m, e - b, x.data, y.data + (transpose_y ? b * ldy : b), out.data + b);
      });
}

template GemvForm gemv_form<float>(std::span<const Dim>, std::span<const Dim>, bool, bool);
template GemvForm gemv_form<double>(std::span<const Dim>, std::span<const Dim>, bool, bool);
template void matmul(const ConstTensor<float>&, const ConstTensor<float>&, Tensor<float>, bool,
                     bool, float);
template void matmul(const ConstTensor<double>&, const ConstTensor<double>&, Tensor<double>, bool,
                     bool, double);

}  // namespace xgrad::kernels
