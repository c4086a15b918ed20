#!/usr/bin/env bash
# Issue 10 §6, "K₀ corpus size" (README "Does a larger K₀ give Qwen a null space?"): Qwen's K₀ statistics
# at layers 2–6 from 2,000, 10,000 and 20,000 T-REx sentences (built in disjoint ranges by `alphaedit cov`
# on two local workers and summed by `bench nullspace --statistics`), each against the statistics of
# 1,000 sentences K₀ never contains (90000..<91000): kept fraction, share of K₀'s and of the held-out
# keys' energy in the kept directions, efficacy and the RMS change over every token's key, for τ 2e-2,
# τ 1e-2, trace share 1e-2 and MEMIT λm 2000, one batch of 20 dev edits with the same v*.
# ≈ 50 min of K₀ and ≈ 30 min of benchmarks on a 2-core machine; outputs in $RUNS (default ../runs/k0size),
# each step skipped when its output is there.
#   scripts/k0-size.sh          # build and measure
#   scripts/k0-size.sh table    # the table from $RUNS/k0-*.json (or docs/results/k0-size/)
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-../runs/k0size}
A=.build/release/alphaedit
table() {
    python3 - "$@" <<'PY'
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    print(f"K0 of {r['sentences']} sentences ({r['layers'][0]['tokens']} tokens), held out {r['layers'][0]['held_out_tokens']} tokens")
    for row in r['rows']:
        name = f"MEMIT λm {row['memit_lambda']:g}" if row.get('memit_lambda') else (f"trace {row['trace_share']:g}" if row.get('trace_share') else f"τ {row['tau']:g}")
        j = lambda v, fmt: '/'.join(fmt % x for x in v) or '–'
        print(f"  {name:14} efficacy {row['efficacy']:5.1f}  kept % {j([100 * x for x in row['kept_fraction']], '%.0f'):15}"
              f" energy kept K0 {j(row['kept_trace_share'], '%.2g'):32} held out {j(row['held_out_kept_trace_share'], '%.2g'):32}"
              f" RMS change K0 {j(row['k0_change'], '%.3f')}  held out {j(row['held_out_change'], '%.3f')}")
PY
}
if [ "${1:-}" = table ]; then
    files=()
    for n in 2000 10000 20000; do
        if [ -f "$RUNS/k0-$n.json" ]; then files+=("$RUNS/k0-$n.json"); else files+=("docs/results/k0-size/k0-$n.json"); fi
    done
    table "${files[@]}"; exit
fi
[ -x "$A" ] || swift build -c release
mkdir -p "$RUNS"
cov() {  # offset sentences dir
    [ -f "$RUNS/$3/statistics.bin" ] && return
    "$A" cov --model qwen2.5-0.5b --cluster "local 2" --worker-threads 1 --threads 2 --layers 2-6 --offset "$1" --sentences "$2" \
        --out "$RUNS/$3" > "$RUNS/$3.log" 2>&1
}
cov 90000 1000 heldout-90000
cov 0 2000 cov-0-2000
cov 2000 8000 cov-2000-10000
cov 10000 10000 cov-10000-20000
k0=""
for part in cov-0-2000:2000 cov-2000-10000:10000 cov-10000-20000:20000; do
    k0="${k0:+$k0,}$RUNS/${part%%:*}/statistics.bin"; n=${part##*:}
    [ -f "$RUNS/k0-$n.json" ] && continue
    "$A" bench nullspace --model qwen2.5-0.5b --threads 2 --requests 20 --taus 2e-2,1e-2 --trace-shares 1e-2 --memit-lambdas 2000 \
        --statistics "$k0" --held-out-statistics "$RUNS/heldout-90000/statistics.bin" --json > "$RUNS/k0-$n.json.tmp" 2> "$RUNS/k0-$n.log"
    mv "$RUNS/k0-$n.json.tmp" "$RUNS/k0-$n.json"
done
table "$RUNS"/k0-2000.json "$RUNS"/k0-10000.json "$RUNS"/k0-20000.json
