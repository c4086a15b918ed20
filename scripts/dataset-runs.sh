#!/usr/bin/env bash
# Issue 11's full-set runs on the real datasets (README "What the edits do"): every dev record of
# zsRE (537, the paper's `answers` target) and of EasyEdit's flat CounterFact (500), sequential batches
# of 100, AlphaEdit and MEMIT (λm 2000, tuned on pararel-cf dev), the unedited row computed once per set
# (the AlphaEdit run) and reused by MEMIT with --pre-from. Two lanes of one thread each:
#   bash scripts/dataset-runs.sh zsre & bash scripts/dataset-runs.sh cf
# (`zsre-alt`: the same with EasyEdit's target, which brings portability; single runs by name.)
# Each run writes state/eval/<name>/report.{json,md} and its log to state/eval/<name>.log.
# MODEL=gemma3-270m (or qwen2.5-0.5b) runs another catalog model; its runs are named <model>-<name>.
# MEMIT_LAMBDA sets λm (default 2000, tuned on SmolLM2; tune others with `eval --tune-memit-lambda`).
# zsre-alphaedit-c0 / cf-alphaedit-c0: AlphaEdit with MEMIT's penalty inside the kept directions
# (--kept-c0-weight, KEPT_C0 default = λm), beside the two methods' rows. THREADS (default 1) per run.
set -u
cd "$(dirname "$0")/.."
B=.build/release/alphaedit
mkdir -p state/eval
# A copy, so that rebuilding during the runs does not swap the binary under them.
A=state/eval/alphaedit-datasets
if [ -z "${KEEP_BINARY:-}" ] || [ ! -x "$A" ]; then cp "$B" "$A.$$" && mv "$A.$$" "$A"; fi
ZSRE=../shared/data/zsre/zsre_mend_eval_portability.dev.json
CF=../shared/data/counterfact/counterfact-edit.dev.json
COMMON="--batch-size 100 --no-generation --general-items 0 --hidden-prompts 0 --cluster in-process --threads ${THREADS:-1}"
PREFIX=""
if [ -n "${MODEL:-}" ]; then COMMON="$COMMON --model $MODEL"; PREFIX="$MODEL-"; fi
LAMBDA=${MEMIT_LAMBDA:-2000}
run() {  # name, args…
    local name=$PREFIX$1; shift
    echo "== $name: $A eval $*" >&2
    /usr/bin/time -f "$name wall %e s" $A eval "$@" $COMMON --json --out "state/eval/$name" > "state/eval/$name.log" 2>&1
    tail -2 "state/eval/$name.log" >&2
}
pre() {  # the unedited row of an earlier run on the same records, when there is one
    [ -f "state/eval/$PREFIX$1/report.json" ] && echo "--pre-from state/eval/$PREFIX$1/report.json"
}
for step in "$@"; do
case $step in
  zsre)     $0 zsre-alphaedit zsre-memit ;;
  cf)       $0 cf-alphaedit cf-memit ;;
  zsre-alt) $0 zsre-alt-alphaedit zsre-alt-memit ;;
  zsre-alphaedit)     run $step --records $ZSRE --method alphaedit ;;
  zsre-memit)         run $step --records $ZSRE --method memit --memit-lambda $LAMBDA $(pre zsre-alphaedit) ;;
  cf-alphaedit)       run $step --records $CF --method alphaedit ;;
  cf-memit)           run $step --records $CF --method memit --memit-lambda $LAMBDA $(pre cf-alphaedit) ;;
  zsre-alphaedit-c0)  run $step --records $ZSRE --method alphaedit --kept-c0-weight ${KEPT_C0:-$LAMBDA} $(pre zsre-alphaedit) ;;
  cf-alphaedit-c0)    run $step --records $CF --method alphaedit --kept-c0-weight ${KEPT_C0:-$LAMBDA} $(pre cf-alphaedit) ;;
  zsre-alt-alphaedit) run $step --records $ZSRE --zsre-target alt --method alphaedit ;;
  zsre-alt-memit)     run $step --records $ZSRE --zsre-target alt --method memit --memit-lambda $LAMBDA $(pre zsre-alt-alphaedit) ;;
  *) echo "unknown step $step (zsre, cf, zsre-alt, or one run: zsre-alphaedit, zsre-memit, …)" >&2; exit 2 ;;
esac
done
