#!/usr/bin/env bash
# The plug-in experiment of issue 14 (README "Methods as stages"): MEMIT, PRUNE and RECT, each with and
# without the null-space projection, N sequential edits in batches of 100 on pararel-cf dev, the same
# settings otherwise (SmolLM2 defaults, λm 2000 tuned in docs/evaluation.md, K0 of 2,000 sentences).
# Two lanes side by side, one thread each (a 2-core machine): lane "off" runs the three without the
# projection, lane "on" the three with it (both build the same K0 statistics at first; the cache write is atomic). Each run writes state/plugin/<name>/report.{json,md}, plot.svg
# and its log state/plugin/<name>.log; then `plot` draws all six into state/plugin/plot.
#   scripts/plugin-runs.sh [off|on|plot|all]     (N=200 GEN=20 EVERY=100 by default; all = both lanes, then plot)
set -u
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-HASWELL}
N=${N:-200}; GEN=${GEN:-20}; OUT=${OUT:-state/plugin}
EVERY=${EVERY:-100}   # general capability (and a curve point) every EVERY edits
mkdir -p "$OUT"
A=$OUT/alphaedit
[ -x "$A" ] || cp .build/release/alphaedit "$A"   # a copy, so a rebuild does not swap the binary under the runs
COMMON=(--limit "$N" --batch-size 100 --method memit --memit-lambda 2000 --gen-records "$GEN"
        --general-items 10 --general-every "$EVERY" --hidden-prompts 200 --cluster in-process --threads 1 --json)
run() {  # name, args…
    local name=$1; shift
    while pgrep -f -- "--out $OUT/$name\$" > /dev/null; do sleep 20; done   # an earlier invocation is running it
    [ -f "$OUT/$name/report.json" ] && { echo "== $name: done before" >&2; return; }
    # The unedited row is the same for every configuration: after the first, reuse it (eval --pre-from).
    local pre=()
    if [ "$name" != memit ]; then
        for _ in $(seq 90); do [ -f "$OUT/memit/report.json" ] && break; sleep 20; done
        [ -f "$OUT/memit/report.json" ] && pre=(--pre-from "$OUT/memit/report.json")
    fi
    set -- "${pre[@]}" "$@"
    echo "== $name: $A eval ${COMMON[*]} $*" >&2
    /usr/bin/time -f "$name wall %e s" "$A" eval "${COMMON[@]}" "$@" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
    tail -n 1 "$OUT/$name.log" >&2
}
lane() {
    case $1 in
      off) run memit; run prune --filter prune; run rect --filter rect ;;
      on)  run memit-p --project; run prune-p --filter prune --project; run rect-p --filter rect --project ;;
    esac
}
plot() {
    "$A" eval --plot "$OUT"/{memit,memit-p,prune,prune-p,rect,rect-p}/report.json --out "$OUT/plot" > "$OUT/plot.md"
}
case ${1:-all} in
  off|on) lane "$1" ;;
  plot) plot ;;
  all) lane off & lane on & wait; plot ;;
esac
# Per batch after the last: efficacy and generalization of each batch's own records (does batch 1 survive batch 2?).
if [ "${1:-all}" = plot ] || [ "${1:-all}" = all ]; then
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
print("| run | " + " | ".join(f"batch {b + 1}: efficacy / generalization" for b in range(2)) + " |\n|---|---|---|")
for name in ["memit", "memit-p", "prune", "prune-p", "rect", "rect-p"]:
    p = f"{out}/{name}/report.json"
    if not os.path.exists(p): continue
    r = json.load(open(p)); recs = r["postShard"]["records"]; bs = r["batchSize"]
    cells = []
    for b in range(0, len(recs), bs):
        part = recs[b:b + bs]
        eff = 100 * sum(x["rewrite"]["nllNew"] < x["rewrite"]["nllTrue"] for x in part) / len(part)
        gen = 100 * sum(sum(q["nllNew"] < q["nllTrue"] for q in x["paraphrases"]) / len(x["paraphrases"]) for x in part) / len(part)
        cells.append(f"{eff:.1f} / {gen:.1f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
fi
