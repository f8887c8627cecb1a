#!/usr/bin/python3
"""ONNX (opset 13+) -> salted model file (docs/FORMAT.md).

    /usr/bin/python3 tools/weights_import/onnx_to_salted.py MODEL.onnx -o MODEL.salted

or, from Python, with a PyTorch-computed test vector embedded:

    from onnx_to_salted import export_module
    export_module(model, (x, salt), "model.salted")

How the ONNX graph becomes a native graph, in passes:
 1. translate: every ONNX node either folds into a constant (Constant, Shape,
    Gather, Unsqueeze, Concat, Slice, ... on constants: the shape arithmetic
    torch emits around Reshape and Pad; the batch dimension is carried as the
    stand-in value BATCH), becomes an alias (Identity, Dropout, zero Pad,
    Reshape that keeps the shape), or becomes one native node. Elementwise
    Add/Sub/Mul/Div with a per-channel constant and BatchNormalization become
    `batch_norm` (a per-channel scale and shift).
 2. fold Pad into the following conv2d's padding (or into an avg_pool2d with
    count_include_pad) when that is its only consumer;
 3. merge chains of batch_norm and fold a batch_norm into the conv2d/dense
    that produces its input when it is that node's only consumer;
 4. recognise the salt branch: salt input -> ConvTranspose -> Concat becomes
    `cnn_salt_concat`; a salt-vector input concatenated before a dense layer
    becomes `fc_salt_concat`;
 5. fuse Relu/LeakyRelu into the producing conv2d/dense/batch_norm/add when it
    is that node's only consumer.
Anything else is an error naming the ONNX op type and node name.
"""
import argparse
import io
import pathlib
import sys
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import salted_format  # noqa: E402

PRODUCER = "salted onnx_to_salted 1"
# Stand-in for the symbolic batch dimension while shapes are propagated as
# plain integers. A large prime: shape arithmetic that mixes it with other
# dimensions yields values that are recognisably not the batch.
BATCH = 1000003
MIN_OPSET = 13


class ConvertError(Exception):
    """A graph the converter cannot express; the message names the node."""


# ----------------------------------------------------------------------------
# Native IR
# ----------------------------------------------------------------------------

class Node:
    def __init__(self, op, name, inputs, outputs, attrs=None, weights=None):
        self.op = op
        self.name = name
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs or {})
        self.weights = dict(weights or {})  # role -> float32 ndarray

    def __repr__(self):
        return f"Node({self.op} {self.name} {self.inputs}->{self.outputs} {self.attrs})"


NO_ACTIVATION = {"kind": "none"}


def _act(kind, slope=None):
    a = {"kind": kind}
    if kind == "leaky_relu":
        a["slope"] = float(slope)
    return a


# ----------------------------------------------------------------------------
# Shape rules of the native ops (batch dimension = BATCH)
# ----------------------------------------------------------------------------

def _pool_out(size, k, s, p0, p1, d, ceil_mode):
    eff = d * (k - 1) + 1
    span = size + p0 + p1 - eff
    if span < 0:
        return 0
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p0:  # PyTorch: the last window must start inside input or left pad
            out -= 1
    else:
        out = span // s + 1
    return out


def infer_shape(node, shapes):
    a = node.attrs
    ins = [shapes[i] for i in node.inputs]
    op = node.op
    x = ins[0] if ins else None

    def need_rank(r):
        if len(x) != r:
            raise ConvertError(f"{op} '{node.name}': input rank: expected {r}, found {len(x)} (shape {_fmt(x)})")

    if op == "conv2d":
        need_rank(4)
        w = node.weights["weight"]
        if x[1] != w.shape[1] * a["groups"]:
            raise ConvertError(f"conv2d '{node.name}': input channels {x[1]} do not match weight {list(w.shape)} with groups {a['groups']}")
        t, l, b, r = a["pad"]
        oh = (x[2] + t + b - a["dilation"][0] * (a["kernel"][0] - 1) - 1) // a["stride"][0] + 1
        ow = (x[3] + l + r - a["dilation"][1] * (a["kernel"][1] - 1) - 1) // a["stride"][1] + 1
        return (x[0], w.shape[0], oh, ow)
    if op == "conv_transpose2d":
        need_rank(4)
        w = node.weights["weight"]
        if x[1] != w.shape[0]:
            raise ConvertError(f"conv_transpose2d '{node.name}': input channels {x[1]} do not match weight {list(w.shape)}")
        outs = []
        for i in range(2):
            outs.append((x[2 + i] - 1) * a["stride"][i] - 2 * a["padding"][i] + a["dilation"][i] * (a["kernel"][i] - 1)
                        + a["output_padding"][i] + 1)
        return (x[0], w.shape[1] * a["groups"], outs[0], outs[1])
    if op == "dense":
        need_rank(2)
        w = node.weights["weight"]
        if x[1] != w.shape[1]:
            raise ConvertError(f"dense '{node.name}': input features {x[1]} do not match weight {list(w.shape)}")
        return (x[0], w.shape[0])
    if op in ("max_pool2d", "avg_pool2d"):
        need_rank(4)
        t, l, b, r = a["pad"]
        d = a.get("dilation", [1, 1])
        oh = _pool_out(x[2], a["kernel"][0], a["stride"][0], t, b, d[0], a["ceil_mode"])
        ow = _pool_out(x[3], a["kernel"][1], a["stride"][1], l, r, d[1], a["ceil_mode"])
        return (x[0], x[1], oh, ow)
    if op == "global_avg_pool":
        need_rank(4)
        return (x[0], x[1], 1, 1)
    if op in ("batch_norm", "relu", "leaky_relu", "softmax"):
        return x
    if op == "add":
        if ins[0] != ins[1]:
            raise ConvertError(f"add '{node.name}': operand shapes differ: {_fmt(ins[0])} vs {_fmt(ins[1])} (broadcasting is not supported)")
        return x
    if op == "concat":
        ax = a["axis"]
        for s in ins[1:]:
            if len(s) != len(x) or any(s[i] != x[i] for i in range(len(x)) if i != ax):
                raise ConvertError(f"concat '{node.name}': shapes {_fmt(x)} and {_fmt(s)} differ off axis {ax}")
        return x[:ax] + (sum(s[ax] for s in ins),) + x[ax + 1:]
    if op == "pad":
        need_rank(4)
        t, l, b, r = a["pads"]
        return (x[0], x[1], x[2] + t + b, x[3] + l + r)
    if op == "flatten":
        return (x[0], int(np.prod(x[1:], dtype=np.int64)))
    if op == "cnn_salt_concat":
        need_rank(4)
        return (x[0], x[1] + a["maps"], x[2], x[3])
    if op == "fc_salt_concat":
        need_rank(2)
        return (x[0], x[1] + ins[1][1])
    raise ConvertError(f"internal: no shape rule for native op {op}")


