"""The paper's reference architectures as PyTorch modules (see PAPER.md).

Three families, each standard (salt_layer = -1) or salted:
  * LeNet        3x32x32 (CIFAR-10) or 1x28x28 (Fashion-MNIST), salt layer
                 -1, 0, 1, 3, 5 (CNN salt) or 6, 7, 8 (FC salt);
  * WideResNet   pre-activation, depth 16 width 4 by default (28/3 etc. via
                 parameters), salted = 16 maps of 16x16 after block group 2;
  * SensorConvNet 1x27x200 (PAMAP2), 13 classes, salt layer -1, 2, 3, 4.

Calling convention, shared by every model so tools can drive them alike:
  * standard model:      forward(x)
  * CNN salt (salt_kind == "cnn"): forward(x, salt), salt float (N,1,1,1)
    holding the integer salt s in [0, C);
  * FC salt  (salt_kind == "fc"):  forward(x, salt), salt the (N,C) salt
    vector drawn by `fc_salt_vector`.

Input normalisation (x - mean) / std belongs to the model (the `Normalize`
module): it exports to ONNX as Sub + Div with per-channel constants, which the
converter turns into one `batch_norm` node (scale = 1/std, shift = -mean/std).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)


class Normalize(nn.Module):
    """Fixed per-channel (x - mean) / std, stored as buffers so it travels with
    the weights and exports as plain arithmetic on constants."""

    def __init__(self, mean, std):
        super().__init__()
        c = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class CnnSaltConcat(nn.Module):
    """The salted CNN layer: ConvTranspose2d(1, k, kernel=(Sh, Sw), stride=4)
    turns the (N,1,1,1) salt into k maps of Sh x Sw (map j = s*W[0,j] + b[j],
    since the input is 1x1), concatenated after the activations' channels."""

    def __init__(self, maps, size):
        super().__init__()
        self.maps = maps
        self.size = tuple(size)
        self.deconv = nn.ConvTranspose2d(1, maps, kernel_size=self.size, stride=4)

    def forward(self, x, salt):
        return torch.cat((x, self.deconv(salt)), dim=1)


def fc_salt_vector(salts, num_classes, generator=None):
    """The FC salt vectors (N, C) for integer salts (N,), per PAPER.md:
    means = roll([1..C], s+1); means[s] += 4C; means /= 2C; std = 1/(2C)."""
    salts = torch.as_tensor(salts, dtype=torch.long).view(-1)
    c = num_classes
    base = torch.arange(1, c + 1, dtype=torch.float32)
    rows = []
    for s in salts.tolist():
        means = torch.roll(base, s + 1).clone()
        means[s] += 4 * c
        means /= 2 * c
        rows.append(means)
    means = torch.stack(rows)
    noise = torch.randn(means.shape, generator=generator)
    return means + noise / (2 * c)


# ----------------------------------------------------------------------------
# LeNet
# ----------------------------------------------------------------------------

LENET_CNN_SALT_MAPS = {0: 1, 1: 5, 3: 5, 5: 8}
LENET_FC_SALT_LAYERS = (6, 7, 8)


