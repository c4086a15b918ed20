#!/usr/bin/env python3
"""How much each later batch of a sequential campaign moves the keys edited before it (issue 10 §6:
why AlphaEdit forgets its earlier batches on Qwen while MEMIT does not).

EARLIER is a copy of the campaign's state after N batches (e.g. ../runs/qwen-seq/alphaedit-500): its
cp/batch-N.bin holds Cp = Σ k kᵀ over the N batches' edited keys per layer. LATER is the same campaign
further on: for each of its batch deltas t > N, per edited layer,
  old keys: RMS ‖ΔW_t k‖ over the earlier edited keys = √(tr(ΔW_t Cp ΔW_tᵀ) / count);
  K₀ keys:  RMS ‖ΔW_t k‖ over K₀'s keys = √tr(ΔW_t C₀ ΔW_tᵀ).
Per layer also where the earlier edited keys lie against C₀'s spectrum: the share of tr(Cp) in the
directions the threshold keeps (λ < τ_l), and the participation ratio (Σλ)²/Σλ² of Cp inside them (how many
of the kept directions the edited keys effectively occupy).

  python3 scripts/forgetting.py STATISTICS.bin THRESHOLD EARLIER LATER [EARLIER LATER …]

THRESHOLD as in state-change.py: relative ρ (τ_l = ρ λ_max) or absolute tau=2e-2. JSON on stdout, a
table on stderr.
"""
import glob, json, os, re, sys
import numpy as np

from artifacts import statistics, deltas, sequential_state

def participation(c):
    w = np.clip(np.linalg.eigvalsh(c), 0, None)
    return float(w.sum() ** 2 / max((w * w).sum(), 1e-300))

def main():
    stats, threshold, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    if not pairs or len(pairs) % 2:
        sys.exit("usage: forgetting.py STATISTICS.bin THRESHOLD EARLIER LATER [EARLIER LATER …]")
    absolute = threshold.startswith("tau=")
    value = float(threshold[4:] if absolute else threshold)
    c0 = statistics(stats)
    eig = {l: np.linalg.eigh(c) for l, c in c0.items()}
    res = {}
    for earlier, later in zip(pairs[::2], pairs[1::2]):
        cps = sorted(glob.glob(os.path.join(earlier, "cp", "batch-*.bin")))
        if not cps:
            sys.exit(f"{earlier}: no cp/batch-*.bin")
        n = int(re.search(r"batch-(\d+)", cps[-1]).group(1))
        cp = sequential_state(cps[-1])
        name = os.path.basename(later.rstrip("/"))
        out = {"earlier_batches": n, "layers": {}, "batches": {}}
        print(f"{name}: keys of batches 1–{n} ({os.path.basename(earlier.rstrip('/'))})", file=sys.stderr)
        for l in sorted(cp):
            count, c = cp[l]
            w, v = eig[l]
            tau = value if absolute else value * w[-1]
            kept = v[:, w < tau]
            ck = kept.T @ c @ kept                       # Cp inside the kept directions
            row = {"keys": count, "tau": tau, "kept_directions": int(kept.shape[1]),
                   "cp_trace_share_kept": float(np.trace(ck) / np.trace(c)),
                   "participation_kept": participation(ck)}
            out["layers"][l] = row
            print(f"  layer {l}: {row['kept_directions']} kept directions hold {row['cp_trace_share_kept']:.1%} of the "
                  f"edited keys' energy, spread over ≈ {row['participation_kept']:.0f} of them (participation ratio)",
                  file=sys.stderr)
        for p in sorted(glob.glob(os.path.join(later, "deltas", "batch-*.bin"))):
            t = int(re.search(r"batch-(\d+)", p).group(1))
            if t <= n:
                continue
            b = {}
            for l, d in deltas(p).items():
                count, c = cp[l]
                old = float(np.sqrt(max(np.sum((d @ c) * d), 0) / count))
                k0 = float(np.sqrt(max(np.sum((d @ c0[l]) * d), 0)))
                b[l] = {"rms_change_old_keys": old, "rms_change_k0_keys": k0}
            out["batches"][t] = b
            print(f"  batch {t}: RMS ‖ΔW_t k‖ on old edited keys / on K₀ keys, per layer: " +
                  ", ".join(f"{l}: {x['rms_change_old_keys']:.3f} / {x['rms_change_k0_keys']:.3f}" for l, x in sorted(b.items())),
                  file=sys.stderr)
        res[name] = out
    print(json.dumps(res, default=float))

main()
