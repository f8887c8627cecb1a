"""Parity cases for conv2d, conv_transpose2d and dense (nn.Linear).

Shapes follow the reference models (LeNet 5x5, the sensor net's (1,5)/(3,5)
kernels with strides (1,2)/(2,2), WideResNet 3x3 / 1x1 and its stride-2
F.pad(0,1,0,1) block, the CNN salt ConvTranspose2d) plus groups, depthwise,
dilation and output_padding corners. Spatial sizes are trimmed to keep the
family small.
"""
import torch
import torch.nn.functional as F

from casewriter import Case

ACT_NONE, ACT_RELU, ACT_LEAKY = 0, 1, 2


def _act(y, act, slope):
    if act == ACT_RELU:
        return F.relu(y)
    if act == ACT_LEAKY:
        return F.leaky_relu(y, slope)
    return y


def _conv2d(out, name, n, cin, cout, hw, k, stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1), groups=1,
            bias=True, act=ACT_NONE, slope=0.01):
    """pad = (top, left, bottom, right), applied with F.pad like the WRN stride-2 block."""
    x = torch.randn(n, cin, *hw)
    w = torch.randn(cout, cin // groups, *k) / (cin // groups * k[0] * k[1]) ** 0.5
    b = torch.randn(cout) if bias else None
    top, left, bottom, right = pad
    if top == bottom and left == right:
        y = F.conv2d(x, w, b, stride=stride, padding=(top, left), dilation=dil, groups=groups)
    else:
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride, padding=0, dilation=dil,
                     groups=groups)
    y = _act(y, act, slope)
    c = Case(out, name)
    c.param("op", 1).param("cin", cin).param("cout", cout).param("kh", k[0]).param("kw", k[1])
    c.param("sh", stride[0]).param("sw", stride[1]).param("pt", top).param("pl", left)
    c.param("pb", bottom).param("pr", right).param("dh", dil[0]).param("dw", dil[1]).param("groups", groups)
    c.param("act", act).param("slope", float(slope))
    c.array("input", x).array("weight", w).array("output", y)
    if bias:
        c.array("bias", b)
    c.close()


