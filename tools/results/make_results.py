#!/usr/bin/python3
"""The paper-style results table, measured by the C++ engine (docs/RESULTS.md).

    /usr/bin/python3 tools/results/make_results.py --models DIR [DIR ...] --salted BIN \
        --data /usr/share/datasets/fashion-mnist --out docs/

For every model file in DIR... (standard and salted LeNets from
tools/weights_import/train_fashion_mnist.py):
  * runs `salted run` on the Fashion-MNIST test images with fixed seeded salts
    (FC salt vectors drawn in numpy from the seed, PAPER.md) and de-salts in
    numpy: de-salted accuracy (the client's) and server-view accuracy
    (argmax vs label without the salt: what the cloud learns);
  * runs the same images and salts through the numpy float64 interpreter of
    the same graph (tools/weights_import/numpy_runtime.py) and reports
    |C++ - reference| in accuracy points;
  * when a DIR holds training_summary.json and eval/ salts, re-measures the C++
    accuracy on the training script's own evaluation images and salts and
    compares it with the PyTorch accuracy it recorded (the acceptance check);
  * takes the cut-tensor size and head/tail MFLOPs at the split cut from
    `salted info --json` (the earliest safe cut; salted_cli.split_cut);
  * trains the leakage probes of leakage_probe.py on Z at that cut.
Writes OUT/RESULTS.md (the command at the top) and OUT/results_accuracy.png.
"""
import argparse
import datetime
import json
import pathlib
import shlex
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import leakage_probe  # noqa: E402
import salted_cli as sc  # noqa: E402

STREAM_TABLE = 1  # seeded_salts stream of the table's test salts


def config_name(model):
    stem = model.path.stem
    return stem[len("lenet_fmnist_"):] if stem.startswith("lenet_fmnist_") else stem


def summary_entries(models_dir):
    path = pathlib.Path(models_dir) / "training_summary.json"
    if not path.is_file():
        return {}
    return {e["config"]: e for e in json.loads(path.read_text()).get("configs", [])}


def eval_inputs(model):
    """The training script's evaluation salts (and FC vectors) next to the
    model (DIR/eval/<config>_salts.npy ...), or None when absent."""
    name = config_name(model)
    d = model.path.parent / "eval"
    preds = d / f"{name}_predictions.npy"
    if not preds.is_file():
        return None
    n = len(np.load(preds))
    if not model.salted:
        return np.zeros(n, np.int64), None, np.load(preds)
    s_path, v_path = d / f"{name}_salts.npy", d / f"{name}_salt_vectors.npy"
    if not s_path.is_file() or (model.salt_kind == "fc" and not v_path.is_file()):
        return None
    vectors = np.load(v_path) if model.salt_kind == "fc" else None
    return np.load(s_path).astype(np.int64), vectors, np.load(preds)


def pytorch_check(model, binary, entry, test_x, test_y):
    """C++ accuracy on the training script's evaluation images and salts vs
    the PyTorch accuracy in training_summary.json."""
    found = eval_inputs(model)
    if entry is None or found is None:
        return None
    salts, vectors, torch_pred = found
    n = len(salts)
    if n > len(test_y) or entry.get("test_images", n) != n:
        return None
    logits = model.engine_logits(binary, sc.to_float(test_x[:n]), salts, vectors)
    pred = sc.desalted_classes(logits, salts)
    acc = sc.accuracy(pred, test_y[:n])
    return {"images": n, "pytorch_acc": entry["test_acc_desalted"], "engine_acc": acc,
            "diff_points": abs(acc - entry["test_acc_desalted"]) * 100,
            "prediction_agreement": float(np.mean(pred == torch_pred))}


def measure(model, binary, test_x, test_y, seed, reference=True):
    info = sc.model_info(binary, model.path)
    cut = sc.split_cut(info)
    salts = sc.seeded_salts(len(test_y), model.classes, seed, STREAM_TABLE) if model.salted \
        else np.zeros(len(test_y), np.int64)
    salts, vectors = model.salt_inputs(salts, seed, STREAM_TABLE)
    x = sc.to_float(test_x)
    logits = model.engine_logits(binary, x, salts, vectors)
    pred = sc.desalted_classes(logits, salts)
    row = {"model": model.path.name, "config": config_name(model), "salt_kind": model.salt_kind,
           "salt_layer": model.salt_layer, "images": len(test_y),
           "epochs": model.file.header.get("metadata", {}).get("trained_epochs"),
           "desalted_acc": sc.accuracy(pred, test_y), "server_acc": sc.accuracy(logits.argmax(1), test_y),
           "cut": cut, "mflops_total": info["mflops_per_item"]}
    if reference:
        ref = model.reference_logits(x, salts, vectors)
        ref_pred = sc.desalted_classes(ref, salts)
        row["reference_acc"] = sc.accuracy(ref_pred, test_y)
        row["reference_diff_points"] = abs(row["desalted_acc"] - row["reference_acc"]) * 100
        row["reference_agreement"] = float(np.mean(ref_pred == pred))
        row["reference_max_logit_diff"] = float(np.abs(ref.astype(np.float64) - logits).max())
    return row


