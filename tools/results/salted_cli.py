"""What the results scripts share: running the C++ `salted` program on numpy
batches, seeded salts, de-salting, the numpy reference of a model file, and
the choice of the cut at which a model is split.

Everything the C++ engine computes here goes through the program's documented
commands (`info --json`, `run`, `head`), exactly as a deployment would call it.
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tools" / "weights_import"))
sys.path.insert(0, str(HERE))

import fashion_mnist  # noqa: E402
import numpy_runtime  # noqa: E402
import salted_format  # noqa: E402
import frames  # noqa: E402

# Layers that combine channels: a cut after one of them (downstream of the
# salt) no longer carries the salt in the clear (docs/SPLIT.md).
CHANNEL_MIXING_OPS = ("conv2d", "conv_transpose2d", "dense")


class EngineError(RuntimeError):
    """The program failed; the message holds its command line and stderr."""


def run_program(binary, *args, timeout=1800):
    cmd = [str(binary), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise EngineError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def model_info(binary, model_path):
    """`salted info MODEL --json` as a dict (nodes, cuts, salt, MFLOPs)."""
    return json.loads(run_program(binary, "info", model_path, "--json"))


def split_cut(info):
    """The earliest cut worth splitting at: safe (the salt is mixed, the tail
    does not need it) and with at least one channel-mixing layer in the head.
    For a salted model that is the earliest safe cut; for a standard model it
    is the cut after its first conv/dense layer (the head would otherwise only
    normalise the input, and the cloud would see the image)."""
    ops = [n["op"] for n in info["nodes"]]
    for cut in info["cuts"]:
        if not cut["safe"] or cut["tail_needs_salt"] or not cut["salt_mixed"]:
            continue
        if any(op in CHANNEL_MIXING_OPS for op in ops[:cut["position"]]):
            return cut
    return None


def to_float(images_u8):
    """uint8 (N,28,28) -> float32 (N,1,28,28) in [0,1]: the models' input
    convention (train_fashion_mnist.py; normalisation is inside the graph)."""
    return (images_u8.astype(np.float32) / np.float32(255.0))[:, None]


def seeded_salts(n, classes, seed, stream):
    """n uniform salts in [0, classes) from a seeded numpy generator; `stream`
    separates independent uses of one seed (table, probe train, probe test)."""
    return np.random.default_rng([seed, stream]).integers(0, classes, size=n).astype(np.int64)


def fc_salt_vectors(salts, classes, seed, stream):
    """FC salt vectors per PAPER.md, in numpy: means = roll([1..C], s+1),
    means[s] += 4C, means /= 2C, plus Normal(0, 1/(2C)) noise (seeded)."""
    c = classes
    base = np.arange(1, c + 1, dtype=np.float64)
    means = np.stack([np.roll(base, int(s) + 1) for s in salts]) if len(salts) else np.zeros((0, c))
    means[np.arange(len(salts)), salts] += 4 * c
    means /= 2 * c
    noise = np.random.default_rng([seed, stream, 1]).standard_normal(means.shape)
    return (means + noise / (2 * c)).astype(np.float32)


def desalted_classes(logits, salts):
    """The client's classes: (argmax(Y) - s) mod C."""
    return (logits.argmax(1) - salts) % logits.shape[1]


def accuracy(pred, labels):
    return float(np.mean(pred == labels)) if len(labels) else float("nan")


class Model:
    """A model file with what the scripts need: its salt kind and its graph."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.file = salted_format.read_model(self.path, verify=True)
        salt = self.file.salt
        self.salt_kind = salt.get("kind", "none")
        self.classes = int(salt["classes"])
        self.salt_layer = salt.get("layer")
        self.salted = self.salt_kind != "none"

    def salt_inputs(self, salts, seed, stream):
        """(int salts, FC salt vectors or None) for the given integer salts."""
        if self.salt_kind == "fc":
            return salts, fc_salt_vectors(salts, self.classes, seed, stream)
        return salts, None

    def salt_args(self, workdir, salts, vectors, tag):
        """The program's salt options, writing the .npy files they name."""
        if not self.salted:
            return []
        workdir = pathlib.Path(workdir)
        s_path = workdir / f"{tag}_salts.npy"
        np.save(s_path, np.asarray(salts, dtype=np.int64))
        args = ["--salt", s_path]
        if vectors is not None:
            v_path = workdir / f"{tag}_salt_vectors.npy"
            np.save(v_path, np.asarray(vectors, dtype=np.float32))
            args += ["--salt-vector", v_path]
        return args

    def engine_logits(self, binary, x, salts, vectors, workdir=None, batch=2000, threads=None):
        """Salted logits (what the server sees) from `salted run`, one call per
        `batch` images (the engine's activations for 10k images would take GBs)."""
        parts = []
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            tmp = pathlib.Path(tmp)
            extra = ["--threads", threads] if threads else []
            for start in range(0, x.shape[0], batch):
                sl = slice(start, start + batch)
                np.save(tmp / "x.npy", np.ascontiguousarray(x[sl], dtype=np.float32))
                run_program(binary, "run", self.path, "--input", tmp / "x.npy",
                            *self.salt_args(tmp, salts[sl], None if vectors is None else vectors[sl], "run"),
                            "--output", tmp / "y.npy", *extra)
                parts.append(np.load(tmp / "y.npy"))
        return np.concatenate(parts) if parts else np.zeros((0, self.classes), np.float32)

    def engine_cut(self, binary, cut_name, x, salts, vectors, workdir=None, batch=1000, threads=None):
        """The cut tensor Z (N, ...) from `salted head`, decoded from its frames
        (one head call per `batch` images to bound the frame size)."""
        parts = []
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            tmp = pathlib.Path(tmp)
            extra = ["--threads", threads] if threads else []
            for start in range(0, x.shape[0], batch):
                sl = slice(start, start + batch)
                np.save(tmp / "x.npy", np.ascontiguousarray(x[sl], dtype=np.float32))
                run_program(binary, "head", self.path, "--cut", cut_name, "--input", tmp / "x.npy",
                            *self.salt_args(tmp, salts[sl], None if vectors is None else vectors[sl], "head"),
                            "--output", tmp / "z.frame", *extra)
                # Written locally a moment ago: the CRC guards nothing here and costs ~1 s/10 MB.
                parts.append(frames.read_frame(tmp / "z.frame", verify_checksum=False).tensor)
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def reference_logits(self, x, salts, vectors, batch=500):
        """Salted logits from the numpy float64 interpreter of the same graph
        (tools/weights_import/numpy_runtime.py), the engine-independent reference."""
        out = []
        for start in range(0, x.shape[0], batch):
            sl = slice(start, start + batch)
            feed = {}
            for spec in self.file.inputs:
                if spec["kind"] == "data":
                    feed[spec["name"]] = x[sl]
                elif spec["kind"] == "salt_int":
                    feed[spec["name"]] = np.asarray(salts[sl], np.float32).reshape(-1, 1, 1, 1)
                else:
                    feed[spec["name"]] = vectors[sl]
            out.append(numpy_runtime.run_graph(self.file.header, self.file.weights, feed)[self.file.outputs[0]["name"]])
        return np.concatenate(out)


def load_split(split, data_dir=None, limit=0):
    images, labels = fashion_mnist.load(split, data_dir)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int64)


def find_models(directory):
    """The model files of a directory, standard first then by salt layer."""
    models = [Model(p) for p in sorted(pathlib.Path(directory).glob("*.salted"))]
    return sorted(models, key=lambda m: (-2 if m.salt_layer is None else m.salt_layer, m.path.name))
