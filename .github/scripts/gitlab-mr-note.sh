#!/usr/bin/env bash
# Post FILE as a note on this pipeline's merge request (GitLab's review comment), when the masked variable
# GITLAB_API_TOKEN (a project access token, scope api, role Reporter or above) is set. The token goes to
# curl in a header file (mode 0600), not as an argument.
# Usage: gitlab-mr-note.sh FILE
set -euo pipefail
file=${1:?usage: gitlab-mr-note.sh FILE}
if [ "${CI_PIPELINE_SOURCE:-}" != merge_request_event ] || [ -z "${GITLAB_API_TOKEN:-}" ]; then
  echo "gitlab-mr-note.sh: no merge request or no GITLAB_API_TOKEN: the plan is in the job log and artifacts"
  exit 0
fi
umask 077
header=$(mktemp)
trap 'rm -f "$header"' EXIT
printf 'PRIVATE-TOKEN: %s\n' "$GITLAB_API_TOKEN" > "$header"
curl -fsS --retry 3 --request POST --header "@$header" --data-urlencode "body@$file" \
  "$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes" > /dev/null
echo "gitlab-mr-note.sh: posted $file on !$CI_MERGE_REQUEST_IID"
