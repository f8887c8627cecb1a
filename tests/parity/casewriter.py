"""Helpers shared by the parity generators: one case = one directory."""
import pathlib

import numpy as np


class Case:
    def __init__(self, root, name):
        self.dir = pathlib.Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=False)
        self.params = []

    def param(self, key, *values):
        """Records `key v1 v2 ...` (ints or floats) in params.txt."""
        self.params.append(key + " " + " ".join(repr(float(v)) if isinstance(v, float) else str(int(v)) for v in values))
        return self

    def array(self, name, t):
        """Saves a torch tensor or numpy array as <name>.npy (float32 unless integer)."""
        a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        np.save(self.dir / f"{name}.npy", np.ascontiguousarray(a))
        return self

    def close(self):
        (self.dir / "params.txt").write_text("\n".join(self.params) + "\n")
