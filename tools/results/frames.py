"""Decoder of cut-tensor frames (docs/FORMAT.md, "Cut-tensor frames"), numpy only.

The results scripts read the activations Z that `salted head` writes, to
train leakage probes on them. Every header rule of the C++ decoder is checked
here too (a frame that the C++ tail would refuse is refused), so that a probe
never trains on a misread tensor.

    frame = read_frame("z.frame")     # Frame(tensor, cut_id, cut_name, model_id, dtype)
    frames = decode_frames(raw_bytes)  # several frames back to back

The CRC32C is checked in pure Python (about 10 MB/s); `verify_checksum=False`
skips it for large frames written locally, where it guards nothing (it exists
for transmission accidents).
"""
import collections
import struct

import numpy as np

MAGIC = b"SLTF"
VERSION = 1
DTYPES = {1: ("f32", np.dtype("<f4")), 2: ("f16", np.dtype("<f2"))}
INT8_RESERVED = 3
MAX_RANK = 6
MAX_NAME = 64
MAX_ELEMENTS = 1 << 40
FIXED_HEADER = 48

Frame = collections.namedtuple("Frame", "tensor cut_id cut_name model_id dtype")


class FrameError(ValueError):
    """A frame that does not follow the format; the message names the field."""


def _crc32c_table():
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    """CRC32C (iSCSI): init and final XOR 0xFFFFFFFF; crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def frame_length(data, offset=0):
    """Total length of the frame starting at `offset`, from its header alone
    (checks every header field on the way)."""
    return _parse_header(data, offset)[-1]


def _parse_header(data, offset):
    avail = len(data) - offset
    if avail < FIXED_HEADER:
        raise FrameError(f"frame: truncated: expected at least {FIXED_HEADER} header bytes, found {avail}")
    head = bytes(data[offset:offset + FIXED_HEADER])
    if head[0:4] != MAGIC:
        raise FrameError(f"frame: magic: expected {MAGIC!r}, found {head[0:4]!r}")
    version = struct.unpack_from("<H", head, 4)[0]
    if version != VERSION:
        raise FrameError(f"frame: version: unsupported, expected {VERSION}, found {version}")
    dtype_code, rank = head[6], head[7]
    if dtype_code == INT8_RESERVED:
        raise FrameError("frame: dtype: unsupported int8 (reserved in version 1)")
    if dtype_code not in DTYPES:
        raise FrameError(f"frame: dtype: expected 1 (f32) or 2 (f16), found {dtype_code}")
    if not 1 <= rank <= MAX_RANK:
        raise FrameError(f"frame: rank: expected 1..{MAX_RANK}, found {rank}")
    cut_id = struct.unpack_from("<I", head, 8)[0]
    name_len = head[12]
    if name_len > MAX_NAME:
        raise FrameError(f"frame: name_len: expected 0..{MAX_NAME}, found {name_len}")
    if head[13:16] != b"\0\0\0":
        raise FrameError(f"frame: reserved: expected 00 00 00, found {head[13:16].hex(' ')}")
    model_id = head[16:48]
    header_len = FIXED_HEADER + 8 * rank + name_len + 8
    if avail < header_len:
        raise FrameError(f"frame: truncated: expected a {header_len}-byte header, found {avail} bytes")
    dims = struct.unpack_from(f"<{rank}Q", data, offset + FIXED_HEADER)
    numel = 1
    for i, d in enumerate(dims):
        if not 1 <= d <= MAX_ELEMENTS:
            raise FrameError(f"frame: dims[{i}]: expected 1..2^40, found {d}")
        numel *= d
        if numel > MAX_ELEMENTS:
            raise FrameError(f"frame: dims: element count above 2^40 at dims[{i}]")
    name_at = offset + FIXED_HEADER + 8 * rank
    name = bytes(data[name_at:name_at + name_len])
    if any(not 0x20 <= b <= 0x7E for b in name):
        raise FrameError(f"frame: cut_name: expected printable ASCII, found {name!r}")
    dtype_name, dtype = DTYPES[dtype_code]
    payload_bytes = struct.unpack_from("<Q", data, name_at + name_len)[0]
    if payload_bytes != numel * dtype.itemsize:
        raise FrameError(f"frame: payload_bytes: expected {numel * dtype.itemsize}, found {payload_bytes}")
    total = header_len + payload_bytes + 4
    return dims, cut_id, name.decode("ascii"), model_id, dtype_name, dtype, header_len, total


def decode_frame(data, offset=0, verify_checksum=True, exact=True):
    """Decodes the frame at `offset`; returns (Frame, end offset). With
    `exact`, the data must end where the frame ends (as for one frame file)."""
    dims, cut_id, name, model_id, dtype_name, dtype, header_len, total = _parse_header(data, offset)
    avail = len(data) - offset
    if avail < total:
        raise FrameError(f"frame: truncated: expected {total} bytes, found {avail}")
    if exact and avail > total:
        raise FrameError(f"frame: length: expected {total} bytes, found {avail - total} trailing bytes")
    end = offset + total
    if verify_checksum:
        want = struct.unpack_from("<I", data, end - 4)[0]
        got = crc32c(memoryview(data)[offset:end - 4])
        if got != want:
            raise FrameError(f"frame: checksum: expected 0x{want:08x}, found 0x{got:08x}")
    start = offset + header_len
    payload = np.frombuffer(data, dtype=dtype, count=int(np.prod(dims)), offset=start)
    tensor = payload.astype(np.float32).reshape(dims)
    return Frame(tensor, cut_id, name, bytes(model_id).hex(), dtype_name), end


def decode_frames(data, verify_checksum=True):
    """Every frame of a byte string holding frames back to back."""
    frames, offset = [], 0
    while offset < len(data):
        frame, offset = decode_frame(data, offset, verify_checksum, exact=False)
        frames.append(frame)
    return frames


def read_frame(path, verify_checksum=True):
    """The single frame of a file written by `salted head --output`."""
    with open(path, "rb") as f:
        data = f.read()
    return decode_frame(data, 0, verify_checksum, exact=True)[0]
