/// @file kernels.hpp
/// @brief The dense kernels built-in ops and the executor share, for user ops that want
/// the same speed: matrix products through BLAS, and matrix-vector products over short
/// rows, read in an order the cores' prefetchers follow (faster than BLAS on a matrix
/// streamed from memory once, such as a block of rows of a larger one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "xgrad/op.hpp"

namespace xgrad::kernels {

/// out = op(x) @ op(y) + beta * out for 1-d and 2-d operands (op transposes a 2-d operand
/// when its flag is set): a dot, a matrix-vector or a matrix-matrix product, on the
/// matrix-vector kernels below where they apply and on BLAS otherwise.
template <class T>
void matmul(const ConstTensor<T>& x, const ConstTensor<T>& y, Tensor<T> out, bool transpose_x,
            bool transpose_y, T beta);

/// Instruction set the matrix-vector kernels use: 2 AVX-512, 1 AVX2 + FMA, 0 none (BLAS).
/// By default the faster one this CPU has: AVX-512 where present, except AVX2 on AMD Zen 4,
/// which reads memory more slowly with 512-bit loads.
int gemv_isa();

/// Lets the kernels use at most `isa` (0-2, as far as the CPU has it), so that tests and
/// benchmarks can run each kernel variant; a negative `isa` restores the default. Returns the
/// previous setting (-1 for the default), for restoring it. Set it before compiling the
/// Functions it should affect: a plan chooses between these kernels and BLAS when made.
int gemv_limit_isa(int isa);

/// True when gemv_dots / gemv_axpys handle a matrix with rows of `cols` elements of T on
/// this CPU (AVX2 or AVX-512 present and a row short enough for the result or operand
/// vector to stay in the level-1 cache); otherwise use matmul().
template <class T>
bool gemv_own(std::size_t cols);

/// out[i] = A[i, :] . x + beta * out[i] for a row-major rows x cols matrix A (only where
/// gemv_own<T>(cols)).
template <class T>
void gemv_dots(const T* A, std::size_t rows, std::size_t cols, const T* x, T beta, T* out);

/// out[j] = sum_i v[i] A[i, j] + beta * out[j] (A^T v) for a row-major rows x cols matrix A
/// (only where gemv_own<T>(cols)). `next`, when given, is a whole rows x cols block the
/// caller reads next (a loop over blocks of a larger matrix; a shorter last block is not
/// named): it is prefetched while this block, taken to be in cache, is read, so that it is
/// on its way before the caller asks for it.
template <class T>
void gemv_axpys(const T* A, std::size_t rows, std::size_t cols, const T* v, T beta, T* out,
                const T* next = nullptr);

/// How matmul() runs a matrix-vector product when it is a single call of one of the two
/// kernels above on the calling thread (small enough not to be split across threads).
struct GemvForm {
  /// Which kernel: none (matmul() splits the product or calls BLAS), gemv_dots, gemv_axpys.
  enum Kind : std::uint8_t { none, dots, axpys };
  Kind kind = none;          ///< The kernel, or none.
  bool matrix_first = true;  ///< The matrix is operand x (else y); the other is the vector.
  std::size_t rows = 0;      ///< Rows of the matrix as stored.
  std::size_t cols = 0;      ///< Columns of the matrix as stored.
};

/// The form matmul(x, y, out, transpose_x, transpose_y, beta) takes for operands of these
/// shapes at the current thread count, so that a caller running the same product many
/// times (the executor) decides once and calls the kernel with matmul()'s bits.
template <class T>
GemvForm gemv_form(std::span<const Dim> x, std::span<const Dim> y, bool transpose_x,
                   bool transpose_y);

}  // namespace xgrad::kernels
