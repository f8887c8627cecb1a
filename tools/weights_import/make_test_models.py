#!/usr/bin/python3
"""Writes the tiny model files shipped under tests/data/ for the C++ reader tests.

    /usr/bin/python3 tools/weights_import/make_test_models.py --out tests/data

Seeded: the same PyTorch and ONNX versions give the same bytes. The models
are LeNets on 1x28x28 shrunk to 4 channels and fc 16/12 (a few KB of
weights), one with a CNN salt (layer 1, 5 maps of 24x24) and one with an
FC salt (layer 7), and a WRN-10-1 on 3x8x8 with 4 salt maps (its salt
passes a BatchNorm-ReLU into two convs, the other shape salt folding
handles), each with a batch-2 PyTorch test vector.
"""
import argparse
import pathlib
import sys
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import onnx_to_salted  # noqa: E402
import reference_models as rm  # noqa: E402

TINY = {
    "tiny_lenet_cnn_salt.salted": 1,
    "tiny_lenet_fc_salt.salted": 7,
}


def tiny_lenet(salt_layer, seed=7):
    torch.manual_seed(seed)
    model = rm.LeNet(in_shape=(1, 28, 28), salt_layer=salt_layer, width=4, fc=(16, 12)).eval()
    g = torch.Generator().manual_seed(seed)
    return model, rm.example_inputs(model, batch=2, generator=g, salts=[3, 8])


def tiny_wrn(seed=7):
    torch.manual_seed(seed)
    model = rm.WideResNet(depth=10, width=1, salted=True, salt_maps=4, in_shape=(3, 8, 8)).eval()
    g = torch.Generator().manual_seed(seed)
    rm.randomize_batchnorm(model, g)
    return model, rm.example_inputs(model, batch=2, generator=g, salts=[3, 8])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    models = {name: (tiny_lenet(layer), f"tiny_lenet_1x28x28_w4_salt{layer}") for name, layer in TINY.items()}
    models["tiny_wrn_cnn_salt.salted"] = (tiny_wrn(), "tiny_wrn10_1_3x8x8_salted")
    for name, ((model, inputs), config) in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_to_salted.export_module(model, inputs, out / name,
                                         metadata={"config": config, "purpose": "tests/data fixture"})
        print(f"{out / name}: {(out / name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
