#!/usr/bin/python3
"""Trains the paper's LeNet (PAPER.md) on Fashion-MNIST, standard and salted,
and exports every configuration to a salted model file (docs/FORMAT.md).

    /usr/bin/python3 tools/weights_import/train_fashion_mnist.py --out models/

For each configuration (salt layer -1 = standard "std", 0/1/3/5 = CNN salt,
6/7 = FC salt; named "std", "salt0", ... "salt7"):
  * seeds torch and numpy from --seed (each configuration starts from the same
    seed, so training one alone gives the same weights as training it within
    the full run);
  * trains with the paper's recipe: cross-entropy on (label + s) mod C with a
    fresh uniform salt s per sample per batch (for FC salt, a fresh salt
    vector drawn from s), Adam lr 1e-3, batch 100;
  * evaluates on the 10k test images with a fresh random salt per sample:
    "de-salted" accuracy ((argmax - s) mod C vs the label: what the client
    gets) and "server view" accuracy (argmax vs the label: what the cloud
    learns without s; about 1/C for a working salted model);
  * exports through ONNX with `export_module` (which checks the converted graph
    against PyTorch and embeds a test vector), reads the file back with hash
    verification, and checks that the numpy interpreter of the converted graph
    predicts like PyTorch on the first --verify-images test images;
  * writes the test salts and PyTorch's de-salted predictions under eval/, so
    the C++ runtime can reproduce the accuracy on the same images and salts.

The configurations named by --ship (default: std and salt1, see
docs/TRAINING.md for why layer 1) go to --out; the others go to --extra-out
(default build/models, not version-controlled) so the shipped directory
stays a few hundred KB. --out also receives training_summary.json, which lists
every configuration trained (merged with entries already there).

--write-images DIR writes a dozen Fashion-MNIST test images as PNG (the first
of each class, plus a second shirt and t-shirt/top), named
<test index>_<class>_<label>.png; --images-only stops there.

Runs on one thread by default (--threads) so it can share a machine; the whole
run is deterministic for a given seed, thread count and PyTorch build.
"""
import argparse
import datetime
import json
import pathlib
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import fashion_mnist  # noqa: E402
import numpy_runtime  # noqa: E402
import onnx_to_salted  # noqa: E402
import reference_models as rm  # noqa: E402
import salted_format  # noqa: E402

C = fashion_mnist.NUM_CLASSES
ALL_LAYERS = (-1, 0, 1, 3, 5, 6, 7)
DEFAULT_SHIP = "std,salt1"
BATCH = 100
LR = 1e-3


def config_name(layer):
    return "std" if layer < 0 else f"salt{layer}"


def parse_layers(text):
    layers = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        layer = -1 if item == "std" else int(item.replace("salt", ""))
        if layer not in ALL_LAYERS:
            raise SystemExit(f"--configs: expected layers from {ALL_LAYERS} (or std), found {item!r}")
        layers.append(layer)
    return layers


def to_float(images_u8):
    """uint8 (N,28,28) -> float (N,1,28,28) in [0, 1]: the models' input
    convention; the (x - mean) / std normalisation is inside the model."""
    return torch.from_numpy(images_u8).to(torch.float32).div_(255.0).unsqueeze(1)


def salt_input(model, salts, generator):
    """The model's salt argument for integer salts (N,): the integer as a
    (N,1,1,1) float for CNN salt, a freshly drawn salt vector for FC salt."""
    if model.salt_kind == "cnn":
        return salts.to(torch.float32).view(-1, 1, 1, 1)
    return rm.fc_salt_vector(salts, C, generator)


def forward(model, x, salts, salt_arg=None, generator=None):
    if model.salt_kind == "none":
        return model(x)
    return model(x, salt_arg if salt_arg is not None else salt_input(model, salts, generator))


def desalt(logits, salts):
    """De-salted class: (argmax - s) mod C; salts of 0 for a standard model."""
    return (logits.argmax(1) - salts) % C


