#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer (Fuzz/: one harness per parser).
#   bash scripts/fuzz.sh [--seeds] [SECONDS] [HARNESS...]
# SECONDS per harness (default 30); HARNESS among FuzzGGUF FuzzWire FuzzFacts FuzzConfig FuzzArtifact
# FuzzKeys FuzzCurve (default all). --seeds rewrites the committed seed corpora (Fuzz/Corpus/<harness>) from the
# library's own writers first. Each harness first replays Tests/SharedTests/Fixtures/FuzzRegressions/<harness> (inputs that once
# crashed it), then fuzzes from the seeds; new inputs go to .build-fuzz/corpus/<harness>, crashes to
# .build-fuzz/crashes/<harness>/. Prints executions and crashes per harness, writes
# .build-fuzz/fuzz-summary.json, and exits 1 if anything crashed. Leak detection is off: the Swift
# runtime's caches read as leaks to LeakSanitizer, and checking for them cost 90 % of the GGUF harness's time.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=0
if [ "${1:-}" = "--seeds" ]; then seeds=1; shift; fi
seconds=${1:-30}; [ $# -gt 0 ] && shift
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(FuzzGGUF FuzzWire FuzzFacts FuzzConfig FuzzArtifact FuzzKeys FuzzCurve)
out=.build-fuzz
export SWIFT_BACKTRACE=enable=no   # a trap is reported by libFuzzer; the Swift backtracer would trip ASan
# gold fails on the sanitizer runtime's debug info ("internal error in format_file_lineno"): the
# toolchain's own lld links instead.
mkdir -p "$out"
lld="$(dirname "$(readlink -f "$(command -v swift)")")/ld.lld"
[ -x "$lld" ] || { echo "no ld.lld beside swift ($lld)"; exit 2; }
printf '{"schemaVersion": "1.0", "linker": {"path": "%s"}}\n' "$lld" > "$out/toolset.json"
if ! swift build -c release --package-path Fuzz --scratch-path "$out" --toolset "$out/toolset.json" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >"$out-build.log" 2>&1; then
  grep -v 'ld.gold: warning' "$out-build.log" | grep -A5 'error' | head -40
  echo "fuzz build failed (full log: $out-build.log)"; exit 2
fi
bin=$out/release
reg=Tests/SharedTests/Fixtures/FuzzRegressions   # inputs that once crashed a harness (also unit tests)
summary="["
failed=0
for h in "${harnesses[@]}"; do
  [ -x "$bin/$h" ] || { echo "no harness $bin/$h (build failed?)"; exit 2; }
  if [ $seeds -eq 1 ] || [ ! -d "Fuzz/Corpus/$h" ]; then rm -rf "Fuzz/Corpus/$h"; ALPHAEDIT_FUZZ_SEEDS="Fuzz/Corpus/$h" "$bin/$h"; fi
  mkdir -p "$out/corpus/$h" "$out/crashes/$h"
  if compgen -G "$reg/$h/*" >/dev/null; then
    echo "== $h: replaying $(ls $reg/$h | wc -l) regression inputs"
    "$bin/$h" -rss_limit_mb=2048 $reg/$h/* >"$out/$h-regressions.log" 2>&1 \
      || { echo "$h: a regression input fails again (see $out/$h-regressions.log)"; failed=1; }
  fi
  echo "== $h: fuzzing for $seconds s"
  set +e
  "$bin/$h" -max_total_time="$seconds" -detect_leaks=0 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$out/crashes/$h/" "$out/corpus/$h" "Fuzz/Corpus/$h" >"$out/$h.log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$h.log" | grep -o '[0-9]*$' || echo 0)
  [ -z "$runs" ] && runs=$(grep -o 'Done [0-9]* runs' "$out/$h.log" | grep -o '[0-9]*' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$out/$h.log" | tail -1 | grep -o '[0-9]*' || echo 0)
  crashes=$(ls "$out/crashes/$h" | wc -l)
  printf '%-13s %6s s  %10s executions  %6s coverage  %3s crash files  exit %s\n' "$h" "$seconds" "${runs:-0}" "${cov:-0}" "$crashes" "$rc"
  [ $rc -ne 0 ] && { failed=1; grep -m3 -E 'ERROR|Fatal error|panic|deadly' "$out/$h.log" || true; }
  summary+="{\"harness\":\"$h\",\"seconds\":$seconds,\"executions\":${runs:-0},\"coverage\":${cov:-0},\"crash_files\":$crashes,\"exit\":$rc},"
done
echo "${summary%,}]" > "$out/fuzz-summary.json"
echo "summary: $out/fuzz-summary.json"
exit $failed
