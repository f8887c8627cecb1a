"""End-to-end tests of the `salted` program against PyTorch.

Every reference configuration (tools/weights_import/reference_models.py:
LeNet 3x32x32 and 1x28x28 with salt layers -1,0,1,3,5,6,7,8, WideResNet-16-4
standard and salted, sensor ConvNet -1,2,3,4) is exported with seeded random
weights and random BatchNorm statistics, then:

- `salted run` on a random batch with random salts (FC salt vectors passed
  with --salt-vector) matches PyTorch within 1e-4 * max(1, max|torch|);
- at every cut, `head` -> frame file -> `tail` equals `run` bit for bit;
- unsafe cuts of salted models are refused without --unsafe-cut;
- bad arguments and files give one error line and a non-zero exit.

Environment: SALTED_BIN (the program), SALTED_E2E_DIR (scratch directory,
models are exported there once). Run with Debian's /usr/bin/python3.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "weights_import"))

import torch  # noqa: E402

import onnx_to_salted  # noqa: E402
import reference_models as rm  # noqa: E402

BIN = os.environ.get("SALTED_BIN", str(ROOT / "build" / "salted"))
WORK = pathlib.Path(os.environ.get("SALTED_E2E_DIR") or tempfile.mkdtemp(prefix="salted_e2e_"))


def tolerance(ref):
    return 1e-4 * max(1.0, float(np.abs(ref).max()))


def salted(*args, check=True):
    """Runs the program; returns (returncode, stdout, stderr)."""
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"salted {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr.strip()}")
    return p.returncode, p.stdout, p.stderr


class Config:
    """One exported configuration with a random batch and PyTorch's logits on it."""

    def __init__(self, name, seed=0, tag=None):
        self.name = name
        self.dir = WORK / (tag or name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.model = rm.build(name, seed=seed)
        self.path = self.dir / "model.salted"
        g = torch.Generator().manual_seed(1234 + seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_to_salted.export_module(self.model, rm.example_inputs(self.model, batch=2, generator=g), self.path,
                                         metadata={"config": name})
        self.kind = self.model.salt_kind
        self.classes = self.model.num_classes
        batch = 2 if name.startswith("wrn") else 3
        x = torch.rand((batch,) + tuple(self.model.in_shape), generator=g)
        self.salts = torch.randint(0, self.classes, (batch,), generator=g)
        self.x = self.dir / "x.npy"
        np.save(self.x, x.numpy().astype(np.float32))
        self.salt_args = []
        with torch.no_grad():
            if self.kind == "none":
                self.ref = self.model(x).numpy()
            elif self.kind == "cnn":
                self.ref = self.model(x, self.salts.to(torch.float32).view(-1, 1, 1, 1)).numpy()
                np.save(self.dir / "salts.npy", self.salts.numpy().astype(np.int64))
                self.salt_args = ["--salt", self.dir / "salts.npy"]
            else:
                v = rm.fc_salt_vector(self.salts, self.classes, g)
                self.ref = self.model(x, v).numpy()
                np.save(self.dir / "salts.npy", self.salts.numpy().astype(np.int64))
                np.save(self.dir / "v.npy", v.numpy().astype(np.float32))
                self.salt_args = ["--salt", self.dir / "salts.npy", "--salt-vector", self.dir / "v.npy"]
        self._info = None

    def info(self):
        if self._info is None:
            self._info = json.loads(salted("info", self.path, "--json")[1])
        return self._info

    def run(self, out, *extra):
        salted("run", self.path, "--input", self.x, *self.salt_args, "--output", out, *extra)
        return np.load(out)


CONFIGS = {}


def setUpModule():
    torch.set_num_threads(1)
    if not os.access(BIN, os.X_OK):
        raise unittest.SkipTest(f"{BIN} is not built")
    for name in rm.reference_configs():
        CONFIGS[name] = Config(name)


class RunMatchesPyTorch(unittest.TestCase):
    def test_every_configuration(self):
        self.assertEqual(len(CONFIGS), 22)
        for name, c in CONFIGS.items():
            with self.subTest(config=name):
                y = c.run(c.dir / "y.npy")
                self.assertEqual(y.dtype, np.float32)
                self.assertEqual(y.shape, c.ref.shape)
                diff = float(np.abs(y.astype(np.float64) - c.ref).max())
                self.assertLessEqual(diff, tolerance(c.ref), f"{name}: max|diff| {diff:.3g}")

    def test_desalt_flag_and_command(self):
        for name, c in CONFIGS.items():
            if c.kind == "none":
                continue
            with self.subTest(config=name):
                y = c.run(c.dir / "y_plain.npy")
                d = c.run(c.dir / "y_desalted.npy", "--desalt")
                s = c.salts.numpy()
                want = np.stack([np.roll(y[i], -int(s[i])) for i in range(len(s))])
                np.testing.assert_array_equal(d, want)
                _, out, _ = salted("desalt", "--salt", c.dir / "salts.npy", "--input", c.dir / "y_plain.npy",
                                   "--top", 2, "--output", c.dir / "d2.npy")
                np.testing.assert_array_equal(np.load(c.dir / "d2.npy"), want)
                rows = [line.split(":")[1].split() for line in out.strip().splitlines()]
                self.assertEqual(len(rows), len(s))
                for i, r in enumerate(rows):
                    order = np.argsort(-want[i], kind="stable")
                    self.assertEqual([int(v) for v in r], [int(order[0]), int(order[1])])

    def test_drawn_salts_are_printed_and_used(self):
        c = CONFIGS["lenet_1x28x28_salt1"]
        _, out, _ = salted("run", c.path, "--input", c.x, "--output", c.dir / "y_drawn.npy",
                           "--save-salt", c.dir / "drawn.npy")
        line = [l for l in out.splitlines() if l.startswith("salts:")]
        self.assertEqual(len(line), 1)
        salts = [int(v) for v in line[0].split()[1:]]
        self.assertEqual(len(salts), c.ref.shape[0])
        self.assertTrue(all(0 <= s < c.classes for s in salts))
        np.testing.assert_array_equal(np.load(c.dir / "drawn.npy"), np.array(salts, dtype=np.float32))
        x = torch.from_numpy(np.load(c.x))
        with torch.no_grad():
            ref = c.model(x, torch.tensor(salts, dtype=torch.float32).view(-1, 1, 1, 1)).numpy()
        y = np.load(c.dir / "y_drawn.npy")
        self.assertLessEqual(float(np.abs(y - ref).max()), tolerance(ref))
        # FC: drawn salt vectors; only the shape and the salts line can be checked.
        f = CONFIGS["lenet_1x28x28_salt7"]
        _, out, _ = salted("run", f.path, "--input", f.x, "--output", f.dir / "y_drawn.npy")
        self.assertTrue(out.startswith("salts:"))
        self.assertEqual(np.load(f.dir / "y_drawn.npy").shape, f.ref.shape)


class SplitEqualsWhole(unittest.TestCase):
    def test_every_cut_bit_exact(self):
        total = 0
        for name, c in CONFIGS.items():
            whole = c.run(c.dir / "whole.npy")
            info = c.info()
            cuts = info["cuts"]
            # The whole run folds the salt concat into its convs; a cut between
            # them cannot, so there the results agree to float rounding.
            fold = info.get("salt_fold")
            fold_cuts = [f"after:{fold[k]}" for k in ("concat", "through") if fold and fold[k]]
            self.assertGreaterEqual(len(cuts), 3, name)
            for cut in cuts:
                with self.subTest(config=name, cut=cut["name"]):
                    frame = c.dir / f"z{cut['id']}.frame"
                    force = [] if cut["safe"] else ["--unsafe-cut"]
                    salted("head", c.path, "--cut", cut["name"], "--input", c.x, *c.salt_args, "--output", frame,
                           *force)
                    per_item = int(np.prod(cut["shape"])) * 4
                    self.assertEqual(cut["bytes"], per_item)
                    tail_salt = c.salt_args if cut["tail_needs_salt"] else []
                    y = c.dir / f"y_cut{cut['id']}.npy"
                    salted("tail", c.path, "--cut", str(cut["id"]), "--input", frame, "--output", y, *force,
                           *tail_salt)
                    got = np.load(y)
                    self.assertEqual(got.shape, whole.shape)
                    if cut["name"] in fold_cuts:
                        np.testing.assert_allclose(got, whole, rtol=0, atol=1e-5 * max(1.0, np.abs(whole).max()))
                    else:
                        self.assertTrue(np.array_equal(got.view(np.uint32), whole.view(np.uint32)),
                                        f"{name} cut {cut['name']}: head+tail differs from run")
                    total += 1
        self.assertGreater(total, 100)

    def test_salt_fold_shape(self):
        # LeNet/sensor salts feed one conv; WideResNet's pass its BN-ReLU,
        # which then feeds the block's conv and its 1x1 shortcut: all fold.
        for name, c in CONFIGS.items():
            fold = c.info()["salt_fold"]
            with self.subTest(config=name):
                if c.kind != "cnn":
                    self.assertIsNone(fold)
                elif name.startswith("wrn"):
                    self.assertIsNotNone(fold)
                    self.assertIn("bn1", fold["through"])
                    self.assertEqual(len(fold["convs"]), 2)
                elif fold:
                    self.assertIsNone(fold["through"])
                    self.assertEqual(len(fold["convs"]), 1)

    def test_batch_invariant_option(self):
        # Without it, WideResNet's 8x8 layers also hold F(2x2) weights for
        # batch 1; with it they do not. Commands that load no model reject it.
        wrn = [c for name, c in CONFIGS.items() if name.startswith("wrn")]
        self.assertTrue(wrn)
        for c in wrn:
            _, out, _ = salted("info", c.path, "--json", "--batch-invariant")
            self.assertLess(json.loads(out)["kernel_bytes"], c.info()["kernel_bytes"])
        rc, _, err = salted("desalt", "--input", "y.npy", "--salt", "1", "--batch-invariant", check=False)
        self.assertEqual(rc, 2, err)
        self.assertIn("does not apply", err)

    def test_cut_kernel_bytes(self):
        # What `salted head` / `tail` keep prepared at each cut (Model::keep_only):
        # the two sides never hold more than the whole model, the head grows and
        # the tail shrinks as the cut moves on.
        for name, c in CONFIGS.items():
            info = c.info()
            cuts = sorted(info["cuts"], key=lambda k: k["position"])
            with self.subTest(config=name):
                for k in cuts:
                    self.assertLessEqual(k["head_kernel_bytes"] + k["tail_kernel_bytes"], info["kernel_bytes"])
                heads = [k["head_kernel_bytes"] for k in cuts]
                tails = [k["tail_kernel_bytes"] for k in cuts]
                self.assertEqual(heads, sorted(heads))
                self.assertEqual(tails, sorted(tails, reverse=True))
                self.assertLess(heads[0], info["kernel_bytes"])
                self.assertLess(tails[-1], info["kernel_bytes"])

    def test_f16_frames_are_close(self):
        c = CONFIGS["sensor_salt3"]
        whole = c.run(c.dir / "whole16.npy")
        cut = [k for k in c.info()["cuts"] if k["safe"]][1]
        salted("head", c.path, "--cut", cut["name"], "--input", c.x, *c.salt_args, "--output", c.dir / "z16.frame",
               "--frame-dtype", "f16")
        salted("tail", c.path, "--cut", cut["name"], "--input", c.dir / "z16.frame", "--output", c.dir / "y16.npy")
        y = np.load(c.dir / "y16.npy")
        self.assertLess(float(np.abs(y - whole).max()), 0.05 * max(1.0, float(np.abs(whole).max())))


class UnsafeCuts(unittest.TestCase):
    def test_salted_models_refuse_unsafe_cuts(self):
        for name, c in CONFIGS.items():
            info = c.info()
            cuts = info["cuts"]
            if c.kind == "none":
                self.assertTrue(all(k["safe"] and k["salt_mixed"] for k in cuts), name)
                continue
            salt_pos = [n["index"] for n in info["nodes"] if n["name"] == info["salt"]["node"]][0]
            for cut in cuts:
                with self.subTest(config=name, cut=cut["name"]):
                    # At or before the salt concat's consumer the salt is never mixed in.
                    if cut["position"] <= salt_pos + 1:
                        self.assertFalse(cut["safe"])
                    self.assertEqual(cut["tail_needs_salt"], cut["position"] <= salt_pos)
                    if cut["safe"]:
                        continue
                    rc, _, err = salted("head", c.path, "--cut", cut["name"], "--input", c.x, *c.salt_args,
                                        "--output", c.dir / "refused.frame", check=False)
                    self.assertNotEqual(rc, 0)
                    self.assertIn("unsafe", err)
                    self.assertEqual(len(err.strip().splitlines()), 1)
                    rc, _, err = salted("tail", c.path, "--cut", cut["name"], "--input", c.dir / "whatever.frame",
                                        "--output", c.dir / "refused.npy", check=False)
                    self.assertNotEqual(rc, 0)
                    self.assertIn("unsafe", err)
            self.assertTrue(any(k["safe"] for k in cuts), name)
            self.assertTrue(any(not k["safe"] for k in cuts), name)


class Bench(unittest.TestCase):
    """`salted bench` measures; here only that it runs and reports sanely
    (timing itself belongs to bench/, never to tests)."""

    def test_json_report_and_profile(self):
        for name in ("lenet_3x32x32_salt3", "sensor_salt3", "lenet_1x28x28_salt7"):
            c = CONFIGS[name]
            _, out, _ = salted("bench", c.path, "--batch", "3", "--iters", "4", "--warmup", "1", "--layers", "--json",
                               "--threads", "1")
            r = json.loads(out)
            self.assertEqual((r["batch"], r["iters"], r["threads"]), (3, 4, 1))
            self.assertLessEqual(r["min_ms"], r["median_ms"])
            self.assertLessEqual(r["median_ms"], r["max_ms"])
            self.assertGreater(r["min_ms"], 0)
            self.assertAlmostEqual(r["mflops_per_run"], 3 * c.info()["mflops_per_item"], places=3)
            self.assertGreater(r["peak_bytes"], 0)
            # Prepared kernels: at least the packed weights, as `info` reports them.
            self.assertGreaterEqual(r["kernel_bytes"], r["weight_bytes"] * 0.9)
            self.assertEqual(r["kernel_bytes"], c.info()["kernel_bytes"])
            self.assertEqual(len(r["layers"]), len(c.info()["nodes"]))
            self.assertGreater(sum(layer["mean_ms"] for layer in r["layers"]), 0)
            # The folded concat never runs: no time is charged to it.
            fold = c.info()["salt_fold"]
            if fold:
                concat = [layer for layer in r["layers"] if layer["name"] == fold["concat"]]
                self.assertEqual(concat[0]["mean_ms"], 0)

    def test_text_report_and_bad_arguments(self):
        c = CONFIGS["lenet_1x28x28_salt1"]
        _, out, _ = salted("bench", c.path, "--iters", "2", "--warmup", "0")
        self.assertIn("median", out)
        self.assertIn("GFLOP/s", out)
        self.assertIn("peak memory", out)
        # Micro-batches and fixed threads: reported, same FLOPs.
        _, out, _ = salted("bench", c.path, "--batch", "5", "--micro-batch", "2", "--fixed-threads", "--iters", "2",
                           "--warmup", "0", "--json")
        r = json.loads(out)
        self.assertEqual((r["batch"], r["micro_batch"], r["adaptive_chose_one_thread"]), (5, 2, False))
        self.assertIn(r["lanes"], (1, 2, 3))  # 3 micro-batches; 1 when the pool backs off (a loaded machine)
        _, out, _ = salted("bench", c.path, "--batch", "5", "--micro-batch", "2", "--iters", "1", "--warmup", "0")
        self.assertIn("batch 5 (in 3 micro-batches of at most 2", out)
        for bad in (["--batch", "0"], ["--iters", "x"], ["--warmup", "-1"], ["--cut", "1"], ["--output", "y.npy"],
                    ["--micro-batch", "-1"], ["--micro-batch", "many"]):
            rc, _, err = salted("bench", c.path, *bad, check=False)
            self.assertEqual(rc, 2, (bad, err))
            self.assertTrue(err.startswith("salted: error: "), err)
        rc, _, err = salted("bench", c.dir / "missing.salted", check=False)
        self.assertEqual(rc, 1, err)


class Errors(unittest.TestCase):
    def assertFails(self, *args, contains=None, status=None):
        rc, _, err = salted(*args, check=False)
        self.assertNotEqual(rc, 0, f"salted {args} succeeded")
        if status is not None:
            self.assertEqual(rc, status)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, f"expected one error line, got: {err!r}")
        self.assertTrue(lines[0].startswith("salted: error: "), lines[0])
        if contains:
            self.assertIn(contains, lines[0])
        return lines[0]

    @classmethod
    def setUpClass(cls):
        cls.c = CONFIGS["lenet_1x28x28_salt1"]
        cls.d = cls.c.dir / "errors"
        cls.d.mkdir(exist_ok=True)

    def test_bad_arguments(self):
        c = self.c
        self.assertFails(status=2)
        self.assertFails("frobnicate", contains="unknown command", status=2)
        self.assertFails("run", c.path, "--input", c.x, status=2, contains="--output")
        self.assertFails("run", c.path, "--output", self.d / "y.npy", status=2, contains="--input")
        self.assertFails("run", c.path, "--input", c.x, "--output", self.d / "y.npy", "--bogus", status=2,
                         contains="--bogus")
        self.assertFails("run", c.path, "--input", c.x, "--output", self.d / "y.npy", "--cut", "3", status=2)
        self.assertFails("run", c.path, "--input", c.x, "--output", self.d / "y.npy", "--threads", "zero",
                         status=2, contains="--threads")
        self.assertFails("head", c.path, "--input", c.x, "--output", self.d / "z.frame", status=2, contains="--cut")
        self.assertFails("head", c.path, "--cut", "nonsense", "--input", c.x, "--output", self.d / "z.frame",
                         contains="nonsense")
        self.assertFails("head", c.path, "--cut", "999", "--input", c.x, "--output", self.d / "z.frame",
                         contains="999")
        self.assertFails("desalt", "--salt", "1", status=2, contains="--input")
        self.assertFails("desalt", "--salt", "1", "--input", c.x, contains="[N, C]")

    def test_bad_salts(self):
        c = self.c
        self.assertFails("run", c.path, "--input", c.x, "--output", self.d / "y.npy", "--salt", "10",
                         contains="0..9")
        self.assertFails("run", c.path, "--input", c.x, "--output", self.d / "y.npy", "--salt", "-1",
                         contains="0..9")
        np.save(self.d / "two_salts.npy", np.array([1, 2], dtype=np.int64))
        self.assertFails("run", c.path, "--input", c.x, "--output", self.d / "y.npy", "--salt",
                         self.d / "two_salts.npy", contains="one per row")
        self.assertFails("run", c.path, "--input", c.x, "--output", self.d / "y.npy", "--salt-vector",
                         self.d / "two_salts.npy", contains="CNN salt")
        f = CONFIGS["lenet_1x28x28_salt7"]
        np.save(self.d / "v_bad.npy", np.zeros((3, 4), dtype=np.float32))
        self.assertFails("run", f.path, "--input", f.x, "--output", self.d / "y.npy", "--salt-vector",
                         self.d / "v_bad.npy", contains="[3, 10]")
        s = CONFIGS["lenet_1x28x28_salt-1"]
        self.assertFails("run", s.path, "--input", s.x, "--output", self.d / "y.npy", "--salt", "1",
                         contains="not salted")

    def test_missing_and_wrong_files(self):
        c = self.c
        self.assertFails("run", self.d / "missing.salted", "--input", c.x, "--output", self.d / "y.npy",
                         contains="missing.salted")
        self.assertFails("run", c.path, "--input", self.d / "missing.npy", "--output", self.d / "y.npy",
                         contains="missing.npy")
        self.assertFails("run", c.x, "--input", c.x, "--output", self.d / "y.npy", contains="magic")
        np.save(self.d / "x_wrong.npy", np.zeros((3, 1, 27, 28), dtype=np.float32))
        self.assertFails("run", c.path, "--input", self.d / "x_wrong.npy", "--salt", "1", "--output",
                         self.d / "y.npy", contains="[3, 1, 28, 28]")
        np.save(self.d / "x_f64.npy", np.zeros((3, 1, 28, 28), dtype=np.float64))
        self.assertFails("run", c.path, "--input", self.d / "x_f64.npy", "--salt", "1", "--output",
                         self.d / "y.npy", contains="float32")
        self.assertFails("run", c.path, "--input", c.x, "--salt", "1", "--output", self.d / "no_such_dir" / "y.npy")

    def test_corrupt_model_files(self):
        c = self.c
        data = c.path.read_bytes()
        for cut_at in (0, 39, 1000, len(data) // 2, len(data) - 1):
            p = self.d / "truncated.salted"
            p.write_bytes(data[:cut_at])
            self.assertFails("info", p)
        step = max(1, len(data) // 40)
        for at in range(0, len(data), step):
            p = self.d / "flipped.salted"
            b = bytearray(data)
            b[at] ^= 0xFF
            p.write_bytes(bytes(b))
            self.assertFails("info", p)

    def test_bad_frames(self):
        c = self.c
        safe = [k for k in c.info()["cuts"] if k["safe"]]
        a, b = safe[0], safe[1]
        frame = self.d / "a.frame"
        salted("head", c.path, "--cut", a["name"], "--input", c.x, "--salt", "2", "--output", frame)
        raw = frame.read_bytes()
        self.assertFails("tail", c.path, "--cut", b["name"], "--input", frame, "--output", self.d / "y.npy",
                         contains="cut_id")
        for cut_at in (0, 10, 47, len(raw) // 2, len(raw) - 1):
            (self.d / "trunc.frame").write_bytes(raw[:cut_at])
            self.assertFails("tail", c.path, "--cut", a["name"], "--input", self.d / "trunc.frame", "--output",
                             self.d / "y.npy", contains="trunc.frame")
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x01
        (self.d / "flip.frame").write_bytes(bytes(flipped))
        self.assertFails("tail", c.path, "--cut", a["name"], "--input", self.d / "flip.frame", "--output",
                         self.d / "y.npy")
        # The same architecture with other weights: the model id differs.
        other = Config("lenet_1x28x28_salt1", seed=5, tag="other_weights")
        self.assertFails("tail", other.path, "--cut", a["name"], "--input", frame, "--output", self.d / "y.npy",
                         contains="model_id")
        self.assertFails("tail", c.path, "--cut", a["name"], "--input", c.x, "--output", self.d / "y.npy",
                         contains="magic")


if __name__ == "__main__":
    unittest.main()