def train_epoch(model, opt, images, labels, gen):
    """One pass in a seeded random order; returns (mean loss, accuracy on the
    salted targets) over the epoch."""
    model.train()
    n = images.shape[0]
    order = torch.randperm(n, generator=gen)
    total_loss, correct = 0.0, 0
    for start in range(0, n, BATCH):
        idx = order[start:start + BATCH]
        x = to_float(images[idx.numpy()])
        y = torch.from_numpy(labels[idx.numpy()].astype(np.int64))
        if model.salt_kind == "none":
            salts = torch.zeros_like(y)
        else:
            salts = torch.randint(0, C, y.shape, generator=gen)  # fresh per sample per batch
        target = (y + salts) % C
        logits = forward(model, x, salts, generator=gen)
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total_loss += float(loss) * len(idx)
        correct += int((logits.argmax(1) == target).sum())
    return total_loss / n, correct / n


@torch.no_grad()
def predict(model, images, salts, salt_args, batch=500):
    """Logits (N, C) on the test images with the given salts."""
    model.eval()
    out = []
    for start in range(0, images.shape[0], batch):
        sl = slice(start, start + batch)
        x = to_float(images[sl])
        arg = None if salt_args is None else salt_args[sl]
        out.append(forward(model, x, salts[sl], arg))
    return torch.cat(out)


def accuracies(logits, salts, labels):
    y = torch.from_numpy(labels.astype(np.int64))
    desalted = int((desalt(logits, salts) == y).sum()) / len(y)
    server = int((logits.argmax(1) == y).sum()) / len(y)
    return desalted, server


def eval_salts(model, n, seed):
    """The test salts: one fresh uniform salt per test image, the same integer
    salts for every configuration of a run (so configurations are compared on
    equal terms); FC salt vectors drawn from them with a seeded generator."""
    rng = np.random.default_rng([seed, 1])
    salts = torch.from_numpy(rng.integers(0, C, size=n).astype(np.int64))
    if model.salt_kind == "none":
        return torch.zeros(n, dtype=torch.int64), None
    gen = torch.Generator().manual_seed(seed + 2)
    return salts, salt_input(model, salts, gen)


def verify_export(path, model, images, salts, salt_args, limit):
    """Reads the file back (hash-checked), replays its test vector with the
    numpy interpreter, and compares de-salted predictions with PyTorch on the
    first `limit` test images. Returns a dict for the summary."""
    m = salted_format.read_model(path, verify=True)
    diff, tol = numpy_runtime.check_test_vector(m)
    if not diff <= tol:
        raise RuntimeError(f"{path}: test vector replay: max|diff| {diff} > {tol}")
    n = min(limit, images.shape[0])
    feed = {}
    for spec in m.inputs:
        if spec["kind"] == "data":
            feed[spec["name"]] = to_float(images[:n]).numpy()
        elif spec["kind"] == "salt_int":
            feed[spec["name"]] = salts[:n].to(torch.float32).view(-1, 1, 1, 1).numpy()
        else:
            feed[spec["name"]] = salt_args[:n].numpy()
    got = numpy_runtime.run_graph(m.header, m.weights, feed)[m.outputs[0]["name"]]
    want = predict(model, images[:n], salts[:n], None if salt_args is None else salt_args[:n])
    agree = float((desalt(torch.from_numpy(got), salts[:n]) == desalt(want, salts[:n])).float().mean())
    max_diff = float(np.abs(got - want.numpy()).max())
    return {"images": n, "prediction_agreement": agree, "max_abs_logit_diff": max_diff,
            "test_vector_max_diff": diff, "model_id": m.model_id}


