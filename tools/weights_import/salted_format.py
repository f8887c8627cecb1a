"""Reads and writes salted model files (docs/FORMAT.md), with numpy only.

Layout (little-endian):
    0   8  magic  b"\\x89SALTED\\n"
    8   4  u32    format version (1)
   12   4  u32    flags (0; reserved)
   16   8  u64    header_len: bytes of the JSON header
   24   8  u64    data_offset: file offset of the data section (multiple of 64)
   32   8  u64    data_len: bytes of the data section; the file ends there
   40   .  JSON header (UTF-8), then spaces up to data_offset
   data_offset .. raw little-endian tensors, each starting at a multiple of 64

Tensor entries in the header use the safetensors schema
{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} with offsets
relative to the data section. Weights come first, in the order nodes use
them; the test-vector tensors follow. `weights_sha256` is SHA-256 over the
concatenated bytes of the weight tensors in ascending offset order (padding
excluded); it is the model id.
"""
import hashlib
import json
import struct

import numpy as np

MAGIC = b"\x89SALTED\n"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sIIQQQ")  # magic, version, flags, header_len, data_offset, data_len
ALIGN = 64


class FormatError(ValueError):
    pass


def _align(n, a=ALIGN):
    return (n + a - 1) // a * a


def _f32(a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    return a


def write_model(path_or_file, header, weights, test_inputs=None, test_outputs=None, test_producer=None):
    """Writes a model file.

    header: dict with every field except `tensors`, `weights_sha256` and
        `test_vector` (filled in here).
    weights: ordered dict name -> float32 array (file order = dict order).
    test_inputs / test_outputs: ordered dicts name -> array, or None.
    Returns the header actually written (with hashes and offsets).
    """
    header = dict(header)
    blobs = []
    offset = 0

    def place(arr):
        nonlocal offset
        arr = _f32(arr)
        begin = offset
        end = begin + arr.nbytes
        blobs.append((begin, arr.tobytes()))
        offset = _align(end)
        return {"dtype": "F32", "shape": [int(d) for d in arr.shape], "data_offsets": [begin, end]}

    sha = hashlib.sha256()
    tensors = {}
    for name, arr in weights.items():
        tensors[name] = place(arr)
        sha.update(_f32(arr).tobytes())
    header["tensors"] = tensors
    header["weights_sha256"] = sha.hexdigest()
    if test_inputs is not None:
        tsha = hashlib.sha256()
        tv = {"producer": test_producer or "unknown", "inputs": {}, "outputs": {}}
        for group, arrays in (("inputs", test_inputs), ("outputs", test_outputs)):
            for name, arr in arrays.items():
                tv[group][name] = place(arr)
                tsha.update(_f32(arr).tobytes())
        tv["sha256"] = tsha.hexdigest()
        header["test_vector"] = tv
    else:
        header["test_vector"] = None
    # The data section ends with the last tensor (no trailing padding).
    data_len = blobs[-1][0] + len(blobs[-1][1]) if blobs else 0

    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    data_offset = _align(PREAMBLE.size + len(text))
    out = bytearray(PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(text), data_offset, data_len))
    out += text
    out += b" " * (data_offset - len(out))
    data = bytearray(data_len)
    for begin, b in blobs:
        data[begin:begin + len(b)] = b
    out += data
    if hasattr(path_or_file, "write"):
        path_or_file.write(bytes(out))
    else:
        with open(path_or_file, "wb") as f:
            f.write(bytes(out))
    return header


class Model:
    """A parsed model file: the JSON header plus numpy views of the tensors."""

    def __init__(self, header, weights, test_inputs, test_outputs, version):
        self.header = header
        self.weights = weights
        self.test_inputs = test_inputs
        self.test_outputs = test_outputs
        self.version = version

    @property
    def nodes(self):
        return self.header["nodes"]

    @property
    def inputs(self):
        return self.header["inputs"]

    @property
    def outputs(self):
        return self.header["outputs"]

    @property
    def salt(self):
        return self.header["salt"]

    @property
    def model_id(self):
        return self.header["weights_sha256"]


def _tensor(data, entry, what):
    if entry.get("dtype") != "F32":
        raise FormatError(f"{what}: dtype: expected 'F32', found {entry.get('dtype')!r}")
    begin, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if not (0 <= begin <= end <= len(data)) or end - begin != 4 * n:
        raise FormatError(f"{what}: data_offsets {begin}..{end} do not fit shape {list(shape)} in {len(data)} data bytes")
    return np.frombuffer(data, dtype="<f4", count=n, offset=begin).reshape(shape)


def read_model(path_or_bytes, verify=True):
    """Parses a model file (path or bytes); checks the hashes when `verify`."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        buf = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            buf = f.read()
    if len(buf) < PREAMBLE.size:
        raise FormatError(f"file: expected at least {PREAMBLE.size} bytes, found {len(buf)}")
    magic, version, flags, header_len, data_offset, data_len = PREAMBLE.unpack_from(buf)
    if magic != MAGIC:
        raise FormatError(f"magic: expected {MAGIC!r}, found {magic!r}")
    if version != FORMAT_VERSION:
        raise FormatError(f"format version: expected {FORMAT_VERSION}, found {version}")
    if flags != 0:
        raise FormatError(f"flags: expected 0, found {flags}")
    if PREAMBLE.size + header_len > data_offset or data_offset + data_len != len(buf):
        raise FormatError("lengths: header/data sections do not match the file size")
    header = json.loads(buf[PREAMBLE.size:PREAMBLE.size + header_len].decode("utf-8"))
    data = memoryview(buf)[data_offset:]
    weights = {name: _tensor(data, e, f"tensors.{name}") for name, e in header["tensors"].items()}
    tv = header.get("test_vector")
    test_inputs, test_outputs = {}, {}
    if tv:
        test_inputs = {n: _tensor(data, e, f"test_vector.inputs.{n}") for n, e in tv["inputs"].items()}
        test_outputs = {n: _tensor(data, e, f"test_vector.outputs.{n}") for n, e in tv["outputs"].items()}
    if verify:
        ordered = sorted(header["tensors"].items(), key=lambda kv: kv[1]["data_offsets"][0])
        sha = hashlib.sha256()
        for name, _ in ordered:
            sha.update(weights[name].tobytes())
        if sha.hexdigest() != header["weights_sha256"]:
            raise FormatError(f"weights_sha256: expected {header['weights_sha256']}, computed {sha.hexdigest()}")
        if tv:
            entries = [(e["data_offsets"][0], test_inputs[n]) for n, e in tv["inputs"].items()]
            entries += [(e["data_offsets"][0], test_outputs[n]) for n, e in tv["outputs"].items()]
            tsha = hashlib.sha256()
            for _, a in sorted(entries, key=lambda t: t[0]):
                tsha.update(a.tobytes())
            if tsha.hexdigest() != tv["sha256"]:
                raise FormatError(f"test_vector.sha256: expected {tv['sha256']}, computed {tsha.hexdigest()}")
    return Model(header, weights, test_inputs, test_outputs, version)
