#!/usr/bin/env bash
# The promotion report as Markdown: the `status` table and each dry-run's gates (files the report job
# wrote into DIR: status.txt and promote-ENV.json, the latter empty when the dry-run printed nothing).
# Usage: pending-report.sh DIR
set -euo pipefail
dir=${1:?usage: pending-report.sh DIR}
echo "### Pending promotions"
echo
echo '```'
cat "$dir/status.txt" 2>/dev/null || echo "(no status: see the job log)"
echo '```'
for json in "$dir"/promote-*.json; do
  [ -e "$json" ] || continue
  to=${json##*/promote-}
  to=${to%.json}
  echo
  echo "#### promote --to $to --dry-run"
  echo
  if ! jq -se 'length == 1 and (.[0] | type == "object")' "$json" >/dev/null 2>&1; then
    echo "Refused before any gate ran (see the job log: e.g. the upstream has no release yet)."
    continue
  fi
  if jq -e '.gates == null' "$json" >/dev/null; then  # refused before the gates: the CLI's problems
    jq -r '.problems[]? | "- \(.what) (\(.where)); fix: \(.fix)"' "$json"
    continue
  fi
  echo '| gate | passed | reason |'
  echo '|---|---|---|'
  jq -r '.gates[] | "| \(.gate) | \(.passed) | \(.reason) |"' "$json"
  echo
  jq -r '.artifacts // {} | to_entries[] | "- `\(.key)` would move: \(.value.old // "none") → \(.value.new)"' "$json"
done
