#!/usr/bin/python3
"""bench/compare orchestrator: salted vs ONNX Runtime vs PyTorch, interleaved.

Normally started by bench/compare.sh (which installs what is missing and
builds the salted worker); see README.md here for the protocol. Writes
results.md (the table), results.json (raw samples) and each engine's last
output under --out, and prints the table. Exit status: 0 when every engine
ran and all outputs agree, 1 otherwise (a disagreement is printed loudly),
2 for bad arguments.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import select
import shlex
import signal
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import models as registry  # noqa: E402

PYTHON = "/usr/bin/python3"  # Debian's python3-torch lives here (not the python3 on PATH)
OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread"
ENGINES = ("salted", "ort", "torch")
ENGINE_TITLE = {"salted": "salted", "ort": "ONNX Runtime", "torch": "PyTorch"}
QUICK_MODELS = "lenet_std,lenet_salt3"


class WorkerError(Exception):
    pass


# ----------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------

class Worker:
    """One engine on one model, batch and thread count, driven over a pipe."""

    def __init__(self, engine, model, cmd, env, log_path):
        self.engine, self.model = engine, model
        self.key = f"{ENGINE_TITLE[engine]} on {model}"
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.buf = b""
        self.info = {}
        self.samples = []
        self.sample_threads = []  # salted only: threads each sample's run could use (`modes`)
        self.block = 1
        self.est_ms = 1.0
        self.cmd = cmd
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                         cwd=str(HERE))
        except OSError as e:
            self.log.close()
            raise WorkerError(f"{self.key}: cannot start {cmd[0]}: {e.strerror}")

    def _stderr_tail(self):
        try:
            self.log.flush()
            lines = [ln for ln in pathlib.Path(self.log_path).read_text(errors="replace").splitlines() if ln.strip()]
            return f" (stderr: {lines[-1][:200]})" if lines else ""
        except OSError:
            return ""

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"{self.key}: no answer within {timeout:.0f} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    rc = self.proc.wait()
                    raise WorkerError(f"{self.key}: exited with status {rc}{self._stderr_tail()}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    def _answer(self, prefixes, timeout):
        """The next line starting with one of `prefixes` or `error:`; other
        lines (stray prints of a library) go to the log."""
        while True:
            line = self._readline(timeout)
            if line.startswith("error:"):
                raise WorkerError(f"{self.key}: {line[6:].strip()}")
            if line.startswith(prefixes):
                return line
            self.log.write(f"[stdout] {line}\n".encode())

    def wait_ready(self, timeout=600):
        line = self._answer(("ready ",), timeout)
        try:
            self.info = json.loads(line[6:])
        except ValueError:
            raise WorkerError(f"{self.key}: bad ready line '{line[:120]}'")

    def send(self, cmd):
        try:
            self.proc.stdin.write((cmd + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            rc = self.proc.poll()
            raise WorkerError(f"{self.key}: pipe closed (status {rc}){self._stderr_tail()}")

    def _numbers(self, cmd, prefix, n, convert, timeout):
        """Sends `cmd`; its answer `prefix v1 ... vn` as n values."""
        self.send(cmd)
        line = self._answer((prefix,), timeout=timeout)
        try:
            values = [convert(t) for t in line.split()[1:]]
        except ValueError:
            raise WorkerError(f"{self.key}: bad {prefix} line '{line[:120]}'")
        if len(values) != n:
            raise WorkerError(f"{self.key}: asked for {n} values of '{cmd}', got {len(values)}")
        return values

    def run(self, n):
        return self._numbers(f"run {n}", "times", n, float, max(120.0, 20.0 * n * self.est_ms / 1e3))

    def modes(self, n):
        """Threads each of the last `run` call's n runs could use (salted's
        adaptive thread choice: 1 when it kept the run on the calling thread)."""
        return self._numbers("modes", "modes", n, int, 60)

    def output(self, path):
        self.send(f"output {path}")
        self._answer(("ok",), timeout=120)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def worker_command(engine, model, batch, threads, args):
    d = pathlib.Path(args.models_dir)
    x = d / f"{model}_b{batch}_x.npy"
    salt = d / f"{model}_b{batch}_salt.npy"
    extra = [str(salt)] if salt.exists() else []  # the exporter writes one for salted models only
    if engine == "salted":
        return [str(args.worker), str(d / f"{model}.salted"), str(x)] + extra + ["--threads", str(threads)]
    if engine == "ort":
        return [args.node, str(HERE / "ort_worker.js"), str(d / f"{model}.onnx"), str(x)] + extra + [
            "--threads", str(threads)]
    return [PYTHON, str(HERE / "torch_worker.py"), model, str(d / f"{model}.pt"), str(x)] + extra + [
        "--threads", str(threads), "--mode", args.torch_mode]


def worker_env(engine, threads):
    env = dict(os.environ)
    # Idle threads block instead of spinning, for every engine: salted and
    # PyTorch through libgomp (the `salted` program's default), ONNX Runtime
    # through its session option allow_spinning=0 (ort_worker.js).
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = str(threads)
    if engine == "torch":
        env["OPENBLAS_NUM_THREADS"] = str(threads)
        env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


# ----------------------------------------------------------------------------
# Measurement of one group: a model family x batch [x contended], every thread count
# ----------------------------------------------------------------------------

def start_spinner(cpu):
    code = ("import os\ntry:\n    os.sched_setaffinity(0, {%d})\nexcept OSError:\n    pass\nwhile True:\n    pass\n" % cpu)
    return subprocess.Popen([PYTHON, "-c", code], stdin=subprocess.DEVNULL)


def stop_process(p):
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stats(samples):
    if not samples:
        return None
    med = statistics.median(samples)
    return {"median": med, "min": min(samples), "max": max(samples),
            "mad": statistics.median(abs(s - med) for s in samples), "n": len(samples)}


def loadavg():
    try:
        return pathlib.Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        return ["?", "?", "?"]


def measure_group(models, batch, thread_counts, contended, args, out, log):
    """Returns {(model, threads): row} for one group; every (model, threads, engine) is interleaved.

    All thread counts share one group so that a speedup (2 threads over 1) is
    a ratio of medians taken in the same minutes: on a shared host the speed
    of every engine drifts by 10-60 % between groups measured minutes apart
    (2026-12-07 08:11: every engine's LeNet batch-1 runs 1.1-1.6x slower in
    the 2-thread group than in the 1-thread group before it)."""
    def tag(threads):
        return f"b{batch}_t{threads}" + ("_contended" if contended else "")
    runs = args.runs_b64 if batch >= 64 else args.runs
    rows = {(m, t): {"model": m, "label": registry.label(m), "batch": batch, "threads": t, "contended": contended,
                     "engines": {}, "errors": {}, "load_before": loadavg()} for m in models for t in thread_counts}
    spinner = None
    workers = []
    try:
        if contended:
            spinner = start_spinner((os.cpu_count() or 1) - 1)
            time.sleep(0.2)
            if spinner.poll() is not None:
                for row in rows.values():
                    row["errors"]["contended"] = "the busy-loop process for --contended exited at once"
                models = []  # measure nothing; the error is reported below
        for t in thread_counts:
            for m in models:
                for e in args.engine_list:
                    try:
                        w = Worker(e, m, worker_command(e, m, batch, t, args), worker_env(e, t),
                                   out / "logs" / f"{m}_{tag(t)}_{e}.log")
                        w.threads, w.row = t, rows[(m, t)]
                        workers.append(w)
                    except WorkerError as err:
                        rows[(m, t)]["errors"][e] = str(err)
        for w in list(workers):
            try:
                w.wait_ready()
            except WorkerError as err:
                w.row["errors"][w.engine] = str(err)
                w.close()
                workers.remove(w)
        # Warm-up, one worker at a time: up to --warmup runs, at least 2, and
        # stop once --warmup-seconds have passed.
        for w in list(workers):
            try:
                warm, t0 = [], time.monotonic()
                while len(warm) < args.warmup and (len(warm) < 2 or time.monotonic() - t0 < args.warmup_seconds):
                    warm += w.run(1)
                w.est_ms = statistics.median(warm)
                w.warmup = warm
                w.block = max(1, min(args.block, int(args.block_seconds * 1e3 / max(w.est_ms, 1e-3))))
            except WorkerError as err:
                w.row["errors"][w.engine] = str(err)
                w.close()
                workers.remove(w)
        def gap(w):  # after a turn of w
            return (args.gap_ms if args.gap_ms is not None else (50 if w.threads > 1 else 0)) / 1e3
        r = 0
        while any(len(w.samples) < runs for w in workers):
            k = r % len(workers)
            for w in workers[k:] + workers[:k]:
                if len(w.samples) >= runs or w.engine in w.row["errors"]:
                    continue
                try:
                    n = min(w.block, runs - len(w.samples))
                    w.samples += w.run(n)
                    if w.engine == "salted":
                        w.sample_threads += w.modes(n)
                except WorkerError as err:
                    w.row["errors"][w.engine] = str(err)
                    w.samples = w.samples + [float("nan")] * (runs - len(w.samples))  # stop asking it
                if gap(w):
                    time.sleep(gap(w))
            r += 1
        for w in workers:
            if w.engine in w.row["errors"]:
                continue
            path = out / "outputs" / f"{w.model}_{tag(w.threads)}_{w.engine}.npy"
            try:
                w.output(path)
                w.row["engines"][w.engine] = {"stats": stats(w.samples), "samples_ms": w.samples,
                                                      "warmup_ms": getattr(w, "warmup", []), "block": w.block,
                                                      "info": w.info, "output": str(path)}
                if w.engine == "salted":
                    w.row["engines"][w.engine]["sample_threads"] = w.sample_threads
            except WorkerError as err:
                w.row["errors"][w.engine] = str(err)
    finally:
        for w in workers:
            w.close()
        stop_process(spinner)
    for (m, t), row in rows.items():
        row["load_after"] = loadavg()
        row["agreement"] = check_agreement(row, args.tol)
        for e, msg in row["errors"].items():
            log(f"compare: ERROR: {registry.label(m)} b{batch} t{t}{' contended' if contended else ''}: {msg}")
    return rows


def check_agreement(row, tol):
    import numpy as np
    outs = {}
    for e, d in row["engines"].items():
        try:
            outs[e] = np.load(d["output"])
        except (OSError, ValueError) as err:
            return {"ok": False, "max_rel": None, "message": f"cannot read {e}'s output: {err}"}
    if len(outs) < 2:
        return {"ok": True, "max_rel": None, "message": "fewer than two engines: nothing to compare"}
    worst, msgs = 0.0, []
    names = list(outs)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = outs[names[i]], outs[names[j]]
            pair = f"{ENGINE_TITLE[names[i]]} vs {ENGINE_TITLE[names[j]]}"
            if a.shape != b.shape:
                msgs.append(f"{pair}: shapes {a.shape} and {b.shape}")
                worst = float("inf")
                continue
            if not (np.isfinite(a).all() and np.isfinite(b).all()):
                msgs.append(f"{pair}: non-finite values")
                worst = float("inf")
                continue
            scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-30)
            rel = float(np.abs(a.astype(np.float64) - b).max()) / scale
            worst = max(worst, rel)
            if rel > tol:
                msgs.append(f"{pair}: max|diff| = {rel:.2e} of max|y| > {tol:g}")
    return {"ok": not msgs, "max_rel": worst, "message": "; ".join(msgs)}


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------

def fmt_ms(v):
    if v is None or v != v:
        return "-"
    return f"{v:.3f}" if v < 10 else (f"{v:.2f}" if v < 100 else f"{v:.1f}")


def med(row, engine):
    d = row["engines"].get(engine)
    return d["stats"]["median"] if d and d["stats"] else None


def time_cell(row, engine):
    if engine in row["errors"]:
        return "error"
    m = med(row, engine)
    if m is None:
        return "-"
    if row["batch"] > 1:
        return f"{fmt_ms(m)} ({fmt_ms(m / row['batch'])}/img)"
    return fmt_ms(m)


def mad_cell(row, engines):
    parts = []
    for e in engines:
        d = row["engines"].get(e)
        parts.append(f"{100 * d['stats']['mad'] / d['stats']['median']:.1f}" if d and d["stats"] and d["stats"]["median"] else "-")
    return "/".join(parts)


def best_peer(row):
    peers = [m for m in (med(row, "ort"), med(row, "torch")) if m]
    return min(peers) if peers else None


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def thread_choice_lines(rows):
    """Which timed runs of salted's multi-thread rows used the pool: the
    session times the pool against the calling thread alone and keeps the
    faster (graph/thread_choice.hpp), so a '2 threads' row may have run
    wholly or partly on one. Runs before 2026-12-07 13:40 did not record it."""
    parts = []
    for r in rows:
        used = r["engines"].get("salted", {}).get("sample_threads")
        if r["threads"] > 1 and used:
            parts.append(f"{r['label']} b{r['batch']} {sum(1 for t in used if t > 1)}/{len(used)}")
    if not parts:
        return []
    return ["", "salted's adaptive thread choice, timed runs on the pool / all (the rest stayed on the calling "
            "thread): " + "; ".join(parts) + "."]


def core_latency_ns(args):
    """The core-to-core round trip now (salted_core_latency, built beside the
    worker), or None. Placement of the two vCPUs on the host changes within
    minutes and decides much of the 2-thread speed at batch 1 (core_latency.cpp)."""
    exe = pathlib.Path(args.worker).parent / "salted_core_latency"
    try:
        out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=20).stdout.strip()
        return float(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def core_latency_lines(rows):
    """Round trips measured before and after each group of these rows."""
    parts, seen = [], set()
    for r in rows:
        rtt = r.get("core_rtt_ns")  # absent from runs before 2026-12-07 18:20
        if not rtt:
            continue
        key = (r["batch"], r["model_family"], r["contended"])
        if key in seen:
            continue
        seen.add(key)
        parts.append(f"{r['model_family']} b{r['batch']} "
                     + "/".join("?" if v is None else f"{v:.0f}" for v in rtt))
    if not parts:
        return []
    return ["", "Core-to-core round trip of a cache line, ns, before/after each group (~120: the two CPUs share a "
            "last-level cache on the host; ~400-600: they do not, and 2 threads gain less at batch 1): "
            + "; ".join(parts) + "."]


def render(all_rows, args, meta):
    idx = {(r["model"], r["batch"], r["threads"], r["contended"]): r for r in all_rows}
    eng = args.engine_list
    lines = []
    head = ["model", "batch", "threads"] + [f"{ENGINE_TITLE[e]} ms" for e in eng] + [
        "ncnn b1 ms (issue 5, fixed)", "salted / best peer", "salted GFLOP/s", "salted / standard",
        "salted speedup vs 1 thread", "max rel diff", "MAD % " + "/".join(e[0] for e in eng)]
    for contended in (False, True):
        rows = [r for r in all_rows if r["contended"] == contended]
        if not rows:
            continue
        if contended:
            lines += ["", f"Contended: {args.contended_threads} threads, and 1 thread, while another process keeps CPU "
                      f"{(os.cpu_count() or 1) - 1} busy (a pinned busy loop), interleaved in one group. In square "
                      "brackets: the engine's own 1-thread time under the same busy loop / this time (< 1: slower than "
                      "with one thread; a collapse would be << 1).", ""]
            h = ["model", "batch", "threads"] + [f"{ENGINE_TITLE[e]} ms [1-thread / this]" for e in eng] + [
                "salted / best peer", "salted / standard", "max rel diff"]
        else:
            h = head
        lines.append("| " + " | ".join(h) + " |")
        lines.append("|" + "|".join("---" if i < 1 else "--:" for i in range(len(h))) + "|")
        for r in rows:
            s = med(r, "salted")
            std = registry.standard_of(r["model"])
            std_row = idx.get((std, r["batch"], r["threads"], r["contended"])) if std else None
            overhead = ratio(s, med(std_row, "salted")) if std_row else "-"
            ag = r["agreement"]
            agree = ("-" if ag["max_rel"] is None else f"{ag['max_rel']:.1e}") + ("" if ag["ok"] else " DISAGREE")
            cells = [r["label"], str(r["batch"]), str(r["threads"])]
            if contended:
                # The 1-thread reference measured under the same busy loop (runs
                # before 2026-12-07 10:40 had none: then the uncontended group's).
                one = idx.get((r["model"], r["batch"], 1, True)) or idx.get((r["model"], r["batch"], 1, False))
                for e in eng:
                    bracket = ratio(med(one, e) if one else None, med(r, e)) if r["threads"] > 1 else "-"
                    cells.append(f"{time_cell(r, e)} [{bracket}]")
                cells += [ratio(s, best_peer(r)), overhead, agree]
            else:
                ncnn = registry.ncnn_b1_ms(r["model"]) if r["batch"] == 1 and r["threads"] == 1 else "-"
                flops = r["engines"].get("salted", {}).get("info", {}).get("flops_per_item")
                gflops = f"{flops * r['batch'] / (s * 1e6):.1f}" if s and flops else "-"
                one = idx.get((r["model"], r["batch"], 1, False))
                speed = ratio(med(one, "salted"), s) if r["threads"] > 1 and one else "-"
                cells += [time_cell(r, e) for e in eng] + [ncnn, ratio(s, best_peer(r)), gflops, overhead, speed,
                                                           agree, mad_cell(r, eng)]
            lines.append("| " + " | ".join(cells) + " |")
        lines += thread_choice_lines(rows)
        lines += core_latency_lines(rows)
    notes = [
        "",
        "Times: median per run (whole batch; '/img' = per image for batch > 1) over the samples listed above, "
        "after warm-up. salted / best peer < 1: salted is faster than the faster of ONNX Runtime and PyTorch. "
        "salted / standard: the salted model over its standard twin, same engine, batch and threads, measured "
        "interleaved. GFLOP/s: salted's flops_per_item (2 per multiply-add, direct-convolution count) x batch / "
        "median. max rel diff: largest max|a-b| / max|y| over the engine pairs (tolerance "
        f"{args.tol:g}). MAD %: median absolute deviation / median, per engine in column order "
        f"({'/'.join(ENGINE_TITLE[e] for e in eng)}).",
    ]
    return "\n".join(meta + [""] + lines + notes) + "\n"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_lines():
    lscpu = sh("lscpu")

    def get(key):
        return next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith(key + ":")), "?")

    cpu = (f"{get('Model name')}, {get('CPU(s)')} CPUs ({get('Core(s) per socket')} cores/socket x "
           f"{get('Thread(s) per core')} threads/core)")
    if get("Hypervisor vendor") != "?":
        cpu += f", {get('Hypervisor vendor')} guest"
    return cpu, platform.release()


def busy_processes():
    out = sh("ps -eo pcpu,comm --sort=-pcpu --no-headers | head -6")
    return ", ".join(" ".join(ln.split()) for ln in out.splitlines() if ln.strip() and float(ln.split()[0]) >= 5.0) or "none >= 5% CPU"


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

def on_sigterm(signum, frame):
    raise KeyboardInterrupt()


def parse_list(text, what, lo, hi):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or any(not lo <= v <= hi for v in vals):
        print(f"compare: error: {what}: expected comma-separated integers in {lo}..{hi}, found '{text}'",
              file=sys.stderr)
        sys.exit(2)
    return sorted(set(vals))


def main(argv=None):
    ap = argparse.ArgumentParser(description="salted vs ONNX Runtime vs PyTorch on the reference models "
                                             "(normally via bench/compare.sh).")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_MODELS}, batch 1, 1 and 2 threads, 20 runs (under a minute)")
    ap.add_argument("--models", default=",".join(registry.MODELS), help="comma-separated (default: all): "
                    + ", ".join(registry.MODELS))
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per engine and configuration (default 50)")
    ap.add_argument("--runs-b64", type=int, default=None, help="timed runs for batch >= 64 (default: --runs)")
    ap.add_argument("--contended", action="store_true",
                    help="also measure --contended-threads threads and 1 thread while a busy loop holds one CPU (separate table)")
    ap.add_argument("--contended-only", action="store_true", help="only the contended measurement")
    ap.add_argument("--contended-threads", type=int, default=2)
    ap.add_argument("--engines", default="salted,ort,torch")
    ap.add_argument("--torch-mode", choices=("jit", "eager"), default="jit")
    ap.add_argument("--warmup", type=int, default=10, help="max warm-up runs per engine (at least 2; default 10)")
    ap.add_argument("--warmup-seconds", type=float, default=2.0, help="warm-up stops after this long (default 2)")
    ap.add_argument("--block", type=int, default=5, help="max runs per engine turn (default 5)")
    ap.add_argument("--block-seconds", type=float, default=0.25, help="a turn lasts about this long at most")
    ap.add_argument("--gap-ms", type=float, default=None,
                    help="pause after each turn (default 50 ms with >1 thread so idle pool threads of the "
                         "previous engine go to sleep; 0 with 1 thread)")
    ap.add_argument("--tol", type=float, default=1e-3, help="agreement tolerance, relative to max|y| (default 1e-3)")
    ap.add_argument("--build-dir", default=str(ROOT / "build-compare"))
    ap.add_argument("--models-dir", default=None, help="exported models (default BUILD/compare-models)")
    ap.add_argument("--worker", default=None, help="salted_compare_worker (default BUILD/bench/compare/...)")
    ap.add_argument("--node", default="node")
    ap.add_argument("--out", default=None, help="results directory (default BUILD/compare-results/DATE)")
    ap.add_argument("--from-json", metavar="RESULTS.json", help="only re-print the table of an earlier run")
    args = ap.parse_args(argv)

    if args.from_json:
        try:
            with open(args.from_json) as f:
                saved = json.load(f)
            rows, old = saved["rows"], argparse.Namespace(**saved["args"])
            print(render(rows, old, saved["meta"]), end="")
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"compare: error: {args.from_json}: not a results.json of compare.py ({e})", file=sys.stderr)
            return 1
        return 0 if all(r["agreement"]["ok"] and not r["errors"] for r in rows) else 1

    if args.quick:
        args.models, args.batches, args.threads = QUICK_MODELS, "1", "1,2"
        args.runs, args.warmup = min(args.runs, 20), min(args.warmup, 5)
    names = [n for n in args.models.split(",") if n]
    msg = registry.check_names(names)
    if msg:
        print(f"compare: error: {msg}", file=sys.stderr)
        return 2
    batches = parse_list(args.batches, "--batches", 1, 4096)
    threads = parse_list(args.threads, "--threads", 1, 1024)
    args.engine_list = [e for e in args.engines.split(",") if e]
    if not args.engine_list or any(e not in ENGINES for e in args.engine_list) or len(set(args.engine_list)) != len(args.engine_list):
        print(f"compare: error: --engines: expected a comma-separated subset of {','.join(ENGINES)}, found '{args.engines}'",
              file=sys.stderr)
        return 2
    if args.runs_b64 is None:
        args.runs_b64 = args.runs
    for what, v, lo in (("--runs", args.runs, 1), ("--runs-b64", args.runs_b64, 1), ("--warmup", args.warmup, 2),
                        ("--block", args.block, 1), ("--contended-threads", args.contended_threads, 1)):
        if not lo <= v <= 100000:
            print(f"compare: error: {what}: expected an integer in {lo}..100000, found {v}", file=sys.stderr)
            return 2
    build = pathlib.Path(args.build_dir)
    args.models_dir = args.models_dir or str(build / "compare-models")
    args.worker = args.worker or str(build / "bench" / "compare" / "salted_compare_worker")
    if "salted" in args.engine_list and not os.access(args.worker, os.X_OK):
        print(f"compare: error: {args.worker}: not built (cmake --build {build} --target salted_compare_worker)",
              file=sys.stderr)
        return 1
    started = datetime.datetime.now(datetime.timezone.utc)
    out = pathlib.Path(args.out or build / "compare-results" / started.strftime("%Y%m%d-%H%M%S")).resolve()  # workers run elsewhere
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "outputs").mkdir(parents=True, exist_ok=True)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    # Export once (cached by script hash), in a separate process: this one stays torch-free.
    log(f"compare: exporting {','.join(names)} into {args.models_dir}")
    r = subprocess.run([PYTHON, str(HERE / "export_models.py"), "--out", args.models_dir, "--models", ",".join(names),
                        "--batches", ",".join(map(str, batches))], stdout=sys.stderr)
    if r.returncode != 0:
        log("compare: error: export failed (see the message above)")
        return 1

    # compare.sh passes its own name and how many of our arguments are the user's (the rest it added).
    prefix, nargs = os.environ.get("SALTED_COMPARE_PREFIX"), os.environ.get("SALTED_COMPARE_NARGS", "")
    if prefix and nargs.isdigit() and int(nargs) <= len(sys.argv) - 1:
        user = sys.argv[len(sys.argv) - int(nargs):] if int(nargs) else []
        invoked = " ".join([prefix] + [shlex.quote(a) for a in user])
    else:
        invoked = " ".join(shlex.quote(a) for a in [PYTHON] + sys.argv)
    cpu, kernel = machine_lines()
    # Read-only: which salted was measured (the worker is rebuilt from the working tree).
    head = sh(f"git -C {shlex.quote(str(ROOT))} rev-parse --short HEAD") or "?"
    dirty = sh(f"git -C {shlex.quote(str(ROOT))} status --porcelain -- include")
    salted_src = f"commit {head}" + (" + uncommitted changes under include/" if dirty else "")
    uptime_before, busy_before = sh("uptime"), busy_processes()
    configs = [] if args.contended_only else [(threads, False)]
    if args.contended or args.contended_only:
        configs.append((sorted({1, args.contended_threads}), True))
    families = []
    for n in names:
        if registry.family(n) not in families:
            families.append(registry.family(n))

    # SIGTERM -> the same cleanup as Ctrl-C (workers and the busy loop are stopped in finally blocks).
    signal.signal(signal.SIGTERM, on_sigterm)
    all_rows = []
    t_start = time.monotonic()
    try:
        for b in batches:
            for fam in families:
                group = [n for n in names if registry.family(n) == fam]
                for ts, contended in configs:
                    log(f"compare: {fam} ({','.join(group)}) batch {b}, {','.join(map(str, ts))} thread(s)"
                        f"{', contended' if contended else ''} [{time.monotonic() - t_start:.0f} s, load {' '.join(loadavg())}]")
                    rtt_before = core_latency_ns(args)
                    rows = measure_group(group, b, ts, contended, args, out, log)
                    rtt = [rtt_before, core_latency_ns(args)]
                    for row in rows.values():
                        row["core_rtt_ns"], row["model_family"] = rtt, fam
                    all_rows += [rows[(n, t)] for t in ts for n in group]
    except KeyboardInterrupt:
        log("compare: interrupted; writing what was measured")

    uptime_after, busy_after = sh("uptime"), busy_processes()
    infos = {}
    for row in all_rows:
        for e, d in row["engines"].items():
            infos.setdefault(e, d["info"])
    si, oi, ti = infos.get("salted", {}), infos.get("ort", {}), infos.get("torch", {})
    meta = [
        "# bench/compare: salted vs ONNX Runtime vs PyTorch",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')} (took {time.monotonic() - t_start:.0f} s)",
        f"- command: `{invoked}`",
        f"- machine: {cpu}; kernel {kernel}",
        f"- load before: `{uptime_before}`; busy: {busy_before}",
        f"- load after: `{uptime_after}`; busy: {busy_after}",
        f"- salted: {salted_src}; salted_compare_worker (GCC {si.get('compiler', '?')}, {si.get('isa', '?')}, "
        f"OpenMP {'on' if si.get('openmp') else 'off'}, OMP_WAIT_POLICY={si.get('omp_wait_policy', '?')}), "
        "graph::Session, whole model",
        f"- ONNX Runtime {oi.get('version', '?')} (npm onnxruntime-node, Node {oi.get('node', '?')}): "
        "intraOpNumThreads=threads, interOpNumThreads=1, graphOptimizationLevel all, allow_spinning 0",
        f"- PyTorch {ti.get('version', '?')}: {ti.get('mode', '?')}{' (' + ti['note'] + ')' if ti.get('note') else ''}, "
        f"torch.set_num_threads(threads), OMP_WAIT_POLICY={ti.get('omp_wait_policy', '?')}, "
        f"OPENBLAS_NUM_THREADS=threads, BLAS mapped: {', '.join(os.path.basename(p) for p in ti.get('blas', [])) or '?'} "
        f"({os.path.dirname(ti['blas'][0]) if ti.get('blas') else '?'})",
        f"- protocol: per model family x batch, all engines on all models of the family at every thread count "
        f"(contended: a group of its own) run as separate "
        f"processes on the same inputs; warm-up up to {args.warmup} runs / {args.warmup_seconds:g} s each; then "
        f"turns of up to {args.block} runs (<= {args.block_seconds:g} s) per engine, order rotated every round, "
        f"until each has {args.runs} samples ({args.runs_b64} for batch >= 64); pause between turns "
        f"{'auto (50 ms with >1 thread)' if args.gap_ms is None else f'{args.gap_ms:g} ms'}",
    ]
    failed = [r for r in all_rows if r["errors"]]
    disagree = [r for r in all_rows if not r["agreement"]["ok"]]
    text = render(all_rows, args, meta)
    (out / "results.md").write_text(text)
    with open(out / "results.json", "w") as f:
        json.dump({"meta": meta, "args": {k: v for k, v in vars(args).items()}, "rows": all_rows}, f, indent=1,
                  default=str)
    print(text, end="", flush=True)
    for r in disagree:
        log(f"compare: DISAGREEMENT: {r['label']} batch {r['batch']} threads {r['threads']}"
            f"{' contended' if r['contended'] else ''}: {r['agreement']['message']}")
    log(f"compare: wrote {out / 'results.md'} and {out / 'results.json'}")
    if disagree or failed:
        log(f"compare: FAILED: {len(disagree)} disagreement(s), {len(failed)} configuration(s) with engine errors")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
