#!/usr/bin/env python3
"""Where a sequential campaign's accumulated update lands on the preserved keys (issue 10 §6's "why").

For each edited layer: ΔW = Σ of the campaign's batch deltas (d × f, ffn_down layout) and C₀ = S / n from
the K₀ statistics the campaign used. E‖ΔW k‖² over K₀'s keys is tr(ΔW C₀ ΔWᵀ); it is split over C₀'s
eigenvalue bands, so one sees whether the change on preserved keys comes from directions AlphaEdit's
projector removes (λ > τ_l) or from the ones it keeps.

  python3 scripts/state-change.py STATISTICS.bin THRESHOLD STATE_DIR [STATE_DIR …]

THRESHOLD is the campaign's: a relative ρ (τ_l = ρ λ_max, e.g. 1e-3) or an absolute τ written tau=2e-2.

Reads our artifact container through scripts/artifacts.py.
"""
import json, sys
import numpy as np

from artifacts import statistics, deltas

def main():
    stats, threshold, states = sys.argv[1], sys.argv[2], sys.argv[3:]
    absolute = threshold.startswith("tau=")
    value = float(threshold[4:] if absolute else threshold)
    c0 = statistics(stats)
    import glob, os
    acc = {}
    for st in states:
        tot = {}
        for p in sorted(glob.glob(os.path.join(st, "deltas", "batch-*.bin"))):
            for l, d in deltas(p).items():
                tot[l] = tot.get(l, 0) + d
        acc[st] = tot
    res = {}
    for l in sorted(c0):
        w, v = np.linalg.eigh(c0[l])
        tau = value if absolute else value * w[-1]
        top = max(tau, 1e-2 * w[-1])   # an absolute τ may lie above 1e-2 λ_max: then the middle band is empty
        bands = [(0, tau), (tau, top), (top, np.inf)]
        row = {"lambda_max": w[-1], "tau": tau, "kept": float((w < tau).mean())}
        for st, tot in acc.items():
            d = tot[l] @ v                      # ΔW in C₀'s eigenbasis (columns)
            e = (d * d).sum(0)                  # ‖ΔW v_i‖² per direction
            energy = e * w                      # contribution to E‖ΔW k‖²
            row[st] = {"fro": float(np.sqrt(e.sum())), "rms_change_on_keys": float(np.sqrt(energy.sum())),
                       "energy_share_by_band": [float(energy[(w >= a) & (w < b)].sum() / energy.sum()) for a, b in bands]}
        res[l] = row
        print(f"layer {l}: λmax {w[-1]:.4g}, τ {tau:.3g}, kept {row['kept']:.1%}", file=sys.stderr)
        for st in acc:
            r = row[st]
            print(f"  {os.path.basename(st.rstrip('/')):>14}: ‖ΔW‖ {r['fro']:.3f}, RMS ‖ΔW k‖ {r['rms_change_on_keys']:.4f}, "
                  f"share of it from λ<τ / τ..1e-2λmax / ≥1e-2λmax: " + " / ".join(f"{x:.1%}" for x in r["energy_share_by_band"]), file=sys.stderr)
    print(json.dumps(res, default=float))

main()