def _fmt(shape):
    return "[" + ", ".join("N" if d == BATCH else str(d) for d in shape) + "]"


# ----------------------------------------------------------------------------
# Constant folding of the shape arithmetic torch emits
# ----------------------------------------------------------------------------

def _attr(node, name, default=None):
    import onnx
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _const_eval(node, vals):
    """Evaluates an ONNX node whose inputs are all constants (numpy)."""
    import onnx.numpy_helper as nh
    op = node.op_type
    x = vals[0] if vals else None
    if op == "Constant":
        for a in node.attribute:
            if a.name == "value":
                return nh.to_array(a.t)
            if a.name == "value_float":
                return np.array(a.f, dtype=np.float32)
            if a.name == "value_floats":
                return np.array(list(a.floats), dtype=np.float32)
            if a.name == "value_int":
                return np.array(a.i, dtype=np.int64)
            if a.name == "value_ints":
                return np.array(list(a.ints), dtype=np.int64)
        raise ConvertError(f"Constant '{node.name}': unsupported value attribute")
    if op == "ConstantOfShape":
        t = _attr(node, "value")
        v = nh.to_array(t) if t is not None else np.zeros(1, np.float32)
        return np.full(tuple(int(d) for d in x), v.reshape(-1)[0], dtype=v.dtype)
    if op == "Identity":
        return x
    if op == "Cast":
        import onnx
        return x.astype(onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[_attr(node, "to")])
    if op == "Gather":
        return np.take(x, vals[1].astype(np.int64), axis=_attr(node, "axis", 0))
    if op == "Unsqueeze":
        out = x
        axes = sorted(int(a) % (x.ndim + vals[1].size) for a in vals[1].reshape(-1))
        for ax in axes:
            out = np.expand_dims(out, ax)
        return out
    if op == "Squeeze":
        if len(vals) > 1:
            return np.squeeze(x, axis=tuple(int(a) for a in vals[1].reshape(-1)))
        return np.squeeze(x)
    if op == "Concat":
        return np.concatenate(vals, axis=_attr(node, "axis"))
    if op == "Reshape":
        shape = [int(d) for d in vals[1]]
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)
    if op == "Transpose":
        return np.transpose(x, _attr(node, "perm"))
    if op == "Slice":
        starts, ends = vals[1], vals[2]
        axes = vals[3] if len(vals) > 3 and vals[3] is not None else np.arange(len(starts))
        steps = vals[4] if len(vals) > 4 and vals[4] is not None else np.ones(len(starts), np.int64)
        idx = [slice(None)] * x.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            idx[int(ax)] = slice(int(s), int(e), int(st))
        return x[tuple(idx)]
    if op in ("Add", "Sub", "Mul", "Div"):
        f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
             "Div": (lambda a, b: np.fix(a / b) if a.dtype.kind in "iu" else a / b)}[op]
        return f(vals[0], vals[1]).astype(np.result_type(vals[0], vals[1]))
    if op == "Neg":
        return -x
    if op == "Range":
        return np.arange(vals[0], vals[1], vals[2]).astype(vals[0].dtype)
    if op == "Equal":
        return np.equal(vals[0], vals[1])
    if op == "Where":
        return np.where(vals[0], vals[1], vals[2])
    if op == "Expand":
        return x * np.ones(tuple(int(d) for d in vals[1]), dtype=x.dtype)
    return None


FOLDABLE = {"Constant", "ConstantOfShape", "Identity", "Cast", "Gather", "Unsqueeze", "Squeeze", "Concat",
            "Reshape", "Transpose", "Slice", "Add", "Sub", "Mul", "Div", "Neg", "Range", "Equal", "Where",
            "Expand"}


# ----------------------------------------------------------------------------
# The converter
# ----------------------------------------------------------------------------

