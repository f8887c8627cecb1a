#!/usr/bin/env python3
"""Writes the PyTorch parity cases for every op family.

Each tests/parity/gen_<family>.py defines `generate(out_dir, rng)`; it writes
one directory per case under out_dir/<family>/<case>/ holding `params.txt`
(one "key v1 v2 ..." line per parameter) and .npy arrays (inputs, weights,
and the PyTorch output). The C++ side (tests/parity_util.hpp) reads them.
Seeded, so the cases are the same on every run.
"""
import argparse
import importlib.util
import pathlib
import shutil
import sys

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    here = pathlib.Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    gens = sorted(here.glob("gen_*.py"))
    if not gens:
        print("no generators found", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    total = 0
    for g in gens:
        spec = importlib.util.spec_from_file_location(g.stem, g)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        family = g.stem[len("gen_"):]
        torch.manual_seed(1234)
        rng = np.random.default_rng(1234)
        n = mod.generate(out / family, rng)
        print(f"{family}: {n} cases")
        total += n
    print(f"parity: {total} cases written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