class LeNet(nn.Module):
    """normalise; conv1 Cin->w k5 ReLU; conv2 w->w k5 ReLU; maxpool 2;
    conv3 w->w k5 ReLU; maxpool 2; flatten; fc1 ->120 ReLU; fc2 120->84 ReLU;
    fc3 84->C. Layer i of the salt index is the i-th entry of that list
    (0 conv1, 1 conv2, 2 pool, 3 conv3, 4 pool, 5 flatten, 6..8 fc1..fc3);
    the salt enters just before it. `width` and `fc` shrink the net for tiny
    test models; the paper's values are the defaults."""

    def __init__(self, in_shape=(3, 32, 32), num_classes=10, salt_layer=-1, width=32, fc=(120, 84),
                 mean=None, std=None):
        super().__init__()
        cin, h, w = in_shape
        if salt_layer not in (-1,) + tuple(LENET_CNN_SALT_MAPS) + LENET_FC_SALT_LAYERS:
            raise ValueError(f"LeNet: salt_layer must be -1, 0, 1, 3, 5, 6, 7 or 8, got {salt_layer}")
        if mean is None:
            mean, std = (CIFAR10_MEAN, CIFAR10_STD) if cin == 3 else (FASHION_MNIST_MEAN * cin, FASHION_MNIST_STD * cin)
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes
        self.salt_layer = salt_layer
        self.salt_kind = "none" if salt_layer < 0 else ("cnn" if salt_layer <= 5 else "fc")
        self.normalize = Normalize(mean, std)

        # Spatial size in front of each layer index 0..5, for the salt maps.
        sizes = {0: (h, w)}
        h1, w1 = h - 4, w - 4  # conv1
        sizes[1] = (h1, w1)
        h2, w2 = h1 - 4, w1 - 4  # conv2
        sizes[2] = (h2, w2)
        h3, w3 = h2 // 2, w2 // 2  # pool
        sizes[3] = (h3, w3)
        h4, w4 = h3 - 4, w3 - 4  # conv3
        sizes[4] = (h4, w4)
        h5, w5 = h4 // 2, w4 // 2  # pool
        sizes[5] = (h5, w5)
        if min(h5, w5) < 1:
            raise ValueError(f"LeNet: input {in_shape} is too small")

        def extra(layer):  # channels the salt adds in front of `layer`
            return LENET_CNN_SALT_MAPS[layer] if salt_layer == layer else 0

        self.conv1 = nn.Conv2d(cin + extra(0), width, 5)
        self.conv2 = nn.Conv2d(width + extra(1), width, 5)
        self.conv3 = nn.Conv2d(width + extra(3), width, 5)
        flat = (width + extra(5)) * h5 * w5
        fc_salt = {i: (num_classes if salt_layer == i else 0) for i in LENET_FC_SALT_LAYERS}
        self.fc1 = nn.Linear(flat + fc_salt[6], fc[0])
        self.fc2 = nn.Linear(fc[0] + fc_salt[7], fc[1])
        self.fc3 = nn.Linear(fc[1] + fc_salt[8], num_classes)
        if self.salt_kind == "cnn":
            self.salt = CnnSaltConcat(LENET_CNN_SALT_MAPS[salt_layer], sizes[salt_layer])

    def forward(self, x, salt=None):
        def at(layer, t):
            if layer != self.salt_layer:
                return t
            if self.salt_kind == "cnn":
                return self.salt(t, salt)
            return torch.cat((t, salt), dim=1)

        x = self.normalize(x)
        x = F.relu(self.conv1(at(0, x)))
        x = F.relu(self.conv2(at(1, x)))
        x = F.max_pool2d(at(2, x), 2)
        x = F.relu(self.conv3(at(3, x)))
        x = F.max_pool2d(at(4, x), 2)
        x = torch.flatten(at(5, x), 1)
        x = F.relu(self.fc1(at(6, x)))
        x = F.relu(self.fc2(at(7, x)))
        return self.fc3(at(8, x))


# ----------------------------------------------------------------------------
# WideResNet (pre-activation, DeepMind-style "SAME" padding by explicit F.pad)
# ----------------------------------------------------------------------------

