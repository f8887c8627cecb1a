#!/bin/bash
# Alternates `salted bench` runs of two or more builds of the CLI on one
# model, so that a noisy shared host drifts over all of them alike; prints,
# per build, each round's "median/min" ms. Compare builds round by round,
# never one run against another taken minutes apart (docs/BENCHMARKS.md).
#
#   bench/ab.sh MODEL BATCH THREADS ITERS ROUNDS BIN_A BIN_B [BIN ...]
#
# e.g. cp build/salted /tmp/salted_before; (change, rebuild);
#      bench/ab.sh build-compare/compare-models/sensor_salt3.salted 1 1 300 6 /tmp/salted_before build/salted
# One thread runs pinned to CPU 0 (taskset), as bench/compare.sh's 1-thread rows.
set -euo pipefail
if [ $# -lt 7 ]; then
    echo "usage: bench/ab.sh MODEL BATCH THREADS ITERS ROUNDS BIN_A BIN_B [BIN ...]" >&2
    exit 2
fi
model=$1 batch=$2 threads=$3 iters=$4 rounds=$5
shift 5
[ -f "$model" ] || { echo "bench/ab.sh: no model file '$model'" >&2; exit 2; }
for n in "$batch" "$threads" "$iters" "$rounds"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench/ab.sh: '$n' is not a positive integer" >&2; exit 2; }
done
for b in "$@"; do [ -x "$b" ] || { echo "bench/ab.sh: '$b' is not an executable" >&2; exit 2; }; done
pin=()
if [ "$threads" = 1 ] && command -v taskset >/dev/null; then pin=(taskset -c 0); fi
declare -A line
for ((r = 0; r < rounds; ++r)); do
    for b in "$@"; do
        out=$("${pin[@]}" "$b" bench "$model" --batch "$batch" --threads "$threads" --iters "$iters" 2>&1) ||
            { echo "bench/ab.sh: $b failed:" >&2; echo "$out" >&2; exit 1; }
        v=$(sed -n 's/^median \([0-9.]*\) ms (min \([0-9.]*\),.*/\1\/\2/p' <<<"$out")
        line[$b]="${line[$b]:-} $v"
    done
done
for b in "$@"; do echo "$b:${line[$b]}"; done
