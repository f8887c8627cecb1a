"""The models bench/compare measures: one registry shared by the exporter,
the PyTorch worker and the orchestrator. No torch import at module level, so
the orchestrator stays light; `construct` imports it when called.

Each entry: a label for the table, the family (models of one family are
measured interleaved, so the salted-vs-standard overhead compares like with
like), the constructor from tools/weights_import/reference_models.py, the
standard counterpart of a salted model, and the ncnn figure of issue 5
(batch 1, 1 thread, Winograd on; ncnn cannot be installed here, so it is a
fixed reference column, "-" where the issue gives none).
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMPORT_DIR = ROOT / "tools" / "weights_import"

# name: (label, family, constructor name, kwargs, standard counterpart, ncnn b1 ms)
MODELS = {
    "lenet_std": ("LeNet 3x32x32 standard", "lenet", "LeNet", {"in_shape": (3, 32, 32), "salt_layer": -1}, None, "0.42"),
    "lenet_salt3": ("LeNet 3x32x32 salted, layer 3", "lenet", "LeNet", {"in_shape": (3, 32, 32), "salt_layer": 3},
                    "lenet_std", "0.49"),
    "wrn16_4_std": ("WideResNet-16-4 standard", "wrn16_4", "WideResNet", {"depth": 16, "width": 4}, None, "-"),
    "wrn16_4_salted": ("WideResNet-16-4 salted", "wrn16_4", "WideResNet", {"depth": 16, "width": 4, "salted": True},
                       "wrn16_4_std", "5.2-5.7"),
    "wrn28_3_std": ("WideResNet-28-3 standard", "wrn28_3", "WideResNet", {"depth": 28, "width": 3}, None, "-"),
    "wrn28_3_salted": ("WideResNet-28-3 salted", "wrn28_3", "WideResNet", {"depth": 28, "width": 3, "salted": True},
                       "wrn28_3_std", "6.7-7.3"),
    "sensor_std": ("sensor ConvNet 1x27x200 standard", "sensor", "SensorConvNet", {"salt_layer": -1}, None, "-"),
    "sensor_salt3": ("sensor ConvNet 1x27x200 salted, layer 3", "sensor", "SensorConvNet", {"salt_layer": 3},
                     "sensor_std", "2.1"),
}

# Seed of every model's weights (and BN statistics); inputs have their own.
WEIGHT_SEED = 20241124


def label(name):
    return MODELS[name][0]


def family(name):
    return MODELS[name][1]


def standard_of(name):
    return MODELS[name][4]


def ncnn_b1_ms(name):
    return MODELS[name][5]


def check_names(names):
    """Unknown names -> a one-line message, or None."""
    bad = [n for n in names if n not in MODELS]
    if bad:
        return f"unknown model(s) {', '.join(bad)}; known: {', '.join(MODELS)}"
    return None


def _reference_models():
    if str(IMPORT_DIR) not in sys.path:
        sys.path.insert(0, str(IMPORT_DIR))
    import reference_models
    return reference_models


def construct(name):
    """The module for `name` with the fixed random weights, in eval mode:
    seeded like reference_models.build (torch.manual_seed for the layers'
    default init, a generator for randomize_batchnorm, so BN folding is
    exercised)."""
    import torch
    rm = _reference_models()
    _, _, ctor, kwargs, _, _ = MODELS[name]
    g = torch.Generator().manual_seed(WEIGHT_SEED)
    torch.manual_seed(WEIGHT_SEED)
    model = getattr(rm, ctor)(**kwargs)
    rm.randomize_batchnorm(model, g)
    return model.eval()
