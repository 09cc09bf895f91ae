#!/usr/bin/env bash
# Makes sure the Debian bookworm packages xgrad builds against are installed (clang and
# libFuzzer for CI's second compiler and scripts/fuzz.sh).
# As root it installs what is missing; otherwise it prints the command to run and fails.
set -euo pipefail

packages=(
  libxtensor-dev libxtensor-blas-dev libxsimd-dev xtl-dev libboost-graph-dev
  libgtest-dev libbenchmark-dev doxygen graphviz libopenblas-dev liblapack-dev
  cmake g++ make
  dataset-fashion-mnist python3-numpy
  libzip-dev zlib1g-dev nlohmann-json3-dev pkg-config
  libopenmpi-dev openmpi-bin
  clang libfuzzer-14-dev
  libjs-mathjax
)
# For the tutorials' plots (gnuplot) and tutorial 3's real data set (scikit-learn's
# diabetes data); installed without their recommended packages, which would pull in a
# desktop's worth of fonts, ImageMagick and matplotlib.
lean_packages=(gnuplot-nox python3-sklearn)

missing=()
lean_missing=()
for p in "${lean_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    lean_missing+=("$p")
  fi
done
for p in "${packages[@]}"; do
  # Status, not mere presence: removed-but-configured packages are still listed by dpkg.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && [ ${#lean_missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages; install them with:" >&2
  [ ${#missing[@]} -gt 0 ] && echo "sudo apt-get install -y ${missing[*]}" >&2
  [ ${#lean_missing[@]} -gt 0 ] &&
    echo "sudo apt-get install -y --no-install-recommends ${lean_missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
[ ${#missing[@]} -eq 0 ] || apt-get install -y "${missing[@]}"
[ ${#lean_missing[@]} -eq 0 ] || apt-get install -y --no-install-recommends "${lean_missing[@]}"