class Converter:
    def __init__(self, model, input_kinds=None):
        import onnx
        import onnx.numpy_helper as nh
        self.onnx = model
        g = model.graph
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset < MIN_OPSET:
            raise ConvertError(f"ONNX opset: expected >= {MIN_OPSET}, found {opset} (re-export with opset_version={MIN_OPSET})")
        for o in model.opset_import:
            if o.domain not in ("", "ai.onnx"):
                raise ConvertError(f"ONNX opset domain '{o.domain}' is not supported")
        self.consts = {t.name: nh.to_array(t) for t in g.initializer}
        self.shapes = {}
        self.alias = {}
        self.nodes = []
        self.used_names = set()
        self.inputs = []  # [{"name", "shape", "kind"}]
        for vi in g.input:
            if vi.name in self.consts:
                continue  # an initializer listed as input (old exporters)
            tt = vi.type.tensor_type
            if tt.elem_type != onnx.TensorProto.FLOAT:
                raise ConvertError(f"graph input '{vi.name}': element type: expected float32, found "
                                   f"{onnx.TensorProto.DataType.Name(tt.elem_type)}")
            dims = []
            for i, d in enumerate(tt.shape.dim):
                if d.HasField("dim_value") and d.dim_value > 0:
                    dims.append(int(d.dim_value) if i > 0 else BATCH)
                elif i == 0:
                    dims.append(BATCH)
                else:
                    raise ConvertError(f"graph input '{vi.name}': dimension {i} is symbolic; only the batch dimension may be")
            if not dims:
                raise ConvertError(f"graph input '{vi.name}': rank 0 inputs are not supported")
            self.shapes[vi.name] = tuple(dims)
            self.inputs.append({"name": vi.name, "kind": "data"})
        self.input_kinds = dict(input_kinds or {})
        for n in self.input_kinds:
            if n not in self.shapes:
                raise ConvertError(f"input kind given for '{n}', which is not a graph input "
                                   f"(inputs: {', '.join(self.shapes) or 'none'})")
        self.output_names = [o.name for o in g.output]

    # -- helpers -------------------------------------------------------------
    def name_of(self, v):
        while v in self.alias:
            v = self.alias[v]
        return v

    def is_const(self, v):
        return v == "" or self.name_of(v) in self.consts

    def const(self, v):
        return self.consts[self.name_of(v)]

    def data(self, v, node):
        v = self.name_of(v)
        if v not in self.shapes:
            raise ConvertError(f"{node.op_type} '{node.name}': input '{v}' is neither a computed tensor nor a constant")
        return v

    def unique(self, name):
        # torch names nodes by nested scopes ("/group1/group1.0/conv1/Conv");
        # the module path plus the op type ("group1.0.conv1.Conv") says the same.
        parts = [p for p in name.split("/") if p]
        path = ""
        for p in parts[:-1]:
            path = p if (not path or p.startswith(path + ".")) else f"{path}.{p}"
        base = ".".join(x for x in (path, parts[-1] if parts else "") if x) or "node"
        n, k = base, 1
        while n in self.used_names:
            k += 1
            n = f"{base}_{k}"
        self.used_names.add(n)
        return n

    def emit(self, op, onode, inputs, attrs=None, weights=None):
        name = self.unique(onode.name or f"{onode.op_type}_{len(self.nodes)}")
        out = onode.output[0]
        n = Node(op, name, [self.name_of(i) for i in inputs], [out], attrs, weights)
        self.shapes[out] = infer_shape(n, self.shapes)
        if min(self.shapes[out]) < 1:
            raise ConvertError(f"{onode.op_type} '{onode.name}': output shape {_fmt(self.shapes[out])} is empty")
        self.nodes.append(n)
        return n

    def unsupported(self, onode, why=""):
        raise ConvertError(f"unsupported ONNX op '{onode.op_type}' (node '{onode.name}')" + (f": {why}" if why else ""))

    # -- pass 1: translation --------------------------------------------------
    def translate(self):
        for on in self.onnx.graph.node:
            if on.domain not in ("", "ai.onnx"):
                self.unsupported(on, f"domain '{on.domain}'")
            op = on.op_type
            if op == "Shape":
                v = self.name_of(on.input[0])
                if v in self.consts:
                    self.consts[on.output[0]] = np.array(self.consts[v].shape, np.int64)
                else:
                    shape = np.array(self.shapes[self.data(v, on)], np.int64)
                    start, end = _attr(on, "start", 0), _attr(on, "end", None)
                    self.consts[on.output[0]] = shape[start:end]
                continue
            if op in FOLDABLE and all(self.is_const(i) for i in on.input):
                vals = [self.const(i) if i else None for i in on.input]
                r = _const_eval(on, vals)
                if r is None:
                    self.unsupported(on, "constant folding")
                self.consts[on.output[0]] = np.asarray(r)
                continue
            handler = getattr(self, "op_" + op, None)
            if handler is None:
                self.unsupported(on)
            handler(on)
        for o in self.output_names:
            v = self.name_of(o)
            if v not in self.shapes or v in self.consts:
                raise ConvertError(f"graph output '{o}' is a constant or is not computed")

    def _weight(self, on, idx, what):
        if idx >= len(on.input) or on.input[idx] == "":
            return None
        if not self.is_const(on.input[idx]):
            raise ConvertError(f"{on.op_type} '{on.name}': {what} must be a constant (initializer)")
        return np.asarray(self.const(on.input[idx]), dtype=np.float32)

    def _ints(self, on, name, default):
        v = _attr(on, name, None)
        return [int(i) for i in v] if v is not None else list(default)

    def _auto_pad(self, on):
        ap = _attr(on, "auto_pad", b"NOTSET")
        ap = ap.decode() if isinstance(ap, bytes) else ap
        if ap not in ("NOTSET", "VALID"):
            self.unsupported(on, f"auto_pad {ap} (export with explicit pads)")
        return ap

    def op_Conv(self, on):
        x = self.data(on.input[0], on)
        w = self._weight(on, 1, "weight")
        b = self._weight(on, 2, "bias")
        if w is None or w.ndim != 4:
            self.unsupported(on, "only 2-D convolutions (4-D weights) are supported")
        self._auto_pad(on)
        pads = self._ints(on, "pads", [0, 0, 0, 0])
        attrs = {
            "in_channels": int(self.shapes[x][1]), "out_channels": int(w.shape[0]),
            "kernel": [int(w.shape[2]), int(w.shape[3])],
            "stride": self._ints(on, "strides", [1, 1]), "dilation": self._ints(on, "dilations", [1, 1]),
            "pad": [pads[0], pads[1], pads[2], pads[3]], "groups": int(_attr(on, "group", 1)),
            "activation": dict(NO_ACTIVATION),
        }
        ks = _attr(on, "kernel_shape", None)
        if ks is not None and list(ks) != attrs["kernel"]:
            self.unsupported(on, f"kernel_shape {list(ks)} differs from the weight's {attrs['kernel']}")
        weights = {"weight": w}
        if b is not None:
            weights["bias"] = b.reshape(-1)
        self.emit("conv2d", on, [x], attrs, weights)

    def op_ConvTranspose(self, on):
        x = self.data(on.input[0], on)
        w = self._weight(on, 1, "weight")
        b = self._weight(on, 2, "bias")
        if w is None or w.ndim != 4:
            self.unsupported(on, "only 2-D transposed convolutions are supported")
        self._auto_pad(on)
        if _attr(on, "output_shape", None) is not None:
            self.unsupported(on, "output_shape attribute (export with explicit pads)")
        pads = self._ints(on, "pads", [0, 0, 0, 0])
        if pads[0] != pads[2] or pads[1] != pads[3]:
            self.unsupported(on, f"asymmetric pads {pads}")
        groups = int(_attr(on, "group", 1))
        attrs = {
            "in_channels": int(w.shape[0]), "out_channels": int(w.shape[1]) * groups,
            "kernel": [int(w.shape[2]), int(w.shape[3])],
            "stride": self._ints(on, "strides", [1, 1]), "padding": [pads[0], pads[1]],
            "output_padding": self._ints(on, "output_padding", [0, 0]),
            "dilation": self._ints(on, "dilations", [1, 1]), "groups": groups,
            "activation": dict(NO_ACTIVATION),
        }
        weights = {"weight": w}
        if b is not None:
            weights["bias"] = b.reshape(-1)
        self.emit("conv_transpose2d", on, [x], attrs, weights)

    def _dense(self, on, x, w_out_in, bias):
        attrs = {"in_features": int(w_out_in.shape[1]), "out_features": int(w_out_in.shape[0]),
                 "activation": dict(NO_ACTIVATION)}
        weights = {"weight": np.ascontiguousarray(w_out_in, dtype=np.float32)}
        if bias is not None:
            weights["bias"] = np.ascontiguousarray(bias, dtype=np.float32)
        return self.emit("dense", on, [x], attrs, weights)

    def op_Gemm(self, on):
        x = self.data(on.input[0], on)
        if _attr(on, "transA", 0):
            self.unsupported(on, "transA=1")
        b = self._weight(on, 1, "B")
        if b is None or b.ndim != 2:
            self.unsupported(on, "B must be a 2-D constant")
        w = b if _attr(on, "transB", 0) else b.T
        w = w * np.float32(_attr(on, "alpha", 1.0))
        c = self._weight(on, 2, "C")
        bias = None
        if c is not None:
            try:
                bias = np.broadcast_to(c, (w.shape[0],)) if c.ndim <= 1 else np.broadcast_to(c, (1, w.shape[0]))[0]
            except ValueError:
                self.unsupported(on, f"C of shape {list(c.shape)} does not broadcast to [{w.shape[0]}]")
            bias = bias * np.float32(_attr(on, "beta", 1.0))
        self._dense(on, x, w, bias)

    def op_MatMul(self, on):
        x = self.data(on.input[0], on)
        b = self._weight(on, 1, "B")
        if b is None or b.ndim != 2 or len(self.shapes[x]) != 2:
            self.unsupported(on, "only (N, K) x constant (K, M) products are supported")
        self._dense(on, x, b.T, None)

    def op_BatchNormalization(self, on):
        x = self.data(on.input[0], on)
        if _attr(on, "training_mode", 0):
            self.unsupported(on, "training_mode=1 (export the model in eval mode)")
        if len(on.output) > 1 and any(o for o in on.output[1:]):
            self.unsupported(on, "running statistics outputs (training mode)")
        gamma, beta, mean, var = (self._weight(on, i, n) for i, n in
                                  ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        eps = np.float32(_attr(on, "epsilon", 1e-5))
        # Same arithmetic as PyTorch's eval-mode batch norm, in float64, then rounded.
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + np.float64(eps))
        shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
        self._affine(on, x, scale.astype(np.float32), shift.astype(np.float32))

    def _affine(self, on, x, scale, shift):
        c = self.shapes[x][1] if len(self.shapes[x]) >= 2 else None
        if c is None:
            self.unsupported(on, "per-channel affine on a rank-1 tensor")
        attrs = {"channels": int(c), "activation": dict(NO_ACTIVATION)}
        self.emit("batch_norm", on, [x], attrs, {"scale": np.broadcast_to(scale, (c,)).astype(np.float32),
                                                 "shift": np.broadcast_to(shift, (c,)).astype(np.float32)})

    def _per_channel(self, on, x, c):
        """A constant that broadcasts per channel of data tensor x, as (C,), or None."""
        shape = self.shapes[x]
        r = len(shape)
        if c.ndim > r:
            return None
        full = (1,) * (r - c.ndim) + tuple(c.shape)
        if any(d != 1 for i, d in enumerate(full) if i != 1) or (r >= 2 and full[1] not in (1, shape[1])):
            return None
        return np.broadcast_to(c.reshape(-1), (shape[1],)).astype(np.float32) if c.size > 1 else \
            np.full((shape[1],), c.reshape(-1)[0] if c.size else 0, np.float32)

    def _elementwise(self, on):
        op = on.op_type
        a, b = on.input[0], on.input[1]
        if not self.is_const(a) and not self.is_const(b):
            if op != "Add":
                self.unsupported(on, "both operands are computed tensors (only Add is supported)")
            xa, xb = self.data(a, on), self.data(b, on)
            self.emit("add", on, [xa, xb], {"activation": dict(NO_ACTIVATION)})
            return
        const_first = self.is_const(a)
        x = self.data(b if const_first else a, on)
        c = self.const(a if const_first else b)
        if c.dtype.kind != "f":
            self.unsupported(on, "non-float constant operand")
        v = self._per_channel(on, x, np.asarray(c, np.float32))
        if v is None:
            self.unsupported(on, f"constant operand of shape {list(c.shape)} is not per-channel for input {_fmt(self.shapes[x])}")
        one = np.ones_like(v)
        if op == "Add":
            self._affine(on, x, one, v)
        elif op == "Mul":
            self._affine(on, x, v, np.zeros_like(v))
        elif op == "Sub":
            self._affine(on, x, -one, v) if const_first else self._affine(on, x, one, -v)
        elif op == "Div":
            if const_first:
                self.unsupported(on, "constant divided by a tensor")
            self._affine(on, x, (np.float64(1) / v.astype(np.float64)).astype(np.float32), np.zeros_like(v))

    op_Add = op_Sub = op_Mul = op_Div = _elementwise

    def op_Relu(self, on):
        self.emit("relu", on, [self.data(on.input[0], on)])

    def op_LeakyRelu(self, on):
        self.emit("leaky_relu", on, [self.data(on.input[0], on)], {"negative_slope": float(_attr(on, "alpha", 0.01))})

    def _pool(self, on, native):
        x = self.data(on.input[0], on)
        self._auto_pad(on)
        if len(on.output) > 1 and on.output[1]:
            self.unsupported(on, "the indices output")
        if _attr(on, "storage_order", 0):
            self.unsupported(on, "storage_order=1")
        k = self._ints(on, "kernel_shape", [])
        if len(k) != 2:
            self.unsupported(on, f"kernel_shape {k}: only 2-D pooling is supported")
        pads = self._ints(on, "pads", [0, 0, 0, 0])
        attrs = {"kernel": k, "stride": self._ints(on, "strides", [1, 1]),
                 "pad": [pads[0], pads[1], pads[2], pads[3]], "ceil_mode": int(_attr(on, "ceil_mode", 0))}
        if native == "max_pool2d":
            attrs["dilation"] = self._ints(on, "dilations", [1, 1])
        else:
            if self._ints(on, "dilations", [1, 1]) != [1, 1]:
                self.unsupported(on, "dilated average pooling")
            attrs["count_include_pad"] = int(_attr(on, "count_include_pad", 0))
        self.emit(native, on, [x], attrs)

    def op_MaxPool(self, on):
        self._pool(on, "max_pool2d")

    def op_AveragePool(self, on):
        self._pool(on, "avg_pool2d")

    def op_GlobalAveragePool(self, on):
        self.emit("global_avg_pool", on, [self.data(on.input[0], on)])

    def op_Concat(self, on):
        xs = []
        for i in on.input:
            if self.is_const(i):
                self.unsupported(on, "a constant operand of a data Concat")
            xs.append(self.data(i, on))
        rank = len(self.shapes[xs[0]])
        axis = int(_attr(on, "axis")) % rank
        if axis == 0:
            self.unsupported(on, "concatenation along the batch axis")
        if len(xs) == 1:
            self.alias[on.output[0]] = xs[0]
            return
        self.emit("concat", on, xs, {"axis": axis})

    def op_Pad(self, on):
        x = self.data(on.input[0], on)
        mode = _attr(on, "mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            self.unsupported(on, f"mode '{mode}'")
        if len(on.input) > 3 and on.input[3]:
            self.unsupported(on, "the axes input")
        if not self.is_const(on.input[1]):
            self.unsupported(on, "pads computed at run time")
        pads = [int(p) for p in self.const(on.input[1]).reshape(-1)]
        if len(on.input) > 2 and on.input[2]:
            if not self.is_const(on.input[2]) or float(np.asarray(self.const(on.input[2])).reshape(-1)[0]) != 0.0:
                self.unsupported(on, "non-zero constant value")
        shape = self.shapes[x]
        if len(shape) != 4 or len(pads) != 8:
            self.unsupported(on, f"pads {pads} on a rank-{len(shape)} tensor (only NCHW spatial padding)")
        if any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            self.unsupported(on, f"pads {pads}: only non-negative padding of H and W")
        tlbr = [pads[2], pads[3], pads[6], pads[7]]
        if not any(tlbr):
            self.alias[on.output[0]] = x
            return
        self.emit("pad", on, [x], {"pads": tlbr, "value": 0.0})

    def _to_2d(self, on, x, out_shape):
        """Reshape-like ops: a flatten that keeps the batch, or a no-op."""
        shape = self.shapes[x]
        if tuple(out_shape) == tuple(shape):
            self.alias[on.output[0]] = x
            return
        if len(out_shape) == 2 and out_shape[0] == BATCH and out_shape[1] == int(np.prod(shape[1:], dtype=np.int64)):
            if len(shape) == 2:
                self.alias[on.output[0]] = x
            else:
                self.emit("flatten", on, [x], {"axis": 1})
            return
        self.unsupported(on, f"reshape {_fmt(shape)} -> {_fmt(out_shape)}: only flattening to (N, features) is "
                             "supported (export with a dynamic batch axis so the batch size is not baked into shapes)")

    def op_Flatten(self, on):
        x = self.data(on.input[0], on)
        shape = self.shapes[x]
        axis = int(_attr(on, "axis", 1))
        if axis < 0:
            axis += len(shape)
        if axis != 1:
            self.unsupported(on, f"axis {axis} (only axis 1 keeps the batch)")
        self._to_2d(on, x, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))

    def op_Reshape(self, on):
        x = self.data(on.input[0], on)
        if not self.is_const(on.input[1]):
            self.unsupported(on, "target shape computed at run time")
        target = [int(d) for d in self.const(on.input[1]).reshape(-1)]
        shape = self.shapes[x]
        target = [shape[i] if d == 0 and not _attr(on, "allowzero", 0) and i < len(shape) else d
                  for i, d in enumerate(target)]
        total = int(np.prod(shape, dtype=object))
        if target.count(-1) > 1:
            self.unsupported(on, f"target shape {target} has more than one -1")
        if -1 in target:
            rest = int(np.prod([d for d in target if d != -1], dtype=object))
            if rest == 0 or total % rest:
                self.unsupported(on, f"target shape {target} does not fit {_fmt(shape)}")
            target[target.index(-1)] = total // rest
        if int(np.prod(target, dtype=object)) != total:
            self.unsupported(on, f"target shape {target} does not fit {_fmt(shape)}")
        self._to_2d(on, x, tuple(target))

    def op_Squeeze(self, on):
        x = self.data(on.input[0], on)
        shape = self.shapes[x]
        if len(on.input) > 1 and on.input[1]:
            axes = [int(a) % len(shape) for a in self.const(on.input[1]).reshape(-1)]
        else:
            axes = [i for i, d in enumerate(shape) if d == 1]
        if 0 in axes or any(shape[a] != 1 for a in axes):
            self.unsupported(on, f"squeezing axes {axes} of {_fmt(shape)}")
        self._to_2d(on, x, tuple(d for i, d in enumerate(shape) if i not in axes))

    def op_Softmax(self, on):
        x = self.data(on.input[0], on)
        axis = int(_attr(on, "axis", -1)) % len(self.shapes[x])
        if axis == 0:
            self.unsupported(on, "softmax across the batch axis")
        self.emit("softmax", on, [x], {"axis": axis})

    def op_Identity(self, on):
        self.alias[on.output[0]] = self.data(on.input[0], on)

    def op_Dropout(self, on):
        if len(on.output) > 1 and on.output[1]:
            self.unsupported(on, "the mask output (training mode)")
        if len(on.input) > 2 and on.input[2]:
            if not self.is_const(on.input[2]) or bool(np.asarray(self.const(on.input[2])).reshape(-1)[0]):
                self.unsupported(on, "training_mode=True")
        self.alias[on.output[0]] = self.data(on.input[0], on)

    # -- graph utilities ------------------------------------------------------
    def consumers(self):
        cons = {}
        for n in self.nodes:
            for i in n.inputs:
                cons.setdefault(i, []).append(n)
        return cons

    def graph_outputs(self):
        return {self.name_of(o) for o in self.output_names}

    def sole_consumer(self, value, cons):
        """The one node reading `value`, if exactly one does and it is not a graph output."""
        users = cons.get(value, [])
        if len(users) != 1 or value in self.graph_outputs():
            return None
        return users[0]

    def replace_value(self, old, new):
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        for k, v in list(self.alias.items()):
            if v == old:
                self.alias[k] = new
        self.alias[old] = new

    def prune(self):
        """Drops nodes whose outputs nobody reads (after folding)."""
        live = set(self.graph_outputs())
        keep = []
        for n in reversed(self.nodes):
            if any(o in live for o in n.outputs):
                keep.append(n)
                live.update(n.inputs)
        self.nodes = keep[::-1]

    # -- pass 2: pad folding --------------------------------------------------
    def fold_pads(self):
        cons = self.consumers()
        for p in list(self.nodes):
            if p.op != "pad":
                continue
            c = self.sole_consumer(p.outputs[0], cons)
            if c is None:
                continue
            t, l, b, r = p.attrs["pads"]
            if c.op == "conv2d":
                c.attrs["pad"] = [c.attrs["pad"][0] + t, c.attrs["pad"][1] + l, c.attrs["pad"][2] + b, c.attrs["pad"][3] + r]
            elif c.op == "avg_pool2d" and not any(c.attrs["pad"]) and not c.attrs["ceil_mode"]:
                # Zeros from an explicit pad are counted by the average, as with count_include_pad.
                c.attrs["pad"] = [t, l, b, r]
                c.attrs["count_include_pad"] = 1
            else:
                continue
            c.inputs = [p.inputs[0] if i == p.outputs[0] else i for i in c.inputs]
            self.nodes.remove(p)
            cons = self.consumers()

    # -- pass 3: batch-norm folding ------------------------------------------
    def fold_affines(self):
        changed = True
        while changed:
            changed = False
            cons = self.consumers()
            producer = {o: n for n in self.nodes for o in n.outputs}
            for bn in list(self.nodes):
                if bn.op != "batch_norm" or bn.attrs["activation"]["kind"] != "none":
                    continue
                src = producer.get(bn.inputs[0])
                if src is None or self.sole_consumer(src.outputs[0], cons) is not bn:
                    continue
                s, t = bn.weights["scale"].astype(np.float64), bn.weights["shift"].astype(np.float64)
                if src.op == "batch_norm" and src.attrs["activation"]["kind"] == "none":
                    s0, t0 = src.weights["scale"].astype(np.float64), src.weights["shift"].astype(np.float64)
                    src.weights["scale"] = (s0 * s).astype(np.float32)
                    src.weights["shift"] = (t0 * s + t).astype(np.float32)
                elif src.op in ("conv2d", "dense") and src.attrs["activation"]["kind"] == "none":
                    w = src.weights["weight"].astype(np.float64)
                    shape = (-1,) + (1,) * (w.ndim - 1)
                    src.weights["weight"] = (w * s.reshape(shape)).astype(np.float32)
                    b0 = src.weights.get("bias")
                    b0 = b0.astype(np.float64) if b0 is not None else np.zeros_like(s)
                    src.weights["bias"] = (b0 * s + t).astype(np.float32)
                else:
                    continue
                self.nodes.remove(bn)
                self.replace_value(bn.outputs[0], src.outputs[0])
                self._rename_output(src, bn.outputs[0])
                changed = True
                break

    def _rename_output(self, node, name):
        """Keeps graph output names stable when a fused node takes over."""
        if name in set(self.output_names) | self.graph_outputs():
            old = node.outputs[0]
            node.outputs[0] = name
            self.shapes[name] = self.shapes[old]
            for n in self.nodes:
                n.inputs = [name if i == old else i for i in n.inputs]
            self.alias.pop(name, None)
            for k, v in list(self.alias.items()):
                if v == old:
                    self.alias[k] = name

    # -- pass 4: salt recognition --------------------------------------------
    def classify_inputs(self):
        cons = self.consumers()
        for inp in self.inputs:
            name = inp["name"]
            shape = self.shapes[name]
            users = cons.get(name, [])
            kind = self.input_kinds.get(name)
            if kind is None:
                if shape[1:] == (1, 1, 1) and users and all(u.op == "conv_transpose2d" for u in users):
                    kind = "salt_int"
                elif len(shape) == 2 and users and all(u.op == "concat" for u in users):
                    kind = "salt_vector"
                else:
                    kind = "data"
            if kind not in ("data", "salt_int", "salt_vector"):
                raise ConvertError(f"input '{name}': kind: expected data, salt_int or salt_vector, found {kind!r}")
            inp["kind"] = kind

    def recognise_salt(self):
        cons = self.consumers()
        salts = [i for i in self.inputs if i["kind"] != "data"]
        if len(salts) > 1:
            raise ConvertError(f"more than one salt input: {', '.join(i['name'] for i in salts)}")
        self.salt_node = None
        if not salts:
            return
        s = salts[0]
        name = s["name"]
        users = cons.get(name, [])
        if len(users) != 1:
            raise ConvertError(f"salt input '{name}': expected exactly one consumer, found {len(users)}")
        if s["kind"] == "salt_int":
            if self.shapes[name][1:] != (1, 1, 1):
                raise ConvertError(f"salt input '{name}': shape: expected [N, 1, 1, 1], found {_fmt(self.shapes[name])}")
            ct = users[0]
            a = ct.attrs
            cat = self.sole_consumer(ct.outputs[0], cons)
            if (ct.op != "conv_transpose2d" or cat is None or cat.op != "concat" or len(cat.inputs) != 2
                    or cat.attrs["axis"] != 1 or a["groups"] != 1 or a["padding"] != [0, 0]
                    or a["output_padding"] != [0, 0] or a["dilation"] != [1, 1] or a["activation"]["kind"] != "none"):
                raise ConvertError(f"salt input '{name}': expected ConvTranspose (no padding, dilation or groups) "
                                   f"-> Concat on channels, found {ct.op} '{ct.name}'")
            salt_first = cat.inputs[0] == ct.outputs[0]
            x = cat.inputs[1] if salt_first else cat.inputs[0]
            maps = a["out_channels"]
            node = Node("cnn_salt_concat", cat.name, [x, name], cat.outputs,
                        {"maps": maps, "size": list(a["kernel"]), "salt_first": salt_first}, ct.weights)
            if "bias" not in node.weights:
                node.weights["bias"] = np.zeros((maps,), np.float32)
            self.nodes[self.nodes.index(cat)] = node
            self.nodes.remove(ct)
            self.salt_node = node
        else:
            cat = users[0]
            if cat.op != "concat" or len(cat.inputs) != 2 or len(self.shapes[name]) != 2 or cat.attrs["axis"] != 1:
                raise ConvertError(f"salt vector input '{name}': expected Concat(x, salt) on axis 1, found {cat.op} '{cat.name}'")
            salt_first = cat.inputs[0] == name
            x = cat.inputs[1] if salt_first else cat.inputs[0]
            node = Node("fc_salt_concat", cat.name, [x, name], cat.outputs,
                        {"classes": int(self.shapes[name][1]), "salt_first": salt_first})
            self.nodes[self.nodes.index(cat)] = node
            self.salt_node = node

    # -- pass 5: activation fusion --------------------------------------------
    def fuse_activations(self):
        cons = self.consumers()
        producer = {o: n for n in self.nodes for o in n.outputs}
        for act in list(self.nodes):
            if act.op not in ("relu", "leaky_relu"):
                continue
            src = producer.get(act.inputs[0])
            if (src is None or src.op not in ("conv2d", "dense", "batch_norm", "add")
                    or src.attrs["activation"]["kind"] != "none" or self.sole_consumer(src.outputs[0], cons) is not act):
                continue
            src.attrs["activation"] = _act("relu") if act.op == "relu" else _act("leaky_relu", act.attrs["negative_slope"])
            self.nodes.remove(act)
            self.replace_value(act.outputs[0], src.outputs[0])
            self._rename_output(src, act.outputs[0])
            cons = self.consumers()
            producer = {o: n for n in self.nodes for o in n.outputs}

    # -- naming and output ----------------------------------------------------
    def finalize_names(self):
        """Each node's output tensor is named after the node (graph inputs and
        outputs keep their names)."""
        outs = set(self.graph_outputs())
        rename = {}
        for n in self.nodes:
            o = n.outputs[0]
            if o in outs:
                continue
            rename[o] = n.name
        taken = {i["name"] for i in self.inputs} | outs
        for old, new in list(rename.items()):
            if new in taken:
                new = new + ".out"
            taken.add(new)
            rename[old] = new
        for n in self.nodes:
            n.inputs = [rename.get(i, i) for i in n.inputs]
            n.outputs = [rename.get(o, o) for o in n.outputs]
        for o_old, o_new in rename.items():
            self.shapes[o_new] = self.shapes[o_old]

    def run(self):
        self.translate()
        self.prune()
        self.fold_pads()
        self.fold_affines()
        self.classify_inputs()
        self.recognise_salt()
        self.fuse_activations()
        self.prune()
        # Inputs nobody reads (a standard model's unused salt) are dropped.
        cons = self.consumers()
        self.inputs = [i for i in self.inputs if cons.get(i["name"])]
        self.finalize_names()
        return self


