"""Parity cases for pooling, batch norm (and its folding), add, concat, pad,
flatten, softmax and the salt layers. Case names start with the op's kind
(`maxpool_`, `bn_`, `cnnsalt_`, ...); tests/test_parity_ops.cpp dispatches
on that prefix.

Pooling configurations PyTorch rejects are written too, as `error 1` cases
with only the input's shape: salted must reject exactly what PyTorch rejects.
"""
import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from casewriter import Case


class Writer:
    def __init__(self, out):
        self.out = out
        self.counts = {}

    def case(self, kind):
        k = self.counts.get(kind, 0)
        self.counts[kind] = k + 1
        return Case(self.out, f"{kind}_{k:03d}")

    def total(self):
        return sum(self.counts.values())


def random_bn(c, eps=1e-5, affine=True):
    bn = nn.BatchNorm2d(c, eps=eps, affine=affine).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c))
        bn.running_var.copy_(torch.rand(c) * 2 + 0.1)
        if affine:
            bn.weight.copy_(torch.rand(c) + 0.5)
            bn.bias.copy_(torch.randn(c))
    return bn


def save_bn(c, bn):
    c.param("eps", float(bn.eps))
    if bn.affine:
        c.array("gamma", bn.weight).array("beta", bn.bias)
    c.array("running_mean", bn.running_mean).array("running_var", bn.running_var)


def gen_pools(w):
    shapes = [(2, 3, 7, 9), (1, 5, 8, 8), (3, 2, 5, 11), (1, 1, 2, 3)]
    kernels = [(2, 2), (3, 3), (2, 3)]
    strides = [None, (1, 1), (1, 2)]  # None = the kernel (2 or 3)
    pads = [(0, 0), (1, 0), (1, 1), (2, 1)]
    i = 0
    for k, s, p, ceil in itertools.product(kernels, strides, pads, (False, True)):
        for dil in ((1, 1), (2, 2)):
            shape = shapes[i % len(shapes)]
            i += 1
            x = torch.randn(*shape)
            c = w.case("maxpool")
            c.param("kernel", *k).param("stride", *(s or (0, 0))).param("pad", *p).param("dilation", *dil)
            c.param("ceil", int(ceil))
            try:
                y = F.max_pool2d(x, k, s, p, dil, ceil_mode=ceil)
                c.param("error", 0).array("input", x).array("output", y)
            except RuntimeError:
                c.param("error", 1).param("input_shape", *shape)
            c.close()
        for cip in (False, True):
            shape = shapes[i % len(shapes)]
            i += 1
            x = torch.randn(*shape)
            c = w.case("avgpool")
            c.param("kernel", *k).param("stride", *(s or (0, 0))).param("pad", *p)
            c.param("ceil", int(ceil)).param("count_include_pad", int(cip))
            try:
                y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
                c.param("error", 0).array("input", x).array("output", y)
            except RuntimeError:
                c.param("error", 1).param("input_shape", *shape)
            c.close()
    # The reference architectures' pools: LeNet max 2, sensor net avg (3, 3).
    for shape, k, is_max in (((1, 32, 24, 24), (2, 2), True), ((2, 100, 3, 9), (3, 3), False)):
        x = torch.randn(*shape)
        c = w.case("maxpool" if is_max else "avgpool")
        c.param("kernel", *k).param("stride", 0, 0).param("pad", 0, 0).param("ceil", 0).param("error", 0)
        if is_max:
            c.param("dilation", 1, 1).array("output", F.max_pool2d(x, k))
        else:
            c.param("count_include_pad", 1).array("output", F.avg_pool2d(x, k))
        c.array("input", x).close()
    for shape in ((1, 1, 1, 1), (2, 64, 8, 8), (3, 17, 5, 7)):
        x = torch.randn(*shape)
        w.case("gap").array("input", x).array("output", nn.AdaptiveAvgPool2d(1)(x)).close()


