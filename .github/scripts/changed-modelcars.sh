#!/usr/bin/env bash
# Print the modelcar specs to publish, space-separated: NAME if given (a manual run), else the specs whose
# modelcars/NAME.yaml or NAME.lock.yaml changed between BEFORE and HEAD (every spec when BEFORE is unknown,
# e.g. a new branch's first push). Names are checked to be plain spec names: they reach a command line.
# env: NAME (optional), BEFORE (optional: the commit the push started from)
set -euo pipefail
zero=0000000000000000000000000000000000000000
if [ -n "${NAME:-}" ]; then
  files="modelcars/$NAME.yaml"
elif [ -n "${BEFORE:-}" ] && [ "$BEFORE" != "$zero" ] && git cat-file -e "$BEFORE^{commit}" 2>/dev/null; then
  files=$(git diff --name-only "$BEFORE" HEAD -- 'modelcars/*.yaml')
else
  files=$(git ls-files -- 'modelcars/*.yaml')
fi
names=()
for file in $files; do
  name=$(basename "$file")
  name=${name%.yaml}
  name=${name%.lock}
  if ! [[ $name =~ ^[a-z0-9][a-z0-9._-]*$ ]]; then
    echo "changed-modelcars.sh: not a spec name: $file" >&2
    exit 1
  fi
  # a removed spec is not published; a lock without its spec neither
  if [ -f "modelcars/$name.yaml" ] && [[ " ${names[*]} " != *" $name "* ]]; then
    names+=("$name")
  fi
done
if [ -n "${NAME:-}" ] && [ ${#names[@]} -eq 0 ]; then
  echo "changed-modelcars.sh: no spec modelcars/$NAME.yaml" >&2
  exit 1
fi
echo "${names[*]}"
