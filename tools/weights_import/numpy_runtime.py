#!/usr/bin/python3
"""A small, slow, obviously-correct numpy interpreter of the native graph.

It exists to check the converter's numerics before (and independently of) the
C++ runtime: every op of docs/FORMAT.md's vocabulary is written out with
PyTorch's NCHW semantics, in float64.

    /usr/bin/python3 tools/weights_import/numpy_runtime.py MODEL.salted

runs the embedded test vector and reports the largest difference from the
stored (PyTorch) outputs; exit status 1 when it exceeds 1e-4 * max(1, max|ref|).
"""
import argparse
import pathlib
import sys

import numpy as np
from numpy.lib.stride_tricks import as_strided

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


class GraphError(Exception):
    """A graph this interpreter cannot run (unknown op, missing input)."""


def activation(x, a):
    kind = a.get("kind", "none") if a else "none"
    if kind == "none":
        return x
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "leaky_relu":
        return np.where(x > 0, x, x * a["slope"])
    raise GraphError(f"unknown activation {kind!r}")


def _windows(x, kh, kw, sh, sw, dh, dw, oh, ow):
    """(N, C, oh, ow, kh, kw) view of sliding windows (no copy)."""
    n, c, _, _ = x.shape
    s0, s1, s2, s3 = x.strides
    return as_strided(x, (n, c, oh, ow, kh, kw), (s0, s1, s2 * sh, s3 * sw, s2 * dh, s3 * dw), writeable=False)


def conv2d(x, w, b, stride, dilation, pad, groups):
    t, l, bt, r = pad
    x = np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0), (t, bt), (l, r))))
    o, cg, kh, kw = w.shape
    n, c, h, wd = x.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = _windows(x, kh, kw, stride[0], stride[1], dilation[0], dilation[1], oh, ow)
    og = o // groups
    out = np.empty((n, o, oh, ow))
    for g in range(groups):
        part = np.tensordot(cols[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og], axes=([1, 4, 5], [1, 2, 3]))
        out[:, g * og:(g + 1) * og] = part.transpose(0, 3, 1, 2)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups):
    n, c, h, wd = x.shape
    cin, og, kh, kw = w.shape
    cg = cin // groups
    full_h = (h - 1) * stride[0] + dilation[0] * (kh - 1) + 1 + output_padding[0]
    full_w = (wd - 1) * stride[1] + dilation[1] * (kw - 1) + 1 + output_padding[1]
    out = np.zeros((n, og * groups, full_h, full_w))
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                contrib = np.tensordot(xg, w[g * cg:(g + 1) * cg, :, i, j], axes=([1], [0]))  # n,h,w,og
                hi, wj = i * dilation[0], j * dilation[1]
                out[:, g * og:(g + 1) * og, hi:hi + (h - 1) * stride[0] + 1:stride[0],
                    wj:wj + (wd - 1) * stride[1] + 1:stride[1]] += contrib.transpose(0, 3, 1, 2)
    out = out[:, :, padding[0]:full_h - padding[0], padding[1]:full_w - padding[1]]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out


def _pool_out(size, k, s, p0, p1, d, ceil_mode):
    span = size + p0 + p1 - (d * (k - 1) + 1)
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p0:
            out -= 1
        return out
    return span // s + 1


def pool2d(x, kind, kernel, stride, pad, ceil_mode, dilation=(1, 1), count_include_pad=0):
    n, c, h, w = x.shape
    t, l, b, r = pad
    oh = _pool_out(h, kernel[0], stride[0], t, b, dilation[0], ceil_mode)
    ow = _pool_out(w, kernel[1], stride[1], l, r, dilation[1], ceil_mode)
    # Canvas big enough for every window, including ceil_mode's overhang.
    need_h = (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    extra_b = max(0, need_h - (h + t + b))
    extra_r = max(0, need_w - (w + l + r))
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (t, b + extra_b), (l, r + extra_r)), constant_values=fill)
    win = _windows(np.ascontiguousarray(xp), kernel[0], kernel[1], stride[0], stride[1], dilation[0], dilation[1], oh, ow)
    if kind == "max":
        return win.max(axis=(4, 5))
    mask = np.zeros((1, 1) + xp.shape[2:])
    if count_include_pad:
        mask[..., :h + t + b, :w + l + r] = 1  # padding counts, ceil overhang does not
    else:
        mask[..., t:t + h, l:l + w] = 1
    mwin = _windows(mask, kernel[0], kernel[1], stride[0], stride[1], dilation[0], dilation[1], oh, ow)
    return win.sum(axis=(4, 5)) / mwin.sum(axis=(4, 5))


