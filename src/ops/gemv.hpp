// Matrix-vector products over row-major matrices with short rows, written for the streaming
// case BLAS leaves on the table: a matrix read from memory once (often a block of rows of a
// larger one, in a row-tiled group) with a software prefetch running ahead of the rows, so
// the memory stream continues while the arithmetic of earlier rows runs. Internal to src/.
#pragma once

#include <cstddef>

namespace xgrad::detail {

/// Instruction set the kernels use: 2 AVX-512, 1 AVX2 + FMA, 0 none (BLAS is used).
int gemv_isa();

/// Caps the instruction set at `isa` (0-2), so tests can run the AVX2 kernels on an
/// AVX-512 machine; returns the previous cap.
int gemv_limit_isa(int isa);

/// True when gemv_dots / gemv_axpys handle a matrix with rows of `cols` elements of T on
/// this CPU (AVX2 or AVX-512 present and a row short enough for the result or operand
/// vector to stay in the level-1 cache); otherwise callers use BLAS.
template <class T>
bool gemv_own(std::size_t cols);

/// out[i] = A[i, :] . x + beta * out[i] for a row-major rows x cols matrix A.
template <class T>
void gemv_dots(const T* A, std::size_t rows, std::size_t cols, const T* x, T beta, T* out);

/// out[j] = sum_i v[i] A[i, j] + beta * out[j] (A^T v) for a row-major rows x cols matrix A.
template <class T>
void gemv_axpys(const T* A, std::size_t rows, std::size_t cols, const T* v, T beta, T* out);

}  // namespace xgrad::detail
