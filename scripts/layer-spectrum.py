#!/usr/bin/env python3
"""Where a model has a null space: per layer, C0's spectrum from a projector artifact written by
`alphaedit cov --layers ...` (all eigenvalues are stored with it), and what each threshold rule keeps.

  python3 scripts/layer-spectrum.py PROJECTOR.bin [--json OUT]

Columns: eigenvalues min / median / max; τ 2e-2 (the catalog's): kept share of the directions and of
the trace (the preserved keys' energy E‖k‖² in them); trace shares 1e-2 and 1e-3: the share of the
directions, smallest eigenvalues first, that hold at most 1 % / 0.1 % of the energy (the room a null
space in the strict sense leaves to edit in); top: the largest eigenvalue's share of the trace (where one
massive-activation direction holds most of it, the trace shares say little about the others)."""
import json, sys
import numpy as np
from artifacts import projector_eigenvalues

def kept_by_trace(ev, share):
    c = np.cumsum(ev)
    return int(np.searchsorted(c, share * c[-1], side="right"))

def main():
    eig = projector_eigenvalues(sys.argv[1])
    rows = []
    for l in sorted(eig):
        ev = np.clip(eig[l][0], 0, None)
        f, tr = len(ev), ev.sum()
        k = int((ev < 2e-2).sum())
        rows.append({"layer": l, "min": float(ev[0]), "median": float(np.median(ev)), "max": float(ev[-1]),
                     "tau_2e-2_kept": k / f, "tau_2e-2_trace": float(ev[:k].sum() / tr),
                     "trace_1e-2_kept": kept_by_trace(ev, 1e-2) / f, "trace_1e-3_kept": kept_by_trace(ev, 1e-3) / f,
                     "top_share": float(ev[-1] / tr)})
    print("layer   min eig    median     max      τ 2e-2 kept  trace   ≤1 % of trace  ≤0.1 %   top")
    for r in rows:
        print(f"{r['layer']:5d}  {r['min']:.2e}  {r['median']:.2e}  {r['max']:.2e}  {100 * r['tau_2e-2_kept']:9.1f} %  {r['tau_2e-2_trace']:.1e}"
              f"  {100 * r['trace_1e-2_kept']:10.1f} %  {100 * r['trace_1e-3_kept']:6.1f} %  {100 * r['top_share']:4.0f} %")
    if "--json" in sys.argv:
        json.dump(rows, open(sys.argv[sys.argv.index("--json") + 1], "w"), indent=1)

main()