def gen_batch_norm(w):
    acts = [(0, 0.0), (1, 0.0), (2, 0.01), (2, 0.2)]
    for n, (shape, affine, eps) in enumerate([((2, 5, 4, 3), True, 1e-5), ((3, 17), True, 1e-5),
                                               ((1, 16, 8, 8), False, 1e-5), ((2, 33, 3, 5), True, 1e-3),
                                               ((4, 7), False, 1e-3)]):
        for act, slope in ((0, 0.0), acts[1 + n % 3]):
            bn = random_bn(shape[1], eps, affine)
            x = torch.randn(*shape) * 2
            with torch.no_grad():
                y = bn(x.reshape(shape[0], shape[1], -1, 1)).reshape(shape)
                if act == 1:
                    y = F.relu(y)
                elif act == 2:
                    y = F.leaky_relu(y, slope)
            c = w.case("bn")
            c.param("act", act).param("slope", slope).param("affine", int(affine))
            save_bn(c, bn)
            c.array("input", x).array("output", y).close()


def gen_folding(w):
    # conv2d + BN: folded weights vs fuse_conv_bn_eval, and the conv-then-BN output.
    for cin, cout, k, stride, pad, groups, bias in ((3, 5, 3, 1, 1, 1, True), (4, 6, 3, 2, 0, 2, False),
                                                   (6, 6, 1, 1, 0, 6, True), (1, 8, (1, 5), 1, 0, 1, True)):
        conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias).eval()
        bn = random_bn(cout)
        x = torch.randn(2, cin, 7, 9)
        with torch.no_grad():
            y = bn(conv(x))
            fused = fuse_conv_bn_eval(conv, bn)
        c = w.case("foldconv")
        c.param("stride", stride).param("pad", pad).param("groups", groups)
        save_bn(c, bn)
        c.array("weight", conv.weight)
        if bias:
            c.array("bias", conv.bias)
        c.array("fused_weight", fused.weight).array("fused_bias", fused.bias)
        c.array("input", x).array("output", y).close()
    # Linear + BatchNorm1d.
    for bias in (True, False):
        lin = nn.Linear(7, 5, bias=bias).eval()
        bn = nn.BatchNorm1d(5).eval()
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(5))
            bn.running_var.copy_(torch.rand(5) + 0.2)
            bn.weight.copy_(torch.rand(5) + 0.5)
            bn.bias.copy_(torch.randn(5))
        x = torch.randn(3, 7)
        with torch.no_grad():
            y = bn(lin(x))
            fused = fuse_linear_bn_eval(lin, bn)
        c = w.case("folddense")
        save_bn(c, bn)
        c.array("weight", lin.weight)
        if bias:
            c.array("bias", lin.bias)
        c.array("fused_weight", fused.weight).array("fused_bias", fused.bias)
        c.array("input", x).array("output", y).close()
    # ConvTranspose2d + BN. PyTorch's fuse helper ignores groups, so the
    # grouped case is checked through the output only.
    for cin, cout, groups, bias in ((1, 4, 1, True), (3, 5, 1, False), (4, 6, 2, True)):
        ct = nn.ConvTranspose2d(cin, cout, (3, 2), stride=2, groups=groups, bias=bias).eval()
        bn = random_bn(cout)
        x = torch.randn(2, cin, 3, 4)
        with torch.no_grad():
            y = bn(ct(x))
        c = w.case("foldconvt")
        c.param("stride", 2).param("groups", groups)
        save_bn(c, bn)
        c.array("weight", ct.weight)
        if bias:
            c.array("bias", ct.bias)
        if groups == 1:
            with torch.no_grad():
                fused = fuse_conv_bn_eval(ct, bn, transpose=True)
            c.array("fused_weight", fused.weight).array("fused_bias", fused.bias)
        c.array("input", x).array("output", y).close()


