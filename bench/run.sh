#!/bin/sh
# Builds and runs the layer micro-benchmark; extra arguments go to
# bench_layers (e.g. --threads 2, --iters 100, --filter WRN).
#   bench/run.sh [build-dir] [bench_layers options...]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$src/build-bench"}
[ $# -gt 0 ] && shift
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target bench_layers -j2
echo "## $(date -u '+%Y-%m-%d %H:%M UTC'); uptime:$(uptime)"
# Idle OpenMP workers block instead of spinning (BENCHMARKING.md: spinning
# collapses when another process holds a core of this 2-core machine).
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} "$build/bench/bench_layers" --iters 50 "$@"
