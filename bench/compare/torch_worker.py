#!/usr/bin/python3
"""PyTorch side of bench/compare (README.md here). Debian's python3-torch.

    /usr/bin/python3 torch_worker.py NAME STATE.pt X.npy [SALT.npy] [--threads T] [--mode jit|eager]

Rebuilds model NAME (bench/compare/models.py), loads the exported state_dict
and the fixed inputs, then speaks the protocol of salted_worker.cpp: prints
`ready {json}`, then reads
  run N        N timed forward passes; prints `times t1 ... tN` (ms)
  output PATH  writes the last output as .npy; prints `ok`
  quit         (or end of input) exits 0
Failures print `error: <one line>`; a failure before `ready` exits 1.

--mode jit (default): torch.jit.trace + torch.jit.optimize_for_inference, the
fastest batch-1 mode per BENCHMARKING.md; if tracing or optimising fails, or
the result disagrees with eager, it falls back to eager and says why in the
ready line. The BLAS actually mapped into the process (OpenBLAS when run with
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread) is reported too.
"""
import json
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def reply(text):
    sys.stdout.write(text.replace("\n", " ") + "\n")
    sys.stdout.flush()


def fail_start(msg):
    reply(f"error: {msg}")
    return 1


def mapped_blas():
    """Real paths of the BLAS/LAPACK-like libraries mapped into this process."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(p)
                if ("blas" in base or "lapack" in base or "mkl" in base) and p not in found:
                    found.append(p)
    except OSError:
        return ["(unknown: /proc/self/maps unreadable)"]
    return [f"{p} -> {os.path.realpath(p)}" if os.path.realpath(p) != p else p for p in found]


def main(argv):
    pos, threads, mode = [], 1, "jit"
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--threads", "--mode"):
            if i + 1 >= len(argv):
                return fail_start(f"{a}: expected a value")
            v = argv[i + 1]
            if a == "--threads":
                if not v.isdigit() or not 1 <= int(v) <= 1024:
                    return fail_start("--threads: expected an integer in 1..1024")
                threads = int(v)
            else:
                if v not in ("jit", "eager"):
                    return fail_start(f"--mode: expected jit or eager, found '{v}'")
                mode = v
            i += 2
        elif a.startswith("-"):
            return fail_start(f"unknown option '{a}'")
        else:
            pos.append(a)
            i += 1
    if not 3 <= len(pos) <= 4:
        return fail_start("usage: torch_worker.py NAME STATE.pt X.npy [SALT.npy] [--threads T] [--mode jit|eager]")

    try:
        import numpy as np
        import torch
        import models as registry
        torch.set_num_threads(threads)
        name = pos[0]
        msg = registry.check_names([name])
        if msg:
            return fail_start(msg)
        t0 = time.perf_counter()
        model = registry.construct(name)
        model.load_state_dict(torch.load(pos[1]))
        model.eval()
        inputs = [torch.from_numpy(np.load(p).astype(np.float32)) for p in pos[2:]]
        want = 1 if model.salt_kind == "none" else 2
        if len(inputs) != want:
            return fail_start(f"{name}: expected {want} input file(s) ({'x' if want == 1 else 'x and salt'}), found {len(inputs)}")
        inputs = tuple(inputs)
        with torch.no_grad():
            eager_out = model(*inputs)
        run_mode, note = "eager", ""
        fn = model
        if mode == "jit":
            try:
                with torch.no_grad():
                    traced = torch.jit.trace(model, inputs)
                    opt = torch.jit.optimize_for_inference(traced)
                    got = opt(*inputs)
                    got = opt(*inputs)  # the first calls of an optimised module may still be profiling
                tol = 1e-4 * max(1.0, float(eager_out.abs().max()))
                diff = float((got - eager_out).abs().max())
                if not diff <= tol:
                    note = f"jit disagrees with eager (max|diff| {diff:.3g} > {tol:.3g}); using eager"
                else:
                    fn, run_mode = opt, "jit.trace+optimize_for_inference"
            except Exception as e:  # any failure of tracing/optimising: measure eager instead
                note = f"jit failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); using eager"
        load_ms = (time.perf_counter() - t0) * 1e3
    except Exception as e:
        return fail_start(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    info = {"engine": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "mode": run_mode, "requested_mode": mode,
            "note": note, "mkldnn": bool(torch.backends.mkldnn.is_available()), "blas": mapped_blas(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
            "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "(unset)"),
            "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""), "load_ms": load_ms,
            "batch": int(inputs[0].shape[0])}
    reply("ready " + json.dumps(info))

    last = eager_out
    ctx = torch.inference_mode() if fn is model else torch.no_grad()
    with ctx:
        for raw in sys.stdin:
            line = raw.rstrip("\r\n")
            if line == "quit":
                break
            if line.startswith("run "):
                arg = line[4:]
                if not arg.isdigit() or not 1 <= int(arg) <= 100000:
                    reply(f"error: run: expected a count in 1..100000, found '{arg[:40]}'")
                    continue
                times = []
                try:
                    for _ in range(int(arg)):
                        a = time.perf_counter_ns()
                        last = fn(*inputs)
                        b = time.perf_counter_ns()
                        times.append(f"{(b - a) / 1e6:.6f}")
                    reply("times " + " ".join(times))
                except Exception as e:
                    reply(f"error: run: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            elif line.startswith("output "):
                try:
                    np.save(line[7:], last.detach().cpu().numpy().astype(np.float32))
                    reply("ok")
                except Exception as e:
                    reply(f"error: output: {type(e).__name__}: {e}")
            else:
                reply(f"error: unknown command '{line[:60]}' (expected run N, output PATH, quit)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