def _conv_transpose2d(out, name, n, cin, cout, hw, k, stride=(1, 1), pad=(0, 0), opad=(0, 0), dil=(1, 1),
                      groups=1, bias=True, x=None):
    if x is None:
        x = torch.randn(n, cin, *hw)
    w = torch.randn(cin, cout // groups, *k)
    b = torch.randn(cout) if bias else None
    y = F.conv_transpose2d(x, w, b, stride=stride, padding=pad, output_padding=opad, groups=groups, dilation=dil)
    c = Case(out, name)
    c.param("op", 2).param("cin", cin).param("cout", cout).param("kh", k[0]).param("kw", k[1])
    c.param("sh", stride[0]).param("sw", stride[1]).param("ph", pad[0]).param("pw", pad[1])
    c.param("oph", opad[0]).param("opw", opad[1]).param("dh", dil[0]).param("dw", dil[1]).param("groups", groups)
    c.array("input", x).array("weight", w).array("output", y)
    if bias:
        c.array("bias", b)
    c.close()


def _dense(out, name, n, fin, fout, bias=True, act=ACT_NONE, slope=0.01):
    x = torch.randn(n, fin)
    w = torch.randn(fout, fin) / fin ** 0.5
    b = torch.randn(fout) if bias else None
    y = _act(F.linear(x, w, b), act, slope)
    c = Case(out, name)
    c.param("op", 3).param("in", fin).param("out", fout).param("act", act).param("slope", float(slope))
    c.array("input", x).array("weight", w).array("output", y)
    if bias:
        c.array("bias", b)
    c.close()


def generate(out, rng):
    cases = [
        # Generic corners.
        lambda: _conv2d(out, "conv2d_3x3_pad1_relu", 2, 3, 8, (9, 11), (3, 3), pad=(1, 1, 1, 1), act=ACT_RELU),
        lambda: _conv2d(out, "conv2d_asym_pad", 1, 5, 7, (8, 9), (3, 3), pad=(1, 2, 3, 0)),
        lambda: _conv2d(out, "conv2d_groups_dilation", 2, 4, 6, (11, 10), (3, 3), stride=(2, 1),
                        pad=(2, 1, 2, 1), dil=(2, 2), groups=2),
        lambda: _conv2d(out, "conv2d_depthwise_leaky", 1, 8, 8, (7, 7), (3, 3), pad=(1, 1, 1, 1), groups=8,
                        act=ACT_LEAKY, slope=0.2),
        lambda: _conv2d(out, "conv2d_stride3_nobias", 3, 3, 5, (13, 10), (5, 3), stride=(3, 2), bias=False),
        # LeNet: conv1 Cin->32 k5, conv2 32->32 k5 (ReLU).
        lambda: _conv2d(out, "lenet_conv1", 1, 3, 32, (32, 32), (5, 5), act=ACT_RELU),
        lambda: _conv2d(out, "lenet_conv2", 2, 32, 32, (28, 28), (5, 5), act=ACT_RELU),
        # Sensor net: (1,5)/s1, (1,5)/s(1,2), (3,5)/s(2,2) with LeakyReLU; widths trimmed.
        lambda: _conv2d(out, "sensor_1x5_s1", 1, 1, 64, (27, 60), (1, 5), act=ACT_LEAKY),
        lambda: _conv2d(out, "sensor_1x5_s12", 1, 64, 64, (27, 40), (1, 5), stride=(1, 2), act=ACT_LEAKY),
        lambda: _conv2d(out, "sensor_3x5_s22", 1, 64, 64, (27, 24), (3, 5), stride=(2, 2), act=ACT_LEAKY),
        # WideResNet: 3x3 pad 1, 1x1 shortcuts, the stride-2 block's F.pad(0,1,0,1) + padding-0 conv.
        lambda: _conv2d(out, "wrn_3x3", 1, 16, 64, (32, 32), (3, 3), pad=(1, 1, 1, 1)),
        lambda: _conv2d(out, "wrn_1x1_shortcut", 1, 16, 64, (32, 32), (1, 1), bias=False),
        lambda: _conv2d(out, "wrn_1x1_shortcut_s2", 1, 64, 128, (16, 16), (1, 1), stride=(2, 2), bias=False),
        lambda: _conv2d(out, "wrn_stride2_fpad", 1, 64, 128, (16, 16), (3, 3), stride=(2, 2), pad=(0, 0, 1, 1)),
        # Transposed convolutions.
        lambda: _conv_transpose2d(out, "convt_s2_p1_op1", 2, 4, 6, (5, 4), (3, 3), stride=(2, 2), pad=(1, 1),
                                  opad=(1, 1)),
        lambda: _conv_transpose2d(out, "convt_groups_dil", 1, 4, 6, (3, 5), (2, 3), stride=(3, 2), pad=(0, 1),
                                  opad=(2, 1), dil=(2, 1), groups=2),
        lambda: _conv_transpose2d(out, "convt_opad_below_dilation", 1, 3, 2, (4, 4), (3, 3), pad=(1, 0),
                                  opad=(1, 1), dil=(2, 2), bias=False),
        # The CNN salt: ConvTranspose2d(1, k, kernel=S, stride=4) on the salt as (N, 1, 1, 1).
        lambda: _conv_transpose2d(out, "salt_lenet_S28", 3, 1, 5, (1, 1), (28, 28), stride=(4, 4),
                                  x=torch.tensor([0.0, 4.0, 9.0]).reshape(3, 1, 1, 1)),
        lambda: _conv_transpose2d(out, "salt_wrn_S16", 2, 1, 16, (1, 1), (16, 16), stride=(4, 4),
                                  x=torch.tensor([7.0, 2.0]).reshape(2, 1, 1, 1)),
        lambda: _conv_transpose2d(out, "salt_sensor_14x46", 1, 1, 16, (1, 1), (14, 46), stride=(4, 4),
                                  x=torch.tensor([12.0]).reshape(1, 1, 1, 1)),
        # Dense: LeNet fc1/fc2/fc3, sensor linear, no bias.
        lambda: _dense(out, "dense_fc1", 2, 800, 120, act=ACT_RELU),
        lambda: _dense(out, "dense_fc2", 1, 120, 84, act=ACT_RELU),
        lambda: _dense(out, "dense_fc3", 3, 84, 10),
        lambda: _dense(out, "dense_sensor", 5, 100, 128, act=ACT_LEAKY),
        lambda: _dense(out, "dense_nobias", 4, 33, 17, bias=False),
    ]
    for make in cases:
        make()
    return len(cases)
