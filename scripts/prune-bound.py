#!/usr/bin/env python3
"""Would PRUNE have changed a campaign? Its accumulated update's largest singular value, batch by batch.

PRUNE (README "Methods as stages") only touches the singular values of the accumulated update
W − W0 that exceed σ̄, the largest singular value of the unedited ffn_down. When a campaign's
accumulated update stays at or below σ̄ after every batch, PRUNE is the identity on it: the PRUNE
campaign with the same other stages commits the same deltas (to double rounding) and so the same model.

For each state and edited layer this prints σ̄ and, after each committed batch b, σ_max(Σ_{≤b} ΔW).

  pip install gguf numpy        # gguf-py reads and dequantizes the model's tensors
  python3 scripts/prune-bound.py MODEL.gguf STATE_DIR [STATE_DIR …]   # JSON on stdout, a table on stderr

Reads our artifact container through scripts/artifacts.py.
"""
import glob, json, os, re, sys
import numpy as np

from artifacts import deltas

def unedited_down(model, layers):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    r = GGUFReader(model)
    out = {}
    for t in r.tensors:
        m = re.fullmatch(r"blk\.(\d+)\.ffn_down\.weight", t.name)
        if m and int(m.group(1)) in layers:
            w = dequantize(t.data, t.tensor_type)
            out[int(m.group(1))] = np.asarray(w, dtype=np.float64).reshape(int(t.shape[1]), int(t.shape[0]))
    return out

def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model, states = sys.argv[1], sys.argv[2:]
    runs = {}
    for st in states:
        paths = sorted(glob.glob(os.path.join(st, "deltas", "batch-*.bin")),
                       key=lambda p: int(re.search(r"batch-(\d+)", p).group(1)))
        if not paths:
            sys.exit(f"{st}: no committed batches (deltas/batch-*.bin)")
        runs[st] = [deltas(p) for p in paths]
    layers = sorted({l for batches in runs.values() for d in batches for l in d})
    w0 = unedited_down(model, set(layers))
    missing = [l for l in layers if l not in w0]
    if missing:
        sys.exit(f"{model}: no ffn_down for layers {missing}")
    res = {"model": os.path.basename(model), "layers": {}}
    for l in layers:
        bound = float(np.linalg.norm(w0[l], 2))
        row = {"sigma_bar": bound, "states": {}}
        for st, batches in runs.items():
            acc, sig = 0, []
            for d in batches:
                acc = acc + d[l]
                sig.append(float(np.linalg.norm(acc, 2)))
            row["states"][os.path.basename(st.rstrip("/"))] = sig
        res["layers"][l] = row
        print(f"layer {l}: σ̄ {bound:.3f}", file=sys.stderr)
        for name, sig in row["states"].items():
            flag = "above σ̄ from batch " + str(next(i + 1 for i, s in enumerate(sig) if s > bound)) if max(sig) > bound else "never above σ̄"
            print(f"  {name:>10}: " + " ".join(f"{s:.3f}" for s in sig) + f"  ({flag})", file=sys.stderr)
    print(json.dumps(res))

main()
