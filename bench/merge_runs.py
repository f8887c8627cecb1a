#!/usr/bin/env python3
"""Merges the Markdown tables of several bench_layers runs into one table
that shows every run's medians side by side (a single run on a shared
machine is not a fact; agreement between runs is the evidence).

    bench/merge_runs.py run1.md run2.md run3.md > merged.md

Per row: salted and SGEMM median microseconds of each run ("a / b / c"), the
median over runs of each side's GFLOP/s, the per-run ratio (SGEMM median /
salted median, > 1 means salted is faster), and the largest MAD of the runs
as a percentage of the median (the within-run spread); for runs that timed
oneDNN too, its GFLOP/s and the per-run best ratio (the faster SGEMM of the
two / salted). Standard library only.
"""
import statistics
import sys


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("| ") and not line.startswith("| model"):
                rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def mad_percent(spread):
    # "min–max ±1.2%"
    return float(spread.rsplit("±", 1)[1].rstrip("%"))


def main(paths):
    if not paths:
        sys.exit(__doc__)
    runs = [load(p) for p in paths]
    if any(len(r) != len(runs[0]) for r in runs):
        sys.exit("merge_runs: the runs have different rows (different --filter or shape table?)")
    # Runs built with oneDNN have its columns after `algo` (13: µs, 15: GFLOP/s, 16: best ratio).
    dnnl = all(len(r) >= 17 and r[13] != "-" for run in runs for r in run)
    extra_head, extra_rule = (" | oneDNN GFLOP/s | best ratio (per run)", "|--:|--:") if dnnl else ("", "")
    print("| model | layer | batch | GEMM MxNxK | MFLOP | salted µs (per run) | SGEMM µs (per run) "
          f"| salted GFLOP/s | SGEMM GFLOP/s | ratio (per run) | max MAD % s/b{extra_head} |")
    print(f"|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:{extra_rule}|")
    for i, first in enumerate(runs[0]):
        rows = [r[i] for r in runs]
        if any(r[:4] != first[:4] for r in rows):
            sys.exit(f"merge_runs: row {i + 1} differs between runs: {[r[:2] for r in rows]}")
        per_run = lambda col: " / ".join(r[col] for r in rows)
        med = lambda col: statistics.median(float(r[col]) for r in rows)
        mad_s = max(mad_percent(r[6]) for r in rows)
        mad_b = max(mad_percent(r[9]) for r in rows)
        extra = f" | {med(15):.1f} | {per_run(16)}" if dnnl else ""
        print(f"| {first[0]} | {first[1]} | {first[2]} | {first[3]} | {first[4]} | {per_run(5)} | {per_run(8)} "
              f"| {med(7):.1f} | {med(10):.1f} | {per_run(11)} | {mad_s:.1f} / {mad_b:.1f}{extra} |")


if __name__ == "__main__":
    main(sys.argv[1:])