def _spec_shape(shape):
    return ["N" if i == 0 else int(d) for i, d in enumerate(shape)]


def build_header(conv, metadata=None, salt_layer=None):
    """The JSON header (without tensors/hashes) and the ordered weights."""
    weights = {}
    nodes = []
    for n in conv.nodes:
        refs = {}
        for role, arr in n.weights.items():
            tname = f"{n.name}.{role}"
            weights[tname] = np.ascontiguousarray(arr, dtype=np.float32)
            refs[role] = tname
        nodes.append({"op": n.op, "name": n.name, "inputs": n.inputs, "outputs": n.outputs,
                      "attrs": n.attrs, "weights": refs})
    outputs = []
    for o in conv.output_names:
        v = conv.name_of(o)
        outputs.append({"name": v, "shape": _spec_shape(conv.shapes[v])})
    classes = int(conv.shapes[conv.name_of(conv.output_names[0])][-1])
    salt_inputs = [i for i in conv.inputs if i["kind"] != "data"]
    if salt_inputs:
        s = salt_inputs[0]
        node = conv.salt_node
        salt = {"kind": "cnn" if s["kind"] == "salt_int" else "fc", "classes": classes,
                "layer": salt_layer, "input": s["name"], "node": node.name}
        if node.op == "cnn_salt_concat":
            salt["maps"] = node.attrs["maps"]
            salt["size"] = node.attrs["size"]
        else:
            if node.attrs["classes"] != classes:
                raise ConvertError(f"salt vector '{s['name']}': length {node.attrs['classes']} differs from the "
                                   f"number of classes {classes}")
    else:
        salt = {"kind": "none", "classes": classes, "layer": -1 if salt_layer is None else salt_layer}
    inputs = [{"name": i["name"], "shape": _spec_shape(conv.shapes[i["name"]]), "kind": i["kind"]} for i in conv.inputs]
    meta = {"producer": PRODUCER, "source": "onnx", "onnx_producer": f"{conv.onnx.producer_name} {conv.onnx.producer_version}".strip()}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    header = {"metadata": meta, "inputs": inputs, "outputs": outputs, "salt": salt, "nodes": nodes}
    return header, weights


