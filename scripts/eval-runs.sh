#!/usr/bin/env bash
# The evaluation runs of docs/evaluation.md (issue 5), one after another; each writes
# state/eval/<name>/report.{json,md} and plot.svg, its log to state/eval/<name>.log.
set -u
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SKYLAKEX}
B=.build-eval/release/alphaedit
[ -x "$B" ] || B=.build/release/alphaedit
mkdir -p state/eval
# A copy, so that rebuilding during the runs does not swap the binary under them.
A=state/eval/alphaedit; [ -n "${KEEP_BINARY:-}" ] || cp "$B" "$A"
run() {  # name, args…
    local name=$1; shift
    echo "== $name: $A eval $*" >&2
    /usr/bin/time -f "$name wall %e s" $A eval "$@" --json --out "state/eval/$name" > "state/eval/$name.log" 2>&1
    tail -1 "state/eval/$name.log" >&2
}
mkdir -p state/eval
COMMON="--limit 20 --batch-size 10 --general-items 30"
for step in "${@:-all}"; do
case $step in
  pre200|all) run pre-200 --method none --limit 200 --no-generation --general-items 0 ;;&
  ae01|all)   run alphaedit-vlr0.1 --method alphaedit --v-lr 0.1 $COMMON --general-every 10 ;;&
  memit|all)  run memit-15000 --method memit --memit-lambda 15000 $COMMON --general-every 10 ;;&
  sweep|all)  run memit-sweep --method memit --limit 10 --batch-size 10 --no-generation \
                  --tune-memit-lambda 15000,5000,2000,1000,500,200,100,50,20,10 ;;&
  tuned|all)  # the largest λm reaching efficacy ≥ 90 on the sweep's batch; none does at v_lr 0.1 (efficacy
              # plateaus at 80 for every λm ≤ 2000), so the largest λm on the plateau: 2000.
              L=$(grep -o '"chosen_lambda":[0-9.e+]*' state/eval/memit-sweep.log | cut -d: -f2)
              run memit-${L:-2000} --method memit --memit-lambda "${L:-2000}" $COMMON --general-every 20 ;;&
  ae05|all)   run alphaedit-vlr0.5 --method alphaedit --v-lr 0.5 --limit 20 --batch-size 10 --general-items 0 ;;&
  memit05|all) run memit-2000-vlr0.5 --method memit --memit-lambda 2000 --v-lr 0.5 --limit 20 --batch-size 10 --general-items 0 ;;&
  # The 1,000-edit comparison (issue 5 §7): 10 batches of 100 from dev 0–999; generation (fluency,
  # consistency) on the first 100 records; general capability (50 items per task) at 0, 500, 1000 edits.
  # Run side by side with one thread each (two cores): `scripts/eval-runs.sh ae1000 & scripts/eval-runs.sh memit1000`.
  ae1000)     run alphaedit-1000 --method alphaedit --limit 1000 --batch-size 100 --gen-records 100 --general-items 50 --threads 1 ;;&
  memit1000)  run memit-2000-1000 --method memit --memit-lambda 2000 --limit 1000 --batch-size 100 --gen-records 100 --general-items 50 --threads 1 ;;&
  plot1000)   $A eval --plot state/eval/alphaedit-1000/report.json state/eval/memit-2000-1000/report.json --out state/eval/plot-1000 > state/eval/plot-1000.md ;;&
  plot|all)   $A eval --plot state/eval/alphaedit-vlr0.1/report.json state/eval/memit-15000/report.json \
                  $(ls state/eval/memit-2000/report.json state/eval/alphaedit-vlr0.5/report.json \
                  state/eval/memit-2000-vlr0.5/report.json 2>/dev/null) --out state/eval/plot > state/eval/plot.md ;;&
  *) ;;
esac
done
