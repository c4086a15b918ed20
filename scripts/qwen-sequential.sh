#!/usr/bin/env bash
# Issue 10 §6: the paper's sequential-editing experiment on the model with the clearest null space
# (Qwen2.5-Coder-0.5B, README "The null space per model"): AlphaEdit against MEMIT (λm tuned on dev
# 4000–4099 by `bench nullspace`, a slice the runs never edit), 10 batches of 100 pararel-cf dev records
# (0–999), each method in its own lane: a local cluster of one 1-thread worker (v*) and a 1-thread
# coordinator (keys, solve), so the two lanes share this 2-core machine.
#
# Longer than a session (per batch per lane here, 2026-12-04: ≈ 13 min of v*, 2–4 min of keys and solve),
# so the campaigns live outside the work tree ($RUNS, default ../runs/qwen-seq) and resume where they
# stopped: run the script again.
# K0 statistics (2,000 sentences, ≈ 14 min on one thread here) are built once by `alphaedit cov` on two
# local workers ($RUNS/cov) and both campaigns start from them (`edit --statistics`, checked to be of this
# model, corpus, range and layers). At 500 edits each lane leaves a copy of its state ($RUNS/<method>-500)
# for the curve point.
#
#   scripts/qwen-sequential.sh lanes        # both lanes side by side (resumable)
#   scripts/qwen-sequential.sh eval 500|1000 # evaluate both states at that point (records 0..N-1)
#   scripts/qwen-sequential.sh plot          # the 500- and 1000-edit reports there are → $RUNS/plot
#   scripts/qwen-sequential.sh status
# Settings: TRACE (share s of C0's trace, `--null-space-trace`), else RHO (relative ρ), else TAU (absolute τ,
# default 2e-2, the catalog's since 2026-12-04); LAMBDA (MEMIT λm). The 2026-12-03 runs used RHO=1e-3 (then
# Qwen's default; it broke the model at 1,000 edits): a state begun with it resumes only with RHO=1e-3.
# A third lane with the former default ρ 1e-3 (README "The 500-edit point"), sharing the K0 build:
#   mkdir -p ../runs/qwen-seq-rho; for d in cov pre-500; do ln -s "$(cd ../runs/qwen-seq && pwd)/$d" ../runs/qwen-seq-rho/; done
#   RUNS=../runs/qwen-seq-rho RHO=1e-3 scripts/qwen-sequential.sh alphaedit
# and the same with the trace-share rule: RUNS=../runs/qwen-seq-trace TRACE=1e-2 scripts/qwen-sequential.sh alphaedit
# KEPT_C0=w adds MEMIT's penalty w·C0 inside the kept directions (`--kept-c0-weight`; README "Why AlphaEdit
# forgets"): RUNS=../runs/qwen-seq-kc0 KEPT_C0=2000 scripts/qwen-sequential.sh alphaedit (same links as above).
# LANE_WORKERS=n gives a lane n one-thread v* workers (default 1: two lanes share the two cores; a lone lane
# may take both). The result does not depend on it (v* per request is independent of the worker).
set -u
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-HASWELL}
RUNS=${RUNS:-../runs/qwen-seq}
MODEL=qwen2.5-0.5b
FACTS=../shared/data/pararel-cf/dev.jsonl
N=1000; HALF=500; BATCH=100
# λm: chosen on dev 4000–4099 (README "The null space per model").
TAU=${TAU:-2e-2}; RHO=${RHO:-}; TRACE=${TRACE:-}; LAMBDA=${LAMBDA:-2000}
. scripts/campaign-lib.sh   # runs_setup, committed, covariance
runs_setup qwen "$MODEL" 2000 "$LAMBDA" "the Qwen sequential experiment (scripts/qwen-sequential.sh)"

lane() {  # method
    local m=$1 args state=$RUNS/$1
    case $m in
      alphaedit) read -ra args <<< "--method alphaedit $(null_space_args) ${KEPT_C0:+--kept-c0-weight $KEPT_C0}" ;;
      memit) args=(--method memit) ;;   # λm: memit_lambda in $CONF
    esac
    local common=(--config "$CONF" --facts "$FACTS" --limit "$N" --batch-size "$BATCH" --state "$state"
                  --cluster "local ${LANE_WORKERS:-1}" --worker-threads 1 --threads 1 --statistics "$RUNS/cov/statistics.bin" "${args[@]}")
    local done; done=$(committed "$state")
    if [ "$done" -lt $((HALF / BATCH)) ]; then
        echo "== $m: batches $done → $((HALF / BATCH))" >&2
        "$A" edit "${common[@]}" --max-batches $((HALF / BATCH - done)) >> "$RUNS/$m.log" 2>&1 || return
    fi
    done=$(committed "$state")
    if [ "$done" -ge $((HALF / BATCH)) ] && [ ! -d "$state-$HALF" ] && [ "$done" -eq $((HALF / BATCH)) ]; then
        cp -a "$state" "$state-$HALF.tmp" && mv "$state-$HALF.tmp" "$state-$HALF"
    fi
    echo "== $m: batches $done → $((N / BATCH))" >&2
    "$A" edit "${common[@]}" >> "$RUNS/$m.log" 2>&1
}

evaluate() {  # edits
    local n=$1 pre=()
    [ -f "$RUNS/pre-$n/report.json" ] || "$A" eval --config "$CONF" --records "$FACTS" --limit "$n" --batch-size "$BATCH" --method none \
        --gen-records 100 --general-items 50 --cluster in-process --threads 2 --json --out "$RUNS/pre-$n" > "$RUNS/pre-$n.log" 2>&1
    pre=(--pre-from "$RUNS/pre-$n/report.json")
    for m in alphaedit memit; do
        local state=$RUNS/$m; [ "$n" = "$HALF" ] && state=$RUNS/$m-$HALF
        [ "$(committed "$state")" -eq $((n / BATCH)) ] || { echo "$m: $state has not $((n / BATCH)) batches" >&2; continue; }
        [ -f "$RUNS/eval-$m-$n/report.json" ] && { echo "$m: $RUNS/eval-$m-$n/report.json is there" >&2; continue; }
        # Stopped midway, the same command goes on from the records done (eval --out keeps them).
        "$A" eval --config "$CONF" --records "$FACTS" --limit "$n" --batch-size "$BATCH" --state "$state" "${pre[@]}" \
            --gen-records 100 --general-items 50 --cluster in-process --threads 2 --json --out "$RUNS/eval-$m-$n" > "$RUNS/eval-$m-$n.log" 2>&1
        tail -n 1 "$RUNS/eval-$m-$n.log"
    done
}

case ${1:-lanes} in
  lanes) covariance || exit; lane alphaedit & lane memit & wait ;;
  alphaedit|memit) covariance || exit; lane "$1" ;;
  eval) evaluate "${2:?eval 500 or 1000}" ;;
  plot) reports=(); for m in alphaedit memit; do for n in $HALF $N; do
            [ -f "$RUNS/eval-$m-$n/report.json" ] && reports+=("$RUNS/eval-$m-$n/report.json"); done; done
        # the build's binary (not the lanes' copy): a state's 500- and 1000-edit reports join into one curve
        .build/release/alphaedit eval --plot "${reports[@]}" --out "$RUNS/plot" > "$RUNS/plot.md" ;;
  status) for m in alphaedit memit; do echo "$m: $(committed "$RUNS/$m") of $((N / BATCH)) batches"; done ;;
  *) echo "usage: $0 [lanes|alphaedit|memit|eval N|plot|status]" >&2; exit 2 ;;
esac
