# Shared by the resumable experiment scripts (qwen-sequential.sh, plugin-campaigns.sh,
# dataset-campaigns.sh): source it, then `runs_setup` sets RUNS, A and CONF.

runs_setup() {  # conf-name model cov-sentences memit-lambda description
    # RUNS (the runs folder, made absolute: cluster.conf paths are relative to the file), A (a copy of
    # the binaries there, so a rebuild does not swap them under the runs) and CONF ($RUNS/<conf-name>.conf,
    # written once: one-thread processes, the T-REx corpus, shards of 500 sentences).
    mkdir -p "$RUNS"; RUNS=$(cd "$RUNS" && pwd)
    A=$RUNS/bin/alphaedit
    [ -x "$A" ] || { mkdir -p "$RUNS/bin" && cp .build/release/alphaedit-worker "$RUNS/bin/" && cp .build/release/alphaedit "$A"; }
    CONF=$RUNS/$1.conf
    [ -f "$CONF" ] || cat > "$CONF" <<EOF
# alphaedit configuration of $5
model = $(pwd)/$(bash scripts/fetch-model.sh "$2")
threads = 1
corpus = $(cd ../shared && pwd)/data/wiki-triplets/trex.jsonl
cov_sentences = $3
shard_sentences = 500
memit_lambda = $4
EOF
}

committed() {  # batches committed in state $1 (0 when none)
    [ -d "$1" ] || { echo 0; return; }
    "$A" status --state "$1" --json --no-verify 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["batches_committed"])' 2>/dev/null || echo 0
}

null_space_args() {  # AlphaEdit's null-space option from TRACE, else RHO, else TAU (none set: the catalog's rule)
    if [ -n "${TRACE:-}" ]; then echo --null-space-trace "$TRACE"
    elif [ -n "${RHO:-}" ]; then echo --null-space-relative "$RHO"
    elif [ -n "${TAU:-}" ]; then echo --null-space-threshold "$TAU"; fi
}

covariance() {  # K0 statistics once, before the lanes: $RUNS/cov/statistics.bin, on two local workers
    [ -f "$RUNS/cov/statistics.bin" ] && return
    "$A" cov --config "$CONF" --cluster "local 2" --worker-threads 1 --threads 1 --out "$RUNS/cov" > "$RUNS/cov.log" 2>&1
}
