#!/usr/bin/env bash
# CPU time (user + sys) a user's compiler spends on files that use xgrad, for the current
# tree and for a baseline revision, side by side:
#   (a) a file that includes only <xtensor/xarray.hpp>   (the floor: xtensor itself)
#   (b) a file that includes only <xgrad/xgrad.hpp>
#   (c) tutorials/05_custom_model/main.cpp              (a 200-line program: graph,
#                                                        optimizer, loader, I/O)
#   (d) (c) with <xgrad/xgrad.hpp> precompiled, as xgrad_precompile() sets it up (for
#       the baseline, which had no such helper, the same PCH made by hand); the PCH's
#       own cost, paid once per target, is the row after it
# and, where they exist, the tutorials' helpers in tutorials/common/*.cpp, compiled once
# for all tutorials (before they were in (c), inline in tutorials/common/*.hpp).
# Flags are a CMake Release build's for a project that links xgrad::xgrad: -O2 -DNDEBUG
# -std=c++20 -DXTENSOR_USE_XSIMD and the include directories. Each figure is the
# smallest of --repeat runs, since other work on the machine only ever adds time.
#
#   scripts/compile_time.sh [--baseline REV] [--repeat N]
#
# REV defaults to a790ab8 (before headers were slimmed down); it is exported with git
# archive, so any clone with that history works. CXX picks the compiler (default c++),
# CXXFLAGS_EXTRA adds flags (e.g. -I for an xtensor outside the default search path).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

baseline=a790ab8
repeat=3
while [[ $# -gt 0 ]]; do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "usage: $0 [--baseline REV] [--repeat N]" >&2; exit 2 ;;
  esac
done
cxx=${CXX:-c++}
read -r -a flags <<<"-O2 -DNDEBUG -std=c++20 -DXTENSOR_USE_XSIMD ${CXXFLAGS_EXTRA:-}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#include <xtensor/xarray.hpp>\nint main() { return 0; }\n' >"$work/only_xarray.cpp"
printf '#include <xgrad/xgrad.hpp>\nint main() { return 0; }\n' >"$work/only_xgrad.cpp"

# cpu_seconds VAR CMD...: runs CMD and lowers VAR (empty: unset) to its user + sys time.
cpu_seconds() {
  local -n best=$1
  shift
  if ! { TIMEFORMAT='%U %S'; time "$@" >"$work/log" 2>&1; } 2>"$work/time"; then
    cat "$work/log" >&2
    echo "failed: $*" >&2
    exit 1
  fi
  local t
  t=$(awk '{ printf "%.2f", $1 + $2 }' "$work/time")
  if [[ -z ${best:-} ]] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
}

# compile KIND TREE PREFIX: one compilation of row KIND (a, b, c, pch, d, common) of the
# sources under TREE, lowering PREFIX_KIND to its time.
compile() {
  local kind=$1 tree=$2 var=$3_$1 inc=(-I"$2/include" -I"$2/tutorials/common")
  local obj=$work/out.o pch=$work/pch_$3 main=$2/tutorials/05_custom_model/main.cpp
  case $kind in
    a) cpu_seconds "$var" "$cxx" "${flags[@]}" "${inc[@]}" -c "$work/only_xarray.cpp" -o "$obj" ;;
    b) cpu_seconds "$var" "$cxx" "${flags[@]}" "${inc[@]}" -c "$work/only_xgrad.cpp" -o "$obj" ;;
    c) cpu_seconds "$var" "$cxx" "${flags[@]}" "${inc[@]}" -c "$main" -o "$obj" ;;
    pch)
      # What CMake's target_precompile_headers generates: a header that includes
      # xgrad.hpp, compiled once, then force-included into the source (row d).
      mkdir -p "$pch"
      printf '#include <xgrad/xgrad.hpp>\n' >"$pch/cmake_pch.hxx"
      cpu_seconds "$var" "$cxx" "${flags[@]}" "${inc[@]}" -x c++-header "$pch/cmake_pch.hxx" \
        -o "$pch/cmake_pch.hxx.gch"
      ;;
    d)
      cpu_seconds "$var" "$cxx" "${flags[@]}" "${inc[@]}" -Winvalid-pch \
        -include "$pch/cmake_pch.hxx" -c "$main" -o "$obj"
      ;;
    common)
      local sources=("$tree"/tutorials/common/*.cpp)
      if [[ -e ${sources[0]} ]]; then
        cpu_seconds "$var" env --chdir="$work" "$cxx" "${flags[@]}" "${inc[@]}" -c "${sources[@]}"
      fi
      ;;
  esac
}

have_baseline=false
if git rev-parse --verify --quiet "$baseline^{commit}" >/dev/null; then
  have_baseline=true
  mkdir -p "$work/baseline"
  git archive "$baseline" include tutorials | tar -x -C "$work/baseline"
else
  echo "baseline revision $baseline is not in this clone: only the current tree is measured"
fi
# The two trees' compilations of a row run back to back, so that a change in the
# machine's load hits both alike.
for ((run = 0; run < repeat; ++run)); do
  for kind in a b c pch d common; do
    if $have_baseline; then compile "$kind" "$work/baseline" base; fi
    compile "$kind" "$root" now
  done
done

echo "$("$cxx" --version | head -n 1); ${flags[*]}; least of $repeat runs"
if $have_baseline; then
  echo "baseline: $baseline ($(git log -1 --format=%s "$baseline" | cut -c1-60)...)"
fi
row() {  # row NAME BASELINE NOW
  if $have_baseline && [[ $2 != - ]]; then
    printf '%-48s %12s %10s %7s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", b / a }')"
  else
    printf '%-48s %12s %10s %7s\n' "$1" "-" "$3" "-"
  fi
}
printf '%-48s %12s %10s %7s\n' "file" "baseline s" "now s" "ratio"
row "(a) only <xtensor/xarray.hpp>" "${base_a:--}" "$now_a"
row "(b) only <xgrad/xgrad.hpp>" "${base_b:--}" "$now_b"
row "(c) tutorials/05_custom_model/main.cpp" "${base_c:--}" "$now_c"
row "(d) (c) with the precompiled xgrad.hpp" "${base_d:--}" "$now_d"
row "    the PCH itself (once per target)" "${base_pch:--}" "$now_pch"
if [[ -n ${now_common:-} ]]; then
  row "    tutorials/common/*.cpp (once, all tutorials)" "${base_common:--}" "$now_common"
fi
if $have_baseline; then
  echo "tutorial 5 as a user compiles it, now with the PCH against the baseline without:" \
    "$(awk -v a="$base_c" -v b="$now_d" 'BEGIN { printf "%.2f", b / a }')"
fi
