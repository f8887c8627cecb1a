"""Parity cases for conv2d layers that take the Winograd F(4x4, 3x3) path
(3x3, stride 1, dilation 1, groups 1, enough channels; see
include/salted/kernels/winograd.hpp), F(2x2, 3x3) where F(4x4) has few tiles
(kernels/winograd_2x2.hpp; expect_2x2 1), F(2x2, 5x5) for 5x5 stride-1
layers (kernels/winograd_5x5.hpp; expect_5x5 1) or the row Winograd (polyphase F(6, 3)
for kh x kw row convs, kernels/winograd_row.hpp: the sensor ConvNet's (1,5)
and (3,5) stride-(.,2) layers at their real sizes, and awkward ones).

The WideResNet-16-4 and WRN-28-3 stride-1 3x3 layers at their real sizes
(up to K = 9 x 256, the deepest sum), fed like in the network: ReLU'd,
batch-norm-scaled activations and He-initialised weights. Plus awkward
shapes (odd sizes, partial tiles, asymmetric and no padding, leaky ReLU) and
large-magnitude inputs, since Winograd's error grows with the values the
transforms mix. test_parity_winograd.cpp checks that each case really takes
the Winograd path (expect_winograd 1) or not (0), and the row Winograd
(expect_row 1) or not.
"""
import torch
import torch.nn.functional as F

from casewriter import Case

ACT_NONE, ACT_RELU, ACT_LEAKY = 0, 1, 2


def _case(out, name, n, cin, cout, hw, pad=(1, 1, 1, 1), act=ACT_NONE, slope=0.01, bias=True, scale=1.0,
          expect=1, kernel=(3, 3), stride=(1, 1), expect_row=0, expect_2x2=0, expect_5x5=0):
    """pad = (top, left, bottom, right), applied with F.pad when asymmetric."""
    kh, kw = kernel
    x = F.relu(torch.randn(n, cin, *hw)) * scale
    w = torch.randn(cout, cin, kh, kw) * (2.0 / (cin * kh * kw)) ** 0.5
    b = torch.randn(cout) * 0.1 if bias else None
    top, left, bottom, right = pad
    if top == bottom and left == right:
        y = F.conv2d(x, w, b, stride=stride, padding=(top, left))
    else:
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride)
    if act == ACT_RELU:
        y = F.relu(y)
    elif act == ACT_LEAKY:
        y = F.leaky_relu(y, slope)
    c = Case(out, name)
    c.param("cin", cin).param("cout", cout).param("pt", top).param("pl", left).param("pb", bottom)
    c.param("pr", right).param("act", act).param("slope", float(slope)).param("expect_winograd", expect)
    c.param("kh", kh).param("kw", kw).param("sh", stride[0]).param("sw", stride[1]).param("expect_row", expect_row)
    c.param("expect_2x2", expect_2x2).param("expect_5x5", expect_5x5)
    c.array("input", x).array("weight", w).array("output", y)
    if bias:
        c.array("bias", b)
    c.close()


