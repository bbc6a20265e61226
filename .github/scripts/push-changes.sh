#!/usr/bin/env bash
# Commit the given paths (when they changed) and push the commit to PUSH_BRANCH; when the branch moved
# meanwhile, rebase onto it and try again (ledger.jsonl merges by git's union driver, .gitattributes).
# The token reaches git through a credential helper that reads it from the environment: it is in no
# argument, URL or file.
# Usage: push-changes.sh MESSAGE PATH...
# env: GIT_PUSH_TOKEN (masked), GIT_PUSH_USER (GitHub: x-access-token, GitLab: oauth2), PUSH_BRANCH,
#      COMMIT_NAME, COMMIT_EMAIL (the committer), PUSH_URL (optional: origin's URL, without credentials)
set -euo pipefail
message=${1:?usage: push-changes.sh MESSAGE PATH...}
shift
export GIT_AUTHOR_NAME="$COMMIT_NAME" GIT_AUTHOR_EMAIL="$COMMIT_EMAIL"
export GIT_COMMITTER_NAME="$COMMIT_NAME" GIT_COMMITTER_EMAIL="$COMMIT_EMAIL"
if [ -n "${PUSH_URL:-}" ]; then
  git remote set-url origin "$PUSH_URL"
fi
git add -- "$@"
if git diff --cached --quiet; then
  echo "push-changes.sh: nothing changed in $*"
  exit 0
fi
git commit -q -m "$message"
# shellcheck disable=SC2016  # expanded by the helper's shell when git runs it, not here
helper='!f() { test "$1" = get || exit 0; printf "username=%s\npassword=%s\n" "$GIT_PUSH_USER" "$GIT_PUSH_TOKEN"; }; f'
authed() { git -c credential.helper= -c "credential.helper=$helper" "$@"; }
for attempt in 1 2 3 4 5; do
  if authed push origin "HEAD:refs/heads/$PUSH_BRANCH"; then
    git log -1 --format='pushed %H: %s'
    exit 0
  fi
  echo "push-changes.sh: push $attempt was rejected; rebasing onto origin/$PUSH_BRANCH" >&2
  authed fetch origin "$PUSH_BRANCH"
  git rebase FETCH_HEAD
done
echo "push-changes.sh: could not push to $PUSH_BRANCH after 5 attempts" >&2
exit 1
