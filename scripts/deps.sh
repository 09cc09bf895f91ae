#!/usr/bin/env bash
# Makes sure the Debian bookworm packages xgrad builds against are installed.
# As root it installs what is missing; otherwise it prints the command to run and fails.
set -euo pipefail

packages=(
  libxtensor-dev libxtensor-blas-dev libxsimd-dev xtl-dev libboost-graph-dev
  libgtest-dev libbenchmark-dev doxygen graphviz libopenblas-dev liblapack-dev
  cmake g++ make
  dataset-fashion-mnist python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  # Status, not mere presence: removed-but-configured packages are still listed by dpkg.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages; install them with:" >&2
  echo "sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y "${missing[@]}"
