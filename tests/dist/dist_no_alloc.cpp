// Steady-state GradientAverager::average allocates nothing (run under mpirun by
// tests/dist/CMakeLists.txt): the packed buffer and the results are sized by the first
// call and reused. Counted with the allocation tests' replacements (tests/alloc).
#include <cstdio>
#include <iostream>
#include <xgrad/dist/dist.hpp>

#include "counting.hpp"

int main(int argc, char** argv) {
  int rc = 0;
  bool root = false;
  {
    xgrad::dist::Session mpi(argc, argv);
    root = mpi.is_root();
    rc = mpi.run([&] {
      // A step's outputs: a loss and gradients of an MLP's shapes.
      std::vector<xt::xarray<double>> outs{xt::xarray<double>(1.0 + mpi.rank()),
                                           xt::ones<double>({64, 32}), xt::ones<double>({32}),
                                           xt::ones<double>({32, 10}), xt::ones<double>({10})};
      xgrad::dist::GradientAverager<double> avg(mpi);
      avg.average(outs);  // the first call sizes the buffer
      avg.average(outs);
      const auto counts = alloc_counting::count_allocations([&] {
        for (int i = 0; i < 20; ++i) avg.average(outs);
      });
      const bool ok = counts.own() == 0 && avg.results()[0]() == 1.0 + (mpi.size() - 1) / 2.0;
      // MPI's own library (foreign) is reported, not required to be 0.
      std::cout << "rank " << mpi.rank() << ": allocations in 20 averaging steps: xgrad "
                << counts.own() << ", MPI and other libraries " << counts.foreign()
                << (ok ? "" : "  CHECK FAILED") << std::endl;
      return mpi.sum(ok ? 0.0 : 1.0) == 0 ? 0 : 1;
    });
  }
  // After MPI_Finalize, so that nothing of the job follows it; the exit code decides.
  if (root) std::cout << (rc == 0 ? "all checks passed" : "SOME CHECKS FAILED") << std::endl;
  std::fflush(stdout);
  return rc;
}
