#!/usr/bin/env bash
# Who approved this run's deployment to DEPLOY_ENV (GitHub's review history of the run): prints
# login=NAME, or login= when nobody did (an environment without required reviewers).
# env: GH_TOKEN (actions: read), GITHUB_REPOSITORY, GITHUB_RUN_ID, DEPLOY_ENV
set -euo pipefail
login=$(gh api "repos/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/approvals" \
  --jq '[.[] | select(.state == "approved") | select(any(.environments[]; .name == env.DEPLOY_ENV))]
        | last | .user.login // ""')
if [ -n "$login" ] && ! [[ $login =~ ^[A-Za-z0-9][A-Za-z0-9-]*(\[bot\])?$ ]]; then
  echo "approver.sh: unexpected login $login" >&2
  exit 1
fi
echo "login=$login"
