#!/usr/bin/env bash
# A promotion's outcome (deliver promote --json, also what `dagger call promote ... outcome` prints) as
# Markdown: who approved, every gate's decision, what moved, the commit or review branch.
# Usage: promotion-summary.sh OUTCOME_JSON    env: APPROVER (may be empty)
set -euo pipefail
json=${1:?usage: promotion-summary.sh OUTCOME_JSON}
echo "### Promotion"
echo
echo "Approved by: ${APPROVER:-nobody (no reviewer approved the environment: the git author is the actor)}"
echo
if ! jq -se 'length == 1 and (.[0] | type == "object")' "$json" >/dev/null 2>&1; then
  echo "No outcome: the promotion failed before it printed one (see the job log)."
  exit 0
fi
if jq -e '.gates == null' "$json" >/dev/null; then  # refused before the gates: the CLI's problems
  jq -r '.problems[]? | "- \(.what) (\(.where)); fix: \(.fix)"' "$json"
  exit 0
fi
jq -r '"Into `\(.env)` from `\(.from)`" + (if .dryRun then " (dry run)" else "" end) + ": " +
       (if .ok then "ok" else "refused" end)' "$json"
echo
echo '| gate | passed | reason |'
echo '|---|---|---|'
jq -r '.gates[]? | "| \(.gate) | \(.passed) | \(.reason)\(if .override then " (override: \(.override))" else "" end) |"' "$json"
echo
jq -r '.artifacts // {} | to_entries[] | "- `\(.key)`: \(.value.old // "none") → \(.value.new)"' "$json"
jq -r 'if .reviewBranch then "\nReview branch: `\(.reviewBranch)`" elif .commit then
         "\nCommit `\(.commit)` on `\(.branch)`, ledger entry `\(.ledgerId)`, pushed: \(.pushed)" else "" end' "$json"
