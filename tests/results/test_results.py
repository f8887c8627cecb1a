"""Tests of the results scripts (tools/results/) and the acceptance check of
the shipped models.

- make_results' C++ accuracy path (`salted run`, de-salting in numpy) equals
  the numpy-interpreter path exactly on a few hundred Fashion-MNIST images,
  for tiny random-weight LeNets with a CNN and an FC salt;
- the leakage probe learns a linearly learnable synthetic target and stays
  near chance on a target independent of the features;
- the Python frame decoder reads the frames of `salted head` (f32 and f16):
  header fields, the values of the cut tensor (vs the numpy interpreter run up
  to the cut), and refuses corrupted or truncated frames;
- acceptance: for every model in models/ (or $SALTED_RESULTS_MODELS), the C++
  engine's accuracy on the training script's evaluation images and salts
  equals the PyTorch accuracy in training_summary.json within 0.1 point
  (skipped with a message when there is no model file yet).

Environment: SALTED_BIN (the program), SALTED_RESULTS_DIR (scratch).
Run with Debian's /usr/bin/python3.
"""
import json
import os
import pathlib
import shutil
import sys
import tempfile
import unittest
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "results"))
sys.path.insert(0, str(ROOT / "tools" / "weights_import"))

import frames  # noqa: E402
import leakage_probe  # noqa: E402
import make_results  # noqa: E402
import numpy_runtime  # noqa: E402
import salted_cli as sc  # noqa: E402

BIN = os.environ.get("SALTED_BIN", str(ROOT / "build" / "salted"))
WORK = pathlib.Path(os.environ.get("SALTED_RESULTS_DIR") or tempfile.mkdtemp(prefix="salted_results_"))
MODELS = pathlib.Path(os.environ.get("SALTED_RESULTS_MODELS") or ROOT / "models")
IMAGES = 300


def tiny_model(salt_layer):
    """A tiny LeNet (4 channels, fc 16/12) with seeded random weights, exported once."""
    import torch
    import make_test_models
    import onnx_to_salted

    path = WORK / f"tiny_salt{salt_layer}.salted"
    if not path.is_file():
        torch.set_num_threads(1)
        model, inputs = make_test_models.tiny_lenet(salt_layer, seed=11)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_to_salted.export_module(model, inputs, path, metadata={"purpose": "tests/results"})
    return sc.Model(path)


def setUpModule():
    WORK.mkdir(parents=True, exist_ok=True)
    if not pathlib.Path(BIN).is_file():
        raise unittest.SkipTest(f"no salted program at {BIN} (build target salted_cli)")


class AccuracyPath(unittest.TestCase):
    def test_engine_accuracy_equals_numpy_reference(self):
        test_x, test_y = sc.load_split("test", limit=IMAGES)
        for layer in (1, 7, -1):
            with self.subTest(salt_layer=layer):
                m = tiny_model(layer)
                row = make_results.measure(m, BIN, test_x, test_y, seed=3, reference=True)
                self.assertEqual(row["images"], IMAGES)
                self.assertEqual(row["desalted_acc"], row["reference_acc"])
                self.assertEqual(row["reference_agreement"], 1.0)
                self.assertIsNotNone(row["cut"])
                # The logits themselves agree within the parity tolerance, not only the argmax.
                ref = m.reference_logits(sc.to_float(test_x[:50]), *m.salt_inputs(
                    sc.seeded_salts(50, m.classes, 3, make_results.STREAM_TABLE), 3, make_results.STREAM_TABLE))
                self.assertLessEqual(row["reference_max_logit_diff"], 1e-4 * max(1.0, float(np.abs(ref).max())))

    def test_desalting_undoes_the_salt(self):
        # Logits whose argmax is (label + s) mod C de-salt to the label.
        labels = np.array([0, 3, 9, 5])
        salts = np.array([2, 9, 4, 0])
        logits = np.zeros((4, 10), np.float32)
        logits[np.arange(4), (labels + salts) % 10] = 1.0
        np.testing.assert_array_equal(sc.desalted_classes(logits, salts), labels)

    def test_fc_salt_vectors_follow_the_paper(self):
        salts = np.repeat(np.arange(10), 400)
        v = sc.fc_salt_vectors(salts, 10, seed=0, stream=5).astype(np.float64)
        for s in range(10):
            rows = v[salts == s]
            means = np.roll(np.arange(1, 11, dtype=np.float64), s + 1)
            means[s] += 40
            means /= 20
            np.testing.assert_allclose(rows.mean(0), means, atol=0.01)
            np.testing.assert_allclose(rows.std(0), 1 / 20, rtol=0.15)
            self.assertTrue(np.all(rows.argmax(1) == s))
        np.testing.assert_array_equal(v, sc.fc_salt_vectors(salts, 10, seed=0, stream=5))  # seeded


