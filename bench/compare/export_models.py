#!/usr/bin/python3
"""Exports the bench/compare models once, with fixed random weights.

    /usr/bin/python3 bench/compare/export_models.py --out DIR [--models a,b] [--batches 1,64]

For every model (bench/compare/models.py) it writes into DIR:
  NAME.onnx      torch.onnx.export, opset 13, dynamic batch (what ONNX Runtime runs)
  NAME.salted    that same ONNX file converted by tools/weights_import/onnx_to_salted.py
                 (convert_file), with a batch-2 PyTorch test vector that loading verifies
  NAME.pt        the PyTorch state_dict (what the PyTorch worker runs)
  NAME_bB_x.npy, NAME_bB_salt.npy   fixed random inputs per batch B (the salt: float
                 [B,1,1,1] integers for a CNN salt, [B,C] vectors for an FC salt)
  NAME.stamp     hash of the scripts and versions that produced the files
Models whose stamp matches are skipped; missing input files are added.
Prints one line per model. Errors: one line on stderr, exit status 1.
"""
import argparse
import hashlib
import pathlib
import sys
import tempfile
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models as registry  # noqa: E402

sys.path.insert(0, str(registry.IMPORT_DIR))

INPUT_SEED = 7


def script_hash():
    """What the exported bytes depend on: this script, the registry, the
    importer and the model definitions, and the torch/onnx versions."""
    import onnx
    import torch
    h = hashlib.sha256()
    for p in (HERE / "export_models.py", HERE / "models.py", registry.IMPORT_DIR / "reference_models.py",
              registry.IMPORT_DIR / "onnx_to_salted.py", registry.IMPORT_DIR / "salted_format.py"):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(f"torch {torch.__version__} onnx {onnx.__version__}".encode())
    return h.hexdigest()


def make_inputs(model, batch):
    """Fixed inputs for (input shape, batch): a standard model and its salted
    twin get the same x. reference_models.example_inputs draws x, then salts."""
    import torch
    rm = registry._reference_models()
    seed = INPUT_SEED * 1000003 + batch * 101 + sum(model.in_shape)
    g = torch.Generator().manual_seed(seed)
    return rm.example_inputs(model, batch=batch, generator=g)


def export_onnx(model, inputs, path):
    """The same torch.onnx.export call as onnx_to_salted.export_module, written
    to a file so that ONNX Runtime and the converter read the same graph."""
    import torch
    names = ["x", "salt"][:len(inputs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, tuple(inputs), str(path), input_names=names, output_names=["logits"],
                          dynamic_axes={n: {0: "N"} for n in names + ["logits"]}, opset_version=13,
                          do_constant_folding=True, training=torch.onnx.TrainingMode.PRESERVE)


def save_npy(path, t):
    import numpy as np
    np.save(str(path), t.detach().cpu().numpy().astype(np.float32))


def export_model(name, out, digest, batches):
    import torch
    import onnx_to_salted

    stamp = out / f"{name}.stamp"
    files = [out / f"{name}.{ext}" for ext in ("onnx", "salted", "pt")]
    fresh = stamp.exists() and stamp.read_text().strip() == digest and all(f.exists() for f in files)
    model = registry.construct(name)
    if not fresh:
        for old in out.glob(f"{name}_b*_*.npy"):
            old.unlink()
        stamp.unlink(missing_ok=True)
        tv_inputs = make_inputs(model, 2)
        export_onnx(model, tv_inputs, files[0])
        with torch.no_grad():
            ref = model(*tv_inputs)
        with tempfile.TemporaryDirectory() as tv:
            tvd = pathlib.Path(tv)
            for n, t in zip(["x", "salt"], tv_inputs):
                save_npy(tvd / f"{n}.npy", t)
            save_npy(tvd / "logits.npy", ref)
            (tvd / "producer.txt").write_text(f"pytorch {torch.__version__}\n")
            meta = {"source": f"pytorch {torch.__version__} via onnx opset 13", "config": name,
                    "architecture": registry._reference_models().architecture_name(model),
                    "purpose": "bench/compare (random weights)"}
            onnx_to_salted.convert_file(files[0], files[1], metadata=meta, salt_layer=getattr(model, "salt_layer", None),
                                        test_vector_dir=tvd)
        torch.save(model.state_dict(), str(files[2]))
    made = []
    for b in batches:
        xp, sp = out / f"{name}_b{b}_x.npy", out / f"{name}_b{b}_salt.npy"
        salted = model.salt_kind != "none"
        if xp.exists() and (sp.exists() or not salted):
            continue
        ins = make_inputs(model, b)
        save_npy(xp, ins[0])
        if salted:
            save_npy(sp, ins[1])
        made.append(b)
    if not fresh:
        stamp.write_text(digest + "\n")
    return {"model": name, "exported": not fresh, "inputs_written": made}


def parse_ints(text, what):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"export_models: error: {what}: expected comma-separated integers, found '{text}'")
    if not vals or any(v < 1 or v > 4096 for v in vals):
        raise SystemExit(f"export_models: error: {what}: expected integers in 1..4096, found '{text}'")
    return vals


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export the bench/compare models (ONNX, .salted, state_dict, inputs).")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--models", default=",".join(registry.MODELS), help="comma-separated names (default: all)")
    ap.add_argument("--batches", default="1,64", help="input batches to write (default 1,64)")
    args = ap.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    msg = registry.check_names(names)
    if msg:
        print(f"export_models: error: {msg}", file=sys.stderr)
        return 1
    batches = parse_ints(args.batches, "--batches")
    out = pathlib.Path(args.out)
    try:
        import torch
        torch.set_num_threads(1)
        out.mkdir(parents=True, exist_ok=True)
        digest = script_hash()
        for name in names:
            r = export_model(name, out, digest, batches)
            state = "exported" if r["exported"] else "cached"
            extra = f", inputs for batch {','.join(map(str, r['inputs_written']))}" if r["inputs_written"] else ""
            print(f"export_models: {name}: {state}{extra}", flush=True)
    except Exception as e:  # one line, whatever failed (torch, onnx, the converter, the disk)
        print(f"export_models: error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
