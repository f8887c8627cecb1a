"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (gzipped IDX
files under /usr/share/datasets/fashion-mnist/), as uint8 numpy arrays.

The IDX format (as used by MNIST): a big-endian header, magic 0x00000803 for
an image file (then count, rows, cols) or 0x00000801 for a label file (then
count), followed by the raw uint8 data. Every header field and the payload
size are checked, so a truncated or mismatched file is an error that names it
instead of a silently short array.

    images, labels = load("train")   # (60000, 28, 28) uint8, (60000,) uint8
    images, labels = load("test")    # (10000, 28, 28) uint8, (10000,) uint8
"""
import gzip
import os
import pathlib
import struct

import numpy as np

DEFAULT_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle boot")
NUM_CLASSES = len(CLASSES)
IMAGE_MAGIC = 0x00000803  # uint8 data, 3 dimensions
LABEL_MAGIC = 0x00000801  # uint8 data, 1 dimension
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
INSTALL_HINT = "install it with: apt-get install dataset-fashion-mnist (or pass a directory holding the IDX files)"


class DatasetError(RuntimeError):
    pass


def data_dir(directory=None):
    """The directory holding the IDX files: the argument, $FASHION_MNIST_DIR,
    or the Debian location."""
    return pathlib.Path(directory or os.environ.get("FASHION_MNIST_DIR") or DEFAULT_DIR)


def _read(path):
    if not path.is_file():
        raise DatasetError(f"fashion-mnist: {path} not found; {INSTALL_HINT}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:  # gzip raises both on a damaged file
        raise DatasetError(f"fashion-mnist: {path}: cannot read: {e}") from e


def read_idx_images(path):
    """(count, rows, cols) uint8 from an IDX image file."""
    raw = _read(path)
    if len(raw) < 16:
        raise DatasetError(f"fashion-mnist: {path}: header: expected 16 bytes, found {len(raw)}")
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != IMAGE_MAGIC:
        raise DatasetError(f"fashion-mnist: {path}: magic: expected 0x{IMAGE_MAGIC:08x}, found 0x{magic:08x}")
    want = 16 + count * rows * cols
    if len(raw) != want:
        raise DatasetError(f"fashion-mnist: {path}: size: expected {want} bytes for {count}x{rows}x{cols}, found {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols).copy()


def read_idx_labels(path):
    """(count,) uint8 from an IDX label file."""
    raw = _read(path)
    if len(raw) < 8:
        raise DatasetError(f"fashion-mnist: {path}: header: expected 8 bytes, found {len(raw)}")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != LABEL_MAGIC:
        raise DatasetError(f"fashion-mnist: {path}: magic: expected 0x{LABEL_MAGIC:08x}, found 0x{magic:08x}")
    if len(raw) != 8 + count:
        raise DatasetError(f"fashion-mnist: {path}: size: expected {8 + count} bytes for {count} labels, found {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=8).copy()


def load(split, directory=None):
    """(images (N,28,28) uint8, labels (N,) uint8) of split "train" or "test"."""
    if split not in FILES:
        raise DatasetError(f"fashion-mnist: split: expected one of {sorted(FILES)}, found {split!r}")
    image_file, label_file, count = FILES[split]
    root = data_dir(directory)
    images = read_idx_images(root / image_file)
    labels = read_idx_labels(root / label_file)
    if images.shape != (count, 28, 28):
        raise DatasetError(f"fashion-mnist: {split} images: expected shape ({count}, 28, 28), found {images.shape}")
    if labels.shape != (count,):
        raise DatasetError(f"fashion-mnist: {split} labels: expected {count} labels, found {labels.shape[0]}")
    if int(labels.max()) >= NUM_CLASSES:
        raise DatasetError(f"fashion-mnist: {split} labels: expected values < {NUM_CLASSES}, found {int(labels.max())}")
    return images, labels


def slug(label):
    """A file-name-safe class name: 9 -> "ankle_boot", 0 -> "t_shirt_top"."""
    return CLASSES[label].replace("/", "_").replace("-", "_").replace(" ", "_")