class Probe(unittest.TestCase):
    def test_learns_a_linear_target(self):
        rng = np.random.default_rng(0)
        w = rng.standard_normal((40, 10))
        x = rng.standard_normal((3000, 40)).astype(np.float32) * 5 + 2  # standardisation must handle scale
        y = (x @ w).argmax(1)
        _, acc = leakage_probe.train_linear_probe(x[:2500], y[:2500], x[2500:], y[2500:], 10, seed=0)
        self.assertGreater(acc, 0.8)

    def test_stays_near_chance_on_noise(self):
        rng = np.random.default_rng(1)
        x = rng.standard_normal((3000, 40)).astype(np.float32)
        y = rng.integers(0, 10, 3000)
        _, acc = leakage_probe.train_linear_probe(x[:2500], y[:2500], x[2500:], y[2500:], 10, seed=0)
        self.assertLess(acc, 0.2)

    def test_constant_features_do_not_divide_by_zero(self):
        a, b = leakage_probe.standardise(np.ones((5, 3), np.float32), np.zeros((2, 3), np.float32))
        self.assertTrue(np.all(np.isfinite(a)) and np.all(np.isfinite(b)))


class Scripts(unittest.TestCase):
    def test_split_cut_is_the_earliest_safe_cut(self):
        # CNN salt before conv2: the concat's consumer conv2 mixes the salt maps.
        info = sc.model_info(BIN, tiny_model(1).path)
        cut = sc.split_cut(info)
        self.assertEqual(cut["name"], "after:conv2.Conv")
        self.assertTrue(cut["safe"] and cut["salt_mixed"] and not cut["tail_needs_salt"])
        earlier = [c for c in info["cuts"] if c["position"] < cut["position"]]
        self.assertTrue(earlier and all(not c["safe"] for c in earlier if c["position"] > 0))
        # FC salt before fc2: the first safe cut is after fc2.
        self.assertEqual(sc.split_cut(sc.model_info(BIN, tiny_model(7).path))["name"], "after:fc2.Gemm")

    def test_probe_and_report_end_to_end(self):
        d = WORK / "report_models"
        d.mkdir(exist_ok=True)
        for layer in (-1, 1, 7):
            target = d / tiny_model(layer).path.name
            if not target.exists():
                shutil.copyfile(tiny_model(layer).path, target)
        out = WORK / "report"
        rc = make_results.main(["--models", str(d), "--salted", BIN, "--out", str(out), "--limit", "100",
                                "--probe-train", "300", "--probe-test", "100", "--json", str(out / "r.json"),
                                "--banner", "tiny random-weight models (test)"])
        self.assertEqual(rc, 0)
        text = (out / "RESULTS.md").read_text()
        self.assertIn("tools/results/make_results.py --models", text)
        self.assertIn("tiny random-weight models (test)", text)
        self.assertTrue((out / "results_accuracy.png").read_bytes().startswith(b"\x89PNG"))
        r = json.loads((out / "r.json").read_text())
        self.assertEqual(len(r["rows"]), 3)
        self.assertEqual([p["model"] for p in r["probes"]], ["tiny_salt1.salted", "tiny_salt7.salted"])
        for p in r["probes"]:
            self.assertIn(f"`{p['model']}` | `{p['cut']}`", text)
            self.assertTrue(0.0 <= p["salt_probe_acc"] <= 1.0 and 0.0 <= p["label_probe_acc"] <= 1.0)


