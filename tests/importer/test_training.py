"""Smoke test of the Fashion-MNIST training pipeline (tools/weights_import/
train_fashion_mnist.py): one CNN-salt and one FC-salt configuration, 300
images, one epoch, into a temporary directory. It checks the plumbing (files,
formats, summary, determinism), not the accuracy, which one epoch on 300
images cannot give. Run with Debian's Python:

    /usr/bin/python3 -m unittest tests/importer/test_training.py -v
"""
import contextlib
import io
import json
import pathlib
import sys
import tempfile
import unittest

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "weights_import"
sys.path.insert(0, str(TOOLS))

import fashion_mnist  # noqa: E402
import salted_format as sf  # noqa: E402
import train_fashion_mnist as tfm  # noqa: E402

LIMIT = 300


@unittest.skipUnless((fashion_mnist.data_dir() / "t10k-labels-idx1-ubyte.gz").is_file(),
                     "dataset-fashion-mnist is not installed")
class TrainingSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = pathlib.Path(cls.tmp.name)
        cls.out, cls.extra = cls.dir / "models", cls.dir / "extra"
        # salt1 is shipped (to --out), salt6 is not (to --extra-out).
        argv = ["--out", str(cls.out), "--extra-out", str(cls.extra), "--ship", "1", "--configs", "1,6",
                "--limit", str(LIMIT), "--epochs", "1", "--verify-images", "50",
                "--write-images", str(cls.dir / "images")]
        with contextlib.redirect_stdout(io.StringIO()) as log:
            cls.status = tfm.main(argv)
        cls.log = log.getvalue()
        cls.summary = json.loads((cls.out / "training_summary.json").read_text())
        cls.entries = {e["config"]: e for e in cls.summary["configs"]}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_runs_and_logs_every_epoch(self):
        self.assertEqual(self.status, 0)
        self.assertIn("[salt1] epoch 1/1", self.log)
        self.assertIn("[salt6] epoch 1/1", self.log)

    def test_files_go_where_ship_says(self):
        self.assertTrue((self.out / "lenet_fmnist_salt1.salted").is_file())
        self.assertTrue((self.extra / "lenet_fmnist_salt6.salted").is_file())
        self.assertFalse((self.out / "lenet_fmnist_salt6.salted").exists())

    def test_models_load_with_their_salt_spec(self):
        for path, kind, layer, salt_kind in ((self.out / "lenet_fmnist_salt1.salted", "cnn", 1, "salt_int"),
                                             (self.extra / "lenet_fmnist_salt6.salted", "fc", 6, "salt_vector")):
            m = sf.read_model(path, verify=True)
            self.assertEqual(m.salt["kind"], kind)
            self.assertEqual(m.salt["layer"], layer)
            self.assertEqual([i["kind"] for i in m.inputs], ["data", salt_kind])
            self.assertEqual(m.inputs[0]["shape"], ["N", 1, 28, 28])
            self.assertEqual(m.header["metadata"]["dataset"], "fashion-mnist")
            self.assertEqual(m.header["test_vector"]["producer"].split()[0], "pytorch")

    def test_summary_has_accuracies_in_range(self):
        self.assertEqual(sorted(self.entries), ["salt1", "salt6"])
        for e in self.entries.values():
            for key in ("test_acc_desalted", "test_acc_server_view"):
                self.assertGreaterEqual(e[key], 0.0)
                self.assertLessEqual(e[key], 1.0)
            self.assertEqual(e["epochs"], 1)
            self.assertEqual(e["seed"], 0)
            self.assertEqual(e["test_images"], LIMIT)
            self.assertEqual(len(e["history"]), 1)
            self.assertGreater(e["seconds"], 0)
            self.assertIn("torch_version", e)
            self.assertIn("--configs 1,6", e["command"])
            # The exported graph (numpy interpreter) predicts like PyTorch.
            self.assertEqual(e["export_check"]["prediction_agreement"], 1.0)
        self.assertTrue(self.entries["salt1"]["shipped"])
        self.assertFalse(self.entries["salt6"]["shipped"])

    def test_eval_files_reproduce_the_reported_accuracy(self):
        # The saved salts and predictions are what the C++ side replays: the
        # predictions must give exactly the summary's de-salted accuracy.
        _, labels = fashion_mnist.load("test")
        labels = labels[:LIMIT].astype(np.int64)
        for name, root in (("salt1", self.out), ("salt6", self.extra)):
            salts = np.load(root / "eval" / f"{name}_salts.npy")
            preds = np.load(root / "eval" / f"{name}_predictions.npy")
            self.assertEqual((salts.dtype, salts.shape), (np.int64, (LIMIT,)))
            self.assertTrue(((0 <= salts) & (salts < 10)).all())
            self.assertGreater(len(np.unique(salts)), 5)  # drawn per sample, not one fixed salt
            self.assertAlmostEqual(float((preds == labels).mean()), self.entries[name]["test_acc_desalted"], places=6)
        vectors = np.load(self.extra / "eval" / "salt6_salt_vectors.npy")
        self.assertEqual((vectors.dtype, vectors.shape), (np.float32, (LIMIT, 10)))
        # An FC salt vector peaks at its salt (mean (s+1+4C)/2C vs at most 1/2).
        np.testing.assert_array_equal(vectors.argmax(1), np.load(self.extra / "eval" / "salt6_salts.npy"))

    def test_images_are_the_dataset_pixels(self):
        from PIL import Image
        images, labels = fashion_mnist.load("test")
        files = sorted((self.dir / "images").glob("*.png"))
        self.assertEqual(len(files), 12)
        self.assertEqual(sorted({int(f.stem.split("_")[-1]) for f in files}), list(range(10)))
        for f in files:
            index, label = int(f.stem.split("_")[0]), int(f.stem.split("_")[-1])
            self.assertEqual(label, labels[index])
            np.testing.assert_array_equal(np.asarray(Image.open(f)), images[index])

    def test_same_seed_same_weights(self):
        again = self.dir / "again"
        with contextlib.redirect_stdout(io.StringIO()):
            tfm.main(["--out", str(again), "--ship", "1", "--configs", "1", "--limit", str(LIMIT), "--epochs", "1",
                      "--verify-images", "10"])
        first = sf.read_model(self.out / "lenet_fmnist_salt1.salted")
        second = sf.read_model(again / "lenet_fmnist_salt1.salted")
        self.assertEqual(first.model_id, second.model_id)


class DatasetValidation(unittest.TestCase):
    def test_bad_magic_and_truncation_are_named(self):
        import gzip
        import struct
        with tempfile.TemporaryDirectory() as d:
            bad = pathlib.Path(d) / "bad.gz"
            with gzip.open(bad, "wb") as f:
                f.write(struct.pack(">II", 0x00000803, 3) + b"\x01\x02\x03")
            with self.assertRaisesRegex(fashion_mnist.DatasetError, "magic: expected 0x00000801"):
                fashion_mnist.read_idx_labels(bad)
            short = pathlib.Path(d) / "short.gz"
            with gzip.open(short, "wb") as f:
                f.write(struct.pack(">II", 0x00000801, 5) + b"\x01\x02")
            with self.assertRaisesRegex(fashion_mnist.DatasetError, "size: expected 13 bytes"):
                fashion_mnist.read_idx_labels(short)
            with self.assertRaisesRegex(fashion_mnist.DatasetError, "apt-get install dataset-fashion-mnist"):
                fashion_mnist.load("test", d)


if __name__ == "__main__":
    unittest.main()
