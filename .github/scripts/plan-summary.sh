#!/usr/bin/env bash
# A saved plan's summary as Markdown, for the review comment and the job summary: what `deliver plan`
# wrote into plan.json (its summary and the plan file's sha256), nothing computed here.
# Usage: plan-summary.sh ENV PLAN_DIR [RUN_URL]
set -euo pipefail
env_name=${1:?usage: plan-summary.sh ENV PLAN_DIR [RUN_URL]}
dir=${2:?usage: plan-summary.sh ENV PLAN_DIR [RUN_URL]}
run_url=${3:-}
json="$dir/plan.json"
echo "### Substrate plan: \`$env_name\`"
echo
jq -r '"Plan: " + (.summary.counts | to_entries | map("\(.value) to \(.key)") | join(", "))' "$json"
echo
if [ "$(jq -r '.summary.changes' "$json")" = true ]; then
  echo '| action | address | reason |'
  echo '|---|---|---|'
  jq -r '.summary.resources[] | "| \(.action) | `\(.address)` | \(.reason // "") |"' "$json"
  jq -r '.summary.output_changes[]? | "| output | `\(.)` | |"' "$json"
else
  echo "No changes: nothing to apply."
fi
echo
echo "plan.tfplan sha256: \`$(jq -r '.plan_sha256' "$json")\`${run_url:+ ([run]($run_url))}"
echo
echo "Applied only from the protected environment \`substrate-$env_name\`, and only this plan (its sha256 is checked)."
