#!/usr/bin/env bash
# Sets up (packages, model), builds, and runs the main job: a demo edit campaign on the default model.
# Shows the model's answers before, edits two facts with AlphaEdit, and shows the answers after
# (including an unrelated fact that must not change).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release   # both executables: `edit` starts `alphaedit-worker` processes (cluster.conf: workers = local 2)
bin=.build/release/alphaedit
state=state/demo
prompts=("The Eiffel Tower is in" "The mother tongue of Danielle Darrieux is" "The capital of France is")
echo "== before"
for p in "${prompts[@]}"; do $bin generate --max-tokens 8 "$p"; done
rm -rf "$state"
echo "== editing (K0 statistics over 1,000 Wikipedia sentences, then v* and the projected update)"
$bin edit --facts examples/demo-facts.json --state "$state" --cov-sentences 1000
echo "== after"
for p in "${prompts[@]}"; do $bin generate --state "$state" --max-tokens 8 "$p"; done
