#!/usr/bin/env python3
"""Whose keys does a campaign's update reach? (the "why" behind a specificity loss under AlphaEdit)

AlphaEdit's projector keeps the directions where the K₀ statistics C₀ have eigenvalues below τ, so an
update leaves keys like K₀'s nearly unchanged. The keys that a specificity metric reads may still be
reached, for two reasons this script separates, per edited layer:
  1. they are not like K₀'s: a key set X whose covariance C_X puts much of its trace in C₀'s kept
     directions (tr(U_kᵀ C_X U_k) / tr(C_X), U_k the eigenvectors of C₀ with λ < τ) is not protected;
  2. earlier edits moved the keys: the same sentences read through the edited model (statistics of
     `cov --model edited.gguf`) put more of their trace there than through the unedited one.
For each state it also gives the update's RMS change on each key set, √tr(ΔW C_X ΔWᵀ) (ΔW = the sum of
its batch deltas), and of batch 1's delta alone (computed on the unedited model, so reason 2 plays no part).

  python3 scripts/key-shift.py --tau 2e-2 K0.bin [NAME=STATISTICS.bin …] [--state STATE_DIR …] [--edited GGUF]

K0.bin is the campaign's K₀ statistics (`cov --out`); each NAME=… another key set's, from `cov --corpus
FILE` on the same layers (e.g. zsRE's locality prompts, before and after the edits). JSON on stdout, a
table on stderr. Reads our artifact container through scripts/artifacts.py. With --edited (`alphaedit export
--state` of the first state; needs `pip install gguf`) the changes are also given relative to the unedited
weights' RMS ‖W k‖ on the same keys (W = the exported F32 ffn_down minus that state's ΔW).
"""
import argparse, glob, json, os, sys
import numpy as np

from artifacts import statistics, deltas

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tau", type=float, required=True, help="absolute null-space threshold τ")
    ap.add_argument("k0")
    ap.add_argument("keys", nargs="*", help="NAME=statistics.bin")
    ap.add_argument("--state", action="append", default=[])
    ap.add_argument("--edited", help="the first state's exported GGUF, for RMS ‖W k‖")
    a = ap.parse_args()
    c0 = statistics(a.k0)
    sets = {"K0": c0}
    for kv in a.keys:
        name, path = kv.split("=", 1)
        sets[name] = statistics(path)
        missing = set(c0) - set(sets[name])
        if missing: sys.exit(f"{path}: no statistics for layer(s) {sorted(missing)}")
    states = {}
    for st in a.state:
        files = sorted(glob.glob(os.path.join(st, "deltas", "batch-*.bin")))
        if not files: sys.exit(f"{st}: no deltas/batch-*.bin")
        per = [deltas(p) for p in files]
        name = "/".join(os.path.normpath(st).split(os.sep)[-2:])
        states[name] = {"total": {l: sum(d[l] for d in per) for l in c0}, "batch 1": per[0]}
    base = {}
    if a.edited:
        if not states: sys.exit("--edited needs the --state it was exported from")
        from gguf import GGUFReader
        t = {x.name: x for x in GGUFReader(a.edited).tensors}
        first = next(iter(states.values()))["total"]
        for l in c0:
            x = t.get(f"blk.{l}.ffn_down.weight")
            if x is None or x.data.dtype != np.float32: sys.exit(f"{a.edited}: no F32 blk.{l}.ffn_down.weight")
            base[l] = np.asarray(x.data, dtype=np.float64).reshape(first[l].shape) - first[l]
    res = {}
    for l in sorted(c0):
        w, v = np.linalg.eigh(c0[l])
        uk = v[:, w < a.tau]
        row = {"kept": float((w < a.tau).mean()), "null_space_trace_share": {}, "rms_change": {}}
        for name, c in sets.items():
            cx = c[l]
            row["null_space_trace_share"][name] = float(np.trace(uk.T @ cx @ uk) / np.trace(cx))
        for sn, s in states.items():
            row["rms_change"][sn] = {part: {name: float(np.sqrt(max(np.trace(d[l] @ c[l] @ d[l].T), 0)))
                                            for name, c in sets.items()} for part, d in s.items()}
        if l in base:
            row["rms_w_k"] = {name: float(np.sqrt(np.trace(base[l] @ c[l] @ base[l].T))) for name, c in sets.items()}
        res[l] = row
        print(f"layer {l}: τ {a.tau:g} keeps {row['kept']:.1%} of the directions; share of each key set's trace there: "
              + ", ".join(f"{n} {x:.2%}" for n, x in row["null_space_trace_share"].items()), file=sys.stderr)
        for sn, parts in row["rms_change"].items():
            for part, r in parts.items():
                rel = row.get("rms_w_k")
                print(f"  {sn} ({part}): RMS ‖ΔW k‖ " + ", ".join(f"{n} {x:.4f}" + (f" ({x / rel[n]:.1%} of ‖W k‖)" if rel else "")
                                                              for n, x in r.items()), file=sys.stderr)
    print(json.dumps(res))

main()