def train_config(layer, args, data, out_dir, log):
    name = config_name(layer)
    train_x, train_y, test_x, test_y, mean, std = data
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = rm.LeNet(in_shape=(1, 28, 28), num_classes=C, salt_layer=layer, mean=(mean,), std=(std,))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    salts, salt_args = eval_salts(model, test_x.shape[0], args.seed)

    history = []
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        te = time.time()
        loss, train_acc = train_epoch(model, opt, train_x, train_y, gen)
        train_s = time.time() - te
        desalted, server = accuracies(predict(model, test_x, salts, salt_args), salts, test_y)
        history.append({"epoch": epoch, "train_loss": round(loss, 5), "train_acc_salted_target": round(train_acc, 5),
                        "test_acc_desalted": desalted, "test_acc_server_view": server,
                        "train_seconds": round(train_s, 1)})
        log(f"[{name}] epoch {epoch}/{args.epochs}: loss {loss:.4f}, train acc {train_acc:.4f}, "
            f"test de-salted {desalted:.4f}, server view {server:.4f} ({train_s:.0f} s)")
    seconds = time.time() - t0

    logits = predict(model, test_x, salts, salt_args)
    desalted, server = accuracies(logits, salts, test_y)
    out_dir.mkdir(parents=True, exist_ok=True)
    eval_dir = out_dir / "eval"
    eval_dir.mkdir(exist_ok=True)
    preds = desalt(logits, salts).numpy().astype(np.int64)
    np.save(eval_dir / f"{name}_predictions.npy", preds)
    if model.salt_kind != "none":
        np.save(eval_dir / f"{name}_salts.npy", salts.numpy().astype(np.int64))
    if model.salt_kind == "fc":
        np.save(eval_dir / f"{name}_salt_vectors.npy", salt_args.numpy().astype(np.float32))

    # Test vector: the first four test images with their evaluation salts.
    k = min(4, test_x.shape[0])
    example = (to_float(test_x[:k]),) if salt_args is None else (to_float(test_x[:k]), salt_args[:k])
    path = out_dir / f"lenet_fmnist_{name}.salted"
    meta = {"config": f"lenet_1x28x28_{name}", "dataset": "fashion-mnist", "class_names": ",".join(fashion_mnist.CLASSES),
            "input_range": "pixel / 255 (normalisation is inside the graph)",
            "trained_epochs": str(args.epochs), "seed": str(args.seed),
            "test_acc_desalted": f"{desalted:.4f}", "test_acc_server_view": f"{server:.4f}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_to_salted.export_module(model, example, path, metadata=meta, salt_layer=layer)
    check = verify_export(path, model, test_x, salts, salt_args, args.verify_images)
    log(f"[{name}] test de-salted {desalted:.4f}, server view {server:.4f}; {path} "
        f"({path.stat().st_size // 1024} KB; numpy graph agrees on {check['prediction_agreement']:.4f} of {check['images']} images)")
    eval_files = sorted(str(p.relative_to(out_dir)) for p in eval_dir.glob(f"{name}_*.npy"))
    return {"config": name, "salt_layer": layer, "salt_kind": model.salt_kind, "epochs": args.epochs,
            "seconds": round(seconds, 1), "test_acc_desalted": desalted, "test_acc_server_view": server,
            "seed": args.seed, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "train_images": int(train_x.shape[0]), "test_images": int(test_x.shape[0]),
            "normalize_mean": mean, "normalize_std": std, "file": _display(path), "eval_files": eval_files,
            "export_check": check, "history": history,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _display(path):
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# Classes that get a second example image: shirt and t-shirt/top, the pair a
# Fashion-MNIST classifier confuses most, so the examples show top-k at work.
SECOND_IMAGE_CLASSES = (6, 0)


def write_images(directory, images, labels):
    """The first test image of each class plus the second one of
    SECOND_IMAGE_CLASSES, as 28x28 8-bit grayscale PNG named
    <test index>_<class>_<label>.png (pixel values exactly the IDX bytes)."""
    from PIL import Image  # python3-pil; only needed here

    chosen = [int(np.flatnonzero(labels == c)[0]) for c in range(C)]
    chosen += [int(np.flatnonzero(labels == c)[1]) for c in SECOND_IMAGE_CLASSES]
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i in sorted(chosen):
        label = int(labels[i])
        path = directory / f"{i:04d}_{fashion_mnist.slug(label)}_{label}.png"
        Image.fromarray(images[i], mode="L").save(path, optimize=True)
        written.append(path)
    return written


def markdown_table(summary):
    rows = ["| config | salt | epochs | train time | test acc. de-salted | server view | accuracy after each epoch (de-salted) | file |",
            "|---|---|---|---|---|---|---|---|"]
    for e in summary["configs"]:
        kind = {"none": "none", "cnn": f"CNN, layer {e['salt_layer']}", "fc": f"FC, layer {e['salt_layer']}"}[e["salt_kind"]]
        curve = " ".join(f"{h['test_acc_desalted'] * 100:.1f}" for h in e["history"])
        rows.append(f"| {e['config']} | {kind} | {e['epochs']} | {e['seconds'] / 60:.1f} min | "
                    f"{e['test_acc_desalted'] * 100:.2f} % | {e['test_acc_server_view'] * 100:.2f} % | {curve} | "
                    f"`{e['file']}`{'' if e.get('shipped') else ' (not shipped)'} |")
    return "\n".join(rows)


def _join_list_values(argv):
    """`--configs -1,0,1` -> `--configs=-1,0,1`: argparse would take a value
    starting with "-1," for an option."""
    out = []
    for i, a in enumerate(argv):
        if i > 0 and argv[i - 1] in ("--configs", "--ship") and a.startswith("-"):
            out[-1] = f"{argv[i - 1]}={a}"
        else:
            out.append(a)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "models",
                    help="directory for the shipped models and training_summary.json (default: models/)")
    ap.add_argument("--extra-out", type=pathlib.Path, default=ROOT / "build" / "models",
                    help="directory for the configurations not in --ship (default: build/models/)")
    ap.add_argument("--ship", default=DEFAULT_SHIP, help=f"configurations written to --out (default: {DEFAULT_SHIP})")
    ap.add_argument("--configs", default="-1,0,1,3,5,6,7",
                    help="salt layers to train: -1 (= std), 0, 1, 3, 5 (CNN salt), 6, 7 (FC salt)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0,
                    help="use only the first N training and N test images (smoke tests)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--verify-images", type=int, default=200,
                    help="test images on which the exported graph (numpy) must predict like PyTorch")
    ap.add_argument("--data-dir", default=None, help="directory of the IDX .gz files (default: the Debian package's)")
    ap.add_argument("--write-images", type=pathlib.Path, default=None, help="write a dozen test PNGs to this directory")
    ap.add_argument("--images-only", action="store_true", help="only --write-images, no training")
    ap.add_argument("--table", action="store_true",
                    help="print --out/training_summary.json as a markdown table (docs/TRAINING.md) and exit")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(_join_list_values(argv))
    if args.epochs < 1:
        ap.error("--epochs: expected >= 1")
    layers = parse_layers(args.configs)
    ship = set(parse_layers(args.ship))

    if args.table:
        print(markdown_table(json.loads((args.out / "training_summary.json").read_text())))
        return 0

    def log(msg):
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    try:
        train_x, train_y = fashion_mnist.load("train", args.data_dir)
        test_x, test_y = fashion_mnist.load("test", args.data_dir)
    except fashion_mnist.DatasetError as e:
        print(e, file=sys.stderr)
        return 2

    if args.write_images:
        for p in write_images(args.write_images, test_x, test_y):
            log(f"wrote {p}")
        if args.images_only:
            return 0

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    if args.limit > 0:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
        test_x, test_y = test_x[:args.limit], test_y[:args.limit]
    # Normalisation constants from the training images actually used.
    pixels = train_x.astype(np.float64) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    log(f"fashion-mnist: {len(train_y)} train / {len(test_y)} test images; mean {mean:.4f} std {std:.4f}; "
        f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}")
    data = (train_x, train_y, test_x, test_y, mean, std)

    command = " ".join(["/usr/bin/python3", "tools/weights_import/train_fashion_mnist.py"] + argv)
    summary_path = args.out / "training_summary.json"
    summary = {"configs": []}
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        summary.pop("command", None)  # older files had one run-wide command; now it is per configuration
    args.out.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        entry = train_config(layer, args, data, args.out if layer in ship else args.extra_out, log)
        entry["shipped"] = layer in ship
        entry["command"] = command
        summary["configs"] = [e for e in summary["configs"] if e["config"] != entry["config"]] + [entry]
        summary["configs"].sort(key=lambda e: e["salt_layer"])
        summary_path.write_text(json.dumps(summary, indent=1) + "\n")  # after every config: a partial run still reports
    log(f"summary: {summary_path}")
    for e in summary["configs"]:
        log(f"  {e['config']:>6}: de-salted {e['test_acc_desalted']:.4f}, server view {e['test_acc_server_view']:.4f}, "
            f"{e['epochs']} epochs, {e['seconds']:.0f} s -> {e['file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