def pct(v):
    return "—" if v is None else f"{v * 100:.2f} %"


def layer_text(row):
    if row["salt_kind"] == "none":
        return "− (standard)"
    return f"{row['salt_layer']} ({row['salt_kind'].upper()})"


def write_markdown(path, rows, probes, checks, command, banner, plot_name):
    std = next((r for r in rows if r["salt_kind"] == "none"), None)
    lines = ["# Results: salted LeNet on Fashion-MNIST, measured by the C++ engine", "",
             "Generated by:", "", "```sh", command, "```", ""]
    if banner:
        lines += [f"> **{banner}**", ""]
    n = rows[0]["images"] if rows else 0
    lines += [f"Generated {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}. "
              f"Accuracies on {n} Fashion-MNIST test images, one seeded uniform salt per image "
              "(FC salt vectors drawn in numpy from the same seed, PAPER.md); logits from `salted run`, "
              "de-salted in numpy. *Server view* is `argmax(Y) == label` without the salt: what the cloud "
              "learns (about 1/C = 10 % when the salt works). *Reference* runs the same graph, images and "
              "salts through the numpy float64 interpreter (`tools/weights_import/numpy_runtime.py`). "
              "Cut: the earliest safe cut (docs/SPLIT.md; for the standard model the cut after its first "
              "conv), with the cut tensor's bytes per image (float32 frame payload) and the head/tail "
              "MFLOPs per image from `salted info --json`.", "",
              "| model | salt layer | epochs | de-salted acc. | server view | standard acc. | reference acc. | "
              "\\|C++ − ref\\| (points) | split cut | cut bytes | head MFLOPs | tail MFLOPs |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cut = r["cut"] or {}
        ref = pct(r.get("reference_acc")) if "reference_acc" in r else "not run"
        diff = f"{r['reference_diff_points']:.2f}" if "reference_diff_points" in r else "—"
        lines.append(f"| `{r['model']}` | {layer_text(r)} | {r['epochs'] or '?'} | {pct(r['desalted_acc'])} | "
                     f"{pct(r['server_acc'])} | {pct(std['desalted_acc']) if std else '—'} | {ref} | {diff} | "
                     f"`{cut.get('name', '—')}` | {cut.get('bytes', '—')} | {cut.get('head_mflops', 0):.2f} | "
                     f"{cut.get('tail_mflops', 0):.2f} |")
    lines += ["", f"![accuracy against salt layer]({plot_name})", ""]

    lines += ["## C++ engine vs PyTorch (the training script's evaluation)", ""]
    if checks:
        lines += ["The training script (`tools/weights_import/train_fashion_mnist.py`) records PyTorch's "
                  "de-salted test accuracy in `training_summary.json` and saves its evaluation salts (and FC "
                  "salt vectors) and predictions under `eval/`. The C++ engine re-runs the same images and "
                  "salts:", "",
                  "| model | images | PyTorch acc. | C++ acc. | \\|diff\\| (points) | same predictions |",
                  "|---|---|---|---|---|---|"]
        for name, c in checks:
            lines.append(f"| `{name}` | {c['images']} | {pct(c['pytorch_acc'])} | {pct(c['engine_acc'])} | "
                         f"{c['diff_points']:.2f} | {c['prediction_agreement'] * 100:.2f} % |")
    else:
        lines.append("No `training_summary.json` with `eval/` salts next to the models: not measured.")
    lines += [""]

    lines += ["## Leakage of the salt through the cut tensor", ""]
    if probes:
        p0 = probes[0]
        lines += [f"A linear probe (multinomial logistic regression on standardised Z, {p0['epochs']} epochs of "
                  f"Adam, seeded) trained on the cut tensor Z of {p0['train_images']} training images with "
                  f"random salts, tested on {p0['test_images']} test images with fresh salts. Z comes from "
                  "`salted head` at the split cut, decoded from its frames (`tools/results/frames.py`). "
                  "A salt probe well above chance means the cloud can estimate the salt from Z, and so "
                  "undo it; a label probe above chance means Z reveals the class directly (expected: the "
                  "tail must compute it from Z).", "",
                  "| model | cut | features | salt probe acc. | label probe acc. | chance |",
                  "|---|---|---|---|---|---|"]
        for p in probes:
            lines.append(f"| `{p['model']}` | `{p['cut']}` | {p['features']} | {pct(p['salt_probe_acc'])} "
                         f"(train {pct(p['salt_probe_train_acc'])}) | {pct(p['label_probe_acc'])} "
                         f"(train {pct(p['label_probe_train_acc'])}) | {pct(p['chance'])} |")
    else:
        lines.append("Not run (`--no-probe`, or no salted model).")
    lines += [""]
    path.write_text("\n".join(lines))


def write_plot(path, rows, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    salted = [r for r in rows if r["salt_kind"] != "none"]
    std = next((r for r in rows if r["salt_kind"] == "none"), None)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    xs = [r["salt_layer"] for r in salted]
    ax.plot(xs, [r["desalted_acc"] * 100 for r in salted], "o-", label="salted, de-salted (client)")
    ax.plot(xs, [r["server_acc"] * 100 for r in salted], "s--", label="salted, server view")
    if std:
        ax.axhline(std["desalted_acc"] * 100, color="gray", linestyle=":", label="standard")
    if salted:
        ax.axhline(100.0 / salted[0].get("classes", 10), color="red", linewidth=0.8, alpha=0.5, label="chance")
    ax.set_xlabel("salt layer (0-5 CNN salt, 6-7 FC salt)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xticks(sorted(set(xs)) if xs else [])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, type=pathlib.Path, nargs="+",
                    help="directories of .salted files (e.g. models build/models: the training script ships "
                         "some configurations and writes the others elsewhere)")
    ap.add_argument("--salted", required=True, help="the salted program (build/salted)")
    ap.add_argument("--data", default=None, help="Fashion-MNIST IDX directory (default: the Debian package's)")
    ap.add_argument("--out", required=True, type=pathlib.Path, help="directory for RESULTS.md and results_accuracy.png")
    ap.add_argument("--seed", type=int, default=0, help="seed of the test salts and of the probes")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N test images (default: all 10000)")
    ap.add_argument("--probe-train", type=int, default=10000, help="probe training images")
    ap.add_argument("--probe-test", type=int, default=2000, help="probe test images")
    ap.add_argument("--no-probe", action="store_true", help="skip the leakage probes")
    ap.add_argument("--no-reference", action="store_true", help="skip the numpy reference (slow: ~1 min per model)")
    ap.add_argument("--banner", default="", help="a line shown in bold at the top (e.g. that the models are quick ones)")
    ap.add_argument("--json", type=pathlib.Path, default=None, help="also write every measurement as JSON")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)

    def log(msg):
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    models = sorted((m for d in args.models for m in sc.find_models(d)),
                    key=lambda m: (-2 if m.salt_layer is None else m.salt_layer, m.path.name))
    if not models:
        print(f"make_results: {' '.join(map(str, args.models))}: no .salted model files", file=sys.stderr)
        return 1
    test_x, test_y = sc.load_split("test", args.data, args.limit)
    summary = {}
    for d in args.models:  # each training_summary.json lists every configuration of its run
        summary.update(summary_entries(d))
    # The PyTorch check runs on the training script's own evaluation images, whatever --limit says.
    full_x, full_y = (test_x, test_y) if not args.limit else sc.load_split("test", args.data)
    rows, checks, probes = [], [], []
    for m in models:
        row = measure(m, args.salted, test_x, test_y, args.seed, reference=not args.no_reference)
        row["classes"] = m.classes
        rows.append(row)
        log(f"{m.path.name}: de-salted {row['desalted_acc']:.4f}, server {row['server_acc']:.4f}, "
            f"reference {row.get('reference_acc', float('nan')):.4f}, cut {row['cut'] and row['cut']['name']}")
        check = pytorch_check(m, args.salted, summary.get(config_name(m)), full_x, full_y)
        if check:
            checks.append((m.path.name, check))
            log(f"  vs PyTorch: {check['engine_acc']:.4f} vs {check['pytorch_acc']:.4f} on {check['images']} images")
    if not args.no_probe:
        tx, ty = sc.load_split("train", args.data, args.probe_train)
        px, py = sc.load_split("test", args.data, args.probe_test)
        for m, row in zip(models, rows):
            if m.salted and row["cut"]:
                probes.append(leakage_probe.probe_model(m, args.salted, tx, ty, px, py, args.seed, row["cut"], log))

    args.out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["/usr/bin/python3", "tools/results/make_results.py"] + [shlex.quote(a) for a in argv])
    plot = args.out / "results_accuracy.png"
    write_plot(plot, rows, args.banner or f"LeNet on Fashion-MNIST ({len(test_y)} test images), C++ engine")
    write_markdown(args.out / "RESULTS.md", rows, probes, checks, command, args.banner, plot.name)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "pytorch_checks": dict(checks), "probes": probes},
                                        indent=1, default=str) + "\n")
    log(f"wrote {args.out / 'RESULTS.md'} and {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
