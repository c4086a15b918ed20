#!/usr/bin/env bash
# Sets up (packages, model), builds, and runs the main job: for now, generation on the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product alphaedit
for p in "The capital of France is" "The Eiffel Tower is in" "The mother tongue of Danielle Darrieux is"; do
  .build/release/alphaedit generate --max-tokens 12 "$p"
done