def _channel(v, rank):
    return v.reshape((1, -1) + (1,) * (rank - 2))


def run_node(node, vals, weights):
    op = node["op"]
    a = node.get("attrs", {})
    ins = [vals[i] for i in node["inputs"]]
    wt = {role: weights[name].astype(np.float64) for role, name in node.get("weights", {}).items()}
    x = ins[0] if ins else None
    if op == "conv2d":
        y = conv2d(x, wt["weight"], wt.get("bias"), a["stride"], a["dilation"], a["pad"], a["groups"])
        return activation(y, a.get("activation"))
    if op == "conv_transpose2d":
        y = conv_transpose2d(x, wt["weight"], wt.get("bias"), a["stride"], a["padding"], a["output_padding"],
                             a["dilation"], a["groups"])
        return activation(y, a.get("activation"))
    if op == "dense":
        y = x @ wt["weight"].T
        if "bias" in wt:
            y = y + wt["bias"]
        return activation(y, a.get("activation"))
    if op == "max_pool2d":
        return pool2d(x, "max", a["kernel"], a["stride"], a["pad"], a["ceil_mode"], a.get("dilation", (1, 1)))
    if op == "avg_pool2d":
        return pool2d(x, "avg", a["kernel"], a["stride"], a["pad"], a["ceil_mode"],
                      count_include_pad=a.get("count_include_pad", 0))
    if op == "global_avg_pool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "batch_norm":
        y = x * _channel(wt["scale"], x.ndim) + _channel(wt["shift"], x.ndim)
        return activation(y, a.get("activation"))
    if op == "relu":
        return np.maximum(x, 0)
    if op == "leaky_relu":
        return np.where(x > 0, x, x * a["negative_slope"])
    if op == "add":
        return activation(ins[0] + ins[1], a.get("activation"))
    if op == "concat":
        return np.concatenate(ins, axis=a["axis"])
    if op == "pad":
        t, l, b, r = a["pads"]
        return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    if op == "flatten":
        return x.reshape(x.shape[0], -1)
    if op == "softmax":
        e = np.exp(x - x.max(axis=a["axis"], keepdims=True))
        return e / e.sum(axis=a["axis"], keepdims=True)
    if op == "cnn_salt_concat":
        s = ins[1].reshape(-1, 1, 1, 1)  # (N,1,1,1) integer salt as float
        maps = s * wt["weight"][0][None] + wt["bias"].reshape(1, -1, 1, 1)
        return np.concatenate((maps, x) if a["salt_first"] else (x, maps), axis=1)
    if op == "fc_salt_concat":
        return np.concatenate((ins[1], x) if a["salt_first"] else (x, ins[1]), axis=1)
    raise GraphError(f"node '{node['name']}': unknown op {op!r}")


def run_graph(header, weights, inputs):
    """Runs the whole graph; inputs: name -> array. Returns name -> float32 output."""
    vals = {}
    for spec in header["inputs"]:
        if spec["name"] not in inputs:
            raise GraphError(f"missing input '{spec['name']}'")
        vals[spec["name"]] = np.asarray(inputs[spec["name"]], dtype=np.float64)
    for node in header["nodes"]:
        y = run_node(node, vals, weights)
        vals[node["outputs"][0]] = y
    return {o["name"]: vals[o["name"]].astype(np.float32) for o in header["outputs"]}


def check_test_vector(model):
    """(max|diff|, tolerance) of the graph on the file's test vector, worst output."""
    got = run_graph(model.header, model.weights, model.test_inputs)
    worst = None
    for name, want in model.test_outputs.items():
        tol = 1e-4 * max(1.0, float(np.abs(want).max()))
        diff = float(np.abs(got[name].astype(np.float64) - want).max())
        if worst is None or not diff - tol <= worst[0] - worst[1]:  # NaN counts as worst
            worst = (diff, tol)
    return worst


def main(argv=None):
    import salted_format
    ap = argparse.ArgumentParser(description="Run a salted model file's test vector with numpy.")
    ap.add_argument("model")
    args = ap.parse_args(argv)
    model = salted_format.read_model(args.model, verify=True)
    if not model.test_outputs:
        print(f"{args.model}: no test vector", file=sys.stderr)
        return 1
    diff, tol = check_test_vector(model)
    ok = diff <= tol
    print(f"{args.model}: max|diff| {diff:.3g} (tolerance {tol:.3g}) vs {model.header['test_vector']['producer']}: "
          f"{'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