class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity shortcut, or a 1x1
    conv shortcut on the pre-activated input when the channel count changes.
    Padding is explicit (stride 1: 1 on every side; stride 2: right and
    bottom only) and the convs use padding 0, matching TensorFlow's SAME."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if cin != cout else None
        self.stride = stride

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        pads = (1, 1, 1, 1) if self.stride == 1 else (0, 1, 0, 1)  # (left, right, top, bottom)
        out = self.conv1(F.pad(pre, pads))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (self.shortcut(pre) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """WRN-depth-width for 3x32x32: normalise; conv3x3 3->16; three groups of
    (depth-4)/6 blocks at 16w (stride 1), 32w (stride 2), 64w (stride 2);
    BN-ReLU; global average pool; linear. Salted: `salt_maps` maps of the
    spatial size after group 2 (16x16) concatenated after group 2."""

    def __init__(self, depth=16, width=4, num_classes=10, salted=False, salt_maps=16, in_shape=(3, 32, 32),
                 mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WideResNet: depth must be 6n+4 (n >= 1), got {depth}")
        n = (depth - 4) // 6
        cin, h, w = in_shape
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes
        self.salt_kind = "cnn" if salted else "none"
        self.salt_layer = 2 if salted else -1  # "after block group 2"
        self.normalize = Normalize(mean, std)
        self.stem = nn.Conv2d(cin, ch[0], 3, padding=1, bias=False)

        def group(cin_, cout, stride):
            return nn.Sequential(*[WideBlock(cin_ if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

        self.group1 = group(ch[0], ch[1], 1)
        self.group2 = group(ch[1], ch[2], 2)
        extra = salt_maps if salted else 0
        self.group3 = group(ch[2] + extra, ch[3], 2)
        if salted:
            self.salt = CnnSaltConcat(salt_maps, (math.ceil(h / 2), math.ceil(w / 2)))
        self.bn = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x, salt=None):
        x = self.stem(self.normalize(x))
        x = self.group2(self.group1(x))
        if self.salt_kind == "cnn":
            x = self.salt(x, salt)
        x = F.relu(self.bn(self.group3(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


# ----------------------------------------------------------------------------
# Sensor ConvNet (PAMAP2)
# ----------------------------------------------------------------------------

SENSOR_SALT_MAPS = {2: 4, 3: 16, 4: 8}
SENSOR_CONVS = (  # (kernel, stride, out_channels)
    ((1, 5), (1, 1), 64),
    ((1, 5), (1, 2), 64),
    ((1, 5), (1, 2), 64),
    ((3, 5), (2, 2), 64),
    ((3, 5), (2, 2), 64),
    ((1, 5), (2, 2), 100),
)


class SensorConvNet(nn.Module):
    """1x27x200 -> six convs (no padding) each BN + LeakyReLU -> avgpool 3x3
    -> linear 100->128 -> LeakyReLU -> linear 128->13. Salt layer i (2, 3, 4)
    enters before conv i+1 (conv3, conv4, conv5) with 4, 16, 8 maps of the
    spatial size there (27x96, 27x46, 13x21 for the default input). The
    activation between the two linear layers is our choice (PAPER.md does not
    name one); LeakyReLU matches the rest of the network."""

    def __init__(self, in_shape=(1, 27, 200), num_classes=13, salt_layer=-1, negative_slope=0.01):
        super().__init__()
        if salt_layer not in (-1,) + tuple(SENSOR_SALT_MAPS):
            raise ValueError(f"SensorConvNet: salt_layer must be -1, 2, 3 or 4, got {salt_layer}")
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes
        self.salt_layer = salt_layer
        self.salt_kind = "none" if salt_layer < 0 else "cnn"
        self.slope = negative_slope
        c, h, w = in_shape
        convs, bns = [], []
        for i, (k, s, cout) in enumerate(SENSOR_CONVS):
            if i == salt_layer:
                self.salt = CnnSaltConcat(SENSOR_SALT_MAPS[i], (h, w))
                c += SENSOR_SALT_MAPS[i]
            convs.append(nn.Conv2d(c, cout, k, stride=s))
            bns.append(nn.BatchNorm2d(cout))
            h, w, c = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1, cout
        if h < 3 or w < 3:
            raise ValueError(f"SensorConvNet: input {in_shape} is too small")
        self.convs = nn.ModuleList(convs)
        self.bns = nn.ModuleList(bns)
        self.fc1 = nn.Linear(c * (h // 3) * (w // 3), 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x, salt=None):
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if i == self.salt_layer:
                x = self.salt(x, salt)
            x = F.leaky_relu(bn(conv(x)), self.slope)
        x = torch.flatten(F.avg_pool2d(x, 3), 1)
        x = F.leaky_relu(self.fc1(x), self.slope)
        return self.fc2(x)


# ----------------------------------------------------------------------------
# Helpers for tests and tools
# ----------------------------------------------------------------------------

def randomize_batchnorm(model, generator=None):
    """Gives every BatchNorm non-trivial running statistics and affine
    parameters, so that folding BN into convolutions is really exercised."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=generator) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(c, generator=generator) * 0.2)
    return model


def example_inputs(model, batch=2, generator=None, salts=None):
    """(x, salt) for a salted model, (x,) for a standard one; integer salts
    are drawn uniformly in [0, C) unless given."""
    x = torch.rand((batch,) + tuple(model.in_shape), generator=generator)
    if model.salt_kind == "none":
        return (x,)
    if salts is None:
        salts = torch.randint(0, model.num_classes, (batch,), generator=generator)
    salts = torch.as_tensor(salts).view(-1)
    if model.salt_kind == "cnn":
        return (x, salts.to(torch.float32).view(batch, 1, 1, 1))
    return (x, fc_salt_vector(salts, model.num_classes, generator))


# name -> constructor; every configuration the importer must support.
def reference_configs():
    cfgs = {}
    for shape, tag in (((3, 32, 32), "3x32x32"), ((1, 28, 28), "1x28x28")):
        for layer in (-1, 0, 1, 3, 5, 6, 7, 8):
            cfgs[f"lenet_{tag}_salt{layer}"] = (lambda s=shape, l=layer: LeNet(in_shape=s, salt_layer=l))
    cfgs["wrn16_4"] = lambda: WideResNet(16, 4)
    cfgs["wrn16_4_salted"] = lambda: WideResNet(16, 4, salted=True)
    for layer in (-1, 2, 3, 4):
        cfgs[f"sensor_salt{layer}"] = (lambda l=layer: SensorConvNet(salt_layer=l))
    return cfgs


def build(name, seed=0):
    """A reference configuration with seeded random weights and BN stats, in eval mode."""
    cfgs = reference_configs()
    if name not in cfgs:
        raise KeyError(f"unknown reference configuration {name!r}; known: {', '.join(sorted(cfgs))}")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = cfgs[name]()
    randomize_batchnorm(model, g)
    return model.eval()


def architecture_name(model):
    if isinstance(model, LeNet):
        return "lenet"
    if isinstance(model, WideResNet):
        return "wide_resnet"
    if isinstance(model, SensorConvNet):
        return "sensor_convnet"
    return type(model).__name__
