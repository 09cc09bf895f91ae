#!/usr/bin/env bash
# Builds the tutorials and runs them in name order, each under a header.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target tutorials

shopt -s nullglob
export LC_ALL=C  # byte order, so 01_, 02_, ... sort as written
tutorials=(tutorials/*.cpp)
[ ${#tutorials[@]} -eq 0 ] && { echo "no tutorials yet"; exit 0; }
for src in "${tutorials[@]}"; do
  name=$(basename "$src" .cpp)
  echo
  echo "===== $name ====="
  # Run where ctest runs them, so files they write stay in the build tree.
  (cd build/tutorials && "./$name")
done
