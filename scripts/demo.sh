#!/usr/bin/env bash
# Builds the library and the tutorials, then runs tutorials 1 to 4 (and 5 when the
# Fashion-MNIST package is installed), each under a header, with its summary and the
# paths of the figures it wrote. About a minute to build from scratch on 2 cores, then
# about 25 seconds to run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target tutorials

# Per-iteration lines are printed every K-th iteration here (each program prints all of
# them by default, as the lecture note does).
run() {  # run NAME ARGS...: in its build folder, where it writes its figures
  local name=$1
  shift
  echo
  echo "===== $name ====="
  local t0=$SECONDS
  (cd "build/tutorials/$name" && "./$name" "$@")
  echo "----- $name: $((SECONDS - t0)) s, figures in build/tutorials/$name/"
}
run 01_one_variable --every 100
run 02_several_variables --every 100
run 03_linear_regression --every 1000
run 04_sgd
if [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  run 05_custom_model
else
  echo
  echo "===== 05_custom_model: skipped, Fashion-MNIST is not installed" \
    "(sudo apt-get install dataset-fashion-mnist) ====="
fi

echo
echo "demo done in $((SECONDS - start)) s. Tutorials 6 (a custom optimizer and schedule) and"
echo "7 (a custom op) run the same way: cd build/tutorials/06_custom_optimizer && ./06_custom_optimizer"
echo "Each tutorial's README (tutorials/NN_name/README.md) walks through its code."