def generate(out, rng):
    cases = [
        # WRN-16-4 stride-1 3x3 convs (batch 1, and 2 where cheap).
        lambda: _case(out, "wrn16_4_g1_16_64", 1, 16, 64, (32, 32), bias=False),
        lambda: _case(out, "wrn16_4_g1_64_64", 1, 64, 64, (32, 32), bias=False),
        lambda: _case(out, "wrn16_4_g2_128_128", 2, 128, 128, (16, 16), bias=False),
        lambda: _case(out, "wrn16_4_g3_256_256", 2, 256, 256, (8, 8), bias=False),
        # WRN-28-3: 48, 96, 192 channels (not multiples of the 32-wide panels).
        lambda: _case(out, "wrn28_3_g1_16_48", 1, 16, 48, (32, 32), bias=False),
        lambda: _case(out, "wrn28_3_g2_96_96", 1, 96, 96, (16, 16), bias=False),
        lambda: _case(out, "wrn28_3_g3_192_192", 3, 192, 192, (8, 8), bias=False),
        # Awkward shapes: partial tiles, asymmetric and no padding, bias and activations.
        lambda: _case(out, "odd_13x11_asym_pad_leaky", 2, 40, 48, (13, 11), pad=(2, 0, 1, 2), act=ACT_LEAKY,
                      slope=0.1),
        lambda: _case(out, "nopad_9x9_relu", 1, 24, 33, (9, 9), pad=(0, 0, 0, 0), act=ACT_RELU, expect_2x2=1),
        lambda: _case(out, "tiny_3x2_pad2", 3, 17, 70, (3, 2), pad=(2, 2, 2, 2)),
        lambda: _case(out, "wide_7x40", 1, 32, 32, (7, 40), act=ACT_RELU),
        # Large values: inputs x 30 (max|y| in the hundreds), K = 9 x 256.
        lambda: _case(out, "large_values_256", 1, 256, 64, (8, 8), scale=30.0, expect_2x2=1),
        # F(2x2, 3x3): maps where F(4x4) has at most 4 tiles (8x8 at batch 1).
        lambda: _case(out, "wrn16_4_g3_256_256_b1", 1, 256, 256, (8, 8), bias=False, expect_2x2=1),
        lambda: _case(out, "wrn28_3_g3_192_192_b1", 1, 192, 192, (8, 8), bias=False, expect_2x2=1),
        lambda: _case(out, "f23_5x7_asym_pad_leaky", 1, 40, 48, (5, 7), pad=(2, 0, 1, 2), act=ACT_LEAKY,
                      slope=0.1, expect_2x2=1),
        lambda: _case(out, "f23_4x4_batch3", 3, 32, 36, (4, 4), act=ACT_RELU, expect_2x2=1),
        # F(2x2, 5x5): LeNet's 32->32 layers (and the salted 37->32 one) at
        # their real sizes, padding on every side, leaky ReLU, large values.
        lambda: _case(out, "lenet_conv2_32_32_k5", 2, 32, 32, (28, 28), pad=(0, 0, 0, 0), kernel=(5, 5), expect=0,
                      act=ACT_RELU, expect_5x5=1),
        lambda: _case(out, "lenet_salt_conv2_37_32_k5", 1, 37, 32, (14, 14), pad=(0, 0, 0, 0), kernel=(5, 5),
                      expect=0, expect_5x5=1),
        lambda: _case(out, "k5_13x11_asym_pad_leaky", 2, 20, 40, (13, 11), pad=(2, 1, 0, 3), kernel=(5, 5), expect=0,
                      act=ACT_LEAKY, slope=0.1, expect_5x5=1),
        lambda: _case(out, "k5_large_values", 1, 64, 48, (9, 9), pad=(2, 2, 2, 2), kernel=(5, 5), expect=0,
                      scale=30.0, expect_5x5=1),
        # Qualifies by shape but not by channels: stays on im2col.
        lambda: _case(out, "stem_3_16_im2col", 1, 3, 16, (32, 32), bias=False, expect=0),
        # Row Winograd: the sensor ConvNet's layers 1-3 (BN folded, LeakyReLU).
        lambda: _case(out, "sensor_conv1_1x5_s12", 1, 64, 64, (27, 196), pad=(0, 0, 0, 0), act=ACT_LEAKY,
                      kernel=(1, 5), stride=(1, 2), expect=0, expect_row=1),
        lambda: _case(out, "sensor_conv2_1x5_s12", 2, 64, 64, (27, 96), pad=(0, 0, 0, 0), act=ACT_LEAKY,
                      kernel=(1, 5), stride=(1, 2), expect=0, expect_row=1),
        lambda: _case(out, "sensor_conv3_3x5_s22", 1, 68, 64, (27, 46), pad=(0, 0, 0, 0), act=ACT_LEAKY,
                      kernel=(3, 5), stride=(2, 2), expect=0, expect_row=1),
        # Awkward rows: padding on every side, even kernel, stride 1, large values.
        lambda: _case(out, "row_2x4_s12_asym_pad", 2, 20, 36, (11, 37), pad=(1, 2, 0, 3), kernel=(2, 4),
                      stride=(1, 2), expect=0, expect_row=1),
        lambda: _case(out, "row_3x3_s21_relu", 1, 24, 40, (15, 30), act=ACT_RELU, kernel=(3, 3), stride=(2, 1),
                      expect=0, expect_row=1),
        lambda: _case(out, "row_1x6_large_values", 1, 128, 48, (9, 90), pad=(0, 0, 0, 0), kernel=(1, 6),
                      stride=(1, 2), scale=30.0, expect=0, expect_row=1),
        # A WideResNet stride-2 3x3 conv: nothing to save, stays direct.
        lambda: _case(out, "wrn_s2_3x3_direct", 1, 64, 128, (32, 32), pad=(0, 0, 1, 1), kernel=(3, 3),
                      stride=(2, 2), expect=0, expect_row=0),
    ]
    for make in cases:
        make()
    return len(cases)
