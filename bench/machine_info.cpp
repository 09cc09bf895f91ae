// Facts scripts/bench.sh records beside the results: the BLAS xgrad runs on (OpenBLAS
// core and build configuration), the thread setting as the benchmarks apply it, and the
// LibTorch version when its peers are built.
#include "harness.hpp"

extern "C" char* openblas_get_config(void);

int main() {
  int n = bench::setup_threads("machine_info");
  std::printf("openblas_core: %s\n", openblas_get_corename());
  std::printf("openblas_config: %s\n", openblas_get_config());
  std::printf("threads: %d\n", n);
#ifdef XGRAD_BENCH_HAVE_TORCH
  std::printf("libtorch: %d.%d.%d, intra-op threads %d, inter-op threads %d\n", TORCH_VERSION_MAJOR,
              TORCH_VERSION_MINOR, TORCH_VERSION_PATCH, torch::get_num_threads(),
              torch::get_num_interop_threads());
#else
  std::printf("libtorch: not built (configure with -DXGRAD_BENCH_TORCH=ON, needs libtorch-dev)\n");
#endif
  return 0;
}