class FrameDecoder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = tiny_model(1)
        cls.info = sc.model_info(BIN, cls.m.path)
        cls.cut = sc.split_cut(cls.info)
        x, _ = sc.load_split("test", limit=6)
        cls.x = sc.to_float(x)
        cls.salts = np.array([0, 1, 2, 7, 8, 9])
        cls.d = pathlib.Path(tempfile.mkdtemp(dir=WORK))
        np.save(cls.d / "x.npy", cls.x)
        np.save(cls.d / "s.npy", cls.salts)

    def head(self, out, *extra):
        sc.run_program(BIN, "head", self.m.path, "--cut", self.cut["name"], "--input", self.d / "x.npy",
                       "--salt", self.d / "s.npy", "--output", out, *extra)
        return out

    def numpy_cut_tensor(self):
        """The cut tensor from the numpy interpreter: nodes [0, position)."""
        vals = {"x": self.x.astype(np.float64), "salt": self.salts.astype(np.float64).reshape(-1, 1, 1, 1)}
        nodes = self.m.file.header["nodes"][:self.cut["position"]]
        for node in nodes:
            vals[node["outputs"][0]] = numpy_runtime.run_node(node, vals, self.m.file.weights)
        return vals[nodes[-1]["outputs"][0]]

    def test_reads_f32_frames_of_salted_head(self):
        f = frames.read_frame(self.head(self.d / "z.frame"), verify_checksum=True)
        self.assertEqual(f.dtype, "f32")
        self.assertEqual(f.cut_id, self.cut["id"])
        self.assertEqual(f.cut_name, self.cut["name"])
        self.assertEqual(f.model_id, self.m.file.model_id)
        self.assertEqual(list(f.tensor.shape), [6] + self.cut["shape"])
        ref = self.numpy_cut_tensor()
        self.assertLessEqual(float(np.abs(f.tensor - ref).max()), 1e-4 * max(1.0, float(np.abs(ref).max())))
        # The engine path of the scripts gives the same tensor, in batches.
        z = self.m.engine_cut(BIN, self.cut["name"], self.x, self.salts, None, batch=4)
        np.testing.assert_array_equal(z, f.tensor)

    def test_reads_f16_frames(self):
        f32 = frames.read_frame(self.head(self.d / "z32.frame")).tensor
        f16 = frames.read_frame(self.head(self.d / "z16.frame", "--frame-dtype", "f16"))
        self.assertEqual(f16.dtype, "f16")
        self.assertTrue(np.all(np.abs(f16.tensor - f32) <= np.maximum(np.abs(f32) * 2.0 ** -11, 2.0 ** -25)))

    def test_refuses_damaged_frames(self):
        raw = self.head(self.d / "zd.frame").read_bytes()
        frames.decode_frame(raw)
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x10
        with self.assertRaisesRegex(frames.FrameError, "checksum"):
            frames.decode_frame(bytes(flipped))
        with self.assertRaisesRegex(frames.FrameError, "truncated"):
            frames.decode_frame(raw[:-1])
        with self.assertRaisesRegex(frames.FrameError, "trailing"):
            frames.decode_frame(raw + b"\0")
        with self.assertRaisesRegex(frames.FrameError, "magic"):
            frames.decode_frame(b"XXXX" + raw[4:])
        self.assertEqual(len(frames.decode_frames(raw + raw)), 2)

    def test_crc32c_check_value(self):
        self.assertEqual(frames.crc32c(b"123456789"), 0xE3069283)


class ShippedModels(unittest.TestCase):
    """The issue's acceptance test: C++ accuracy == PyTorch accuracy (0.1 point)."""

    def test_engine_matches_pytorch_accuracy(self):
        paths = sorted(MODELS.glob("*.salted"))
        if not paths:
            self.skipTest(f"{MODELS} has no .salted model yet (train with tools/weights_import/train_fashion_mnist.py)")
        summary_path = MODELS / "training_summary.json"
        self.assertTrue(summary_path.is_file(), f"{summary_path} missing")
        summary = {e["config"]: e for e in json.loads(summary_path.read_text())["configs"]}
        test_x, test_y = sc.load_split("test")
        for path in paths:
            with self.subTest(model=path.name):
                m = sc.Model(path)
                name = make_results.config_name(m)
                self.assertIn(name, summary, f"{path.name}: no entry {name!r} in training_summary.json")
                self.assertIsNotNone(make_results.eval_inputs(m), f"{path.name}: eval/{name}_* files missing")
                check = make_results.pytorch_check(m, BIN, summary[name], test_x, test_y)
                self.assertIsNotNone(check, f"{path.name}: evaluation set does not match the summary")
                print(f"\n{path.name}: C++ {check['engine_acc']:.4f} vs PyTorch {check['pytorch_acc']:.4f} "
                      f"on {check['images']} images", file=sys.stderr)
                self.assertLessEqual(check["diff_points"], 0.1)


if __name__ == "__main__":
    unittest.main()
