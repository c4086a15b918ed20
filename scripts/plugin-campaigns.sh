#!/usr/bin/env bash
# Issue 14's plug-in experiment at its full size (README "Methods as stages"): MEMIT, PRUNE and RECT, each
# with and without the null-space projection, N = 1,000 sequential edits in batches of 100 on pararel-cf
# dev 0–999 (SmolLM2 defaults, λm 2000). scripts/plugin-runs.sh does the same in one `eval` per
# configuration, which cannot resume; at 1,000 edits that is more than a session on a 2-core machine, so
# here every configuration is an `edit` campaign (resumable after every committed batch) whose state lives
# outside the work tree ($RUNS, default ../runs/plugin), and `eval --state` evaluates it afterwards.
#
# K0 statistics are built once by `alphaedit cov` on two local workers ($RUNS/cov); every campaign starts
# from them (`edit --statistics`, checked to be of this model, corpus, range and layers). Two lanes of one
# thread each (lane "off": memit prune rect; lane "on": the same with --project), each campaign a local
# cluster of one 1-thread worker.
#
#   scripts/plugin-campaigns.sh lanes     # both lanes side by side (resumable: run it again)
#   scripts/plugin-campaigns.sh eval      # the unedited row once, then every finished campaign
#   scripts/plugin-campaigns.sh plot      # all six reports → $RUNS/plot (+ table)
#   scripts/plugin-campaigns.sh status
#   scripts/plugin-campaigns.sh campaign NAME…   # chosen configurations only, one after another
#                                                # (NAME: memit prune rect memit-p prune-p rect-p)
# N, BATCH, COV (K0 sentences), GEN (records with generation), RUNS: environment.
set -u
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-HASWELL}
RUNS=${RUNS:-../runs/plugin}
N=${N:-1000}; BATCH=${BATCH:-100}; COV=${COV:-2000}; GEN=${GEN:-20}
FACTS=../shared/data/pararel-cf/dev.jsonl
NAMES=(memit prune rect memit-p prune-p rect-p)
. scripts/campaign-lib.sh   # runs_setup, committed, covariance
runs_setup plugin smollm2 "$COV" 2000 "the plug-in experiment (scripts/plugin-campaigns.sh)"

stages() {  # name → its stage options
    case $1 in
      memit) ;;            prune) echo --filter prune ;;            rect) echo --filter rect ;;
      memit-p) echo --project ;; prune-p) echo --filter prune --project ;; rect-p) echo --filter rect --project ;;
    esac
}

campaign() {  # name: edit until all N/BATCH batches are committed
    local name=$1 done
    done=$(committed "$RUNS/$name")
    [ "$done" -ge $((N / BATCH)) ] && { echo "== $name: $done batches, done before" >&2; return; }
    echo "== $name: batches $done → $((N / BATCH))" >&2
    # shellcheck disable=SC2046
    "$A" edit --config "$CONF" --facts "$FACTS" --limit "$N" --batch-size "$BATCH" --state "$RUNS/$name" \
        --method memit $(stages "$name") --cluster "local 1" --worker-threads 1 --threads 1 \
        --statistics "$RUNS/cov/statistics.bin" >> "$RUNS/$name.log" 2>&1
}

lane() {
    case $1 in
      off) campaign memit && campaign prune && campaign rect ;;
      on)  campaign memit-p && campaign prune-p && campaign rect-p ;;
    esac
}

EVAL=(--config "$CONF" --records "$FACTS" --limit "$N" --batch-size "$BATCH" --gen-records "$GEN"
      --general-items 10 --hidden-prompts 200 --cluster in-process --threads 2 --json)
evaluate() {
    [ -f "$RUNS/pre/report.json" ] || "$A" eval "${EVAL[@]}" --method none --out "$RUNS/pre" > "$RUNS/pre.log" 2>&1 || return
    for name in "${NAMES[@]}"; do
        [ -f "$RUNS/eval-$name/report.json" ] && continue
        [ "$(committed "$RUNS/$name")" -eq $((N / BATCH)) ] || { echo "$name: not all $((N / BATCH)) batches committed yet" >&2; continue; }
        "$A" eval "${EVAL[@]}" --state "$RUNS/$name" --pre-from "$RUNS/pre/report.json" --out "$RUNS/eval-$name" > "$RUNS/eval-$name.log" 2>&1
        echo "$name: $(tail -n 1 "$RUNS/eval-$name.log")"
    done
}

case ${1:-lanes} in
  lanes) covariance || exit; lane off & lane on & wait ;;
  off|on) covariance || exit; lane "$1" ;;
  campaign) covariance || exit; shift; for n in "$@"; do
      case " ${NAMES[*]} " in *" $n "*) campaign "$n" ;; *) echo "unknown configuration $n (${NAMES[*]})" >&2; exit 2 ;; esac
    done ;;
  eval) evaluate ;;
  plot) "$A" eval --plot $(for n in "${NAMES[@]}"; do echo "$RUNS/eval-$n/report.json"; done) --out "$RUNS/plot" > "$RUNS/plot.md" && cat "$RUNS/plot.md" ;;
  status) for n in "${NAMES[@]}"; do echo "$n: $(committed "$RUNS/$n") of $((N / BATCH)) batches"; done ;;
  *) echo "usage: $0 [lanes|off|on|campaign NAME…|eval|plot|status]" >&2; exit 2 ;;
esac