def gen_elementwise(w):
    for shape, act, slope in (((2, 3, 5, 7), 0, 0.0), ((3, 17), 1, 0.0), ((1, 16, 9, 9), 2, 0.1)):
        a, b = torch.randn(*shape), torch.randn(*shape)
        y = a + b
        y = F.relu(y) if act == 1 else F.leaky_relu(y, slope) if act == 2 else y
        w.case("add").param("act", act).param("slope", slope).array("a", a).array("b", b).array("output", y).close()
    for shapes, axis in ((((2, 3, 4, 5), (2, 5, 4, 5)), 1), (((1, 16, 8, 8), (1, 16, 8, 8), (1, 3, 8, 8)), 1),
                         (((2, 3, 4, 5), (2, 3, 2, 5)), 2), (((2, 3, 4, 5), (2, 3, 4, 1)), -1),
                         (((3, 17), (3, 10)), 1)):
        xs = [torch.randn(*s) for s in shapes]
        c = w.case("concat").param("axis", axis).param("inputs", len(xs))
        for i, x in enumerate(xs):
            c.array(f"input{i}", x)
        c.array("output", torch.cat(xs, axis)).close()
    for shape, (l, r, t, b) in (((1, 16, 8, 8), (0, 1, 0, 1)), ((2, 3, 5, 7), (1, 1, 1, 1)),
                                ((2, 3, 5, 7), (-1, 2, 0, -2)), ((1, 2, 6, 6), (-2, -1, -3, -1)),
                                ((3, 1, 4, 9), (3, -4, 2, 0))):
        x = torch.randn(*shape)
        w.case("pad").param("pad_lrtb", l, r, t, b).array("input", x).array("output", F.pad(x, (l, r, t, b))).close()
    for shape in ((2, 8, 4, 4), (3, 100, 1, 1), (1, 5, 3, 7)):
        x = torch.randn(*shape)
        w.case("flatten").array("input", x).array("output", torch.flatten(x, 1)).close()
    for shape, dim, scale in (((3, 10), -1, 1.0), ((2, 13), 1, 30.0), ((4, 1000), -1, 5.0), ((2, 5, 3, 7), 1, 3.0),
                              ((1, 10), -1, 1000.0), ((2, 3, 4, 5), 3, 2.0)):
        x = torch.randn(*shape) * scale
        w.case("softmax").param("dim", dim).array("input", x).array("output", F.softmax(x, dim)).close()


def gen_salt(w):
    # CNN salt: ConvTranspose2d(1, k, (Sh, Sw), stride=4) on the salt as (N, 1, 1, 1).
    for k, sh, sw, classes, bias, act_channels in ((1, 32, 32, 10, True, 3), (5, 14, 14, 10, True, 4),
                                                   (16, 16, 16, 10, True, 5), (4, 7, 50, 13, True, 3),
                                                   (8, 5, 3, 13, False, 2)):
        ct = nn.ConvTranspose2d(1, k, (sh, sw), stride=4, bias=bias).eval()
        salts = torch.randint(0, classes, (3,))
        salts[0] = classes - 1
        with torch.no_grad():
            maps = ct(salts.float().reshape(-1, 1, 1, 1))
        x = torch.randn(3, act_channels, sh, sw)
        c = w.case("cnnsalt")
        c.param("maps", k).param("size", sh, sw).param("classes", classes).param("salts", *salts.tolist())
        c.array("weight", ct.weight)
        if bias:
            c.array("bias", ct.bias)
        c.array("maps_out", maps).array("activations", x)
        c.array("cat_act_first", torch.cat((x, maps), 1)).array("cat_salt_first", torch.cat((maps, x), 1)).close()
    # FC salt vector, written exactly as PAPER.md states it, with torch.roll.
    for classes in (1, 2, 10, 13):
        for s in sorted({0, classes // 2, classes - 1}):
            means = torch.roll(torch.arange(1, classes + 1, dtype=torch.float32), s + 1)
            means[s] += 4 * classes
            means /= 2 * classes
            std = 1.0 / (2 * classes)
            noise = torch.randn(classes)
            vector = means + std * noise
            act = torch.randn(2, 9)
            vectors = torch.stack([vector, vector])
            c = w.case("fcsalt")
            c.param("classes", classes).param("salt", s)
            c.array("means", means).array("noise", noise).array("vector", vector)
            c.array("activations", act).array("cat_act_first", torch.cat((act, vectors), 1)).close()


def generate(out, rng):
    w = Writer(out)
    gen_pools(w)
    gen_batch_norm(w)
    gen_folding(w)
    gen_elementwise(w)
    gen_salt(w)
    return w.total()
