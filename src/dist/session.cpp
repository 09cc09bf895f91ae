// Session (include/xgrad/dist/dist.hpp): MPI's lifetime, the reductions for reporting,
// rank-0 logging, and the ways a failing rank ends the whole job.
#include <mpi.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <streambuf>
#include <string>

#include "xgrad/dist/dist.hpp"
#include "xgrad/error.hpp"

namespace xgrad::dist {

namespace {

// Discards everything: the log stream of ranks other than 0.
class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return traits_type::not_eof(c); }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

void abort_job(int rank, int size, std::string_view message, int code) {
  std::cout.flush();
  std::fprintf(stderr, "xgrad::dist: rank %d of %d: %.*s\n", rank, size,
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; in case an implementation does
}

// An exception that escapes everything (or a noexcept violation) ends every rank.
[[noreturn]] void terminate_job() {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::string what = "std::terminate called";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = std::string("uncaught exception: ") + x.what();
    } catch (...) {
      what = "uncaught exception not derived from std::exception";
    }
  }
  abort_job(rank, size, what, 1);
  std::_Exit(1);
}

void check(int rc, const char* call) {
  if (rc != MPI_SUCCESS) throw Error(std::string("xgrad::dist: ") + call + " failed");
}

}  // namespace

Session::Session(int& argc, char**& argv) { init(&argc, &argv); }
Session::Session() { init(nullptr, nullptr); }

void Session::init(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    throw Error("xgrad::dist::Session: MPI is already initialised: one Session per process");
  int provided = 0;
  // FUNNELED: xgrad's worker threads and the loader's prefetch thread never call MPI.
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  unwinding_at_start_ = std::uncaught_exceptions();
  std::set_terminate(terminate_job);
}

Session::~Session() {
  if (std::uncaught_exceptions() > unwinding_at_start_) {
    abort_job(
        rank_, size_,
        "an exception is unwinding past the Session (catch it in Session::run to see its message)",
        1);
  }
  MPI_Finalize();
}

void Session::barrier() const { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

void Session::sum(std::span<double> values) const {
  check(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE,
                      MPI_SUM, MPI_COMM_WORLD),
        "MPI_Allreduce");
}

double Session::sum(double local) const {
  sum(std::span<double>(&local, 1));
  return local;
}

double Session::mean(double local) const { return sum(local) / size_; }

void Session::check_same(std::string_view what, std::size_t value) const {
  unsigned long long v[2] = {value, ~static_cast<unsigned long long>(value)};
  check(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD),
        "MPI_Allreduce");
  const unsigned long long lo = v[0], hi = ~v[1];
  if (lo != hi) {
    throw ValueError("xgrad::dist: " + std::string(what) + " differs between ranks: from " +
                     std::to_string(lo) + " to " + std::to_string(hi) + " (this rank " +
                     std::to_string(rank_) + ": " + std::to_string(value) + ")");
  }
}

std::ostream& Session::log() const {
  static NullBuffer null_buffer;
  static std::ostream null_stream(&null_buffer);
  return is_root() ? std::cout : null_stream;
}

void Session::abort(std::string_view message, int code) const {
  abort_job(rank_, size_, message, code);
  std::_Exit(code);
}

}  // namespace xgrad::dist
