/// @file threads.hpp
/// @brief The one thread setting of everything xgrad runs: its matrix products, row-tiled
/// groups, large elementwise maps, reductions, convolutions and pooling.
///
/// xgrad keeps one pool of `num_threads() - 1` worker threads beside the thread that runs a
/// Function. A kernel splits its work into at most num_threads() parts by a fixed rule of the
/// thread count and the shape (never by timing), and runs the parts concurrently only when the
/// work is large enough to pay for waking the workers. OpenBLAS is set to one thread of its
/// own at every setting (through `openblas_set_num_threads`, looked up at run time, so other
/// BLAS libraries are left alone): with more threads xgrad splits the products itself, so the
/// machine is never oversubscribed, and at one thread the program runs on one core
/// whatever OPENBLAS_NUM_THREADS says.
///
/// Determinism. For a given thread count every result is the same to the last bit from run to
/// run, whether the parts ran concurrently or one after another (a call that finds the pool
/// busy, for instance from a second user thread, or a call made inside a part, runs its parts
/// itself in part order and gives the same bits). Across thread counts, results that are
/// computed element by element are the same: elementwise maps, pooling, conv2d and its input
/// gradient, matrix-vector products A @ v on xgrad's own kernels (rows up to 16 KiB), and what a
/// row-tiled group computes row by row with those, conv2d's bias gradient. Results that add
/// partial sums of the parts, in part order, may differ in the last bits: sums and means over
/// all elements, sum_to over rows (bias gradients of dense layers), A^T @ v, the accumulations
/// of row-tiled groups, conv2d's weight gradient; and matrix-matrix products, which BLAS
/// computes on row blocks whose size depends on the thread count. At one thread, results are those
/// of the single-threaded library.
#pragma once

namespace xgrad {

/// Sets the number of threads xgrad runs on (the caller plus n - 1 workers); n = 0 goes back
/// to the default: the environment variable XGRAD_THREADS when set, else the cores available
/// to the process (its affinity mask, at most its cgroup's CPU quota rounded up: a container
/// run with `--cpus=2` gets 2). Blocks while another thread is inside a parallel region. Throws
/// ValueError for n < 0, when called from inside a parallel part, or (n = 0) for an XGRAD_THREADS
/// that is not a whole number from 1 to 1024.
void set_num_threads(int n);

/// The number of threads xgrad runs on (at least 1). The first call reads the default (see
/// set_num_threads) and may throw its ValueError.
int num_threads();

}  // namespace xgrad
