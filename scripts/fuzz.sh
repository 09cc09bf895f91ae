#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (Clang, ASan + UBSan) in build-fuzz and runs
# each for the given number of seconds (default 60), one process at a time, starting from
# the committed seed corpus. Usage: scripts/fuzz.sh [--tests] [seconds per target] [target...]
# (targets: csv npy idx idx_gz graph; default all). With --tests the same build also holds
# the unit and alloc tests, which run (ctest) before the fuzzing: one Clang ASan + UBSan
# build then serves the tests and the fuzzers (.ci/run does this).
# The grown corpus stays in build-fuzz/corpus/<target>, a crashing input is saved as
# build-fuzz/artifacts/<target>-crash-...; the summary (executions per second, corpus
# size, crashes) goes to build-fuzz/fuzz-summary.txt. Exits 1 when any target failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

with_tests=OFF
if [ "${1:-}" = --tests ]; then
  with_tests=ON
  shift
fi
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv npy idx idx_gz graph)

bash scripts/deps.sh  # clang and libfuzzer-14-dev among them
# -O1 -g: readable stacks at a useful speed.
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DXGRAD_FUZZ=ON -DXGRAD_BUILD_TESTS=$with_tests \
  -DXGRAD_BUILD_TUTORIALS=OFF -DXGRAD_BUILD_BENCH=OFF -DXGRAD_BUILD_DOCS=OFF >/dev/null
if [ $with_tests = ON ]; then
  cmake --build build-fuzz -j"$(nproc)"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-fuzz --output-on-failure -j"$(nproc)"
else
  cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"
fi

mkdir -p build-fuzz/artifacts
summary=build-fuzz/fuzz-summary.txt
: >"$summary"
failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  log=build-fuzz/fuzz_$t.log
  # The grown corpus first (new inputs go there), the seeds second (read only).
  if build-fuzz/tests/fuzz/fuzz_"$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/"$t"- "$corpus" tests/fuzz/corpus/"$t" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec:/ {print $2}' "$log")
  # "corp: 234/6083b" of the last status line: inputs (seeds and grown) and their bytes.
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
  line="fuzz_$t: $status, ${seconds} s, ${execs:-?} executions (${rate:-?}/s), corpus ${corp:-?}"
  echo "$line" | tee -a "$summary"
  if [ "$status" = FAILED ]; then
    grep -m1 -A30 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error|exception that is not' \
      "$log" >&2 || tail -40 "$log" >&2
  fi
done
exit $failed
