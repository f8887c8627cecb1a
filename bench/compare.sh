#!/usr/bin/env bash
# One command: salted vs ONNX Runtime (npm) vs PyTorch (OpenBLAS) on the
# reference models, interleaved, outputs cross-checked (bench/compare/README.md).
#
#   bash bench/compare.sh [--quick] [--models a,b] [--batches 1,64] [--threads 1,2]
#                         [--runs 50] [--runs-b64 N] [--contended] [...]   (--help: all options)
#
# Installs what is missing (Debian: scripts/install-deps.sh, then nodejs and
# npm; npm: onnxruntime-node into bench/compare/node_modules),
# builds salted_compare_worker in $SALTED_COMPARE_BUILD (default build-compare/,
# Release), then runs bench/compare/compare.py. Results: the table on stdout,
# and results.md / results.json under BUILD/compare-results/DATE/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${SALTED_COMPARE_BUILD:-$root/build-compare}"
jobs="${SALTED_JOBS:-2}"

say() { echo "compare.sh: $*" >&2; }
die() { echo "compare.sh: error: $*" >&2; exit 1; }

for a in "$@"; do
  if [[ "$a" == "-h" || "$a" == "--help" ]]; then
    exec /usr/bin/python3 "$here/compare/compare.py" --help
  fi
done

# Debian packages: the project's list (compilers, xsimd, OpenBLAS, PyTorch,
# ONNX; a no-op when all are present), then Node.js and npm for ONNX Runtime.
bash "$root/scripts/install-deps.sh" >&2 || die "scripts/install-deps.sh failed"
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [[ ${#need[@]} -gt 0 ]]; then
  if [[ $(id -u) -eq 0 ]]; then as_root=()
  elif command -v sudo >/dev/null 2>&1; then as_root=(sudo)
  else die "${need[*]} missing: run as root, or: apt-get install -y npm nodejs"; fi
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
    { "${as_root[@]}" apt-get update >&2 && "${as_root[@]}" apt-get install -y --no-install-recommends "${need[@]}" >&2; } ||
    die "apt-get install -y ${need[*]} failed"
fi
command -v npm >/dev/null 2>&1 || die "npm is missing: apt-get install -y npm nodejs"

# ONNX Runtime from npm. Its install script would try to download CUDA files
# (and fails offline); the CPU libraries ship inside the package.
if [[ ! -f "$here/compare/node_modules/onnxruntime-node/package.json" ]]; then
  say "installing onnxruntime-node (npm) into bench/compare/node_modules"
  (cd "$here/compare" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --ignore-scripts >&2) ||
    die "npm install onnxruntime-node failed (network? see the npm output above)"
fi

# The salted worker (Release; -march=native and OpenMP from salted_dev_flags).
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >&2 || die "cmake configure failed"
fi
cmake --build "$build" --target salted_compare_worker salted_core_latency -j"$jobs" >&2 ||
  die "building salted_compare_worker and salted_core_latency failed"

export SALTED_COMPARE_PREFIX="bash bench/compare.sh" SALTED_COMPARE_NARGS=$#  # for the header's command line
exec /usr/bin/python3 "$here/compare/compare.py" --build-dir "$build" "$@"
