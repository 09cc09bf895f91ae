#!/usr/bin/env bash
# Benchmarks xgrad against LibTorch and the hardware limits, and writes docs/benchmarks.md.
#
#   scripts/bench.sh [--no-doc] [--quick]
#
# Installs what is missing (as root; LibTorch only when apt can get libtorch-dev), builds the
# benchmark programs in Release (with their LibTorch peers when libtorch-dev is installed),
# runs every workload one after another (never in parallel: concurrent runs skew each
# other's timings) and writes the Markdown tables, the machine facts and this command to
# docs/benchmarks.md (--no-doc: print only). --quick: fewer repetitions and a smaller
# streaming file, for a smoke test.
#
# Threads: every workload runs at 1 thread and at 2 (XGRAD_BENCH_THREADS="1 2" by default),
# each count applied to xgrad (xgrad::set_num_threads), LibTorch (torch::set_num_threads) and
# the OpenBLAS calls of LibTorch and the limits alike (XGRAD_THREADS, OPENBLAS_NUM_THREADS and
# OMP_NUM_THREADS are set from it; see bench/harness.hpp); the tables have a thread column.
# Environment:
# XGRAD_BENCH_REPS overrides every program's repetition count; XGRAD_BENCH_BUILD_DIR
# (default build-bench) is the build directory; XGRAD_BENCH_TORCH=OFF skips LibTorch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

write_doc=1
quick=0
for a in "$@"; do
  case "$a" in
    --no-doc) write_doc=0 ;;
    --quick) quick=1 ;;
    *)
      echo "usage: scripts/bench.sh [--no-doc] [--quick]" >&2
      exit 2
      ;;
  esac
done
command_line="scripts/bench.sh${*:+ $*}"

