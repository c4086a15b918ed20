#!/usr/bin/env bash
# Issue 11's full-set runs (every dev record of zsRE, 537, and of EasyEdit's flat CounterFact, 500;
# sequential batches of 100; AlphaEdit and MEMIT λm 2000; no generation, no general capability) as
# resumable campaigns, for a model on which they take longer than a session (Qwen: ≈ 16 s of v* per
# record per lane on a 2-core machine with OpenBLAS's Haswell kernels, so ≈ 2.5 h per set and method;
# ≈ 12.6 s with OPENBLAS_CORETYPE=SKYLAKEX and the vectorized softmax: zsRE batch 1, 1,264 s of v*, 2026-12-04). scripts/dataset-runs.sh does
# the same in one `eval --method` per run, which cannot resume; here every (set, method) is an `edit`
# campaign whose state lives outside the work tree ($RUNS, default ../runs/datasets-$MODEL) and is
# committed after every batch, and `eval --state` (which keeps its per-record results as they come)
# evaluates it afterwards, beside the unedited row computed once per set.
#
#   MODEL=qwen2.5-0.5b scripts/dataset-campaigns.sh lanes    # lane alphaedit (zsre, cf) beside lane memit (zsre, cf)
#   MODEL=qwen2.5-0.5b scripts/dataset-campaigns.sh eval     # unedited rows, then every finished campaign
#   MODEL=qwen2.5-0.5b scripts/dataset-campaigns.sh status
#   MODEL=gemma3-270m RUNS=../runs/gemma-zsre-tau TAU=2e-2 scripts/dataset-campaigns.sh campaign zsre alphaedit
#                                                             # one (set, method) only
#   MODEL=qwen2.5-0.5b scripts/dataset-campaigns.sh campaign zsre-alt memit   # zsRE with EasyEdit's `alt` target
#                                                             # (--zsre-target alt: edits and portability); `eval` then includes it
# AlphaEdit's null space: the catalog's rule, or TAU (absolute τ), RHO (relative ρ) or TRACE (share of C0's
# trace; campaign-lib.sh null_space_args) for every AlphaEdit campaign of this $RUNS (the state records it, so a resume with another is refused).
# Run any of them again to go on. STATISTICS: K0 statistics of this model, corpus, 2,000 sentences and the
# catalog's layers to start from (Qwen: ../runs/qwen-seq/cov/statistics.bin); else built once in $RUNS/cov.
# LIMIT (records per set) and COV (K0 sentences) shrink a smoke run. EVAL_THREADS (default 2): eval's threads, 1 beside a lane.
set -u
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-HASWELL}
MODEL=${MODEL:-qwen2.5-0.5b}
RUNS=${RUNS:-../runs/datasets-$MODEL}
LAMBDA=${MEMIT_LAMBDA:-2000}; COV=${COV:-2000}; BATCH=100
LIMIT_ARGS=(); [ -n "${LIMIT:-}" ] && LIMIT_ARGS=(--limit "$LIMIT")
. scripts/campaign-lib.sh   # runs_setup, committed, covariance
runs_setup datasets "$MODEL" "$COV" "$LAMBDA" "the dataset campaigns (scripts/dataset-campaigns.sh)"
ZSRE=$(cd ../shared && pwd)/data/zsre/zsre_mend_eval_portability.dev.json
CF=$(cd ../shared && pwd)/data/counterfact/counterfact-edit.dev.json
records() { case $1 in zsre|zsre-alt) echo "$ZSRE" ;; cf) echo "$CF" ;; esac; }
target() { [ "$1" = zsre-alt ] && echo "--zsre-target alt"; }   # EasyEdit's target, with portability

STATS=${STATISTICS:-$RUNS/cov/statistics.bin}
total() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); n=len(d); l=sys.argv[2]; print(min(n, int(l)) if l else n)" "$(records "$1")" "${LIMIT:-}"; }

campaign() {  # set method: edit until every record of the set is committed
    local set=$1 m=$2 name=$1-$2 n null=() tgt=()
    [ "$m" = alphaedit ] && read -ra null <<< "$(null_space_args)"
    read -ra tgt <<< "$(target "$set")"
    n=$(total "$set")
    [ "$(committed "$RUNS/$name")" -ge $(((n + BATCH - 1) / BATCH)) ] && { echo "== $name: done before" >&2; return; }
    echo "== $name: from batch $(committed "$RUNS/$name")" >&2
    "$A" edit --config "$CONF" --facts "$(records "$set")" "${LIMIT_ARGS[@]}" --batch-size "$BATCH" --state "$RUNS/$name" \
        --method "$m" "${null[@]}" "${tgt[@]}" --cluster "local 1" --worker-threads 1 --threads 1 \
        --statistics "$STATS" >> "$RUNS/$name.log" 2>&1
}

evaluate() {
    for set in zsre cf zsre-alt; do
        [ "$set" = zsre-alt ] && ! ls -d "$RUNS"/zsre-alt-* > /dev/null 2>&1 && continue   # only once a campaign began
        local tgt=(); read -ra tgt <<< "$(target "$set")"
        local common=(--config "$CONF" --records "$(records "$set")" "${tgt[@]}" "${LIMIT_ARGS[@]}" --batch-size "$BATCH" --no-generation
                      --general-items 0 --hidden-prompts 0 --cluster in-process --threads "${EVAL_THREADS:-2}" --json)
        [ -f "$RUNS/pre-$set/report.json" ] || "$A" eval "${common[@]}" --method none --out "$RUNS/pre-$set" > "$RUNS/pre-$set.log" 2>&1 || return
        for m in alphaedit memit; do
            local name=$set-$m n
            n=$(total "$set")
            [ -f "$RUNS/eval-$name/report.json" ] && continue
            [ "$(committed "$RUNS/$name")" -ge $(((n + BATCH - 1) / BATCH)) ] || { echo "$name: not every batch committed yet" >&2; continue; }
            "$A" eval "${common[@]}" --state "$RUNS/$name" --pre-from "$RUNS/pre-$set/report.json" --out "$RUNS/eval-$name" > "$RUNS/eval-$name.log" 2>&1
            echo "$name: $(tail -n 1 "$RUNS/eval-$name.log")"
        done
    done
}

case ${1:-lanes} in
  lanes) [ -n "${STATISTICS:-}" ] || covariance || exit
         (campaign zsre alphaedit && campaign cf alphaedit) & (campaign zsre memit && campaign cf memit) & wait ;;
  campaign) case "${2:-} ${3:-}" in zsre\ alphaedit|zsre\ memit|cf\ alphaedit|cf\ memit|zsre-alt\ alphaedit|zsre-alt\ memit) ;;
             *) echo "usage: $0 campaign zsre|cf|zsre-alt alphaedit|memit" >&2; exit 2 ;; esac
         [ -n "${STATISTICS:-}" ] || covariance || exit; campaign "$2" "$3" ;;
  eval) evaluate ;;
  status) for s in zsre cf zsre-alt; do for m in alphaedit memit; do echo "$s-$m: $(committed "$RUNS/$s-$m") of $((($(total $s) + BATCH - 1) / BATCH)) batches"; done; done ;;
  *) echo "usage: $0 [lanes|campaign SET METHOD|eval|status]" >&2; exit 2 ;;
esac
