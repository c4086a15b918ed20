# Shared by the resumable experiment scripts (qwen-sequential.sh, plugin-campaigns.sh), which set
# A (their copy of the alphaedit binary), RUNS (the runs folder, absolute) and CONF, then source this.

committed() {  # batches committed in state $1 (0 when none)
    [ -d "$1" ] || { echo 0; return; }
    "$A" status --state "$1" --json --no-verify 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["batches_committed"])' 2>/dev/null || echo 0
}

covariance() {  # K0 statistics once, before the lanes: $RUNS/cov/statistics.bin, on two local workers
    [ -f "$RUNS/cov/statistics.bin" ] && return
    "$A" cov --config "$CONF" --cluster "local 2" --worker-threads 1 --threads 1 --out "$RUNS/cov" > "$RUNS/cov.log" 2>&1
}