def convert(onnx_model, input_kinds=None, metadata=None, salt_layer=None):
    """ONNX ModelProto -> (header dict, ordered weights dict). Raises ConvertError."""
    conv = Converter(onnx_model, input_kinds).run()
    return build_header(conv, metadata, salt_layer)


def write_converted(path, header, weights, test_inputs=None, test_outputs=None, test_producer=None):
    return salted_format.write_model(path, header, weights, test_inputs, test_outputs, test_producer)


def convert_file(onnx_path, out_path, input_kinds=None, metadata=None, salt_layer=None, test_vector_dir=None):
    """The command-line path: no PyTorch model here, so the embedded test
    vector comes from .npy files (`test_vector_dir`/<input or output name>.npy,
    e.g. written by the exporting script) or, failing that, from the numpy
    reference interpreter (recorded as its producer, so nobody mistakes it for
    a PyTorch result)."""
    import onnx
    model = onnx.load(str(onnx_path))
    header, weights = convert(model, input_kinds, metadata, salt_layer)
    tin, tout, producer = None, None, None
    if test_vector_dir:
        d = pathlib.Path(test_vector_dir)
        tin = {i["name"]: np.load(d / f"{i['name']}.npy").astype(np.float32) for i in header["inputs"]}
        tout = {o["name"]: np.load(d / f"{o['name']}.npy").astype(np.float32) for o in header["outputs"]}
        producer = (d / "producer.txt").read_text().strip() if (d / "producer.txt").exists() else "external"
    else:
        import numpy_runtime
        rng = np.random.default_rng(0)
        tin = {}
        for i in header["inputs"]:
            shape = [2] + i["shape"][1:]
            if i["kind"] == "salt_int":
                tin[i["name"]] = rng.integers(0, header["salt"]["classes"], size=shape).astype(np.float32)
            else:
                tin[i["name"]] = rng.random(shape, dtype=np.float32)
        tout = numpy_runtime.run_graph(header, weights, tin)
        producer = "numpy_runtime (no PyTorch model given)"
    return write_converted(out_path, header, weights, tin, tout, producer)


