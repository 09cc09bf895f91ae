#!/usr/bin/env bash
# Release build, then every benchmark in bench/, one after another (never in parallel:
# concurrent runs would skew each other's timings).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCH=ON
cmake --build build -j"$(nproc)"

shopt -s nullglob
export LC_ALL=C
for src in bench/*.cpp; do
  name=$(basename "$src" .cpp)
  echo
  echo "===== $name ====="
  "build/bench/$name"
done
