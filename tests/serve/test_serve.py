"""The tail server (`salted serve`) and its client (`salted client`).

Starts the server on a free loopback port (--listen 127.0.0.1:0; it prints
the port), then over HTTP: garbage, truncated, wrong-model, wrong-cut and
oversized frames get a 4xx with a plain-text message and the server keeps
serving; a good frame gets 200 and logits equal, bit for bit, to `salted
tail` on the same frame; /healthz answers; `salted client` (npy and PNG
inputs) gives the labels `salted run --desalt` gives; SIGTERM stops the
server with status 0. Cuts where the tail would need the salt are refused.
The server is always killed at the end.

Environment: SALTED_BIN (the program). Run with Debian's /usr/bin/python3.
"""
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("SALTED_BIN", str(ROOT / "build" / "salted"))
CNN = ROOT / "tests" / "data" / "tiny_lenet_cnn_salt.salted"
FC = ROOT / "tests" / "data" / "tiny_lenet_fc_salt.salted"
CUT = "5"  # after:MaxPool, safe (salt mixed in)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def salted(*args, ok=True):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=30)
    if ok and p.returncode != 0:
        raise AssertionError(f"salted {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p


def http(url, body=None):
    """(status, body bytes) for a GET (body None) or a POST."""
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def frame_tensor(data):
    """Decodes an f32 frame (docs/FORMAT.md) -> (cut_id, name, model_id hex, array)."""
    assert data[:4] == b"SLTF" and data[6] == 1
    rank, cut_id, name_len = data[7], struct.unpack_from("<I", data, 8)[0], data[12]
    dims = struct.unpack_from(f"<{rank}Q", data, 48)
    at = 48 + 8 * rank
    name = data[at:at + name_len].decode()
    at += name_len
    n = struct.unpack_from("<Q", data, at)[0]
    arr = np.frombuffer(data[at + 8:at + 8 + n], dtype="<f4").reshape(dims)
    return cut_id, name, data[16:48].hex(), arr


def check_eval(tmp):
    """`salted eval` on a small IDX set (images plain, labels gzipped) with
    given salts agrees with `salted run --desalt` on the same pixels."""
    import gzip
    rng = np.random.default_rng(1)
    n = 37
    pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    salts = rng.integers(0, 10, n).astype(np.int64)
    data = tmp / "idx"
    data.mkdir()
    (data / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 28, 28) + pixels.tobytes())
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", n) + labels.tobytes()))
    np.save(tmp / "eval_salts.npy", salts)
    np.save(tmp / "eval_x.npy", (pixels.astype(np.float32) / np.float32(255)).reshape(n, 1, 28, 28))
    salted("run", CNN, "--input", tmp / "eval_x.npy", "--salt", tmp / "eval_salts.npy", "--output", tmp / "eval_y.npy")
    salted("run", CNN, "--input", tmp / "eval_x.npy", "--salt", tmp / "eval_salts.npy", "--desalt",
           "--output", tmp / "eval_d.npy")
    want = float((np.load(tmp / "eval_d.npy").argmax(1) == labels).mean())
    want_server = float((np.load(tmp / "eval_y.npy").argmax(1) == labels).mean())
    import json
    p = salted("eval", CNN, "--data", data, "--salts", tmp / "eval_salts.npy", "--batch", "8", "--json")
    r = json.loads(p.stdout)
    check(r["images"] == n and abs(r["accuracy"] - want) < 1e-6 and abs(r["server_view_accuracy"] - want_server) < 1e-6
          and sum(map(sum, r["confusion"])) == n and r["salts"] == "given",
          f"eval --salts matches run --desalt: {r['accuracy']} vs {want}, {r['server_view_accuracy']} vs {want_server}")
    p = salted("eval", CNN, "--data", data, "--limit", "5")
    check("accuracy (de-salted" in p.stdout and "images: 5 " in p.stdout and "images/s" in p.stdout, "eval text output")
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", n - 1) + labels[:-1].tobytes()))
    p = salted("eval", CNN, "--data", data, ok=False)
    check(p.returncode == 1 and "one per image" in p.stderr, f"eval: label count mismatch: {p.stderr.strip()}")
    (data / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 28, 28) + pixels.tobytes()[:-1])
    p = salted("eval", CNN, "--data", data, ok=False)
    check(p.returncode == 1 and "truncated" in p.stderr, f"eval: truncated images: {p.stderr.strip()}")


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="salted_serve_"))
    rng = np.random.default_rng(0)
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "salts.npy", np.array([3, 0, 7], dtype=np.int64))

    # Frames: good, another cut, another model; the reference tail output.
    salted("head", CNN, "--cut", CUT, "--input", tmp / "x.npy", "--salt", tmp / "salts.npy", "--output", tmp / "good.frame")
    salted("head", CNN, "--cut", "6", "--input", tmp / "x.npy", "--salt", "1", "--output", tmp / "cut6.frame")
    salted("head", FC, "--cut", CUT, "--unsafe-cut", "--input", tmp / "x.npy", "--salt", "1",
           "--output", tmp / "fc.frame")
    salted("tail", CNN, "--cut", CUT, "--input", tmp / "good.frame", "--output", tmp / "y.npy")
    good = (tmp / "good.frame").read_bytes()
    y_ref = np.load(tmp / "y.npy")

    # A cut before the salt enters is refused: the server never sees the salt.
    p = salted("serve", CNN, "--cut", "1", "--listen", "127.0.0.1:0", ok=False)
    check(p.returncode == 1 and "never sees the salt" in p.stderr, "serve refuses a cut whose tail needs the salt")
    p = salted("serve", CNN, "--cut", CUT, "--listen", "nonsense", ok=False)
    check(p.returncode == 2 and "--listen" in p.stderr, "serve rejects a bad --listen")

    server = subprocess.Popen([BIN, "serve", str(CNN), "--cut", CUT, "--listen", "127.0.0.1:0", "--max-body", "100000"],
                              stdout=subprocess.PIPE, stderr=open(tmp / "server.log", "w"), text=True)
    try:
        line = server.stdout.readline()
        check(line.startswith("listening on http://127.0.0.1:"), f"server announces its port: {line.strip()!r}")
        url = line.split()[-1]
        status, body = http(url + "/healthz")
        check(status == 200 and body.startswith(b"ok model="), f"/healthz: {status} {body!r}")

        bad = [("garbage", b"definitely not a frame", 400, b"magic"),
               ("empty", b"", 400, b"frame"),
               ("truncated", good[:len(good) // 2], 400, b"frame"),
               ("corrupted payload", good[:-10] + bytes([good[-10] ^ 1]) + good[-9:], 400, b"frame"),
               ("wrong model", (tmp / "fc.frame").read_bytes(), 409, b"model_id"),
               ("wrong cut", (tmp / "cut6.frame").read_bytes(), 409, b"cut_id"),
               ("oversized", b"\0" * 200000, 413, b"too large")]
        for what, data, want, word in bad:
            status, body = http(url + "/v1/tail", data)
            check(status == want and word in body and body.endswith(b"\n"),
                  f"{what}: {status} (want {want}) {body[:100]!r}")
        status, body = http(url + "/v1/nope", good)
        check(status == 404 and b"no such endpoint" in body, f"unknown path: {status} {body!r}")

        status, body = http(url + "/v1/tail", good)
        check(status == 200, f"good frame: {status}")
        if status == 200:
            cut_id, name, model_hex, y = frame_tensor(body)
            check(y.shape == y_ref.shape and y.tobytes() == y_ref.astype("<f4").tobytes(),
                  "served logits equal `salted tail` bit for bit")
            check(model_hex == good[16:48].hex(), "answer carries the model id")
            check(name == "output:logits" and cut_id == 12, f"answer names the output: {cut_id} {name}")

        # The client: npy batch and PNGs, against `salted run --desalt`.
        p = salted("client", CNN, "--cut", CUT, "--server", url, "--input", tmp / "x.npy", "--salt", tmp / "salts.npy",
                   "--server-view")
        salted("run", CNN, "--input", tmp / "x.npy", "--salt", tmp / "salts.npy", "--desalt", "--output", tmp / "d.npy")
        want = [f"{tmp / 'x.npy'}: label {d.argmax()}, server view {s.argmax()}"
                for d, s in zip(np.load(tmp / "d.npy"), y_ref)]
        check(p.stdout.splitlines() == want, f"client labels match run --desalt: {p.stdout.strip()!r}")
        pngs = sorted((ROOT / "examples" / "images").glob("*.png"))[:2]
        if pngs:
            p = salted("client", CNN, "--cut", CUT, "--server", url, *sum([["--input", q] for q in pngs], []), ok=False)
            check(p.returncode == 0 and len(p.stdout.splitlines()) == len(pngs)
                  and all(f"{q}: label " in p.stdout for q in pngs), f"client on PNGs: {p.stdout.strip()!r}")
        np.save(tmp / "wrong.npy", np.zeros((1, 1, 32, 32), np.float32))
        p = salted("client", CNN, "--cut", CUT, "--server", url, "--input", tmp / "wrong.npy", ok=False)
        check(p.returncode == 1 and "expected a batch of shape [1, 1, 28, 28]" in p.stderr, f"client wrong shape: {p.stderr.strip()}")
        p = salted("client", CNN, "--cut", CUT, "--server", "http://127.0.0.1:1", "--input", tmp / "x.npy", ok=False)
        check(p.returncode == 1 and "no answer" in p.stderr, f"client, no server: {p.stderr.strip()}")

        status, body = http(url + "/healthz")
        check(status == 200, "still serving after the bad requests")
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=10)
        check(rc == 0, f"SIGTERM stops the server cleanly (status {rc})")
        log = (tmp / "server.log").read_text()
        # 2 healthz, 7 bad + 1 good tail, 1 unknown path, 2 client runs (the third never connected).
        check(log.count("serve: 127.0.0.1 ") == 13 and log.count("POST /v1/tail ->") == 10 and "SIGTERM" in log,
              "one log line per request")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
    check_eval(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all serve checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