# ----------------------------------------------------------------------------
# PyTorch entry point
# ----------------------------------------------------------------------------

def export_module(module, example_inputs, path, input_names=None, input_kinds=None, output_name="logits",
                  metadata=None, salt_layer=None, opset=13, check=True):
    """Exports a torch nn.Module through ONNX, converts it and writes `path`.

    example_inputs: tuple of tensors (x,) or (x, salt); they and the module's
        outputs on them become the embedded test vector.
    input_names: defaults to x, salt; input_kinds: name -> data|salt_int|
        salt_vector (default: recognised from the graph).
    salt_layer: the architecture's salted layer index (default: module.salt_layer).
    check: run the converted graph with the numpy interpreter and require
        agreement with PyTorch (1e-4 * max(1, max|torch|)) before writing.
    torch.onnx.export drops inputs the graph never reads (a standard model
    called with a salt); such inputs are left out of the file and its test
    vector, with the rest of the conversion unchanged.
    Returns the header written.
    """
    import onnx
    import torch

    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    names = list(input_names or (["x", "salt"] + [f"input{i}" for i in range(2, len(example_inputs))])[:len(example_inputs)])
    if len(names) != len(example_inputs):
        raise ConvertError(f"input_names: expected {len(example_inputs)} names, found {len(names)}")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            ref = module(*example_inputs)
        if not isinstance(ref, torch.Tensor):
            raise ConvertError("export_module: the module must return one tensor (the logits)")
        buf = io.BytesIO()
        dyn = {n: {0: "N"} for n in names + [output_name]}
        # PRESERVE (with the module in eval mode) keeps BatchNormalization
        # nodes, so folding is done here, in one documented place.
        with warnings.catch_warnings():
            # Both are about training-mode graphs or unfolded shape arithmetic,
            # neither of which matters here: the module is in eval mode and the
            # converter folds the shape arithmetic itself.
            warnings.filterwarnings("ignore", message="It is recommended that constant folding be turned off")
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            warnings.filterwarnings("ignore", message="The shape inference of prim::Constant")
            torch.onnx.export(module, example_inputs, buf, input_names=names, output_names=[output_name],
                              dynamic_axes=dyn, opset_version=opset, do_constant_folding=True,
                              training=torch.onnx.TrainingMode.PRESERVE)
    finally:
        module.train(was_training)
    model = onnx.load_from_string(buf.getvalue())
    present = {i.name for i in model.graph.input}
    kinds = {k: v for k, v in (input_kinds or {}).items() if k in present}
    if salt_layer is None:
        salt_layer = getattr(module, "salt_layer", None)
    meta = {"source": f"pytorch {torch.__version__} via onnx opset {opset}"}
    try:
        import reference_models
        meta["architecture"] = reference_models.architecture_name(module)
    except ImportError:
        meta["architecture"] = type(module).__name__
    meta.update(metadata or {})
    header, weights = convert(model, kinds, meta, salt_layer)
    feed = dict(zip(names, (t.detach().cpu().numpy().astype(np.float32) for t in example_inputs)))
    tin = {i["name"]: feed[i["name"]] for i in header["inputs"]}
    tout = {header["outputs"][0]["name"]: ref.detach().cpu().numpy().astype(np.float32)}
    if check:
        import numpy_runtime
        got = numpy_runtime.run_graph(header, weights, tin)
        for name, want in tout.items():
            tol = 1e-4 * max(1.0, float(np.abs(want).max()))
            diff = float(np.abs(got[name] - want).max())
            if not diff <= tol:
                raise ConvertError(f"converted graph disagrees with PyTorch on '{name}': max|diff| {diff:.3g} > {tol:.3g}")
    return write_converted(path, header, weights, tin, tout, f"pytorch {torch.__version__}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert an ONNX model (opset 13+) to a salted model file.")
    ap.add_argument("onnx", help="input .onnx file")
    ap.add_argument("-o", "--output", required=True, help="output .salted file")
    ap.add_argument("--input-kind", action="append", default=[], metavar="NAME=KIND",
                    help="declare an input's kind (data, salt_int, salt_vector); default: recognised from the graph")
    ap.add_argument("--salt-layer", type=int, default=None, help="the architecture's salted layer index, recorded in the file")
    ap.add_argument("--test-vector", metavar="DIR",
                    help="directory of <name>.npy for every graph input and output (e.g. PyTorch's), embedded as the test vector")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="extra metadata")
    args = ap.parse_args(argv)
    try:
        kinds = dict(kv.split("=", 1) for kv in args.input_kind)
        meta = dict(kv.split("=", 1) for kv in args.meta)
    except ValueError:
        print("error: --input-kind and --meta take NAME=VALUE", file=sys.stderr)
        return 2
    try:
        header = convert_file(args.onnx, args.output, kinds, meta, args.salt_layer, args.test_vector)
    except ConvertError as e:
        print(f"error: {args.onnx}: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(header['nodes'])} nodes, {len(header['tensors'])} weight tensors, "
          f"salt {header['salt']['kind']}, model id {header['weights_sha256'][:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