bash scripts/deps.sh

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
torch=${XGRAD_BENCH_TORCH:-ON}
if [ "$torch" = ON ] && ! installed libtorch-dev; then
  if [ "$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y libtorch-dev; then
    :
  else
    echo "bench.sh: libtorch-dev is not installed; running without the LibTorch peers" >&2
    echo "          (install it with: sudo apt-get install -y libtorch-dev)" >&2
    torch=OFF
  fi
fi

build=${XGRAD_BENCH_BUILD_DIR:-build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCH=ON \
  -DXGRAD_BENCH_TORCH="$torch" >/dev/null
programs=(machine_info w1_seed_linreg w2_full_linreg w3_mlp w4_tanh_chain w6_cnn stream_npy blas_gemm)
cmake --build "$build" -j"$(nproc)" --target "${programs[@]}"

export LC_ALL=C
cores=$(nproc --all)  # before OMP_NUM_THREADS is set: nproc honours it
thread_counts=(${XGRAD_BENCH_THREADS:-1 2})
export XGRAD_THREADS=${thread_counts[0]}
export OPENBLAS_NUM_THREADS=$XGRAD_THREADS OMP_NUM_THREADS=$XGRAD_THREADS
# OpenBLAS 0.3.21 does not know the newest AVX-512 Xeons (family 6, model 207) and falls back
# to its Prescott kernels; name the AVX-512 ones (xgrad and LibTorch share this library).
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q -w avx512f /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
# The fully shuffled phases stop after an eighth of the epoch (8M rows: a minute or more
# each); the other phases stream the whole file.
stream_args=(--gib 2 --shuffled-rows 8388608)
# W5 once more in a memory cgroup smaller than its file (page cache included): every phase
# reads from the disk. 256 MiB for a 1 GiB file, the shuffled phase cut to 256K rows (one
# read from the disk each).
limit_mib=256
limit_args=(--gib 1 --cold --shuffled-rows 262144)
if [ "$quick" = 1 ]; then
  export XGRAD_BENCH_REPS=${XGRAD_BENCH_REPS:-3}
  stream_args=(--gib 0.25 --shuffled-rows 1048576)
  limit_mib=64
  limit_args=(--gib 0.25 --cold --shuffled-rows 65536)
fi

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
# The workloads at every thread count; the others once, at the first.
threaded=" w1_seed_linreg w2_full_linreg w3_mlp w4_tanh_chain w6_cnn "
for p in "${programs[@]}"; do
  counts=("${thread_counts[0]}")
  [[ "$threaded" == *" $p "* ]] && counts=("${thread_counts[@]}")
  for t in "${counts[@]}"; do
    echo
    echo "===== $p ($t thread(s)) ====="
    args=()
    [ "$p" = stream_npy ] && args=("${stream_args[@]}")
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >"$log/$p.t$t.txt"
    XGRAD_THREADS=$t OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t "$build/bench/$p" "${args[@]}" |
      tee -a "$log/$p.t$t.txt"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log/$p.t$t.txt"
    [ "$t" = "${thread_counts[0]}" ] && cp "$log/$p.t$t.txt" "$log/$p.txt"
  done
done
# W5 again with two prefetching threads (LoaderOptions::workers).
echo
echo "===== stream_npy --workers 2 ====="
"$build/bench/stream_npy" "${stream_args[@]}" --workers 2 | tee "$log/stream_npy_w2.txt"
# And with one thread and the consumer gathering while it waits (LoaderOptions::consumer_gathers).
echo
echo "===== stream_npy --consumer-gathers ====="
"$build/bench/stream_npy" "${stream_args[@]}" --consumer-gathers | tee "$log/stream_npy_cg.txt"
echo
echo "===== stream_npy under a ${limit_mib} MiB memory limit ====="
limit_status=0
scripts/memlimit.sh "$limit_mib" "$build/bench/stream_npy" "${limit_args[@]}" --remove \
  >"$log/stream_npy_limit.txt" 2>"$log/stream_npy_limit.err" || limit_status=$?
cat "$log/stream_npy_limit.txt" "$log/stream_npy_limit.err"
if [ "$limit_status" = 3 ]; then
  echo "(no memory cgroup could be made here: the limited run is left out)" | tee "$log/stream_npy_limit.txt"
elif [ "$limit_status" != 0 ]; then
  echo "bench.sh: stream_npy under the memory limit failed (exit $limit_status)" >&2
  exit 1
fi

# ---- W7: workload 3 data-parallel over MPI (built when xgrad::dist is, i.e. MPI found)
w7=0
if cmake --build "$build" -j"$(nproc)" --target w7_dist_mlp >/dev/null 2>&1; then
  w7=1
  # Waiting ranks yield the CPU instead of spinning, and are not pinned: on a shared machine
  # a spinning wait steals the time the other rank needs (measured 0.49x -> 0.86x at load 13).
  mpi=(mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1)
  [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
  w7_load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  for np in 1 2; do
    echo
    echo "===== w7_dist_mlp on $np rank(s), 1 thread each ====="
    XGRAD_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
      "${mpi[@]}" -np "$np" "$build/bench/w7_dist_mlp" | tee "$log/w7_np$np.txt"
  done
  w7_load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  w7_ratio=$(awk '/^W7 1 /{a=$4} /^W7 2 /{b=$4} END{if (a > 0) printf "%.2f", b / a}' \
    "$log/w7_np1.txt" "$log/w7_np2.txt")
  echo "W7 throughput, 2 ranks / 1 rank: ${w7_ratio}x (load average before ${w7_load_before}, after ${w7_load_after})"
fi

[ "$write_doc" = 1 ] || exit 0

# ---------------------------------------------------------------- docs/benchmarks.md
md_rows() {  # the Markdown table of one program: a row per variant and thread count (or only $2)
  echo "| threads | workload | variant | min | median | max | median per unit | throughput (median) | heap allocations per unit | LibTorch / this (median; min) |"
  echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"
  local f t
  for f in "$log/$1".t${2:-*}.txt; do
    [ -e "$f" ] || f="$log/$1.txt"
    t=${f%.txt}
    t=${t##*.t}  # the thread count of NAME.tN.txt (stripping "*.t" first left "xt")
    [ "$f" != "$log/$1.txt" ] || t=-
    grep '^MD |' "$f" | sed "s/^MD | /| $t | /"
  done
}
md_loads() {  # the load averages around each run of one program
  local f t
  for f in "$log/$1".t*.txt; do
    t=${f%.txt}
    t=${t##*.t}
    echo "- $t thread(s): $(grep '^load average before' "$f" | sed 's/^load //'), $(grep '^load average after' "$f" | sed 's/^load //')"
  done
}
md_speedup() {  # xgrad's first variant at N threads against 1 thread, measured in the same run
  grep -h '^MDSPEEDUP ' "$log/$1".t*.txt 2>/dev/null | sed 's/^MDSPEEDUP /- /' || true
}
md_stream() {  # the streaming tables (one run per phase): 1 and 2 loader workers, 1 and the consumer
  echo "| workload | variant | time | rows/s | GB/s | / plain read | peak RSS |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  grep -h '^MD |' "$log/stream_npy.txt" "$log/stream_npy_w2.txt" "$log/stream_npy_cg.txt" | sed 's/^MD //'
}
md_stream_limit() {  # the run under the memory limit, when there was one
  grep -q '^MD |' "$log/stream_npy_limit.txt" || {
    cat "$log/stream_npy_limit.txt"
    return
  }
  echo "| workload | variant | time | rows/s | GB/s | / plain read | peak RSS |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  grep -h '^MD |' "$log/stream_npy_limit.txt" | sed 's/^MD //'
  echo
  echo '```'
  grep -h -v '^generating\|^  written\|^MD ' "$log/stream_npy_limit.txt" "$log/stream_npy_limit.err"
  echo '```'
}
md_notes() {  # the notes of the first thread count, then the others' under their count
  grep '^MDNOTE ' "$log/$1.txt" | sed 's/^MDNOTE /- /' || true
  local f t
  for f in "$log/$1".t*.txt; do
    t=${f%.txt}
    t=${t##*.t}
    [ "$t" != "${thread_counts[0]}" ] && grep -q '^MDNOTE ' "$f" || continue
    echo "- at $t threads:"
    grep '^MDNOTE ' "$f" | sed 's/^MDNOTE /  - /'
  done
}
fact() { grep "^$1: " "$log/machine_info.txt" | head -1 | sed "s/^$1: //"; }

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cpu_id="family $(lscpu | sed -n 's/^CPU family: *//p' | head -1), model $(lscpu | sed -n 's/^Model: *//p' | head -1)"
simd=$(grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | paste -sd ' ')
caches=$(lscpu | sed -n 's/^L\([123d]*\) cache: *\(.*\)/L\1 \2/p' | tr '\n' ';' | sed 's/;$//; s/;/, /g')
{
  cat <<EOF
# Benchmarks

xgrad side by side with LibTorch (PyTorch's C++ frontend) and with what the hardware can
do, per workload of issue 6. Every program runs its variants in the same process, A B A B
(one warm-up run of each, then repetitions in turn), and reports min / median / max over
the repetitions; the ratio column is LibTorch's median over the variant's median (> 1: the
variant is faster than LibTorch), with the ratio of the minima beside it.

Regenerate this page with \`$command_line\` (it rewrites the file). Section "Changes and
their effect" at the end is kept by hand and survives regeneration.

## Machine and settings

| setting | value |
|---|---|
| CPU | ${cpu:-unknown} ($cpu_id; ${simd:-no AVX}) |
| caches | ${caches:-unknown} |
| cores | $cores |
| OpenBLAS core | $(fact openblas_core) |
| OpenBLAS build | $(fact openblas_config) |
| threads | ${thread_counts[*]}: each workload once per count, applied to xgrad (its own pool; OpenBLAS at 1 thread beside it), LibTorch (intra-op; 1 inter-op) and OpenBLAS for LibTorch and the limits |
| LibTorch | $(fact libtorch) |
| compiler | $(c++ --version | head -1) |
| xgrad commit | $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)') |
| date | $(date -u +%Y-%m-%d) |
| command | \`$command_line\` |

Timings on a shared 2-core machine are noisy; the medians of alternating runs are what to
compare, and ratios are more stable than absolute times.

## 1. Seed linear regression (overhead-bound)

Targets (issue 14): LibTorch / xgrad >= 400 and xgrad within 4x of the hand-written loop,
at 1 thread.

$(md_rows w1_seed_linreg)

$(md_speedup w1_seed_linreg)
$(md_notes w1_seed_linreg)

Load averages:

$(md_loads w1_seed_linreg)

## 2. Full-batch linear regression (memory-bound)

Targets (issue 14): at 1 thread, LibTorch / xgrad >= 2.6 and GB/s of X against the read
limit (a STREAM-style read of X, one core) >= 0.70 for every kernel path that reads X once
per step (xgrad's kernels at AVX-512 and at AVX2, BLAS); at 2 threads, >= 1.5x xgrad's own
1-thread speed. At 2 threads the table also reads X on both cores at once: what memory gives
two cores together bounds the 2-thread speed-up of a step that reads X once.

$(md_rows w2_full_linreg)

$(md_speedup w2_full_linreg)
$(md_notes w2_full_linreg)

Load averages:

$(md_loads w2_full_linreg)

## 3. MLP on Fashion-MNIST (GEMM-bound)

Targets (issue 14): at 1 thread, within 1.05x of the sgemm-only time (the same products on
OpenBLAS directly); at 2 threads, >= 1.6x xgrad's own 1-thread speed and ahead of LibTorch.

$(md_rows w3_mlp)

$(md_speedup w3_mlp)
$(md_notes w3_mlp)

Load averages:

$(md_loads w3_mlp)

## 4. Chain of 100000 scalar tanh steps (graph building)

Target (issue 14): LibTorch / xgrad >= 25, graph building, differentiation and compilation
included (both sides build, differentiate, run and free the whole chain every run).

$(md_rows w4_tanh_chain)

$(md_speedup w4_tanh_chain)
$(md_notes w4_tanh_chain)

Load averages:

$(md_loads w4_tanh_chain)

## 5. Streaming a .npy file through the DataLoader

Rows per second and peak resident memory of one SGD epoch streamed from a .npy file
(\`stream_npy ${stream_args[*]}\`, then with \`--workers 2\`, then with one worker and
\`--consumer-gathers\`: the training loop gathers later batches itself while it waits for
one, \`LoaderOptions::consumer_gathers\`), beside a plain sequential
read() of the same file and one pread() per row, and per block of 64 rows, in a shuffled
order (the bounds of the shuffled phases; file in the page cache; one run each: an epoch
over gigabytes is stable without repetitions). Targets: file order >= 0.8 of the plain
read, blocks of 64 rows >= 0.6 (against the bound of one pread per block), fully shuffled
>= 0.05 (against the bound of one pread per row), peak RSS < 64 MiB.

$(md_stream)

\`\`\`
$(grep -h -v '^generating\|^  written\|^MD ' "$log/stream_npy.txt" "$log/stream_npy_w2.txt" "$log/stream_npy_cg.txt")
\`\`\`

Under a memory limit smaller than the file: the same phases in a memory cgroup of
${limit_mib} MiB, the page cache included (\`scripts/memlimit.sh ${limit_mib} stream_npy
${limit_args[*]}\`), so the kernel cannot keep the file cached; the file is also dropped
from the cache at each phase's start, so each phase reads it from the disk (a virtual disk
here: its speed is the host's, and the ratios to the plain read say more than the times).

$(md_stream_limit)

## 6. LeNet-5 CNN on Fashion-MNIST (convolutions)

Targets: LibTorch / xgrad >= 1.5 at 1 thread; at 2 threads >= 1.6x xgrad's own 1-thread
speed; GFLOP/s against the step's products with im2col's shapes on OpenBLAS directly; no
allocation per steady-state step.

$(md_rows w6_cnn)

$(md_speedup w6_cnn)
$(md_notes w6_cnn)

Load averages:

$(md_loads w6_cnn)

## 7. Workload 3 data-parallel over MPI (xgrad::dist)

Workload 3's epoch at a fixed global batch of 128: \`mpirun -np 1\` and \`-np 2\`
(\`w7_dist_mlp\`, local batch 128 / R, one allreduce of loss and gradients per step, 1
thread per rank), and beside it workload 3 in one process at 2 threads (xgrad and
LibTorch, from section 3). Target: 2 ranks / 1 rank >= 1.7x.

$(if [ "$w7" = 1 ]; then
  echo "2 ranks / 1 rank: **${w7_ratio}x** images per second (load average before ${w7_load_before}, after ${w7_load_after})."
  echo
  echo '```'
  grep -h '^w7: ' "$log/w7_np1.txt" "$log/w7_np2.txt"
  echo '```'
  echo
  if [ -e "$log/w3_mlp.t2.txt" ]; then
    echo "Workload 3 in one process at 2 threads (section 3):"
    echo
    md_rows w3_mlp 2
  fi
else
  echo "Not measured: xgrad::dist is not built (MPI not found)."
fi)

## BLAS check

\`\`\`
$(cat "$log/blas_gemm.txt")
\`\`\`
EOF
  # The hand-kept section, carried over from the previous page.
  if [ -f docs/benchmarks.md ] && grep -q '^## Changes and their effect' docs/benchmarks.md; then
    echo
    sed -n '/^## Changes and their effect/,$p' docs/benchmarks.md
  fi
} >"$log/benchmarks.md"
mv "$log/benchmarks.md" docs/benchmarks.md
echo
echo "wrote docs/benchmarks.md"
