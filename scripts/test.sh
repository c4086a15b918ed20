#!/usr/bin/env bash
# Sets up (packages, model) and runs every test in release mode (numeric code is too slow in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# OpenBLAS misdetects some virtualised CPUs; pick its kernels from the CPU flags (see BLASRuntime.swift).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then export OPENBLAS_CORETYPE=SKYLAKEX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=HASWELL; fi
fi
swift build -c release --build-tests
swift test -c release --skip-build "$@"
