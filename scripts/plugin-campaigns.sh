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
#   scripts/plugin-campaigns.sh plot      # the reports there are → $RUNS/plot (+ table)
#   scripts/plugin-campaigns.sh keep      # copy the finished reports into docs/results/plugin-1000 (committed)
#   scripts/plugin-campaigns.sh status
#   scripts/plugin-campaigns.sh campaign NAME…   # chosen configurations only, one after another
#   scripts/plugin-campaigns.sh parallel NAME…   # chosen configurations side by side, one lane each
#                                                # (NAME: memit prune rect memit-p prune-p rect-p)
# N, BATCH, COV (K0 sentences), GEN (records with generation), RUNS: environment.
#
# A session's machine may not be the next one's, and a configuration plus its evaluation takes about an
# hour of both cores, so the finished reports are kept in the repository (`keep`: docs/results/plugin-1000,
# xz-packed, 0.24–0.47 MB each; per-record results, no weights): a later session evaluates against the same
# unedited row (`--pre-from`) and `plot` joins its reports with the kept ones.
set -u
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-HASWELL}
RUNS=${RUNS:-../runs/plugin}
N=${N:-1000}; BATCH=${BATCH:-100}; COV=${COV:-2000}; GEN=${GEN:-20}
FACTS=../shared/data/pararel-cf/dev.jsonl
KEPT=docs/results/plugin-$N
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
report() {  # name (pre or a configuration) → its report here, or the one kept in the repository (unpacked), if any
    local r=$RUNS/eval-$1/report.json; [ "$1" = pre ] && r=$RUNS/pre/report.json
    if [ -f "$r" ]; then echo "$r"
    elif [ -f "$KEPT/$1.json.xz" ]; then
        mkdir -p "$RUNS/kept"; [ -f "$RUNS/kept/$1.json" ] || xz -dc "$KEPT/$1.json.xz" > "$RUNS/kept/$1.json"; echo "$RUNS/kept/$1.json"
    fi
}
evaluate() {
    [ -n "$(report pre)" ] || "$A" eval "${EVAL[@]}" --method none --out "$RUNS/pre" > "$RUNS/pre.log" 2>&1 || return
    local pre; pre=$(report pre)
    for name in "${NAMES[@]}"; do
        [ -n "$(report "$name")" ] && continue
        [ "$(committed "$RUNS/$name")" -eq $((N / BATCH)) ] || { echo "$name: not all $((N / BATCH)) batches committed yet" >&2; continue; }
        "$A" eval "${EVAL[@]}" --state "$RUNS/$name" --pre-from "$pre" --out "$RUNS/eval-$name" > "$RUNS/eval-$name.log" 2>&1
        echo "$name: $(tail -n 1 "$RUNS/eval-$name.log")"
    done
}

case ${1:-lanes} in
  lanes) covariance || exit; lane off & lane on & wait ;;
  off|on) covariance || exit; lane "$1" ;;
  campaign|parallel) mode=$1; shift
      for n in "$@"; do case " ${NAMES[*]} " in *" $n "*) ;; *) echo "unknown configuration $n (${NAMES[*]})" >&2; exit 2 ;; esac; done
      covariance || exit
      if [ "$mode" = campaign ]; then for n in "$@"; do campaign "$n"; done
      else for n in "$@"; do campaign "$n" & done; wait; fi ;;
  eval) evaluate ;;
  plot) reports=(); for n in "${NAMES[@]}"; do r=$(report "$n"); [ -n "$r" ] && reports+=("$r"); done
        [ ${#reports[@]} -gt 0 ] || { echo "no reports yet (run eval)" >&2; exit 1; }
        "$A" eval --plot "${reports[@]}" --out "$RUNS/plot" > "$RUNS/plot.md" && cat "$RUNS/plot.md" ;;
  keep) mkdir -p "$KEPT"; for n in pre "${NAMES[@]}"; do r=$(report "$n")
            if [ -n "$r" ] && [ "$r" != "$RUNS/kept/$n.json" ]; then xz -9 -c "$r" > "$KEPT/$n.json.xz" && echo "kept $KEPT/$n.json.xz"; fi
        done ;;
  status) for n in "${NAMES[@]}"; do echo "$n: $(committed "$RUNS/$n") of $((N / BATCH)) batches"; done ;;
  *) echo "usage: $0 [lanes|off|on|campaign NAME…|parallel NAME…|eval|plot|keep|status]" >&2; exit 2 ;;
esac
